"""The gateway's memory of users never outlives a change it has been told about."""

import time

from gateway.usercache import UserCache, UserState


def state(user_id="u1", active=True, version=1):
    return UserState(user_id, "manager", "b1", active, version, time.monotonic())


def listening_cache():
    cache = UserCache()
    cache.listening = True
    return cache


def test_nothing_is_cached_while_the_cache_does_not_listen_for_changes():
    cache = UserCache()
    cache.put(state(), cache.generation("u1"))
    assert cache.get("u1") is None


def test_a_user_read_while_listening_is_served_from_memory_until_a_change_is_announced():
    cache = listening_cache()
    cache.put(state(), cache.generation("u1"))
    cached = cache.get("u1")
    assert (cached.id, cached.active, cached.token_version) == ("u1", True, 1)
    cache.forget("u1")
    assert cache.get("u1") is None


def test_a_change_announced_while_the_user_was_being_read_keeps_the_old_read_out_of_memory():
    cache = listening_cache()
    before_read = cache.generation("u1")
    cache.forget("u1")  # the notification arrives while the database read is in flight
    cache.put(state(active=True), before_read)
    assert cache.get("u1") is None


def test_other_users_stay_cached_when_one_changes():
    cache = listening_cache()
    for user_id in ("u1", "u2"):
        cache.put(state(user_id), cache.generation(user_id))
    cache.forget("u1")
    assert cache.get("u1") is None and cache.get("u2") is not None


def test_an_entry_older_than_its_lifetime_is_read_again(monkeypatch):
    import gateway.usercache as module

    cache = listening_cache()
    cache.put(state(), cache.generation("u1"))
    monkeypatch.setattr(module, "MAX_AGE_S", -1.0)
    assert cache.get("u1") is None


def test_a_read_begun_before_the_cache_started_listening_is_not_kept():
    cache = UserCache()
    before_listening = cache.generation("u1")  # a change may commit now, before LISTEN: no notification follows
    cache.listening = True
    cache.put(state(), before_listening)
    assert cache.get("u1") is None


def test_losing_the_listener_forgets_everything_and_a_read_begun_before_is_not_kept_after_reconnecting():
    cache = listening_cache()
    cache.put(state("u1"), cache.generation("u1"))
    during_outage = cache.generation("u2")
    cache.listening = False
    assert cache.get("u1") is None
    cache.listening = True
    cache.put(state("u2"), during_outage)
    assert cache.get("u1") is None and cache.get("u2") is None
