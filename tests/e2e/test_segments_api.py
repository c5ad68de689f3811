"""Segments and campaigns over HTTP: counts that follow new clients and deals, visibility inside a segment, bad
input, and a campaign's touchpoints and wins in /reports/campaigns."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from crm_common.testing.fixtures import poll
from crm_common.testing.system import unique

MONTH = datetime.now(UTC).strftime("%Y-%m")
TODAY = datetime.now(UTC).date().isoformat()
STAGES = [{"name": "Заявка", "kind": "open"}, {"name": "Оплачено", "kind": "won"}, {"name": "Отказ", "kind": "lost"}]


def count(api, segment_id) -> int:
    return api.ok("GET", f"/segments/{segment_id}")["count"]


def test_a_segment_counts_new_clients_as_they_come_and_as_each_caller_may_see_them(new_branch):
    branch = new_branch(managers=2)
    head, (anna, boris) = branch.head, branch.managers
    tag = unique("seg")[:40].lower()
    segment = head.ok("POST", "/segments", {"name": "Компании VIP", "filter": {"tag": tag, "kind": "company"}})
    assert (segment["count"], segment["filter"]) == (0, {"kind": "company", "tag": tag})

    annas = anna.ok("POST", "/clients", {"kind": "company", "name": "ООО Анна", "tags": [tag]})
    anna.ok("POST", "/clients", {"kind": "person", "name": "Анна лично", "tags": [tag]})  # not a company
    boris.ok("POST", "/clients", {"kind": "company", "name": "ООО Борис", "tags": [tag]})

    assert (count(head, segment["id"]), count(anna, segment["id"]), count(boris, segment["id"])) == (2, 1, 1)
    assert [c["id"] for c in anna.ok("GET", f"/segments/{segment['id']}/clients")["items"]] == [annas["id"]]
    assert len(head.pages(f"/segments/{segment['id']}/clients", limit=1)) == 2  # the cursor of GET /clients
    listed = {s["id"]: s["count"] for s in anna.ok("GET", "/segments")["items"]}
    assert listed == {segment["id"]: 1}

    assert anna.post("/segments", {"name": "Мой", "filter": {}}).status_code == 403
    changed = head.ok("PATCH", f"/segments/{segment['id']}", {"filter": {"tag": tag}},
                      headers={"If-Match": str(segment["version"])})
    assert changed["count"] == 3


def test_a_segment_of_clients_with_an_open_deal_follows_the_deals(new_branch):
    head = new_branch(managers=0).head
    client = head.ok("POST", "/clients", {"kind": "company", "name": "ООО Сделка"})
    segment = head.ok("POST", "/segments", {"name": "Со сделкой", "filter": {"has_open_deal": True}})
    pipeline = head.ok("POST", "/pipelines", {"name": unique("Опт "), "stages": STAGES})
    won = next(s["id"] for s in pipeline["stages"] if s["kind"] == "won")
    deal = head.ok("POST", "/deals", {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Поставка",
                                      "amount": "100.00", "currency": "RUB"})

    poll(lambda: count(head, segment["id"]) == 1, timeout=15, message="the open deal counted")
    head.ok("POST", f"/deals/{deal['id']}/stage", {"stage_id": won})
    poll(lambda: count(head, segment["id"]) == 0, timeout=15, message="the won deal no longer open")


def test_a_segment_of_silent_clients_follows_their_interactions_and_merges(new_branch):
    head = new_branch(managers=0).head
    old, recent = (head.ok("POST", "/clients", {"kind": "person", "name": name}) for name in ("Давний", "Недавний"))
    never = head.ok("POST", "/clients", {"kind": "person", "name": "Молчун"})
    head.ok("POST", f"/clients/{old['id']}/interactions", {"type": "call", "occurred_at": "2025-01-10T10:00:00Z"})
    head.ok("POST", f"/clients/{recent['id']}/interactions", {"type": "meeting", "occurred_at": f"{TODAY}T00:00:00Z"})
    silent = head.ok("POST", "/segments", {"name": "Молчат", "filter": {"no_interaction_since": "2025-06-01"}})

    members = {c["id"] for c in head.ok("GET", f"/segments/{silent['id']}/clients")["items"]}
    assert (silent["count"], members) == (2, {old["id"], never["id"]})

    head.ok("POST", f"/clients/{old['id']}/merge", {"other_id": recent["id"]})  # the meeting comes along

    assert {c["id"] for c in head.ok("GET", f"/segments/{silent['id']}/clients")["items"]} == {never["id"]}
    head.ok("POST", f"/clients/{never['id']}/interactions", {"type": "note", "occurred_at": "2025-03-01T10:00:00Z"})
    assert count(head, silent["id"]) == 1  # an old note still leaves it silent since June


def test_bad_segments_and_campaigns_are_refused_naming_the_field(world):
    head = world.north.head

    def refused(path, body) -> dict:
        response = head.post(path, body)
        assert response.status_code == 422, response.text
        return response.json()["error"]["fields"]

    assert "filter.colour" in refused("/segments", {"name": "X", "filter": {"colour": "red"}})
    assert "filter.created_to" in refused("/segments", {"name": "X", "filter": {
        "created_from": "2026-12-01", "created_to": "2026-11-01"}})
    segment = head.ok("POST", "/segments", {"name": "Все", "filter": {}})
    theirs = world.south.head.ok("POST", "/segments", {"name": "Юг", "filter": {}})
    plan = {"name": "Рассылка", "channel": "email", "starts_on": "2026-12-10", "ends_on": "2026-12-01"}
    assert "ends_on" in refused("/campaigns", {**plan, "segment_id": segment["id"]})
    for segment_id in (theirs["id"], "6f1c0b5e-0000-4000-8000-000000000001"):
        assert "segment_id" in refused("/campaigns", {**plan, "ends_on": "2026-12-31", "segment_id": segment_id})
    assert head.get(f"/segments/{theirs['id']}").status_code == 404


def test_touchpoints_carrying_a_campaigns_id_count_for_it_in_the_campaign_report(new_branch):
    head = new_branch(managers=0).head
    tag = unique("promo")[:40].lower()
    head.ok("POST", "/clients", {"kind": "person", "name": "Ольга", "tags": [tag]})
    segment = head.ok("POST", "/segments", {"name": "Промо", "filter": {"tag": tag}})
    campaign = head.ok("POST", "/campaigns", {
        "name": unique("Рассылка "), "segment_id": segment["id"], "channel": "email", "starts_on": TODAY,
        "ends_on": TODAY, "budget": {"amount": "2000.00", "currency": "RUB"}, "message": "Скидка 10%"})
    assert campaign["audience"] == 1
    assert head.ok("GET", f"/campaigns/{campaign['id']}") == campaign

    answer = head.ok("POST", "/touchpoints", {"channel": "email", "email": f"{unique('lead')}@e2e.test",
                                              "utm": {"utm_source": "mail", "campaign": campaign["id"]}})
    pipeline = head.ok("POST", "/pipelines", {"name": unique("Опт "), "stages": STAGES})
    won = next(s["id"] for s in pipeline["stages"] if s["kind"] == "won")
    deal = head.ok("POST", "/deals", {"client_id": answer["client_id"], "pipeline_id": pipeline["id"],
                                      "title": "Заказ", "amount": "5000.00", "currency": "RUB"})
    head.ok("POST", f"/deals/{deal['id']}/stage", {"stage_id": won})

    def line():
        lines = head.ok("GET", f"/reports/campaigns?from={MONTH}&to={MONTH}")["campaigns"]
        found = next((x for x in lines if x["campaign_id"] == campaign["id"]), None)
        return found if found and found["deals_won"] == 1 else None

    found = poll(line, timeout=20, message="the campaign's touchpoint and win in the report")
    assert (found["audience"], found["touchpoints"], found["new_clients"]) == (1, 1, 1)
    assert (found["revenue"], found["budget"], found["roi"]) == ("5000.00", {"amount": "2000.00", "currency": "RUB"}, 1.5)
    text = head.get(f"/reports/campaigns?from={MONTH}&to={MONTH}", headers={"Accept": "text/csv"}).text
    [row] = [r for r in csv.DictReader(io.StringIO(text)) if r["campaign_id"] == campaign["id"]]
    assert (row["touchpoints"], row["revenue"], row["budget"]) == ("1", "5000.00", "2000.00")
