# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Watch one Consul key with blocking queries, the way Consul's documentation asks for.

- Each request waits on the last X-Consul-Index, bounded by ``wait``.
- After any failed request, and after an answer that suggests another agent or store (an index
  lower than ours, no known leader), the next request does not block: it reads the current state
  (index 0). A restarted agent, a lost store or a new cluster starts its index again near 1, and a
  query at our old, higher index would be held for the whole wait before showing it.
- An index below 1 is treated as 1 so a broken answer cannot make the loop spin.
- Requests are at least ``min_interval`` apart; errors back off exponentially with full jitter,
  capped at ``backoff_max`` (half a second by default: Consul answering again is noticed at once).
- Only changes of the value are reported: a new index with the same bytes is not a change.
- A blocking read given up because Consul's leader changed (blocking.LeaderChanged) is no failure:
  the next request reads the new leader's state at once, with no back-off and nothing counted.

Used by envoyd's daemon, the envoy_config module and the core simulator's watchers.
"""

import random
import threading
import time

from ansible_collections.voltha.envoy.plugins.module_utils._consul.blocking import LeaderChanged, Reading, kv_reading

MISSING = None  # the value reported for a key that does not exist


class NoKnownLeader(Exception):
    """Consul answered, but without a known leader (X-Consul-KnownLeader: false)."""


def as_reading(answer):
    """A fetch may return a Reading or a plain (index, value) tuple (a blocking, leader-backed answer)."""
    if isinstance(answer, Reading):
        return answer
    index, value = answer
    return Reading(index, value, True, True)


class KeyWatcher:
    """Calls ``fetch(index, wait)`` -> Reading (or (index, value)) in a loop and reports changes.

    ``on_change(value, index)`` is called for the first answer and for every change of value;
    ``on_error(error, delay)`` for every failed request (and for an answer without a known leader,
    with a NoKnownLeader), before backing off for ``delay`` seconds; ``on_recover(failures)`` for
    the first good answer after those; ``on_leader_change(error)`` for a read given up because
    Consul's leader changed (a LeaderChanged), before reading again at once.
    """

    def __init__(self, fetch, on_change, on_error=None, on_recover=None, wait="60s", min_interval=0.0,
                 backoff_base=0.05, backoff_max=0.5, stop_event=None, clock=time.monotonic, rand=random.random,
                 on_leader_change=None):
        self.fetch = fetch
        self.on_change = on_change
        self.on_error = on_error or (lambda error, delay: None)
        self.on_recover = on_recover or (lambda failures: None)
        self.on_leader_change = on_leader_change or (lambda error: None)
        self.wait = wait
        self.min_interval = min_interval
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stop_event = stop_event or threading.Event()
        self.clock = clock
        self.rand = rand
        self.index = 0
        self.failures = 0
        self._have_value = False
        self._value = None

    def backoff_delay(self, failures):
        """Full jitter: uniform in [0, min(max, base * 2**(failures-1))], never quite zero."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** min(failures - 1, 30)))
        return max(self.backoff_base / 10.0, ceiling * self.rand())

    def next_index(self, new_index, blocked=True):
        new_index = int(new_index or 0)
        if new_index < 1:
            return 1  # never 0 from a broken answer: a request at index 0 does not block
        if blocked and new_index < self.index:
            return 0  # went backwards: start over with one non-blocking read
        return new_index  # a read that did not block gives the current index, lower or not

    def _failed(self, error):
        self.index = 0  # whatever went wrong, the next request reads the current state first
        self.failures += 1
        delay = self.backoff_delay(self.failures)
        self.on_error(error, delay)
        return delay

    def poll_once(self):
        """One request; returns the delay to sleep before the next one."""
        started = self.clock()
        try:
            reading = as_reading(self.fetch(self.index, self.wait))
        except LeaderChanged as error:
            self.index = 0  # read the new leader's state now
            self.on_leader_change(error)
            return 0.0
        except Exception as error:  # any failure of the request: the daemon must outlive it
            return self._failed(error)
        self.index = self.next_index(reading.index, reading.blocked)
        if not self._have_value or reading.value != self._value:
            self._have_value, self._value = True, reading.value
            self.on_change(reading.value, self.index)
        if not reading.known_leader:
            # Served from a server's own state (stale reads): keep it, and look again soon, not blocking.
            return self._failed(NoKnownLeader("consul answered without a known leader; the answer may be stale"))
        if self.failures:
            self.on_recover(self.failures)
            self.failures = 0
        return max(0.0, self.min_interval - (self.clock() - started))

    def run(self):
        """Loop until stop_event is set."""
        while not self.stop_event.is_set():
            delay = self.poll_once()
            if delay:
                self.stop_event.wait(delay)


def kv_fetcher(reader, key):
    """A fetch function for KeyWatcher over a blocking.BlockingReader: Reading of the key's bytes or None."""
    def fetch(index, wait):
        return kv_reading(reader, key, index, wait)
    return fetch
