"""The deals service with the clients service on the real bus, each with its own PostgreSQL database."""

import uuid

import pytest
from nameko.testing.services import entrypoint_waiter

from clients.service import ClientsService
from crm_common.errors import ValidationError, VersionConflict
from crm_common.testing.fixtures import poll
from deals.service import DealsService
from tests.integration.recorder import EventRecorder

STAGES = [
    {"name": "Новая", "kind": "open", "max_days": 2},
    {"name": "Переговоры", "kind": "open"},
    {"name": "Успех", "kind": "won"},
    {"name": "Отказ", "kind": "lost"},
]


@pytest.fixture
def services(container_factory, config, rpc_proxy):
    config["CRM"]["stuck_check_interval_s"] = 0.2
    for service in (ClientsService, DealsService):
        container_factory(service, config).start()
    return rpc_proxy("clients"), rpc_proxy("deals")


@pytest.fixture
def head():
    return {"id": str(uuid.uuid4()), "role": "head", "branch_id": str(uuid.uuid4())}


def test_a_deal_is_only_created_for_a_client_the_clients_service_shows_the_caller(services, head):
    clients, deals = services
    pipeline = deals.create_pipeline(head, {"name": "Опт", "stages": STAGES})
    client = clients.create_client(head, {"kind": "company", "name": "ООО Берёза"})
    deal = deals.create_deal(head, {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Поставка",
                                    "amount": "100.10", "currency": "EUR"})
    assert deal["owner_id"] == client["owner_id"] == head["id"]
    stranger = {"id": str(uuid.uuid4()), "role": "head", "branch_id": str(uuid.uuid4())}
    with pytest.raises(ValidationError) as error:
        deals.create_deal(stranger, {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "X",
                                     "amount": "1.00", "currency": "EUR"})
    assert "client_id" in error.value.fields


def test_a_stage_move_publishes_where_from_where_to_and_the_time_spent(container_factory, config, services, head):
    clients, deals = services
    recorder = container_factory(EventRecorder, config)
    recorder.start()
    pipeline = deals.create_pipeline(head, {"name": "Розница", "stages": STAGES})
    client = clients.create_client(head, {"kind": "person", "name": "Ольга"})
    deal = deals.create_deal(head, {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Заказ",
                                    "amount": "5.00", "currency": "RUB"})
    with entrypoint_waiter(recorder, "handle_deal_stage_changed", timeout=10) as waiter:
        moved = deals.move_deal(head, deal["id"], {"stage_id": pipeline["stages"][1]["id"]})
    event = waiter.get()
    assert event["from_stage"]["name"] == "Новая" and event["to_stage"]["name"] == "Переговоры"
    assert event["time_in_stage_s"] >= 0 and event["deal"]["version"] == moved["version"] == 2
    with pytest.raises(VersionConflict):
        deals.move_deal(head, deal["id"], {"stage_id": pipeline["stages"][0]["id"]}, expected_version=1)


def test_the_clients_timeline_shows_deal_events_once_even_when_they_are_delivered_twice(services, head, config):
    from nameko.standalone.events import event_dispatcher

    clients, deals = services
    pipeline = deals.create_pipeline(head, {"name": "Сервис", "stages": STAGES})
    client = clients.create_client(head, {"kind": "person", "name": "Игорь"})
    deal = deals.create_deal(head, {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Ремонт",
                                    "amount": "7.00", "currency": "RUB"})

    def deal_entries():
        return [e for e in clients.get_timeline(head, client["id"])["items"] if e["kind"] == "deal"]

    created = poll(deal_entries, message="deal_created on the timeline")[0]
    assert created["type"] == "deal_created" and created["ref_id"] == deal["id"]

    snapshot = {k: v for k, v in deal.items() if k != "stage"}
    payload = {"event_id": str(uuid.uuid4()), "occurred_at": "2026-11-26T10:00:00Z", "branch_id": head["branch_id"],
               "actor_id": head["id"], "deal": snapshot, "stage": {"id": "s", "name": "Успех", "kind": "won"}}
    dispatch = event_dispatcher(config)
    dispatch("deals", "deal_won", payload)
    dispatch("deals", "deal_won", payload)
    poll(lambda: any(e["type"] == "deal_won" for e in deal_entries()), message="deal_won on the timeline")
    marker = dict(payload, event_id=str(uuid.uuid4()), occurred_at="2026-11-26T11:00:00Z")
    dispatch("deals", "deal_won", marker)
    poll(lambda: sum(e["type"] == "deal_won" for e in deal_entries()) == 2, message="the later event")
    assert sum(e["type"] == "deal_won" for e in deal_entries()) == 2, "the duplicate delivery added nothing"
