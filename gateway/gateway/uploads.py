"""File uploads: a ``multipart/form-data`` body read as a stream, its files spooled to disk by werkzeug, so a
gateway's memory does not grow with the size of a file. Used by routes declared with ``@api(..., upload=...)``
(today ``POST /imports``), after authentication and the role check, so nobody unknown makes the gateway
read a large body."""

from __future__ import annotations

import hashlib

from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from crm_common.config import Settings
from crm_common.errors import BadRequest, PayloadTooLarge

MIB = 1024 * 1024
FORM_ALLOWANCE = MIB  # the form's other fields and the multipart framing, beside the file itself
FIELD_BYTES = MIB  # largest field that is not a file (the mapping); werkzeug keeps fields in memory


def max_file_bytes(settings: Settings) -> int:
    return settings.import_max_mb * MIB


def read_upload(request, settings: Settings) -> dict:
    """Parse the form into ``request.form`` / ``request.files``; 413 beyond ``CRM_IMPORT_MAX_MB``.

    Returns what identifies the request for ``Idempotency-Key``: the fields, and per file its name, size and
    SHA-256 (the same key with another file is another request)."""
    if request.mimetype != "multipart/form-data":
        raise BadRequest(
            "Content-Type must be multipart/form-data",
            fields={"Content-Type": [f"Expected multipart/form-data, got {request.mimetype or 'nothing'}."]},
        )
    limit = max_file_bytes(settings)
    if (request.content_length or 0) > limit + FORM_ALLOWANCE:
        raise _too_large(settings)
    if request.content_length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        # the server de-chunks the body; werkzeug reads a body of unknown length only when told it ends
        request.environ["wsgi.input_terminated"] = True
    request.max_content_length = limit + FORM_ALLOWANCE
    request.max_form_memory_size = FIELD_BYTES
    try:
        fields, files = request.form.to_dict(), request.files
    except RequestEntityTooLarge:
        raise _too_large(settings) from None
    except ClientDisconnected:
        raise BadRequest("the upload was cut off", fields={"body": ["The body ended before it was complete."]}) from None
    described = {}
    for name, storage in files.items():
        size, digest = _measure(storage.stream)
        if size > limit:
            raise _too_large(settings)
        described[name] = {"filename": storage.filename, "size": size, "sha256": digest}
    return {"fields": fields, "files": described}


def _too_large(settings: Settings) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the file is larger than {settings.import_max_mb} MB (CRM_IMPORT_MAX_MB); split it into smaller files",
        fields={"file": [f"Larger than {settings.import_max_mb} MB."]},
    )


def _measure(stream) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    stream.seek(0)
    for chunk in iter(lambda: stream.read(MIB), b""):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return size, digest.hexdigest()
