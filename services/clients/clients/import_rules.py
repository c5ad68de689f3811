"""The rules of an import, free of nameko and of the database: a mapped row becomes a client's fields under
the checks ``POST /clients`` applies, and a duplicate is skipped, merged or created as ``on_duplicate`` says.

A row as the gateway maps it from the file (``import_rows.data``); values are the cells' text, a cell of
several phones, emails or tags already split; each phone, email and tag carries the index of its column
in the mapping, so an error names ``phones.1`` (the second phone column)::

    {"name": "Иван Петров", "kind": "person", "phones": [[0, "8 916 123-45-67"], [1, "+7 495 000-00-00"]],
     "emails": [[0, "ivan@example.ru"]], "source": "выставка", "tags": [[0, "vip"]],
     "custom_fields": {"inn": "7701234567"}, "owner_email": "olga@firm.ru", "owner_id": "<user id or null>",
     "errors": [{"field": "row", "message": "..."}]}

``owner_id`` is what the gateway found for ``owner_email`` among the branch's active users; ``errors`` are
problems the gateway saw in the row itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clients import domain
from crm_common.contracts.clients import CLIENT_KINDS, MAX_CUSTOM_FIELDS, MAX_EMAILS, MAX_PHONES, MAX_TAGS
from crm_common.schemas import unstorable_text

# the limits of ClientCreateSchema (tests/unit/clients/test_import_rules.py holds the two together)
MAX_NAME, MAX_PHONE, MAX_EMAIL, MAX_SOURCE, MAX_TAG, MAX_CUSTOM_VALUE = 200, 40, 254, 64, 50, 1000

SKIP, MERGE, CREATE_ANYWAY = "skip", "merge", "create_anyway"
# how a kind column says it in a Russian spreadsheet
KIND_WORDS = {
    "компания": "company", "организация": "company", "юрлицо": "company", "юр. лицо": "company",
    "юридическое лицо": "company", "физлицо": "person", "физ. лицо": "person", "физическое лицо": "person",
    "частное лицо": "person", "человек": "person",
}


@dataclass
class RowFields:
    """A valid row: what the client gets."""

    kind: str
    name: str
    phones: list[str]
    emails: list[str]
    source: str | None
    tags: list[str]
    custom_fields: dict
    owner_id: str | None

    @property
    def contacts(self) -> list[tuple[str, str]]:
        return [("phone", p) for p in self.phones] + [("email", e) for e in self.emails]


@dataclass
class RowCheck:
    fields: RowFields | None
    errors: list[dict] = field(default_factory=list)


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def check_row(data: dict, region: str) -> RowCheck:
    """The client a row describes, or every reason it cannot be imported (``[{field, message}]``)."""
    errors: list[dict] = [dict(e) for e in data.get("errors") or []]

    def problem(name: str, message: str) -> None:
        errors.append({"field": name, "message": message})

    def bounded(name: str, value: str, limit: int) -> str | None:
        if len(value) > limit:
            problem(name, f"Longer than {limit} characters.")
            return None
        if unstorable_text(value):
            problem(name, "Contains a NUL character or invalid Unicode.")
            return None
        return value

    name = _text(data.get("name"))
    if not name:
        problem("name", "Missing: every client needs a name.")
    else:
        name = bounded("name", name, MAX_NAME) or ""

    kind = _text(data.get("kind")).lower() or "person"
    kind = KIND_WORDS.get(kind, kind)
    if kind not in CLIENT_KINDS:
        problem("kind", f"Must be one of: {', '.join(CLIENT_KINDS)} (not «{kind}»).")

    phones = _contacts(data.get("phones"), "phones", MAX_PHONE, MAX_PHONES,
                       lambda raw: domain.normalize_phone(raw, region), problem)
    emails = _contacts(data.get("emails"), "emails", MAX_EMAIL, MAX_EMAILS, domain.normalize_email, problem)

    source = _text(data.get("source")) or None
    if source is not None:
        source = bounded("source", source, MAX_SOURCE)

    tags: list[str] = []
    for index, raw in _pairs(data.get("tags")):
        tag = bounded(f"tags.{index}", _text(raw).lower(), MAX_TAG)
        if tag and tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        problem("tags", f"At most {MAX_TAGS} tags.")

    custom_fields = {}
    given = data.get("custom_fields")
    for key, raw in (given.items() if isinstance(given, dict) else []):
        value = _text(raw)
        if value:
            custom_fields[key] = bounded(f"custom_fields.{key}", value, MAX_CUSTOM_VALUE)
    if len(custom_fields) > MAX_CUSTOM_FIELDS:
        problem("custom_fields", f"At most {MAX_CUSTOM_FIELDS} custom fields.")

    owner_email = _text(data.get("owner_email"))
    owner_id = data.get("owner_id")
    if owner_email and not owner_id:
        problem("owner_email", f"No active user of the branch has the email «{owner_email}».")

    if errors:
        return RowCheck(None, errors)
    return RowCheck(RowFields(kind, name, phones, emails, source, tags, custom_fields, owner_id or None))


def _pairs(value) -> list[tuple[int, str]]:
    """``[[column index, text], ...]`` as the gateway sends them; anything else in the list is left out."""
    return [(item[0], item[1]) for item in value or []
            if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], int)]


def _contacts(pairs, field_name: str, max_length: int, max_count: int, normalize, problem) -> list[str]:
    values: list[str] = []
    for index, raw in _pairs(pairs):
        raw = _text(raw)
        if not raw:
            continue
        name = f"{field_name}.{index}"
        if len(raw) > max_length:
            problem(name, f"Longer than {max_length} characters.")
            continue
        try:
            value = normalize(raw)
        except ValueError as exc:
            problem(name, f"{str(exc).rstrip('.')}: «{raw}».")
            continue
        if value not in values:
            values.append(value)
    if len(values) > max_count:
        problem(field_name, f"At most {max_count} {field_name}.")
    return values


@dataclass(frozen=True)
class Match:
    """What a row duplicates: a client of the base (or one the import made), or an earlier row of the file
    whose client does not exist (a dry run creates none)."""

    client_id: str | None
    row: int | None
    kind: str
    value: str

    def describe(self) -> str:
        target = f"client {self.client_id}" if self.client_id else f"row {self.row}"
        return f"duplicate of {target} (same {self.kind} {self.value})"


def find_match(contacts: list[tuple[str, str]], holders: dict, staged: dict) -> Match | None:
    """The first of the row's phones, then emails, that a client of the branch holds (``holders``: value →
    client id, claimers first) or an earlier row of the file had (``staged``: value → (row, client id))."""
    for contact in contacts:
        if contact in holders:
            return Match(holders[contact], None, *contact)
    for contact in contacts:
        if contact in staged:
            row, client_id = staged[contact]
            return Match(client_id, row, *contact)
    return None


def decide(on_duplicate: str, match: Match | None) -> str:
    """``created``, ``skipped`` or ``merged``: what becomes of a row."""
    if match is None or on_duplicate == CREATE_ANYWAY:
        return "created"
    return "merged" if on_duplicate == MERGE else "skipped"


def merge_row(current: dict, row: RowFields) -> list[str]:
    """Add a row's new phones, emails and tags to a client (``current``: its fields, changed in place), and its
    source and custom fields where the client has none; the names of the fields that changed."""
    changed = []
    for name in ("phones", "emails", "tags"):
        added = [v for v in getattr(row, name) if v not in current[name]]
        if added:
            current[name] = list(current[name]) + added
            changed.append(name)
    if row.source and not current.get("source"):
        current["source"] = row.source
        changed.append("source")
    missing = {k: v for k, v in row.custom_fields.items() if k not in (current.get("custom_fields") or {})}
    if missing:
        current["custom_fields"] = {**(current.get("custom_fields") or {}), **missing}
        changed.append("custom_fields")
    return changed
