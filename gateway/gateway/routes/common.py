"""Small helpers shared by route modules."""

from __future__ import annotations

import re

from crm_common.errors import BadRequest

VERSION = re.compile(r"[0-9]{1,18}")


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
