"""A client merged into another: the deals service moves the merged client's deals to the kept one."""

import uuid

from crm_common.events import validate_event
from deals import commands


def merged_event(kept: dict, merged_id: str) -> dict:
    client = {"id": kept["id"], "kind": "company", "name": kept["name"], "phones": [], "emails": [], "source": None,
              "tags": [], "custom_fields": {}, "owner_id": kept["owner_id"], "branch_id": kept["branch_id"],
              "archived": False, "archived_at": None, "created_at": "2026-11-27T10:00:00Z",
              "updated_at": "2026-11-27T10:00:00Z", "version": 2}
    return validate_event("client_merged", {"branch_id": kept["branch_id"], "actor_id": str(uuid.uuid4()),
                                            "client": client, "merged_id": merged_id})


def test_the_deals_of_a_merged_client_follow_it_with_one_deal_updated_each(sales):
    pipeline = sales.pipeline()
    kept, merged = sales.client(sales.manager), sales.client(sales.manager)
    moved = [sales.deal(pipeline, client=merged), sales.deal(pipeline, client=merged)]
    untouched = sales.deal(pipeline, client=kept)
    sales.uow.take_events()

    assert sales.uow.call(commands.repoint_merged_client, merged_event(kept, merged["id"])) == 2

    for deal in moved:
        stored = sales.get(deal)
        assert (stored["client_id"], stored["version"]) == (kept["id"], deal["version"] + 1)
    assert sales.get(untouched)["version"] == untouched["version"]
    events = sales.uow.take_events()
    assert [e for e, _ in events] == ["deal_updated", "deal_updated"]
    assert {p["deal"]["id"] for _, p in events} == {d["id"] for d in moved}
    assert all(p["changed"] == ["client_id"] and p["deal"]["client_id"] == kept["id"] for _, p in events)


def test_the_same_merge_told_twice_changes_nothing_the_second_time(sales):
    pipeline = sales.pipeline()
    kept, merged = sales.client(sales.manager), sales.client(sales.manager)
    deal = sales.deal(pipeline, client=merged)
    event = merged_event(kept, merged["id"])
    sales.uow.call(commands.repoint_merged_client, event)
    sales.uow.take_events()

    assert sales.uow.call(commands.repoint_merged_client, event) == 0
    # told again under a new event id (a deal made for it just before the merge): only that deal would move
    assert sales.uow.call(commands.repoint_merged_client, merged_event(kept, merged["id"])) == 0
    assert sales.uow.events == [] and sales.get(deal)["version"] == deal["version"] + 1
