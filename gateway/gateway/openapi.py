"""The OpenAPI 3 document, generated from the routes' metadata and their marshmallow schemas."""

from __future__ import annotations

import inspect
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from crm_common.schemas import AwareDateTime, Money, QueryDateTime
from gateway.errors import ERROR_STATUSES
from gateway.http import ApiEntrypoint

_PATH_PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "machine-readable error code"})
    message = fields.String(required=True)
    fields_ = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "messages per field (422 and some 400/409)"},
    )
    existing_id = fields.String(metadata={"description": "with duplicate_client: the client that exists"})
    retry_after = fields.Integer(metadata={"description": "with rate_limited: seconds to wait"})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


def routes_of(service_cls) -> list[tuple[str, ApiEntrypoint]]:
    found = []
    for name, member in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(member, "nameko_entrypoints", ()):
            if isinstance(entrypoint, ApiEntrypoint):
                found.append((name, entrypoint))
    return sorted(found, key=lambda item: (item[1].url, item[1].method))


def openapi_path(url: str) -> str:
    return _PATH_PARAM.sub(r"{\1}", url)


def build_spec(service_cls, title: str = "Sales CRM API", version: str = "1.0.0") -> dict:
    marshmallow_plugin = MarshmallowPlugin()
    spec = APISpec(
        title=title,
        version=version,
        openapi_version="3.0.3",
        plugins=[marshmallow_plugin],
        info={
            "description": (
                "The CRM's HTTP API. Every route but login and health needs `Authorization: Bearer <token>`. "
                "Errors are `{\"error\": {\"code\", \"message\", \"fields\"?}}`. Writes accept `Idempotency-Key`."
            )
        },
    )
    marshmallow_plugin.converter.field_mapping.update({
        Money: ("string", "decimal"),
        QueryDateTime: ("string", "date-time"),
        AwareDateTime: ("string", "date-time"),
    })
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Error", schema=ErrorSchema)
    for method_name, ep in routes_of(service_cls):
        if ep.raw and ep.response is None and not ep.summary:
            continue
        operation: dict = {
            "operationId": method_name,
            "summary": ep.summary or method_name.replace("_", " "),
            "tags": [ep.tag or "system"],
            "responses": {},
        }
        doc = inspect.getdoc(getattr(service_cls, method_name))
        if doc:
            operation["description"] = doc
        params = [
            {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAM.findall(ep.url)
        ]
        if ep.query is not None:
            params.append({"in": "query", "schema": ep.query})
        if ep.method in ("POST", "PUT", "PATCH", "DELETE") and not ep.public:
            params.append({
                "in": "header", "name": "Idempotency-Key", "required": False, "schema": {"type": "string"},
                "description": "the same key and body within 24 h returns the first response",
            })
        if ep.if_match:
            params.append({
                "in": "header", "name": "If-Match", "required": False, "schema": {"type": "string"},
                "description": "the version you read; a stale one is 409 version_conflict",
            })
        if params:
            operation["parameters"] = params
        if ep.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ep.body}}}
        success = {"description": "OK" if ep.status == 200 else "Created" if ep.status == 201 else "Accepted"}
        if ep.response is not None:
            success["content"] = {"application/json": {"schema": ep.response}}
            for media_type in ep.formats[1:]:  # the same answer as CSV or a chart (Accept)
                success["content"][media_type] = {"schema": {"type": "string"}}
        operation["responses"][str(ep.status)] = success
        statuses = set(ep.errors) | {503}
        if ep.body is not None:
            statuses |= {400, 422}
        if not ep.public:
            operation["security"] = [{"bearer": []}]
            statuses |= {401, 429}
        if ep.roles:
            statuses.add(403)
        if len(ep.formats) > 1:
            statuses.add(406)
        for status in sorted(statuses):
            operation["responses"][str(status)] = {
                "description": ERROR_STATUSES.get(status, "error"),
                "content": {"application/json": {"schema": "Error"}},
            }
        spec.path(path=openapi_path(ep.url), operations={ep.method.lower(): operation})
    return spec.to_dict()
