"""The audit log: who read, listed, changed or exported which clients, and who logged in (gateway/audit.py)."""

from __future__ import annotations

from crm_common.contracts.audit import AuditEntrySchema, AuditQuerySchema, AuditVerifySchema
from crm_common.errors import BadRequest
from crm_common.schemas import load_or_raise, page_schema
from gateway import auditlog
from gateway.http import api
from gateway.routes.common import query_args

AuditPage = page_schema(AuditEntrySchema, "AuditPage")


class AuditRoutes:
    @api("GET", "/audit", roles=("admin", "head"), query=AuditQuerySchema, response=AuditPage, errors=(400, 403),
         summary="The audit log", tag="audit")
    def list_audit(self, request, caller):
        """Newest first: ``{id, user_id, branch_id, action, ref_type, ref_id, count, at, request_id, address}``;
        filters ``user_id``, ``action`` (read, list, create, update, archive, restore, merge, login, export,
        offboard), ``from``, ``to``. A head sees their branch's entries, an administrator everyone's.
        ``list`` entries count the clients the page revealed."""
        filters = load_or_raise(AuditQuerySchema, query_args(request), BadRequest)
        filters["from"] = filters.pop("from_", None)
        return auditlog.list_entries(self.db.reader, caller, filters)

    @api("GET", "/audit/verify", roles=("admin",), response=AuditVerifySchema, errors=(403,),
         summary="Check the audit log's hash chain", tag="audit")
    def verify_audit(self, request, caller):
        """Recomputes every entry's hash, oldest first: ``{"ok": true, "checked": 1042, "first_bad": null}``, or the
        first entry found edited or missing (``{"id": ..., "reason": "hash_mismatch"}``; reasons
        ``hash_mismatch``, ``broken_link``, ``sequence_gap``, ``head_mismatch``: entries cut off the end)."""
        return auditlog.verify(self.db.reader)
