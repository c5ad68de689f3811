"""Offboarding: a leaving user is deactivated at once and their clients, open deals and open tasks are handed to
another user of the branch by a saga whose state is the ``offboardings`` row (decisions.md 64-66).

``start`` checks the request, deactivates the user and records the saga in one transaction. ``run_due`` (the
gateway's ``resume_offboardings`` timer, woken by ``start``) claims a running saga nobody holds, under a lease,
and runs its steps in order: clients, deals, tasks. A step is an RPC of the owning service that moves one batch
and answers the step's running count (``crm_common/transfers.py``), so the saga records every batch's count as
it goes; a service that does not answer leaves the saga running for the next tick, wherever it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from nameko.exceptions import MethodNotFound, UnknownService
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from crm_common.bus import BUS_ERRORS
from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.contracts.offboarding import STEPS, OffboardingQuerySchema, OffboardingSchema, OffboardSchema
from crm_common.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable, ValidationError
from crm_common.pagination import SortKey, paginate
from crm_common.schemas import is_uuid, load_or_raise
from gateway.auth import notify_people_changed, notify_user_changed
from gateway.identity import UserNotFound, user_out
from gateway.models import Offboarding, User

log = logging.getLogger(__name__)

offboarding_out = OffboardingSchema()
KEYS = [SortKey(Offboarding.started_at, True, "datetime"), SortKey(Offboarding.id, True)]
# a service restarting, redeployed or unreachable: the saga waits for it
TEMPORARY = (Unavailable, UnknownService, MethodNotFound, *BUS_ERRORS)


class OffboardingNotFound(NotFound):
    def __init__(self, message="offboarding not found", fields=None, details=None):
        super().__init__(message, fields, details)


# ---- the rules (pure: users as the gateway stores them, nothing else)

def check_user(caller: Caller, user, running: bool, offboarded: bool) -> None:
    """May ``caller`` offboard ``user`` now? ``running``: a saga of the user is running; ``offboarded``: one finished
    and the user is still inactive."""
    if caller.is_manager:
        raise Forbidden("only a head of sales or an administrator offboards users")
    if caller.is_head and user.role != "manager":
        raise Forbidden("a head of sales offboards the managers of their own branch")
    if user.id == caller.id:
        raise Conflict("you cannot offboard yourself", fields={"id": ["You cannot offboard yourself."]})
    if user.role == "admin" or user.branch_id is None:
        raise Conflict("an administrator owns nothing of a branch; deactivate them instead",
                       fields={"id": ["An administrator is deactivated, not offboarded."]})
    if running:
        raise Conflict("this user's offboarding is running", fields={"id": ["An offboarding of this user is running."]})
    if offboarded:
        raise Conflict("this user was offboarded already", fields={"id": ["Already offboarded."]})


def check_target(user, target) -> None:
    """``target`` (None: unknown to the caller) must be another active user of ``user``'s branch."""
    problem = None
    if target is None:
        problem = "No such user."
    elif target.id == user.id:
        problem = "Must be another user than the one offboarded."
    elif target.branch_id != user.branch_id:
        problem = "Must be a user of the same branch as the user offboarded."
    elif not target.active:
        problem = "Must be an active user."
    if problem:
        raise ValidationError("the records cannot go to this user", fields={"to_user_id": [problem]})


# ---- use cases

def start(uow, caller: Caller, user_id: str, raw: dict) -> dict:
    """Deactivate the user and record the saga, in the caller's transaction; nothing is written on any refusal."""
    data = load_or_raise(OffboardSchema, raw)
    session = uow.session
    user = session.get(User, user_id, with_for_update=True) if is_uuid(user_id) else None
    if user is None or not (caller.is_admin or user.branch_id == caller.branch_id):
        raise UserNotFound()
    sagas = session.scalars(select(Offboarding.status).where(Offboarding.user_id == user.id)).all()
    check_user(caller, user, "running" in sagas, "done" in sagas and not user.active)
    target = session.get(User, data["to_user_id"])
    if target is not None and not (caller.is_admin or target.branch_id == caller.branch_id):
        target = None  # a head learns nothing of other branches' users
    check_target(user, target)

    now = utcnow()
    if user.active:
        user.active = False
        user.token_version += 1  # every token of the user stops working as this commits
        user.updated_at = now
        notify_user_changed(session, user.id)
        notify_people_changed(session)
        session.flush()
        uow.emit("user_updated", {"branch_id": user.branch_id, "actor_id": caller.id, "user": user_out.dump(user),
                                  "changed": ["active"]})
    saga = Offboarding(user_id=user.id, to_user_id=target.id, branch_id=user.branch_id, requested_by=caller.id,
                       status="running", step=STEPS[0], clients=0, deals=0, tasks=0, attempts=0, started_at=now)
    session.add(saga)
    try:
        session.flush()
    except IntegrityError:  # another request started one a moment ago
        uow.rollback()
        raise Conflict("this user's offboarding is running", fields={"id": ["An offboarding of this user is running."]}) from None
    return offboarding_out.dump(saga)


def get(session, caller: Caller, offboarding_id: str) -> dict:
    saga = session.get(Offboarding, offboarding_id) if is_uuid(offboarding_id) else None
    if saga is None or not (caller.is_admin or (caller.is_head and saga.branch_id == caller.branch_id)):
        raise OffboardingNotFound()
    return offboarding_out.dump(saga)


def list_offboardings(session, caller: Caller, raw: dict) -> dict:
    filters = load_or_raise(OffboardingQuerySchema, raw, BadRequest)
    query = select(Offboarding)
    if not caller.is_admin:
        query = query.where(Offboarding.branch_id == caller.branch_id)
    if filters.get("user_id"):
        query = query.where(Offboarding.user_id == filters["user_id"])
    if filters.get("status"):
        query = query.where(Offboarding.status == filters["status"])
    return paginate(session, query, KEYS, filters["cursor"], filters["limit"], offboarding_out.dump)


# ---- the saga

Step = Callable[[dict, int], dict]  # (transfer, limit) -> {"moved", "done"}: the owning service's RPC


def run_due(db, holder: str, steps: dict[str, Step], batch: int, lease_s: float, retry_s: float) -> bool:
    """Claim one running saga nobody holds (or whose holder's lease ran out: it died) and run it until it ends
    or a step fails. True when a saga was run, so the timer looks again at once."""
    with db.transaction() as session:
        saga = _claim(session, holder, lease_s)
        saga_id = saga.id if saga is not None else None
    if saga_id is None:
        return False
    run(db, saga_id, holder, steps, batch, lease_s, retry_s)
    return True


def _claim(session, holder: str, lease_s: float) -> Offboarding | None:
    now = utcnow()
    query = (select(Offboarding)
             .where(Offboarding.status == "running", or_(Offboarding.lease_until.is_(None), Offboarding.lease_until < now))
             .order_by(Offboarding.started_at).limit(1))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    saga = session.scalars(query).first()
    if saga is not None:
        saga.lease_owner, saga.lease_until = holder, now + timedelta(seconds=lease_s)
    return saga


def run(db, saga_id: str, holder: str, steps: dict[str, Step], batch: int, lease_s: float, retry_s: float) -> None:
    while True:
        with db.transaction() as session:
            saga = _held(session, saga_id, holder)
            if saga is None:
                return
            step = saga.step
            if step not in STEPS:  # not written by this code: nothing it knows how to run
                saga.status, saga.error, saga.finished_at = "failed", f"unknown step {step!r}", utcnow()
                saga.lease_owner = saga.lease_until = None
                return
            saga.lease_until = utcnow() + timedelta(seconds=lease_s)
            transfer = {"id": saga.id, "from_user_id": saga.user_id, "to_user_id": saga.to_user_id,
                        "actor_id": saga.requested_by}
        call = steps.get(step)
        try:
            state = call(transfer, batch) if call is not None else {"moved": 0, "done": True}  # service not installed
        except TEMPORARY as exc:
            _failed_attempt(db, saga_id, holder, step, exc, retry_s)
            return
        except Exception as exc:  # a refusal or a bug: retrying the same call would fail the same way
            log.exception("offboarding %s failed at its %s step", saga_id, step)
            _finish(db, saga_id, holder, "failed", f"{step}: {exc}"[:1000])
            return
        with db.transaction() as session:
            saga = _held(session, saga_id, holder)
            if saga is None:
                return
            setattr(saga, step, state["moved"])
            saga.attempts, saga.error = 0, None
            if state["done"]:
                later = STEPS[STEPS.index(step) + 1:]
                saga.step = later[0] if later else None
            if saga.step is None:
                saga.status, saga.finished_at, saga.lease_owner, saga.lease_until = "done", utcnow(), None, None
                log.info("offboarding %s done: %d clients, %d deals, %d tasks", saga.id, saga.clients, saga.deals, saga.tasks)
                return


def _held(session, saga_id: str, holder: str) -> Offboarding | None:
    """The saga, locked, if it is still running and still ours (a lease that ran out may have passed it on)."""
    saga = session.get(Offboarding, saga_id, with_for_update=True)
    if saga is None or saga.status != "running" or saga.lease_owner != holder:
        return None
    return saga


def _failed_attempt(db, saga_id: str, holder: str, step: str, exc: Exception, retry_s: float) -> None:
    with db.transaction() as session:
        saga = _held(session, saga_id, holder)
        if saga is None:
            return
        saga.attempts += 1
        saga.error = f"{step}: {exc}"[:1000]
        saga.lease_owner, saga.lease_until = None, utcnow() + timedelta(seconds=retry_s)  # tried again after that
    log.warning("offboarding %s waits at its %s step (attempt %d): %s", saga_id, step, saga.attempts, exc)


def _finish(db, saga_id: str, holder: str, status: str, error: str | None) -> None:
    with db.transaction() as session:
        saga = _held(session, saga_id, holder)
        if saga is None:
            return
        saga.status, saga.error, saga.finished_at = status, error, utcnow()
        saga.lease_owner = saga.lease_until = None
