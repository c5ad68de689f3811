"""The OpenAPI 3 document, generated from the routes' ``@api(...)`` metadata and the marshmallow contracts.

Nothing in it is written by hand per route. What an operation can answer is derived from its declaration
(docs/architecture.md, "The OpenAPI document", lists the rules):

- the statuses the ``api()`` wrapper and the HTTP layer can answer for any route of that shape
  (``wrapper_statuses``), plus the statuses the route declares in ``errors=`` for what its body raises
  (tests/contracts/test_openapi.py checks the declaration against the code);
- every error body as ``Error<status>``: the one error shape with the codes that status carries, taken
  from the error classes themselves;
- the headers the server sends (``RESPONSE_HEADERS``) on the answers that carry them, and the request
  headers it reads, with the patterns it enforces;
- the rules on input from the contract fields (``crm_common.schemas`` puts them in field metadata), with
  ``x-server-rule`` in words where OpenAPI 3.0 has no way to say it.
"""

from __future__ import annotations

import inspect
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from apispec.ext.marshmallow.common import resolve_schema_instance
from marshmallow import Schema, fields, validate

from crm_common import errors as crm_errors
from crm_common.schemas import UUID_PATTERN, AwareDateTime, Money, QueryDateTime, Scalar, StrictSchema, UpdateSchema
from gateway.http import (
    BODY_METHODS,
    IDEMPOTENCY_KEY_PATTERN,
    IF_MATCH_PATTERN,
    REQUEST_ID_PATTERN,
    WRITE_METHODS,
    ApiEntrypoint,
)

_PATH_PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")

# the error codes each status carries: every shared error class, and what the HTTP layer answers itself
# errors the gateway raises itself (never sent by a service, so not wire classes)
GATEWAY_CODES = {400: ["bad_request"], 404: ["not_found"], 405: ["method_not_allowed"], 406: ["not_acceptable"],
                 410: ["gone"], 414: ["uri_too_long"], 415: ["unsupported_media_type"], 416: ["range_not_satisfiable"],
                 429: ["export_cap", "read_cap"], 431: ["headers_too_large"]}


def error_codes() -> dict[int, list[str]]:
    codes: dict[int, list[str]] = {}
    for cls in crm_errors.WIRE_CLASSES:
        codes.setdefault(cls.status, [])
        if cls.code not in codes[cls.status]:
            codes[cls.status].append(cls.code)
    for status, extra in GATEWAY_CODES.items():
        codes.setdefault(status, []).extend(code for code in extra if code not in codes[status])
    return codes


STATUS_TEXT = {
    301: "Moved: the client was merged into another; `Location` is the same path of that one",
    400: "Bad request: malformed JSON or request, a wrong content type, an unknown or invalid query parameter, "
         "an invalid header (Idempotency-Key, If-Match)",
    401: "No, bad or expired token",
    403: "The caller's role may not do this",
    404: "No such record, or one the caller may not see",
    406: "Not acceptable: the Accept header takes none of the formats this answer comes in",
    409: "Conflict with the current state (see the code)",
    410: "Gone: the record's content was deleted when it expired (an export's file)",
    413: "The body is larger than the limit (1 MiB by default)",
    414: "The request line (method, path and query string) is longer than 8,192 bytes",
    415: "The body is not of a type this route takes (its Content-Type, or what its first bytes are)",
    416: "The range asked for is outside the content (Content-Range: bytes */<size> says its size)",
    422: "Invalid fields: `fields` names each with its messages",
    429: "Too many requests: wait Retry-After seconds (`read_cap`: too many distinct clients read within an hour)",
    431: "A header line or all the headers together are too large",
    503: "A service or database behind the gateway did not answer in time. Retrying is safe; for a write, "
         "retry with the same Idempotency-Key to get its outcome once known",
}

RESPONSE_HEADERS = {
    "X-Request-Id": {"description": "The request's id: the client's X-Request-Id if it sent a usable one, else a new "
                                    "UUID. Quote it when reporting a problem.",
                     "schema": {"type": "string"}},
    "ETag": {"description": 'The record\'s version, quoted (`"3"`): send it back in If-Match',
             "schema": {"type": "string", "pattern": '^"[0-9]+"$'}},
    "Idempotent-Replayed": {"description": "`true` when this is the stored answer to an earlier request with the "
                                           "same Idempotency-Key; nothing was done again",
                            "schema": {"type": "string", "enum": ["true"]}},
    "WWW-Authenticate": {"description": "The scheme to use: `Bearer`", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer", "minimum": 0}},
    "RateLimit-Limit": {"description": "Requests allowed per window", "schema": {"type": "integer", "minimum": 0}},
    "RateLimit-Remaining": {"description": "Requests left in the current window",
                            "schema": {"type": "integer", "minimum": 0}},
    "RateLimit-Reset": {"description": "Seconds until the window is full again",
                        "schema": {"type": "integer", "minimum": 0}},
    "Location": {"description": "Where the record is now: the same path of the client this one was merged into",
                 "schema": {"type": "string"}},
    "Accept-Ranges": {"description": "`bytes`: the content may be asked for in parts (Range)",
                      "schema": {"type": "string", "enum": ["bytes"]}},
    "Content-Range": {"description": "Which bytes of how many this is (`bytes 0-1023/48000`), or the size after a "
                                     "416 (`bytes */48000`)", "schema": {"type": "string"}},
}
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

REQUEST_HEADERS = {
    "Idempotency-Key": {
        "in": "header", "name": "Idempotency-Key", "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY_PATTERN},
        "description": "Makes the write safe to retry: the same key and request within 24 h returns the first "
                       "answer (with Idempotent-Replayed: true) and writes nothing more; the same key with another "
                       "request, or while the first is running, is 409. 1-255 visible ASCII characters, e.g. a UUID.",
    },
    "If-Match": {
        "in": "header", "name": "If-Match", "required": False,
        "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
        "description": 'The version you read (`3`, or the ETag as given: `"3"`, `W/"3"`); if the record has '
                       "changed since, 409 version_conflict with current_version.",
    },
    "X-Request-Id": {
        "in": "header", "name": "X-Request-Id", "required": False, "schema": {"type": "string"},
        "description": f"Your id for the request, echoed in the answer and the logs if it matches "
                       f"`{REQUEST_ID_PATTERN}` (1-100 visible ASCII characters); otherwise a new one is made.",
    },
}


class ErrorBodySchema(Schema):
    """The one error shape. Members other than code, message and fields come with some codes only."""

    code = fields.String(required=True, metadata={"description": "machine-readable error code"})
    message = fields.String(required=True, metadata={"description": "for people"})
    fields_ = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "messages per field: a body field (`phones.0`), a query parameter or a header"},
    )
    existing_id = fields.String(metadata={"description": "with duplicate_client: the client that exists"})
    open_deal_ids = fields.List(fields.String(), metadata={
        "description": "with conflict on archiving or moving a client: its open deals"})
    current_version = fields.Integer(metadata={"description": "with version_conflict after a stale If-Match"})
    stage_id = fields.String(metadata={"description": "with conflict on removing a stage: the stage that has deals"})
    deals = fields.Integer(metadata={"description": "with conflict on removing a stage: how many deals are in it"})
    merged_into = fields.String(metadata={"description": "with conflict on a write to a merged client: the client it was "
                                                         "merged into"})
    retry_after = fields.Integer(metadata={"description": "with rate_limited: seconds to wait (also Retry-After)"})
    running_id = fields.String(metadata={
        "description": "with conflict on starting a backup or a verification: the backup that is running or being "
                       "verified"})
    request_id = fields.String(metadata={
        "description": "with 5xx: the request's X-Request-Id; after a 503 on a write without Idempotency-Key, "
                       "repeat it with `Idempotency-Key: <request_id>` to get its outcome"
    })


class CrmConverter(OpenAPIConverter):
    """apispec's converter, stating two rules of the contract schemas that live on the schema, not a field.

    - A schema that loads input (``StrictSchema``) refuses unknown fields: ``additionalProperties: false``.
      One that describes output leaves it open: the API contract lets answers carry more fields later.
    - An update (``UpdateSchema``) needs at least one field: ``minProperties: 1``.

    And two field rules apispec leaves out: a ``Range`` that excludes its bound
    (``exclusiveMinimum``/``exclusiveMaximum``), and a nullable nested object, which apispec states as
    "any object or the nested one" (``anyOf`` with a bare ``{"type": "object"}``) where it means "null or
    the nested one".
    """

    def init_attribute_functions(self):
        super().init_attribute_functions()
        self.add_attribute_function(_dict_length_is_properties)
        self.add_attribute_function(_exclusive_range)
        self.add_attribute_function(_nullable_nested)

    def schema2jsonschema(self, schema):
        jsonschema = super().schema2jsonschema(schema)
        instance = resolve_schema_instance(schema)
        if not isinstance(instance, StrictSchema):
            jsonschema.pop("additionalProperties", None)
        if isinstance(instance, UpdateSchema):
            jsonschema["minProperties"] = 1
        return jsonschema


def _dict_length_is_properties(self, field, ret, **kwargs) -> dict:
    """apispec states a ``Length`` on a ``Dict`` as ``maxLength``, which means nothing on an object."""
    if isinstance(field, fields.Dict):
        for length, count in (("minLength", "minProperties"), ("maxLength", "maxProperties")):
            if length in ret:
                ret[count] = ret.pop(length)
    return {}


def _exclusive_range(self, field, ret, **kwargs) -> dict:
    """A ``Range(min=0, min_inclusive=False)`` is ``minimum: 0, exclusiveMinimum: true`` (OpenAPI 3.0)."""
    attributes = {}
    for validator in field.validators:
        if isinstance(validator, validate.Range):
            if validator.min is not None and not validator.min_inclusive and "minimum" in ret:
                attributes["exclusiveMinimum"] = True
            if validator.max is not None and not validator.max_inclusive and "maximum" in ret:
                attributes["exclusiveMaximum"] = True
    return attributes


def _nullable_nested(self, field, ret, **kwargs) -> dict:
    """``Nested(..., allow_none=True)``: the nested schema or null, never any other object."""
    options = ret.get("anyOf")
    if isinstance(field, fields.Nested) and options and {"type": "object", "nullable": True} in options:
        refs = [option for option in options if option != {"type": "object", "nullable": True}]
        del ret["anyOf"]
        return {"allOf": refs, "nullable": True}
    return {}


class CrmMarshmallowPlugin(MarshmallowPlugin):
    Converter = CrmConverter


def routes_of(service_cls) -> list[tuple[str, ApiEntrypoint]]:
    found = []
    for name, member in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(member, "nameko_entrypoints", ()):
            if isinstance(entrypoint, ApiEntrypoint):
                found.append((name, entrypoint))
    return sorted(found, key=lambda item: (item[1].url, item[1].method))


def openapi_path(url: str) -> str:
    return _PATH_PARAM.sub(r"{\1}", url)


def path_params(ep: ApiEntrypoint) -> list[str]:
    return _PATH_PARAM.findall(ep.url)


def is_documented(ep: ApiEntrypoint) -> bool:
    """The document and its reader page do not describe themselves."""
    return not (ep.raw and ep.response is None and not ep.summary)


def wrapper_statuses(ep: ApiEntrypoint) -> dict[int, str]:
    """What the HTTP layer and the ``api()`` wrapper can answer for a route declared like ``ep``, and why."""
    statuses = {
        400: "a malformed request (request line, headers, body framing)",
        414: "a request line too long",
        431: "headers too large",
        503: "a service, the bus or a database did not answer",
    }
    if not ep.public:
        statuses[401] = "no, bad or expired token, or an unknown, malformed or revoked API key"
        statuses[429] = "over the per-user rate limit"
        statuses[403] = (f"an API key without the scope {' or '.join(ep.scopes)}" if ep.scopes
                         else "an API key (this route takes none)")
    if ep.roles:
        statuses[403] = f"a role other than {', '.join(ep.roles)}"
    if ep.method in BODY_METHODS:
        statuses[400] = "a body that is not a JSON object, or not application/json"
        statuses[413] = "a body over the size limit"
    if getattr(ep, "upload_types", ()):
        statuses[400] = "a body cut short before its Content-Length"
        statuses[415] = "a Content-Type other than " + ", ".join(ep.upload_types) + ", or a body that is not one"
    if getattr(ep, "download_types", ()):
        statuses[206] = "a part of the content (Range)"
        statuses[416] = "a range outside the content"
    if ep.body is not None:
        statuses[422] = "invalid fields"
    if ep.upload is not None:
        statuses[400] = "not multipart/form-data, or a part missing"
        statuses[422] = "invalid fields, or a file that is not what the route takes"
    if ep.query is not None:
        statuses[400] = "an unknown or invalid query parameter"
    if ep.method in WRITE_METHODS and not ep.public:
        statuses[400] = "an invalid Idempotency-Key"
        statuses[409] = "the Idempotency-Key was used for another request, or its request is still running"
    if ep.if_match:
        statuses[400] = "an invalid If-Match"
        statuses[409] = "a stale If-Match"
    if path_params(ep):
        statuses[404] = "no such record, or not visible to the caller"
    if len(ep.formats) > 1:
        statuses[406] = f"an Accept header that takes none of {', '.join(ep.formats)}"
    return statuses


def operation_statuses(ep: ApiEntrypoint) -> set[int]:
    return {status for status in set(wrapper_statuses(ep)) | set(ep.errors) if status >= 300}


def _header_refs(names) -> dict:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _response_headers(ep: ApiEntrypoint, status: int) -> dict:
    headers = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    if not ep.public:
        headers.update(_header_refs(RATE_LIMIT_HEADERS))
    if ep.method in WRITE_METHODS and not ep.public and status < 500 and status != 409:
        headers.update(_header_refs(["Idempotent-Replayed"]))
    if status == ep.status and ep.etag:
        headers.update(_header_refs(["ETag"]))
    if status == 401:
        headers.update(_header_refs(["WWW-Authenticate"]))
    if status in (429, 503):
        headers.update(_header_refs(["Retry-After"]))
    if status == 301:
        headers.update(_header_refs(["Location"]))
    if getattr(ep, "download_types", ()) and status in (200, 206, 416):
        headers.update(_header_refs(["Accept-Ranges"] + (["Content-Range"] if status != 200 else [])))
    return headers


def _required_headers(headers: dict, status: int, ep: ApiEntrypoint) -> dict:
    """Header objects, with ``required`` on those every such answer carries."""
    required = {"X-Request-Id"} | ({"Location"} if status == 301 else set())
    if getattr(ep, "download_types", ()) and status in (200, 206, 416):
        required |= {"Accept-Ranges"} | ({"Content-Range"} if status != 200 else set())
    if status == ep.status and ep.etag:
        required.add("ETag")
    if status == 401:
        required.add("WWW-Authenticate")
    if status == 429:
        required.add("Retry-After")
    out = {}
    for name, ref in headers.items():
        out[name] = ({"required": True, "schema": RESPONSE_HEADERS[name]["schema"],
                      "description": RESPONSE_HEADERS[name]["description"]} if name in required else ref)
    return out


def _error_schemas(spec: APISpec) -> None:
    spec.components.schema("ErrorBody", schema=ErrorBodySchema)
    for status, codes in sorted(error_codes().items()):
        spec.components.schema(f"Error{status}", {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"allOf": [
                {"$ref": "#/components/schemas/ErrorBody"},
                {"type": "object", "properties": {"code": {"type": "string", "enum": codes}}},
            ]}},
        })
    spec.components.schema("Error", {
        "type": "object", "required": ["error"], "properties": {"error": {"$ref": "#/components/schemas/ErrorBody"}},
    })


def _operation(service_cls, method_name: str, ep: ApiEntrypoint) -> dict:
    operation: dict = {
        "operationId": method_name,
        "summary": ep.summary or method_name.replace("_", " "),
        "tags": [ep.tag or "system"],
        "responses": {},
    }
    doc = inspect.getdoc(getattr(service_cls, method_name)) or ""
    if ep.query is not None:
        doc += "\n\nAn unknown query parameter, or one given twice with different values, is 400."
    if doc:
        operation["description"] = doc.strip()
    params: list = [
        {"in": "path", "name": name, "required": True,
         "schema": {"type": "string", "format": "uuid", "pattern": UUID_PATTERN},
         "description": "a record's id; no such record, or one you may not see, is 404"}
        for name in path_params(ep)
    ]
    if ep.query is not None:
        params.append({"in": "query", "schema": ep.query})
    params.append("X-Request-Id")
    if ep.method in WRITE_METHODS and not ep.public:
        params.append("Idempotency-Key")
    if ep.if_match:
        params.append("If-Match")
    operation["parameters"] = params
    binary = {"type": "string", "format": "binary"}
    if getattr(ep, "upload_types", ()):
        upload = {**binary, "x-server-rule": "the bytes must be what the Content-Type says: a WAV, MP3 or Ogg file "
                                             "whose header can be read (415 otherwise)"}
        operation["requestBody"] = {"required": True, "content": {kind: {"schema": upload} for kind in ep.upload_types}}
    elif ep.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ep.body}}}
    elif ep.upload is not None:
        operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": ep.upload}}}
    elif ep.method in BODY_METHODS:
        # nothing to send; an empty object (or no body) is accepted, anything else is 400
        empty = {"type": "object", "maxProperties": 0, "additionalProperties": False}
        operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": empty}}}
    success: dict = {"description": {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}.get(ep.status, "OK"),
                     "headers": _required_headers(_response_headers(ep, ep.status), ep.status, ep)}
    if ep.response is not None:
        success["content"] = {"application/json": {"schema": ep.response}}
        for media_type in ep.formats[1:]:  # the same answer as CSV or a chart (Accept)
            success["content"][media_type] = {"schema": {"type": "string"}}
    elif ep.produces:
        success["content"] = {ep.produces: {"schema": {"type": "string"}}}
    if getattr(ep, "download_types", ()):
        success["content"] = {kind: {"schema": binary} for kind in ep.download_types}
        operation["responses"]["206"] = {
            "description": "Partial content: the bytes Content-Range names",
            "headers": _required_headers(_response_headers(ep, 206), 206, ep),
            "content": {kind: {"schema": binary} for kind in ep.download_types},
        }
    operation["responses"][str(ep.status)] = success
    for status, schema in ep.answers.items():
        operation["responses"][str(status)] = {
            "description": STATUS_TEXT.get(status, "See the body"),
            "headers": _required_headers(_response_headers(ep, status), status, ep),
            "content": {"application/json": {"schema": schema}},
        }
    reasons = wrapper_statuses(ep)
    for status in sorted(operation_statuses(ep) - set(ep.answers)):
        description = STATUS_TEXT.get(status, "Error")
        if status in reasons and status not in ep.errors and status not in (400, 401, 413):
            description = f"{description} ({reasons[status]})"
        operation["responses"][str(status)] = {
            "description": description,
            "headers": _required_headers(_response_headers(ep, status), status, ep),
            "content": {"application/json": {"schema": f"Error{status}"}},
        }
    if not ep.public:
        operation["security"] = [{"bearer": []}]
        if ep.scopes:
            # OpenAPI 3.0 gives scopes to OAuth only: the API-key scopes a route accepts are an extension
            operation["security"].append({"apiKey": []})
            operation["x-api-key-scopes"] = list(ep.scopes)
            operation["description"] = (operation.get("description", "") + "\n\nAPI keys with the scope "
                                        + " or ".join(f"`{scope}`" for scope in ep.scopes) + " may call it.").strip()
    return operation


DESCRIPTION = """The CRM's HTTP API. Every route but login, health and the index (`GET /api/v1`) needs
`Authorization: Bearer <token>`.

Every answer is JSON and carries `X-Request-Id`. Errors are `{"error": {"code", "message", "fields"?, ...}}`:
each status's codes and extra members are in its `Error<status>` schema. Besides the answers each operation
lists, any path answers 404 `not_found` when there is no such route, 405 `method_not_allowed` (with
`Allow`) for a method the path does not have, and 505 `http_version_not_supported` to a request line
that is not HTTP/1.x.

Writes accept `Idempotency-Key`: retrying a write with the same key is always safe, including after a 503
(the first outcome is returned once known). `x-server-rule` on a field states in words a rule that OpenAPI
3.0 cannot express (a record that must exist, a phone number's numbering plan); the server checks it and
answers as it says. Answers may gain fields in later versions: ignore those you do not know."""


def build_spec(service_cls, title: str = "Sales CRM API", version: str = "1.0.0") -> dict:
    marshmallow_plugin = CrmMarshmallowPlugin()
    spec = APISpec(
        title=title,
        version=version,
        openapi_version="3.0.3",
        plugins=[marshmallow_plugin],
        info={"description": DESCRIPTION},
    )
    marshmallow_plugin.converter.field_mapping.update({
        Money: ("string", None),
        QueryDateTime: ("string", None),
        AwareDateTime: ("string", "date-time"),
        Scalar: (None, None),
    })
    spec.components.security_scheme("bearer", {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A token from POST /auth/login, or an API key (`crm_...`) on routes that take one"})
    spec.components.security_scheme("apiKey", {
        "type": "apiKey", "in": "header", "name": "X-Api-Key",
        "description": "An API key (`crm_...`, POST /api-keys), on routes listing its scope in x-api-key-scopes"})
    _error_schemas(spec)
    for name, header in RESPONSE_HEADERS.items():
        spec.components.header(name, header)
    for name, parameter in REQUEST_HEADERS.items():
        spec.components.parameter(name, "header", {k: v for k, v in parameter.items() if k not in ("in", "name")})
    for method_name, ep in routes_of(service_cls):
        if not is_documented(ep):
            continue
        spec.path(path=openapi_path(ep.url), operations={ep.method.lower(): _operation(service_cls, method_name, ep)})
    return spec.to_dict()
