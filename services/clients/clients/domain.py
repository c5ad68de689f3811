"""The rules of the client base, free of nameko and of the database."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import phonenumbers
from marshmallow import ValidationError as MarshmallowError
from marshmallow.validate import Email

from crm_common.caller import Caller
from crm_common.errors import Forbidden, ValidationError

PHONE_LIKE = re.compile(r"^[\d\s()+\-.]{5,}$")
_email_validator = Email()


def normalize_phone(raw: str, region: str) -> str:
    """``8 (916) 123-45-67`` → ``+79161234567``; raises ``ValueError`` when it is not a real number."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValueError("Not a valid phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("Not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 254:  # lower-casing can lengthen a string
        raise ValueError("Longer than 254 characters.")
    try:
        _email_validator(email)
    except MarshmallowError:
        raise ValueError("Not a valid email address.") from None
    return email


def _normalize_all(values: Sequence[str], normalize, field: str, errors: dict) -> list[str]:
    result: list[str] = []
    for index, raw in enumerate(values):
        try:
            value = normalize(raw)
        except ValueError as exc:
            errors[f"{field}.{index}"] = [str(exc)]
            continue
        if value not in result:
            result.append(value)
    return result


def normalize_contacts(phones: Sequence[str], emails: Sequence[str], region: str) -> tuple[list[str], list[str]]:
    """Normalise and de-duplicate a client's phones and emails; invalid ones raise with their index."""
    errors: dict[str, list[str]] = {}
    normal_phones = _normalize_all(phones, lambda p: normalize_phone(p, region), "phones", errors)
    normal_emails = _normalize_all(emails, normalize_email, "emails", errors)
    if errors:
        raise ValidationError("invalid contacts", fields=errors)
    return normal_phones, normal_emails


def normalize_tags(tags: Iterable[str]) -> list[str]:
    result: list[str] = []
    for tag in tags:
        tag = tag.strip().lower()
        if tag and tag not in result:
            result.append(tag)
    return result


def search_text(name: str, phones: Iterable[str], emails: Iterable[str]) -> str:
    """What ``?q=`` matches: the name, the phones as digits, the emails, all lower-case."""
    parts = [name.lower()]
    parts += [p.lstrip("+") for p in phones]
    parts += [e.lower() for e in emails]
    return " ".join(parts)


def search_term(q: str, region: str) -> str:
    """The substring to look for: a phone written any way becomes its digits, as stored."""
    q = q.strip()
    if PHONE_LIKE.match(q):
        try:
            return normalize_phone(q, region).lstrip("+")
        except ValueError:
            return _partial_phone_digits(q, region)
    return q.lower()


def _partial_phone_digits(q: str, region: str) -> str:
    """A fragment of a number as stored: ``8 916 12`` in Russia is ``791612`` (trunk prefix → country code)."""
    digits = re.sub(r"\D", "", q)
    if q.lstrip().startswith("+"):
        return digits
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    trunk = metadata.national_prefix if metadata else None
    if trunk and digits.startswith(trunk) and len(digits) > len(trunk) + 2:
        return f"{phonenumbers.country_code_for_region(region)}{digits[len(trunk):]}"
    return digits


def next_owner(candidates: Sequence[str], last_owner_id: str | None) -> str | None:
    """Round robin: the candidate after the one who got the last client (in a stable order)."""
    ordered = sorted(set(candidates))
    if not ordered:
        return None
    if last_owner_id is None:
        return ordered[0]
    for candidate in ordered:
        if candidate > last_owner_id:
            return candidate
    return ordered[0]


def check_owner(caller: Caller, owner_id: str | None, branch_id: str, directory: dict | None) -> str | None:
    """Who owns a client created or reassigned by ``caller`` in ``branch_id``: see ``Caller.owner_for``.
    Naming nobody makes a head the owner of a client of their own branch."""
    default = caller.id if caller.branch_id == branch_id else None
    return caller.owner_for(owner_id, branch_id, directory, default, record="client")


def check_branch_change(caller: Caller, new_branch_id: str | None, current_branch_id: str) -> None:
    if new_branch_id and new_branch_id != current_branch_id and not caller.is_admin:
        raise Forbidden("only an administrator may move a client to another branch")


def touchpoint_source(channel: str, utm: dict) -> str:
    return (utm.get("utm_source") or utm.get("source") or channel).strip()[:64]


def deal_timeline_data(event_type: str, payload: dict) -> dict:
    """What a client's timeline shows of a deal event."""
    deal = payload["deal"]
    data = {"deal_id": deal["id"], "title": deal["title"], "amount": deal["amount"], "currency": deal["currency"],
            "status": deal["status"]}
    if event_type == "deal_stage_changed":
        data.update(from_stage=payload["from_stage"]["name"], to_stage=payload["to_stage"]["name"],
                    time_in_stage_s=payload["time_in_stage_s"])
    elif event_type in ("deal_won", "deal_reopened", "deal_stuck"):
        data["stage"] = payload["stage"]["name"]
    if event_type == "deal_lost":
        data.update(stage=payload["stage"]["name"], reason=payload["reason"])
    elif event_type == "deal_stuck":
        data["days_in_stage"] = round(payload["days_in_stage"], 2)
    elif event_type == "deal_updated":
        data["changed"] = payload["changed"]
    return data


def task_timeline_data(event_type: str, payload: dict) -> dict:
    """What a client's timeline shows of a task or complaint event."""
    if "complaint" in payload:
        complaint = payload["complaint"]
        data = {"complaint_id": complaint["id"], "subject": complaint["subject"], "status": complaint["status"],
                "owner_id": complaint["owner_id"], "due_at": complaint["due_at"], "deal_id": complaint["deal_id"]}
        if event_type == "complaint_resolved":
            data["resolution"] = complaint["resolution"]
        return data
    task = payload["task"]
    data = {"task_id": task["id"], "title": task["title"], "status": task["status"], "assignee_id": task["assignee_id"],
            "due_at": task["due_at"], "deal_id": task["deal_id"]}
    if event_type == "task_completed":
        data["on_time"] = payload["on_time"]
    elif event_type == "task_cancelled":
        data["reason"] = payload["reason"]
    return data
