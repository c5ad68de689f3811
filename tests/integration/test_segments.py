"""Segments and campaigns on the real bus and PostgreSQL: the clients service keeps each deal's state from the
deals service's events (duplicates and late events change nothing), and the reports service learns campaigns and
their touchpoints from the clients service's events."""

import uuid

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter

from clients.service import ClientsService
from crm_common.clock import utcnow
from crm_common.events import validate_event
from crm_common.schemas import iso
from crm_common.testing.fixtures import poll
from reports.service import ReportsService


@pytest.fixture
def clients(container_factory, config):
    container = container_factory(ClientsService, config)
    container.start()
    return container


@pytest.fixture
def head():
    return {"id": str(uuid.uuid4()), "role": "head", "branch_id": str(uuid.uuid4())}


def deal_event(event_type, head, client_id, deal_id, status, version, **extra):
    deal = {"id": deal_id, "client_id": client_id, "pipeline_id": str(uuid.uuid4()), "stage_id": str(uuid.uuid4()),
            "status": status, "title": "Поставка", "amount": "100.00", "currency": "RUB", "owner_id": head["id"],
            "branch_id": head["branch_id"], "stage_entered_at": iso(utcnow()), "stage_due_at": None, "stuck": False,
            "lost_reason": None, "closed_at": None, "created_at": iso(utcnow()), "updated_at": iso(utcnow()),
            "version": version}
    return validate_event(event_type, {"branch_id": head["branch_id"], "actor_id": head["id"], "deal": deal, **extra})


def test_has_open_deal_follows_the_deal_events_once_each_whatever_their_order(clients, config, rpc_proxy, head):
    proxy = rpc_proxy("clients")
    client = proxy.create_client(head, {"kind": "company", "name": "ООО Сделка"})
    proxy.create_client(head, {"kind": "company", "name": "ООО Без сделок"})
    with_deal = proxy.create_segment(head, {"name": "Со сделкой", "filter": {"has_open_deal": True}})
    without = proxy.create_segment(head, {"name": "Без сделок", "filter": {"has_open_deal": False, "kind": "company"}})
    assert (with_deal["count"], without["count"]) == (0, 2)

    dispatch = event_dispatcher(config)
    deal_id = str(uuid.uuid4())
    stage = {"id": str(uuid.uuid4()), "name": "Новая", "kind": "open", "position": 0}
    created = deal_event("deal_created", head, client["id"], deal_id, "open", 1, stage=stage)
    with entrypoint_waiter(clients, "handle_deal_created", timeout=10):
        dispatch("deals", "deal_created", created)
    assert proxy.get_segment(head, with_deal["id"])["count"] == 1
    assert [c["id"] for c in proxy.list_segment_clients(head, with_deal["id"], {})["items"]] == [client["id"]]

    won = deal_event("deal_won", head, client["id"], deal_id, "won", 2, stage=dict(stage, kind="won"))
    with entrypoint_waiter(clients, "handle_deal_won", timeout=10):
        dispatch("deals", "deal_won", won)
    with entrypoint_waiter(clients, "handle_deal_created", timeout=10):
        dispatch("deals", "deal_created", created)  # delivered again, and late
    assert proxy.get_segment(head, with_deal["id"])["count"] == 0
    assert proxy.get_segment(head, without["id"])["count"] == 2
    timeline = proxy.get_timeline(head, client["id"], {})["items"]
    assert [e["type"] for e in timeline if e["kind"] == "deal"] == ["deal_won", "deal_created"]  # each once


def test_the_reports_service_learns_a_campaign_and_its_touchpoints_from_the_clients_events(
        clients, container_factory, config, rpc_proxy, head):
    reports = container_factory(ReportsService, config)
    reports.start()
    proxy = rpc_proxy("clients")
    proxy.create_client(head, {"kind": "person", "name": "Анна", "tags": ["vip"]})
    segment = proxy.create_segment(head, {"name": "VIP", "filter": {"tag": "vip"}})
    today = utcnow().date()
    campaign = proxy.create_campaign(head, {
        "name": "Рассылка", "segment_id": segment["id"], "channel": "email", "starts_on": today.isoformat(),
        "ends_on": today.isoformat(), "budget": {"amount": "1000.00", "currency": "RUB"}})
    proxy.record_touchpoint(head, {"channel": "email", "email": f"{uuid.uuid4().hex[:8]}@crm.test",
                                   "utm": {"utm_campaign": campaign["id"]}}, {"managers": []})

    def line():
        lines = rpc_proxy("reports").campaigns(head, {})["campaigns"]
        return lines[0] if lines and lines[0]["touchpoints"] == 1 else None

    found = poll(line, timeout=15, message="the campaign and its touchpoint in the report")
    assert (found["campaign_id"], found["audience"], found["new_clients"]) == (campaign["id"], 1, 1)
    assert found["budget"] == {"amount": "1000.00", "currency": "RUB"}
