"""Writing many rows at once in the current transaction, cheaply for the driver."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Table, insert, text
from sqlalchemy.orm import Session


def insert_rows(session: Session, table: Table, rows: list[dict]) -> None:
    """Rows (dicts with the same keys) into ``table`` in the session's transaction. On PostgreSQL they travel
    as one JSON document expanded by ``jsonb_populate_recordset``: an import's thousands of rows cost the
    driver one parameter instead of one per value (COPY would be cheaper still, but psycopg2 refuses it on
    green connections). Elsewhere, a multi-row INSERT. JSON values are dicts and lists, times aware datetimes."""
    if not rows:
        return
    if session.bind.dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    columns = ", ".join(f'"{column}"' for column in rows[0])
    document = json.dumps(rows, ensure_ascii=False, separators=(",", ":"), default=_json_value)
    session.execute(
        text(f"INSERT INTO {table.name} ({columns}) SELECT {columns} "
             f"FROM jsonb_populate_recordset(NULL::{table.name}, CAST(:rows AS jsonb))"),
        {"rows": document},
    )


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
