"""The clients use cases against a fake unit of work (in-memory SQLite, events recorded in a list)."""

import uuid

import pytest
from sqlalchemy import select

from clients import commands
from clients.exceptions import ClientHasOpenDeals
from clients.models import Client, ClientContact, TimelineEntry, Touchpoint
from crm_common.caller import Caller
from crm_common.errors import DuplicateClient, Forbidden, NotFound, ValidationError, VersionConflict
from crm_common.events import EVENTS

NORTH, SOUTH = str(uuid.uuid4()), str(uuid.uuid4())
HEAD = Caller(str(uuid.uuid4()), "head", NORTH)
SOUTH_HEAD = Caller(str(uuid.uuid4()), "head", SOUTH)
MANAGER = Caller(str(uuid.uuid4()), "manager", NORTH)
OTHER_MANAGER = Caller(str(uuid.uuid4()), "manager", NORTH)
ADMIN = Caller(str(uuid.uuid4()), "admin", None)
DIRECTORY = {
    "users": {
        MANAGER.id: {"branch_id": NORTH, "role": "manager", "active": True},
        OTHER_MANAGER.id: {"branch_id": NORTH, "role": "manager", "active": True},
    }
}


def create(uow, caller=HEAD, directory=None, **fields):
    raw = {"kind": "person", "name": "Иван Петров", **fields}
    return commands.create_client(uow, caller, raw, directory, "RU")


def update(uow, caller, client_id, changes, expected_version=None, directory=None, deals=commands.NO_DEALS):
    return commands.update_client(uow, caller, client_id, changes, expected_version, directory, "RU", deals)


def touch(uow, caller=HEAD, directory=None, **fields):
    return commands.record_touchpoint(uow, caller, {"channel": "web_form", **fields}, directory, "RU")


def test_creating_a_client_returns_it_with_normalised_contacts(uow):
    client = create(
        uow,
        phones=["8 (916) 123-45-67"],
        emails=[" Ivan@Mail.RU "],
        tags=["VIP", "vip"],
        source="yandex",
        custom_fields={"inn": "7701234567"},
    )

    assert uuid.UUID(client["id"])
    assert client["phones"] == ["+79161234567"]
    assert client["emails"] == ["ivan@mail.ru"]
    assert client["tags"] == ["vip"]
    assert client["custom_fields"] == {"inn": "7701234567"}
    assert (client["branch_id"], client["owner_id"], client["version"]) == (NORTH, HEAD.id, 1)
    assert client["archived"] is False and client["archived_at"] is None
    assert client["created_at"].endswith("Z")


def test_creating_a_client_emits_client_created_with_the_contract(uow):
    client = create(uow, phones=["+7 916 123-45-67"])

    assert uow.event_types() == ["client_created"]
    payload = uow.events[0][1]
    assert EVENTS["client_created"]().validate(payload) == {}
    assert payload["client"] == client
    assert (payload["branch_id"], payload["actor_id"]) == (NORTH, HEAD.id)
    assert payload["event_id"] and payload["occurred_at"].endswith("Z")


def test_creating_a_client_writes_its_contacts_search_text_and_timeline(uow):
    client = create(uow, phones=["8 916 123-45-67"], emails=["ivan@mail.ru"])
    uow.session.flush()

    contacts = {(c.kind, c.value) for c in uow.session.scalars(select(ClientContact))}
    stored = uow.session.get(Client, client["id"])
    timeline = uow.session.scalars(select(TimelineEntry)).all()
    assert contacts == {("phone", "+79161234567"), ("email", "ivan@mail.ru")}
    assert stored.search_text == "иван петров 79161234567 ivan@mail.ru"
    assert [(t.kind, t.type) for t in timeline] == [("client", "client_created")]


def test_an_invalid_client_is_refused_and_nothing_is_emitted(uow):
    with pytest.raises(ValidationError) as error:
        create(uow, phones=["+79161234567", "123"], emails=["not-an-email"])

    assert set(error.value.fields) == {"phones.1", "emails.0"}
    assert uow.events == []


def test_a_body_with_an_unknown_field_is_refused(uow):
    with pytest.raises(ValidationError) as error:
        create(uow, phone="+79161234567")

    assert "phone" in error.value.fields


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"phones": ["+7 916 123-45-67"]}, {"phones": ["8 (916) 123 45 67"]}),
        ({"emails": ["ivan@mail.ru"]}, {"emails": ["IVAN@MAIL.RU"]}),
        ({"phones": ["+7 916 000-00-00"], "emails": ["a@b.ru"]}, {"phones": ["+7 495 123-45-67"], "emails": ["a@b.ru"]}),
    ],
)
def test_the_same_phone_or_email_in_the_same_branch_is_a_duplicate_naming_the_existing_client(uow, first, second):
    existing = create(uow, **first)

    with pytest.raises(DuplicateClient) as error:
        create(uow, name="Другой Иван", **second)

    assert error.value.details == {"existing_id": existing["id"]}
    assert uow.event_types() == ["client_created"]


def test_another_branch_may_hold_the_same_phone(uow):
    north = create(uow, HEAD, phones=["+7 916 123-45-67"])
    south = create(uow, SOUTH_HEAD, phones=["8 916 123 45 67"])

    assert north["id"] != south["id"]
    assert south["branch_id"] == SOUTH


def test_a_managers_new_client_is_theirs(uow):
    client = create(uow, MANAGER)

    assert client["owner_id"] == MANAGER.id


def test_a_manager_cannot_create_a_client_for_someone_else(uow):
    with pytest.raises(Forbidden):
        create(uow, MANAGER, directory=DIRECTORY, owner_id=OTHER_MANAGER.id)


def test_a_head_may_give_a_new_client_to_a_manager_of_the_branch(uow):
    assert create(uow, HEAD, directory=DIRECTORY, owner_id=MANAGER.id)["owner_id"] == MANAGER.id


def test_a_head_cannot_give_a_new_client_to_someone_outside_the_branch(uow):
    with pytest.raises(ValidationError) as error:
        create(uow, SOUTH_HEAD, directory=DIRECTORY, owner_id=MANAGER.id)

    assert "owner_id" in error.value.fields


def test_an_admin_creates_a_client_in_the_branch_they_name(uow):
    client = create(uow, ADMIN, branch_id=SOUTH)

    assert client["branch_id"] == SOUTH


def test_an_admin_must_name_a_branch(uow):
    with pytest.raises(ValidationError) as error:
        create(uow, ADMIN)

    assert "branch_id" in error.value.fields


def test_a_head_cannot_create_a_client_in_another_branch(uow):
    with pytest.raises(Forbidden):
        create(uow, HEAD, branch_id=SOUTH)


def test_updating_a_client_changes_the_fields_bumps_the_version_and_emits_what_changed(uow):
    client = create(uow, phones=["+7 916 123-45-67"])

    updated = update(uow, HEAD, client["id"], {"name": "Иван Сидоров", "phones": ["8 495 123 45 67"]}, 1)

    assert updated["name"] == "Иван Сидоров"
    assert updated["phones"] == ["+74951234567"]
    assert updated["version"] == 2
    event_type, payload = uow.events[-1]
    assert event_type == "client_updated"
    assert payload["changed"] == ["name", "phones"]
    assert payload["client"] == updated


def test_a_changed_phone_frees_the_old_one_for_another_client(uow):
    client = create(uow, phones=["+7 916 123-45-67"])
    update(uow, HEAD, client["id"], {"phones": ["+7 495 123-45-67"]})

    other = create(uow, name="Пётр", phones=["+7 916 123-45-67"])

    assert other["phones"] == ["+79161234567"]


def test_an_update_with_a_stale_version_is_a_version_conflict(uow):
    client = create(uow)
    update(uow, HEAD, client["id"], {"name": "Второе имя"}, 1)

    with pytest.raises(VersionConflict) as error:
        update(uow, HEAD, client["id"], {"name": "Третье имя"}, 1)

    assert error.value.details == {"current_version": 2}
    assert uow.event_types() == ["client_created", "client_updated"]


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "Иван Петров"},
        {"name": "  Иван Петров  "},
        {"phones": ["8 916 123 45 67"]},
        {"tags": ["VIP"]},
        {"kind": "person", "source": "yandex"},
    ],
)
def test_an_update_that_changes_nothing_emits_nothing_and_keeps_the_version(uow, changes):
    client = create(uow, phones=["+79161234567"], tags=["vip"], source="yandex")

    unchanged = update(uow, HEAD, client["id"], changes, 1)

    assert unchanged["version"] == 1
    assert unchanged == client
    assert uow.event_types() == ["client_created"]


def test_an_empty_update_is_refused(uow):
    client = create(uow)

    with pytest.raises(ValidationError) as error:
        update(uow, HEAD, client["id"], {})

    assert "body" in error.value.fields


def test_changing_a_phone_to_one_another_client_holds_is_a_duplicate(uow):
    first = create(uow, phones=["+7 916 123-45-67"])
    second = create(uow, name="Пётр", phones=["+7 495 123-45-67"])

    with pytest.raises(DuplicateClient) as error:
        update(uow, HEAD, second["id"], {"phones": ["8 916 123 45 67"]})

    assert error.value.details["existing_id"] == first["id"]


def test_a_manager_cannot_give_their_client_away(uow):
    client = create(uow, MANAGER)

    with pytest.raises(Forbidden):
        update(uow, MANAGER, client["id"], {"owner_id": OTHER_MANAGER.id}, directory=DIRECTORY)


def test_a_head_may_reassign_a_client_to_another_manager_of_the_branch(uow):
    client = create(uow, MANAGER)

    updated = update(uow, HEAD, client["id"], {"owner_id": OTHER_MANAGER.id}, directory=DIRECTORY)

    assert updated["owner_id"] == OTHER_MANAGER.id


def test_a_head_cannot_move_a_client_to_another_branch(uow):
    client = create(uow)

    with pytest.raises(Forbidden):
        update(uow, HEAD, client["id"], {"branch_id": SOUTH})


def test_an_admin_moving_a_client_to_another_branch_leaves_it_without_an_owner(uow):
    client = create(uow, MANAGER, phones=["+7 916 123-45-67"])

    moved = update(uow, ADMIN, client["id"], {"branch_id": SOUTH})

    assert (moved["branch_id"], moved["owner_id"]) == (SOUTH, None)
    assert uow.events[-1][1]["changed"] == ["owner_id", "branch_id"]
    assert create(uow, HEAD, phones=["+7 916 123-45-67"])["branch_id"] == NORTH


SOUTH_MANAGER = Caller(str(uuid.uuid4()), "manager", SOUTH)
BOTH_BRANCHES = {"users": {**DIRECTORY["users"], SOUTH_MANAGER.id: {"branch_id": SOUTH, "role": "manager", "active": True}}}


def test_an_admin_may_move_a_client_and_name_its_owner_in_the_new_branch(uow):
    client = create(uow, MANAGER)

    moved = update(uow, ADMIN, client["id"], {"branch_id": SOUTH, "owner_id": SOUTH_MANAGER.id}, directory=BOTH_BRANCHES)

    assert (moved["branch_id"], moved["owner_id"]) == (SOUTH, SOUTH_MANAGER.id)


def test_moving_a_client_with_its_old_owner_named_again_checks_the_owner_against_the_new_branch(uow):
    client = create(uow, MANAGER)

    with pytest.raises(ValidationError) as error:
        update(uow, ADMIN, client["id"], {"branch_id": SOUTH, "owner_id": MANAGER.id}, directory=BOTH_BRANCHES)

    assert "owner_id" in error.value.fields
    assert uow.session.get(Client, client["id"]).branch_id == NORTH


def test_a_client_with_open_deals_is_not_moved_to_another_branch(uow):
    client = create(uow, MANAGER)

    with pytest.raises(ClientHasOpenDeals) as error:
        update(uow, ADMIN, client["id"], {"branch_id": SOUTH}, deals=commands.DealCheck([{"id": "deal-1"}], 0))

    assert error.value.details == {"open_deal_ids": ["deal-1"]}
    assert "before moving the client to another branch" in error.value.message
    assert uow.session.get(Client, client["id"]).branch_id == NORTH


@pytest.mark.parametrize(
    ("reader", "visible"),
    [
        pytest.param(HEAD, True, id="the-head-of-the-branch"),
        pytest.param(MANAGER, True, id="the-owning-manager"),
        pytest.param(ADMIN, True, id="an-admin"),
        pytest.param(OTHER_MANAGER, False, id="another-manager"),
        pytest.param(SOUTH_HEAD, False, id="the-head-of-another-branch"),
    ],
)
def test_a_client_is_found_only_by_those_who_may_see_it(uow, reader, visible):
    client = create(uow, MANAGER)

    if visible:
        assert commands.require_visible(uow.session, reader, client["id"]).id == client["id"]
    else:
        with pytest.raises(NotFound):
            commands.require_visible(uow.session, reader, client["id"])


@pytest.mark.parametrize("client_id", ["not-a-uuid", str(uuid.uuid4())])
def test_an_unknown_client_is_not_found(uow, client_id):
    with pytest.raises(NotFound):
        update(uow, HEAD, client_id, {"name": "X"})


def test_a_manager_cannot_update_someone_elses_client(uow):
    client = create(uow, MANAGER)

    with pytest.raises(NotFound):
        update(uow, OTHER_MANAGER, client["id"], {"name": "Чужой"})


def test_archiving_twice_archives_once(uow):
    client = create(uow)

    first = commands.set_archived(uow, HEAD, client["id"], True, commands.NO_DEALS)
    second = commands.set_archived(uow, HEAD, client["id"], True, commands.NO_DEALS)

    assert first["archived"] is True and first["archived_at"]
    assert second == first
    assert uow.event_types() == ["client_created", "client_archived"]


def test_restoring_an_archived_client_emits_client_restored(uow):
    client = create(uow)
    commands.set_archived(uow, HEAD, client["id"], True, commands.NO_DEALS)

    restored = commands.set_archived(uow, HEAD, client["id"], False)

    assert restored["archived"] is False and restored["archived_at"] is None
    assert uow.event_types() == ["client_created", "client_archived", "client_restored"]


def test_restoring_a_client_that_is_not_archived_emits_nothing(uow):
    client = create(uow)

    commands.set_archived(uow, HEAD, client["id"], False)

    assert uow.event_types() == ["client_created"]


def test_logging_an_interaction_emits_interaction_logged_for_the_owner(uow):
    client = create(uow, MANAGER)

    interaction = commands.log_interaction(
        uow, MANAGER, client["id"], {"type": "call", "direction": "in", "duration_s": 180, "text": " Просил счёт "}
    )

    assert interaction["text"] == "Просил счёт"
    assert interaction["author_id"] == MANAGER.id
    event_type, payload = uow.events[-1]
    assert event_type == "interaction_logged"
    assert (payload["client_id"], payload["owner_id"]) == (client["id"], MANAGER.id)
    assert payload["interaction"] == interaction


def test_finding_a_client_by_email_records_a_touchpoint_without_creating_a_client(uow):
    client = create(uow, emails=["ivan@mail.ru"])

    result = touch(uow, email=" IVAN@mail.ru ", message="Перезвоните")

    assert result["client_id"] == client["id"]
    assert result["created"] is False
    event_type, payload = uow.events[-1]
    assert event_type == "touchpoint_recorded"
    assert (payload["created"], payload["touchpoint_id"]) == (False, result["touchpoint_id"])
    assert uow.session.get(Touchpoint, result["touchpoint_id"]).client_id == client["id"]


def test_finding_a_client_by_a_phone_written_differently_records_a_touchpoint(uow):
    client = create(uow, phones=["+7 916 123-45-67"])

    result = touch(uow, phone="8 (916) 123-45-67")

    assert (result["client_id"], result["created"]) == (client["id"], False)


def test_a_touchpoint_from_an_unknown_contact_creates_a_client(uow):
    result = touch(uow, name="Ольга", phone="+7 916 555-00-11", utm={"utm_source": "yandex"})

    client = uow.session.get(Client, result["client_id"])
    assert result["created"] is True
    assert (client.name, client.phones, client.source, client.branch_id) == ("Ольга", ["+79165550011"], "yandex", NORTH)
    assert uow.event_types() == ["client_created", "touchpoint_recorded"]
    assert uow.events[-1][1]["source"] == "yandex"


def test_a_touchpoint_without_a_name_names_the_new_client_after_its_contact(uow):
    result = touch(uow, email="olga@example.com")

    assert uow.session.get(Client, result["client_id"]).name == "olga@example.com"


def test_new_clients_from_touchpoints_go_round_robin_to_the_branch_managers(uow):
    managers = sorted([MANAGER.id, OTHER_MANAGER.id, str(uuid.uuid4())])
    directory = {"managers": list(reversed(managers))}

    owners = [
        uow.session.get(Client, touch(uow, directory=directory, phone=f"+7 916 000-00-0{i}")["client_id"]).owner_id
        for i in range(5)
    ]

    assert owners == [managers[0], managers[1], managers[2], managers[0], managers[1]]


def test_a_touchpoint_from_a_known_client_does_not_move_the_round_robin(uow):
    directory = {"managers": [MANAGER.id, OTHER_MANAGER.id]}
    first = touch(uow, directory=directory, phone="+7 916 000-00-01")
    touch(uow, directory=directory, phone="+7 916 000-00-01")

    second = touch(uow, directory=directory, phone="+7 916 000-00-02")

    first_owner = uow.session.get(Client, first["client_id"]).owner_id
    second_owner = uow.session.get(Client, second["client_id"]).owner_id
    assert {first_owner, second_owner} == {MANAGER.id, OTHER_MANAGER.id}


def test_a_touchpoint_in_a_branch_without_managers_goes_to_the_caller(uow):
    result = touch(uow, HEAD, directory={"managers": []}, phone="+7 916 000-00-01")

    assert uow.session.get(Client, result["client_id"]).owner_id == HEAD.id


@pytest.mark.parametrize(
    ("contact", "field"),
    [({"phone": "123"}, "phone"), ({"phone": "+7 000"}, "phone"), ({"email": "not-an-email"}, "email")],
)
def test_a_touchpoint_with_an_invalid_contact_names_the_field(uow, contact, field):
    with pytest.raises(ValidationError) as error:
        touch(uow, **contact)

    assert list(error.value.fields) == [field]
    assert uow.events == []


def test_a_touchpoint_needs_a_phone_or_an_email(uow):
    with pytest.raises(ValidationError) as error:
        touch(uow, name="Аноним")

    assert {"phone", "email"} <= set(error.value.fields)


def test_a_known_client_writing_from_a_new_email_keeps_it(uow):
    client = create(uow, phones=["+7 916 123-45-67"])

    touch(uow, phone="+7 916 123-45-67", email="ivan@mail.ru")

    assert uow.session.get(Client, client["id"]).emails == ["ivan@mail.ru"]
    assert "client_updated" in uow.event_types()


def test_a_touchpoint_from_an_archived_client_brings_it_back(uow):
    client = create(uow, phones=["+7 916 123-45-67"])
    commands.set_archived(uow, HEAD, client["id"], True, commands.NO_DEALS)

    result = touch(uow, phone="+7 916 123-45-67")

    assert result == {"client_id": client["id"], "created": False, "touchpoint_id": result["touchpoint_id"]}
    assert uow.session.get(Client, client["id"]).archived is False
    assert uow.event_types()[-2:] == ["client_restored", "touchpoint_recorded"]
