"""The rules of client exports, without a database or a bus: the daily cap, the file's lines, and the marker rows
that let a leaked file name its export.

Markers. Every file with clients carries ``min(3, rows)`` synthetic clients: an id, a name, a mobile number and an
email made from ``HMAC-SHA256(key, "<export id>:<n>")``, so they are unique to the export and look like any other
row. Where they go is drawn from the same key (``marker_slots``): deterministic for the export, unguessable
without the key. The export's record keeps them (and the gateway's ``export_markers`` table indexes their
values), so tracing a leaked file needs only the database, not the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

MARKERS_PER_FILE = 3
HEADER = ("id", "kind", "name", "phones", "emails", "source", "tags", "owner_id", "branch_id", "archived",
          "created_at", "updated_at", "custom_fields")
FIRST_DATA_LINE = 3  # line 1 names the export, line 2 is the header

# names of the synthetic clients: (Cyrillic, Latin for the email) pairs, men's and women's surnames apart
_MEN = (("Алексей", "aleksei"), ("Дмитрий", "dmitry"), ("Сергей", "sergey"), ("Андрей", "andrey"),
        ("Игорь", "igor"), ("Михаил", "mikhail"), ("Николай", "nikolay"), ("Павел", "pavel"),
        ("Роман", "roman"), ("Виктор", "viktor"), ("Олег", "oleg"), ("Евгений", "evgeny"))
_WOMEN = (("Анна", "anna"), ("Елена", "elena"), ("Ольга", "olga"), ("Наталья", "natalia"),
          ("Ирина", "irina"), ("Татьяна", "tatiana"), ("Мария", "maria"), ("Светлана", "svetlana"),
          ("Юлия", "yulia"), ("Екатерина", "ekaterina"), ("Марина", "marina"), ("Ксения", "ksenia"))
_SURNAMES = (("Смирнов", "smirnov"), ("Кузнецов", "kuznetsov"), ("Попов", "popov"), ("Васильев", "vasiliev"),
             ("Соколов", "sokolov"), ("Морозов", "morozov"), ("Волков", "volkov"), ("Лебедев", "lebedev"),
             ("Козлов", "kozlov"), ("Новиков", "novikov"), ("Фёдоров", "fedorov"), ("Орлов", "orlov"))


# ---- the daily cap

def quota_day(now: datetime) -> date:
    """Rows are counted per UTC day."""
    return now.astimezone(UTC).date()


def seconds_until_next_day(now: datetime) -> int:
    """Retry-After for a refused export: until the UTC day rolls over (at least a second)."""
    now = now.astimezone(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return max(1, math.ceil((midnight - now).total_seconds()))


def fits(rows: int, used: int, cap: int) -> bool:
    """An export of ``rows`` fits when the day's rows with it stay within the cap (an empty one always does)."""
    return rows == 0 or used + rows <= cap


def refund(reserved: int, written: int) -> int:
    """What goes back to the day's count when the export ends: the reserved rows it did not write (all of them
    when it failed and wrote nothing anyone can download)."""
    return max(0, reserved - written)


# ---- markers

@dataclass(frozen=True)
class Marker:
    id: str
    name: str
    phone: str  # E.164
    email: str

    def values(self) -> list[tuple[str, str]]:
        """The ``(kind, value)`` pairs a trace looks up, normalised as ``trace_values`` normalises the input."""
        return [("client_id", self.id), ("phone", phone_key(self.phone)), ("email", self.email.lower())]


def marker_key(secret: str) -> bytes:
    """The markers' key, derived from the installation's signing key (never the signing key itself)."""
    return hmac.new(secret.encode(), b"crm client export markers", hashlib.sha256).digest()


def _digest(key: bytes, export_id: str, label: str) -> bytes:
    return hmac.new(key, f"{export_id}:{label}".encode(), hashlib.sha256).digest()


def make_marker(key: bytes, export_id: str, number: int, email_domain: str) -> Marker:
    digest = _digest(key, export_id, f"marker:{number}")
    woman = digest[0] & 1
    first, first_latin = (_WOMEN if woman else _MEN)[digest[1] % 12]
    last, last_latin = _SURNAMES[digest[2] % 12]
    if woman:
        last, last_latin = last + "а", last_latin + "a"
    digits = str(int.from_bytes(digest[3:11], "big") % 10**9).zfill(9)
    suffix = int.from_bytes(digest[11:14], "big") % 10**5
    return Marker(
        id=str(uuid.UUID(bytes=digest[16:32], version=4)),
        name=f"{first} {last}",
        phone=f"+79{digits}",
        email=f"{first_latin}.{last_latin}{suffix}@{email_domain}",
    )


def marker_slots(key: bytes, export_id: str, rows: int, markers: int) -> list[int]:
    """Where the markers go among ``rows + markers`` data lines (0-based, sorted); never first, so a marker can
    take its neighbour's owner, branch and dates."""
    if markers == 0:
        return []
    seed = int.from_bytes(_digest(key, export_id, "slots"), "big")
    return sorted(random.Random(seed).sample(range(1, rows + markers), markers))


def markers_for(key: bytes, export_id: str, rows: int, email_domain: str) -> tuple[list[Marker], list[int]]:
    """The export's markers and their slots for an export of ``rows`` clients."""
    count = min(MARKERS_PER_FILE, rows)
    markers = [make_marker(key, export_id, number, email_domain) for number in range(count)]
    return markers, marker_slots(key, export_id, rows, count)


# ---- the file

def first_line(export_id: str, user_email: str, user_id: str, at: str) -> list[str]:
    """The file's first line: which export, whose, when."""
    return [f"# CRM client export {export_id}", f"user {user_email} ({user_id})", f"created {at}"]


def client_row(client: dict) -> list[str]:
    custom = client.get("custom_fields") or {}
    return [
        client["id"], client["kind"], client["name"], "; ".join(client.get("phones") or []),
        "; ".join(client.get("emails") or []), client.get("source") or "", "; ".join(client.get("tags") or []),
        client.get("owner_id") or "", client.get("branch_id") or "", "true" if client.get("archived") else "false",
        client.get("created_at") or "", client.get("updated_at") or "",
        json.dumps(custom, ensure_ascii=False, sort_keys=True) if custom else "",
    ]


def marker_row(marker: Marker, neighbour: list[str] | None) -> list[str]:
    """A marker shaped like a client of the file: it takes the owner, branch, source, archived flag and dates of
    the row before it."""
    near = neighbour or [""] * len(HEADER)
    return [marker.id, "person", marker.name, marker.phone, marker.email, near[5], "", near[7], near[8],
            near[9] or "false", near[10], near[11], ""]


@dataclass
class MarkedRows:
    """Client rows with the markers put in at their slots: ``add(client)`` for each client in the file's order,
    then ``finish()`` for markers whose slots the clients did not reach (fewer clients than counted). Each call
    gives the lines to write; ``placed`` says on which line of the file each marker ended up."""

    markers: list[Marker]
    slots: list[int]
    written: int = 0  # data lines so far, markers included
    clients: int = 0
    placed: list[dict] = field(default_factory=list)
    _last: list[str] | None = None

    def add(self, client: dict) -> list[list[str]]:
        lines = self._due()
        row = client_row(client)
        lines.append(row)
        self._last = row
        self.written += 1
        self.clients += 1
        return lines + self._due()

    def finish(self) -> list[list[str]]:
        lines = []
        while len(self.placed) < len(self.markers):
            lines.append(self._place())
        return lines

    def _due(self) -> list[list[str]]:
        lines = []
        while len(self.placed) < len(self.markers) and self.slots[len(self.placed)] <= self.written:
            lines.append(self._place())
        return lines

    def _place(self) -> list[str]:
        marker = self.markers[len(self.placed)]
        row = marker_row(marker, self._last)
        self.placed.append({"line": FIRST_DATA_LINE + self.written, "id": marker.id, "name": marker.name,
                            "phone": marker.phone, "email": marker.email})
        self.written += 1
        return row


# ---- tracing a leaked file

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# a phone as people write it: digits with spaces, dashes, dots or brackets between, perhaps a leading +
_PHONE = re.compile(r"\+?\d[\d\s().\-]{8,20}\d")
_DIGITS = re.compile(r"\d{10,15}")


def phone_key(value: str) -> str | None:
    """A phone as the trace compares it: its last ten digits (so +7 916..., 8 (916)... and 916... agree)."""
    digits = re.sub(r"\D", "", value)
    return digits[-10:] if len(digits) >= 10 else None


def trace_values(phones=(), emails=(), client_ids=(), text: str = "") -> set[tuple[str, str]]:
    """Every ``(kind, value)`` to look up among the markers: the values given and those found in the text."""
    found: set[tuple[str, str]] = set()
    phones, emails, client_ids = list(phones), list(emails), list(client_ids)
    if text:
        emails += _EMAIL.findall(text)
        client_ids += _UUID.findall(text)
        plain = _UUID.sub(" ", text)
        # as people write them (8 (916) 123-45-67), and bare runs of digits, which a joined list of phones
        # ("+79161234567 +79161234568") would otherwise run together
        phones += _PHONE.findall(plain) + _DIGITS.findall(plain)
    for phone in phones:
        key = phone_key(phone)
        if key:
            found.add(("phone", key))
    found.update(("email", email.strip().lower()) for email in emails if email.strip())
    found.update(("client_id", cid.strip().lower()) for cid in client_ids if cid.strip())
    return found
