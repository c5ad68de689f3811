"""The pure rules of webhooks: which URLs and addresses may be called, the signature, the retry schedule."""

import hashlib
import hmac
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from webhooks import domain


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1",
    "fec0::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:c0a8:101::1",
])
def test_private_loopback_link_local_and_special_addresses_are_refused(address):
    assert domain.refusal(address, allow_private=False)
    assert domain.refusal(address, allow_private=True) is None


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_may_be_called(address):
    assert domain.refusal(address, allow_private=False) is None


def test_a_name_with_one_private_address_among_public_ones_is_refused():
    with pytest.raises(domain.UrlRefused, match="hooks.example.com resolves to 10.0.0.7"):
        domain.refuse_addresses("hooks.example.com", ["93.184.216.34", "10.0.0.7"], allow_private=False)
    domain.refuse_addresses("hooks.example.com", ["93.184.216.34", "10.0.0.7"], allow_private=True)
    with pytest.raises(domain.UrlRefused, match="does not resolve"):
        domain.refuse_addresses("hooks.example.com", [], allow_private=True)


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://files.example.com/in", "Only http and https"),
    ("file:///etc/passwd", "Only http and https"),
    ("gopher://example.com", "Only http and https"),
    ("https://user:secret@example.com/hook", "no user name or password"),
    ("http:///path", "no host"),
    ("http://example.com:0/", "Port 0"),
    ("http://example.com:99999/", "Not a valid URL"),
    ("http://exa mple.com/", "no spaces"),
    ("http://127.1/", "not a valid name"),
    ("http://2130706433/", "not a valid name"),
    ("http://bad_label!.example.com/", "not a valid name"),
])
def test_a_url_of_the_wrong_form_is_refused_with_the_reason(url, why):
    with pytest.raises(domain.UrlRefused, match=why):
        domain.parse_url(url)


def test_a_url_is_taken_apart_into_what_is_resolved_and_connected_to():
    assert domain.parse_url("HTTPS://Hooks.Example.COM./in?x=1") == domain.Target("https", "hooks.example.com", 443, None)
    assert domain.parse_url("http://exämple.рф:8080/").host == "xn--exmple-cua.xn--p1ai"
    literal = domain.parse_url("http://[::1]:9000/hook")
    assert (literal.host, literal.port, str(literal.address)) == ("::1", 9000, "::1")


def test_an_event_goes_to_webhooks_that_take_it_from_their_branch_or_from_every_branch():
    assert domain.wants(["deal_won"], None, "deal_won", "b1")
    assert domain.wants(["deal_won", "deal_lost"], "b1", "deal_won", "b1")
    assert not domain.wants(["deal_won"], "b1", "deal_won", "b2")
    assert not domain.wants(["deal_lost"], None, "deal_won", "b1")
    assert not domain.wants(["deal_won"], "b1", "deal_won", None)


def test_the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body():
    body = domain.body("d-1", "client_created", "2026-11-26T10:00:00Z", {"client": {"name": "Анна"}})

    header = domain.headers("whsec_0123456789abcdef", 1764151200, "d-1", "client_created", body)

    expected = hmac.new(b"whsec_0123456789abcdef", b"1764151200." + body, hashlib.sha256).hexdigest()
    assert header["X-CRM-Signature"] == f"t=1764151200,v1={expected}"
    assert (header["X-CRM-Timestamp"], header["X-CRM-Delivery"], header["X-CRM-Event"]) == (
        "1764151200", "d-1", "client_created")
    assert json.loads(body) == {"id": "d-1", "event": "client_created", "occurred_at": "2026-11-26T10:00:00Z",
                                "data": {"client": {"name": "Анна"}}}


def test_a_receiver_accepts_a_fresh_signature_and_refuses_a_changed_body_an_old_one_or_another_secret():
    body = b'{"id":"d-1"}'
    header = domain.headers("whsec_0123456789abcdef", 1000, "d-1", "deal_won", body)["X-CRM-Signature"]

    assert domain.verify("whsec_0123456789abcdef", header, body, now=1100)
    assert not domain.verify("whsec_0123456789abcdef", header, body + b" ", now=1100)
    assert not domain.verify("whsec_0123456789abcdef", header, body, now=1000 + 301)
    assert not domain.verify("whsec_another_secret_00", header, body, now=1100)
    assert not domain.verify("whsec_0123456789abcdef", "garbage", body, now=1100)


def test_each_retry_waits_between_half_and_all_of_a_doubling_delay_capped_at_an_hour():
    rng = random.Random(7)
    for failures, ceiling in ((1, 10), (2, 20), (3, 40), (9, 2560), (10, 3600), (40, 3600), (500, 3600)):
        for _ in range(50):
            assert ceiling / 2 <= domain.retry_delay(failures, 10, rng) <= ceiling


def test_a_failing_delivery_is_retried_for_24_hours_and_last_tried_at_their_end():
    times = domain.schedule(10, 24 * 3600, random.Random(3))

    assert times[0] == 0 and times[-1] == 24 * 3600
    assert all(later > earlier for earlier, later in zip(times, times[1:]))
    assert max(b - a for a, b in zip(times, times[1:])) <= 3600
    assert 30 <= len(times) <= 50


def test_no_retry_is_planned_once_the_retry_period_is_over():
    start = datetime(2026, 11, 26, tzinfo=UTC)

    assert domain.next_attempt(start + timedelta(hours=24), start, 30, 10, 24 * 3600) is None
    almost = domain.next_attempt(start + timedelta(hours=23, minutes=59), start, 30, 10, 24 * 3600)
    assert almost == start + timedelta(hours=24)
