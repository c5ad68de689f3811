"""The S3 recordings store against a real S3 API server on 127.0.0.1: moto's server (python -m moto.server), run
by this test. MinIO itself is not used here (no MinIO server is packaged for this machine); the store speaks the
plain S3 API through MinIO's client, which is what moto serves."""

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from nameko.testing.utils import find_free_port

from crm_common.config import Settings
from crm_common.testing import audio
from gateway.recordings import S3Store


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    port = find_free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              cwd=tmp_path_factory.mktemp("moto"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except requests.RequestException:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("moto's S3 server did not start")
            time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    server.terminate()
    server.wait(10)


@pytest.fixture
def store(s3_endpoint):
    settings = Settings(recording_s3_endpoint=s3_endpoint, recording_s3_bucket="crm-recordings",
                        recording_s3_access_key="test", recording_s3_secret_key="testtest",
                        recording_s3_region="us-east-1", recording_s3_secure=False)
    store = S3Store(settings)
    if not store.client.bucket_exists("crm-recordings"):
        store.client.make_bucket("crm-recordings")
    return store


def test_a_recording_goes_into_the_bucket_whole_and_comes_back_in_ranges(store):
    data = audio.padded(audio.wav(1.0), 6 * 1024 * 1024)  # over one multipart part
    source = store.incoming() / "upload.part"
    source.write_bytes(data)

    store.put("call-1/abc.wav", source, "audio/wav")

    assert not source.exists() and store.exists("call-1/abc.wav")
    assert b"".join(store.read("call-1/abc.wav", 0, len(data) - 1)) == data
    assert b"".join(store.read("call-1/abc.wav", 1000, 1999)) == data[1000:2000]
    stat = store.client.stat_object("crm-recordings", "recordings/call-1/abc.wav")
    assert stat.size == len(data) and stat.content_type == "audio/wav"


def test_deleting_and_the_sweep_remove_objects(store):
    for key in ("call-2/a.mp3", "call-3/b.mp3"):
        source = store.incoming() / "x.part"
        source.write_bytes(audio.mp3(0.5))
        store.put(key, source, "audio/mpeg")
    store.delete("call-2/a.mp3")
    assert not store.exists("call-2/a.mp3") and store.exists("call-3/b.mp3")

    assert store.sweep(datetime.now(UTC) - timedelta(days=1)) == 0  # nothing is that old
    assert store.sweep(datetime.now(UTC) + timedelta(seconds=5)) >= 1
    assert not store.exists("call-3/b.mp3")
