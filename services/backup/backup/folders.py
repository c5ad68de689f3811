"""Folders of files a backup carries with the databases: today the call recordings' folder.

A folder travels in the archive as one entry ``{"kind": "files", "name": ...}`` whose data is a tar stream of
the folder (regular files and folders only; uploads in progress under ``.incoming/`` are left out). A restore
unpacks it into a scratch folder beside the live one (tar's ``data`` filter: no absolute paths, no ``..``, no
links or devices), compares the file count and the stream's sha256 with the manifest, and swaps the folders
in with the databases.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from crm_common.config import Settings

SKIPPED = {".incoming"}


def captured_folders(settings: Settings) -> dict[str, Path]:
    """The folders a backup of this installation carries: the recordings' one unless they live in S3."""
    if settings.recording_s3_bucket:
        return {}
    return {"recordings": settings.recordings_path}


@dataclass
class FolderStats:
    files: int = 0
    bytes: int = 0
    sha256: str = ""

    def as_dict(self) -> dict:
        return {"files": self.files, "bytes": self.bytes, "sha256": self.sha256}


class _Sink:
    """What ``tarfile`` writes to: hashed, counted and passed on to the archive entry."""

    def __init__(self, write):
        self._write, self.digest = write, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self._write(bytes(data))
        return len(data)


def write_folder(folder: Path, write) -> FolderStats:
    """Stream ``folder`` as a tar into ``write``; a missing folder is an empty one."""
    sink, stats = _Sink(write), FolderStats()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in _files(folder):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
            stats.files += 1
            stats.bytes += path.stat().st_size
    stats.sha256 = sink.digest.hexdigest()
    return stats


def _files(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not (Path(root) == folder and d in SKIPPED))
        for name in sorted(names):
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                yield path


class _Source:
    """The entry's data as a file ``tarfile`` reads, hashed on the way."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.buffer, self.digest = chunks, b"", hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buffer) < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.digest.update(chunk)
            self.buffer += chunk
        out, self.buffer = (self.buffer, b"") if n < 0 else (self.buffer[:n], self.buffer[n:])
        return out

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def unpack(chunks: Iterator[bytes], target: Path) -> FolderStats:
    """Unpack an entry's tar stream into ``target`` (made anew); the stats of what it held."""
    target.mkdir(parents=True)
    source, stats = _Source(chunks), FolderStats()
    with tarfile.open(fileobj=source, mode="r|") as tar:
        for member in tar:
            tar.extract(member, target, filter="data")
            if member.isfile():
                stats.files += 1
                stats.bytes += member.size
    source.drain()
    stats.sha256 = source.digest.hexdigest()
    return stats


def scratch_beside(live: Path, label: str, token: str) -> Path:
    return live.with_name(f"{live.name}.{label}-{token}")


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
