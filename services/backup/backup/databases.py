"""The databases themselves: consistent captures, scratch restores, row counts and content checksums,
and the swap of a restored database into place. PostgreSQL through pg_dump/pg_restore (custom format),
SQLite through its online backup API. Plain blocking code: it runs in ``crm-backup`` and in the
worker process the service starts, never inside an eventlet hub.

Every table is described by its row count and a content checksum: the sum, over its rows, of a 64-bit
hash of the row's text (PostgreSQL's ``hashtextextended``; SQLite: md5 in Python). The sum does not
depend on row order, so the same query on a restored database gives the same number exactly when it
holds the same rows. The hash is PostgreSQL's own: checksums are compared only between servers of one
major version (``server_version`` in the manifest); across versions a restore compares row counts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import ISOLATION_LEVEL_AUTOCOMMIT, ISOLATION_LEVEL_REPEATABLE_READ
from sqlalchemy.engine import URL, make_url

READ_SIZE = 1 << 20
# the text of a row must not depend on the session: the same settings at capture and after a restore
PG_SESSION = ("SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, YMD'", "SET IntervalStyle = 'postgres'",
              "SET extra_float_digits = 1", "SET bytea_output = 'hex'")


class CaptureError(Exception):
    """A database could not be captured or restored; the message is the reason an operator reads."""


@dataclass
class TableStats:
    tables: dict[str, int] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    server_version: str = ""

    def as_dict(self) -> dict:
        return {"tables": dict(self.tables), "checksums": dict(self.checksums), "server_version": self.server_version}


def engine_of(url: str) -> str:
    backend = make_url(url).get_backend_name()
    if backend not in ("postgresql", "sqlite"):
        raise CaptureError(f"cannot back up a {backend} database")
    return backend


# ---- PostgreSQL

def pg_tool(settings_bin: str, name: str) -> str:
    """The path of pg_dump / pg_restore: in CRM_BACKUP_PG_BIN if set, else on PATH."""
    found = shutil.which(name, path=settings_bin or None)
    if not found:
        where = f"in CRM_BACKUP_PG_BIN ({settings_bin})" if settings_bin else "on PATH"
        raise CaptureError(f"{name} was not found {where}: install the PostgreSQL client tools "
                           "(apt-get install postgresql-client)")
    return found


def pg_conninfo(url: str | URL, database: str | None = None) -> tuple[str, dict]:
    """A libpq conninfo string without the password, and the environment that carries it."""
    parsed = make_url(url) if isinstance(url, str) else url
    parts = {"dbname": database or parsed.database, "host": parsed.host, "port": parsed.port,
             "user": parsed.username}
    parts.update({k: v for k, v in parsed.query.items() if isinstance(v, str)})
    conninfo = " ".join(f"{k}='{str(v)}'" for k, v in parts.items() if v is not None)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return conninfo, env


def pg_connect(url: str, database: str | None = None, autocommit: bool = False):
    conninfo, _ = pg_conninfo(url, database)
    password = make_url(url).password
    conn = psycopg2.connect(conninfo, password=password) if password else psycopg2.connect(conninfo)
    if autocommit:
        conn.set_isolation_level(ISOLATION_LEVEL_AUTOCOMMIT)
    return conn


def pg_stats(cursor) -> TableStats:
    cursor.execute("SHOW server_version_num")
    stats = TableStats(server_version=f"postgresql {int(cursor.fetchone()[0]) // 10000}")
    cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    for (table,) in cursor.fetchall():
        # hashtextextended: a quarter of the CPU of md5 over the same text (2.5 million rows: ~4 s against ~9 s)
        cursor.execute(sql.SQL(
            "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::text FROM public.{} AS t"
        ).format(sql.Identifier(table)))
        rows, checksum = cursor.fetchone()
        stats.tables[table] = int(rows)
        stats.checksums[table] = checksum
    return stats


class PgSnapshot:
    """A repeatable-read transaction whose snapshot pg_dump imports, so the dump, the row counts and the
    checksums all describe the same moment."""

    def __init__(self, url: str):
        self.url = url
        try:
            self.conn = pg_connect(url)
        except psycopg2.Error as exc:
            raise CaptureError(f"cannot connect to {make_url(url).database}: {first_line(exc)}") from None
        self.conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        with self.conn.cursor() as cursor:
            for statement in PG_SESSION:
                cursor.execute(statement)
            cursor.execute("SELECT pg_export_snapshot(), now()")
            self.snapshot_id, self.taken_at = cursor.fetchone()

    def stats(self) -> TableStats:
        with self.conn.cursor() as cursor:
            return pg_stats(cursor)

    def close(self) -> None:
        try:
            self.conn.rollback()
            self.conn.close()
        except psycopg2.Error:
            pass


def pg_dump(url: str, snapshot_id: str, pg_bin: str, sink: Callable[[bytes], None]) -> None:
    """Stream ``pg_dump --format=custom`` of the snapshot into ``sink``."""
    conninfo, env = pg_conninfo(url)
    command = [pg_tool(pg_bin, "pg_dump"), "--format=custom", f"--snapshot={snapshot_id}", "--no-password",
               "--dbname", conninfo]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=env)
        try:
            while True:
                data = process.stdout.read(READ_SIZE)
                if not data:
                    break
                sink(data)
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            process.stdout.close()
        if process.wait() != 0:
            errors.seek(0)
            raise CaptureError(f"pg_dump of {make_url(url).database} failed: {last_line(errors.read())}")


def pg_create_database(url: str, name: str) -> None:
    conn = pg_connect(url, "postgres", autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def pg_drop_database(url: str, name: str) -> None:
    conn = pg_connect(url, "postgres", autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        conn.close()


def pg_database_exists(url: str, name: str) -> bool:
    conn = pg_connect(url, "postgres", autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cursor.fetchone() is not None
    finally:
        conn.close()


def pg_restore(url: str, database: str, pg_bin: str, chunks: Iterable[bytes], on_chunk=None) -> str:
    """Create ``database`` and restore a custom-format dump read from ``chunks`` into it; returns the
    sha256 of what was read. The caller drops the database if anything after this fails."""
    pg_create_database(url, database)
    conninfo, env = pg_conninfo(url, database)
    command = [pg_tool(pg_bin, "pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
               "--no-password", "--dbname", conninfo]
    digest = hashlib.sha256()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=env)
        broken = False
        try:
            for data in chunks:
                digest.update(data)
                if not broken:
                    try:
                        process.stdin.write(data)
                    except BrokenPipeError:
                        broken = True  # keep reading: the archive must still authenticate to its end
                if on_chunk:
                    on_chunk(len(data))
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass
        if process.wait() != 0:
            errors.seek(0)
            raise CaptureError(f"pg_restore into {database} failed: {last_line(errors.read())}")
    return digest.hexdigest()


def pg_database_stats(url: str, database: str) -> TableStats:
    conn = pg_connect(url, database)
    try:
        with conn.cursor() as cursor:
            for statement in PG_SESSION:
                cursor.execute(statement)
            return pg_stats(cursor)
    finally:
        conn.rollback()
        conn.close()


def pg_sessions(url: str, databases: list[str]) -> list[str]:
    """Who is connected to these databases (other than us): ``"crm_deals: 3 (nameko)"``."""
    conn = pg_connect(url, "postgres", autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT datname, count(*), string_agg(DISTINCT coalesce(nullif(application_name, ''), client_addr::text, "
                "'local'), ', ') FROM pg_stat_activity WHERE datname = ANY(%s) AND pid <> pg_backend_pid() "
                "GROUP BY datname ORDER BY datname", (databases,))
            return [f"{name}: {count} connection(s) ({who})" for name, count, who in cursor.fetchall()]
    finally:
        conn.close()


def pg_rename(url: str, old: str, new: str) -> None:
    conn = pg_connect(url, "postgres", autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new)))
    finally:
        conn.close()


def pg_execute(url: str, database: str, statement: str, params=()) -> int:
    conn = pg_connect(url, database)
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement, params)
            count = cursor.rowcount
        conn.commit()
        return count
    finally:
        conn.close()


def pg_has_table(url: str, database: str, table: str) -> bool:
    conn = pg_connect(url, database)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",))
            return bool(cursor.fetchone()[0])
    finally:
        conn.close()


# ---- SQLite

def sqlite_path(url: str) -> Path:
    return Path(make_url(url).database).expanduser().resolve()


def sqlite_stats(conn: sqlite3.Connection) -> TableStats:
    stats = TableStats(server_version="sqlite")
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    for table in tables:
        rows, total = 0, 0
        quoted = '"' + table.replace('"', '""') + '"'
        for row in conn.execute(f"SELECT * FROM {quoted}"):  # noqa: S608 - a name read from sqlite_master
            rows += 1
            total += int.from_bytes(hashlib.md5(repr(tuple(row)).encode()).digest()[:8], "big") >> 4
        stats.tables[table] = rows
        stats.checksums[table] = str(total)
    return stats


def sqlite_capture(url: str, scratch_dir: Path) -> tuple[Path, TableStats, str]:
    """A consistent copy of a live SQLite database (the online backup API, read inside one read
    transaction so the copy and the statistics see the same moment), in a temporary file."""
    from datetime import UTC, datetime

    source = sqlite_path(url)
    if not source.exists():
        raise CaptureError(f"the SQLite database {source} does not exist (has the service ever started?)")
    scratch_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=source.stem + "-", suffix=".db.capture", dir=scratch_dir)
    os.close(fd)
    copy = Path(name)
    conn = sqlite3.connect(source, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # starts the read transaction: the snapshot
        taken_at = datetime.now(UTC).isoformat()
        target = sqlite3.connect(copy)
        try:
            conn.backup(target)
        finally:
            target.close()
        stats = sqlite_stats(conn)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        copy.unlink(missing_ok=True)
        if "full" in str(exc):
            raise CaptureError(f"disk full while copying {source.name} into {scratch_dir}: {exc}") from None
        raise CaptureError(f"cannot copy {source}: {exc}") from None
    except BaseException:
        copy.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    return copy, stats, taken_at


def sqlite_file_stats(path: Path) -> TableStats:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sqlite_stats(conn)
    finally:
        conn.close()


def sqlite_open_by(paths: list[Path]) -> list[str]:
    """Processes (other than this one) that have one of these files open: ``"pid 123 (nameko): clients.db"``."""
    import psutil

    wanted = {str(p) for path in paths for p in (path, Path(f"{path}-wal"))}
    found = []
    for process in psutil.process_iter(["pid", "name"]):
        if process.pid == os.getpid():
            continue
        try:
            for handle in process.open_files():
                if handle.path in wanted:
                    found.append(f"pid {process.pid} ({process.info['name']}): {Path(handle.path).name}")
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return sorted(set(found))


def sqlite_replace(live: Path, restored: Path) -> None:
    """Put a restored SQLite file in place of the live one; the live one's WAL and shared memory go too
    (a WAL left beside the new file would be replayed into it)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    os.replace(restored, live)


# ---- messages

def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:500]


def last_line(output: bytes) -> str:
    lines = [line for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
    return (lines[-1] if lines else "no output").strip()[:500]


def background(target, *args):
    """Run ``target(*args)`` in a thread; ``.result()`` waits and returns its value or raises its error."""

    class Job(threading.Thread):
        def __init__(self):
            super().__init__(daemon=True)
            self.value = self.error = None

        def run(self):
            try:
                self.value = target(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
                self.error = exc

        def result(self):
            self.join()
            if self.error is not None:
                raise self.error
            return self.value

    job = Job()
    job.start()
    return job
