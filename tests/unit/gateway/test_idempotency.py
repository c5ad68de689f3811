"""The fingerprint that tells a replayed request from a different one under the same Idempotency-Key."""

from types import SimpleNamespace

import pytest

from gateway.idempotency import fingerprint


def req(method="POST", path="/api/v1/clients", body=None):
    return SimpleNamespace(method=method, path=path, json_body=body)


def test_the_same_request_has_the_same_fingerprint():
    assert fingerprint(req(body={"name": "Иван"})) == fingerprint(req(body={"name": "Иван"}))


def test_the_order_of_keys_does_not_change_the_fingerprint():
    first = req(body={"kind": "person", "name": "Иван", "tags": {"a": 1, "b": 2}})
    second = req(body={"tags": {"b": 2, "a": 1}, "name": "Иван", "kind": "person"})

    assert fingerprint(first) == fingerprint(second)


@pytest.mark.parametrize(
    "other",
    [
        req(body={"name": "Пётр"}),
        req(body={"name": "Иван", "phones": []}),
        req(body={"name": ["Иван"]}),
        req(path="/api/v1/touchpoints", body={"name": "Иван"}),
        req(method="PATCH", body={"name": "Иван"}),
        req(body=None),
    ],
)
def test_a_different_body_path_or_method_has_a_different_fingerprint(other):
    assert fingerprint(other) != fingerprint(req(body={"name": "Иван"}))


def test_list_order_matters_to_the_fingerprint():
    assert fingerprint(req(body={"phones": ["1", "2"]})) != fingerprint(req(body={"phones": ["2", "1"]}))


def test_a_fingerprint_is_a_sha256_hex_digest():
    value = fingerprint(req(body={"name": "Иван"}))

    assert len(value) == 64 and int(value, 16) >= 0


@pytest.mark.parametrize(
    ("key", "valid"),
    [("3f2b9c1e-0000-4000-8000-000000000000", True), ("a", True), ("a b", True), ("k" * 255, True), ("k" * 256, False),
     ("", False), (" a", False), ("a ", False), ("a\x00", False), ("ключ", False), ("a\tb", False)],
)
def test_an_idempotency_key_is_what_the_documents_pattern_says(key, valid):
    import re

    from crm_common.errors import BadRequest
    from gateway.http import IDEMPOTENCY_KEY_PATTERN
    from gateway.idempotency import IdempotentRequests

    assert (re.search(IDEMPOTENCY_KEY_PATTERN, key) is not None) == valid
    if not valid:  # refused before anything is looked up or stored
        with pytest.raises(BadRequest):
            IdempotentRequests(worker_ctx=None).run(None, None, key, lambda: None, 200)
