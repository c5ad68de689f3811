"""The rules of the client base: contacts, search, round robin and who may own a client."""

import pytest

from clients.domain import (
    check_branch_change,
    check_owner,
    next_owner,
    normalize_contacts,
    normalize_email,
    normalize_phone,
    normalize_tags,
    search_term,
    search_text,
    touchpoint_source,
)
from crm_common.caller import Caller
from crm_common.errors import Forbidden, ValidationError

NORTH, SOUTH = "north", "south"
ADMIN = Caller("admin-1", "admin", None)
HEAD = Caller("head-1", "head", NORTH)
MANAGER = Caller("manager-1", "manager", NORTH)
DIRECTORY = {
    "users": {
        "manager-1": {"branch_id": NORTH, "role": "manager", "active": True},
        "manager-2": {"branch_id": NORTH, "role": "manager", "active": True},
        "manager-3": {"branch_id": NORTH, "role": "manager", "active": False},
        "manager-9": {"branch_id": SOUTH, "role": "manager", "active": True},
        "head-1": {"branch_id": NORTH, "role": "head", "active": True},
    }
}


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("8 (916) 123-45-67", "+79161234567"),
        ("+7 916 1234567", "+79161234567"),
        ("9161234567", "+79161234567"),
        ("89161234567", "+79161234567"),
        ("+7 (495) 123-45-67", "+74951234567"),
        ("  +7-916-123-45-67  ", "+79161234567"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+1 650 253 0000", "+16502530000"),
    ],
)
def test_a_phone_written_any_way_becomes_e164(raw, e164):
    assert normalize_phone(raw, "RU") == e164


def test_the_default_region_decides_numbers_written_without_a_country_code():
    assert normalize_phone("020 7946 0958", "GB") == "+442079460958"


@pytest.mark.parametrize("raw", ["123", "abc", "+7 000", "", "8 (916) 123-45", "+7 916 123 45 67 89 00"])
def test_what_is_not_a_real_phone_number_is_refused(raw):
    with pytest.raises(ValueError, match="Not a valid phone number."):
        normalize_phone(raw, "RU")


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("Ivan@Mail.RU", "ivan@mail.ru"),
        ("  anna.petrova+crm@example.com ", "anna.petrova+crm@example.com"),
        ("info@почта.рф", "info@почта.рф"),
    ],
)
def test_an_email_is_trimmed_and_lower_cased(raw, normal):
    assert normalize_email(raw) == normal


@pytest.mark.parametrize("raw", ["ivan", "ivan@", "@mail.ru", "ivan@@mail.ru", "ivan mail.ru", ""])
def test_an_invalid_email_is_refused(raw):
    with pytest.raises(ValueError, match="Not a valid email address."):
        normalize_email(raw)


def test_an_email_that_lower_casing_makes_too_long_is_refused():
    raw = "İ" * 60 + "@" + "x" * 190 + ".ru"  # 253 characters; lower-cased, 313

    with pytest.raises(ValueError, match="Longer than 254 characters."):
        normalize_email(raw)


def test_a_clients_contacts_are_normalised_and_written_once():
    phones, emails = normalize_contacts(
        ["8 (916) 123-45-67", "+79161234567", "+7 495 123 45 67"], ["Ivan@Mail.ru", "ivan@mail.ru "], "RU"
    )

    assert phones == ["+79161234567", "+74951234567"]
    assert emails == ["ivan@mail.ru"]


def test_every_invalid_contact_is_reported_under_its_index():
    with pytest.raises(ValidationError) as error:
        normalize_contacts(["+79161234567", "123", "+7 000"], ["bad", "ok@example.com"], "RU")

    assert set(error.value.fields) == {"phones.1", "phones.2", "emails.0"}
    assert error.value.fields["phones.1"] == ["Not a valid phone number."]
    assert error.value.fields["emails.0"] == ["Not a valid email address."]


def test_a_client_may_have_no_contacts():
    assert normalize_contacts([], [], "RU") == ([], [])


def test_tags_are_trimmed_lower_cased_and_written_once_in_order():
    assert normalize_tags([" VIP ", "vip", "", "  ", "Опт", "опт", "b2b"]) == ["vip", "опт", "b2b"]


def test_the_search_text_holds_the_name_phone_digits_and_emails_in_lower_case():
    assert search_text("Иван Петров", ["+79161234567", "+74951234567"], ["Ivan@Mail.ru"]) == (
        "иван петров 79161234567 74951234567 ivan@mail.ru"
    )


@pytest.mark.parametrize(
    ("q", "term"),
    [
        ("8 (916) 123-45-67", "79161234567"),
        ("+7 916 123-45-67", "79161234567"),
        ("9161234567", "79161234567"),
        ("+7 916 123", "7916123"),
        ("123-45-67", "1234567"),
        ("8 916 123", "7916123"),
        ("Иван", "иван"),
        ("  ООО Ромашка ", "ооо ромашка"),
        ("Ivan@Mail.RU", "ivan@mail.ru"),
    ],
)
def test_a_search_term_matches_what_is_stored(q, term):
    assert search_term(q, "RU") == term


def test_every_stored_way_of_writing_a_phone_finds_the_client():
    stored = search_text("Иван", [normalize_phone("8 (916) 123-45-67", "RU")], [])

    for q in ("8 (916) 123-45-67", "+7 916 123 45 67", "916 123-45-67", "123-45-67", "+7 916"):
        assert search_term(q, "RU") in stored


@pytest.mark.parametrize(
    ("candidates", "last", "chosen"),
    [
        (["m-b", "m-a", "m-c"], None, "m-a"),
        (["m-b", "m-a", "m-c"], "m-a", "m-b"),
        (["m-b", "m-a", "m-c"], "m-b", "m-c"),
        (["m-b", "m-a", "m-c"], "m-c", "m-a"),
        (["m-a", "m-c"], "m-b", "m-c"),
        (["m-a", "m-c"], "m-z", "m-a"),
        (["m-a", "m-a", "m-b"], "m-a", "m-b"),
        (["m-a"], "m-a", "m-a"),
        ([], None, None),
        ([], "m-a", None),
    ],
)
def test_new_clients_go_round_robin_to_the_manager_after_the_last_one(candidates, last, chosen):
    assert next_owner(candidates, last) == chosen


def test_round_robin_over_many_clients_gives_each_manager_the_same_number():
    managers, last, counts = ["m-3", "m-1", "m-2"], None, {}
    for _ in range(9):
        last = next_owner(managers, last)
        counts[last] = counts.get(last, 0) + 1

    assert counts == {"m-1": 3, "m-2": 3, "m-3": 3}


@pytest.mark.parametrize("owner_id", [None, "manager-1"])
def test_a_manager_owns_what_they_create(owner_id):
    assert check_owner(MANAGER, owner_id, NORTH, DIRECTORY) == "manager-1"


@pytest.mark.parametrize("owner_id", ["manager-2", "head-1", "nobody"])
def test_a_manager_cannot_name_another_owner(owner_id):
    with pytest.raises(Forbidden):
        check_owner(MANAGER, owner_id, NORTH, DIRECTORY)


@pytest.mark.parametrize(
    ("caller", "owner_id", "branch_id", "owner"),
    [
        (HEAD, None, NORTH, "head-1"),
        (HEAD, "manager-2", NORTH, "manager-2"),
        (HEAD, "head-1", NORTH, "head-1"),
        (ADMIN, "manager-9", SOUTH, "manager-9"),
        (ADMIN, "manager-1", NORTH, "manager-1"),
        (ADMIN, None, NORTH, None),
        (Caller("admin-2", "admin", SOUTH), None, SOUTH, "admin-2"),
    ],
)
def test_a_head_or_admin_may_name_an_active_member_of_the_clients_branch(caller, owner_id, branch_id, owner):
    assert check_owner(caller, owner_id, branch_id, DIRECTORY) == owner


@pytest.mark.parametrize(
    ("caller", "owner_id", "branch_id", "directory"),
    [
        (HEAD, "manager-3", NORTH, DIRECTORY),
        (HEAD, "manager-9", NORTH, DIRECTORY),
        (HEAD, "nobody", NORTH, DIRECTORY),
        (HEAD, "manager-2", NORTH, None),
        (ADMIN, "manager-1", SOUTH, DIRECTORY),
        (ADMIN, "manager-3", NORTH, DIRECTORY),
    ],
)
def test_naming_an_owner_who_is_not_an_active_member_of_the_branch_is_invalid(caller, owner_id, branch_id, directory):
    with pytest.raises(ValidationError) as error:
        check_owner(caller, owner_id, branch_id, directory)

    assert list(error.value.fields) == ["owner_id"]


@pytest.mark.parametrize(
    ("caller", "new_branch"),
    [(ADMIN, SOUTH), (HEAD, None), (HEAD, NORTH), (MANAGER, NORTH), (MANAGER, None)],
)
def test_a_client_may_stay_in_its_branch_and_only_an_admin_may_move_it(caller, new_branch):
    check_branch_change(caller, new_branch, NORTH)


@pytest.mark.parametrize("caller", [HEAD, MANAGER])
def test_a_head_or_manager_cannot_move_a_client_to_another_branch(caller):
    with pytest.raises(Forbidden):
        check_branch_change(caller, SOUTH, NORTH)


@pytest.mark.parametrize(
    ("channel", "utm", "source"),
    [
        ("web_form", {"utm_source": "yandex", "source": "ignored"}, "yandex"),
        ("web_form", {"source": "avito"}, "avito"),
        ("web_form", {}, "web_form"),
        ("web_form", {"utm_source": ""}, "web_form"),
        ("call", {"utm_source": "  google  "}, "google"),
        ("web_form", {"utm_source": "x" * 100}, "x" * 64),
    ],
)
def test_the_source_of_a_touchpoint_is_its_utm_source_or_else_its_channel(channel, utm, source):
    assert touchpoint_source(channel, utm) == source
