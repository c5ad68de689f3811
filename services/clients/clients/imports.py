"""Importing a client base from a CSV file: the clients service's side.

The gateway reads the file, maps its columns and hands the rows over in chunks into ``import_rows``
(``create_import``, ``add_rows``, ``start_import``). Then a timer of any replica processes the import:
``work`` claims it (a lease, taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and decides
``BATCH_ROWS`` rows per transaction. A batch's clients, contacts, timeline entries, events, the rows'
outcomes and the import's counters and ``last_row`` commit together, and every batch locks the import
row first, so a crash continues after the last committed batch and no row is imported twice, however
many replicas run.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from functools import partial

import eventlet
from sqlalchemy import update

from clients import domain, import_rules
from clients import repository as repo
from clients.exceptions import ImportNotFound
from clients.models import Client, ClientContact, Import, ImportContact, ImportOutcome, ImportRow, TimelineEntry
from clients.schemas import client_out, import_create, import_out
from crm_common.bulk import insert_rows
from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.contracts.imports import ROWS_PER_CALL
from crm_common.errors import Conflict, Forbidden, ValidationError, require
from crm_common.handlers import is_temporary
from crm_common.schemas import iso, load_or_raise, new_id

log = logging.getLogger(__name__)

BATCH_ROWS = 500
ERRORS_SHOWN = 100
MAX_ROWS_PER_CALL = 5 * ROWS_PER_CALL
# an upload whose gateway has not been heard of for this long died with it
ABANDONED_AFTER = timedelta(minutes=10)
MAX_FAILURES = 5  # consecutive failed batches before an import is given up as failed
ACTIVE = ("queued", "running")


def _require(session, caller: Caller, import_id: str, for_update: bool = False) -> Import:
    if not (caller.is_admin or caller.is_head):
        raise Forbidden("imports are for heads of sales and administrators")
    return require(repo.get_import(session, caller, import_id, for_update=for_update), ImportNotFound)


# ---- the upload (called by the gateway)

def create_import(uow, caller: Caller, raw: dict, directory: dict | None) -> dict:
    """An import of ``total`` rows in ``uploading``; ``directory["managers"]`` get the rows without an owner."""
    if not (caller.is_admin or caller.is_head):
        raise Forbidden("imports are for heads of sales and administrators")
    data = load_or_raise(import_create, raw)
    now = utcnow()
    imp = Import(
        id=new_id(), branch_id=caller.target_branch(data["branch_id"]), created_by=caller.id,
        created_by_role=caller.role, status="uploading", dry_run=data["dry_run"], on_duplicate=data["on_duplicate"],
        file_name=data["file_name"], mapping=data["mapping"], total=data["total"],
        managers=sorted(set((directory or {}).get("managers") or [])),
        rows_received=0, rows_done=0, last_row=0, created=0, merged=0, skipped=0, rows_with_errors=0,
        errors_count=0, failures=0, created_at=now, updated_at=now,
    )
    uow.session.add(imp)
    uow.session.flush()
    return dump(uow.session, imp)


def add_rows(uow, caller: Caller, import_id: str, rows) -> dict:
    """Stage mapped rows ``[{"row": 2, "data": {...}}]``; a row sent again (a retried call) is kept once."""
    imp = _require(uow.session, caller, import_id, for_update=True)
    numbers = _row_numbers(rows)
    present = repo.existing_rows(uow.session, imp.id, numbers)
    if imp.status != "uploading":
        if present >= set(numbers):
            return {"received": imp.rows_received}  # a retry of a call that was done
        raise Conflict(f"the import is {imp.status}; it takes no more rows")
    new = [{"import_id": imp.id, "row_no": row["row"], "data": row["data"]} for row in rows if row["row"] not in present]
    if imp.rows_received + len(new) > imp.total:
        raise ValidationError("more rows than announced", fields={"rows": [f"The import announced {imp.total} rows."]})
    if new:
        insert_rows(uow.session, ImportRow.__table__, new)
    imp.rows_received += len(new)
    imp.updated_at = utcnow()
    return {"received": imp.rows_received}


def _row_numbers(rows) -> list[int]:
    if not isinstance(rows, list) or len(rows) > MAX_ROWS_PER_CALL:
        raise ValidationError("rows must be a list", fields={"rows": [f"A list of at most {MAX_ROWS_PER_CALL} rows."]})
    numbers = []
    for index, row in enumerate(rows):
        if not (isinstance(row, dict) and isinstance(row.get("row"), int) and not isinstance(row["row"], bool)
                and row["row"] >= 2 and isinstance(row.get("data"), dict)):
            raise ValidationError("malformed row", fields={f"rows.{index}": ['Must be {"row": <2 or more>, "data": {...}}.']})
        numbers.append(row["row"])
    if len(set(numbers)) != len(numbers):
        raise ValidationError("a row number twice", fields={"rows": ["Row numbers must be distinct."]})
    return numbers


def start_import(uow, caller: Caller, import_id: str) -> dict:
    """Every announced row is here: queue the import for processing (starting it again changes nothing)."""
    imp = _require(uow.session, caller, import_id, for_update=True)
    if imp.status == "failed":
        raise Conflict(f"the import failed: {imp.error}")
    if imp.status == "uploading":
        if imp.rows_received != imp.total:
            raise ValidationError(
                "rows are missing", fields={"rows": [f"{imp.rows_received} of {imp.total} rows were received."]}
            )
        imp.status, imp.updated_at = "queued", utcnow()
    return dump(uow.session, imp)


def fail_upload(uow, caller: Caller, import_id: str, reason: str) -> dict:
    """The gateway could not hand the whole file over: the import is failed, nothing of it was imported."""
    imp = _require(uow.session, caller, import_id, for_update=True)
    if imp.status == "uploading":
        _fail(imp, f"the upload did not finish: {str(reason)[:500]}")
    return dump(uow.session, imp)


def _fail(imp: Import, error: str) -> None:
    now = utcnow()
    imp.status, imp.error, imp.finished_at, imp.updated_at = "failed", error, now, now
    imp.lease_owner = imp.lease_until = None


# ---- reading

def get_import(session, caller: Caller, import_id: str) -> dict:
    return dump(session, _require(session, caller, import_id), with_errors=True)


def import_errors(session, caller: Caller, import_id: str, after: int, limit: int) -> dict:
    """Errors of rows after row ``after``, at most ``limit`` rows' worth: ``{items, next_after}``."""
    imp = _require(session, caller, import_id)
    rows = repo.error_rows(session, imp.id, after, limit)
    items = [error for row in rows for error in _errors_of(imp, row)]
    return {"items": items, "next_after": rows[-1].row_no if len(rows) == limit else None}


def dump(session, imp: Import, with_errors: bool = False) -> dict:
    out = {
        **{name: getattr(imp, name) for name in (
            "id", "status", "dry_run", "on_duplicate", "branch_id", "file_name", "created_by", "rows_received",
            "created", "merged", "skipped", "rows_with_errors", "errors_count", "error", "mapping",
            "created_at", "started_at", "finished_at")},
        "progress": {"rows_read": imp.rows_done, "total": imp.total},
    }
    if with_errors:
        errors: list[dict] = []
        for row in repo.error_rows(session, imp.id, 0, ERRORS_SHOWN):
            errors += _errors_of(imp, row)
            if len(errors) >= ERRORS_SHOWN:
                break
        out["errors"] = errors[:ERRORS_SHOWN]
    return import_out.dump(out)


def _errors_of(imp: Import, row: ImportOutcome) -> list[dict]:
    return [{"row": row.row_no, "field": e["field"], "column": column_of(imp.mapping, e["field"]),
             "message": e["message"]} for e in row.errors or []]


def column_of(mapping: dict, field: str) -> str | None:
    """The file's column behind an error's field: ``phones.1`` → the second phone column."""
    name, _, rest = field.partition(".")
    value = (mapping or {}).get(name)
    if isinstance(value, list):
        return value[int(rest)] if rest.isdigit() and int(rest) < len(value) else None
    if isinstance(value, dict):
        return value.get(rest)
    return value if isinstance(value, str) else None


# ---- processing (the timer)

def work(uow, replica: str, lease_s: float, region: str, budget_s: float = 5.0) -> bool:
    """One tick of the import timer: fail abandoned uploads, claim an import and process batches of it for
    about ``budget_s`` seconds. True when there is more to do at once (the timer then fires again)."""
    with uow.transaction():
        fail_abandoned(uow.session, utcnow())
    with uow.transaction():
        imp = claim(uow.session, replica, lease_s, utcnow())
        import_id = imp.id if imp else None
    if import_id is None:
        return False
    deadline = time.monotonic() + budget_s
    while True:
        try:
            with uow.transaction():
                more = process_batch(uow, import_id, replica, lease_s, region)
        except Exception as exc:
            if is_temporary(exc):
                raise  # the database or bus is down: the next tick tries again
            log.exception("a batch of import %s failed", import_id)
            with uow.transaction():
                record_failure(uow.session, import_id, exc)
            return True
        if not more:
            return True  # another import may be waiting
        if time.monotonic() >= deadline:
            return True
        eventlet.sleep(0)  # RPC workers of this replica get their turn between batches


def fail_abandoned(session, now) -> int:
    result = session.execute(
        update(Import).where(Import.status == "uploading", Import.updated_at < now - ABANDONED_AFTER)
        .values(status="failed", error="the upload did not finish (the gateway stopped sending rows)",
                finished_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def claim(session, replica: str, lease_s: float, now) -> Import | None:
    imp = repo.claimable_import(session, replica, now)
    if imp is not None:
        imp.lease_owner, imp.lease_until = replica, now + timedelta(seconds=lease_s)
        if imp.status == "queued":
            imp.status, imp.started_at = "running", now
        imp.updated_at = now
    return imp


def _locked(session, import_id: str) -> Import | None:
    """The import row, locked and read afresh: the worker's session may hold it from a batch before, and
    another replica may have changed it since (its lease ran out, say)."""
    return session.get(Import, import_id, with_for_update=True, populate_existing=True)


def record_failure(session, import_id: str, exc: BaseException) -> None:
    imp = _locked(session, import_id)
    if imp is None or imp.status not in ACTIVE:
        return
    imp.failures += 1
    imp.updated_at = utcnow()
    if imp.failures >= MAX_FAILURES:
        _fail(imp, f"processing failed {imp.failures} times in a row at the rows after row {imp.last_row}: "
                   f"{type(exc).__name__}: {str(exc)[:300]}")


def process_batch(uow, import_id: str, replica: str, lease_s: float, region: str) -> bool:
    """Decide the next ``BATCH_ROWS`` rows of an import this replica holds; False when there is nothing more
    (the import is done, or another replica holds it now)."""
    session = uow.session
    imp = _locked(session, import_id)
    if imp is None or imp.status not in ACTIVE or imp.lease_owner != replica:
        return False
    now = utcnow()
    rows = repo.next_rows(session, imp.id, imp.last_row, BATCH_ROWS)
    if not rows:
        imp.status, imp.finished_at, imp.updated_at = "done", now, now
        imp.lease_owner = imp.lease_until = None
        return False
    Batch(uow, imp, region, now).run(rows)
    imp.last_row, imp.failures, imp.updated_at = rows[-1][0], 0, now
    imp.lease_until = now + timedelta(seconds=lease_s)
    return True


class Batch:
    """The rows of one transaction, decided in file order. What earlier rows did (clients made, contacts
    staged) is kept in memory as well as written, so a later row of the same batch sees it."""

    def __init__(self, uow, imp: Import, region: str, now):
        self.uow, self.session, self.imp, self.region, self.now = uow, uow.session, imp, region, now
        self.write = not imp.dry_run
        self.holders: dict[tuple[str, str], str] = {}  # contact → the client holding it (claimer first)
        self.claimed: set[tuple[str, str]] = set()
        self.staged: dict[tuple[str, str], tuple[int, str | None]] = {}
        self.new_staged: list[dict] = []
        self.created: dict[str, dict] = {}  # client id → the client to insert
        # existing clients merged into: the client, its fields as the batch leaves them, the fields changed
        self.updated: dict[str, tuple[Client, dict, set]] = {}
        self.contacts: list[dict] = []
        self.outcomes: list[dict] = []
        self.counts = {"created": 0, "merged": 0, "skipped": 0, "rows_with_errors": 0, "errors_count": 0}
        self._cursor = None

    def run(self, rows: list[tuple[int, dict]]) -> None:
        """``rows``: ``(row number, data)`` in file order."""
        checks = [(row_no, import_rules.check_row(data, self.region)) for row_no, data in rows]
        contacts = sorted({c for _, check in checks if check.fields for c in check.fields.contacts})
        for holder in repo.contact_holders(self.session, self.imp.branch_id, contacts):
            key = (holder.kind, holder.value)
            self.holders.setdefault(key, holder.client_id)
            if holder.claimed:
                self.claimed.add(key)
        self.staged = repo.staged_contacts(self.session, self.imp.id, contacts)
        for row_no, check in checks:
            self._decide(row_no, check)
        self._write()

    def _decide(self, row_no: int, check: import_rules.RowCheck) -> None:
        if check.fields is None:
            self._outcome(row_no, "error", errors=check.errors)
            self.counts["rows_with_errors"] += 1
            self.counts["errors_count"] += len(check.errors)
            return
        fields = check.fields
        match = import_rules.find_match(fields.contacts, self.holders, self.staged)
        outcome = import_rules.decide(self.imp.on_duplicate, match)
        client_id = match.client_id if match else None
        note = match.describe() if match else None
        if outcome == "merged" and self.write:
            client_id = self._merge(client_id, fields)
            if client_id is None:  # the client it matched is gone (merged away and unknown): make it anew
                outcome, note = "created", None
        if outcome == "created":
            client_id = self._create(fields) if self.write else None
        self.counts[outcome] += 1
        self._outcome(row_no, outcome, client_id=client_id, note=note)
        for contact in fields.contacts:
            # a later row finds what earlier rows made or merged into among the clients' own contacts; the
            # staging table holds the rest: every contact in a dry run, a skipped row's other contacts
            if contact not in self.staged and (not self.write or contact not in self.holders):
                self.staged[contact] = (row_no, client_id)
                self.new_staged.append({"import_id": self.imp.id, "kind": contact[0], "value": contact[1],
                                        "row_no": row_no, "client_id": client_id})

    def _outcome(self, row_no: int, status: str, client_id=None, errors=None, note=None) -> None:
        self.outcomes.append({"import_id": self.imp.id, "row_no": row_no, "status": status,
                              "client_id": client_id, "errors": errors, "note": note[:300] if note else None})

    def _hold(self, client_id: str, contacts) -> None:
        """Contact rows for values the client lists from now on, claimed where nobody claims them yet."""
        for kind, value in contacts:
            claimed = (kind, value) not in self.claimed
            self.contacts.append({"client_id": client_id, "branch_id": self.imp.branch_id, "kind": kind,
                                  "value": value, "claimed": claimed})
            self.claimed.add((kind, value))
            self.holders.setdefault((kind, value), client_id)

    def _create(self, fields: import_rules.RowFields) -> str:
        client_id = new_id()
        self.created[client_id] = {
            "id": client_id, "branch_id": self.imp.branch_id, "kind": fields.kind, "name": fields.name,
            "owner_id": fields.owner_id or self._next_owner(), "source": fields.source, "phones": fields.phones,
            "emails": fields.emails, "tags": fields.tags, "custom_fields": fields.custom_fields,
            "archived": False, "archived_at": None, "created_at": self.now, "updated_at": self.now, "version": 1,
        }
        self._hold(client_id, fields.contacts)
        return client_id

    def _merge(self, client_id: str | None, fields: import_rules.RowFields) -> str | None:
        if client_id in self.created:
            current = self.created[client_id]
        elif client_id in self.updated:
            current = self.updated[client_id][1]
        else:
            client = self._existing(client_id)
            if client is None:
                return None
            client_id = client.id
            if client_id not in self.updated:
                self.updated[client_id] = (client, self._fields_of(client), set())
            current = self.updated[client_id][1]
        before = {("phone", p) for p in current["phones"]} | {("email", e) for e in current["emails"]}
        changed = import_rules.merge_row(current, fields)
        self._hold(client_id, [c for c in fields.contacts if c not in before])
        if client_id in self.updated:
            self.updated[client_id][2].update(changed)
        return client_id

    def _existing(self, client_id: str | None) -> Client | None:
        get = partial(self.session.get, Client, with_for_update=True, populate_existing=True)
        client = get(client_id) if client_id else None
        if client is not None and client.merged_into:  # merged since the row's contacts were staged
            client = get(client.merged_into)
        return client

    @staticmethod
    def _fields_of(client: Client) -> dict:
        return {"phones": list(client.phones), "emails": list(client.emails), "tags": list(client.tags),
                "source": client.source, "custom_fields": dict(client.custom_fields or {})}

    def _next_owner(self) -> str | None:
        """Round robin over the branch's managers (who they were when the import was started)."""
        if not self.imp.managers:
            return self.imp.created_by if self.imp.created_by_role == "head" else None
        if self._cursor is None:
            self._cursor = repo.round_robin_cursor(self.session, self.imp.branch_id)
        owner = domain.next_owner(self.imp.managers, self._cursor.last_owner_id)
        self._cursor.last_owner_id = owner
        return owner

    def _write(self) -> None:
        """Everything the batch decided, written in bulk (``crm_common.bulk.insert_rows``: a batch is thousands
        of rows); the existing clients merged into go through the ORM for their version check."""
        session, imp, now = self.session, self.imp, self.now
        actor = imp.created_by
        if self.created:
            insert_rows(session, Client.__table__, [
                {**{k: v for k, v in c.items() if k != "archived"},
                 "search_text": domain.search_text(c["name"], c["phones"], c["emails"]),
                 "name_key": domain.name_key(c["name"], c["kind"])}
                for c in self.created.values()
            ])
        insert_rows(session, ClientContact.__table__, self.contacts)
        timeline = [
            {"id": new_id(), "client_id": c["id"], "kind": "client", "type": "client_created", "occurred_at": now,
             "ref_id": c["id"], "actor_id": actor, "data": {"name": c["name"], "import_id": imp.id},
             "source_event_id": None}
            for c in self.created.values()
        ]
        for client, current, changed in self.updated.values():
            if changed:
                for name in changed:
                    setattr(client, name, current[name])
                client.search_text = domain.search_text(client.name, client.phones, client.emails)
                client.updated_at = now
        session.flush()
        for client, _, changed in self.updated.values():
            if changed:
                timeline.append({"id": new_id(), "client_id": client.id, "kind": "client", "type": "client_updated",
                                 "occurred_at": now, "ref_id": client.id, "actor_id": actor,
                                 "data": {"changed": sorted(changed), "import_id": imp.id}, "source_event_id": None})
        insert_rows(session, TimelineEntry.__table__, timeline)
        self.uow.emit_many("client_created", [
            {"branch_id": imp.branch_id, "actor_id": actor, "client": _client_payload(client)}
            for client in self.created.values()
        ])
        for client, _, changed in self.updated.values():
            if changed:
                self.uow.emit("client_updated", {"branch_id": imp.branch_id, "actor_id": actor,
                                                 "client": client_out.dump(client), "changed": sorted(changed)})
        insert_rows(session, ImportContact.__table__, self.new_staged)
        insert_rows(session, ImportOutcome.__table__, self.outcomes)
        imp.rows_done += len(self.outcomes)
        for name, count in self.counts.items():
            setattr(imp, name, getattr(imp, name) + count)


def _client_payload(client: dict) -> dict:
    """A new client as ``client_out.dump`` shows it, built directly: marshmallow for every row of a large
    import costs more than the rest of its processing (the event's contract is still checked)."""
    return {**client, "created_at": iso(client["created_at"]), "updated_at": iso(client["updated_at"])}
