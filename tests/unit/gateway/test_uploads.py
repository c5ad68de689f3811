"""Multipart uploads: read as a stream with files spooled to disk, refused beyond CRM_IMPORT_MAX_MB."""

import hashlib
import io
import tempfile

import pytest
from werkzeug.test import EnvironBuilder, encode_multipart

from crm_common.config import Settings
from crm_common.errors import BadRequest, PayloadTooLarge
from gateway.uploads import MIB, read_upload

SETTINGS = Settings(import_max_mb=1)


def request(body: bytes, content_type: str, headers=None):
    return EnvironBuilder(path="/api/v1/imports", method="POST", data=body, content_type=content_type,
                          headers=headers).get_request()


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    """A multipart/form-data body as a browser or curl -F sends it."""
    builder = EnvironBuilder(method="POST", data={
        **fields, **{name: (io.BytesIO(content), filename) for name, (filename, content) in files.items()}
    })
    boundary = "----crm-test-boundary"
    _, body = encode_multipart(builder.files.to_dict() | builder.form.to_dict(), boundary=boundary)
    return body, f"multipart/form-data; boundary={boundary}"


def test_the_form_and_its_files_are_read_and_each_file_is_identified_by_size_and_digest():
    content = "ФИО;Телефон\nИван;8 916 123-45-67\n".encode()
    body, content_type = multipart({"mapping": '{"name": "ФИО"}', "dry_run": "true"}, {"file": ("база.csv", content)})
    req = request(body, content_type)

    described = read_upload(req, SETTINGS)

    assert described == {
        "fields": {"mapping": '{"name": "ФИО"}', "dry_run": "true"},
        "files": {"file": {"filename": "база.csv", "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}},
    }
    assert req.files["file"].stream.read() == content  # left at its start for the route


def test_a_large_file_is_spooled_to_disk_not_kept_in_memory():
    body, content_type = multipart({}, {"file": ("big.csv", b"a,b\n" + b"1,2\n" * 200_000)})
    req = request(body, content_type)

    read_upload(req, Settings(import_max_mb=2))

    stream = req.files["file"].stream
    assert isinstance(stream, tempfile.SpooledTemporaryFile)
    assert stream._rolled, "a file over 500 KB is written to a temporary file, not kept in memory"


def test_a_body_over_the_limit_is_refused_before_it_is_read():
    body, content_type = multipart({}, {"file": ("big.csv", b"x" * (2 * MIB + 10))})

    with pytest.raises(PayloadTooLarge) as error:
        read_upload(request(body, content_type), SETTINGS)
    assert "CRM_IMPORT_MAX_MB" in error.value.message and "file" in error.value.fields


def test_a_file_over_the_limit_in_a_body_within_the_allowance_is_refused():
    body, content_type = multipart({}, {"file": ("big.csv", b"x" * (MIB + 100))})

    with pytest.raises(PayloadTooLarge):
        read_upload(request(body, content_type), SETTINGS)


def test_a_chunked_body_without_a_length_is_read_and_held_to_the_limit():
    small, content_type = multipart({"dry_run": "false"}, {"file": ("a.csv", b"a\n1\n")})
    big, _ = multipart({}, {"file": ("b.csv", b"y" * (3 * MIB))})
    for body, fits in ((small, True), (big, False)):
        req = request(body, content_type, headers={"Transfer-Encoding": "chunked"})
        req.environ.pop("CONTENT_LENGTH", None)
        if fits:
            assert read_upload(req, SETTINGS)["files"]["file"]["size"] == 4
        else:
            with pytest.raises(PayloadTooLarge):
                read_upload(req, SETTINGS)


def test_a_body_that_is_not_multipart_is_a_bad_request_naming_the_content_type():
    with pytest.raises(BadRequest) as error:
        read_upload(request(b'{"file": "x"}', "application/json"), SETTINGS)

    assert "Content-Type" in error.value.fields
