"""If-Match, ETag and query arguments shared by the routes."""

import pytest
from werkzeug.test import EnvironBuilder

from crm_common.errors import BadRequest
from gateway.routes.common import etag, if_match, query_args


def request_with(headers=None, query_string=None):
    return EnvironBuilder(path="/api/v1/clients/x", headers=headers, query_string=query_string).get_request()


@pytest.mark.parametrize(("header", "version"), [("3", 3), ('"3"', 3), ('W/"3"', 3), ("12", 12), ("0", 0)])
def test_if_match_gives_the_version_written_plain_quoted_or_weak(header, version):
    assert if_match(request_with({"If-Match": header})) == version


def test_without_if_match_there_is_no_expected_version():
    assert if_match(request_with()) is None


@pytest.mark.parametrize("header", ["", "abc", "*", "-1", "3.0", '"v3"', "W/", "3 4", "²", "¹²", '""3""', '"3', 'W/3', ' 3'])
def test_an_if_match_that_is_not_a_version_is_a_bad_request_naming_if_match(header):
    with pytest.raises(BadRequest) as error:
        if_match(request_with({"If-Match": header}))

    assert list(error.value.fields) == ["If-Match"]


def test_the_etag_is_the_quoted_version_if_match_reads_back():
    headers = etag({"id": "c-1", "version": 7})

    assert headers == {"ETag": '"7"'}
    assert if_match(request_with({"If-Match": headers["ETag"]})) == 7


def test_query_args_keep_the_first_value_of_a_repeated_parameter():
    assert query_args(request_with(query_string="q=иван&tag=vip&tag=b2b")) == {"q": "иван", "tag": "vip"}
