"""The rules of telephone calls, free of nameko and of the database: whom an incoming call goes to, and what
each event of the exchange changes."""

from __future__ import annotations

from datetime import datetime

FINAL = ("missed", "ended")


def is_available(user: dict | None) -> bool:
    """An active user on shift (``on_shift`` is true unless the user or their head switched it off)."""
    return bool(user) and bool(user.get("active")) and user.get("on_shift", True) is not False


def route_call(owner_id: str | None, users: dict[str, dict]) -> str | None:
    """Whom an incoming call is put through to: the client's owner while active and on shift; else a head of the
    branch on shift; else a manager on shift (the first by id); else nobody (the exchange's own queue).

    ``users``: the branch's users as the gateway knows them, ``{id: {role, active, on_shift, ...}}``.
    """
    if owner_id and is_available(users.get(owner_id)):
        return owner_id
    for role in ("head", "manager"):
        for user_id in sorted(users):
            if users[user_id].get("role") == role and is_available(users[user_id]):
                return user_id
    return None


def client_number(direction: str, from_number: str, to_number: str) -> str:
    """The client's side of a call: who calls in, or whom a user calls."""
    return from_number if direction == "in" else to_number


def apply_event(call, event: str, at: datetime, duration_s: int | None, user_id: str | None) -> bool:
    """Change ``call`` (status, times, duration, who) for one exchange event; True when the call has just become
    missed. Events may come late or twice: each time is kept once, and a final status is not undone except that
    an unanswered call that ended is missed when the exchange says so."""
    if event == "answered":
        if call.answered_at is None:
            call.answered_at = at
            call.user_id = user_id or call.user_id or call.route_user_id
        if call.status == "ringing":
            call.status = "answered"
    elif event == "missed":
        if call.answered_at is None and call.status != "missed":
            call.status = "missed"
            return True
    elif event == "ended":
        if call.ended_at is None:
            call.ended_at = at
            call.duration_s = duration_s if duration_s is not None else talk_time(call.answered_at, at)
        if call.status in ("ringing", "answered"):
            call.status = "ended"
    return False


def talk_time(answered_at: datetime | None, ended_at: datetime) -> int:
    if answered_at is None:
        return 0
    return max(0, round((ended_at - answered_at).total_seconds()))


def summary(direction: str, number: str, status: str, duration_s: int | None) -> str:
    """What the timeline says of a call, in words."""
    what = f"Incoming call from {number}" if direction == "in" else f"Outgoing call to {number}"
    if status == "ended" and duration_s:
        minutes, seconds = divmod(duration_s, 60)
        return f"{what}, {minutes}:{seconds:02d}"
    return f"{what}: {status}"
