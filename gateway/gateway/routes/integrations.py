"""Integrations: API keys, the telephone exchange's events, calls and their recordings (docs/integrations.md)."""

from __future__ import annotations

from werkzeug.wrappers import Response

from crm_common.contracts.integrations import (
    ApiKeyCreatedSchema,
    ApiKeyCreateSchema,
    ApiKeyQuerySchema,
    ApiKeySchema,
    CallSchema,
    RecordingSchema,
    TelephonyEventSchema,
)
from crm_common.schemas import page_schema
from gateway import apikeys, recordings, telephony
from gateway.http import api, json_response
from gateway.routes.common import check_named_branch, query_args
from gateway.streaming import StreamEntrypoint

ApiKeyPage = page_schema(ApiKeySchema, "ApiKeyPage")


class IntegrationRoutes:
    @api("POST", "/api-keys", status=201, roles=("admin",), body=ApiKeyCreateSchema, response=ApiKeyCreatedSchema,
         errors=(403, 422), summary="Create an API key", tag="integrations")
    def create_api_key(self, request, caller):
        """Admin only. ``{"name": "Asterisk MSK", "branch_id": "...", "scopes": ["telephony:write"]}`` → 201 with
        ``key`` (``crm_...``): shown this once, only its hash is kept. Send it as ``Authorization: Bearer crm_...``
        or ``X-Api-Key: crm_...``. Scopes: touchpoints:write, telephony:write, clients:read, deals:read,
        webhooks:manage; an unknown one is 422."""
        with self.db.transaction():
            return 201, apikeys.create_key(self.db, caller, request.json_body)

    @api("GET", "/api-keys", roles=("admin",), query=ApiKeyQuerySchema, response=ApiKeyPage, errors=(403,),
         summary="List API keys", tag="integrations")
    def list_api_keys(self, request, caller):
        """Admin only: every key, newest first, without the key itself (its ``prefix`` tells it); ``?revoked=``."""
        return apikeys.list_keys(self.db.reader, caller, query_args(request))

    @api("DELETE", "/api-keys/<id>", roles=("admin",), response=ApiKeySchema, errors=(403, 404),
         summary="Revoke an API key", tag="integrations")
    def revoke_api_key(self, request, caller, id):
        """Admin only. The key stops working at once, on every gateway (401 from the next request on)."""
        with self.db.transaction():
            key, forget = apikeys.revoke_key(self.db, caller, id)
        self.auth.forget(forget)
        return key

    @api("POST", "/telephony/events", roles=("admin",), scopes=("telephony:write",), body=TelephonyEventSchema,
         response=CallSchema, errors=(403, 422), summary="An event of the telephone exchange", tag="telephony")
    def telephony_event(self, request, caller):
        """The exchange reports a call: ``{"call_id": "1700000000.42", "event": "ringing", "direction": "in",
        "from": "+79161234567", "to": "101", "at": "2026-11-30T10:00:00Z"}`` → the call. An incoming ``ringing``
        answers ``route_to: {user_id, phone, extension}``: the client's owner, or (owner away or off shift) the
        branch's head, or a manager on shift; an unknown number becomes a client (round robin). Then
        ``answered`` (``user_id``), ``ended`` (``duration_s``) or ``missed`` (a call-back task for the owner).
        Each event counts once per call; an event of a call never rung is 422."""
        body = request.json_body
        check_named_branch(self.db.reader, body)
        directory = telephony.directory(self.db.reader, caller, body, self.settings.default_region, self.auth.cache)
        return self.clients_rpc.record_call_event(caller.dump(), body, directory)

    @api("GET", "/calls/<id>", scopes=("clients:read",), response=CallSchema, errors=(404,), summary="One call",
         tag="telephony")
    def get_call(self, request, caller, id):
        """A call of a client the caller may see, with its ``recording`` (or null)."""
        call = self.clients_rpc.get_call(caller.dump(), id)
        row = recordings.existing(self.db.reader, call["id"])
        return {**call, "recording": recordings.dump(row) if row is not None else None}

    @api("PUT", "/calls/<id>/recording", entrypoint=StreamEntrypoint, upload_types=recordings.AUDIO_TYPES,
         max_upload_setting="recording_max_mb", status=201, answers={200: RecordingSchema}, roles=("admin", "head"),
         scopes=("telephony:write",), response=RecordingSchema, errors=(403, 404, 409, 413, 415),
         summary="Upload a call's recording", tag="telephony")
    def put_recording(self, request, caller, id):
        """The body is the audio itself (``Content-Type: audio/mpeg``, ``audio/wav`` or ``audio/ogg``), at most
        ``CRM_RECORDING_MAX_MB`` (413). Its first bytes must be that kind of audio (415). → 201 ``{call_id,
        content_type, size_bytes, sha256, duration_s, created_at}``; the same bytes again → 200; other bytes for a
        call that has a recording → 409 (never replaced). A body cut short is discarded: nothing is stored."""
        call = self.clients_rpc.get_call(caller.dump(), id)
        received = recordings.receive(request, self.recordings, int(self.settings.recording_max_mb * 1024 * 1024))
        with self.db.transaction():
            return recordings.keep(self.db, self.recordings, call, received)

    @api("GET", "/calls/<id>/recording", entrypoint=StreamEntrypoint, download_types=recordings.AUDIO_TYPES,
         scopes=("clients:read",), errors=(404, 416), summary="Play or download a call's recording", tag="telephony")
    def get_recording(self, request, caller, id):
        """The audio, to whoever may see the call's client; ``Range: bytes=0-1023`` → 206 with ``Content-Range``
        (a range past the end: 416). ``Accept-Ranges: bytes`` says it may be asked in parts."""
        call = self.clients_rpc.get_call(caller.dump(), id)
        row = recordings.existing(self.db.reader, call["id"])
        if row is None:
            raise recordings.RecordingNotFound("the call has no recording (or it was deleted after its keeping time)")
        try:
            span = recordings.byte_range(request.headers.get("Range"), row.size_bytes)
        except recordings.RangeNotSatisfiable as exc:
            return json_response(416, exc.to_body(), {"Content-Range": f"bytes */{row.size_bytes}",
                                                      "Accept-Ranges": "bytes"})
        first, last = span if span is not None else (0, row.size_bytes - 1)
        try:
            chunks = self.recordings.read(row.store_key, first, last) if row.size_bytes else iter(())
        except FileNotFoundError:
            raise recordings.RecordingNotFound("the recording's file is missing from the store") from None
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(last - first + 1 if row.size_bytes else 0)}
        status = 200
        if span is not None:
            status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{row.size_bytes}"
        return Response(chunks, status=status, headers=headers, content_type=row.content_type,
                        direct_passthrough=True)
