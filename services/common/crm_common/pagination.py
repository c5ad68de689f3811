"""Keyset (cursor) pagination: stable under concurrent inserts, no OFFSET scans.

A list is ordered by a few columns ending with the primary key; the cursor is the opaque, base64
encoded key of the last row returned, and the next page starts strictly after it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.orm import Session

from crm_common.errors import BadRequest
from crm_common.schemas import iso


@dataclass(frozen=True)
class SortKey:
    column: Any
    descending: bool = False
    kind: str = "str"  # str | datetime | int

    def to_json(self, value):
        if value is None:
            return None
        if self.kind == "datetime":
            return iso(value)
        return value

    def from_json(self, value):
        if value is None:
            return None
        if self.kind == "datetime":
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                raise ValueError("a cursor time always has an offset")
            return parsed.astimezone(UTC)  # OverflowError at the ends of the calendar
        if self.kind == "int":
            number = int(value)
            if not -(2**63) <= number < 2**63:
                raise ValueError("out of the range of a database integer")
            return number
        return str(value)


def encode_cursor(values: Sequence) -> str:
    raw = json.dumps(list(values), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, keys: Sequence[SortKey]) -> list:
    invalid = BadRequest("invalid cursor", fields={"cursor": ["Not a cursor returned by this list."]})
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(keys):
            raise invalid
        return [key.from_json(value) for key, value in zip(keys, values)]
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise invalid from None


def _after(keys: Sequence[SortKey], values: Sequence):
    """Rows strictly after ``values`` in the order given by ``keys`` (nulls not supported in keys)."""
    clauses = []
    for i, key in enumerate(keys):
        equal_prefix = [k.column == v for k, v in zip(keys[:i], values[:i])]
        step = key.column < values[i] if key.descending else key.column > values[i]
        clauses.append(and_(*equal_prefix, step))
    return or_(*clauses)


def paginate(
    session: Session,
    query,
    keys: Sequence[SortKey],
    cursor: str | None,
    limit: int,
    dump: Callable[[Any], dict],
) -> dict:
    """Run ``query`` (a select of entities) one page at a time; returns ``{items, next_cursor}``."""
    if cursor:
        query = query.where(_after(keys, decode_cursor(cursor, keys)))
    query = query.order_by(*[k.column.desc() if k.descending else k.column.asc() for k in keys])
    rows = session.scalars(query.limit(limit + 1)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more and rows:
        last = rows[-1]
        raw = [getattr(last, k.column.key) for k in keys]
        next_cursor = encode_cursor([k.to_json(v) for k, v in zip(keys, raw)])
    return {"items": [dump(row) for row in rows], "next_cursor": next_cursor}
