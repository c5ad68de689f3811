"""Small helpers shared by route modules."""

from __future__ import annotations

import re

from crm_common.errors import BadRequest
from gateway import identity
from gateway.http import IF_MATCH_PATTERN

_IF_MATCH = re.compile(IF_MATCH_PATTERN)


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
    """The version in ``If-Match: 3`` (also ``"3"`` or ``W/"3"``, as the ETag gave it); None when absent."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    if not _IF_MATCH.fullmatch(raw):
        raise BadRequest("invalid If-Match", fields={"If-Match": ['Must be the record\'s version: 3, "3" or W/"3".']})
    return int(raw.removeprefix("W/").strip('"'))


def etag(record: dict) -> dict:
    return {"ETag": f'"{record["version"]}"'}
