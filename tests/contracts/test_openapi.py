"""The served OpenAPI document describes every route of the gateway as the API contract states it."""

import re

import pytest

from crm_common.schemas import PageQuerySchema
from gateway.openapi import build_spec, openapi_path, routes_of
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
    assert SPEC["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_the_error_schema_is_the_documented_error_shape():
    error = resolve(SPEC["components"]["schemas"]["Error"]["properties"]["error"]["$ref"])

    assert {"code", "message", "fields", "existing_id", "retry_after"} <= set(error["properties"])
    assert set(error["required"]) == {"code", "message"}


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

    assert op["security"] == [{"bearer": []}]
    assert op["responses"]["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: e.public))
def test_a_public_route_needs_no_token(name, ep):
    assert "security" not in operation(ep)


def test_login_and_health_are_the_only_public_routes():
    assert {(ep.method, ep.url) for _, ep in DOCUMENTED if ep.public} == {
        ("POST", "/api/v1/auth/login"),
        ("GET", "/health"),
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
def test_every_error_response_uses_the_error_schema(name, ep):
    responses = operation(ep)["responses"]

    for status, response in responses.items():
        if int(status) >= 400:
            assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "503" in responses


@pytest.mark.parametrize(("name", "ep"), routes_where())
def test_every_path_parameter_is_declared(name, ep):
    path = openapi_path(ep.url)
    declared = {p["name"] for p in operation(ep).get("parameters", []) if p["in"] == "path"}

    assert declared == set(re.findall(r"{([a-z_]+)}", path))
    assert "<" not in path


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: e.query is not None and issubclass(e.query, PageQuerySchema)))
def test_a_list_route_documents_its_query_parameters_with_types(name, ep):
    params = {p["name"]: p for p in operation(ep)["parameters"] if p["in"] == "query"}

    assert {"limit", "cursor"} <= set(params)
    untyped = sorted(name for name, p in params.items() if not SCHEMA_KEYS & set(p["schema"]))
    assert untyped == []


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: True))
def test_a_route_documents_if_match_exactly_when_it_reads_it(name, ep):
    import inspect

    from gateway.service import GatewayService

    headers = {p["name"] for p in operation(ep).get("parameters", []) if p["in"] == "header"}
    reads_it = "if_match(request)" in inspect.getsource(getattr(GatewayService, name).route_body)

    assert ("If-Match" in headers) == reads_it == ep.if_match


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: e.method in WRITE_METHODS and not e.public))
def test_a_write_route_documents_idempotency_key(name, ep):
    headers = {p["name"] for p in operation(ep)["parameters"] if p["in"] == "header"}

    assert "Idempotency-Key" in headers


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


@pytest.mark.parametrize(("name", "ep"), routes_where(lambda e: len(e.formats) > 1))
def test_a_report_documents_its_typed_query_its_csv_and_chart_answers_and_406(name, ep):
    op = operation(ep)
    params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}

    assert params and all(SCHEMA_KEYS & set(p["schema"]) for p in params.values())
    assert set(op["responses"]["200"]["content"]) == {"application/json", "text/csv", "image/svg+xml"}
    assert {"403", "406", "422"} <= set(op["responses"])
