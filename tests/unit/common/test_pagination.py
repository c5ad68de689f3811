"""Keyset pagination: opaque cursors, and pages that neither repeat nor skip rows."""

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Integer, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool

from crm_common.columns import UtcDateTime
from crm_common.errors import BadRequest
from crm_common.pagination import SortKey, decode_cursor, encode_cursor, paginate


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "rows"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    rank: Mapped[int] = mapped_column(Integer)


NEWEST_FIRST = [SortKey(Row.created_at, True, "datetime"), SortKey(Row.id, True)]
OLDEST_FIRST = [SortKey(Row.created_at, False, "datetime"), SortKey(Row.id, False)]
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def raw_cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def test_a_cursor_round_trips_strings_integers_and_datetimes():
    keys = [SortKey(Row.created_at, True, "datetime"), SortKey(Row.rank, kind="int"), SortKey(Row.id)]
    when = datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)

    cursor = encode_cursor([keys[0].to_json(when), keys[1].to_json(42), keys[2].to_json("клиент-1")])

    assert decode_cursor(cursor, keys) == [when, 42, "клиент-1"]


def test_a_cursor_is_url_safe_text_without_padding():
    cursor = encode_cursor(["2026-11-26T10:00:00Z", "??>>"])

    assert "=" not in cursor and "+" not in cursor and "/" not in cursor


def test_a_datetime_in_a_cursor_keeps_its_instant_across_time_zones():
    key = SortKey(Row.created_at, kind="datetime")
    moscow = datetime(2026, 11, 26, 13, 0, tzinfo=timezone(timedelta(hours=3)))

    assert key.from_json(key.to_json(moscow)) == moscow
    assert key.to_json(moscow) == "2026-11-26T10:00:00Z"


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("not a cursor!", id="not-base64"),
        pytest.param("@@@@", id="no-base64-characters"),
        pytest.param("", id="empty"),
        pytest.param(base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(), id="not-utf8"),
        pytest.param(raw_cursor({"created_at": "2026-11-26T10:00:00Z", "id": "a"}), id="an-object"),
        pytest.param(raw_cursor(["2026-11-26T10:00:00Z"]), id="too-few-values"),
        pytest.param(raw_cursor(["2026-11-26T10:00:00Z", "a", "extra"]), id="too-many-values"),
        pytest.param(raw_cursor(["yesterday", "a"]), id="not-a-datetime"),
        pytest.param(raw_cursor([12345, "a"]), id="a-number-for-a-datetime"),
        pytest.param(raw_cursor(["2026-11-26T10:00:00", "a"]), id="a-datetime-without-offset"),
        pytest.param(raw_cursor(["0001-01-01T00:00:00+05:00", "a"]), id="before-the-first-utc-instant"),
        pytest.param(raw_cursor(["9999-12-31T23:59:59-05:00", "a"]), id="after-the-last-utc-instant"),
    ],
)
def test_a_cursor_not_returned_by_the_list_is_a_bad_request_naming_cursor(cursor):
    with pytest.raises(BadRequest) as error:
        decode_cursor(cursor, NEWEST_FIRST)

    assert "cursor" in error.value.fields


@pytest.mark.parametrize("value", ["many", 2**63, -(2**63) - 1, 10**40])
def test_an_integer_key_that_is_not_a_database_integer_is_a_bad_request(value):
    with pytest.raises(BadRequest) as error:
        decode_cursor(raw_cursor([value]), [SortKey(Row.rank, kind="int")])

    assert "cursor" in error.value.fields


@pytest.fixture
def session():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def add_rows(session, ids_and_times):
    for rank, (row_id, when) in enumerate(ids_and_times):
        session.add(Row(id=row_id, created_at=when, rank=rank))
    session.commit()


def page_through(session, keys, limit=2):
    seen, cursor, pages = [], None, 0
    while True:
        page = paginate(session, select(Row), keys, cursor, limit, lambda row: row.id)
        assert len(page["items"]) <= limit
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return seen, pages
        assert pages < 20


# several rows share a timestamp, so only the id breaks the tie
SAMPLE = [
    ("a", T0),
    ("b", T0),
    ("c", T0),
    ("d", T0 + timedelta(seconds=1)),
    ("e", T0 + timedelta(seconds=1)),
    ("f", T0 - timedelta(seconds=1)),
    ("g", T0),
]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (NEWEST_FIRST, ["e", "d", "g", "c", "b", "a", "f"]),
        (OLDEST_FIRST, ["f", "a", "b", "c", "g", "d", "e"]),
    ],
)
def test_paging_by_two_through_rows_with_equal_times_repeats_and_skips_nothing(session, keys, expected):
    add_rows(session, SAMPLE)

    seen, pages = page_through(session, keys, limit=2)

    assert seen == expected
    assert pages == 4


def test_a_list_that_fits_on_one_page_has_no_next_cursor(session):
    add_rows(session, SAMPLE[:2])

    page = paginate(session, select(Row), NEWEST_FIRST, None, 2, lambda row: row.id)

    assert page == {"items": ["b", "a"], "next_cursor": None}


def test_an_empty_list_is_one_empty_page(session):
    assert paginate(session, select(Row), NEWEST_FIRST, None, 2, lambda row: row.id) == {
        "items": [],
        "next_cursor": None,
    }


def test_a_row_inserted_while_paging_newest_first_does_not_shift_the_next_pages(session):
    add_rows(session, SAMPLE)
    first = paginate(session, select(Row), NEWEST_FIRST, None, 2, lambda row: row.id)
    session.add(Row(id="z", created_at=T0 + timedelta(minutes=5), rank=99))
    session.add(Row(id="0", created_at=T0, rank=100))
    session.commit()

    rest, cursor = [], first["next_cursor"]
    while cursor:
        page = paginate(session, select(Row), NEWEST_FIRST, cursor, 2, lambda row: row.id)
        rest += page["items"]
        cursor = page["next_cursor"]

    assert first["items"] == ["e", "d"]
    assert rest == ["g", "c", "b", "a", "0", "f"]


def test_paging_keeps_the_query_filters(session):
    add_rows(session, SAMPLE)

    page = paginate(session, select(Row).where(Row.created_at == T0), OLDEST_FIRST, None, 3, lambda row: row.id)
    rest = paginate(session, select(Row).where(Row.created_at == T0), OLDEST_FIRST, page["next_cursor"], 3, lambda row: row.id)

    assert page["items"] + rest["items"] == ["a", "b", "c", "g"]
    assert rest["next_cursor"] is None
