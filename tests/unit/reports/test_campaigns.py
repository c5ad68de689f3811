"""The campaign report: touchpoints carrying a campaign's id, the clients they created, the deals those clients won
after their first touch, against the campaign's budget; and the same answer after a rebuild from the exports."""

import uuid

import pytest

from crm_common.errors import Forbidden
from crm_common.schemas import iso
from reports import domain, rebuild
from tests.unit.reports.conftest import NORTH, SOUTH, at


def campaign(desk, name="Рассылка", branch=NORTH, budget=("10000.00", "RUB"), starts="2026-11-01",
             ends="2026-11-30", audience=40, version=1, event="campaign_created"):
    snapshot = {"id": str(uuid.uuid4()), "name": name, "branch_id": branch, "segment_id": str(uuid.uuid4()),
                "channel": "email", "starts_on": starts, "ends_on": ends, "message": None, "audience": audience,
                "budget": {"amount": budget[0], "currency": budget[1]} if budget else None,
                "created_by": desk.head.id, "created_at": iso(at(1)), "updated_at": iso(at(1)), "version": version}
    return snapshot, desk.event(event, {"campaign": snapshot, **({"changed": ["name"]} if event != "campaign_created"
                                                                  else {})}, at(1), desk.head.id)


def touch(desk, client_id, when, utm, created=False, branch=NORTH):
    return desk.event("touchpoint_recorded", {
        "client_id": client_id, "touchpoint_id": str(uuid.uuid4()), "channel": "web_form", "source": "email",
        "created": created, "owner_id": None, "utm": utm, "branch_id": branch}, when)


def story(desk):
    """Two clients answer the campaign (one of them new); each wins a deal, one before the first touch."""
    pipeline, events = desk.pipeline()
    snapshot, created = campaign(desk)
    events.append(created)
    new_client, old_client = desk.client(at(3), source="email"), desk.client(at(1, month=6))
    events += [new_client, old_client]
    new_id, old_id = new_client[1]["client"]["id"], old_client[1]["client"]["id"]
    events += [touch(desk, new_id, at(3), {"campaign": snapshot["id"]}, created=True),
               touch(desk, old_id, at(10), {"utm_campaign": snapshot["id"].upper()}),
               touch(desk, old_id, at(12), {"campaign": snapshot["id"]}),
               touch(desk, old_id, at(13), {"campaign": "december-sale"})]  # names no campaign of ours
    won_after = desk.deal(pipeline, client_id=new_id, amount="25000.00")
    events += won_after.create(at(4)) + won_after.move("Успех", at(20))
    won_before = desk.deal(pipeline, client_id=old_id, amount="99000.00")
    events += won_before.create(at(2)) + won_before.move("Успех", at(5))  # before its first touch: not the campaign's
    dollars = desk.deal(pipeline, client_id=old_id, amount="300.00", currency="USD")
    events += dollars.create(at(11)) + dollars.move("Успех", at(14))
    return snapshot, events


def test_a_campaign_counts_its_touchpoints_new_clients_and_the_wins_after_a_touch(desk):
    snapshot, events = story(desk)
    desk.apply(events)

    [line] = desk.report("campaigns", from_="2026-11", to="2026-11")["campaigns"]

    assert (line["campaign_id"], line["audience"], line["touchpoints"], line["new_clients"]) == (snapshot["id"], 40, 3, 1)
    assert (line["deals_won"], line["currency"], line["revenue"]) == (1, "RUB", "25000.00")
    assert line["budget"] == {"amount": "10000.00", "currency": "RUB"}
    assert (line["roi"], line["cost_per_client"]) == (1.5, "10000.00")
    assert line["other_currencies"] == [{"currency": "USD", "revenue": "300.00", "deals_won": 1}]


def test_a_campaign_outside_the_period_and_untouched_in_it_is_not_listed(desk):
    _, created = campaign(desk, starts="2026-09-01", ends="2026-09-30")
    desk.apply([created])
    assert desk.report("campaigns", from_="2026-11", to="2026-11")["campaigns"] == []
    assert len(desk.report("campaigns", from_="2026-09", to="2026-09")["campaigns"]) == 1


def test_a_later_campaign_update_wins_over_an_earlier_one_whatever_the_order(desk):
    snapshot, created = campaign(desk)
    renamed = dict(snapshot, name="Новогодняя", version=2, budget=None)
    update = desk.event("campaign_updated", {"campaign": renamed, "changed": ["name", "budget"]}, at(2))
    desk.apply([update, created, update])

    [line] = desk.report("campaigns", to="2026-11")["campaigns"]
    assert (line["name"], line["budget"], line["roi"]) == ("Новогодняя", None, None)


def test_a_head_sees_their_branchs_campaigns_and_a_manager_none(desk):
    _, north = campaign(desk, name="Север")
    _, south = campaign(desk, name="Юг", branch=SOUTH)
    desk.apply([north, south])

    assert [c["name"] for c in desk.report("campaigns", to="2026-11")["campaigns"]] == ["Север"]
    assert [c["name"] for c in desk.report("campaigns", desk.admin, to="2026-11")["campaigns"]] == ["Север", "Юг"]
    with pytest.raises(Forbidden):
        desk.report("campaigns", desk.manager, to="2026-11")


@pytest.mark.parametrize("utm, campaign_id", [
    ({"campaign": " 6F1C0B5E-0000-4000-8000-000000000001 "}, "6f1c0b5e-0000-4000-8000-000000000001"),
    ({"utm_campaign": "6f1c0b5e-0000-4000-8000-000000000001"}, "6f1c0b5e-0000-4000-8000-000000000001"),
    ({"utm_campaign": "black-friday"}, None),
    ({}, None),
    (None, None),
])
def test_a_touchpoint_names_a_campaign_by_its_id_in_its_utm_tags(utm, campaign_id):
    assert domain.campaign_of(utm) == campaign_id


def test_campaigns_survive_a_rebuild_from_the_owners_exports(desk):
    snapshot, events = story(desk)
    desk.apply(desk.people(), events)
    live = desk.report("campaigns", from_="2026-11", to="2026-11")

    exports = {kind: [] for _, kind in rebuild.EXPORTS}
    for event_type, payload in events:
        if event_type.startswith("campaign_"):
            exports["campaigns"].append(payload["campaign"])
        elif event_type == "touchpoint_recorded":
            exports["touchpoints"].append({**payload, "created_at": payload["occurred_at"]})
        elif event_type == "client_created":
            exports["clients"].append(payload["client"])
    deals = {}
    for event_type, payload in events:
        if event_type.startswith("deal_"):
            deals[payload["deal"]["id"]] = dict(payload["deal"], history=[])
    exports["deals"] = list(deals.values())

    def fetch(service, kind, cursor, limit):
        return {"items": exports.get(kind, []), "next_cursor": None, "total": len(exports.get(kind, []))}

    desk.uow.session.commit()
    summary = rebuild.rebuild(desk.uow.engine, fetch, lambda service: None)

    assert summary["records"]["campaigns"] == 1
    assert desk.report("campaigns", from_="2026-11", to="2026-11") == live
