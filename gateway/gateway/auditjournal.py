"""The audit journal: what a gateway process has recorded and not yet committed, appended to a local file.

A request appends one line (its entry and the clients it showed) to the process's open segment and goes on: a
``write()`` to the page cache, no ``fsync``, so the line survives the process dying (the kernel has it) though
not the machine. The writer closes the segment when it takes a batch (``rotate``) and deletes it once the batch
is committed (``done``). Each open segment is held with ``flock``: a segment nobody holds belongs to a process that
died, and any gateway sharing the folder replays it (``orphans``) — its entries are chained then, those already
committed skipped by id — and deletes it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".audit"


@dataclass
class Segment:
    path: Path
    fd: int

    def release(self, delete: bool) -> None:
        if delete:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)  # closing releases the lock


class Journal:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.segment = self._open()

    def _open(self) -> Segment:
        path = self.folder / f"{os.getpid()}-{time.time_ns()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return Segment(path, fd)

    def append(self, entry: dict, reads: list[tuple[str, str]]) -> None:
        line = json.dumps({"entry": {**entry, "at": entry["at"].isoformat()}, "reads": reads},
                          separators=(",", ":"), ensure_ascii=False) + "\n"
        os.write(self.segment.fd, line.encode("utf-8"))

    def rotate(self) -> Segment:
        """Start a new segment; the old one (still locked) is the batch's, to ``release`` once it is committed."""
        old, self.segment = self.segment, self._open()
        return old

    def close(self) -> None:
        """The process stops: an empty segment goes, one with lines stays for the next start to replay."""
        empty = os.fstat(self.segment.fd).st_size == 0
        self.segment.release(delete=empty)

    def orphans(self) -> Iterator[tuple[Segment, list[tuple[dict, list[tuple[str, str]]]]]]:
        """Segments of processes that died (no lock on them), locked for the caller, with what they hold."""
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            if path == self.segment.path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # replayed meanwhile by another process
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live process's segment
                os.close(fd)
                continue
            if not path.exists():  # deleted between our open and our lock
                os.close(fd)
                continue
            yield Segment(path, fd), read_segment(path)


def read_segment(path: Path) -> list[tuple[dict, list[tuple[str, str]]]]:
    """Each entry of a segment with the reads it recorded; a last line cut short by the crash is skipped."""
    records = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            entry = {**record["entry"], "at": datetime.fromisoformat(record["entry"]["at"])}
        except (ValueError, KeyError, TypeError):
            log.warning("audit journal %s: line %d is not a whole record; skipped", path.name, number)
            continue
        records.append((entry, [(user, client) for user, client in record["reads"]]))
    return records
