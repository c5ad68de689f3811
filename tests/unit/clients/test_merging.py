"""Likely duplicates and merging two clients into one, on the fake unit of work."""

import uuid

import pytest
from sqlalchemy import select

from clients import commands, imports, merging
from clients import repository as repo
from clients.exceptions import ClientMerged, ClientNotFound
from clients.models import Client, ClientContact, Interaction, TimelineEntry, Touchpoint
from crm_common.caller import Caller
from crm_common.errors import Forbidden, ValidationError

NORTH, SOUTH = str(uuid.uuid4()), str(uuid.uuid4())
HEAD = Caller(str(uuid.uuid4()), "head", NORTH)
MANAGER = Caller(str(uuid.uuid4()), "manager", NORTH)
ADMIN = Caller(str(uuid.uuid4()), "admin", None)


def create(uow, caller=HEAD, **fields):
    return uow.call(commands.create_client, caller, {"kind": "person", "name": "Иван Петров", **fields}, None, "RU")


def twins(uow, first: dict, second: dict) -> tuple[dict, dict]:
    """Two clients sharing contacts, as an import with create_anyway leaves them."""
    one = create(uow, **first)
    rows = [{"row": 2, "data": {"name": second.get("name", "Иван Петров"),
                                "phones": [[0, p] for p in second.get("phones", [])],
                                "emails": [[0, e] for e in second.get("emails", [])],
                                "tags": [[0, t] for t in second.get("tags", [])],
                                "custom_fields": second.get("custom_fields", {})}}]
    imp = uow.call(imports.create_import, HEAD, {"mapping": {"name": "ФИО"}, "total": 1, "on_duplicate": "create_anyway"}, None)
    uow.call(imports.add_rows, HEAD, imp["id"], rows)
    uow.call(imports.start_import, HEAD, imp["id"])
    while imports.work(uow, "r", 30, "RU"):
        uow.close()
    uow.close()
    other = uow.read(lambda s: s.scalars(select(Client).where(Client.id != one["id"])).one())
    return one, {"id": other.id}


def merge(uow, kept_id, other_id, caller=HEAD):
    return uow.call(merging.merge_clients, caller, kept_id, {"other_id": other_id})


def duplicates(uow, client_id, caller=HEAD):
    return uow.read(merging.find_duplicates, caller, client_id)["items"]


def test_a_client_sharing_a_phone_even_unclaimed_is_a_likely_duplicate_with_the_reason(uow):
    one, two = twins(uow, {"phones": ["+7 916 123-45-67"]}, {"name": "Другое имя", "phones": ["8 916 123-45-67"]})

    found = duplicates(uow, two["id"])

    assert [(d["client"]["id"], d["reasons"]) for d in found] == [
        (one["id"], [{"reason": "same_phone", "value": "+79161234567"}])]
    assert [d["client"]["id"] for d in duplicates(uow, one["id"])] == [two["id"]]


def test_the_same_name_and_kind_is_a_likely_duplicate_unless_the_persons_work_for_different_companies(uow):
    target = create(uow, name="Петров Иван", custom_fields={"company": "ООО «Ромашка»"})
    same_company = create(uow, name="иван  петров", custom_fields={"company": "Ромашка"})
    no_company = create(uow, name="Иван Петров")
    create(uow, name="Иван Петров", custom_fields={"company": "Лютик"})
    create(uow, name="Иван Петров", kind="company")
    create(uow, name="Пётр Иванов")

    found = {d["client"]["id"]: d["reasons"] for d in duplicates(uow, target["id"])}

    assert found == {
        same_company["id"]: [{"reason": "same_name", "value": "иван  петров", "company": "Ромашка"}],
        no_company["id"]: [{"reason": "same_name", "value": "Иван Петров"}],
    }


def test_a_company_matches_its_name_without_the_legal_form(uow):
    target = create(uow, kind="company", name="ООО «Ромашка»")
    same = create(uow, kind="company", name="Ромашка, ООО")

    assert [d["client"]["id"] for d in duplicates(uow, target["id"])] == [same["id"]]


def test_a_manager_sees_only_duplicates_they_own(uow):
    mine = create(uow, MANAGER, emails=["a@x.ru"])
    create(uow, name="Иван Петров")  # the head's, same name

    assert duplicates(uow, mine["id"], MANAGER) == []


def test_merging_keeps_every_contact_tag_field_and_record_of_both_the_kept_clients_values_first(uow):
    kept, other = twins(
        uow,
        {"phones": ["+7 916 123-45-67"], "tags": ["vip"], "custom_fields": {"inn": "1"}, "source": "сайт"},
        {"phones": ["+7 916 123-45-67", "+7 495 000-00-00"], "emails": ["b@x.ru"], "tags": ["опт"],
         "custom_fields": {"inn": "2", "city": "Тверь"}},
    )
    uow.call(commands.log_interaction, HEAD, other["id"], {"type": "call", "text": "Звонил"})
    uow.call(commands.record_touchpoint, HEAD, {"channel": "web_form", "email": "b@x.ru"}, None, "RU")
    uow.take_events()

    result = merge(uow, kept["id"], other["id"])

    assert result["phones"] == ["+79161234567", "+74950000000"] and result["emails"] == ["b@x.ru"]
    assert (result["tags"], result["custom_fields"], result["source"]) == (
        ["vip", "опт"], {"inn": "1", "city": "Тверь"}, "сайт")
    for model in (Interaction, Touchpoint):
        assert uow.read(lambda s, m=model: {r.client_id for r in s.scalars(select(m))}) == {kept["id"]}
    entries = uow.read(lambda s: s.scalars(select(TimelineEntry)).all())
    assert {e.client_id for e in entries} == {kept["id"]}
    assert any(e.type == "client_merged" and e.data["merged_id"] == other["id"] for e in entries)
    contacts = uow.read(lambda s: sorted((c.client_id, c.value, c.claimed) for c in s.scalars(select(ClientContact))))
    assert contacts == sorted([(kept["id"], "+79161234567", True), (kept["id"], "+74950000000", True),
                               (kept["id"], "b@x.ru", True)])
    assert uow.event_types() == ["client_merged"]
    assert uow.events[0][1]["client"] == result and uow.events[0][1]["merged_id"] == other["id"]


def test_a_merged_client_is_a_redirect_left_out_of_lists_and_refused_for_writes(uow):
    kept, other = create(uow, name="Один"), create(uow, name="Два")
    merge(uow, kept["id"], other["id"])

    with pytest.raises(ClientMerged) as error:
        uow.read(commands.require_visible, HEAD, other["id"])
    assert error.value.details == {"merged_into": kept["id"]}
    with pytest.raises(ClientMerged):
        uow.call(commands.update_client, HEAD, other["id"], {"name": "Три"}, None, None, "RU")
    with pytest.raises(ClientMerged):
        uow.call(commands.log_interaction, HEAD, other["id"], {"type": "note"})
    page = uow.read(repo.list_clients, HEAD, {"limit": 50}, None, lambda c: c.id)
    assert page["items"] == [kept["id"]]


def test_a_client_merged_into_one_merged_later_leads_straight_to_the_last(uow):
    first, second, third = create(uow, name="1"), create(uow, name="2"), create(uow, name="3")
    merge(uow, second["id"], first["id"])
    merge(uow, third["id"], second["id"])

    with pytest.raises(ClientMerged) as error:
        uow.read(commands.require_visible, HEAD, first["id"])
    assert error.value.details == {"merged_into": third["id"]}


def test_merging_an_active_client_into_an_archived_one_brings_it_back(uow):
    kept, other = create(uow, name="Архив"), create(uow, name="Живой")
    uow.call(commands.set_archived, HEAD, kept["id"], True, commands.NO_DEALS)

    assert merge(uow, kept["id"], other["id"])["archived"] is False


@pytest.mark.parametrize("case", ["itself", "other_branch", "kept_merged", "other_merged", "unknown"])
def test_a_merge_that_cannot_be_is_a_422_naming_the_field(uow, case):
    kept, other = create(uow, ADMIN, name="A", branch_id=NORTH), create(uow, ADMIN, name="B", branch_id=NORTH)
    gone = create(uow, ADMIN, name="C", branch_id=NORTH)
    far = create(uow, ADMIN, name="D", branch_id=SOUTH)
    merge(uow, other["id"], gone["id"], ADMIN)
    kept_id, other_id, field = {
        "itself": (kept["id"], kept["id"], "other_id"),
        "other_branch": (kept["id"], far["id"], "other_id"),
        "kept_merged": (gone["id"], kept["id"], "client_id"),
        "other_merged": (kept["id"], gone["id"], "other_id"),
        "unknown": (kept["id"], str(uuid.uuid4()), "other_id"),
    }[case]

    with pytest.raises(ValidationError) as error:
        merge(uow, kept_id, other_id, ADMIN)
    assert field in error.value.fields


def test_a_head_cannot_merge_a_client_of_another_branch_and_a_manager_cannot_merge_at_all(uow):
    far = create(uow, ADMIN, name="Юг", branch_id=SOUTH)
    mine = create(uow, name="Север")

    with pytest.raises(ValidationError):
        merge(uow, mine["id"], far["id"])
    with pytest.raises(ClientNotFound):
        merge(uow, far["id"], mine["id"])
    with pytest.raises(Forbidden):
        merge(uow, mine["id"], create(uow, name="Ещё")["id"], MANAGER)


def test_a_deal_event_for_a_merged_client_lands_on_the_kept_one_and_the_merge_is_told_again(uow):
    kept, other = create(uow, name="Один"), create(uow, name="Два")
    merge(uow, kept["id"], other["id"])
    uow.take_events()
    deal = {"id": str(uuid.uuid4()), "client_id": other["id"], "title": "Поставка", "amount": "10.00",
            "currency": "RUB", "status": "open"}

    with uow.transaction():
        commands.add_deal_event(uow, "deal_created", {"event_id": str(uuid.uuid4()), "deal": deal,
                                                      "occurred_at": "2026-11-27T10:00:00Z"})

    entry = uow.read(lambda s: s.scalars(select(TimelineEntry).where(TimelineEntry.kind == "deal")).one())
    assert entry.client_id == kept["id"]
    assert uow.event_types() == ["client_merged"] and uow.events[0][1]["merged_id"] == other["id"]
