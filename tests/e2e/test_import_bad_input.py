"""Every way an upload can be wrong gets a clear 4xx naming the problem, and imports nothing."""

import json

import pytest

from crm_common.testing.system import phone_number, unique
from tests.e2e.uploads import HEADER, MAPPING, csv_file, send

RUSSIAN = [[f"{name} {unique()}", phone_number(), "", "", "", "", ""] for name in (
    "Иванов Иван Иванович", "Смирнова Ольга Петровна", "Кузнецов Дмитрий Сергеевич", "Попова Анна Андреевна")]


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.fixture(scope="module")
def head(world):
    return world.north.head


def imports_of(head) -> int:
    return len(head.pages("/imports"))


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "PNG image"),
        (b"PK\x03\x04" + b"\x00" * 64, "Excel workbook"),
        (b"", "empty"),
        (csv_file(RUSSIAN, encoding="koi8_r"), "KOI8-R"),
        (csv_file(RUSSIAN, encoding="utf-16"), "UTF-16"),
        (csv_file([]), "no rows"),
        (csv_file(RUSSIAN) + "Сидоров;1\n".encode("cp1251"), "mixes encodings"),
        (csv_file(RUSSIAN) + b'"not closed,' + b"x" * 140_000, "quote"),
    ],
)
def test_a_file_that_is_not_a_readable_csv_is_422_naming_the_file(head, content, fragment):
    before = imports_of(head)

    error = error_of(send(head, content), 422, "validation_error")

    assert fragment in error["fields"]["file"][0]
    assert imports_of(head) == before


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({**MAPPING, "phones": ["Телефон", "Мобильный"]}, "mapping.phones.1"),
        ({**MAPPING, "custom_fields": {"inn": "ИНН"}}, "mapping.custom_fields.inn"),
        ({"phones": "Телефон"}, "mapping.name"),
        ({**MAPPING, "address": "Адрес"}, "mapping.address"),
        ("{not json", "mapping"),
        ("[]", "mapping"),
    ],
)
def test_a_mapping_naming_a_column_the_file_lacks_or_malformed_is_422_naming_the_key(head, mapping, field):
    error = error_of(send(head, csv_file(RUSSIAN), mapping=mapping), 422, "validation_error")

    assert field in error["fields"]


def test_the_missing_column_is_named_with_the_columns_the_file_has(head):
    error = error_of(send(head, csv_file(RUSSIAN), mapping={**MAPPING, "phones": ["Моб"]}), 422, "validation_error")

    assert error["fields"]["mapping.phones.0"] == [
        "No column «Моб» in the file; its columns are: " + ", ".join(f"«{c}»" for c in HEADER) + "."]


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"on_duplicate": "replace"}, "on_duplicate"), ({"dry_run": "maybe"}, "dry_run"),
     ({"owner": "x"}, "owner"), ({"branch_id": "not-an-id"}, "branch_id")],
)
def test_a_wrong_form_field_is_422_naming_it(head, fields, field):
    error = error_of(send(head, csv_file(RUSSIAN), **fields), 422, "validation_error")

    assert field in error["fields"]


def test_an_upload_without_its_file_or_mapping_is_422_naming_the_part(head):
    no_file = head.post("/imports", files={"mapping": (None, json.dumps(MAPPING))})
    file_as_text = head.post("/imports", files={"file": (None, "ФИО\nИван\n"), "mapping": (None, json.dumps(MAPPING))})
    no_mapping = head.post("/imports", files={"file": ("a.csv", csv_file(RUSSIAN))})

    assert "file" in error_of(no_file, 422, "validation_error")["fields"]
    assert "file" in error_of(file_as_text, 422, "validation_error")["fields"]
    assert "mapping" in error_of(no_mapping, 422, "validation_error")["fields"]


def test_a_json_body_is_a_bad_request_naming_the_content_type(head):
    error = error_of(head.post("/imports", json={"file": "ФИО\nИван"}), 400, "bad_request")

    assert "Content-Type" in error["fields"]


def test_a_file_over_the_limit_is_413_and_imports_nothing(head):
    before = imports_of(head)  # the e2e system runs with CRM_IMPORT_MAX_MB=1
    row = ",".join(["Иванов Иван", "+7 916 000-00-00", "", "", "", "", ""]) + "\n"
    big = csv_file([]) + (row * (1_100_000 // len(row.encode()) + 1)).encode()

    error = error_of(send(head, big), 413, "payload_too_large")

    assert "CRM_IMPORT_MAX_MB" in error["message"] and "file" in error["fields"]
    assert imports_of(head) == before
