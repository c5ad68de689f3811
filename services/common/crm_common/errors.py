"""Error classes shared by every service and the gateway.

A service raises a specific error (``ClientNotFound``); on the wire it travels as the shared
category it derives from (``NotFound``), so the gateway turns it into the documented HTTP shape
without importing any service. Each error carries ``(message, fields, details)``:
``fields`` maps a field name to a list of messages, ``details`` holds extra members of the
error body such as ``existing_id``.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from nameko.exceptions import deserialize_to_instance


class CrmError(Exception):
    code = "error"
    status = 500

    def __init__(self, message: str = "", fields: dict | None = None, details: dict | str | None = None):
        if isinstance(details, str):  # rebuilt from the wire, where details travel as JSON
            details = json.loads(details)
        self.message = message or self.__class__.__doc__ or self.code
        self.fields = fields or {}
        self.details = details or {}
        # nameko turns every non-string argument into a string: details go as JSON to keep their types
        super().__init__(self.message, self.fields, json.dumps(self.details))

    def __str__(self) -> str:
        if self.fields:
            return f"{self.message}: {self.fields}"
        return self.message

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        body.update(self.details)
        return {"error": body}


@deserialize_to_instance
class BadRequest(CrmError):
    """The request is malformed."""

    code = "bad_request"
    status = 400


@deserialize_to_instance
class Unauthorized(CrmError):
    """Authentication is missing, invalid or expired."""

    code = "unauthorized"
    status = 401


@deserialize_to_instance
class Forbidden(CrmError):
    """The caller's role may not do this."""

    code = "forbidden"
    status = 403


@deserialize_to_instance
class NotFound(CrmError):
    """No such record."""

    code = "not_found"
    status = 404


@deserialize_to_instance
class Conflict(CrmError):
    """The request conflicts with the current state."""

    code = "conflict"
    status = 409


@deserialize_to_instance
class DuplicateClient(Conflict):
    """A client with this phone or email already exists in the branch."""

    code = "duplicate_client"


@deserialize_to_instance
class VersionConflict(Conflict):
    """The record changed since the version given in If-Match."""

    code = "version_conflict"

    @classmethod
    def check(cls, record: str, current: int, expected: int | None) -> None:
        """The If-Match rule: ``expected`` (None when the caller sent none) must be the record's version."""
        if expected is not None and current != expected:
            raise cls(f"the {record} changed since you read it", details={"current_version": current})


@deserialize_to_instance
class ChecklistIncomplete(Conflict):
    """A task is completed only when every step of its checklist is done."""

    code = "checklist_incomplete"


@deserialize_to_instance
class PayloadTooLarge(CrmError):
    """The request body is too large."""

    code = "payload_too_large"
    status = 413


@deserialize_to_instance
class ValidationError(CrmError):
    """Some fields are invalid."""

    code = "validation_error"
    status = 422


@deserialize_to_instance
class RateLimited(CrmError):
    """Too many requests."""

    code = "rate_limited"
    status = 429


@deserialize_to_instance
class Unavailable(CrmError):
    """A service behind the gateway does not answer in time."""

    code = "unavailable"
    status = 503


T = TypeVar("T")


def require(record: T | None, error: type[NotFound] = NotFound) -> T:
    """The record found, or ``error``: a record the caller may not see is as missing as one that is not
    there (``require(repo.get_deal(session, caller, deal_id), DealNotFound)``)."""
    if record is None:
        raise error()
    return record


WIRE_CLASSES: tuple[type[CrmError], ...] = (
    DuplicateClient,
    VersionConflict,
    ChecklistIncomplete,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    ValidationError,
    RateLimited,
    Unavailable,
)


def wire_class(exc: CrmError) -> type[CrmError]:
    """The shared class an error travels as: the most specific shared ancestor."""
    for cls in WIRE_CLASSES:
        if isinstance(exc, cls):
            return cls
    return CrmError


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow's nested messages into ``{"phones.0": ["..."]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema" and prefix:
                name = prefix
            elif key == "_schema":
                name = "body"
            flat.update(flatten_messages(value, name))
    elif isinstance(messages, (list, tuple)):
        if all(isinstance(m, str) for m in messages):
            flat.setdefault(prefix or "body", []).extend(messages)
        else:
            for index, value in enumerate(messages):
                flat.update(flatten_messages(value, f"{prefix}.{index}" if prefix else str(index)))
    else:
        flat.setdefault(prefix or "body", []).append(str(messages))
    return flat
