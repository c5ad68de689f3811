"""Schemathesis against the running system: the served OpenAPI document checked by property-based requests.

Used by tests/e2e/test_openapi_conformance.py (a few examples per operation) and ``make fuzz``
(scripts/fuzz.py, many more). Both run the ``schemathesis`` command with ``--checks all`` and the settings
in tests/e2e/schemathesis.toml, loading this module as its hooks (``SCHEMATHESIS_HOOKS``):

- ``documented_input_is_accepted`` is schemathesis's ``positive_data_acceptance`` with one exception, and
  replaces it (the toml says why). A request that fits the schema may still break a rule OpenAPI 3.0
  cannot state: a record it names must exist, a phone number must be real. The document states such
  rules in words as ``x-server-rule`` on the field. A refusal (4xx) whose ``error.fields`` names only such
  fields keeps the promise the document makes; a refusal naming any other field, or none, still fails.

Operations on one record get real records made before the run (``prepare``: a branch with a head, a spare
manager, a client, a pipeline, a deal, a script), named in the toml; PATCH /users/{id} gets the spare
manager, so the run never changes the user it runs as; POST /users/{id}/offboard another one.

The document is fetched from the system and made strict before the run (``strict_copy``): every response
schema forbids members it does not list, so an undocumented member in an answer fails the run, while the
served document stays open to later additions, as the API contract promises.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from crm_common.config import REPO_ROOT

CONFIG_FILE = REPO_ROOT / "tests" / "e2e" / "schemathesis.toml"
SPEC_ENV = "CRM_FUZZ_SPEC"
PASSWORD = "fuzzing-pass-1"


@dataclass
class Fuzzing:
    """What a run needs: the records its operations work on, and a head's token for a non-admin run."""

    ids: dict[str, str]
    head_token: str


def prepare(api_base: str, admin_token: str) -> Fuzzing:
    """Make a branch of the run's own with a head, a spare manager and one record of each kind."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {admin_token}"

    def post(path: str, body: dict) -> dict:
        response = http.post(api_base + path, json=body, timeout=30)
        assert response.status_code == 201, f"POST {path} → {response.status_code} {response.text}"
        return response.json()

    tag = uuid.uuid4().hex[:8]
    branch = post("/branches", {"name": f"Fuzzing {tag}", "code": f"FZ{tag}"})
    head = post("/users", {"email": f"fuzz-head-{tag}@crm.test", "name": "Fuzzing head", "password": PASSWORD,
                           "role": "head", "branch_id": branch["id"]})
    spare = post("/users", {"email": f"fuzz-spare-{tag}@crm.test", "name": "Spare manager", "password": PASSWORD,
                            "role": "manager", "branch_id": branch["id"]})
    client = post("/clients", {"kind": "company", "name": "ООО Фаззинг", "branch_id": branch["id"],
                               "emails": [f"client-{tag}@crm.test"]})
    segment = post("/segments", {"name": "Fuzzing", "filter": {"kind": "company"}, "branch_id": branch["id"]})
    campaign = post("/campaigns", {"name": "Fuzzing", "segment_id": segment["id"], "channel": "email",
                                   "starts_on": "2026-12-01", "ends_on": "2026-12-31"})
    pipeline = post("/pipelines", {"name": "Fuzzing", "branch_id": branch["id"], "stages": [
        {"name": "New", "kind": "open", "max_days": 3}, {"name": "Won", "kind": "won"}, {"name": "Lost", "kind": "lost"}]})
    deal = post("/deals", {"client_id": client["id"], "pipeline_id": pipeline["id"], "title": "Fuzzing deal",
                           "amount": "100.00", "currency": "RUB"})
    script = post("/scripts", {"title": "Fuzzing script", "body": "Say hello.", "branch_id": branch["id"],
                               "stage_id": pipeline["stages"][0]["id"]})
    template = post("/task-templates", {"name": "Fuzzing step", "process": "Fuzzing", "instruction": "Do it.",
                                        "checklist": ["one", "two"], "due_in_hours": 24, "branch_id": branch["id"]})
    task = post("/tasks", {"title": "Fuzzing task", "assignee_id": head["id"], "checklist": ["one", "two"],
                           "client_id": client["id"], "due_at": "2099-01-01T00:00:00Z"})
    complaint = post("/complaints", {"client_id": client["id"], "subject": "Fuzzing", "text": "A complaint."})
    automation = post("/automations", {"event": "deal_won", "template_id": template["id"], "assign_to": "owner"})
    # nothing listens on port 9 (discard): its deliveries fail and are retried, calling nothing but this machine. A CRM
    # that refuses private addresses (422) gets no webhook: its {webhook_id} operations then find 404, as documented
    response = http.post(api_base + "/webhooks", json={"url": "http://127.0.0.1:9/fuzzing", "events": ["deal_won"],
                                                       "secret": f"fuzzing-secret-{tag}", "branch_id": branch["id"]},
                         timeout=30)
    assert response.status_code in (201, 422), f"POST /webhooks → {response.status_code} {response.text}"
    webhook = response.json() if response.status_code == 201 else {"id": str(uuid.uuid4())}
    key = post("/api-keys", {"name": "Fuzzing exchange", "branch_id": branch["id"], "scopes": ["telephony:write"]})
    ringing = {"call_id": f"fuzz-{tag}", "event": "ringing", "direction": "in", "from": "+79161234567", "to": "101",
               "at": "2026-11-30T10:00:00Z", "branch_id": branch["id"]}
    call = http.post(api_base + "/telephony/events", json=ringing, timeout=30).json()
    # offboarding: one done already (GET /offboardings/{id}), and a manager of its own for POST .../offboard
    leaver = post("/users", {"email": f"fuzz-leaver-{tag}@crm.test", "name": "Leaving manager", "password": PASSWORD,
                             "role": "manager", "branch_id": branch["id"]})
    response = http.post(f"{api_base}/users/{leaver['id']}/offboard", json={"to_user_id": head["id"]}, timeout=30)
    assert response.status_code == 202, f"POST /users/{{id}}/offboard → {response.status_code} {response.text}"
    offboarding = response.json()
    to_offboard = post("/users", {"email": f"fuzz-offboard-{tag}@crm.test", "name": "Manager to offboard",
                                  "password": PASSWORD, "role": "manager", "branch_id": branch["id"]})
    # the head may export, and its export is the {export_id} (the administrator sees it too)
    granted = http.patch(api_base + f"/users/{head['id']}", json={"can_export": True}, timeout=30)
    assert granted.status_code == 200, f"PATCH /users/{head['id']} → {granted.status_code} {granted.text}"
    login = requests.post(api_base + "/auth/login", json={"email": head["email"], "password": PASSWORD}, timeout=30)
    exported = requests.post(api_base + "/exports", json={"filter": {}}, timeout=30,
                             headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert exported.status_code == 202, f"POST /exports → {exported.status_code} {exported.text}"
    ids = {"branch_id": branch["id"], "user_id": spare["id"], "client_id": client["id"],
           "pipeline_id": pipeline["id"], "deal_id": deal["id"], "script_id": script["id"],
           "template_id": template["id"], "task_id": task["id"], "complaint_id": complaint["id"],
           "automation_id": automation["id"], "webhook_id": webhook["id"], "key_id": key["id"], "call_id": call["id"],
           "offboarding_id": offboarding["id"], "offboard_user_id": to_offboard["id"], "export_id": exported.json()["id"],
           "segment_id": segment["id"], "campaign_id": campaign["id"]}
    return Fuzzing(ids, login.json()["access_token"])


def strict_copy(spec: dict) -> dict:
    """The document with ``additionalProperties: false`` on every object schema an answer uses."""
    strict = copy.deepcopy(spec)
    schemas = strict["components"]["schemas"]
    inputs = set()
    for ops in strict["paths"].values():
        for op in ops.values():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            _collect_refs(body, schemas, inputs)
            for param in op.get("parameters", []):
                _collect_refs(param.get("schema", {}), schemas, inputs)
    for name, schema in schemas.items():
        if name not in inputs and "properties" in schema:
            schema["additionalProperties"] = False
    return strict


def _collect_refs(node, schemas: dict, found: set) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in found:
                found.add(name)
                _collect_refs(schemas[name], schemas, found)
        for value in node.values():
            _collect_refs(value, schemas, found)
    elif isinstance(node, list):
        for value in node:
            _collect_refs(value, schemas, found)


def run_schemathesis(base_url: str, token: str, workdir: Path, *, examples: int, ids: dict[str, str],
                     extra: list[str] | None = None, timeout: float | None = None,
                     echo: bool = False) -> subprocess.CompletedProcess:
    """Run ``schemathesis run`` with every check against ``base_url`` (the system's origin) as ``token``."""
    spec = requests.get(f"{base_url}/api/v1/openapi.json", timeout=30).json()
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / "openapi.strict.json"
    spec_path.write_text(json.dumps(strict_copy(spec), ensure_ascii=False), encoding="utf-8")
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "--no-color", "--config-file", str(CONFIG_FILE),
        "run", str(spec_path), "--url", base_url,
        # every check; positive_data_acceptance is replaced by documented_input_is_accepted (the module docstring)
        "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        # one worker: hypothesis parses lambdas' source with ast.parse, and CPython 3.11 before 3.11.8 can fail
        # that when two threads do it at once ("SystemError: AST constructor recursion depth mismatch")
        "--workers", "1",
        "--max-examples", str(examples), "--generation-deterministic",
        "--header", f"Authorization: Bearer {token}",
        "--report", "junit", "--report-dir", str(workdir / "report"),
        *(extra or []),
    ]
    env = dict(os.environ, SCHEMATHESIS_HOOKS=__name__, PYTHONPATH=os.pathsep.join(sys.path), **{SPEC_ENV: str(spec_path)})
    env.update({f"CRM_FUZZ_{name.upper()}": value for name, value in ids.items()})
    if echo:
        return subprocess.run(command, env=env, cwd=workdir, timeout=timeout, check=False)
    return subprocess.run(command, env=env, cwd=workdir, timeout=timeout, check=False, capture_output=True, text=True)


# ---- the hooks: imported by the schemathesis process only

def _register_hooks() -> None:
    import schemathesis
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    spec = json.loads(Path(os.environ[SPEC_ENV]).read_text(encoding="utf-8"))
    # recordings are bytes: sent as the octet-stream serializer sends them
    schemathesis.serializer.alias(["audio/mpeg", "audio/wav", "audio/ogg"], "application/octet-stream")

    @schemathesis.check
    def documented_input_is_accepted(ctx, response, case):
        """positive_data_acceptance, but a refusal naming only fields with an ``x-server-rule`` is kept."""
        try:
            return positive_data_acceptance(ctx, response, case)
        except AssertionError:
            if _refused_for_stated_rules(spec, case, response):
                return None
            raise


def _refused_for_stated_rules(spec: dict, case, response) -> bool:
    if not 400 <= response.status_code < 500:
        return False
    try:
        named = response.json()["error"]["fields"]
    except (ValueError, KeyError, TypeError):
        return False
    if not isinstance(named, dict) or not named:
        return False
    operation = spec["paths"][case.operation.path][case.method.lower()]
    return all(_has_stated_rule(spec, operation, field.split(".")[0]) for field in named)


def _resolve(spec: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _has_stated_rule(spec: dict, operation: dict, name: str) -> bool:
    for param in operation.get("parameters", []):
        param = _resolve(spec, param)
        if param.get("name") == name:
            return "x-server-rule" in param or "x-server-rule" in _resolve(spec, param.get("schema", {}))
    contents = operation.get("requestBody", {}).get("content", {})
    # a JSON body, or a body of bytes (a recording) whose schema states its rule
    body = next((content.get("schema") for content in contents.values()), None)
    if body is None:
        return False
    body = _resolve(spec, body)
    if name == "body":
        return "x-server-rule" in body
    return "x-server-rule" in _resolve(spec, body.get("properties", {}).get(name, {}))


if os.environ.get("SCHEMATHESIS_HOOKS") == __name__ and os.environ.get(SPEC_ENV):
    _register_hooks()
