"""Imports: a client base brought in from a CSV file. The gateway reads and checks the file and hands its
mapped rows to the clients service in chunks; the clients service imports them in the background."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator

import eventlet
from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from crm_common.contracts.imports import (
    ROWS_PER_CALL,
    ImportFormSchema,
    ImportQuerySchema,
    ImportSchema,
)
from crm_common.errors import ValidationError
from crm_common.schemas import load_or_raise, page_schema
from gateway import identity
from gateway.csvimport import CsvFile, map_row, plan
from gateway.http import api
from gateway.routes.common import query_args
from gateway.uploads import FIELD_BYTES

ImportPage = page_schema(ImportSchema, "ImportPage")
FORM_PARTS = ("file", "mapping", "on_duplicate", "dry_run", "branch_id")
ERRORS_PER_CALL = 5000
ERRORS_CSV_HEADER = ("row", "field", "column", "message")
IMPORT_ROLES = ("admin", "head")


class ImportRoutes:
    @api("POST", "/imports", status=202, roles=IMPORT_ROLES, upload=ImportFormSchema, response=ImportSchema,
         errors=(403, 413, 422), summary="Import clients from a CSV file", tag="imports")
    def create_import(self, request, caller):
        """``multipart/form-data``: ``file`` (CSV, UTF-8 or Windows-1251, comma or semicolon), ``mapping`` (JSON:
        ``{"name": "ФИО", "phones": ["Телефон", "Моб."], "emails": ["Email"], "tags": "Метки",
        "custom_fields": {"inn": "ИНН"}, "owner_email": "Менеджер"}``), ``on_duplicate`` (skip | merge |
        create_anyway), ``dry_run`` (true | false), ``branch_id`` (an administrator's choice of branch).

        ``curl -F file=@base.csv -F 'mapping={"name": "ФИО", "phones": ["Телефон"]}' -F on_duplicate=merge ...``
        → 202 with the import (``GET /imports/{id}`` follows it). The whole file is checked before anything is
        imported: not a CSV, another encoding, a column the mapping names but the file lacks are 422 naming
        ``file`` or ``mapping.<key>``; a file over ``CRM_IMPORT_MAX_MB`` is 413. Rows that break the rules of
        ``POST /clients`` are reported per row and the rest imported."""
        form, storage = self._import_form(request)
        branch_id = caller.target_branch(form["branch_id"])
        if form["branch_id"] is not None:
            identity.require_branch(self.db.reader, branch_id)
        mapping = _parse_mapping(form["mapping"])
        csv_file = CsvFile.open(storage.stream)
        how = plan(mapping, csv_file.columns)
        total = csv_file.count_rows()
        managers = identity.active_managers(self.db.reader, branch_id)
        imp = self.clients_rpc.create_import(caller.dump(), {
            "file_name": _file_name(storage.filename), "on_duplicate": form["on_duplicate"],
            "dry_run": form["dry_run"], "mapping": mapping, "total": total, "branch_id": branch_id,
        }, {"managers": managers})
        try:
            sending = None
            for chunk in _chunks(csv_file, how):
                self._resolve_owners(branch_id, chunk)
                # the next chunk is read while the clients service stores this one
                sent, sending = sending, self.clients_rpc.add_import_rows.call_async(caller.dump(), imp["id"], chunk)
                if sent is not None:
                    sent.result()
                eventlet.sleep(0)  # reading a large file must not hold up the gateway's other requests
            if sending is not None:
                sending.result()
            started = self.clients_rpc.start_import(caller.dump(), imp["id"])
        except Exception as exc:
            self._give_up(caller, imp["id"], exc)
            raise
        return 202, started, {"Location": f"/api/v1/imports/{imp['id']}"}

    def _import_form(self, request) -> tuple[dict, object]:
        fields = request.form.to_dict()
        files = request.files
        raw = {**fields, **{name: True for name in files}}
        unknown = sorted(set(raw) - set(FORM_PARTS))
        if unknown:
            raise ValidationError("unknown form parts", fields={name: ["Unknown form part."] for name in unknown})
        if "file" in fields and "file" not in files:
            raise ValidationError("file must be a file part", fields={"file": ["Must be a file part (curl -F file=@base.csv)."]})
        if "mapping" in files:
            raw["mapping"] = files["mapping"].stream.read(FIELD_BYTES).decode("utf-8", errors="replace")
        if "file" in files:
            raw["file"] = files["file"]
        form = load_or_raise(ImportFormSchema, raw)
        return form, form["file"]

    def _resolve_owners(self, branch_id: str, chunk: list[dict]) -> None:
        """An owner is named by email in the file: the gateway knows the users (unknown ones stay unresolved
        and the row is reported)."""
        emails = {row["data"]["owner_email"].lower() for row in chunk if row["data"].get("owner_email")}
        found = identity.users_by_email(self.db.reader, branch_id, emails)
        for row in chunk:
            email = row["data"].get("owner_email")
            if email:
                row["data"]["owner_id"] = found.get(email.lower())

    def _give_up(self, caller, import_id: str, exc: Exception) -> None:
        """Tell the clients service the file will not be finished (best effort: if it cannot be told, its
        timer fails the import once the upload has been silent for a while)."""
        try:
            self.clients_rpc.fail_upload(caller.dump(), import_id, f"{type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001 - the original failure is what the client hears about
            pass

    @api("GET", "/imports", roles=IMPORT_ROLES, query=ImportQuerySchema, response=ImportPage, errors=(400, 403),
         summary="List imports", tag="imports")
    def list_imports(self, request, caller):
        """Newest first; ``?status=running``. A head sees the imports of their branch, an administrator all."""
        return self.clients_rpc.list_imports(caller.dump(), query_args(request))

    @api("GET", "/imports/<import_id>", roles=IMPORT_ROLES, response=ImportSchema, errors=(403, 404),
         summary="An import's progress and outcome", tag="imports")
    def get_import(self, request, caller, import_id):
        """``{id, status: uploading|queued|running|done|failed, progress: {rows_read, total}, created, merged,
        skipped, errors_count, errors: [first 100 of {row, field, column, message}], ...}``."""
        return self.clients_rpc.get_import(caller.dump(), import_id)

    @api("GET", "/imports/<import_id>/errors", roles=IMPORT_ROLES, raw=True, produces="text/csv", errors=(403, 404),
         summary="Every row error of an import as CSV", tag="imports")
    def get_import_errors(self, request, caller, import_id):
        """``text/csv`` (UTF-8 with a BOM, so spreadsheets read it right): ``row,field,column,message``, one
        line per error, rows numbered as in the file (its header is row 1)."""
        spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024, mode="w+b")
        text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
        writer = csv.writer(text)
        writer.writerow(ERRORS_CSV_HEADER)
        after = 0
        while after is not None:
            # a query, as a query string has it: QueryInteger takes digits, not JSON numbers
            page = self.clients_rpc.list_import_errors(caller.dump(), import_id,
                                                       {"after": str(after), "limit": str(ERRORS_PER_CALL)})
            writer.writerows([e["row"], e["field"], e["column"] or "", e["message"]] for e in page["items"])
            after = page["next_after"]
        text.flush()
        text.detach()
        spool.seek(0)
        return Response(
            wrap_file(request.environ, spool), status=200, content_type="text/csv; charset=utf-8",
            direct_passthrough=True,
            headers={"Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"'},
        )


def _parse_mapping(text: str):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValidationError("mapping is not JSON", fields={"mapping": [f"Not valid JSON: {exc}."]}) from None


def _file_name(name: str | None) -> str | None:
    if not name:
        return None
    return name.replace("\\", "/").rsplit("/", 1)[-1][:255] or None


def _chunks(csv_file: CsvFile, how) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for number, cells in csv_file.records():
        chunk.append({"row": number, "data": map_row(cells, how, csv_file.delimiter)})
        if len(chunk) == ROWS_PER_CALL:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
