"""Everything a client could send wrong gets the documented 4xx with a JSON body naming the problem."""

import pytest
import requests

from crm_common.testing.system import phone_number, unique

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def error_of(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.fixture(scope="module")
def head(world):
    return world.north.head


@pytest.fixture(scope="module")
def client(head):
    return head.ok("POST", "/clients", {"kind": "person", "name": "Для ошибок", "phones": [phone_number()]}, status=201)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Без вида"}, "kind"),
        ({"kind": "person"}, "name"),
        ({"kind": "robot", "name": "X"}, "kind"),
        ({"kind": "person", "name": 42}, "name"),
        ({"kind": "person", "name": "   "}, "name"),
        ({"kind": "person", "name": "Я" * 201}, "name"),
        ({"kind": "person", "name": "X", "phones": "+79160000000"}, "phones"),
        ({"kind": "person", "name": "X", "phones": [79160000000]}, "phones.0"),
        ({"kind": "person", "name": "X", "phones": ["12345"]}, "phones.0"),
        ({"kind": "person", "name": "X", "phones": ["+7 916 000-00-00", "not a phone"]}, "phones.1"),
        ({"kind": "person", "name": "X", "phones": ["+7 916 000 00 00"] * 11}, "phones"),
        ({"kind": "person", "name": "X", "emails": ["ivan@"]}, "emails.0"),
        ({"kind": "person", "name": "X", "emails": ["a" * 250 + "@x.ru"]}, "emails.0"),
        ({"kind": "person", "name": "X", "emails": ["İ" * 60 + "@" + "x" * 190 + ".ru"]}, "emails.0"),  # long once lower-cased
        ({"kind": "person", "name": "X", "tags": ["t" * 51]}, "tags.0"),
        ({"kind": "person", "name": "X", "tags": "vip"}, "tags"),
        ({"kind": "person", "name": "X", "custom_fields": ["a"]}, "custom_fields"),
        ({"kind": "person", "name": "X", "custom_fields": {"k": {"nested": 1}}}, "custom_fields.k.value"),
        ({"kind": "person", "name": "X", "custom_fields": {f"k{i}": i for i in range(51)}}, "custom_fields"),
        ({"kind": "person", "name": "X", "owner_id": "not-an-id"}, "owner_id"),
        ({"kind": "person", "name": "X", "owner_id": UNKNOWN_ID}, "owner_id"),
        ({"kind": "person", "name": "X", "surname": "Y"}, "surname"),
    ],
)
def test_an_invalid_client_is_refused_with_422_naming_the_field(head, body, field):
    error = error_of(head.post("/clients", json=body), 422, "validation_error")
    assert field in error["fields"], error


def test_an_admin_naming_a_branch_that_does_not_exist_gets_422(world):
    response = world.admin.post("/clients", json={"kind": "person", "name": "X", "branch_id": UNKNOWN_ID})
    assert "branch_id" in error_of(response, 422, "validation_error")["fields"]


@pytest.mark.parametrize(
    ("data", "content_type", "field"),
    [
        (b"{not json", "application/json", "body"),
        (b'{"kind": "person", "name": NaN}', "application/json", "body"),
        (b'["kind", "person"]', "application/json", "body"),
        (b"\xff\xfe", "application/json", "body"),
        (b"kind=person&name=X", "application/x-www-form-urlencoded", "Content-Type"),
        (b"", "application/json", "body"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_bad_request(head, data, content_type, field):
    response = head.http.post(f"{head.base_url}/clients", data=data, headers={"Content-Type": content_type})
    assert field in error_of(response, 400, "bad_request")["fields"]


def test_a_body_over_one_megabyte_is_refused(head):
    response = head.http.post(f"{head.base_url}/clients", data=b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}',
                              headers={"Content-Type": "application/json"})
    error_of(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("cursor=garbage", "cursor"),
        ("sort=age", "sort"),
        ("created_from=yesterday", "created_from"),
        ("owner_id=42", "owner_id"),
        ("colour=red", "colour"),
        ("q=" + "x" * 101, "q"),
    ],
)
def test_a_bad_query_parameter_is_a_bad_request_naming_it(head, query, field):
    error = error_of(head.get(f"/clients?{query}"), 400, "bad_request")
    assert field in error["fields"], error


@pytest.mark.parametrize("path", [f"/clients/{UNKNOWN_ID}", "/clients/not-a-uuid", f"/clients/{UNKNOWN_ID}/timeline",
                                  f"/users/{UNKNOWN_ID}", f"/branches/{UNKNOWN_ID}", f"/deals/{UNKNOWN_ID}",
                                  f"/pipelines/{UNKNOWN_ID}", f"/scripts/{UNKNOWN_ID}", "/no/such/route"])
def test_an_unknown_id_or_route_is_404(head, path):
    error_of(head.get(path), 404, "not_found")


def test_writes_to_unknown_clients_are_404(head):
    error_of(head.patch(f"/clients/{UNKNOWN_ID}", json={"name": "X"}), 404, "not_found")
    error_of(head.delete(f"/clients/{UNKNOWN_ID}"), 404, "not_found")
    error_of(head.post(f"/clients/{UNKNOWN_ID}/interactions", json={"type": "note"}), 404, "not_found")


def test_a_wrong_method_is_405_in_the_same_error_shape(head):
    response = head.request("PUT", "/clients")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "fax"}, "type"),
        ({}, "type"),
        ({"type": "call", "direction": "sideways"}, "direction"),
        ({"type": "call", "duration_s": -5}, "duration_s"),
        ({"type": "call", "duration_s": "60"}, "duration_s"),
        ({"type": "call", "occurred_at": "2026-11-26T10:00:00"}, "occurred_at"),
        ({"type": "call", "occurred_at": "yesterday"}, "occurred_at"),
        ({"type": "call", "script_id": UNKNOWN_ID}, "script_id"),
        ({"type": "note", "text": "x" * 10001}, "text"),
    ],
)
def test_an_invalid_interaction_is_refused(head, client, body, field):
    error = error_of(head.post(f"/clients/{client['id']}/interactions", json=body), 422, "validation_error")
    assert field in error["fields"], error


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"channel": "web_form"}, {"phone", "email"}),
        ({"phone": "+7 916 000-00-00"}, {"channel"}),
        ({"channel": "call", "phone": "123"}, {"phone"}),
        ({"channel": "call", "email": "nobody"}, {"email"}),
        ({"channel": "call", "phone": phone_number(), "utm": "yandex"}, {"utm"}),
    ],
)
def test_an_invalid_touchpoint_is_refused(head, body, fields):
    error = error_of(head.post("/touchpoints", json=body), 422, "validation_error")
    assert fields <= set(error["fields"]), error


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwidmVyIjoxLCJleHAiOjF9.c2lnbmF0dXJl"},
    ],
)
def test_a_missing_or_bad_token_is_401(system, headers):
    response = requests.get(f"{system.base_url}/clients", headers=headers, timeout=10)
    error_of(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "body",
    [{"email": "admin@crm.local"}, {"email": 5, "password": "x"}, {"email": "a@b.c", "password": "p", "extra": 1},
     {"email": "İ" * 250 + "@b.ru", "password": "x"}],  # 255 characters as sent, over the 254 the document states
)
def test_a_malformed_login_is_422(system, body):
    error_of(requests.post(f"{system.base_url}/auth/login", json=body, timeout=10), 422, "validation_error")


def test_a_wrong_password_is_401_and_repeated_failures_lock_the_account_for_a_while(system):
    email = f"{unique('nobody')}@e2e.test"
    for _ in range(5):
        response = requests.post(f"{system.base_url}/auth/login", json={"email": email, "password": "wrong"}, timeout=10)
        error_of(response, 401, "unauthorized")
    locked = requests.post(f"{system.base_url}/auth/login", json={"email": email, "password": "wrong"}, timeout=10)
    error_of(locked, 429, "rate_limited")
    assert int(locked.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "name": "X", "password": "long-password", "role": "manager"}, "email"),
        ({"email": "İ" * 60 + "@" + "x" * 190 + ".ru", "name": "X", "password": "long-password", "role": "manager"},
         "email"),
        ({"email": "x@y.ru", "name": "X", "password": "short", "role": "manager"}, "password"),
        ({"email": "x@y.ru", "name": "X", "password": "long-password", "role": "boss"}, "role"),
        ({"email": "x@y.ru", "name": "X", "password": "long-password", "role": "manager"}, "branch_id"),
        ({"email": "x@y.ru", "name": "X", "password": "long-password", "role": "manager", "branch_id": UNKNOWN_ID},
         "branch_id"),
    ],
)
def test_an_invalid_user_is_refused(world, body, field):
    error = error_of(world.admin.post("/users", json=body), 422, "validation_error")
    assert field in error["fields"], error


def test_an_email_that_is_taken_is_a_conflict(world):
    body = {"email": world.north.head.me["email"], "name": "Двойник", "password": "long-password", "role": "manager",
            "branch_id": world.north.id}
    assert "email" in error_of(world.admin.post("/users", json=body), 409, "conflict")["fields"]


def test_an_invalid_if_match_is_a_bad_request(head, client):
    response = head.patch(f"/clients/{client['id']}", json={"name": "X"}, headers={"If-Match": "yesterday"})
    assert "If-Match" in error_of(response, 400, "bad_request")["fields"]


def test_an_empty_change_is_refused(head, client):
    error_of(head.patch(f"/clients/{client['id']}", json={}), 422, "validation_error")


def test_an_overlong_idempotency_key_is_refused(head):
    response = head.post("/clients", json={"kind": "person", "name": "X"}, headers={"Idempotency-Key": "k" * 300})
    assert "Idempotency-Key" in error_of(response, 400, "bad_request")["fields"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"kind": "person", "name": "Nul\\u0000l"}', "name"),
        ('{"kind": "person", "name": "X", "custom_fields": {"k": "a\\u0000"}}', "custom_fields.k"),
        ('{"kind": "person", "name": "X", "custom_fields": {"k\\u0000": "a"}}', "custom_fields.k\x00"),
        ('{"kind": "person", "name": "\\ud800"}', "name"),
    ],
)
def test_text_no_database_can_store_is_refused_not_a_crash(head, raw, field):
    response = head.http.post(f"{head.base_url}/clients", data=raw.encode(), headers={"Content-Type": "application/json"})
    assert field in error_of(response, 422, "validation_error")["fields"]


def test_a_number_too_large_for_a_float_is_a_bad_request(head):
    raw = b'{"kind": "person", "name": "X", "custom_fields": {"n": 1e400}}'
    response = head.http.post(f"{head.base_url}/clients", data=raw, headers={"Content-Type": "application/json"})
    assert "body" in error_of(response, 400, "bad_request")["fields"]


def test_a_nul_character_in_a_search_is_refused(head):
    assert "q" in error_of(head.get("/clients?q=ab%00cd"), 400, "bad_request")["fields"]
