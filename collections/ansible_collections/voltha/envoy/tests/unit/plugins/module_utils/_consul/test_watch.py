"""Unit tests for KeyWatcher (consul_watch.py) with a fake fetch, clock and random source."""

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._consul.blocking import LeaderChanged, Reading
from ansible_collections.voltha.envoy.plugins.module_utils._consul.watch import MISSING, KeyWatcher, NoKnownLeader


class FakeConsul:
    """A fetch function fed from a script of answers: (index, value) tuples or exceptions."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, index, wait):
        self.calls.append((index, wait))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


class Recorder:
    def __init__(self):
        self.changes, self.errors, self.recoveries = [], [], []

    def watcher(self, fetch, **kwargs):
        kwargs.setdefault("rand", lambda: 1.0)
        kwargs.setdefault("clock", lambda: 0.0)
        return KeyWatcher(fetch, lambda value, index: self.changes.append((value, index)),
                          lambda error, delay: self.errors.append((error, delay)),
                          self.recoveries.append, **kwargs)


@pytest.fixture
def rec():
    return Recorder()


def test_first_answer_is_reported_even_when_missing(rec):
    fetch = FakeConsul((5, MISSING))
    w = rec.watcher(fetch, wait="10s")
    assert w.poll_once() == 0.0
    assert rec.changes == [(None, 5)]
    assert fetch.calls == [(0, "10s")]


def test_only_changes_are_reported_and_index_follows(rec):
    fetch = FakeConsul((5, b"a"), (6, b"a"), (7, b"b"), (8, b"b"), (9, MISSING), (10, b"b"))
    w = rec.watcher(fetch)
    for _dummy in range(6):
        w.poll_once()
    assert rec.changes == [(b"a", 5), (b"b", 7), (None, 9), (b"b", 10)]
    assert [call[0] for call in fetch.calls] == [0, 5, 6, 7, 8, 9]
    assert w.index == 10


def test_empty_value_and_missing_key_are_different(rec):
    w = rec.watcher(FakeConsul((1, MISSING), (2, b""), (3, MISSING)))
    for _dummy in range(3):
        w.poll_once()
    assert rec.changes == [(None, 1), (b"", 2), (None, 3)]


@pytest.mark.parametrize("current,answer,expected", [
    (0, 10, 10),
    (10, 10, 10),
    (10, 11, 11),
    (10, 9, 0),      # backwards: a new agent; start again from 0
    (10, 0, 1),      # a broken 0 is treated as 1 before anything else
    (0, 0, 1),       # a broken 0 is treated as 1, never a spinning 0
    (0, None, 1),
    (0, "12", 12),   # the header arrives as text
    (1, 1, 1),
])
def test_next_index_rules(rec, current, answer, expected):
    w = rec.watcher(None)
    w.index = current
    assert w.next_index(answer) == expected


def test_negative_index_at_zero_is_treated_as_one(rec):
    w = rec.watcher(None)
    assert w.next_index(-1) == 1


def test_backwards_index_resets_without_reporting_same_value(rec):
    fetch = FakeConsul((100, b"v"), (3, b"v"), (4, b"v"))
    w = rec.watcher(fetch)
    for _dummy in range(3):
        w.poll_once()
    assert rec.changes == [(b"v", 100)]
    assert [call[0] for call in fetch.calls] == [0, 100, 0]
    assert w.index == 4


def test_errors_back_off_read_the_current_state_and_recover_once(rec):
    boom = [OSError("refused %d" % i) for i in range(3)]
    fetch = FakeConsul((7, b"a"), boom[0], boom[1], boom[2], (8, b"a"), (9, b"b"))
    w = rec.watcher(fetch, backoff_base=0.5, backoff_max=100.0)
    delays = [w.poll_once() for _dummy in range(6)]
    assert delays[1:4] == [0.5, 1.0, 2.0]
    assert rec.errors == [(boom[0], 0.5), (boom[1], 1.0), (boom[2], 2.0)]
    # After a failure nothing blocks on the old index: the agent may be a new one, its index near 1.
    assert [call[0] for call in fetch.calls] == [0, 7, 0, 0, 0, 8]
    assert rec.recoveries == [3]
    assert w.failures == 0
    assert rec.changes == [(b"a", 7), (b"b", 9)]  # the value seen before the errors is not reported again


def test_any_exception_is_survived(rec):
    w = rec.watcher(FakeConsul(ValueError("bad json"), KeyError("x"), (1, b"a")))
    w.poll_once()
    w.poll_once()
    w.poll_once()
    assert [type(e) for e, _dummy in rec.errors] == [ValueError, KeyError]
    assert rec.recoveries == [2]


def test_no_recover_without_errors(rec):
    w = rec.watcher(FakeConsul((1, b"a"), (2, b"b")))
    w.poll_once()
    w.poll_once()
    assert rec.recoveries == []


def test_a_lost_store_is_read_at_once_not_waited_out(rec):
    """Consul restarted between two requests with its store lost: the first request on the new
    connection does not block (blocked=False), and its lower index is taken as it is."""
    fetch = FakeConsul((5000, b"old"), Reading(3, MISSING, True, False), (4, MISSING), (9, b"new"))
    w = rec.watcher(fetch)
    for _dummy in range(4):
        w.poll_once()
    assert [call[0] for call in fetch.calls] == [0, 5000, 3, 4]
    assert rec.changes == [(b"old", 5000), (None, 3), (b"new", 9)]


def test_no_known_leader_keeps_the_answer_and_reads_again_soon(rec):
    fetch = FakeConsul((7, b"a"), Reading(7, b"b", False, True), Reading(7, b"b", False, False), (8, b"b"))
    w = rec.watcher(fetch, backoff_base=0.5, backoff_max=100.0)
    delays = [w.poll_once() for _dummy in range(4)]
    assert rec.changes == [(b"a", 7), (b"b", 7)]  # a stale answer is still the best one there is
    assert [type(e) for e, _dummy in rec.errors] == [NoKnownLeader, NoKnownLeader]
    assert delays == [0.0, 0.5, 1.0, 0.0]
    assert [call[0] for call in fetch.calls] == [0, 7, 0, 0]  # nothing blocks until a leader is known
    assert rec.recoveries == [2]


@pytest.mark.parametrize("failures,rand,expected", [
    (1, 1.0, 0.05),
    (2, 1.0, 0.1),
    (3, 1.0, 0.2),
    (5, 1.0, 0.5),           # 0.05 * 16 = 0.8 -> capped at backoff_max
    (10 ** 6, 1.0, 0.5),     # no overflow for huge failure counts
    (3, 0.5, 0.1),           # full jitter: uniform below the ceiling
    (8, 0.5, 0.25),
    (1, 0.0, 0.005),         # never zero: at least a tenth of the base
    (20, 0.0, 0.005),
    (2, 0.01, 0.005),
])
def test_backoff_delay_full_jitter(rec, failures, rand, expected):
    """The defaults: Consul answering again is noticed within half a second."""
    w = rec.watcher(None, rand=lambda: rand)
    assert w.backoff_delay(failures) == pytest.approx(expected)


def test_backoff_uses_rand_every_time(rec):
    values = iter([0.1, 0.9])
    w = rec.watcher(None, rand=lambda: next(values), backoff_base=1.0, backoff_max=60.0)
    assert w.backoff_delay(4) == pytest.approx(0.8)
    assert w.backoff_delay(4) == pytest.approx(7.2)


def test_min_interval_counts_from_request_start(rec):
    times = iter([100.0, 100.3, 200.0, 205.0])
    w = rec.watcher(FakeConsul((1, b"a"), (2, b"a")), min_interval=1.0, clock=lambda: next(times))
    assert w.poll_once() == pytest.approx(0.7)
    assert w.poll_once() == 0.0  # a long blocking query already waited long enough


class FakeStop:
    """A stop event that never sleeps: records the waits and stops after a number of checks."""

    def __init__(self, checks):
        self.checks, self.waits = checks, []

    def is_set(self):
        self.checks -= 1
        return self.checks < 0

    def wait(self, delay):
        self.waits.append(delay)


def test_run_loops_until_stopped_and_waits_the_delays(rec):
    stop = FakeStop(4)
    fetch = FakeConsul((1, b"a"), OSError("down"), (2, b"b"), (3, b"b"))
    w = rec.watcher(fetch, stop_event=stop, backoff_base=2.0, backoff_max=30.0)
    w.run()
    assert len(fetch.calls) == 4
    assert stop.waits == [2.0]  # zero delays are not waited
    assert rec.changes == [(b"a", 1), (b"b", 2)]


def test_run_returns_at_once_when_stopped(rec):
    stop = FakeStop(0)
    fetch = FakeConsul()
    rec.watcher(fetch, stop_event=stop).run()
    assert fetch.calls == []


def test_a_read_given_up_for_a_new_leader_is_read_again_at_once_and_is_no_failure(rec):
    moved = LeaderChanged("10.0.0.1:8300", "10.0.0.2:8300")
    fetch = FakeConsul((5, b"a"), moved, Reading(6, b"b", True, False), (7, b"b"))
    changes = []
    w = rec.watcher(fetch, on_leader_change=changes.append)
    delays = [w.poll_once() for _dummy in range(4)]
    assert delays == [0.0, 0.0, 0.0, 0.0]
    assert [call[0] for call in fetch.calls] == [0, 5, 0, 6]
    assert changes == [moved] and rec.errors == [] and rec.recoveries == [] and w.failures == 0
    assert rec.changes == [(b"a", 5), (b"b", 6)]
