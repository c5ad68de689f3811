"""Backups (the backup service): start one, list them, read one, verify one. Administrators only."""

from __future__ import annotations

from crm_common.contracts.backup import (
    BackupAcceptedSchema,
    BackupQuerySchema,
    BackupSchema,
    VerificationAcceptedSchema,
)
from crm_common.schemas import page_schema
from gateway.http import api
from gateway.routes.common import query_args

BackupPage = page_schema(BackupSchema, "BackupPage")


class BackupRoutes:
    @api("POST", "/backups", status=202, roles=("admin",), response=BackupAcceptedSchema, errors=(403, 409),
         summary="Start a backup", tag="backups")
    def start_backup(self, request, caller):
        """Back up every database now, in the background: 202 ``{"id": ..., "status": "running"}``; follow it
        with ``GET /backups/{id}``. 409 while another backup runs."""
        return 202, self.backup_rpc.start_backup(caller.dump())

    @api("GET", "/backups", roles=("admin",), query=BackupQuerySchema, response=BackupPage, errors=(400, 403),
         summary="List backups", tag="backups")
    def list_backups(self, request, caller):
        """Newest first: ``?status=done&limit=20``."""
        return self.backup_rpc.list_backups(caller.dump(), query_args(request))

    @api("GET", "/backups/<backup_id>", roles=("admin",), response=BackupSchema, errors=(403, 404),
         summary="One backup", tag="backups")
    def get_backup(self, request, caller, backup_id):
        """``{id, status: running|done|failed, trigger: manual|schedule, started_at, finished_at, size_bytes,
        sha256, services: {name: {size_bytes, sha256, tables: {name: rows}}}, copies: [{target, status}],
        verified, verified_at, error}``."""
        return self.backup_rpc.get_backup(caller.dump(), backup_id)

    @api("POST", "/backups/<backup_id>/verify", status=202, roles=("admin",), response=VerificationAcceptedSchema,
         errors=(403, 404, 409), summary="Verify a backup", tag="backups")
    def verify_backup(self, request, caller, backup_id):
        """Restore the backup into scratch databases and compare every table's rows and content with what was
        captured, in the background: 202 ``{"id": ..., "status": "done", "verifying": true}``; ``GET /backups/{id}``
        shows ``verified`` and ``verified_at`` when done. 409 for a backup that is not finished, or while another
        verification runs."""
        return 202, self.backup_rpc.verify_backup(caller.dump(), backup_id)
