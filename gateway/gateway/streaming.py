"""Routes whose body or answer is a stream of bytes rather than JSON: call recordings.

``@api("PUT", path, entrypoint=StreamEntrypoint, upload_types=(...), max_upload_setting="recording_max_mb")``
declares a route whose body the route itself reads from ``request.environ["wsgi.input"]`` in chunks, so memory
does not grow with the size of the upload; the entrypoint only checks, before any worker starts, that a declared
length is within the limit (413); the route checks the type (415, ``upload_types``) once the caller is known.
``download_types=(...)`` documents an answer of bytes (with ``Range`` support: 206, 416).
Authentication, rate limits, roles and scopes are the ``api()`` wrapper's, as for every route.
"""

from __future__ import annotations

from crm_common.config import Settings
from crm_common.errors import CrmError, PayloadTooLarge
from gateway.http import ApiEntrypoint

CHUNK = 64 * 1024


class UnsupportedMediaType(CrmError):
    """The body is not of a type this route takes."""

    code = "unsupported_media_type"
    status = 415


class RangeNotSatisfiable(CrmError):
    """The requested range is outside the content."""

    code = "range_not_satisfiable"
    status = 416


class StreamEntrypoint(ApiEntrypoint):
    def __init__(self, method, path, *, upload_types: tuple[str, ...] = (), download_types: tuple[str, ...] = (),
                 max_upload_setting: str | None = None, **kwargs):
        super().__init__(method, path, **kwargs)
        self.upload_types = upload_types
        self.download_types = download_types
        self.max_upload_setting = max_upload_setting

    def setup(self):
        super().setup()
        settings = Settings.from_config(self.container.config)
        megabytes = getattr(settings, self.max_upload_setting) if self.max_upload_setting else 0
        self.max_upload_bytes = int(megabytes * 1024 * 1024)

    def _parse_body(self, request):
        """Nothing is read here: the route streams the body. Only what the headers already say is checked."""
        if not self.upload_types:
            return None
        if (request.content_length or 0) > self.max_upload_bytes:
            raise PayloadTooLarge(f"the body is larger than {self.max_upload_bytes} bytes")
        return None

    def response_from_exception(self, exc, request=None):
        response = super().response_from_exception(exc, request)
        if request is not None and self.upload_types and response.status_code >= 400:
            # the body was not read (or not all of it): the connection cannot carry another request
            response.headers["Connection"] = "close"
        return response


def read_body(request, limit: int):
    """The request body in chunks, as it arrives; raises ``PayloadTooLarge`` past ``limit`` and
    ``TruncatedUpload`` when the client stops before its Content-Length."""
    stream = request.environ["wsgi.input"]
    expected = request.content_length
    received = 0
    while True:
        try:
            chunk = stream.read(CHUNK)
        except (OSError, ValueError) as exc:  # the connection broke mid-body
            raise TruncatedUpload(f"the upload broke off after {received} bytes ({exc.__class__.__name__})") from None
        if not chunk:
            break
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        yield chunk
    if expected is not None and received < expected:
        raise TruncatedUpload(f"the upload ended after {received} of {expected} bytes")


class TruncatedUpload(CrmError):
    """The body ended before its declared length: nothing of it is kept."""

    code = "bad_request"
    status = 400
