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


def test_a_stage_re_timed_while_a_deal_enters_it_re_times_that_deal_too(services, rpc_proxy, head, config,
                                                                        monkeypatch):
    """A pipeline change waits for a deal moving into one of its stages (PostgreSQL row locks), so it sees
    that deal: here a real move is held half-way, after it read the stage's old limit."""
    from datetime import timedelta

    import eventlet
    from eventlet.event import Event
    from sqlalchemy import create_engine, select, text
    from sqlalchemy.orm import Session

    from crm_common.config import Settings
    from deals import repository as repo
    from deals.models import Deal

    clients, deals = services
    pipeline = deals.create_pipeline(head, {"name": "Замки", "stages": STAGES})
    first, second = pipeline["stages"][0], pipeline["stages"][1]
    client = clients.create_client(head, {"kind": "person", "name": "Гонка"})
    deal = deals.create_deal(head, {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Гонка",
                                    "amount": "1.00", "currency": "RUB"})
    deals.move_deal(head, deal["id"], {"stage_id": second["id"]})

    inside, go_on = Event(), Event()
    real_last_visit = repo.last_visit

    def held_last_visit(session, deal_id):  # the move has its locks and the target stage by now
        if deal_id == deal["id"] and not inside.ready():
            inside.send()
            go_on.wait()
        return real_last_visit(session, deal_id)

    monkeypatch.setattr(repo, "last_visit", held_last_visit)
    move = eventlet.spawn(rpc_proxy("deals").move_deal, head, deal["id"], {"stage_id": first["id"]})
    with eventlet.Timeout(10):
        inside.wait()
    retimed = [{k: v for k, v in stage.items() if k != "position"} for stage in pipeline["stages"]]
    retimed[0]["max_days"] = 5
    change = eventlet.spawn(rpc_proxy("deals").update_pipeline, head, pipeline["id"], {"stages": retimed})
    engine = create_engine(Settings.from_config(config).database_url_for("deals"))
    try:
        with engine.connect() as watcher:
            poll(lambda: watcher.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )).scalar(), message="the pipeline change to wait for the move")
    finally:
        go_on.send()
    moved = move.wait()
    assert change.wait()["stages"][0]["max_days"] == 5
    with Session(engine) as session:
        entered, due = session.execute(
            select(Deal.stage_entered_at, Deal.stage_due_at).where(Deal.id == deal["id"])).one()
    engine.dispose()
    assert moved["stage_id"] == first["id"]
    assert abs(due - (entered + timedelta(days=5))) < timedelta(seconds=1), "the move's deal got the new limit"


def test_moves_queue_behind_a_waiting_pipeline_change_instead_of_starving_it(config):
    """Why the pipeline lock is an advisory lock: a shared request arriving after a waiting exclusive one
    waits its turn, so a steady stream of stage moves cannot keep a pipeline change waiting for ever."""
    import eventlet
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from crm_common.config import Settings
    from crm_common.db import create_engine_for
    from deals import repository as repo

    engine = create_engine_for(Settings.from_config(config).database_url_for("deals"))
    pipeline_id = str(uuid.uuid4())
    moving, changing, next_move = Session(engine), Session(engine), Session(engine)

    def waiting() -> int:
        with engine.connect() as watcher:
            return watcher.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                                        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                                        )).scalar()

    try:
        repo.lock_pipeline(moving, pipeline_id)
        change = eventlet.spawn(repo.lock_pipeline, changing, pipeline_id, exclusive=True)
        poll(lambda: waiting() == 1, message="the change to wait for the move in progress")
        later_move = eventlet.spawn(repo.lock_pipeline, next_move, pipeline_id)
        poll(lambda: waiting() == 2, message="the next move to queue behind the change")
        moving.commit()
        change.wait()
        assert not later_move.dead, "the change goes first"
        changing.commit()
        later_move.wait()
    finally:
        for session in (moving, changing, next_move):
            session.close()
        engine.dispose()


def test_a_deal_opened_while_the_archive_waits_for_the_deals_answer_stops_the_archive(
    services, rpc_proxy, head, monkeypatch
):
    """The clients service counts the client's deal openings before it asks the deals service; a deal
    created after the deals service answered, and handled before the archive commits, shows in that count."""
    from crm_common.errors import Conflict
    from deals import commands as deals_commands

    clients, deals = services
    racer, watcher = rpc_proxy("deals"), rpc_proxy("clients")
    pipeline = deals.create_pipeline(head, {"name": "Архив", "stages": STAGES})
    client = clients.create_client(head, {"kind": "person", "name": "Почти в архиве"})
    real_open_deals = deals_commands.open_deals_of_client

    def answer_then_open_a_deal(session, client_id):
        answer = real_open_deals(session, client_id)  # none yet
        racer.create_deal(head, {"client_id": client_id, "pipeline_id": pipeline["id"], "title": "Успели",
                                 "amount": "1.00", "currency": "RUB"})
        poll(lambda: any(e["type"] == "deal_created" for e in watcher.get_timeline(head, client_id)["items"]),
             message="the new deal's event to reach the clients service")
        return answer

    monkeypatch.setattr(deals_commands, "open_deals_of_client", answer_then_open_a_deal)
    with pytest.raises(Conflict) as error:
        clients.archive_client(head, client["id"])

    assert "a deal was opened" in error.value.message
    assert clients.get_client(head, client["id"])["archived"] is False


def test_an_operator_runs_the_stuck_check_over_rpc_and_learns_how_many_deals_it_raised(container_factory, config,
                                                                                        rpc_proxy, head):
    config["CRM"]["stuck_check_interval_s"] = 3600  # only the check the test runs
    for service in (ClientsService, DealsService):
        container_factory(service, config).start()
    clients, deals = rpc_proxy("clients"), rpc_proxy("deals")
    pipeline = deals.create_pipeline(head, {"name": "Срочная", "stages": [
        {"name": "Звонок", "kind": "open", "max_days": 0.000001}, {"name": "Успех", "kind": "won"},
        {"name": "Отказ", "kind": "lost"}]})
    client = clients.create_client(head, {"kind": "person", "name": "Пётр"})
    deal = deals.create_deal(head, {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Заказ",
                                    "amount": "1.00", "currency": "RUB"})
    poll(lambda: deals.get_deal(head, deal["id"])["stuck"], message="the deal to pass its stage's limit")

    first = deals.check_stuck_deals()
    assert first["raised"] >= 1 and first["took_s"] >= 0
    assert deals.check_stuck_deals()["raised"] == 0
