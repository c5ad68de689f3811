"""Bulk loading into PostgreSQL: COPY in chunks, secondary indexes built once at the end, then VACUUM ANALYZE."""

from __future__ import annotations

import io
import json
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import psycopg2

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_days: dict[int, str] = {}


def ts(epoch: float) -> str:
    """A UTC timestamp in COPY's text format, to the second (formatting ~10 million of them is the seed's hot loop)."""
    day, second = divmod(int(epoch), 86400)
    date = _days.get(day)
    if date is None:
        date = _days[day] = datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d")
    return f"{date} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}+00"


def cell(value) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value).translate(_ESCAPES)


def line(values: Iterable) -> str:
    return "\t".join(cell(value) for value in values) + "\n"


class BulkLoader:
    """COPY into some tables with their secondary indexes dropped meanwhile, over several connections.

    Building an index once over the loaded rows is several times faster than maintaining it row by row
    (the trigram GIN index above all); the indexes come back exactly as the migrations defined them
    (pg_get_indexdef). Foreign-key triggers are off for the loading sessions: the generator writes only
    rows whose references exist, and checking millions of references one by one would double the time.
    Chunks go to ``connections`` COPY threads (psycopg2 releases the GIL while it sends), so PostgreSQL
    backends store chunks on every core while Python generates the next ones; the indexes are built in
    parallel the same way.
    """

    def __init__(self, url: str, tables: Sequence[str], connections: int = 2):
        self.url = url
        self.tables = list(tables)
        self.connections = connections
        self.timings: dict[str, float] = {}
        self.rows: dict[str, int] = {}
        self._chunks: queue.Queue = queue.Queue(maxsize=2 * connections)
        self._errors: list[BaseException] = []

    def __enter__(self) -> BulkLoader:
        admin = psycopg2.connect(self.url)
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute(
                    """
                    SELECT i.relname, pg_get_indexdef(i.oid)
                    FROM pg_index x
                    JOIN pg_class i ON i.oid = x.indexrelid
                    JOIN pg_class t ON t.oid = x.indrelid
                    WHERE t.relname = ANY(%s)
                      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
                    """,
                    (self.tables,),
                )
                found = cur.fetchall()
                for name, _ in found:
                    cur.execute(f'DROP INDEX "{name}"')
                self.indexes = [definition for _, definition in found]
        finally:
            admin.close()
        self.conns = [self._connect() for _ in range(self.connections)]
        self._started = time.perf_counter()
        self._copiers = [threading.Thread(target=self._copy_chunks, args=(c,), daemon=True) for c in self.conns]
        for copier in self._copiers:
            copier.start()
        return self

    def _connect(self):
        conn = psycopg2.connect(self.url)
        with conn.cursor() as cur:
            cur.execute("SET session_replication_role = replica")
            cur.execute("SET maintenance_work_mem = '512MB'")
        return conn

    def copy(self, table: str, columns: Sequence[str], lines: list[str]) -> None:
        """Queue ``lines`` (from ``line()``) for COPY into ``table``."""
        if self._errors:
            raise self._errors[0]
        self._chunks.put((table, columns, "".join(lines)))
        self.rows[table] = self.rows.get(table, 0) + len(lines)

    def _copy_chunks(self, conn) -> None:
        with conn.cursor() as cur:
            while (chunk := self._chunks.get()) is not None:
                table, columns, text = chunk
                if self._errors:
                    continue  # drain, so the producer is never blocked on a failed load
                try:
                    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO(text), size=1 << 20)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the producer's thread
                    self._errors.append(exc)

    def __exit__(self, exc_type, exc, tb) -> None:
        for _ in self._copiers:
            self._chunks.put(None)
        for copier in self._copiers:
            copier.join()
        failed = exc_type is not None or bool(self._errors)
        for conn in self.conns:
            conn.rollback() if failed else conn.commit()
        self.timings["copy_s"] = round(time.perf_counter() - self._started, 1)
        started = time.perf_counter()
        # the indexes come back even after a failure: the tables must look as the migrations left them
        builders = [
            threading.Thread(target=self._build, args=(conn, self.indexes[i::len(self.conns)]))
            for i, conn in enumerate(self.conns)
        ]
        for builder in builders:
            builder.start()
        for builder in builders:
            builder.join()
        for conn in self.conns:
            conn.close()
        self.timings["indexes_s"] = round(time.perf_counter() - started, 1)
        if self._errors and exc_type is None:
            raise self._errors[0]
        if failed:
            return
        started = time.perf_counter()
        vacuum_analyze(self.url, self.tables)
        self.timings["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)

    def _build(self, conn, definitions: list[str]) -> None:
        conn.autocommit = True
        with conn.cursor() as cur:
            for definition in definitions:
                try:
                    cur.execute(definition)
                except psycopg2.Error as exc:
                    self._errors.append(exc)


def vacuum_analyze(url: str, tables: Sequence[str]) -> None:
    """Statistics for the planner, and the visibility map a long-running database would have."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for table in tables:
                cur.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        conn.close()
