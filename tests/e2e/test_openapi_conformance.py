"""The served OpenAPI document is exact: schemathesis, with every check, finds nothing wrong with the running system.

A few examples per operation with a fixed generation (``--generation-deterministic``), so this stays within a
minute or two and every run sends the same requests; ``make fuzz`` runs many more. The run changes what it
finds (archives clients, moves deals...), so these tests run after the other e2e tests (conftest.py).
"""

from urllib.parse import urlsplit

import pytest

from crm_common.testing.fuzzing import prepare, run_schemathesis

EXAMPLES = 3


@pytest.fixture(scope="module")
def origin(system) -> str:
    address = urlsplit(system.base_url)
    return f"{address.scheme}://{address.netloc}"


@pytest.fixture(scope="module")
def fuzzing(system, admin):
    return prepare(system.base_url, token_of(admin))


def token_of(api) -> str:
    return api.http.headers["Authorization"].removeprefix("Bearer ")


def assert_no_failures(result):
    report = (result.stdout or "") + (result.stderr or "")
    # schemathesis exits 1 on any failure or error; the summary counts the cases it ran
    assert result.returncode == 0, report[-15000:]
    assert " generated, " in report and " passed" in report, report[-15000:]


def test_a_head_of_sales_finds_every_answer_as_the_document_says(origin, fuzzing, tmp_path):
    result = run_schemathesis(origin, fuzzing.head_token, tmp_path, examples=EXAMPLES, ids=fuzzing.ids,
                              extra=["--phases", "fuzzing,stateful"], timeout=300)

    assert_no_failures(result)


def test_the_administrator_finds_every_answer_as_the_document_says(origin, fuzzing, admin, tmp_path):
    result = run_schemathesis(origin, token_of(admin), tmp_path, examples=EXAMPLES, ids=fuzzing.ids, timeout=300)

    assert_no_failures(result)
