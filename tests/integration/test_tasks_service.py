"""The tasks service on the real bus with the clients and deals services, each with its own PostgreSQL
database: events become tasks and notices, and two replicas checking deadlines record one penalty per task."""

import uuid
from datetime import UTC, datetime

import eventlet
import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import create_engine, text

from clients.service import ClientsService
from crm_common.schemas import iso
from crm_common.testing.fixtures import poll
from deals.service import DealsService
from tasks.service import TasksService

STAGES = [
    {"name": "Новая", "kind": "open", "max_days": 0.00001},  # stuck within a second
    {"name": "Переговоры", "kind": "open"},
    {"name": "Успех", "kind": "won"},
    {"name": "Отказ", "kind": "lost"},
]


@pytest.fixture
def head():
    return {"id": str(uuid.uuid4()), "role": "head", "branch_id": str(uuid.uuid4())}


@pytest.fixture
def manager(head):
    return {"id": str(uuid.uuid4()), "role": "manager", "branch_id": head["branch_id"]}


def announce_user(config, user: dict, name: str) -> None:
    """What the gateway publishes when a user is created."""
    now = iso(datetime.now(UTC))
    event_dispatcher(config)("gateway", "user_created", {
        "event_id": str(uuid.uuid4()), "occurred_at": now, "branch_id": user["branch_id"], "actor_id": None,
        "user": {"id": user["id"], "email": f"{user['id'][:8]}@example.ru", "name": name, "role": user["role"],
                 "branch_id": user["branch_id"], "active": True, "created_at": now, "updated_at": now},
    })


@pytest.fixture
def crm(container_factory, config, rpc_proxy):
    config["CRM"]["stuck_check_interval_s"] = 0.2
    config["CRM"]["task_check_interval_s"] = 0.2
    for service in (ClientsService, DealsService, TasksService):
        container_factory(service, config).start()
    return rpc_proxy("clients"), rpc_proxy("deals"), rpc_proxy("tasks")


def test_a_new_deal_sets_off_its_automation_and_the_deals_owner_gets_the_task(crm, head, manager, config):
    clients, deals, tasks = crm
    template = tasks.create_template(head, {"name": "Первый звонок", "process": "Продажа", "instruction": "Позвоните.",
                                            "checklist": ["Представиться", "Договориться о встрече"], "due_in_hours": 4})
    pipeline = deals.create_pipeline(head, {"name": "Опт", "stages": STAGES[1:]})
    tasks.create_automation(head, {"event": "deal_created", "template_id": template["id"], "assign_to": "owner",
                                   "pipeline_id": pipeline["id"]})
    client = clients.create_client(manager, {"kind": "company", "name": "ООО Берёза"})
    deal = deals.create_deal(manager, {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Поставка",
                                       "amount": "10.00", "currency": "RUB"})

    made = poll(lambda: tasks.list_tasks(manager, {"deal_id": deal["id"]})["items"], message="the automation's task")
    assert len(made) == 1
    task = made[0]
    assert task["assignee_id"] == manager["id"] and task["author_id"] is None
    assert (task["client_id"], task["template_id"]) == (client["id"], template["id"])
    assert [step["text"] for step in task["checklist"]] == ["Представиться", "Договориться о встрече"]
    timeline = poll(lambda: [e for e in clients.get_timeline(manager, client["id"])["items"] if e["kind"] == "task"],
                    message="the task on the client's timeline")
    assert timeline[0]["ref_id"] == task["id"] and timeline[0]["type"] == "task_created"


def test_a_stuck_deal_gives_its_owner_a_task_and_tells_the_branchs_head(crm, head, manager, config):
    clients, deals, tasks = crm
    announce_user(config, head, "Ирина Главная")
    pipeline = deals.create_pipeline(head, {"name": "Розница", "stages": STAGES})
    client = clients.create_client(manager, {"kind": "person", "name": "Ольга"})
    deal = deals.create_deal(manager, {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Заказ",
                                       "amount": "5.00", "currency": "RUB"})

    notices = poll(lambda: tasks.list_notifications(head, {"unread": "true"})["items"], message="the head's notice")
    assert [(n["kind"], n["ref_type"], n["ref_id"]) for n in notices] == [("deal_stuck", "deal", deal["id"])]
    made = poll(lambda: tasks.list_tasks(manager, {"deal_id": deal["id"]})["items"], message="the owner's task")
    assert len(made) == 1 and made[0]["assignee_id"] == manager["id"] and "Новая" in made[0]["description"]
    read = tasks.read_notification(head, notices[0]["id"])
    assert read["read_at"] and tasks.list_notifications(head, {"unread": "true"})["items"] == []


def test_two_replicas_checking_deadlines_at_once_record_exactly_one_penalty_per_task(
    container_factory, config, rpc_proxy, migrated_databases, head
):
    config["CRM"]["task_check_interval_s"] = 3600  # only the checks the test runs
    config["CRM"]["db_pool_size"] = 4
    replicas = [container_factory(TasksService, config) for _ in range(2)]
    for replica in replicas:
        replica.start()
    tasks = rpc_proxy("tasks")
    engine = create_engine(migrated_databases["tasks"])
    with engine.begin() as conn:  # 1,200 tasks whose deadline has just passed: more than two batches
        made = list(conn.scalars(text(
            "INSERT INTO tasks (id, branch_id, title, status, assignee_id, author_id, checklist, due_at, created_at, "
            "updated_at, version) SELECT gen_random_uuid()::text, :branch, 'Задача ' || n, 'open', :head, :head, "
            "'[]'::jsonb, now() - interval '1 minute', now(), now(), 1 FROM generate_series(1, 1200) n RETURNING id"),
            {"branch": head["branch_id"], "head": head["id"]}))

    callers = [rpc_proxy("tasks") for _ in range(6)]
    pool = eventlet.GreenPool(6)
    answers = list(pool.imap(lambda proxy: proxy.check_overdue_tasks(), callers))

    assert sum(answer["overdue"] for answer in answers) == len(made)
    with engine.connect() as conn:
        penalties = conn.execute(text("SELECT count(*), count(DISTINCT task_id) FROM penalties WHERE task_id = ANY(:ids)"),
                                 {"ids": made}).one()
        events = conn.execute(text(
            "SELECT event_type, count(*) FROM outbox WHERE coalesce(payload->'task'->>'id', "
            "payload->'penalty'->>'task_id') = ANY(:ids) AND event_type IN ('task_overdue', 'penalty_recorded') "
            "GROUP BY event_type"), {"ids": made}).all()
        overdue = conn.scalar(text("SELECT count(*) FROM tasks WHERE id = ANY(:ids) AND overdue_at IS NOT NULL"),
                              {"ids": made})
    engine.dispose()
    assert tuple(penalties) == (len(made), len(made)) and overdue == len(made)
    assert dict(events) == {"task_overdue": len(made), "penalty_recorded": len(made)}
    assert tasks.check_overdue_tasks()["overdue"] == 0
