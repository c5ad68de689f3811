"""The reports service on the real bus and PostgreSQL: every event handler, duplicates and events out of
order; catching up after being stopped; events published before it ever started; and a rebuild from the
owning services that answers exactly as the model built live."""

import copy
import uuid

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from clients.service import ClientsService
from crm_common.caller import Caller
from crm_common.config import Settings
from crm_common.errors import NotFound
from crm_common.testing.fixtures import create_vhost, delete_vhost, poll, vhost_uri
from deals.service import DealsService
from reports.models import ProcessedEvent
from reports.rebuild import rebuild
from reports.service import ReportsService
from tests.unit.reports.conftest import Desk, at

STAGES = [
    {"name": "Новая", "kind": "open"},
    {"name": "Переговоры", "kind": "open"},
    {"name": "Успех", "kind": "won"},
    {"name": "Отказ", "kind": "lost"},
]


class Events(Desk):
    """The unit tests' desk, publishing its events on the bus instead of applying them."""

    def __init__(self, config, branch_id):
        super().__init__(None)
        self.dispatch = event_dispatcher(config)
        self.head = Caller(self.head.id, "head", branch_id)
        self.manager = Caller(self.manager.id, "manager", branch_id)
        self.other = Caller(self.other.id, "manager", branch_id)
        self.branch_id = branch_id

    def event(self, event_type, payload, when, actor=None):
        for value in payload.values():
            if isinstance(value, dict) and "branch_id" in value and value["branch_id"] != self.branch_id:
                value["branch_id"] = self.branch_id
        return super().event(event_type, {"branch_id": self.branch_id, **payload}, when, actor)

    def publish(self, *event_lists):
        from crm_common.events import EVENT_SOURCES

        for events in event_lists:
            for event_type, payload in events if isinstance(events, list) else [events]:
                self.dispatch(EVENT_SOURCES[event_type], event_type, payload)


@pytest.fixture
def reports(container_factory, config):
    container = container_factory(ReportsService, config)
    container.start()
    return container


@pytest.fixture
def head():
    return {"id": str(uuid.uuid4()), "role": "head", "branch_id": str(uuid.uuid4())}


def report_of(rpc_proxy, caller):
    proxy = rpc_proxy("reports")

    def get(name, **query):
        query = {("from" if k == "from_" else k): v for k, v in query.items()}
        return getattr(proxy, name)(caller, query)

    return get


def test_every_handler_applies_each_event_once_even_when_it_is_delivered_twice(reports, config, rpc_proxy, head):
    desk = Events(config, head["branch_id"])
    pipeline, events = desk.pipeline()
    client = desk.client(at(2), "yandex", tags=["vip"])
    client_id = client[1]["client"]["id"]
    deal = desk.deal(pipeline, client_id=client_id, amount="900.00")
    events += [client] + deal.create(at(3)) + deal.move("Переговоры", at(4)) + deal.move("Успех", at(6))
    interaction = {"id": str(uuid.uuid4()), "client_id": client_id, "branch_id": head["branch_id"], "type": "call",
                   "direction": "out", "text": None, "occurred_at": "2026-11-05T10:00:00Z", "duration_s": 30,
                   "script_id": None, "author_id": desk.manager.id, "created_at": "2026-11-05T10:00:00Z"}
    events.append(desk.event("interaction_logged", {"client_id": client_id, "owner_id": desk.manager.id,
                                                    "interaction": interaction}, at(5)))
    events.append(desk.event("touchpoint_recorded", {
        "client_id": client_id, "touchpoint_id": str(uuid.uuid4()), "channel": "web_form", "source": "yandex",
        "created": False, "owner_id": None, "utm": {}}, at(2)))
    user = {"id": desk.manager.id, "email": "anna@crm.test", "name": "Анна", "role": "manager",
            "branch_id": head["branch_id"], "active": True, "created_at": "2026-11-01T00:00:00Z",
            "updated_at": "2026-11-01T00:00:00Z"}
    events.append(desk.event("user_created", {"user": user}, at(1)))
    events.append(desk.event("branch_created", {"branch": {"id": head["branch_id"], "name": "Юг", "code": "S1",
                                                           "created_at": "2026-11-01T00:00:00Z"}}, at(1)))
    fine = {"id": str(uuid.uuid4()), "user_id": desk.manager.id, "task_id": str(uuid.uuid4()),
            "branch_id": head["branch_id"], "amount": "300.00", "currency": "RUB", "reason": "просрочка",
            "month": "2026-11", "status": "active", "waived_at": None, "waive_reason": None,
            "created_at": "2026-11-05T10:00:00Z"}
    events.append(desk.event("penalty_recorded", {"penalty": fine}, at(5)))
    desk.publish(events, events)  # every event twice
    get = report_of(rpc_proxy, head)

    def settled():
        managers = get("managers", month="2026-11")["managers"]
        anna = next((m for m in managers if m["user_id"] == desk.manager.id), None)
        return anna if anna and anna["name"] == "Анна" and anna["penalties"] and anna["calls"] and anna["deals_won"] else None

    def touched():
        return [c for c in get("channels", to="2026-11")["channels"] if c["source"] == "yandex" and c["touchpoints"]]

    anna = poll(settled, timeout=20, message="every event applied")
    poll(touched, timeout=20, message="the touchpoint applied")
    assert (anna["calls"], anna["penalties"], anna["deals_won"], anna["deals_moved"]) == (1, 1, 1, 2)
    funnel = {s["name"]: s for s in get("funnel", pipeline_id=pipeline["id"], to="2026-11")["stages"]}
    assert (funnel["Новая"]["entered"], funnel["Новая"]["moved_on"], funnel["Успех"]["entered"]) == (1, 1, 1)
    [line] = [c for c in get("channels", to="2026-11")["channels"] if c["source"] == "yandex"]
    assert (line["touchpoints"], line["new_clients"], line["revenue"]) == (1, 1, "900.00")
    assert get("plan_report", month="2026-11")["branches"][0]["name"] == "Юг"
    engine = create_engine(Settings.from_config(config).database_url_for("reports"))
    with Session(engine) as session:
        ids = [payload["event_id"] for _, payload in events]
        handled = session.scalar(select(func.count()).select_from(ProcessedEvent).where(ProcessedEvent.event_id.in_(ids)))
    engine.dispose()
    assert handled == len(events)


def test_a_deal_won_before_its_deal_created_is_not_lost(reports, config, rpc_proxy, head):
    desk = Events(config, head["branch_id"])
    pipeline, events = desk.pipeline()
    deal = desk.deal(pipeline, amount="250.00")
    created, won = deal.create(at(3)), deal.move("Успех", at(5))
    get = report_of(rpc_proxy, head)
    desk.publish(events, won)

    poll(lambda: get("plan_report", month="2026-11")["branches"][0]["fact"] == "250.00", timeout=15,
         message="the win")
    assert get("funnel", pipeline_id=pipeline["id"], to="2026-11")["stages"][0]["entered"] == 1

    desk.publish(created)
    poll(lambda: get("funnel", pipeline_id=pipeline["id"], to="2026-11")["stages"][0]["median_days"] == 2.0,
         timeout=15, message="the deal's creation filling in its first stage")
    assert get("plan_report", month="2026-11")["branches"][0]["fact"] == "250.00"


def test_a_broken_event_among_many_applied_together_costs_only_itself(reports, config, rpc_proxy, head):
    desk = Events(config, head["branch_id"])
    clients = [desk.client(at(2), "radio") for _ in range(40)]
    broken = desk.client(at(2), "radio")
    del broken[1]["client"]["created_at"]  # the projection cannot place it in a month
    desk.publish(clients[:20], broken, clients[20:])
    get = report_of(rpc_proxy, head)

    poll(lambda: get("client_base", to="2026-11")["months"][-1]["new"] == 40, timeout=20,
         message="every good client counted")
    engine = create_engine(Settings.from_config(config).database_url_for("reports"))
    with Session(engine) as session:
        handled = set(session.scalars(select(ProcessedEvent.event_id).where(
            ProcessedEvent.event_id.in_([payload["event_id"] for _, payload in clients + [broken]]))))
    engine.dispose()
    assert broken[1]["event_id"] not in handled and len(handled) == 40


@pytest.fixture
def sales(container_factory, config, rpc_proxy):
    for service in (ClientsService, DealsService):
        container_factory(service, config).start()
    return rpc_proxy("clients"), rpc_proxy("deals")


def won_amount(get):
    branches = get("plan_report")["branches"]
    return branches[0]["fact"] if branches else None


def test_reports_stopped_while_deals_are_won_catch_up_when_they_start_again(container_factory, config, sales,
                                                                             rpc_proxy, head):
    clients, deals = sales
    reports = container_factory(ReportsService, config)
    reports.start()
    get = report_of(rpc_proxy, head)
    pipeline = deals.create_pipeline(head, {"name": "Опт", "stages": STAGES})
    client = clients.create_client(head, {"kind": "person", "name": "Олег", "source": "avito"})
    deal = deals.create_deal(head, {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Заказ",
                                    "amount": "100.00", "currency": "RUB"})
    def entered():
        try:
            return get("funnel", pipeline_id=pipeline["id"])["stages"][0]["entered"] == 1
        except NotFound:  # the pipeline's event is not applied yet
            return False

    poll(entered, timeout=15, message="the deal in the funnel")

    reports.stop()
    deals.move_deal(head, deal["id"], {"stage_id": pipeline["stages"][2]["id"]})
    clients.create_client(head, {"kind": "person", "name": "Нина", "source": "avito"})

    container_factory(ReportsService, config).start()
    poll(lambda: won_amount(get) == "100.00", timeout=20, message="the win made while reports was stopped")
    assert get("client_base")["months"][-1]["new"] == 2
    [line] = get("channels")["channels"]
    assert (line["source"], line["new_clients"], line["deals_won"]) == ("avito", 2, 1)


def test_events_published_before_reports_ever_started_are_counted(container_factory, config, run_id, rpc_proxy, head):
    """A fresh install: migrate declares every consumer's queues, so reports finds what happened before it."""
    from crm_common.queues import declare_consumer_queues

    vhost = f"crm-test-{run_id}-fresh-{uuid.uuid4().hex[:6]}"
    create_vhost(vhost)
    try:
        fresh = copy.deepcopy(config)
        fresh["AMQP_URI"] = vhost_uri(vhost)
        assert declare_consumer_queues(fresh) > 0
        for service in (ClientsService, DealsService):
            container_factory(service, fresh).start()
        from nameko.standalone.rpc import ClusterRpcProxy

        with ClusterRpcProxy(fresh, timeout=10) as rpc:
            pipeline = rpc.deals.create_pipeline(head, {"name": "Опт", "stages": STAGES})
            client = rpc.clients.create_client(head, {"kind": "company", "name": "ООО Ранние", "source": "radio"})
            deal = rpc.deals.create_deal(head, {"client_id": client["id"], "pipeline_id": pipeline["id"],
                                                "title": "Первая", "amount": "10.00", "currency": "RUB"})
            rpc.deals.move_deal(head, deal["id"], {"stage_id": pipeline["stages"][2]["id"]})
            container_factory(ReportsService, fresh).start()

            def counted():
                return rpc.reports.channels(head, {})["channels"]

            poll(lambda: [c for c in counted() if c["source"] == "radio" and c["deals_won"] == 1], timeout=20,
                 message="the events from before reports started")
            assert rpc.reports.client_base(head, {})["months"][-1]["new"] == 1
    finally:
        delete_vhost(vhost)


def test_a_rebuild_from_the_owning_services_gives_the_reports_built_live(container_factory, config, sales,
                                                                         rpc_proxy, head):
    clients, deals = sales
    reports = container_factory(ReportsService, config)
    reports.start()
    get = report_of(rpc_proxy, head)
    pipeline = deals.create_pipeline(head, {"name": "Розница", "stages": STAGES})
    stage = {s["name"]: s["id"] for s in pipeline["stages"]}
    script = deals.create_script(head, {"title": "Звонок", "body": "Здравствуйте"})
    for index in range(6):
        client = clients.create_client(head, {"kind": "person", "name": f"Клиент {index}",
                                              "source": ("yandex", "avito", None)[index % 3],
                                              "tags": ["vip"] if index % 2 else []})
        clients.log_interaction(head, client["id"], {"type": ("call", "meeting")[index % 2], "script_id": script["id"]})
        deal = deals.create_deal(head, {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Сделка",
                                        "amount": f"{100 * (index + 1)}.00", "currency": ("RUB", "USD")[index % 4 == 3]})
        deals.move_deal(head, deal["id"], {"stage_id": stage["Переговоры"]})
        if index % 3 == 0:
            deals.move_deal(head, deal["id"], {"stage_id": stage["Успех"]})
        elif index % 3 == 1:
            deals.move_deal(head, deal["id"], {"stage_id": stage["Отказ"], "lost_reason": "Дорого"})
        else:
            deals.move_deal(head, deal["id"], {"stage_id": stage["Новая"]})
        if index == 1:
            clients.archive_client(head, client["id"])  # its deal was lost: nothing open
    clients.record_touchpoint(head, {"channel": "web_form", "phone": "+79160000001", "utm": {"utm_source": "yandex"}})
    rpc_proxy("reports").set_spend(head, "yandex", {"month": _month(), "amount": "50.00", "currency": "RUB"})
    names = ("client_base", "funnel", "plan_report", "channels", "managers", "scripts")
    queries = {"funnel": {"pipeline_id": pipeline["id"]}}

    def live():
        return {name: get(name, **queries.get(name, {})) for name in names}

    def applied():
        try:
            now = live()
        except NotFound:  # the pipeline's event is not applied yet
            return False
        return (sum(s["entered"] for s in now["funnel"]["stages"]) == 6 + 6 + 2 + 2 + 2
                and now["channels"]["channels"] and now["scripts"]["scripts"] and now["scripts"]["scripts"][0]["uses"] == 6)

    poll(applied, timeout=60, message="every event applied live")
    before = live()

    settings = Settings.from_config(config)
    engine = create_engine(settings.database_url_for("reports"))
    skipped = {}

    def unavailable(service):
        return None if service in ("clients", "deals") else "not running in this test"

    proxies = {}  # one per service, made and used by the rebuild's one reader thread

    def fetch(service, kind, cursor, limit):
        if service not in proxies:
            proxies[service] = rpc_proxy(service, timeout=30)
        return proxies[service].export(kind, cursor, limit)

    class Seen:
        def skipped(self, service, kinds, reason):
            skipped[service] = kinds

        def started(self, *args): ...
        def advanced(self, *args): ...
        def finished(self, *args): ...
        def writing(self): ...

    try:
        summary = rebuild(engine, fetch, unavailable, Seen(), page_size=3)
    finally:
        engine.dispose()

    assert skipped == {"gateway": ["branches", "users"], "tasks": ["tasks", "penalties"]}
    assert summary["records"]["deals"] >= 6 and summary["records"]["clients"] >= 7
    assert live() == before


def _month():
    from crm_common.clock import utcnow

    return utcnow().strftime("%Y-%m")
