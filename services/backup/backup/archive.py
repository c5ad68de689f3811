"""The archive file: a plaintext header, then an AES-256-GCM encrypted stream in authenticated chunks.

    "CRMBAK1\n" | u32 header length | header JSON {format, backup_id, key_id, created_at, nonce_prefix, chunk_size}
    then chunks: u32 length | ciphertext+tag, each chunk at most ``chunk_size`` bytes of plaintext

Chunk ``i`` is sealed with the nonce ``prefix(7) | i (u32) | last (1 byte)`` and the header's sha256 as
associated data, so a changed header, a changed, reordered or dropped chunk, a cut-off end (no chunk
marked last) or bytes after the last chunk all fail to decrypt. Memory holds one chunk, whatever the size.

Inside the encrypted stream, entries (see ``EntryWriter``): one per captured database, then the manifest,
so an archive alone, with its key, says everything the catalogue said about it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backup.keys import Keyring, key_id

MAGIC = b"CRMBAK1\n"
FORMAT = 1
CHUNK_SIZE = 1 << 20
TAG = 16
U32 = struct.Struct(">I")
MAX_HEADER = 64 * 1024


class ArchiveError(Exception):
    """The archive cannot be read: the message says why, for an operator."""


class WrongKey(ArchiveError):
    pass


class CorruptArchive(ArchiveError):
    pass


class TruncatedArchive(CorruptArchive):
    pass


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + U32.pack(counter) + (b"\x01" if last else b"\x00")


class HashingFile(io.RawIOBase):
    """A file opened for writing or reading that keeps the sha256 and the size of what passed through."""

    def __init__(self, raw):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def hexdigest(self) -> str:
        return self.hash.hexdigest()


class EncryptingWriter:
    """Encrypts everything written to it into ``out`` in chunks; ``close()`` seals the last chunk."""

    def __init__(self, out, key: bytes, backup_id: str, created_at: str, chunk_size: int = CHUNK_SIZE):
        self.out = out
        self.aead = AESGCM(key)
        self.prefix = os.urandom(7)
        self.chunk_size = chunk_size
        header = json.dumps({
            "format": FORMAT, "cipher": "AES-256-GCM", "backup_id": backup_id, "key_id": key_id(key),
            "created_at": created_at, "nonce_prefix": self.prefix.hex(), "chunk_size": chunk_size,
        }, sort_keys=True).encode()
        out.write(MAGIC + U32.pack(len(header)) + header)
        self.aad = hashlib.sha256(MAGIC + header).digest()
        self.buffer = bytearray()
        self.counter = 0
        self.closed = False

    def write(self, data) -> None:
        self.buffer += data
        while len(self.buffer) > self.chunk_size:  # keep at least one byte back: the last chunk may not be empty
            self._seal(bytes(self.buffer[: self.chunk_size]), last=False)
            del self.buffer[: self.chunk_size]

    def _seal(self, plain: bytes, last: bool) -> None:
        sealed = self.aead.encrypt(_nonce(self.prefix, self.counter, last), plain, self.aad)
        self.out.write(U32.pack(len(sealed)) + sealed)
        self.counter += 1

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self.buffer), last=True)
            self.buffer.clear()
            self.closed = True


def read_header(stream) -> tuple[dict, bytes]:
    magic = stream.read(len(MAGIC))
    if magic != MAGIC:
        raise CorruptArchive("not a CRM backup archive (bad magic bytes)")
    raw_length = stream.read(4)
    if len(raw_length) < 4:
        raise TruncatedArchive("the archive ends inside its header")
    (length,) = U32.unpack(raw_length)
    if length > MAX_HEADER:
        raise CorruptArchive("the archive header is malformed")
    raw = stream.read(length)
    if len(raw) < length:
        raise TruncatedArchive("the archive ends inside its header")
    try:
        header = json.loads(raw)
        header["nonce_prefix"] = bytes.fromhex(header["nonce_prefix"])
        int(header["chunk_size"])
        str(header["key_id"])
    except (ValueError, KeyError, TypeError):
        raise CorruptArchive("the archive header is malformed") from None
    return header, hashlib.sha256(MAGIC + raw).digest()


def decrypted_chunks(stream, keyring: Keyring, expect_id: str | None = None) -> Iterator[bytes]:
    """The plaintext, chunk by chunk, each authenticated before it is given out; raises ``ArchiveError``
    for a wrong key, a changed or reordered chunk, a cut-off archive or trailing bytes."""
    header, aad = read_header(stream)
    if expect_id is not None and header.get("backup_id") != expect_id:
        raise CorruptArchive(f"the archive is of backup {header.get('backup_id')}, not {expect_id}")
    key = keyring.find(header["key_id"])
    if key is None:
        raise WrongKey(
            f"the archive was encrypted with key id {header['key_id']}; neither CRM_BACKUP_KEY "
            f"(id {keyring.current_id}) nor CRM_BACKUP_OLD_KEYS has it"
        )
    aead = AESGCM(key)
    limit = int(header["chunk_size"]) + TAG
    counter = 0
    while True:
        raw_length = stream.read(4)
        if len(raw_length) < 4:
            raise TruncatedArchive("the archive is cut off: it ends before its last chunk")
        (length,) = U32.unpack(raw_length)
        if length < TAG or length > limit:
            raise CorruptArchive(f"chunk {counter} has an impossible length")
        sealed = stream.read(length)
        if len(sealed) < length:
            raise TruncatedArchive("the archive is cut off in the middle of a chunk")
        for last in (False, True):
            try:
                plain = aead.decrypt(_nonce(header["nonce_prefix"], counter, last), sealed, aad)
                break
            except InvalidTag:
                continue
        else:
            raise CorruptArchive(f"chunk {counter} does not authenticate: the archive was changed or damaged")
        counter += 1
        yield plain
        if last:
            if stream.read(1):
                raise CorruptArchive("bytes follow the archive's last chunk")
            return


# ---- entries inside the encrypted stream

ENTRY, END = b"E", b"Z"


class EntryWriter:
    """Writes entries into an ``EncryptingWriter``: ``begin(meta)``, ``write(data)``..., ``end()``; each entry's
    data travels in length-prefixed frames (its size is not known in advance) and ends with an empty one."""

    def __init__(self, sink: EncryptingWriter):
        self.sink = sink

    def begin(self, meta: dict) -> None:
        raw = json.dumps(meta, sort_keys=True).encode()
        self.sink.write(ENTRY + U32.pack(len(raw)) + raw)

    def write(self, data: bytes) -> None:
        if data:
            self.sink.write(U32.pack(len(data)))
            self.sink.write(data)

    def end(self) -> None:
        self.sink.write(U32.pack(0))

    def finish(self) -> None:
        self.sink.write(END)
        self.sink.close()


class _Plain:
    """The decrypted stream as a file-like object with exact reads."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks = chunks
        self.buffer = b""
        self.offset = 0

    def read(self, n: int) -> bytes:
        parts = []
        while n > 0:
            if self.offset >= len(self.buffer):
                try:
                    self.buffer, self.offset = next(self.chunks), 0
                except StopIteration:
                    break
                continue
            piece = self.buffer[self.offset: self.offset + n]
            self.offset += len(piece)
            n -= len(piece)
            parts.append(piece)
        return b"".join(parts)

    def exactly(self, n: int) -> bytes:
        data = self.read(n)
        if len(data) < n:
            raise CorruptArchive("the archive's content ends too early")
        return data

    def drain(self) -> None:
        if self.read(1):
            raise CorruptArchive("data follows the archive's end marker")


def read_entries(chunks: Iterator[bytes]) -> Iterator[tuple[dict, Iterator[bytes]]]:
    """``(meta, data)`` for each entry; ``data`` must be consumed (or left) before the next entry is read."""
    plain = _Plain(chunks)
    while True:
        kind = plain.exactly(1)
        if kind == END:
            plain.drain()
            return
        if kind != ENTRY:
            raise CorruptArchive("the archive's content is malformed")
        (length,) = U32.unpack(plain.exactly(4))
        try:
            meta = json.loads(plain.exactly(length))
        except ValueError:
            raise CorruptArchive("an entry of the archive is malformed") from None
        frames = _frames(plain)
        yield meta, frames
        for _ in frames:  # whatever the caller left unread
            pass


def _frames(plain: _Plain) -> Iterator[bytes]:
    while True:
        (length,) = U32.unpack(plain.exactly(4))
        if length == 0:
            return
        yield plain.exactly(length)
