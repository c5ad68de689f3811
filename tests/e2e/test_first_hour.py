"""A new user's first hour against the running system: the address the banner prints, the README's first flow
exactly as written, a quiet start, `make demo` on top of what is there, CORS for the listed origins, logging out."""

import importlib.util
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from crm_common.config import DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD
from crm_common.testing.fixtures import poll
from crm_common.testing.system import Api, phone_number, unique

ROOT = Path(__file__).resolve().parents[2]
LISTED = "https://shop.example"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"crm_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_address_the_banner_prints_answers_with_where_the_docs_are(system):
    banner = re.search(r"CRM is running:\s+(\S+)", system.log())
    assert banner, system.log()[-2000:]
    index = requests.get(banner.group(1), timeout=10)
    assert index.status_code == 200, index.text
    assert index.json()["docs"] == "/api/v1/docs" and index.json()["openapi"] == "/api/v1/openapi.json"
    root = system.base_url.removesuffix("/api/v1")
    assert requests.get(root + index.json()["docs"], timeout=10).status_code == 200
    assert requests.get(system.base_url + "/", timeout=10).status_code == 200


def test_the_system_starts_without_deprecation_warnings(system):
    log = system.log()
    assert "DeprecationWarning" not in log and "Eventlet is deprecated" not in log
    assert "pkg_resources is deprecated" not in log


def readme_first_hour() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## The first hour"):]
    start = section.index("```sh\n") + len("```sh\n")
    return section[start:section.index("\n```", start)]


def test_the_readme_first_flow_works_as_written(system):
    script = readme_first_hour()
    assert script.startswith("CRM=http://127.0.0.1:8000/api/v1\n")
    # the same commands on the shared test system: its address, and a branch code and emails of this test's own
    code, head, manager = unique("M")[:12].upper(), f"{unique('olga')}@e2e.test", f"{unique('anna')}@e2e.test"
    script = (script.replace("http://127.0.0.1:8000/api/v1", system.base_url).replace('"MSK"', f'"{code}"')
              .replace("olga@example.ru", head).replace("anna@example.ru", manager)
              .replace("8 916 123-45-67", phone_number()).replace("ivan@example.ru", f"{unique('ivan')}@e2e.test"))
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script + '\necho "@@ $CLIENT"'], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == "204"  # the logout
    client_id = lines[-1].removeprefix("@@ ")
    anna = Api(system.base_url).login(manager, "anna-pass-1")

    def timeline_has_the_deal_and_its_move():
        types = {item["type"] for item in anna.ok("GET", f"/clients/{client_id}/timeline")["items"]}
        return {"deal_created", "deal_stage_changed"} <= types

    poll(timeline_has_the_deal_and_its_move, timeout=20, message="the deal and its stage move on the timeline")


def test_the_demo_loads_on_top_of_what_is_there_and_a_second_run_adds_nothing(system, admin):
    demo = load_script("demo")
    # what the README's first hour leaves: the branch MSK with a pipeline "Продажи" of other stages
    branch = next((b for b in admin.pages("/branches") if b["code"] == "MSK"), None) or admin.ok(
        "POST", "/branches", {"name": "Москва", "code": "MSK"})
    admin.ok("POST", "/pipelines", {"name": "Продажи", "branch_id": branch["id"], "stages": [
        {"name": "Новая заявка", "kind": "open", "max_days": 2}, {"name": "Оплачено", "kind": "won"},
        {"name": "Отказ", "kind": "lost"}]}, status=201)

    first = demo.Report()
    said = demo.seed(system.base_url, DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, clients_per_branch=3, report=first)
    assert said.startswith("demo data: created") and "already there" in said
    assert first.made["clients"] + first.found["clients"] == 6
    assert first.found["branches"] >= 1 and first.made["pipelines"] + first.found["pipelines"] == 2

    second = demo.Report()
    said = demo.seed(system.base_url, DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, clients_per_branch=3, report=second)
    assert said.startswith("demo data: created nothing; already there"), said
    assert sum(second.made.values()) == 0
    for kind in ("branches", "users", "pipelines", "scripts", "task templates", "automations", "clients",
                 "touchpoints", "plans", "channel spends", "tasks", "complaints"):
        assert second.found[kind] == first.made[kind] + first.found[kind], kind
    assert "2 branches" in said and "8 users" in said and "6 clients" in said


def test_a_demo_step_that_fails_is_named_with_what_to_do(system):
    demo = load_script("demo")
    with pytest.raises(demo.DemoStepFailed) as failed:
        demo.seed(system.base_url, DEV_ADMIN_EMAIL, "not-the-password", clients_per_branch=1)
    message = str(failed.value)
    assert "'log in as the administrator'" in message and "401" in message
    assert "CRM_ADMIN_PASSWORD" in message and "make demo" in message


# ---- CORS (CRM_CORS_ORIGINS lists https://shop.example for the e2e system)

def preflight(system, origin: str, path: str = "/touchpoints"):
    return requests.options(system.base_url + path, timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key, idempotency-key"})


def test_a_listed_origin_gets_its_preflight_answered(system):
    answer = preflight(system, LISTED)
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == LISTED
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "x-api-key"} <= allowed


def test_a_website_form_posts_a_touchpoint_from_a_listed_origin_and_may_read_the_answer(admin):
    branch = admin.ok("POST", "/branches", {"name": "Сайт", "code": unique("W")[:12]})
    admin.ok("POST", "/users", {"email": f"{unique('m')}@e2e.test", "name": "Менеджер", "password": "e2e-password-1",
                                "role": "manager", "branch_id": branch["id"]})
    key = admin.ok("POST", "/api-keys", {"name": unique("Site "), "branch_id": branch["id"],
                                        "scopes": ["touchpoints:write"]}, status=201)["key"]
    answer = requests.post(admin.base_url + "/touchpoints", timeout=10, json={
        "channel": "web_form", "name": "Ольга", "phone": phone_number(), "utm": {"utm_source": "site"}},
        headers={"Origin": LISTED, "X-Api-Key": key})
    assert answer.status_code == 201, answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == LISTED
    exposed = {h.strip() for h in answer.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Request-Id", "Location", "RateLimit-Remaining", "Retry-After", "Idempotent-Replayed"} <= exposed
    assert "Origin" in answer.headers["Vary"]


def test_an_origin_not_listed_gets_no_cors_headers(admin, system):
    assert "Access-Control-Allow-Origin" not in preflight(system, "https://evil.example").headers
    answer = admin.get("/me", headers={"Origin": "https://evil.example"})
    assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers
    assert "Access-Control-Allow-Origin" not in admin.get("/me").headers  # no Origin: no CORS


# ---- logging out

def test_logging_out_ends_the_token_in_use_and_only_it(admin):
    email = f"{unique('leaver')}@e2e.test"
    branch = admin.ok("POST", "/branches", {"name": "Выход", "code": unique("L")[:12]})
    admin.ok("POST", "/users", {"email": email, "name": "Пётр", "password": "e2e-password-1", "role": "head",
                                "branch_id": branch["id"]})
    laptop = Api(admin.base_url).login(email, "e2e-password-1")
    phone = Api(admin.base_url).login(email, "e2e-password-1")

    out = laptop.post("/auth/logout", headers={"Idempotency-Key": str(uuid.uuid4())})
    assert out.status_code == 204 and out.content == b""

    gone = laptop.get("/me")
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "unauthorized"
    assert laptop.post("/auth/logout").status_code == 401
    assert phone.ok("GET", "/me")["email"] == email  # the other session keeps working
    assert Api(admin.base_url).login(email, "e2e-password-1").ok("GET", "/me")["email"] == email
