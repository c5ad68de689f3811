"""Recordings: what counts as audio, byte ranges, and a folder store that never shows half a file."""

import hashlib
import io
import os
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from crm_common.errors import PayloadTooLarge
from crm_common.testing import audio
from gateway.recordings import FolderStore, byte_range, receive, sniff
from gateway.streaming import RangeNotSatisfiable, TruncatedUpload, UnsupportedMediaType


@pytest.mark.parametrize(("data", "kind"), [
    (audio.wav(0.1), "audio/wav"), (audio.mp3(0.1), "audio/mpeg"), (b"ID3\x04\x00" + bytes(20), "audio/mpeg"),
    (audio.ogg(0.1), "audio/ogg"), (b"%PDF-1.7", None), (b"RIFF\x00\x00\x00\x00AVI LIST", None), (b"", None),
    (b"\xff\xd8\xff\xe0 a jpeg", None),
])
def test_the_first_bytes_say_what_audio_it_is(data, kind):
    assert sniff(data[:16]) == kind


@pytest.mark.parametrize(("header", "span"), [
    (None, None), ("bytes=0-99", (0, 99)), ("bytes=900-", (900, 999)), ("bytes=-100", (900, 999)),
    ("bytes=990-5000", (990, 999)), ("bytes=-5000", (0, 999)), ("bytes=0-1,5-6", None), ("items=0-1", None),
    ("bytes=5-1", None), ("bytes=-", None),
])
def test_a_single_byte_range_is_taken_and_anything_else_means_the_whole(header, span):
    assert byte_range(header, 1000) == span


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_a_range_outside_the_content_is_not_satisfiable(header):
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 1000)


def upload(data: bytes, content_type="audio/wav", length=None, pieces=None):
    stream = io.BytesIO(data)
    return SimpleNamespace(environ={"wsgi.input": stream}, mimetype=content_type,
                           content_length=len(data) if length is None else length)


def test_an_upload_is_hashed_checked_and_moved_into_the_store_whole(tmp_path):
    store = FolderStore(tmp_path)
    data = audio.wav(2.0)
    received = receive(upload(data), store, 10_000_000)

    assert received["sha256"] == hashlib.sha256(data).hexdigest() and received["duration_s"] == pytest.approx(2.0)
    store.put("call/x.wav", received["path"], "audio/wav")
    assert (tmp_path / "call" / "x.wav").read_bytes() == data and list(store.incoming().iterdir()) == []
    assert b"".join(store.read("call/x.wav", 10, 19)) == data[10:20]


@pytest.mark.parametrize(("request_", "error"), [
    (upload(audio.wav(0.1), length=3999), TruncatedUpload),
    (upload(audio.wav(0.1), content_type="audio/mpeg"), UnsupportedMediaType),
    (upload(b"plain text, not audio" * 10), UnsupportedMediaType),
    (upload(audio.padded(audio.wav(0.1), 5000), length=None), PayloadTooLarge),
])
def test_a_refused_upload_leaves_nothing_behind(tmp_path, request_, error):
    store = FolderStore(tmp_path)
    with pytest.raises(error):
        receive(request_, store, 4000)
    assert list(store.incoming().iterdir()) == [] and [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_sweep_deletes_old_files_and_abandoned_uploads_only(tmp_path):
    store = FolderStore(tmp_path)
    old, new, stale = tmp_path / "a" / "old.wav", tmp_path / "b" / "new.wav", store.incoming() / "x.part"
    for path in (old, new, stale):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    long_ago = time.time() - 3 * 86400
    os.utime(old, (long_ago, long_ago))
    os.utime(stale, (long_ago, long_ago))

    assert store.sweep(datetime.now(UTC) - timedelta(days=1)) == 2
    assert not old.exists() and not stale.exists() and new.exists()
