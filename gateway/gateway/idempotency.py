"""Idempotency-Key: the same key and body within 24 hours returns the first response and writes nothing.

Keys are per user. A key reused with a different request is a conflict; a request still running
under the key is a conflict too. A 5xx or 409 answer is not kept (nothing was done), so the client may
retry it.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

from nameko.extensions import DependencyProvider
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from crm_common.clock import utcnow
from crm_common.db import IDEMPOTENCY_CONTEXT_KEY
from crm_common.errors import BadRequest, Conflict, CrmError
from gateway.errors import error_response
from gateway.http import IDEMPOTENCY_KEY_PATTERN
from gateway.models import IdempotencyRecord

TTL = timedelta(hours=24)
# a request that has not finished after this long died with its gateway: its key may be used again
ABANDONED_AFTER = timedelta(minutes=2)
MAX_KEY_LENGTH = 255
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def fingerprint(request) -> str:
    body = request.json_body if request.json_body else None
    canonical = json.dumps(
        [request.method, request.path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotentRequests:
    def __init__(self, worker_ctx):
        self.worker_ctx = worker_ctx

    @property
    def db(self):
        return self.worker_ctx.service.db

    def run(self, caller, request, key: str, handler, default_status: int):
        if not _KEY.fullmatch(key):
            raise BadRequest(
                "invalid Idempotency-Key",
                fields={"Idempotency-Key": [
                    f"Must be 1 to {MAX_KEY_LENGTH} visible ASCII characters (spaces only inside), e.g. a UUID."]},
            )
        print_ = fingerprint(request)
        session = self.db.session
        record = session.get(IdempotencyRecord, (caller.id, key))
        if record is not None and (
            record.created_at < utcnow() - TTL
            or (record.status is None and record.created_at < utcnow() - ABANDONED_AFTER)
        ):
            session.delete(record)
            session.commit()
            record = None
        if record is not None:
            return self._replay(record, print_)
        self.identify(caller, request, key, print_)
        session.add(IdempotencyRecord(user_id=caller.id, key=key, fingerprint=print_, created_at=utcnow()))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            record = session.get(IdempotencyRecord, (caller.id, key))
            return self._replay(record, print_)

        try:
            status, payload, headers = self._as_response(handler(), default_status)
        except CrmError as exc:
            status, payload, headers = error_response(exc)
            if status >= 500 or status == 409:
                # nothing was done, and the answer depended on the moment (a service down, a concurrent
                # change): a retry under the same key runs again instead of replaying it
                self._forget(caller.id, key)
                raise
        except BaseException:
            self._forget(caller.id, key)
            raise
        session.rollback()
        record = session.get(IdempotencyRecord, (caller.id, key))
        record.status, record.response, record.headers = status, payload, headers
        session.commit()
        return status, payload, headers

    def identify(self, caller, request, key: str, print_: str | None = None) -> None:
        """Name the request for the services it calls: ``<user>:<key>:<fingerprint>`` in the context data.

        Services run a write once per name and keep its result (``WorkerDatabase.write``): a retry after a
        lost answer, or a redelivered request, gets the first result and writes nothing more. A request
        without Idempotency-Key is named by its request id the same way, so repeating it with
        ``Idempotency-Key: <its request id>`` (and the same body) is the same write.
        """
        print_ = print_ or fingerprint(request)
        self.worker_ctx.data[IDEMPOTENCY_CONTEXT_KEY] = f"{caller.id}:{key}:{print_}"

    @staticmethod
    def _as_response(result, default_status):
        if isinstance(result, tuple):
            if len(result) == 3:
                return result
            return result[0], result[1], {}
        return default_status, result, {}

    @staticmethod
    def _replay(record, print_):
        if record is None or record.status is None:
            raise Conflict(
                "a request with this Idempotency-Key is still being processed",
                fields={"Idempotency-Key": ["In use by a request that has not finished."]},
            )
        if record.fingerprint != print_:
            raise Conflict(
                "this Idempotency-Key was used for a different request",
                fields={"Idempotency-Key": ["Already used with another method, path or body."]},
            )
        headers = dict(record.headers or {})
        headers["Idempotent-Replayed"] = "true"
        return record.status, record.response, headers

    def _forget(self, user_id: str, key: str) -> None:
        session = self.db.session
        session.rollback()
        session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)
        )
        session.commit()


class Idempotency(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return IdempotentRequests(worker_ctx)


def purge_expired(session) -> int:
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - TTL))
    session.commit()
    return result.rowcount or 0
