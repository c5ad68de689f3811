"""An offboarding finishes, with exact counts, when a service dies in the middle of its step.

The gateway and the clients and tasks services run in nameko containers; deals runs as a real process
(``nameko run``) started with ``CRM_TEST_HOLD_AFTER_COMMIT``, so its first batch of the saga commits and is
held before its reply, and the test kills it there with SIGKILL (as tests/integration/test_exactly_once.py).
"""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text

from clients.service import ClientsService
from crm_common.testing.fixtures import poll
from deals.service import DealsService
from tasks.service import TasksService
from tests.integration.test_deals_service import STAGES
from tests.integration.test_exactly_once import held, processes  # noqa: F401 (a fixture)
from tests.integration.test_gateway import login

PASSWORD = "saga-password-1"


def test_a_saga_whose_deals_service_is_killed_mid_step_finishes_after_it_is_back_with_every_deal_moved_once(
    container_factory, web_config, web_session, processes, migrated_databases  # noqa: F811
):
    from gateway.service import GatewayService

    web_config["CRM"].update(rpc_timeout_s=2, services="clients,deals,tasks", offboard_batch=2, offboard_poll_s=0.5,
                             offboard_lease_s=10)
    for service in (ClientsService, TasksService):
        container_factory(service, web_config).start()
    setup = container_factory(DealsService, web_config)
    setup.start()
    container_factory(GatewayService, web_config).start()
    auth = login(web_session)

    def call(method, path, body=None, headers=None, status=(200, 201)):
        response = web_session.request(method, f"/api/v1{path}", json=body, headers=headers or auth)
        assert response.status_code in ((status,) if isinstance(status, int) else status), response.text
        return response.json()

    branch = call("POST", "/branches", {"name": "Сага", "code": uuid.uuid4().hex[:10]})["id"]
    people = [call("POST", "/users", {"email": f"{uuid.uuid4().hex[:10]}@saga.test", "name": name, "password": PASSWORD,
                                      "role": "manager", "branch_id": branch}) for name in ("Уходит", "Остаётся")]
    leaving, heir = people
    token = call("POST", "/auth/login", {"email": leaving["email"], "password": PASSWORD})["access_token"]
    as_leaving = {"Authorization": f"Bearer {token}"}
    pipeline = call("POST", "/pipelines", {"name": "Опт", "stages": STAGES, "branch_id": branch})
    clients = [call("POST", "/clients", {"kind": "company", "name": f"ООО {n}"}, as_leaving) for n in range(3)]
    deals = [call("POST", "/deals", {"client_id": clients[n % 3]["id"], "pipeline_id": pipeline["id"], "title": f"№{n}",
                                     "amount": "10.00", "currency": "RUB"}, as_leaving) for n in range(5)]
    task = call("POST", "/tasks", {"title": "Позвонить", "due_at": "2099-01-01T00:00:00Z"}, as_leaving)
    setup.stop()  # from here on only the process under test serves deals

    first = processes("deals", web_config, hold=True)
    saga = call("POST", f"/users/{leaving['id']}/offboard", {"to_user_id": heir["id"]}, status=202)
    held(processes.hold_folder, "deals", "transfer_deals")  # its first batch committed, the reply not sent
    first.kill()

    waiting = poll(lambda: (lambda s: s if s["error"] else None)(call("GET", f"/offboardings/{saga['id']}")),
                   timeout=30, message="the saga to notice the deals service is gone")
    assert (waiting["status"], waiting["step"], waiting["clients"]) == ("running", "deals", 3)
    assert "deals" in waiting["error"]

    processes("deals", web_config)
    done = poll(lambda: (lambda s: s if s["status"] != "running" else None)(call("GET", f"/offboardings/{saga['id']}")),
                timeout=60, message="the saga to finish")

    assert (done["status"], done["clients"], done["deals"], done["tasks"], done["error"]) == ("done", 3, 5, 1, None)
    assert {call("GET", f"/deals/{d['id']}")["owner_id"] for d in deals} == {heir["id"]}
    assert call("GET", f"/tasks/{task['id']}")["assignee_id"] == heir["id"]
    engine = create_engine(migrated_databases["deals"])
    with engine.connect() as connection:
        told = connection.execute(text(
            "SELECT payload->'deal'->>'id' FROM outbox WHERE event_type = 'deal_updated' "
            "AND payload->'deal'->>'owner_id' = :heir"), {"heir": heir["id"]}).scalars().all()
        moved = connection.execute(text("SELECT moved, done FROM owner_transfers WHERE id = :id"),
                                   {"id": saga["id"]}).one()
    engine.dispose()
    assert sorted(told) == sorted(d["id"] for d in deals), "one deal_updated per deal: no batch ran twice"
    assert tuple(moved) == (5, True)
