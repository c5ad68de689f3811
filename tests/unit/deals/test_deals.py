"""Deals: creating them for a visible client, changing them, and who sees which deals in a list."""

import uuid
from datetime import timedelta

import pytest

from crm_common.clock import utcnow
from crm_common.errors import Forbidden, ValidationError, VersionConflict
from crm_common.events import EVENTS
from deals import commands, views
from deals import repository as repo
from deals.exceptions import DealNotFound


def test_a_new_deal_starts_open_at_the_first_stage_with_its_due_time(sales):
    pipeline = sales.pipeline()
    client = sales.client(owner=sales.manager)

    before = utcnow()
    deal = sales.deal(pipeline, client=client, title=" Поставка труб ", amount="1250.5", currency="EUR")
    after = utcnow()

    first = pipeline["stages"][0]
    assert uuid.UUID(deal["id"])
    assert (deal["client_id"], deal["pipeline_id"], deal["branch_id"]) == (client["id"], pipeline["id"], sales.north)
    assert (deal["stage_id"], deal["status"], deal["version"]) == (first["id"], "open", 1)
    assert (deal["title"], deal["amount"], deal["currency"]) == ("Поставка труб", "1250.50", "EUR")
    assert deal["stage"] == {"id": first["id"], "name": "Новая", "kind": "open", "max_days": 2.0, "script": None}
    assert deal["stuck"] is False and deal["lost_reason"] is None and deal["closed_at"] is None
    stored = sales.stored(deal)
    assert before <= stored.stage_entered_at <= after
    assert stored.stage_due_at == stored.stage_entered_at + timedelta(days=2)
    assert stored.amount_minor == 125050
    assert deal["stage_entered_at"].endswith("Z") and deal["created_at"] == deal["stage_entered_at"]


def test_a_new_deal_emits_deal_created_with_the_deal_as_returned(sales):
    deal = sales.deal(sales.pipeline())

    [(event_type, payload)] = sales.uow.events
    assert event_type == "deal_created"
    assert EVENTS["deal_created"]().validate(payload) == {}
    assert payload["deal"] == {k: v for k, v in deal.items() if k != "stage"}
    assert (payload["branch_id"], payload["actor_id"]) == (sales.north, sales.head.id)


def test_a_new_deal_opens_its_stage_history_at_the_first_stage(sales):
    deal = sales.deal(sales.pipeline())

    [visit] = sales.history(deal)
    assert (visit["stage_id"], visit["stage_name"], visit["stage_kind"]) == (deal["stage_id"], "Новая", "open")
    assert (visit["from_stage_id"], visit["exited_at"], visit["time_spent_s"]) == (None, None, None)
    assert (visit["entered_at"], visit["moved_by"]) == (deal["stage_entered_at"], sales.head.id)


@pytest.mark.parametrize(("amount", "minor"), [("0.01", 1), ("0", 0), ("999999999999.99", 99999999999999)])
def test_a_deal_keeps_its_amount_exactly(sales, amount, minor):
    deal = sales.deal(sales.pipeline(), amount=amount)

    assert sales.stored(deal).amount_minor == minor
    assert sales.get(deal)["amount"] == sales.uow.events[0][1]["deal"]["amount"] == deal["amount"]
    assert deal["amount"] == f"{int(minor) // 100}.{int(minor) % 100:02d}"


def test_a_new_deal_belongs_to_the_clients_owner_by_default(sales):
    deal = sales.deal(sales.pipeline(), client=sales.client(owner=sales.other_manager))

    assert deal["owner_id"] == sales.other_manager.id


def test_a_new_deal_for_a_client_without_an_owner_belongs_to_the_head_who_made_it(sales):
    assert sales.deal(sales.pipeline(), client=sales.client(owner=None))["owner_id"] == sales.head.id


def test_a_managers_new_deal_is_theirs(sales):
    pipeline = sales.pipeline()

    assert sales.deal(pipeline, caller=sales.manager)["owner_id"] == sales.manager.id
    assert sales.deal(pipeline, caller=sales.manager, owner_id=sales.manager.id)["owner_id"] == sales.manager.id


def test_a_manager_cannot_create_a_deal_for_someone_else(sales):
    pipeline = sales.pipeline()

    with pytest.raises(Forbidden):
        sales.deal(pipeline, caller=sales.manager, owner_id=sales.other_manager.id)

    assert sales.uow.events == [] and sales.list(sales.admin) == []


def test_a_head_may_give_a_new_deal_to_an_active_user_of_the_branch(sales):
    deal = sales.deal(sales.pipeline(), owner_id=sales.other_manager.id)

    assert deal["owner_id"] == sales.other_manager.id


@pytest.mark.parametrize("who", ["inactive", "of another branch", "unknown"])
def test_a_head_cannot_give_a_new_deal_to_someone_who_cannot_work_it(sales, who):
    owner_id = {"inactive": sales.retired, "of another branch": sales.south_manager.id, "unknown": str(uuid.uuid4())}[who]

    with pytest.raises(ValidationError) as error:
        sales.deal(sales.pipeline(), owner_id=owner_id)

    assert list(error.value.fields) == ["owner_id"]


@pytest.mark.parametrize("client", [None, {"archived": True}], ids=["unknown or invisible", "archived"])
def test_a_deal_needs_a_live_client_the_caller_sees(sales, client):
    pipeline = sales.pipeline()
    if client is not None:
        client = {**sales.client(owner=sales.manager), **client}
    data = commands.load_new_deal({"client_id": str(uuid.uuid4()), "pipeline_id": pipeline["id"], "title": "Поставка",
                                   "amount": "1.00", "currency": "RUB"})

    with pytest.raises(ValidationError) as error:
        sales.uow.call(commands.create_deal, sales.head, data, client, sales.directory)

    assert list(error.value.fields) == ["client_id"]
    assert sales.uow.events == [] and sales.list(sales.admin) == []


@pytest.mark.parametrize(
    ("caller", "client_branch"),
    [("south_head", "south"), ("admin", "south")],
    ids=["a pipeline the caller cannot see", "a pipeline of another branch than the client"],
)
def test_a_deal_goes_into_a_pipeline_of_its_clients_branch(sales, caller, client_branch):
    pipeline = sales.pipeline()
    client = sales.client(owner=sales.south_manager, branch=getattr(sales, client_branch))

    with pytest.raises(ValidationError) as error:
        sales.deal(pipeline, caller=getattr(sales, caller), client=client)

    assert list(error.value.fields) == ["pipeline_id"]


def test_an_unknown_pipeline_is_refused_naming_pipeline_id(sales):
    with pytest.raises(ValidationError) as error:
        sales.deal({"id": str(uuid.uuid4()), "branch_id": sales.north})

    assert list(error.value.fields) == ["pipeline_id"]


def test_an_admin_creates_a_deal_in_the_clients_branch(sales):
    pipeline = sales.pipeline(caller=sales.south_head)

    deal = sales.deal(pipeline, caller=sales.admin, client=sales.client(owner=sales.south_manager, branch=sales.south))

    assert (deal["branch_id"], deal["owner_id"]) == (sales.south, sales.south_manager.id)


@pytest.mark.parametrize(
    ("reader", "visible"),
    [("head", True), ("admin", True), ("manager", True), ("other_manager", False), ("south_head", False)],
)
def test_a_deal_is_found_only_by_those_who_may_see_it(sales, reader, visible):
    deal = sales.deal(sales.pipeline(), caller=sales.manager)

    if visible:
        assert sales.get(deal, getattr(sales, reader)) == deal
    else:
        with pytest.raises(DealNotFound):
            sales.get(deal, getattr(sales, reader))


@pytest.mark.parametrize("deal_id", ["not-an-id", str(uuid.uuid4())])
def test_an_unknown_deal_is_not_found(sales, deal_id):
    with pytest.raises(DealNotFound):
        sales.get(deal_id)


# ---- changing a deal

def test_changing_a_deal_bumps_its_version_and_emits_what_changed(sales):
    deal = sales.deal(sales.pipeline())
    sales.uow.take_events()

    changed = sales.update(deal, {"title": "Поставка труб", "amount": "990.00"}, expected_version=1)

    assert (changed["title"], changed["amount"], changed["version"]) == ("Поставка труб", "990.00", 2)
    assert sales.stored(deal).amount_minor == 99000
    [(event_type, payload)] = sales.uow.events
    assert event_type == "deal_updated"
    assert sorted(payload["changed"]) == ["amount", "title"]
    assert payload["deal"] == {k: v for k, v in changed.items() if k != "stage"}


@pytest.mark.parametrize(
    "changes",
    [{"title": "Поставка"}, {"amount": "1250.50"}, {"amount": "1250.5"}, {"currency": "RUB"}, {"title": " Поставка "}],
)
def test_a_change_that_changes_nothing_emits_nothing_and_keeps_the_version(sales, changes):
    deal = sales.deal(sales.pipeline())
    sales.uow.take_events()

    assert sales.update(deal, changes)["version"] == 1
    assert sales.uow.events == []


def test_a_change_with_a_stale_version_is_refused_and_changes_nothing(sales):
    deal = sales.deal(sales.pipeline())
    sales.update(deal, {"title": "Вторая"})
    sales.uow.take_events()

    with pytest.raises(VersionConflict) as error:
        sales.update(deal, {"title": "Третья"}, expected_version=1)

    assert error.value.details == {"current_version": 2}
    assert sales.get(deal)["title"] == "Вторая" and sales.uow.events == []


def test_a_head_may_hand_a_deal_to_another_manager_of_the_branch(sales):
    deal = sales.deal(sales.pipeline(), caller=sales.manager)
    sales.uow.take_events()

    changed = sales.update(deal, {"owner_id": sales.other_manager.id})

    assert changed["owner_id"] == sales.other_manager.id
    assert sales.uow.events[0][1]["changed"] == ["owner_id"]
    with pytest.raises(DealNotFound):
        sales.get(deal, sales.manager)


@pytest.mark.parametrize("who", ["inactive", "of another branch", "unknown"])
def test_a_head_cannot_hand_a_deal_to_someone_who_cannot_work_it(sales, who):
    deal = sales.deal(sales.pipeline())
    owner_id = {"inactive": sales.retired, "of another branch": sales.south_manager.id, "unknown": str(uuid.uuid4())}[who]

    with pytest.raises(ValidationError) as error:
        sales.update(deal, {"owner_id": owner_id})

    assert list(error.value.fields) == ["owner_id"]


def test_a_manager_cannot_give_their_deal_away(sales):
    deal = sales.deal(sales.pipeline(), caller=sales.manager)

    with pytest.raises(Forbidden):
        sales.update(deal, {"owner_id": sales.other_manager.id}, caller=sales.manager)

    assert sales.get(deal)["owner_id"] == sales.manager.id


def test_a_manager_may_change_their_own_deal_and_name_themselves_owner(sales):
    deal = sales.deal(sales.pipeline(), caller=sales.manager)

    changed = sales.update(deal, {"owner_id": sales.manager.id, "amount": "0.01"}, caller=sales.manager)

    assert (changed["owner_id"], changed["amount"], changed["version"]) == (sales.manager.id, "0.01", 2)
    assert sales.stored(deal).amount_minor == 1


def test_a_manager_cannot_change_someone_elses_deal(sales):
    deal = sales.deal(sales.pipeline(), caller=sales.manager)

    with pytest.raises(DealNotFound):
        sales.update(deal, {"title": "Моя"}, caller=sales.other_manager)


# ---- lists

@pytest.fixture
def two_branches(sales):
    north, south = sales.pipeline(), sales.pipeline(caller=sales.south_head, name="Юг")
    deals = {
        "mine": sales.deal(north, caller=sales.manager),
        "theirs": sales.deal(north, caller=sales.other_manager),
        "south": sales.deal(south, caller=sales.south_manager),
    }
    return north, south, deals


@pytest.mark.parametrize(
    ("reader", "visible"),
    [
        ("manager", {"mine"}),
        ("other_manager", {"theirs"}),
        ("head", {"mine", "theirs"}),
        ("south_head", {"south"}),
        ("south_manager", {"south"}),
        ("admin", {"mine", "theirs", "south"}),
    ],
)
def test_a_list_of_deals_shows_each_role_what_it_may_see(sales, two_branches, reader, visible):
    _, _, deals = two_branches
    names = {deal["id"]: name for name, deal in deals.items()}

    listed = sales.list(getattr(sales, reader))

    assert {names[deal["id"]] for deal in listed} == visible


def test_a_list_shows_the_newest_deals_first_without_scripts(sales, two_branches):
    _, _, deals = two_branches

    listed = sales.list(sales.head)

    assert [d["id"] for d in listed] == [deals["theirs"]["id"], deals["mine"]["id"]]
    assert "script" not in listed[0]["stage"]


def test_a_list_can_be_filtered_by_pipeline_stage_status_owner_and_client(sales):
    pipeline, other = sales.pipeline(), sales.pipeline(name="Розница")
    client = sales.client(owner=sales.manager)
    first = sales.deal(pipeline, client=client)
    talking = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Переговоры"))
    won = sales.move(sales.deal(pipeline, owner_id=sales.other_manager.id), sales.stage(pipeline, "Успех"))
    elsewhere = sales.deal(other, client=client)

    def ids(**query):
        return {d["id"] for d in sales.list(**query)}

    assert ids(pipeline_id=pipeline["id"]) == {first["id"], talking["id"], won["id"]}
    assert ids(stage_id=sales.stage(pipeline, "Переговоры")["id"]) == {talking["id"]}
    assert ids(status="won") == {won["id"]}
    assert ids(status="open") == {first["id"], talking["id"], elsewhere["id"]}
    assert ids(owner_id=sales.other_manager.id) == {won["id"]}
    assert ids(client_id=client["id"]) == {first["id"], elsewhere["id"]}
    assert ids(client_id=client["id"], pipeline_id=other["id"]) == {elsewhere["id"]}


def test_a_list_of_stuck_deals_holds_the_open_deals_past_their_stage_limit(sales):
    pipeline = sales.pipeline()
    stuck = sales.deal(pipeline)
    fresh = sales.deal(pipeline)
    untimed = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Переговоры"))
    lost = sales.move(sales.deal(pipeline), sales.stage(pipeline, "Отказ"), reason="Дорого")
    sales.backdate(stuck, 2.01)
    sales.backdate(untimed, 400)
    sales.backdate(lost, 400)

    stuck_ids = [d["id"] for d in sales.list(stuck="true")]
    moving = {d["id"]: d["stuck"] for d in sales.list(stuck="false")}

    assert stuck_ids == [stuck["id"]]
    assert moving == {fresh["id"]: False, untimed["id"]: False, lost["id"]: False}
    assert {d["id"]: d["stuck"] for d in sales.list()} == {**moving, stuck["id"]: True}


@pytest.mark.parametrize(("offset", "stuck"), [(timedelta(0), True), (timedelta(microseconds=-1), False)])
def test_a_deal_is_stuck_from_the_very_moment_its_stage_limit_passes(sales, offset, stuck):
    deal = sales.deal(sales.pipeline())
    now = sales.stored(deal).stage_due_at + offset

    def ids(flag):
        filters = {"stuck": flag, "limit": 50}
        return sales.uow.read(repo.list_deals, sales.head, filters, now, lambda page: [d.id for d in page])["items"]

    assert (ids(True), ids(False)) == (([deal["id"]], []) if stuck else ([], [deal["id"]]))


def test_a_list_comes_in_pages(sales):
    pipeline = sales.pipeline()
    made = [sales.deal(pipeline)["id"] for _ in range(5)]
    filters = {"limit": 2, "cursor": None, "sort": "created_at"}

    seen = []
    while True:
        page = sales.uow.read(views.list_deals, sales.head, filters)
        seen += [d["id"] for d in page["items"]]
        if page["next_cursor"] is None:
            break
        filters["cursor"] = page["next_cursor"]

    assert seen == made


def test_the_open_deals_of_a_client_leave_out_closed_deals_and_other_clients(sales):
    pipeline = sales.pipeline()
    client = sales.client(owner=sales.manager)
    first = sales.deal(pipeline, client=client, title="Первая")
    second = sales.move(sales.deal(pipeline, client=client, title="Вторая"), sales.stage(pipeline, "Договор"))
    sales.move(sales.deal(pipeline, client=client), sales.stage(pipeline, "Успех"))
    sales.move(sales.deal(pipeline, client=client), sales.stage(pipeline, "Отказ"), reason="Ушёл к конкурентам")
    sales.deal(pipeline)

    open_deals = sales.uow.read(commands.open_deals_of_client, client["id"])

    assert sorted(open_deals, key=lambda d: d["title"]) == [
        {"id": second["id"], "title": "Вторая"}, {"id": first["id"], "title": "Первая"},
    ]


def test_a_client_without_deals_has_no_open_deals(sales):
    sales.deal(sales.pipeline())

    assert sales.uow.read(commands.open_deals_of_client, str(uuid.uuid4())) == []
