"""The group commit: events handed over together are applied together; when the group fails, each is
applied alone and only a failing event's handler sees the failure; no handler is left waiting."""

import eventlet
import pytest

from crm_common.batching import GroupCommit


class Unit:
    closed = 0

    def close(self):
        Unit.closed += 1


class Database:
    def unit_of_work(self):
        return Unit()


def group_commit(apply_many, apply_one):
    commit = GroupCommit(apply_many, apply_one)
    commit.database = Database()
    commit.queue = eventlet.queue.LightQueue()
    return commit


def hand_over(commit, events):
    """Hand the events over from handlers of their own, then let the group commit run once."""
    outcomes = {}

    def handler(event):
        try:
            commit.apply(*event)
            outcomes[event[1]["n"]] = "applied"
        except Exception as exc:  # noqa: BLE001
            outcomes[event[1]["n"]] = repr(exc)

    threads = [eventlet.spawn(handler, event) for event in events]
    eventlet.sleep(0)  # every handler has queued its event
    runner = eventlet.spawn(commit._run)
    for thread in threads:
        thread.wait()
    runner.kill()
    return outcomes


def test_events_waiting_together_are_applied_in_one_group():
    groups = []
    commit = group_commit(lambda uow, events: groups.append([payload["n"] for _, payload in events]),
                          lambda uow, event_type, payload: pytest.fail("no event should be applied alone"))

    outcomes = hand_over(commit, [("deal_won", {"n": n}) for n in range(5)])

    assert groups == [[0, 1, 2, 3, 4]]
    assert outcomes == {n: "applied" for n in range(5)}


def test_when_a_group_fails_each_event_is_applied_alone_and_only_the_bad_one_fails():
    alone = []

    def apply_many(uow, events):
        raise KeyError("created_at")

    def apply_one(uow, event_type, payload):
        alone.append(payload["n"])
        if payload["n"] == 2:
            raise KeyError("created_at")

    outcomes = hand_over(group_commit(apply_many, apply_one), [("client_created", {"n": n}) for n in range(4)])

    assert alone == [0, 1, 2, 3]
    assert outcomes == {0: "applied", 1: "applied", 2: "KeyError('created_at')", 3: "applied"}


def test_a_group_that_meets_a_temporary_failure_hands_it_to_every_handler_without_trying_each():
    from crm_common.errors import Unavailable

    def apply_many(uow, events):
        raise Unavailable("the database is unreachable")

    outcomes = hand_over(group_commit(apply_many, lambda *args: pytest.fail("not applied alone")),
                         [("deal_won", {"n": n}) for n in range(3)])

    assert sorted(outcomes) == [0, 1, 2]
    assert all(outcome.startswith("Unavailable('the database is unreachable'") for outcome in outcomes.values())


def test_a_group_commit_stopped_mid_group_leaves_no_handler_waiting():
    started = eventlet.event.Event()

    def apply_many(uow, events):
        started.send()
        eventlet.sleep(10)

    commit = group_commit(apply_many, lambda *args: None)
    threads = [eventlet.spawn(commit.apply, "deal_won", {"n": n}) for n in range(3)]
    eventlet.sleep(0)
    runner = eventlet.spawn(commit._run)
    started.wait()
    closed = Unit.closed
    runner.kill()

    for thread in threads:
        with pytest.raises(RuntimeError, match="stopped before applying"):
            thread.wait()
    assert Unit.closed == closed + 1
