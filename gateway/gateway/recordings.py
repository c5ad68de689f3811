"""Call recordings: checked, hashed and stored as they stream in; streamed back with byte ranges.

An upload is written to a temporary file while its SHA-256 is computed, so memory never holds more than a
chunk. Only a complete body whose first bytes are a WAV, MP3 or OGG header matching its Content-Type, and
whose header a parser can read (the duration), is kept: it is then moved into the store in one step (a
rename in the recordings folder; a single upload to an S3-compatible bucket), so a broken or refused upload
leaves nothing behind. The store's key is ``<call id>/<sha256>.<ext>``: the same recording sent twice lands
on the same key.

Recordings are the calls' evidence: once a call has one, another (different) upload is refused (409); the
same bytes again answer the stored recording. They are deleted ``CRM_RECORDING_KEEP_DAYS`` after they were
stored, by the gateway's timer. Their bytes never travel over the message bus; the clients service hears of
one through the ``call_recorded`` event (metadata only).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from nameko.extensions import DependencyProvider
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_common.clock import utcnow
from crm_common.config import Settings
from crm_common.contracts.integrations import RecordingSchema
from crm_common.errors import Conflict, NotFound
from gateway.models import Recording
from gateway.streaming import CHUNK, RangeNotSatisfiable, UnsupportedMediaType, read_body

log = logging.getLogger(__name__)

AUDIO_TYPES = ("audio/mpeg", "audio/wav", "audio/ogg")
EXTENSIONS = {"audio/mpeg": "mp3", "audio/wav": "wav", "audio/ogg": "ogg"}
INCOMING = ".incoming"
# an upload left in the incoming folder this long was broken off by a crash: the sweep removes it
ABANDONED_AFTER = timedelta(hours=1)

recording_out = RecordingSchema()


class RecordingNotFound(NotFound):
    """recording not found"""


# ---- what the bytes are

def sniff(head: bytes) -> str | None:
    """The audio type the first bytes announce: a RIFF/WAVE header, an ID3 tag or MPEG audio frame sync, an Ogg
    page; None for anything else."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"OggS":
        return "audio/ogg"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        return "audio/mpeg"
    return None


def duration_of(path: Path) -> float | None:
    """The duration the file's headers state (tinytag reads WAV, MP3 and OGG headers, in pure Python); raises
    ``UnsupportedMediaType`` when they cannot be read."""
    from tinytag import TinyTag, TinyTagException

    try:
        tag = TinyTag.get(str(path), tags=False, image=False)
    except (TinyTagException, ValueError, OSError, EOFError, IndexError, KeyError) as exc:
        raise UnsupportedMediaType("the audio headers cannot be read", fields={
            "body": [f"Not a readable audio file ({exc.__class__.__name__})."]}) from None
    return round(tag.duration, 3) if tag.duration else None


# ---- byte ranges

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte of a single ``Range: bytes=...`` header; None for the whole content
    (no header, or one this server does not take: several ranges, other units, a malformed one: RFC 9110 lets
    a server ignore those). Raises ``RangeNotSatisfiable`` for a range outside the content."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable("an empty suffix range")
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise RangeNotSatisfiable(f"the recording has {size} bytes")
    return start, end


# ---- stores

class FolderStore:
    """Recordings as files under one folder (``CRM_RECORDINGS_DIR``, default ``<CRM_DATA_DIR>/recordings``)."""

    def __init__(self, root: Path):
        self.root = root

    def describe(self) -> str:
        return f"folder {self.root}"

    def incoming(self) -> Path:
        folder = self.root / INCOMING
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def put(self, key: str, source: Path, content_type: str) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)  # atomic: the name shows a whole file or none

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def read(self, key: str, first: int, last: int):
        """Bytes ``first``..``last`` in chunks; opened before the first chunk, so a missing file raises here."""
        stream = open(self.root / key, "rb")  # noqa: SIM115 - closed by the generator
        stream.seek(first)
        return _chunks(stream, last - first + 1, stream.close)

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.root / key)
        except FileNotFoundError:
            pass

    def sweep(self, older_than: datetime) -> int:
        """Delete files stored before ``older_than`` that no row describes any more, and abandoned uploads."""
        removed = 0
        cutoff = older_than.timestamp()
        abandoned = (utcnow() - ABANDONED_AFTER).timestamp()
        if not self.root.is_dir():
            return 0
        for path in self.root.rglob("*"):
            if not path.is_file():
                continue
            limit = abandoned if path.parent.name == INCOMING else cutoff
            if path.stat().st_mtime < limit:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


class S3Store:
    """Recordings in a bucket of an S3-compatible store (AWS S3, MinIO, Ceph...), through MinIO's client."""

    def __init__(self, settings: Settings):
        from minio import Minio

        self.bucket = settings.recording_s3_bucket
        self.prefix = settings.recording_s3_prefix
        self.client = Minio(
            settings.recording_s3_endpoint, access_key=settings.recording_s3_access_key or None,
            secret_key=settings.recording_s3_secret_key or None, region=settings.recording_s3_region or None,
            secure=settings.recording_s3_secure,
        )
        self.endpoint = settings.recording_s3_endpoint
        self._incoming = Path(tempfile.gettempdir()) / "crm-recordings-incoming"

    def describe(self) -> str:
        return f"bucket {self.bucket} at {self.endpoint}"

    def incoming(self) -> Path:
        self._incoming.mkdir(parents=True, exist_ok=True)
        return self._incoming

    def put(self, key: str, source: Path, content_type: str) -> None:
        try:
            # one object appears whole when the upload completes (a multipart upload is completed at the end)
            self.client.fput_object(self.bucket, self.prefix + key, str(source), content_type=content_type)
        finally:
            source.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self.client.stat_object(self.bucket, self.prefix + key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise
        return True

    def read(self, key: str, first: int, last: int):
        response = self.client.get_object(self.bucket, self.prefix + key, offset=first, length=last - first + 1)

        def close():
            response.close()
            response.release_conn()

        return _chunks(response, last - first + 1, close)

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, self.prefix + key)

    def sweep(self, older_than: datetime) -> int:
        removed = 0
        for item in self.client.list_objects(self.bucket, prefix=self.prefix, recursive=True):
            if item.last_modified is not None and item.last_modified < older_than:
                self.client.remove_object(self.bucket, item.object_name)
                removed += 1
        abandoned = (utcnow() - ABANDONED_AFTER).timestamp()
        if self._incoming.is_dir():
            for path in self._incoming.iterdir():
                if path.stat().st_mtime < abandoned:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed


def _chunks(stream, remaining: int, close):
    try:
        while remaining > 0:
            chunk = stream.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        close()


def store_for(settings: Settings):
    return S3Store(settings) if settings.recording_s3_bucket else FolderStore(settings.recordings_path)


class RecordingStore(DependencyProvider):
    """``recordings = RecordingStore()``: the gateway's store of call recordings, made once from the settings."""

    def setup(self):
        self.settings = Settings.from_config(self.container.config)
        self.store = store_for(self.settings)

    def get_dependency(self, worker_ctx):
        return self.store


# ---- use cases

def receive(request, store, limit: int) -> dict:
    """Stream the body into the store's incoming folder while hashing it; check what it is. Returns
    ``{path, sha256, size_bytes, content_type, duration_s}``; on any failure the temporary file is gone."""
    if request.mimetype not in AUDIO_TYPES:
        raise UnsupportedMediaType(f"Content-Type must be one of {', '.join(AUDIO_TYPES)}", fields={
            "Content-Type": [f"Expected {' or '.join(AUDIO_TYPES)}, got {request.mimetype or 'nothing'}."]})
    path = store.incoming() / f"{uuid.uuid4()}.part"
    digest, size, head = hashlib.sha256(), 0, b""
    try:
        with open(path, "wb") as target:
            for chunk in read_body(request, limit):
                if len(head) < 16:
                    head += chunk[:16 - len(head)]
                digest.update(chunk)
                target.write(chunk)
                size += len(chunk)
        declared = request.mimetype
        found = sniff(head)
        if found is None or found != declared:
            raise UnsupportedMediaType("the body is not the audio its Content-Type says", fields={"body": [
                f"Expected {declared} data, found {'no audio header' if found is None else found}."]})
        duration = duration_of(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return {"path": path, "sha256": digest.hexdigest(), "size_bytes": size, "content_type": declared,
            "duration_s": duration}


def existing(session, call_id: str) -> Recording | None:
    row = session.get(Recording, call_id)
    return row if row is not None and row.deleted_at is None else None


def dump(row: Recording) -> dict:
    return recording_out.dump(row)


def keep(uow, store, call: dict, received: dict) -> tuple[int, dict]:
    """Put a received upload into the store and record it: 201 with the recording; 200 if the call already has
    these very bytes; 409 if it has another recording (recordings are never replaced)."""
    session = uow.session
    current = existing(session, call["id"])
    if current is not None:
        received["path"].unlink(missing_ok=True)
        return _same_or_conflict(current, received)
    key = f"{call['id']}/{received['sha256']}.{EXTENSIONS[received['content_type']]}"
    store.put(key, received["path"], received["content_type"])
    row = session.get(Recording, call["id"])  # one deleted by retention is recorded again
    if row is None:
        row = Recording(call_id=call["id"])
        session.add(row)
    row.client_id, row.branch_id, row.store_key = call["client_id"], call["branch_id"], key
    row.content_type, row.size_bytes, row.sha256 = received["content_type"], received["size_bytes"], received["sha256"]
    row.duration_s, row.created_at, row.deleted_at = received["duration_s"], utcnow(), None
    try:
        session.flush()
    except IntegrityError:  # another upload for the call committed a moment ago
        uow.rollback()
        current = existing(session, call["id"])
        if current is None:
            raise
        if current.store_key != key:
            store.delete(key)
        return _same_or_conflict(current, received)
    out = dump(row)
    uow.emit("call_recorded", {"branch_id": call["branch_id"], "actor_id": None, "recording": out,
                               "client_id": call["client_id"]})
    return 201, out


def _same_or_conflict(current: Recording, received: dict) -> tuple[int, dict]:
    if current.sha256 == received["sha256"]:
        return 200, dump(current)
    raise Conflict("the call has a recording already; recordings are never replaced",
                   fields={"body": [f"The call's recording has sha256 {current.sha256}."]})


def sweep(uow, store, keep_days: float, now: datetime | None = None, batch: int = 500) -> int:
    """Delete the recordings stored more than ``keep_days`` ago (their rows stay, marked deleted), then any file
    or object older than that which no row describes (an upload whose row was never written). Safe on several
    gateways at once: rows are taken with SKIP LOCKED."""
    if keep_days <= 0:
        return 0
    now = now or utcnow()
    cutoff = now - timedelta(days=keep_days)
    removed = 0
    while True:
        session = uow.session
        query = select(Recording).where(Recording.deleted_at.is_(None), Recording.created_at < cutoff).limit(batch)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.scalars(query).all()
        for row in rows:
            store.delete(row.store_key)
            row.deleted_at = now
        uow.commit()
        removed += len(rows)
        if len(rows) < batch:
            break
    store.sweep(cutoff)
    return removed
