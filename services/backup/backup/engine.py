"""What a backup, a verification, a restore and a drill do, step by step. Plain blocking code run by
``crm-backup`` and by the worker process the service starts (``backup.worker``); the catalogue is
written through the same commands the service uses.

A backup: every database's snapshot is taken first, within milliseconds of each other (PostgreSQL:
an exported snapshot per database that pg_dump then reads; SQLite: a read transaction around the
online backup), then each is streamed into one encrypted archive, followed by the manifest (per
database: engine, size, sha256, snapshot time, rows and content checksum of every table). The archive
is written as ``.partial`` and renamed when complete, then copied to every off-site target, verified
when asked, and retention runs.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url

from backup import commands, domain, folders, offsite
from backup.archive import (
    ArchiveError,
    EncryptingWriter,
    EntryWriter,
    HashingFile,
    decrypted_chunks,
    read_entries,
)
from backup.catalogue import Local
from backup.databases import (
    READ_SIZE,
    CaptureError,
    PgSnapshot,
    background,
    engine_of,
    first_line,
    pg_database_exists,
    pg_database_stats,
    pg_drop_database,
    pg_dump,
    pg_execute,
    pg_has_table,
    pg_rename,
    pg_restore,
    pg_sessions,
    sqlite_capture,
    sqlite_file_stats,
    sqlite_open_by,
    sqlite_path,
    sqlite_replace,
)
from backup.keys import Keyring, data_dir, load_keyring
from backup.models import Backup
from crm_common import registry
from crm_common.config import Settings
from crm_common.schemas import is_uuid, iso

log = logging.getLogger("crm.backup")
HEARTBEAT_S = 5.0
BUS_TIMEOUT_S = 2
# the catalogue keeps its own history: restoring it from an older archive would forget every later backup
CATALOGUE = "backup"


class RestoreRefused(Exception):
    """A restore that must not run (services up, unknown id, missing archive): nothing was changed."""


# ---- progress, for the command line's bars; the worker only logs

class Progress:
    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator:
        log.info(description)
        yield lambda n: None

    def say(self, text: str) -> None:
        log.info(text)


@dataclass
class Job:
    settings: Settings
    config: dict
    keyring: Keyring
    uow: Local
    progress: Progress = field(default_factory=Progress)

    @classmethod
    def open(cls, config: dict, progress: Progress | None = None) -> Job:
        settings = Settings.from_config(config)
        return cls(settings, config, load_keyring(settings), Local(settings), progress or Progress())

    @property
    def backup_dir(self) -> Path:
        return backup_dir(self.settings)

    def close(self) -> None:
        self.uow.dispose()


def backup_dir(settings: Settings) -> Path:
    if settings.backup_dir:
        return Path(settings.backup_dir).expanduser().resolve()
    return data_dir(settings) / "backups"


def captured_processes(settings: Settings) -> list[str]:
    """Every process of the registry this installation runs (its services and the gateway)."""
    return [spec.name for spec in registry.processes(settings.services)]


def rules(settings: Settings) -> domain.Retention:
    return domain.Retention(settings.backup_keep_last, settings.backup_keep_daily, settings.backup_keep_weekly,
                            settings.backup_keep_monthly)


class Heartbeat:
    """Writes the running row's heartbeat every few seconds, so a dead worker is noticed (commands.reap_silent)."""

    def __init__(self, settings: Settings, backup_id: str | None = None, verification_id: str | None = None):
        self.settings, self.backup_id, self.verification_id = settings, backup_id, verification_id
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(timeout=10)

    def _run(self):
        uow = Local(self.settings)
        try:
            while not self.stopped.wait(HEARTBEAT_S):
                try:
                    uow.write(lambda: commands.heartbeat(uow, self.backup_id, self.verification_id))
                except Exception:  # noqa: BLE001 - a missed beat is retried; the work goes on
                    log.warning("could not record the heartbeat", exc_info=True)
        finally:
            uow.dispose()


# ---- capture

def capture(job: Job, backup_id: str, started_at: datetime, trigger: str) -> tuple[Path, dict, int, str]:
    """Write the archive of every database; returns its path, manifest, size and sha256."""
    settings = job.settings
    names = captured_processes(settings)
    urls = {name: settings.direct_database_url_for(name) for name in names}
    folder = job.backup_dir
    scratch = folder / ".tmp"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / domain.archive_name(backup_id, started_at)
    partial = final.with_name(final.name + ".partial")
    snapshots: dict[str, PgSnapshot] = {}
    sqlite_copies: dict[str, tuple[Path, object, str]] = {}
    counting = None
    try:
        with job.progress.task(f"taking snapshots of {len(names)} databases"):
            for name in names:  # every PostgreSQL snapshot first: they are taken within milliseconds
                if engine_of(urls[name]) == "postgresql":
                    snapshots[name] = PgSnapshot(urls[name])
            for name in names:
                if engine_of(urls[name]) == "sqlite":
                    sqlite_copies[name] = sqlite_capture(urls[name], scratch)
        counting = background(lambda: {name: snap.stats() for name, snap in snapshots.items()})
        parts: dict[str, dict] = {}
        with open(partial, "wb") as raw:
            out = HashingFile(raw)
            entries = EntryWriter(EncryptingWriter(out, job.keyring.current, backup_id, iso(started_at)))
            for name in names:
                engine = engine_of(urls[name])
                entries.begin({"kind": "part", "service": name, "engine": engine})
                with job.progress.task(f"{name}: {engine} dump", None) as advance:
                    sink = PartSink(entries, advance)
                    if engine == "postgresql":
                        pg_dump(urls[name], snapshots[name].snapshot_id, settings.backup_pg_bin, sink)
                        taken_at = iso(snapshots[name].taken_at)
                    else:
                        path, _, taken_at = sqlite_copies[name]
                        with open(path, "rb") as copy:
                            for data in iter(lambda c=copy: c.read(READ_SIZE), b""):
                                sink(data)
                entries.end()
                parts[name] = {"engine": engine, "size_bytes": sink.size, "sha256": sink.digest.hexdigest(),
                               "snapshot_at": taken_at, "database": database_label(urls[name])}
            carried = {}
            for name, path in folders.captured_folders(settings).items():
                entries.begin({"kind": "files", "name": name})
                with job.progress.task(f"{name}: files of {path}"):
                    carried[name] = folders.write_folder(path, entries.write).as_dict()
                entries.end()
            with job.progress.task("counting rows and checksumming every table"):
                stats = counting.result()
            for name in names:
                found = stats[name] if name in stats else sqlite_copies[name][1]
                parts[name].update(found.as_dict())
            manifest = {
                "format": 1, "backup_id": backup_id, "trigger": trigger, "started_at": iso(started_at),
                "captured_at": iso(datetime.now(UTC)), "key_id": job.keyring.current_id, "services": parts,
                "folders": carried,
            }
            entries.begin({"kind": "manifest"})
            entries.write(json.dumps(manifest, sort_keys=True).encode())
            entries.end()
            entries.finish()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, final)
        return final, manifest, out.size, out.hexdigest()
    finally:
        if counting is not None:
            counting.join()  # it reads through the snapshot connections closed below
        for snapshot in snapshots.values():
            snapshot.close()
        for path, _, _ in sqlite_copies.values():
            path.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)


class PartSink:
    """Where a database's dump goes: into the archive entry, counted and hashed on the way."""

    def __init__(self, entries: EntryWriter, advance):
        self.entries, self.advance = entries, advance
        self.digest, self.size = hashlib.sha256(), 0

    def __call__(self, data: bytes) -> None:
        self.digest.update(data)
        self.size += len(data)
        self.entries.write(data)
        self.advance(len(data))


def database_label(url: str) -> str:
    parsed = make_url(url)
    return parsed.database if parsed.get_backend_name() == "postgresql" else Path(parsed.database).name


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"disk full while writing the archive ({exc.filename or 'backup folder'}): {exc.strerror}"
    if isinstance(exc, (CaptureError, ArchiveError, offsite.OffsiteError)):
        return str(exc)
    return f"{exc.__class__.__name__}: {first_line(exc)}"


def run_backup(job: Job, backup_id: str, verify: bool) -> bool:
    """Capture, copy off-site, optionally verify, apply retention; True when the backup is done."""
    uow = job.uow
    if not uow.write(lambda: commands.claim_backup(uow, backup_id)):
        log.warning("backup %s is not waiting for a worker (another one has it); nothing to do", backup_id)
        return True
    backup = commands.get_backup(uow.session, backup_id)
    started_at, trigger = backup.started_at, backup.trigger
    uow.close()
    with Heartbeat(job.settings, backup_id=backup_id):
        try:
            path, manifest, size, sha256 = capture(job, backup_id, started_at, trigger)
        except BaseException as exc:
            reason = "interrupted: the backup was stopped" if isinstance(exc, (KeyboardInterrupt, SystemExit)) \
                else failure_reason(exc)
            log.error("backup %s failed: %s", backup_id, reason)
            uow.write(lambda: commands.fail_backup(uow, backup_id, reason))
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return False
        uow.write(lambda: commands.record_capture(uow, backup_id, path.name, size, sha256, job.keyring.current_id,
                                                  manifest))
        for target in domain.parse_targets(job.settings.backup_offsite):
            with job.progress.task(f"copying to {target}"):
                try:
                    offsite.copy(path, target, job.settings.backup_rclone_retries)
                    error = None
                except offsite.OffsiteError as exc:
                    error = str(exc)
                    log.error("backup %s: copy to %s failed: %s", backup_id, target, error)
            uow.write(lambda t=target, e=error: commands.record_copy(uow, backup_id, t, e))
        uow.write(lambda: commands.finish_backup(uow, backup_id))
    job.progress.say(f"backup {backup_id} written: {path} ({size} bytes)")
    if verify:
        verify_backup(job, backup_id, trigger)
    apply_retention(job)
    return True


# ---- restoring into scratch databases

@dataclass
class Restored:
    """Databases restored from an archive into scratch places, not yet in use."""

    manifest: dict | None = None
    archive_sha256: str | None = None
    scratch: dict[str, str] = field(default_factory=dict)  # service -> scratch database name or file path
    stats: dict[str, dict] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)  # folder name -> scratch folder beside the live one
    folder_stats: dict[str, dict] = field(default_factory=dict)


def restore_to_scratch(job: Job, archive: Path, backup_id: str, only: set[str] | None,
                       restored: Restored, label: str = "scratch", with_folders: bool = True) -> Restored:
    """Decrypt the archive and restore its databases (``only`` some) into scratch databases or files, and its
    folders (``with_folders``) into scratch folders, recording what each holds. Raises
    ``ArchiveError``/``CaptureError``; the caller drops the scratch."""
    settings = job.settings
    token = secrets.token_hex(4)
    live_folders = folders.captured_folders(settings)
    with open(archive, "rb") as raw:
        stream = HashingFile(raw)
        total = archive.stat().st_size
        with job.progress.task(f"decrypting and restoring {archive.name}", total) as advance:
            chunks = _counted(decrypted_chunks(stream, job.keyring, backup_id), advance)
            for meta, data in read_entries(chunks):
                if meta.get("kind") == "manifest":
                    restored.manifest = json.loads(b"".join(data))
                    continue
                if meta.get("kind") == "files":
                    name = meta.get("name")
                    if with_folders and name in live_folders:
                        scratch = folders.scratch_beside(live_folders[name], label, token)
                        restored.folders[name] = str(scratch)
                        restored.folder_stats[name] = folders.unpack(data, scratch).as_dict()
                    elif with_folders:
                        log.warning("the archive holds the folder %r, which this installation keeps elsewhere "
                                    "(an S3 bucket?): not restored", name)
                    continue
                service = meta.get("service")
                if meta.get("kind") != "part" or (only is not None and service not in only):
                    continue
                url = settings.direct_database_url_for(service) if service in registry.BY_NAME else None
                if url is None:
                    raise CaptureError(f"the archive holds {service!r}, which this installation's registry does not know")
                engine = engine_of(url)
                if engine != meta.get("engine"):
                    raise CaptureError(f"{service} was captured from {meta.get('engine')} but is configured on {engine}")
                restored.engines[service] = engine
                if engine == "postgresql":
                    name = f"{make_url(url).database}__{label[:1]}{token}"
                    restored.scratch[service] = name
                    restored.sha256[service] = pg_restore(url, name, settings.backup_pg_bin, data)
                    restored.stats[service] = pg_database_stats(url, name).as_dict()
                else:
                    live = sqlite_path(url)
                    live.parent.mkdir(parents=True, exist_ok=True)
                    path = live.with_name(f"{live.name}.{label}-{token}")
                    restored.scratch[service] = str(path)
                    digest = hashlib.sha256()
                    with open(path, "wb") as out:
                        for piece in data:
                            digest.update(piece)
                            out.write(piece)
                    restored.sha256[service] = digest.hexdigest()
                    restored.stats[service] = sqlite_file_stats(path).as_dict()
    restored.archive_sha256 = stream.hexdigest()
    if restored.manifest is None:
        raise CaptureError("the archive has no manifest")
    return restored


def _counted(chunks, advance):
    for chunk in chunks:
        advance(len(chunk) + 20)
        yield chunk


def drop_scratch(job: Job, restored: Restored, attempts: int = 4) -> None:
    """Remove the scratch databases; a server that refuses a connection for a moment (too many clients)
    is asked again, and what still cannot be dropped is named in the log for the operator."""
    for service, scratch in restored.scratch.items():
        for attempt in range(attempts):
            try:
                if restored.engines[service] == "postgresql":
                    pg_drop_database(job.settings.direct_database_url_for(service), scratch)
                else:
                    for suffix in ("", "-wal", "-shm", "-journal"):
                        Path(scratch + suffix).unlink(missing_ok=True)
                break
            except Exception as exc:  # noqa: BLE001 - cleanup goes on with the others
                if attempt == attempts - 1:
                    log.error("could not remove the scratch database %s (drop it by hand): %s", scratch, first_line(exc))
                else:
                    time.sleep(2 ** attempt)
    restored.scratch.clear()
    for scratch in restored.folders.values():
        folders.remove(Path(scratch))
    restored.folders.clear()


def compare(restored: Restored, expected_sha256: str | None = None) -> list[dict]:
    """Mismatches between the restored scratch databases and the archive's manifest."""
    manifest = restored.manifest["services"]
    found = []
    if expected_sha256 and restored.archive_sha256 != expected_sha256:
        found.append({"service": "archive", "table": None, "problem": "archive sha256 differs from the catalogue"})
    for service, digest in restored.sha256.items():
        if manifest.get(service, {}).get("sha256") != digest:
            found.append({"service": service, "table": None, "problem": "dump sha256 differs from the manifest"})
    carried = restored.manifest.get("folders") or {}
    for name, stats in restored.folder_stats.items():
        if name not in carried:
            found.append({"service": name, "table": None, "problem": "folder not in the manifest"})
        elif (stats["files"], stats["sha256"]) != (carried[name]["files"], carried[name]["sha256"]):
            found.append({"service": name, "table": None,
                          "problem": f"folder holds {stats['files']} files, the manifest {carried[name]['files']}"
                                     + ("" if stats["sha256"] == carried[name]["sha256"] else "; its sha256 differs")})
    expected = {s: manifest[s] for s in restored.stats if s in manifest}
    return found + domain.mismatches(expected, restored.stats, compare_checksums=same_server(expected, restored.stats))


def same_server(expected: dict, found: dict) -> set[str]:
    """Services whose capture and restore ran on the same database major version: their checksums compare
    (a hash function or a type's text may change between major versions; row counts always compare)."""
    return {s for s in expected if expected[s].get("server_version") == found.get(s, {}).get("server_version")}


# ---- verification and drill

def verify_backup(job: Job, backup_id: str, trigger: str, verification_id: str | None = None) -> bool:
    uow = job.uow
    if verification_id is None:
        verification_id = uow.write(lambda: commands.start_verification(uow, backup_id, trigger).id)
    if not uow.write(lambda: commands.claim_verification(uow, verification_id)):
        log.warning("verification %s is not waiting for a worker (another one has it); nothing to do", verification_id)
        return True
    backup = commands.get_backup(uow.session, backup_id)
    archive, expected = job.backup_dir / (backup.file_name or ""), backup.sha256
    uow.close()
    restored = Restored()
    with Heartbeat(job.settings, verification_id=verification_id):
        try:
            if not backup.file_name or not archive.exists():
                raise CaptureError(f"the archive {archive} is missing")
            restore_to_scratch(job, archive, backup_id, None, restored)
            found, error = compare(restored, expected), None
        except (KeyboardInterrupt, SystemExit):
            uow.write(lambda: commands.abandon_verification(uow, verification_id, "interrupted"))
            raise
        except Exception as exc:  # noqa: BLE001 - recorded as the verification's failure
            found, error = [], failure_reason(exc)
        finally:
            drop_scratch(job, restored)
    uow.write(lambda: commands.finish_verification(uow, verification_id, found, error))
    ok = not found and error is None
    job.progress.say(f"backup {backup_id} " + ("verified: every table identical" if ok else
                                               f"did not verify: {error or domain.describe(found)}"))
    return ok


@dataclass
class DrillReport:
    backup_id: str
    source: str
    services: dict[str, dict]
    mismatches: list[dict]
    error: str | None = None

    @property
    def identical(self) -> bool:
        return self.error is None and not self.mismatches


def drill(job: Job, from_offsite: bool = False) -> DrillReport:
    """Restore the newest backup into scratch databases and compare every table with its capture."""
    if from_offsite:
        backup_id, archive, source = newest_offsite(job)
        expected = None
    else:
        newest = job.uow.session.scalar(
            select(Backup).where(Backup.status == "done").order_by(Backup.started_at.desc()).limit(1))
        job.uow.close()
        if newest is None:
            raise RestoreRefused("there is no finished backup to drill; run `crm-backup run` first")
        backup_id, archive, expected = newest.id, job.backup_dir / newest.file_name, newest.sha256
        source = str(archive)
        if not archive.exists():
            raise RestoreRefused(f"the archive {archive} is missing; try `crm-backup drill --from-offsite`")
    restored = Restored()
    try:
        restore_to_scratch(job, archive, backup_id, None, restored, label="drill")
        found, error = compare(restored, expected), None
    except (ArchiveError, CaptureError) as exc:
        found, error = [], failure_reason(exc)
    finally:
        drop_scratch(job, restored)
        if from_offsite:
            archive.unlink(missing_ok=True)
    services = {}
    for service, part in ((restored.manifest or {}).get("services") or {}).items():
        services[service] = {"engine": part["engine"], "captured": part["tables"],
                             "restored": (restored.stats.get(service) or {}).get("tables", {})}
    return DrillReport(backup_id, source, services, found, error)


def newest_offsite(job: Job) -> tuple[str, Path, str]:
    for target in domain.parse_targets(job.settings.backup_offsite):
        names = offsite.list_archives(target, job.settings.backup_rclone_retries)
        if names:
            name = max(names)  # names start with the capture time
            backup_id = domain.ARCHIVE_NAME.match(name)["id"]
            local = job.backup_dir / ".incoming" / name
            with job.progress.task(f"downloading {name} from {target}"):
                offsite.fetch(target, name, local, job.settings.backup_rclone_retries)
            return backup_id, local, f"{target}/{name}"
    raise RestoreRefused("no archive was found on any target of CRM_BACKUP_OFFSITE")


# ---- restore

def running_services(job: Job, services: list[str]) -> list[str]:
    """Evidence that the CRM is running: a service answering on the bus, a connection to one of the
    databases, a process holding one of the SQLite files."""
    evidence = []
    evidence += _answering_on_the_bus(job.config, [s for s in services if not registry.spec(s).http])
    urls = {s: job.settings.direct_database_url_for(s) for s in services}
    pg = [u for u in urls.values() if engine_of(u) == "postgresql"]
    if pg:
        try:
            evidence += pg_sessions(pg[0], [make_url(u).database for u in pg])
        except Exception as exc:  # noqa: BLE001 - the restore itself will say what is wrong with the server
            log.debug("cannot list database sessions: %s", exc)
    sqlite = [sqlite_path(u) for u in urls.values() if engine_of(u) == "sqlite"]
    if sqlite:
        evidence += sqlite_open_by(sqlite)
    return evidence


def _answering_on_the_bus(config: dict, services: list[str]) -> list[str]:
    """Services that answer ``health()`` on the bus: every question is sent first, then the answers are
    awaited, so a stopped CRM costs one timeout, not one per service."""
    from nameko.standalone.rpc import ClusterRpcProxy

    answering = []
    try:
        with ClusterRpcProxy(config, timeout=BUS_TIMEOUT_S) as cluster:
            asked = []
            for service in services:
                try:
                    asked.append((service, cluster[service].health.call_async()))
                except Exception:  # noqa: BLE001 - not routable: no such service on this broker
                    continue
            for service, reply in asked:
                try:
                    reply.result()
                    answering.append(f"the {service} service answers on the bus")
                except Exception:  # noqa: BLE001 - no answer in time: not running
                    continue
    except Exception as exc:  # noqa: BLE001 - no broker: nothing can be running through it
        log.debug("bus not reachable: %s", exc)
    return answering


@dataclass
class RestoreResult:
    backup_id: str
    services: list[str]
    replayed: dict[str, int]


def locate(job: Job, backup_id: str, from_offsite: bool) -> tuple[Path, str | None, bool]:
    """The archive to restore: ``(path, expected sha256 or None, downloaded)``."""
    if not is_uuid(backup_id):
        raise RestoreRefused(f"{backup_id!r} is not a backup id (`crm-backup list` shows them)")
    if from_offsite:
        for target in domain.parse_targets(job.settings.backup_offsite):
            try:
                name = offsite.find(target, backup_id, job.settings.backup_rclone_retries)
            except offsite.OffsiteError as exc:
                job.progress.say(f"{target}: {exc}")
                continue
            if name:
                local = job.backup_dir / ".incoming" / name
                with job.progress.task(f"downloading {name} from {target}"):
                    offsite.fetch(target, name, local, job.settings.backup_rclone_retries)
                return local, None, True
        if not domain.parse_targets(job.settings.backup_offsite):
            raise RestoreRefused("CRM_BACKUP_OFFSITE names no target to restore from")
        raise RestoreRefused(f"no archive of backup {backup_id} on any target of CRM_BACKUP_OFFSITE")
    try:
        backup = job.uow.session.get(Backup, backup_id)
    except Exception:  # noqa: BLE001 - no catalogue at all: the burnt-server case
        backup = None
    finally:
        job.uow.close()
    if backup is None:
        raise RestoreRefused(f"unknown backup {backup_id}: `crm-backup list` shows the backups; "
                             "add --from-offsite to look for it on the off-site targets")
    if backup.status != "done" and backup.verified is not False:
        raise RestoreRefused(f"backup {backup_id} is {backup.status}: only a finished backup can be restored")
    archive = job.backup_dir / (backup.file_name or "")
    if not backup.file_name or not archive.exists():
        raise RestoreRefused(f"the archive of backup {backup_id} is not in {job.backup_dir}; "
                             "add --from-offsite to fetch it from an off-site target")
    return archive, backup.sha256, False


def restore(job: Job, backup_id: str, only: str | None = None, from_offsite: bool = False,
            confirm=lambda services: True) -> RestoreResult:
    """Restore the archive's databases (or one) in place of the live ones: scratch first, compared with
    the manifest, outbox events of the capture's moment marked for replay, then swapped in together."""
    settings = job.settings
    if only is not None and only not in registry.BY_NAME:
        raise RestoreRefused(f"unknown service {only!r}; known: {', '.join(registry.BY_NAME)}")
    candidates = [only] if only else [s for s in captured_processes(settings) if s != CATALOGUE]
    evidence = running_services(job, candidates + ([CATALOGUE] if CATALOGUE not in candidates else []))
    if evidence:
        raise RestoreRefused("the CRM is running; stop it first (Ctrl-C in `make run`, `docker compose stop`): "
                             + "; ".join(evidence))
    archive, expected, downloaded = locate(job, backup_id, from_offsite)
    restored = Restored()
    try:
        # one service's database alone is put back without the folders; a whole restore brings them back too
        restore_to_scratch(job, archive, backup_id, set(candidates), restored, label="restore",
                           with_folders=only is None)
        missing = [s for s in candidates if s not in restored.scratch and s in restored.manifest["services"]]
        if only and only not in restored.scratch:
            raise RestoreRefused(f"backup {backup_id} holds no database of {only}")
        found = compare(restored, expected)
        if missing:
            found.append({"service": ",".join(missing), "table": None, "problem": "not restored"})
        if found:
            raise CaptureError("the restored databases differ from the backup, nothing was changed: "
                               + domain.describe(found))
        services = sorted(restored.scratch)
        if not confirm(services):
            raise RestoreRefused("restore cancelled; nothing was changed")
        evidence = running_services(job, services)
        if evidence:
            raise RestoreRefused("the CRM was started meanwhile; nothing was changed: " + "; ".join(evidence))
        replayed = mark_for_replay(job, restored)
        swap_in(job, restored)
    finally:
        drop_scratch(job, restored)
    remember(job, restored, archive, downloaded)
    return RestoreResult(backup_id, services, replayed)


def mark_for_replay(job: Job, restored: Restored) -> dict[str, int]:
    """Events published shortly before the capture may not have reached every consumer's snapshot:
    publish them again once the services start (their handlers ignore what they already handled)."""
    times = [datetime.fromisoformat(p["snapshot_at"].replace("Z", "+00:00"))
             for p in restored.manifest["services"].values()]
    since = min(times) - timedelta(seconds=job.settings.backup_replay_window_s)
    replayed = {}
    for service, scratch in restored.scratch.items():
        url = job.settings.direct_database_url_for(service)
        if restored.engines[service] == "postgresql":
            if pg_has_table(url, scratch, "outbox"):
                replayed[service] = pg_execute(url, scratch, "UPDATE outbox SET published_at = NULL "
                                                             "WHERE published_at >= %s", (since,))
        else:
            import sqlite3

            conn = sqlite3.connect(scratch)
            try:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone():
                    cursor = conn.execute("UPDATE outbox SET published_at = NULL WHERE published_at >= ?",
                                          (since.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" "),))
                    replayed[service] = cursor.rowcount
                    conn.commit()
            finally:
                conn.close()
    return replayed


def swap_in(job: Job, restored: Restored) -> None:
    """Put every scratch database and folder in place of its live one; if one swap fails, undo the ones done."""
    token = secrets.token_hex(4)
    done: list[tuple[str, str, str | None]] = []  # (service, live, old name or None)
    moved: list[tuple[Path, Path | None]] = []  # (live folder, old folder or None)
    live_folders = folders.captured_folders(job.settings)
    try:
        for name, scratch in list(restored.folders.items()):
            live = live_folders[name]
            old = None
            if live.exists():
                old = folders.scratch_beside(live, "old", token)
                os.replace(live, old)
            try:
                os.replace(scratch, live)
            except BaseException:
                if old is not None:
                    os.replace(old, live)
                raise
            moved.append((live, old))
            del restored.folders[name]
        for service, scratch in list(restored.scratch.items()):
            url = job.settings.direct_database_url_for(service)
            if restored.engines[service] == "postgresql":
                live = make_url(url).database
                old = None
                if pg_database_exists(url, live):
                    old = f"{live}__old{token}"
                    pg_rename(url, live, old)
                pg_rename(url, scratch, live)
            else:
                live_path = sqlite_path(url)
                old = None
                if live_path.exists():
                    old = f"{live_path}.old-{token}"
                    os.replace(live_path, old)
                sqlite_replace(live_path, Path(scratch))
                live = str(live_path)
            done.append((service, live, old))
            del restored.scratch[service]
    except BaseException:
        for live, old in reversed(moved):
            folders.remove(live)
            if old is not None:
                os.replace(old, live)
        for service, live, old in reversed(done):
            url = job.settings.direct_database_url_for(service)
            if restored.engines[service] == "postgresql":
                pg_drop_database(url, live)
                if old:
                    pg_rename(url, old, live)
            elif old:
                os.replace(old, live)
        raise
    for _live, old in moved:
        if old is not None:
            folders.remove(old)
    for service, _live, old in done:
        if old is None:
            continue
        if restored.engines[service] == "postgresql":
            pg_drop_database(job.settings.direct_database_url_for(service), old)
        else:
            Path(old).unlink(missing_ok=True)


def remember(job: Job, restored: Restored, archive: Path, downloaded: bool) -> None:
    """After a restore from an archive the catalogue may not know (a new machine), make it know it, and
    keep the archive in the backup folder."""
    from crm_common.migrate import migrate

    migrate(CATALOGUE, job.config)
    name = domain.archive_name(restored.manifest["backup_id"],
                               datetime.fromisoformat(restored.manifest["started_at"].replace("Z", "+00:00")))
    if downloaded:
        job.backup_dir.mkdir(parents=True, exist_ok=True)
        os.replace(archive, job.backup_dir / name)
        archive = job.backup_dir / name
    uow = Local(job.settings)
    try:
        uow.write(lambda: commands.installation_started(uow))
        uow.write(lambda: commands.import_manifest(uow, restored.manifest, name, archive.stat().st_size,
                                                   restored.archive_sha256))
    finally:
        uow.dispose()


# ---- retention

def apply_retention(job: Job) -> list[str]:
    """Remove the backups retention no longer keeps, locally and on every target."""
    uow = job.uow
    removed = []
    for backup in commands.retention_plan(uow.session, rules(job.settings)):
        copies = [c for c in commands._copies(uow.session, backup.id) if c.status == "done"]
        try:
            for copy in copies:
                offsite.delete(copy.target, backup.file_name, job.settings.backup_rclone_retries)
        except offsite.OffsiteError as exc:
            log.warning("retention: could not delete %s from a target, will retry: %s", backup.file_name, exc)
            continue
        if backup.file_name:
            (job.backup_dir / backup.file_name).unlink(missing_ok=True)
        uow.write(lambda b=backup.id: commands.forget(uow, b))
        removed.append(backup.id)
    uow.close()
    if removed:
        job.progress.say(f"retention removed {len(removed)} backup(s)")
    return removed
