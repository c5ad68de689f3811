"""The archive: AES-256-GCM in authenticated chunks; a changed, reordered, cut or foreign archive is refused."""

import io
import os
import struct

import pytest

from backup.archive import (
    MAGIC,
    CorruptArchive,
    EncryptingWriter,
    EntryWriter,
    TruncatedArchive,
    WrongKey,
    decrypted_chunks,
    read_entries,
)
from backup.keys import Keyring, generate_key, key_id, parse_key

KEY = os.urandom(32)
BACKUP_ID = "2b1f0c4e-8d7a-4f61-9c3e-5a6b7c8d9e0f"


def keyring(*keys: bytes) -> Keyring:
    keys = keys or (KEY,)
    return Keyring(current=keys[0], by_id={key_id(k): k for k in keys})


def make_archive(parts: dict[str, bytes], key: bytes = KEY, chunk_size: int = 64) -> bytes:
    out = io.BytesIO()
    entries = EntryWriter(EncryptingWriter(out, key, BACKUP_ID, "2026-05-10T03:00:00Z", chunk_size=chunk_size))
    for name, data in parts.items():
        entries.begin({"kind": "part", "service": name})
        for offset in range(0, len(data), 50):
            entries.write(data[offset: offset + 50])
        entries.end()
    entries.finish()
    return out.getvalue()


def read_all(raw: bytes, ring: Keyring | None = None) -> dict[str, bytes]:
    return {meta["service"]: b"".join(data)
            for meta, data in read_entries(decrypted_chunks(io.BytesIO(raw), ring or keyring(), BACKUP_ID))}


def chunk_offsets(raw: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every sealed chunk after the header."""
    (header_length,) = struct.unpack(">I", raw[len(MAGIC): len(MAGIC) + 4])
    offset = len(MAGIC) + 4 + header_length
    found = []
    while offset < len(raw):
        (length,) = struct.unpack(">I", raw[offset: offset + 4])
        found.append((offset, length + 4))
        offset += 4 + length
    return found


PARTS = {"clients": os.urandom(1000), "deals": b"", "gateway": b"x" * 333}


def test_what_is_written_is_read_back_entry_by_entry():
    raw = make_archive(PARTS)

    assert read_all(raw) == PARTS
    assert len(chunk_offsets(raw)) > 10  # many chunks, each sealed on its own


def test_the_content_is_not_readable_without_decryption():
    secret = b"Ivan Petrov +79161234567 " * 20
    assert secret[:25] not in make_archive({"clients": secret})


def test_a_changed_byte_anywhere_in_the_encrypted_stream_is_detected():
    raw = bytearray(make_archive(PARTS))
    offset, length = chunk_offsets(bytes(raw))[3]
    raw[offset + length // 2] ^= 0x01

    with pytest.raises(CorruptArchive, match="does not authenticate"):
        read_all(bytes(raw))


def test_a_changed_header_is_detected():
    raw = make_archive(PARTS)
    tampered = raw.replace(b'"created_at": "2026-05-10T03:00:00Z"', b'"created_at": "2026-05-11T03:00:00Z"')
    assert tampered != raw

    with pytest.raises(CorruptArchive):
        read_all(tampered)


def test_reordered_chunks_are_detected():
    raw = make_archive(PARTS)
    chunks = chunk_offsets(raw)
    (a, la), (b, lb) = chunks[2], chunks[3]
    swapped = raw[:a] + raw[b: b + lb] + raw[a: a + la] + raw[b + lb:]

    with pytest.raises(CorruptArchive, match="chunk 2"):
        read_all(swapped)


@pytest.mark.parametrize("cut", ["last chunk", "mid chunk", "header", "one byte"])
def test_a_truncated_archive_is_detected_wherever_it_was_cut(cut):
    raw = make_archive(PARTS)
    last_offset, _ = chunk_offsets(raw)[-1]
    end = {"last chunk": last_offset, "mid chunk": last_offset - 7, "header": 12, "one byte": len(raw) - 1}[cut]

    with pytest.raises(TruncatedArchive):
        read_all(raw[:end])


def test_bytes_after_the_last_chunk_are_refused():
    with pytest.raises(CorruptArchive, match="follow"):
        read_all(make_archive(PARTS) + b"\x00")


def test_an_archive_made_with_another_key_names_the_key_it_needs():
    other = os.urandom(32)
    raw = make_archive(PARTS, key=other)

    with pytest.raises(WrongKey) as error:
        read_all(raw)

    assert key_id(other) in str(error.value)


def test_an_old_key_still_reads_the_archives_it_made():
    old, new = os.urandom(32), os.urandom(32)
    raw = make_archive(PARTS, key=old)

    assert read_all(raw, keyring(new, old)) == PARTS


def test_an_archive_of_another_backup_is_refused():
    raw = make_archive(PARTS)

    with pytest.raises(CorruptArchive, match="not"):
        list(decrypted_chunks(io.BytesIO(raw), keyring(), "00000000-0000-0000-0000-000000000000"))


def test_a_file_that_is_not_an_archive_is_refused():
    with pytest.raises(CorruptArchive, match="not a CRM backup"):
        read_all(b"PGDMP\x01\x0e\x00" + os.urandom(100))


def test_keys_are_read_as_base64_or_hex_and_anything_else_is_refused():
    key = os.urandom(32)
    import base64

    from crm_common.config import ConfigError

    assert parse_key(base64.urlsafe_b64encode(key).decode().rstrip("=")) == key
    assert parse_key(base64.b64encode(key).decode()) == key
    assert parse_key(key.hex()) == key
    assert len(parse_key(generate_key())) == 32
    with pytest.raises(ConfigError, match="CRM_BACKUP_KEY"):
        parse_key("correct horse battery staple")


def test_the_writer_holds_one_chunk_in_memory_whatever_the_size():
    out = io.BytesIO()
    writer = EncryptingWriter(out, KEY, BACKUP_ID, "2026-05-10T03:00:00Z", chunk_size=1024)
    for _ in range(200):
        writer.write(os.urandom(700))
        assert len(writer.buffer) <= 1024
    writer.close()
    assert len(b"".join(decrypted_chunks(io.BytesIO(out.getvalue()), keyring(), BACKUP_ID))) == 200 * 700
