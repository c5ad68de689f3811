"""The served OpenAPI document describes every route of the gateway as the API contract states it.

Besides its shape, the document must be exact: every status a route can answer is in it (checked against
what the route's code can raise, by reading it, see ``raisable``), every error member and header the server
sends is described, and the rules on input are stated.
"""

import ast
import importlib
import inspect
import re
import textwrap

import pytest

from crm_common import errors as crm_errors
from crm_common.registry import REGISTRY as REGISTRY_SPECS
from crm_common.schemas import PageQuerySchema
from gateway.openapi import build_spec, error_codes, openapi_path, operation_statuses, routes_of
from gateway.service import GatewayService

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# the document, its reader page and the dashboard page are for people, not API clients
SELF_DESCRIBING = {("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/docs"), ("GET", "/dashboard")}
ROUTES = routes_of(GatewayService)
DOCUMENTED = [(name, ep) for name, ep in ROUTES if (ep.method, ep.url) not in SELF_DESCRIBING]
SCHEMA_KEYS = {"type", "$ref", "allOf", "oneOf", "anyOf"}
SPEC = build_spec(GatewayService)


def routes_where(predicate=lambda ep: True):
    return [pytest.param(name, ep, id=f"{ep.method} {ep.url}") for name, ep in DOCUMENTED if predicate(ep)]


def operation(ep) -> dict:
    return SPEC["paths"][openapi_path(ep.url)][ep.method.lower()]


def resolve(ref: str) -> dict:
    assert ref.startswith("#/components/schemas/")
    return SPEC["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_the_document_is_openapi_3_0_with_the_error_schema_and_bearer_security():
    assert re.fullmatch(r"3\.0\.\d+", SPEC["openapi"])
    assert SPEC["info"]["title"] and SPEC["info"]["version"]
    assert "Error" in SPEC["components"]["schemas"]
    bearer = SPEC["components"]["securitySchemes"]["bearer"]
    assert {k: bearer[k] for k in ("type", "scheme", "bearerFormat")} == {"type": "http", "scheme": "bearer",
                                                                          "bearerFormat": "JWT"}
    assert SPEC["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey", "in": "header", "name": "X-Api-Key", "description": SPEC["components"]["securitySchemes"][
            "apiKey"]["description"]}


def test_the_error_schema_is_the_documented_error_shape_and_open_to_more_members():
    error = SPEC["components"]["schemas"]["ErrorBody"]

    assert {"code", "message", "fields", "existing_id", "retry_after", "open_deal_ids", "current_version",
            "request_id"} <= set(error["properties"])
    assert set(error["required"]) == {"code", "message"}
    assert "additionalProperties" not in error


def _details_keys_in_the_code() -> set[str]:
    """Every key of a ``details={...}`` an error is raised with, anywhere in the gateway and the services."""
    import gateway

    keys = set()
    for package in ("crm_common", "clients", "deals", "gateway"):
        root = importlib.import_module(package).__path__[0]
        for path in __import__("pathlib").Path(root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.keyword) and node.arg == "details" and isinstance(node.value, ast.Dict):
                    keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    assert gateway
    return keys


def test_every_member_an_error_is_raised_with_is_in_the_error_body():
    keys = _details_keys_in_the_code()

    assert {"existing_id", "open_deal_ids", "current_version", "retry_after"} <= keys
    assert keys <= set(SPEC["components"]["schemas"]["ErrorBody"]["properties"])


@pytest.mark.parametrize(("status", "codes"), sorted(error_codes().items()))
def test_each_status_has_an_error_schema_with_exactly_its_codes(status, codes):
    schema = SPEC["components"]["schemas"][f"Error{status}"]
    code = schema["properties"]["error"]["allOf"][1]["properties"]["code"]

    assert set(code["enum"]) == set(codes)


def test_every_error_class_has_its_code_under_its_status():
    for cls in crm_errors.WIRE_CLASSES:
        assert cls.code in error_codes()[cls.status]
    assert set(error_codes()[409]) == {"conflict", "duplicate_client", "version_conflict", "checklist_incomplete"}


def test_the_gateway_has_routes():
    assert len(DOCUMENTED) >= 10


def test_only_the_document_and_its_reader_page_are_left_out():
    documented = {(method.upper(), path) for path, ops in SPEC["paths"].items() for method in ops}
    missing = {(ep.method, openapi_path(ep.url)) for _, ep in ROUTES} - documented

    assert missing == SELF_DESCRIBING


@pytest.mark.parametrize(("name", "ep"), routes_where())
def test_every_route_appears_with_its_method(name, ep):
    op = operation(ep)

    assert op["operationId"] == name
    assert op["summary"]
    assert str(ep.status) in op["responses"]


def test_operation_ids_are_unique():
    ids = [op["operationId"] for ops in SPEC["paths"].values() for op in ops.values()]

    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: not e.public))
def test_every_non_public_route_needs_a_bearer_token_and_documents_401(name, ep):
    op = operation(ep)

    assert op["security"] == ([{"bearer": []}, {"apiKey": []}] if ep.scopes else [{"bearer": []}])
    assert op.get("x-api-key-scopes") == (list(ep.scopes) if ep.scopes else None)
    assert "403" in op["responses"]  # an API key without a scope the route takes
    assert op["responses"]["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error401"}
    assert op["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: e.public))
def test_a_public_route_needs_no_token(name, ep):
    assert "security" not in operation(ep)


def test_login_health_and_the_api_index_are_the_only_public_routes():
    assert {(ep.method, ep.url) for _, ep in DOCUMENTED if ep.public} == {
        ("POST", "/api/v1/auth/login"),
        ("GET", "/health"),
        ("GET", "/api/v1"),  # where the docs are: the address make run prints
    }


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: e.body is not None))
def test_a_request_body_references_its_schema_and_documents_400_and_422(name, ep):
    op = operation(ep)

    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert op["requestBody"]["required"] is True
    assert resolve(schema["$ref"])["properties"]
    assert {"400", "422"} <= set(op["responses"])


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: e.response is not None))
def test_a_response_references_its_schema(name, ep):
    schema = operation(ep)["responses"][str(ep.status)]["content"]["application/json"]["schema"]

    assert resolve(schema["$ref"])["properties"]


@pytest.mark.parametrize(("name", "ep"), routes_where())
def test_every_error_response_uses_the_error_schema_of_its_status(name, ep):
    responses = operation(ep)["responses"]

    for status, response in responses.items():
        if int(status) >= 400 and int(status) not in ep.answers:
            assert response["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/Error{status}"}
    assert {"400", "414", "431", "503"} <= set(responses)


@pytest.mark.parametrize(("name", "ep"), routes_where())
def test_every_answer_documents_the_request_id_and_an_authenticated_one_the_rate_limit_headers(name, ep):
    for status, response in operation(ep)["responses"].items():
        headers = response["headers"]
        assert headers["X-Request-Id"]["required"] is True, status
        rate_limit = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
        # another change adds these: documented optional, so the document is true before and after it
        assert (rate_limit <= set(headers)) == (not ep.public), status
        assert all("required" not in headers[h] for h in rate_limit & set(headers))


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: not e.public))
def test_429_documents_retry_after_and_503_may_carry_it(name, ep):
    responses = operation(ep)["responses"]

    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert responses["503"]["headers"]["Retry-After"] == {"$ref": "#/components/headers/Retry-After"}


@pytest.mark.parametrize(("name", "ep"), routes_where())
def test_a_route_documents_etag_exactly_when_it_sends_it(name, ep):
    success = operation(ep)["responses"][str(ep.status)]["headers"]
    sends_it = "etag(" in inspect.getsource(getattr(GatewayService, name).route_body)

    assert ("ETag" in success) == sends_it == ep.etag
    if sends_it:
        assert success["ETag"]["required"] is True


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: e.method in WRITE_METHODS and not e.public))
def test_a_write_documents_a_replayed_answer_and_409_for_a_reused_key(name, ep):
    responses = operation(ep)["responses"]

    assert "Idempotent-Replayed" in responses[str(ep.status)]["headers"]
    assert {"400", "409"} <= set(responses)


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: e.query is not None))
def test_a_route_with_query_parameters_documents_400_for_an_unknown_one(name, ep):
    assert "400" in operation(ep)["responses"]
    assert "unknown query parameter" in operation(ep)["description"]


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: "<" in e.url))
def test_a_record_id_in_the_path_is_a_uuid_and_documents_404(name, ep):
    op = operation(ep)
    for param in (p for p in op["parameters"] if isinstance(p, dict) and p.get("in") == "path"):
        assert param["schema"]["format"] == "uuid" and param["schema"]["pattern"]
    assert "404" in op["responses"]


def header_names(op) -> set[str]:
    names = set()
    for param in op.get("parameters", []):
        if "$ref" in param:
            param = SPEC["components"]["parameters"][param["$ref"].rsplit("/", 1)[1]]
        if param["in"] == "header":
            names.add(param["name"])
    return names


@pytest.mark.parametrize(("name", "ep"), routes_where())
def test_every_path_parameter_is_declared(name, ep):
    path = openapi_path(ep.url)
    declared = {p["name"] for p in operation(ep).get("parameters", []) if p.get("in") == "path"}

    assert declared == set(re.findall(r"{([a-z_]+)}", path))
    assert "<" not in path


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: e.query is not None and issubclass(e.query, PageQuerySchema)))
def test_a_list_route_documents_its_query_parameters_with_types(name, ep):
    params = {p["name"]: p for p in operation(ep)["parameters"] if p.get("in") == "query"}

    assert {"limit", "cursor"} <= set(params)
    untyped = sorted(name for name, p in params.items() if not SCHEMA_KEYS & set(p["schema"]))
    assert untyped == []


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: True))
def test_a_route_documents_if_match_exactly_when_it_reads_it(name, ep):
    headers = header_names(operation(ep))
    reads_it = "if_match(request)" in inspect.getsource(getattr(GatewayService, name).route_body)

    assert ("If-Match" in headers) == reads_it == ep.if_match


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: e.method in WRITE_METHODS and not e.public))
def test_a_write_route_documents_idempotency_key(name, ep):
    assert "Idempotency-Key" in header_names(operation(ep))


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: e.roles))
def test_a_route_limited_to_some_roles_documents_403(name, ep):
    assert "403" in operation(ep)["responses"]


def test_every_property_of_every_schema_has_a_type():
    untyped = {
        f"{schema_name}.{name}"
        for schema_name, schema in SPEC["components"]["schemas"].items()
        for name, prop in schema.get("properties", {}).items()
        if not SCHEMA_KEYS & set(prop)
    }

    assert sorted(untyped) == []


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/me", "get"),
        ("/api/v1/branches", "post"),
        ("/api/v1/branches", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users", "get"),
        ("/api/v1/users/{user_id}", "get"),
        ("/api/v1/users/{user_id}", "patch"),
        ("/api/v1/clients", "post"),
        ("/api/v1/clients", "get"),
        ("/api/v1/clients/{client_id}", "get"),
        ("/api/v1/clients/{client_id}", "patch"),
        ("/api/v1/clients/{client_id}", "delete"),
        ("/api/v1/clients/{client_id}/interactions", "post"),
        ("/api/v1/clients/{client_id}/timeline", "get"),
        ("/api/v1/touchpoints", "post"),
        ("/api/v1/tasks", "post"),
        ("/api/v1/tasks", "get"),
        ("/api/v1/tasks/{task_id}", "get"),
        ("/api/v1/tasks/{task_id}", "patch"),
        ("/api/v1/tasks/{task_id}/checklist/{index}", "post"),
        ("/api/v1/tasks/{task_id}/complete", "post"),
        ("/api/v1/tasks/{task_id}/cancel", "post"),
        ("/api/v1/penalties", "get"),
        ("/api/v1/penalties/{penalty_id}/waive", "post"),
        ("/api/v1/task-templates", "post"),
        ("/api/v1/task-templates", "get"),
        ("/api/v1/task-templates/{template_id}", "get"),
        ("/api/v1/task-templates/{template_id}", "patch"),
        ("/api/v1/automations", "post"),
        ("/api/v1/automations", "get"),
        ("/api/v1/automations/{automation_id}", "delete"),
        ("/api/v1/complaints", "post"),
        ("/api/v1/complaints", "get"),
        ("/api/v1/complaints/{complaint_id}", "patch"),
        ("/api/v1/notifications", "get"),
        ("/api/v1/notifications/{notification_id}/read", "post"),
    ],
)
def test_the_documented_identity_and_client_routes_are_in_the_document(path, method):
    assert method in SPEC["paths"][path]


@pytest.mark.parametrize(
    ("schema_name", "fields"),
    [
        (
            "Client",
            {
                "id",
                "kind",
                "name",
                "phones",
                "emails",
                "source",
                "tags",
                "custom_fields",
                "owner_id",
                "branch_id",
                "created_at",
                "updated_at",
                "version",
            },
        ),
        ("User", {"id", "email", "name", "role", "branch_id", "active"}),
        ("Token", {"access_token", "token_type", "expires_in"}),
        ("TouchpointResult", {"client_id", "created", "touchpoint_id"}),
        ("ClientPage", {"items", "next_cursor"}),
        ("Task", {"id", "title", "description", "status", "assignee_id", "author_id", "branch_id", "client_id",
                  "deal_id", "template_id", "due_at", "completed_at", "overdue", "checklist", "penalty",
                  "created_at", "version"}),
        ("Penalty", {"id", "user_id", "task_id", "branch_id", "amount", "currency", "reason", "month", "status",
                     "created_at"}),
        ("Complaint", {"id", "status", "due_at", "client_id", "deal_id", "subject", "text", "channel"}),
        ("Notification", {"id", "kind", "text", "ref_type", "ref_id", "created_at", "read_at"}),
    ],
)
def test_the_documented_response_fields_are_in_the_schemas(schema_name, fields):
    assert fields <= set(SPEC["components"]["schemas"][schema_name]["properties"])


def test_no_response_schema_exposes_a_password():
    for name, schema in SPEC["components"]["schemas"].items():
        if name.endswith("Create") or name.endswith("Update") or name == "Login":
            continue
        assert not {"password", "password_hash"} & set(schema.get("properties", {})), name


def test_the_document_is_valid_openapi_3():
    from openapi_spec_validator import validate

    from gateway.openapi import build_spec
    from gateway.service import GatewayService

    validate(build_spec(GatewayService))


# ---- every status a route can raise is in its document

# what the analysis does not follow, and why
NOT_FOLLOWED = {
    # the gateway sends only callers it authenticated: a malformed identity (400) or a head or manager
    # without a branch (403) cannot reach a service from it
    ("crm_common.caller", "Caller.load"),
}


def _service_classes() -> dict:
    from crm_common.registry import REGISTRY

    classes = [getattr(importlib.import_module(spec.entry.split(":")[0]), spec.entry.split(":")[1])
               for spec in REGISTRY if not spec.http]
    return {cls.name: cls for cls in classes}


def _crm_error(value):
    return value if inspect.isclass(value) and issubclass(value, crm_errors.CrmError) else None


def _ours(value) -> bool:
    module = getattr(value, "__module__", "") or ""
    return module.split(".")[0] in ("crm_common", "gateway", *(spec.package for spec in REGISTRY_SPECS))


def raisable(fn, owner=None, seen=None) -> set[int]:
    """The statuses of the CRM errors ``fn`` can raise (see ``raisable_classes``)."""
    return {cls.status for cls in raisable_classes(fn, owner, seen)}


def raisable_classes(fn, owner=None, seen=None) -> set[type]:
    """The CRM errors ``fn`` can raise: its own ``raise`` statements, and those of the functions it calls that can
    be named statically (module functions, methods of ``owner`` through ``self``, methods of classes, the
    services' RPC methods through ``self.<service>_rpc``), followed transitively; less what a ``try`` around
    them catches without raising again. Methods called on other objects (``caller.owner_for(...)``) are not
    followed: routes declare those statuses in ``errors=``."""
    seen = set() if seen is None else seen
    key = (getattr(fn, "__module__", ""), getattr(fn, "__qualname__", repr(fn)))
    if key in seen or key in NOT_FOLLOWED:
        return set()
    seen.add(key)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError):
        return set()
    visitor = _Raises(dict(getattr(fn, "__globals__", {})), owner, seen)
    for statement in tree.body[0].body:  # the body only: a decorator (the route's own @api) is not what it raises
        visitor.visit(statement)
    return visitor.found


class _Raises(ast.NodeVisitor):
    def __init__(self, scope, owner, seen):
        self.scope, self.owner, self.seen = scope, owner, seen
        self.found: set[type] = set()
        self.aliases: dict[str, type] = {}

    def visit_Assign(self, node):
        if isinstance(node.value, ast.Call):
            cls = _crm_error(_resolve(node.value.func, self.scope))
            if cls is not None:  # invalid = BadRequest(...); ... raise invalid
                self.aliases.update({t.id: cls for t in node.targets if isinstance(t, ast.Name)})
        self.generic_visit(node)

    def visit_Raise(self, node):
        if node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            cls = self.aliases.get(target.id) if isinstance(target, ast.Name) else None
            cls = cls or _crm_error(_resolve(target, self.scope))
            if cls is not None:
                self.found.add(cls)
        self.generic_visit(node)

    def visit_Call(self, node):
        self.found |= _called(node, self.scope, self.owner, self.seen)
        self.generic_visit(node)

    def visit_Try(self, node):
        inner = _Raises(self.scope, self.owner, self.seen)
        inner.aliases = self.aliases
        for statement in node.body:
            inner.visit(statement)
        caught = []
        for handler in node.handlers:
            reraises = any(isinstance(n, ast.Raise) and n.exc is None for n in ast.walk(handler))
            if handler.type is not None and not reraises:
                types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                caught += [t for t in (_resolve(t, self.scope) for t in types) if inspect.isclass(t)]
            for statement in handler.body:
                self.visit(statement)
        self.found |= {cls for cls in inner.found if not any(issubclass(cls, c) for c in caught)}
        for statement in node.orelse + node.finalbody:
            self.visit(statement)


def _resolve(node, scope):
    if isinstance(node, ast.Name):
        return scope.get(node.id, getattr(__import__("builtins"), node.id, None))
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, scope)
        return getattr(base, node.attr, None) if base is not None else None
    return None


def _called(call: ast.Call, scope, owner, seen) -> set[type]:
    func = call.func
    if isinstance(func, ast.Name) and func.id == "load_or_raise":
        return {_resolve(call.args[2], scope) if len(call.args) > 2 else crm_errors.ValidationError}
    # self.<dependency>.<method>(...): a service's RPC method through its proxy
    if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute)
            and isinstance(func.value.value, ast.Name) and func.value.value.id == "self" and owner is not None):
        proxy = getattr(owner, func.value.attr, None)
        service = _service_classes().get(getattr(proxy, "target_service", None))
        if service is not None and hasattr(service, func.attr):
            return raisable_classes(getattr(service, func.attr), service, seen)
        return set()
    # self.<method>(...)
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self":
        method = getattr(owner, func.attr, None) if owner is not None else None
        return raisable_classes(method, owner, seen) if inspect.isfunction(method) else set()
    target = _resolve(func, scope)
    if inspect.ismethod(target):  # a classmethod, e.g. VersionConflict.check, whose "raise cls(...)" raises its class
        if (target.__func__.__module__, target.__func__.__qualname__) in NOT_FOLLOWED:
            return set()
        cls = _crm_error(target.__self__)
        found = raisable_classes(target.__func__, target.__self__, seen)
        return found | ({cls} if cls is not None and "raise cls" in inspect.getsource(target.__func__) else set())
    if inspect.isfunction(target) and _ours(target):
        return raisable_classes(target, None, seen)
    return set()


@pytest.mark.parametrize(("name", "ep"), routes_where())
def test_every_status_a_route_can_raise_is_in_its_document(name, ep):
    route = getattr(GatewayService, name).route_body
    can_raise = raisable(route, GatewayService)

    assert can_raise - operation_statuses(ep) == set()
    assert {str(status) for status in can_raise} <= set(operation(ep)["responses"])


def test_the_analysis_finds_what_routes_raise_through_services_and_helpers():
    assert {409, 422} <= raisable(GatewayService.create_client.route_body, GatewayService)  # a duplicate, invalid input
    assert 409 in raisable(GatewayService.archive_client.route_body, GatewayService)  # open deals
    assert 409 in raisable(GatewayService.move_deal.route_body, GatewayService)  # VersionConflict.check
    assert 400 in raisable(GatewayService.list_branches.route_body, GatewayService)  # a bad cursor, through paginate
    assert 429 in raisable(GatewayService.login.route_body, GatewayService)


# ---- rules on input are stated

def schema_of(name: str) -> dict:
    return SPEC["components"]["schemas"][name]


def input_schema_names() -> set[str]:
    """Every schema a request body uses, nested ones included."""
    names: set[str] = set()
    pending = [content["schema"]["$ref"]
               for _, ep in DOCUMENTED if ep.body is not None or ep.upload is not None
               for content in operation(ep)["requestBody"]["content"].values()]
    while pending:
        name = pending.pop().rsplit("/", 1)[1]
        if name in names:
            continue
        names.add(name)
        pending += re.findall(r"'\$ref': '(#/components/schemas/[^']+)'", str(SPEC["components"]["schemas"][name]))
    return names


def test_a_body_refuses_unknown_fields_and_an_answer_may_gain_fields():
    for name, schema in SPEC["components"]["schemas"].items():
        if "properties" not in schema:
            continue
        if name in input_schema_names():
            assert schema["additionalProperties"] is False, name
        else:
            assert "additionalProperties" not in schema, name


@pytest.mark.parametrize("name", ["ClientUpdate", "DealUpdate", "PipelineUpdate", "ScriptUpdate", "UserUpdate"])
def test_an_update_needs_at_least_one_field(name):
    assert schema_of(name)["minProperties"] == 1


@pytest.mark.parametrize("name", sorted(["ClientCreate", "BranchCreate", "UserCreate", "DealCreate", "PipelineCreate",
                                         "ScriptCreate", "TouchpointCreate", "InteractionCreate", "StageInput"]))
def test_every_string_of_a_body_states_its_length_pattern_format_or_values(name):
    for field, prop in schema_of(name)["properties"].items():
        items = prop.get("items", prop)
        if items.get("type") == "string":
            assert {"pattern", "enum", "format"} & set(items), f"{name}.{field}"
            if "pattern" in items and items.get("format") != "uuid" and "example" not in items:
                assert "maxLength" in items, f"{name}.{field}"  # free text: its length


def test_ids_money_currencies_and_query_values_are_stated_exactly():
    from crm_common.schemas import MONEY_PATTERN, UUID_PATTERN

    deal = schema_of("DealCreate")["properties"]
    assert deal["client_id"]["format"] == "uuid" and deal["client_id"]["pattern"] == UUID_PATTERN
    assert deal["amount"]["pattern"] == MONEY_PATTERN
    assert "RUB" in deal["currency"]["enum"] and "XYZ" not in deal["currency"]["enum"]
    params = {p["name"]: p for p in operation(dict(ROUTES)["list_deals"])["parameters"] if p.get("in") == "query"}
    assert params["limit"]["schema"]["minimum"] == 1 and params["limit"]["schema"]["maximum"] == 200
    assert params["cursor"]["schema"]["pattern"] and params["cursor"]["schema"]["maxLength"] == 500
    assert params["stuck"]["schema"]["type"] == "boolean"
    clients = {p["name"]: p for p in operation(dict(ROUTES)["list_clients"])["parameters"] if p.get("in") == "query"}
    assert clients["created_from"]["schema"]["anyOf"] == [{"format": "date"}, {"format": "date-time"}]


def test_the_request_headers_state_the_patterns_the_gateway_enforces():
    from gateway.http import IDEMPOTENCY_KEY_PATTERN, IF_MATCH_PATTERN

    parameters = SPEC["components"]["parameters"]
    assert parameters["Idempotency-Key"]["schema"]["pattern"] == IDEMPOTENCY_KEY_PATTERN
    assert parameters["Idempotency-Key"]["schema"]["maxLength"] == 255
    assert parameters["If-Match"]["schema"]["pattern"] == IF_MATCH_PATTERN


def test_a_rule_openapi_cannot_state_is_said_in_words_on_its_field():
    assert "x-server-rule" in schema_of("ClientCreate")["properties"]["phones"]
    assert "x-server-rule" in schema_of("DealCreate")["properties"]["client_id"]
    assert "x-server-rule" in schema_of("PipelineCreate")["properties"]["stages"]


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: len(e.formats) > 1))
def test_a_report_documents_its_typed_query_its_csv_and_chart_answers_and_406(name, ep):
    op = operation(ep)
    params = {p["name"]: p for p in op["parameters"] if p.get("in") == "query"}

    assert params and all(SCHEMA_KEYS & set(p["schema"]) for p in params.values())
    assert set(op["responses"]["200"]["content"]) == {"application/json", "text/csv", "image/svg+xml"}
    assert {"403", "406", "422"} <= set(op["responses"])
