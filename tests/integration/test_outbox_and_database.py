"""The shared plumbing against the real broker and PostgreSQL: outbox, green database access, migrations."""

import importlib
import time

import eventlet
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from kombu import Connection, Consumer, Exchange, Queue
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from clients.models import Base as ClientsBase
from clients.models import OutboxMessage
from crm_common.db import Database, create_engine_for
from crm_common.outbox import OutboxRelay
from crm_common.registry import REGISTRY, spec
from crm_common.rpc import rpc

SAMPLE_CLIENT = {
    "id": "c0000000-0000-4000-8000-000000000001", "kind": "person", "name": "Outbox", "phones": [], "emails": [],
    "source": None, "tags": [], "custom_fields": {}, "owner_id": None, "branch_id": "b1", "archived": False,
    "archived_at": None, "created_at": "2026-11-26T10:00:00Z", "updated_at": "2026-11-26T10:00:00Z", "version": 1,
}


@pytest.fixture
def clients_db(migrated_databases):
    engine = create_engine_for(migrated_databases["clients"])
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def bound_queue(config):
    """A queue bound to the clients event exchange, to count what is really published."""
    exchange = Exchange("clients.events", type="topic", durable=True)
    queue = Queue(f"outbox-test-{id(config)}", exchange=exchange, routing_key="client_created", auto_delete=True)
    with Connection(config["AMQP_URI"]) as connection:
        queue(connection.channel()).declare()
        received = []

        def drain(expected: int, timeout: float = 10.0):
            with Consumer(connection, queues=[queue], callbacks=[lambda body, msg: (received.append(body), msg.ack())],
                          accept=["json"]):
                deadline = time.monotonic() + timeout
                while len(received) < expected and time.monotonic() < deadline:
                    try:
                        connection.drain_events(timeout=0.2)
                    except TimeoutError:
                        pass
            return received

        yield drain


def write_event(session_factory, event_id: str):
    from crm_common.events import validate_event

    payload = validate_event("client_created", {"event_id": event_id, "branch_id": "b1", "client": SAMPLE_CLIENT})
    with session_factory() as session:
        session.add(OutboxMessage(event_id=event_id, event_type="client_created", payload=payload))
        session.commit()


def unpublished(session_factory, event_id: str) -> bool:
    with session_factory() as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.event_id == event_id)).one()
        return row.published_at is None


def test_an_event_written_while_the_broker_is_unreachable_is_published_once_it_is_back(
    clients_db, config, bound_queue
):
    import uuid

    event_id = str(uuid.uuid4())
    write_event(clients_db, event_id)
    broken = dict(config, AMQP_URI="amqp://guest:guest@127.0.0.1:1/")
    relay = OutboxRelay(clients_db, OutboxMessage, broken, "clients")
    relay.publisher.retry = False
    with pytest.raises(Exception):  # noqa: B017 - any connection error: the point is what stays behind
        relay.flush()
    assert unpublished(clients_db, event_id), "a failed publish leaves the event in the outbox"

    sent = OutboxRelay(clients_db, OutboxMessage, config, "clients").flush()
    assert sent >= 1 and not unpublished(clients_db, event_id)
    bodies = bound_queue(expected=sent)
    assert event_id in [body["event_id"] for body in bodies]


def test_two_relays_on_one_outbox_publish_each_event_once(clients_db, config, bound_queue):
    import uuid

    ids = [str(uuid.uuid4()) for _ in range(40)]
    for event_id in ids:
        write_event(clients_db, event_id)
    relays = [OutboxRelay(clients_db, OutboxMessage, config, "clients") for _ in range(2)]
    pool = eventlet.GreenPool(2)
    sent = sum(pool.imap(lambda relay: relay.flush(), relays))
    assert sent == len(ids)
    received = [body["event_id"] for body in bound_queue(expected=len(ids))]
    assert sorted(received) == sorted(ids)


class NoTables(DeclarativeBase):
    """No outbox: this test service must not relay the clients service's events."""


class SlowQueries:
    name = "slow_queries"

    db = Database(NoTables)

    @rpc
    def sleep_in_database(self, seconds):
        started = self.db.session.scalar(text("SELECT clock_timestamp()"))
        self.db.session.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
        finished = self.db.session.scalar(text("SELECT clock_timestamp()"))
        return [started.isoformat(), finished.isoformat()]


def test_workers_wait_on_postgresql_at_the_same_time_not_one_after_another(
    container_factory, config, rpc_proxy, migrated_databases
):
    config["CRM"]["service_database_urls"] = {"slow_queries": migrated_databases["clients"]}
    container = container_factory(SlowQueries, config)
    container.start()
    # as many workers as the test pool has connections (3 + a third overflow): more would queue for one
    workers = config["CRM"]["db_pool_size"] + config["CRM"]["db_pool_size"] // 3
    proxies = [rpc_proxy("slow_queries") for _ in range(workers)]  # a standalone proxy serves one caller at a time
    pool = eventlet.GreenPool(workers)
    spans = list(pool.imap(lambda proxy: proxy.sleep_in_database(0.5), proxies))
    latest_start = max(start for start, _ in spans)
    earliest_end = min(end for _, end in spans)
    assert latest_start < earliest_end, "every query started before the first one finished: the driver is green"


@pytest.mark.parametrize("service", [spec.name for spec in REGISTRY])
def test_the_migrations_create_exactly_the_tables_the_models_describe(migrated_databases, service):
    base = importlib.import_module(f"{spec(service).package}.models").Base
    engine = create_engine(migrated_databases[service])
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), base.metadata)
    engine.dispose()
    assert differences == []


def test_a_redelivered_event_is_recognised_and_changes_nothing(migrated_databases):
    import uuid

    from clients.models import ProcessedEvent
    from crm_common.db import WorkerDatabase

    engine = create_engine_for(migrated_databases["clients"])
    provider = Database(ClientsBase)
    provider.session_factory = sessionmaker(engine)
    event_id = str(uuid.uuid4())
    first, second = WorkerDatabase(provider), WorkerDatabase(provider)
    assert first.first_delivery(event_id, "deal_created") is True
    first.commit()
    assert second.first_delivery(event_id, "deal_created") is False
    with provider.session_factory() as session:
        count = select(func.count()).select_from(ProcessedEvent).where(ProcessedEvent.event_id == event_id)
        assert session.scalar(count) == 1
    first.close()
    second.close()
    engine.dispose()


def test_new_rows_of_several_tables_are_one_statement_on_postgresql_and_a_violation_writes_none(clients_db):
    import uuid

    from sqlalchemy import event
    from sqlalchemy.exc import IntegrityError

    from clients.models import Client, ClientContact, TimelineEntry
    from crm_common.bulk import apply_defaults, insert_objects

    def new_client(phone):
        client = Client(branch_id="b-bulk", kind="person", name="Bulk", phones=[phone], emails=[], search_text="")
        with clients_db() as session:
            apply_defaults(session, client)
        return [client, ClientContact(client_id=client.id, branch_id="b-bulk", kind="phone", value=phone, claimed=True),
                *(TimelineEntry(client_id=client.id, kind="client", type=t, occurred_at=client.created_at, data={"n": t})
                  for t in ("client_created", "note"))]

    phone = f"+7916{uuid.uuid4().int % 10**7:07d}"
    rows = new_client(phone)
    statements = []

    def count(_connection, _cursor, statement, *_args):
        statements.append(statement)

    with clients_db() as session:
        event.listen(session.get_bind(), "before_cursor_execute", count)
        try:
            insert_objects(session, rows)
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", count)
        session.commit()
    assert len(statements) == 1 and statements[0].startswith("WITH")
    with clients_db() as session:
        assert session.get(Client, rows[0].id).name_key  # the mapper's before_insert listener ran
        assert session.scalar(select(func.count()).select_from(TimelineEntry)
                              .where(TimelineEntry.client_id == rows[0].id)) == 2
        again = new_client(phone)  # the same claimed phone: the unique index refuses the whole statement
        with pytest.raises(IntegrityError):
            insert_objects(session, again)
        session.rollback()
        assert session.get(Client, again[0].id) is None
