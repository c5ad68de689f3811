"""Segments: the filter's rules, members as the caller sees them, the copy of deal states, and campaigns."""

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from clients import commands, segments
from clients.models import Client, ClientDeal
from crm_common.caller import Caller
from crm_common.contracts.segments import SegmentFilterSchema
from crm_common.errors import Forbidden, NotFound, ValidationError, VersionConflict
from crm_common.schemas import load_or_raise

BRANCH, OTHER_BRANCH = str(uuid.uuid4()), str(uuid.uuid4())
HEAD = Caller(str(uuid.uuid4()), "head", BRANCH)
MANAGER = Caller(str(uuid.uuid4()), "manager", BRANCH)
ADMIN = Caller(str(uuid.uuid4()), "admin", None)
OTHER_HEAD = Caller(str(uuid.uuid4()), "head", OTHER_BRANCH)


def load_filter(raw):
    return load_or_raise(SegmentFilterSchema, raw)


def fields_of(exc_info) -> dict:
    return exc_info.value.fields


# ---- the filter's rules


def test_an_unknown_filter_key_is_refused_naming_it():
    with pytest.raises(ValidationError) as exc:
        load_filter({"tag": "vip", "colour": "red"})
    assert list(fields_of(exc)) == ["colour"]


def test_a_created_range_that_ends_before_it_starts_is_refused_on_created_to():
    with pytest.raises(ValidationError) as exc:
        load_filter({"created_from": "2026-12-01", "created_to": "2026-11-01"})
    assert list(fields_of(exc)) == ["created_to"]


def test_dates_and_date_times_are_both_taken_as_bounds():
    loaded = load_filter({"created_from": "2026-11-01", "created_to": "2026-11-30T12:00:00+03:00"})
    assert segments.stored_filter(loaded) == {"created_from": "2026-11-01T00:00:00Z", "created_to": "2026-11-30T09:00:00Z"}


@pytest.mark.parametrize("raw, field", [
    ({"has_open_deal": "yes"}, "has_open_deal"),
    ({"kind": "robot"}, "kind"),
    ({"owner_id": "nobody"}, "owner_id"),
    ({"custom_fields": {"city": None}}, "custom_fields.city.value"),
    ({"custom_fields": {"city": ["Москва"]}}, "custom_fields.city.value"),
    ({"no_interaction_since": "last week"}, "no_interaction_since"),
])
def test_a_filter_value_of_the_wrong_kind_is_refused_naming_the_field(raw, field):
    with pytest.raises(ValidationError) as exc:
        load_filter(raw)
    assert field in fields_of(exc)


def test_a_stored_filter_keeps_only_the_keys_given_in_the_contracts_order():
    loaded = load_filter({"has_open_deal": False, "tag": "vip", "custom_fields": {"city": "Москва"}})
    assert list(segments.stored_filter(loaded)) == ["tag", "has_open_deal", "custom_fields"]


# ---- members


def add_client(uow, caller=HEAD, **data) -> dict:
    body = {"kind": "person", "name": f"Клиент {uuid.uuid4().hex[:6]}", **data}
    client = commands.create_client(uow, caller, body, None, "RU")
    uow.session.commit()
    return client


def created_at(uow, client: dict, when: datetime) -> None:
    uow.session.get(Client, client["id"]).created_at = when
    uow.session.commit()


def segment(uow, flt: dict, caller=HEAD, **extra) -> dict:
    out = segments.create_segment(uow, caller, {"name": "Сегмент", "filter": flt, **extra})
    uow.session.commit()
    return out


def member_ids(uow, segment_id, caller=HEAD) -> set:
    return {c["id"] for c in segments.segment_clients(uow.session, caller, segment_id, {"limit": "200"})["items"]}


def test_a_segment_counts_its_members_now_not_when_it_was_saved(uow):
    vip = segment(uow, {"tag": "VIP"})
    assert vip["count"] == 0

    first = add_client(uow, tags=["vip"])
    add_client(uow, tags=["regular"])

    assert segments.get_segment(uow.session, HEAD, vip["id"])["count"] == 1
    assert member_ids(uow, vip["id"]) == {first["id"]}


def test_a_manager_counts_only_their_own_clients_in_a_segment_the_head_sees_whole(uow):
    add_client(uow, MANAGER, kind="company")
    add_client(uow, HEAD, kind="company", owner_id=None)
    companies = segment(uow, {"kind": "company"})

    assert segments.get_segment(uow.session, HEAD, companies["id"])["count"] == 2
    assert segments.get_segment(uow.session, MANAGER, companies["id"])["count"] == 1


def test_archived_clients_and_clients_of_another_branch_are_never_members(uow):
    kept = add_client(uow, source="yandex")
    gone = add_client(uow, source="yandex")
    commands.set_archived(uow, HEAD, gone["id"], True, commands.NO_DEALS)
    add_client(uow, ADMIN, source="yandex", branch_id=OTHER_BRANCH)
    everyone = segment(uow, {"source": "yandex"}, ADMIN, branch_id=BRANCH)  # an admin's segment is one branch's

    assert everyone["count"] == 1
    assert member_ids(uow, everyone["id"], ADMIN) == {kept["id"]}


def test_the_created_range_includes_its_start_and_excludes_its_end(uow):
    start = add_client(uow)
    end = add_client(uow)
    created_at(uow, start, datetime(2026, 11, 1, tzinfo=UTC))
    created_at(uow, end, datetime(2026, 12, 1, tzinfo=UTC))

    november = segment(uow, {"created_from": "2026-11-01", "created_to": "2026-12-01"})

    assert member_ids(uow, november["id"]) == {start["id"]}


def test_custom_fields_match_by_value_and_json_type(uow):
    text = add_client(uow, custom_fields={"floors": "3", "city": "Тула"})
    number = add_client(uow, custom_fields={"floors": 3, "partner": True})
    true_one = add_client(uow, custom_fields={"floors": 1, "partner": True})

    assert member_ids(uow, segment(uow, {"custom_fields": {"floors": 3}})["id"]) == {number["id"]}
    assert member_ids(uow, segment(uow, {"custom_fields": {"floors": "3"}})["id"]) == {text["id"]}
    assert member_ids(uow, segment(uow, {"custom_fields": {"partner": True}})["id"]) == {number["id"], true_one["id"]}
    assert member_ids(uow, segment(uow, {"custom_fields": {"partner": True, "floors": 1}})["id"]) == {true_one["id"]}


def test_no_interaction_since_keeps_clients_silent_since_then_or_ever(uow):
    silent = add_client(uow)
    old_call = add_client(uow)
    recent = add_client(uow)
    commands.log_interaction(uow, HEAD, old_call["id"], {"type": "call", "occurred_at": "2026-01-10T10:00:00Z"})
    commands.log_interaction(uow, HEAD, recent["id"], {"type": "note", "occurred_at": "2026-11-20T10:00:00Z"})
    uow.session.commit()

    quiet = segment(uow, {"no_interaction_since": "2026-11-01"})

    assert member_ids(uow, quiet["id"]) == {silent["id"], old_call["id"]}


def test_a_client_stops_being_silent_when_interactions_reach_it_whoever_writes_them(uow):
    from clients import merging

    kept = add_client(uow)
    other = add_client(uow)
    commands.log_interaction(uow, HEAD, kept["id"], {"type": "call", "occurred_at": "2026-01-10T10:00:00Z"})
    commands.log_interaction(uow, HEAD, other["id"], {"type": "meeting", "occurred_at": "2026-11-20T10:00:00Z"})
    commands.log_interaction(uow, HEAD, other["id"], {"type": "note", "occurred_at": "2026-02-01T10:00:00Z"})
    uow.session.commit()
    quiet = segment(uow, {"no_interaction_since": "2026-11-01"})
    assert member_ids(uow, quiet["id"]) == {kept["id"]}

    uow.call(merging.merge_clients, HEAD, kept["id"], {"other_id": other["id"]})  # the recent meeting moves over

    assert member_ids(uow, quiet["id"]) == set()
    newest = uow.session.scalars(select(Client.last_interaction_at).where(Client.id.in_([kept["id"], other["id"]])))
    assert sorted(str(value) for value in newest) == ["2026-11-20 10:00:00+00:00", "None"]


def deal_event(client_id, deal_id, status, version):
    return {"event_id": str(uuid.uuid4()), "occurred_at": "2026-11-27T10:00:00Z", "branch_id": BRANCH,
            "actor_id": HEAD.id, "deal": {"id": deal_id, "client_id": client_id, "status": status, "version": version,
                                          "title": "Поставка", "amount": "1.00", "currency": "RUB"}}


def test_has_open_deal_follows_the_deal_events_in_whatever_order_they_come(uow):
    with_deal = add_client(uow)
    without = add_client(uow)
    deal_id = str(uuid.uuid4())
    open_ = segment(uow, {"has_open_deal": True})
    none_open = segment(uow, {"has_open_deal": False})

    segments.record_deal_state(uow, deal_event(with_deal["id"], deal_id, "open", 1))
    uow.session.commit()
    assert member_ids(uow, open_["id"]) == {with_deal["id"]}
    assert member_ids(uow, none_open["id"]) == {without["id"]}

    segments.record_deal_state(uow, deal_event(with_deal["id"], deal_id, "won", 3))
    segments.record_deal_state(uow, deal_event(with_deal["id"], deal_id, "open", 2))  # late, older: ignored
    segments.record_deal_state(uow, deal_event(with_deal["id"], deal_id, "won", 3))  # again: nothing changes
    uow.session.commit()

    assert member_ids(uow, open_["id"]) == set()
    assert member_ids(uow, none_open["id"]) == {with_deal["id"], without["id"]}
    assert uow.session.scalars(select(ClientDeal.status)).all() == ["won"]


def test_a_deal_moved_to_another_client_by_a_merge_counts_for_that_client_only(uow):
    merged, kept = add_client(uow), add_client(uow)
    deal_id = str(uuid.uuid4())
    open_ = segment(uow, {"has_open_deal": True})
    segments.record_deal_state(uow, deal_event(merged["id"], deal_id, "open", 1))
    segments.record_deal_state(uow, deal_event(kept["id"], deal_id, "open", 2))
    uow.session.commit()

    assert member_ids(uow, open_["id"]) == {kept["id"]}
    assert {c.id: c.open_deals for c in uow.session.scalars(select(Client))} == {merged["id"]: 0, kept["id"]: 1}


def test_filters_apply_together(uow):
    both = add_client(uow, kind="company", tags=["vip"], source="expo")
    add_client(uow, kind="company", tags=["vip"], source="site")
    add_client(uow, kind="person", tags=["vip"], source="expo")

    assert member_ids(uow, segment(uow, {"kind": "company", "tag": "vip", "source": "expo"})["id"]) == {both["id"]}


# ---- who may do what


def test_a_manager_reads_segments_but_does_not_write_them(uow):
    with pytest.raises(Forbidden):
        segments.create_segment(uow, MANAGER, {"name": "Мои", "filter": {}})
    saved = segment(uow, {})
    assert segments.get_segment(uow.session, MANAGER, saved["id"])["name"] == "Сегмент"


def test_a_segment_of_another_branch_is_not_found(uow):
    saved = segment(uow, {})
    with pytest.raises(NotFound):
        segments.get_segment(uow.session, OTHER_HEAD, saved["id"])


def test_changing_a_segment_with_a_stale_version_is_a_conflict(uow):
    saved = segment(uow, {"tag": "vip"})
    changed = segments.update_segment(uow, HEAD, saved["id"], {"filter": {"tag": "gold"}}, expected_version=1)
    uow.session.commit()
    assert (changed["filter"], changed["version"]) == ({"tag": "gold"}, 2)
    with pytest.raises(VersionConflict):
        segments.update_segment(uow, HEAD, saved["id"], {"name": "Золото"}, expected_version=1)


def test_a_deleted_segment_leaves_the_lists(uow):
    saved = segment(uow, {})
    segments.delete_segment(uow, HEAD, saved["id"])
    uow.session.commit()
    assert segments.list_segments(uow.session, HEAD, {})["items"] == []
    with pytest.raises(NotFound):
        segments.get_segment(uow.session, HEAD, saved["id"])


# ---- campaigns


def campaign_body(segment_id, **extra):
    return {"name": "Рассылка", "segment_id": segment_id, "channel": "email", "starts_on": "2026-12-01",
            "ends_on": "2026-12-31", **extra}


def test_a_campaign_records_its_segments_size_in_the_branch_and_tells_the_reports(uow):
    add_client(uow, MANAGER, tags=["vip"])
    add_client(uow, HEAD, tags=["vip"], owner_id=None)
    vip = segment(uow, {"tag": "vip"})

    campaign = segments.create_campaign(uow, HEAD, campaign_body(vip["id"], budget={"amount": "5000", "currency": "RUB"}))

    assert (campaign["audience"], campaign["budget"]) == (2, {"amount": "5000.00", "currency": "RUB"})
    [(event, payload)] = [e for e in uow.events if e[0].startswith("campaign")]
    assert (event, payload["campaign"]["id"]) == ("campaign_created", campaign["id"])


def test_a_campaign_that_ends_before_it_starts_is_refused_on_ends_on(uow):
    vip = segment(uow, {})
    with pytest.raises(ValidationError) as exc:
        segments.create_campaign(uow, HEAD, campaign_body(vip["id"], ends_on="2026-11-30"))
    assert list(fields_of(exc)) == ["ends_on"]


def test_a_campaign_for_a_segment_nobody_in_the_branch_has_is_refused_on_segment_id(uow):
    theirs = segment(uow, {}, OTHER_HEAD)
    for segment_id in (str(uuid.uuid4()), theirs["id"]):
        with pytest.raises(ValidationError) as exc:
            segments.create_campaign(uow, HEAD, campaign_body(segment_id))
        assert list(fields_of(exc)) == ["segment_id"]


def test_moving_a_campaigns_start_past_its_end_is_refused(uow):
    campaign = segments.create_campaign(uow, HEAD, campaign_body(segment(uow, {})["id"]))
    uow.session.commit()
    with pytest.raises(ValidationError) as exc:
        segments.update_campaign(uow, HEAD, campaign["id"], {"starts_on": "2027-01-01"})
    assert list(fields_of(exc)) == ["starts_on"]
    moved = segments.update_campaign(uow, HEAD, campaign["id"], {"ends_on": "2027-01-31", "budget": None})
    assert (moved["ends_on"], moved["version"]) == ("2027-01-31", 2)
    assert uow.events[-1][0] == "campaign_updated" and uow.events[-1][1]["changed"] == ["ends_on"]


def test_the_dates_are_calendar_dates_only():
    from crm_common.contracts.segments import CampaignCreateSchema

    for bad in ("2026-1-5", "2026-12-01T00:00:00Z", "١٢٣٤-01-01", "2026-02-30"):
        with pytest.raises(ValidationError) as exc:
            load_or_raise(CampaignCreateSchema, campaign_body(str(uuid.uuid4()), starts_on=bad))
        assert "starts_on" in fields_of(exc)

