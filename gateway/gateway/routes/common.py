"""Small helpers shared by route modules."""

from __future__ import annotations

import re

from crm_common.errors import BadRequest
from gateway import identity

VERSION = re.compile(r"[0-9]{1,18}")


def check_named_branch(reader, body: dict) -> None:
    """A ``branch_id`` in the body must name a branch that exists (422 naming it otherwise)."""
    if body.get("branch_id") is not None:
        identity.require_branch(reader, body["branch_id"])


def owner_directory(reader, body: dict) -> dict:
    """What the services need to know of the ``owner_id`` a body names (see ``identity.directory``)."""
    return identity.directory(reader, [body.get("owner_id")])


def query_args(request) -> dict:
    """The query string as a dict (the first value of a repeated parameter)."""
    return request.args.to_dict(flat=True)


def if_match(request) -> int | None:
    """The version in ``If-Match: 3`` (quotes and W/ allowed); None when absent."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    value = raw.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not VERSION.fullmatch(value):
        raise BadRequest("invalid If-Match", fields={"If-Match": ["Must be the record's version, e.g. 3."]})
    return int(value)


def etag(record: dict) -> dict:
    return {"ETag": f'"{record["version"]}"'}
