"""Paged exports of a service's records, so a read model elsewhere can be rebuilt from the owners.

The convention every owning service follows (``crm-reports rebuild`` relies on it)::

    export(kind, cursor=None, limit=500) -> {"items": [...], "next_cursor": str | None}

``kind`` names one kind of record the service owns ("clients", "deals", ...); items are shaped like
the nested objects of the service's events (a client as ``client_created`` carries it), so a consumer
applies an exported record with the same code as the event. Records come in primary-key order, a page
at a time (keyset pagination, so records added meanwhile are neither repeated nor skipped); the first
page also carries ``total``, a count taken at that moment, for progress bars.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import func, select

from crm_common.errors import ValidationError
from crm_common.pagination import SortKey, _after, decode_cursor, encode_cursor

DEFAULT_EXPORT_LIMIT = 500
MAX_EXPORT_LIMIT = 5000


def check_export_args(kinds: Sequence[str], kind, cursor, limit) -> int:
    """Refuse an unknown kind or a limit out of range (422 naming the argument); the limit as an int."""
    if kind not in kinds:
        raise ValidationError("unknown export kind", fields={"kind": [f"One of: {', '.join(kinds)}."]})
    if cursor is not None and not isinstance(cursor, str):
        raise ValidationError("invalid cursor", fields={"cursor": ["Not a cursor returned by this export."]})
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_EXPORT_LIMIT:
        raise ValidationError("invalid limit", fields={"limit": [f"An integer from 1 to {MAX_EXPORT_LIMIT}."]})
    return limit


def export_page(
    session,
    model,
    cursor: str | None,
    limit: int,
    dump_rows: Callable[[list], list[dict]],
    where=None,
) -> dict:
    """One page of ``model`` rows in id order; ``dump_rows`` turns the page's rows into items at once
    (so it can look up related rows for the whole page in one query)."""
    keys = [SortKey(model.id)]
    query = select(model)
    if where is not None:
        query = query.where(where)
    page = {}
    if cursor:
        query = query.where(_after(keys, decode_cursor(cursor, keys)))
    else:
        count = select(func.count()).select_from(model)
        page["total"] = session.scalar(count if where is None else count.where(where))
    rows = session.scalars(query.order_by(model.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    page["items"] = dump_rows(rows)
    page["next_cursor"] = encode_cursor([rows[-1].id]) if more and rows else None
    return page
