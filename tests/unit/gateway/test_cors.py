"""gateway/cors.py: which requests get CORS headers (CRM_CORS_ORIGINS), and what a preflight answers."""

import pytest

from crm_common.config import ConfigError, Settings
from gateway import cors

LISTED = ("https://shop.example", "http://localhost:3000")


def environ(origin=None, path="/api/v1/touchpoints", method="POST", preflight=False):
    env = {"PATH_INFO": path, "REQUEST_METHOD": method}
    if origin:
        env["HTTP_ORIGIN"] = origin
    if preflight:
        env["HTTP_ACCESS_CONTROL_REQUEST_METHOD"] = "POST"
    return env


def test_a_listed_origin_is_allowed_on_the_api_whatever_its_case():
    assert cors.allowed_origin(environ("https://shop.example"), LISTED, "/api/v1") == "https://shop.example"
    assert cors.allowed_origin(environ("HTTPS://Shop.Example"), LISTED, "/api/v1") == "HTTPS://Shop.Example"
    assert cors.allowed_origin(environ("http://localhost:3000", path="/api/v1"), LISTED, "/api/v1")


@pytest.mark.parametrize(("origin", "path", "origins"), [
    ("https://evil.example", "/api/v1/me", LISTED),           # not listed
    ("https://shop.example.evil", "/api/v1/me", LISTED),     # not the same origin
    ("http://shop.example", "/api/v1/me", LISTED),           # another scheme is another origin
    ("https://shop.example", "/dashboard", LISTED),          # outside the API
    ("https://shop.example", "/api/v10", LISTED),
    ("https://shop.example", "/api/v1/me", ()),              # nothing listed: none
    (None, "/api/v1/me", LISTED),                            # no Origin: not a cross-origin call
])
def test_anything_else_is_not(origin, path, origins):
    assert cors.allowed_origin(environ(origin, path), origins, "/api/v1") is None


def test_a_preflight_is_an_options_request_naming_the_method_to_come():
    assert cors.is_preflight(environ(method="OPTIONS", preflight=True))
    assert not cors.is_preflight(environ(method="OPTIONS"))
    assert not cors.is_preflight(environ(method="POST", preflight=True))


def test_the_preflight_answer_allows_the_headers_the_api_reads():
    answer = cors.preflight_response("https://shop.example")
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    for header in ("Authorization", "Content-Type", "Idempotency-Key", "If-Match", "X-Api-Key"):
        assert header in answer.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in answer.headers


@pytest.mark.parametrize("origin", ["*", "shop.example", "https://shop.example/", "https://shop.example/form",
                                    "ftp://shop.example"])
def test_a_listed_origin_that_is_not_an_origin_stops_the_start(origin):
    with pytest.raises(ConfigError, match="CRM_CORS_ORIGINS"):
        Settings.from_config({"CRM": {"cors_origins": f"https://ok.example,{origin}"}})


def test_the_origins_are_read_as_a_comma_separated_list():
    settings = Settings.from_config({"CRM": {"cors_origins": " https://a.example , http://[::1]:8080,"}})
    assert settings.cors_origins == ("https://a.example", "http://[::1]:8080")
