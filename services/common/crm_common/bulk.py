"""Writing many rows at once in the current transaction, cheaply for the driver."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Table, bindparam, insert, inspect, text
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


def insert_objects(session: Session, objects: list) -> None:
    """New ORM objects of a few tables, written in one statement on PostgreSQL (a data-modifying ``WITH`` per
    row; foreign keys are checked when the statement ends) and one INSERT per table elsewhere, tables in the
    order they first appear (parents first). For a command that writes a row or two into each of several tables:
    one round trip instead of one per table, and none of the unit of work's bookkeeping. The statement is built
    once per shape (the tables and columns of its rows), so SQLAlchemy compiles it once.

    As a flush would, it runs each mapper's ``before_insert`` listeners and sets the columns' Python defaults on
    the objects (``apply_defaults``; a database-generated integer key is left to the database). The objects stay
    out of the session: a later read in the transaction loads them from the database. A unique or foreign-key
    violation raises IntegrityError for the whole statement."""
    if not objects:
        return
    session.flush()  # whatever the session holds first: the new rows may refer to it
    tables: dict[Table, list[dict]] = {}
    for obj in objects:
        apply_defaults(session, obj)
        mapper = inspect(obj).mapper
        table = mapper.local_table
        row = {}
        for column in table.columns:
            value = getattr(obj, mapper.get_property_by_column(column).key)
            if value is None and (column is table.autoincrement_column or column.server_default is not None):
                continue  # the database's to fill
            row[column.key] = value
        tables.setdefault(table, []).append(row)
    if session.bind.dialect.name != "postgresql":
        for table, rows in tables.items():
            session.execute(insert(table), rows)
        return
    ordered = [(table, row) for table, rows in tables.items() for row in rows]
    shape = tuple((table, tuple(row)) for table, row in ordered)
    params = {f"r{index}_{key}": value for index, (_table, row) in enumerate(ordered) for key, value in row.items()}
    session.execute(_one_statement(shape), params)


_STATEMENTS: dict[tuple, object] = {}


def _one_statement(shape: tuple):
    """``WITH w0 AS (INSERT ...), w1 AS (INSERT ...) INSERT ...``, one INSERT per row: a multi-row VALUES would
    not be cached by SQLAlchemy."""
    statement = _STATEMENTS.get(shape)
    if statement is None:
        inserts = [insert(table).values({key: bindparam(f"r{index}_{key}", type_=table.c[key].type) for key in keys})
                   for index, (table, keys) in enumerate(shape)]
        *first, statement = inserts
        for index, part in enumerate(first):
            statement = statement.add_cte(part.cte(f"w{index}"))
        if len(_STATEMENTS) >= 256:
            _STATEMENTS.clear()
        _STATEMENTS[shape] = statement
    return statement


def apply_defaults(session: Session, obj) -> None:
    """What a flush does to a new object before its INSERT: the mapper's ``before_insert`` listeners run, and each
    column left empty that has a Python default gets it (again: no change)."""
    state = inspect(obj)
    mapper = state.mapper
    mapper.dispatch.before_insert(mapper, session.connection(), state)
    for column in mapper.local_table.columns:
        key = mapper.get_property_by_column(column).key
        if getattr(obj, key) is None and column.default is not None:
            setattr(obj, key, _default(column))


def _default(column):
    default = column.default
    if default.is_scalar:
        return default.arg
    if default.is_callable:
        return default.arg(None)
    # a SQL expression or sequence is the database's to fill, inside the INSERT: name the value instead
    raise TypeError(f"{column}: a default computed by the database cannot be applied before the INSERT")
