"""Client exports: a CSV file of the clients a filter matches, made in the background (gateway/exports.py), for
administrators and the heads they allow; and tracing a leaked file back to its export."""

from __future__ import annotations

import tempfile

from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from crm_common.contracts.exports import (
    ExportAcceptedSchema,
    ExportCreateSchema,
    ExportQuerySchema,
    ExportSchema,
    ExportTraceResultSchema,
    ExportTraceSchema,
)
from crm_common.schemas import page_schema
from gateway import exports
from gateway.http import api
from gateway.routes.common import query_args

ExportPage = page_schema(ExportSchema, "ExportPage")
EXPORT_ROLES = ("admin", "head")


class ExportRoutes:
    @api("POST", "/exports", status=202, roles=EXPORT_ROLES, body=ExportCreateSchema, response=ExportAcceptedSchema,
         errors=(403, 422, 429), summary="Export clients to a CSV file", tag="exports")
    def create_export(self, request, caller):
        """``{"filter": {"tag": "vip", "created_from": "2026-01-01"}}`` (the filters of ``GET /clients``; no
        ``cursor`` or ``limit``) → 202 ``{"id", "status": "running"}``; ``GET /exports/{id}`` follows it and
        ``GET /exports/{id}/file`` downloads it. Administrators, and heads an administrator granted ``can_export``
        (403 otherwise); a head's file holds their branch's clients. The matches are counted first: an export that
        would take the caller past ``CRM_EXPORT_DAILY_ROWS`` rows today is 429 ``export_cap`` with ``Retry-After``
        until midnight UTC."""
        prepared = exports.prepare(self.db.reader, caller, request.json_body)
        count = self.clients_rpc.count_clients(caller.dump(), prepared["query"])["count"]
        with self.db.transaction():
            accepted = exports.create_export(self.db, self.settings, caller, prepared, count)
        self.audit.record(caller, "export", "export", accepted["id"], count, request)
        self.wake_exports()
        return 202, accepted, {"Location": f"/api/v1/exports/{accepted['id']}"}

    @api("GET", "/exports", roles=EXPORT_ROLES, query=ExportQuerySchema, response=ExportPage, errors=(400, 403),
         summary="List exports", tag="exports")
    def list_exports(self, request, caller):
        """Newest first; a head sees their own exports, an administrator everyone's (``?user_id=``);
        ``?status=done``."""
        return exports.list_exports(self.db.reader, caller, query_args(request))

    @api("GET", "/exports/<export_id>", roles=EXPORT_ROLES, response=ExportSchema, errors=(403, 404),
         summary="One export", tag="exports")
    def get_export(self, request, caller, export_id):
        """``{id, status: running|done|failed|expired, user_id, filter, rows, created_at, finished_at, expires_at,
        error}``; ``rows`` counts the clients in the file."""
        return exports.get_export(self.db.reader, caller, export_id)

    @api("GET", "/exports/<export_id>/file", roles=EXPORT_ROLES, raw=True, produces="text/csv",
         errors=(403, 404, 409, 410), summary="An export's CSV file", tag="exports")
    def get_export_file(self, request, caller, export_id):
        """``text/csv``, UTF-8 with a BOM: the first line names the export, its user and its time, the second is the
        header (``id,kind,name,phones,emails,source,tags,owner_id,branch_id,archived,created_at,updated_at,
        custom_fields``), then one client per line. 409 while the export runs or after it failed; 410 ``gone``
        once the file has expired (``CRM_EXPORT_TTL_S`` after it was made)."""
        export, chunks = exports.open_file(self.db.reader, caller, export_id)
        self.audit.record(caller, "export", "export_file", export.id, export.rows or 0, request)  # each download
        spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024, mode="w+b")
        for chunk in chunks:
            spool.write(chunk)
        spool.seek(0)
        return Response(
            wrap_file(request.environ, spool), status=200, content_type="text/csv; charset=utf-8",
            direct_passthrough=True,
            headers={"Content-Disposition": f'attachment; filename="clients-export-{export.id}.csv"'},
        )

    @api("POST", "/exports/trace", roles=("admin",), body=ExportTraceSchema, response=ExportTraceResultSchema,
         errors=(403, 422), summary="Find the export a leaked file came from", tag="exports")
    def trace_export(self, request, caller):
        """Administrators. ``{"text": "<the leaked file, pasted>"}`` or ``{"phones": [...], "emails": [...],
        "client_ids": [...]}`` → ``{"items": [{export_id, user_id, created_at, markers, matched: [{kind, value}]}]}``:
        the exports whose marker rows are among them, the most matches first (phones match on their last ten
        digits, however written)."""
        return exports.trace(self.db.reader, caller, request.json_body)
