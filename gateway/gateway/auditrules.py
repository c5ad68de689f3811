"""The audit log's pure rules: the hash chain and the bulk-read window (no database, no nameko).

**The chain.** Entries are numbered by ``seq`` (1, 2, 3, ...) in the order they were chained. Each carries
``prev_hash`` (the hash of the entry before it; ``GENESIS`` for the first) and ``hash`` = SHA-256 of the entry's
canonical form (its fields as sorted, compact JSON, times in UTC to the microsecond) followed by ``prev_hash``.
Editing an entry changes what its hash should be; deleting one breaks the numbering and the next entry's link;
cutting entries off the end leaves the chain's head (the last seq and hash, kept apart) pointing past the end.

**The window.** Distinct clients read by a user in the last ``WINDOW`` (an hour, sliding): a client read again
counts once, from its latest read. Past the alert threshold the heads and admins are told, at most once per
window per user; at the cap, the user's client reads are refused until enough of the oldest reads have left
the window to bring the count under the cap again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

GENESIS = "0" * 64
WINDOW = timedelta(hours=1)
# the fields an entry's hash covers, in its canonical form
HASHED = ("seq", "id", "user_id", "branch_id", "action", "ref_type", "ref_id", "count", "at", "request_id", "address")


def canonical_time(value: datetime) -> str:
    """UTC to the microsecond, the same text whatever offset or database gave the time back."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(entry: dict) -> bytes:
    data = {name: entry.get(name) for name in HASHED}
    data["at"] = canonical_time(entry["at"])
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict, prev_hash: str) -> str:
    return hashlib.sha256(canonical(entry) + prev_hash.encode("ascii")).hexdigest()


def chain(entries: Iterable[dict], head_seq: int, head_hash: str) -> list[dict]:
    """``entries`` numbered after the head and linked to it: each gets ``seq``, ``prev_hash`` and ``hash``."""
    chained, seq, prev = [], head_seq, head_hash
    for entry in entries:
        seq += 1
        linked = {**entry, "seq": seq, "prev_hash": prev}
        linked["hash"] = prev = entry_hash(linked, prev)
        chained.append(linked)
    return chained


@dataclass(frozen=True)
class Flaw:
    id: str | None
    reason: str  # sequence_gap | broken_link | hash_mismatch | head_mismatch


class ChainCheck:
    """Feed the entries in ``seq`` order (``feed``), then ``finish`` with the head; ``flaw`` is the first one found."""

    def __init__(self):
        self.checked = 0
        self.flaw: Flaw | None = None
        self._seq = 0
        self._hash = GENESIS
        self._last_id: str | None = None

    def feed(self, entry: dict) -> bool:
        """False once a flaw is found (there is no point reading further)."""
        if self.flaw is not None:
            return False
        self.checked += 1
        if entry["seq"] != self._seq + 1:
            self.flaw = Flaw(entry["id"], "sequence_gap")
        elif entry["prev_hash"] != self._hash:
            self.flaw = Flaw(entry["id"], "broken_link")
        elif entry["hash"] != entry_hash(entry, entry["prev_hash"]):
            self.flaw = Flaw(entry["id"], "hash_mismatch")
        self._seq, self._hash, self._last_id = entry["seq"], entry["hash"], entry["id"]
        return self.flaw is None

    def finish(self, head_seq: int, head_hash: str) -> Flaw | None:
        """The head must be the last entry: entries cut off the end are found here."""
        if self.flaw is None and (head_seq, head_hash) != (self._seq, self._hash):
            self.flaw = Flaw(self._last_id, "head_mismatch")
        return self.flaw


def alert_due(count: int, threshold: int, alerted_at: datetime | None, now: datetime) -> bool:
    """Past the threshold, and not alerted within the window: a user is reported at most once an hour."""
    return 0 < threshold < count and (alerted_at is None or alerted_at <= now - WINDOW)


def capped(count: int, cap: int) -> bool:
    return cap > 0 and count >= cap


def released_at(read_times: list[datetime], cap: int) -> datetime | None:
    """When the count of reads in the window falls under ``cap`` again, with no new read: the moment the
    ``len - cap + 1`` oldest have left it. ``read_times`` are the window's reads, oldest first."""
    over = len(read_times) - cap
    if cap <= 0 or over < 0:
        return None
    return read_times[over] + WINDOW
