# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Watch one Consul key with blocking queries, the way Consul's documentation asks for.

- Each request waits on the last X-Consul-Index, bounded by ``wait``.
- An index that goes backwards (a restarted or replaced agent) resets to 0; an index below 1 is
  treated as 1 so a broken answer cannot make the loop spin.
- Requests are at least ``min_interval`` apart, and errors back off exponentially with full jitter.
- Only changes of the value are reported: a new index with the same bytes is not a change.

Used by envoyd's daemon, the envoy_config module (wait_for_change) and the core simulator's
watchers.
"""

import random
import threading
import time

MISSING = None  # the value reported for a key that does not exist


class KeyWatcher:
    """Calls ``fetch(index, wait)`` -> (index, value bytes or None) in a loop and reports changes.

    ``on_change(value, index)`` is called for the first answer and for every change of value;
    ``on_error(error, delay)`` for every failed request, before backing off for ``delay`` seconds;
    ``on_recover(failures)`` for the first good answer after errors.
    """

    def __init__(self, fetch, on_change, on_error=None, on_recover=None, wait="60s", min_interval=0.0,
                 backoff_base=0.25, backoff_max=30.0, stop_event=None, clock=time.monotonic, rand=random.random):
        self.fetch = fetch
        self.on_change = on_change
        self.on_error = on_error or (lambda error, delay: None)
        self.on_recover = on_recover or (lambda failures: None)
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

    def next_index(self, new_index):
        new_index = int(new_index or 0)
        if new_index < 1:
            return 1  # never 0 from a broken answer: a request at index 0 does not block
        if new_index < self.index:
            return 0  # went backwards: start over with one non-blocking read
        return new_index

    def poll_once(self):
        """One request; returns the delay to sleep before the next one."""
        started = self.clock()
        try:
            index, value = self.fetch(self.index, self.wait)
        except Exception as error:  # any failure of the request: the daemon must outlive it
            self.failures += 1
            delay = self.backoff_delay(self.failures)
            self.on_error(error, delay)
            return delay
        if self.failures:
            self.on_recover(self.failures)
            self.failures = 0
        self.index = self.next_index(index)
        if not self._have_value or value != self._value:
            self._have_value, self._value = True, value
            self.on_change(value, self.index)
        return max(0.0, self.min_interval - (self.clock() - started))

    def run(self):
        """Loop until stop_event is set."""
        while not self.stop_event.is_set():
            delay = self.poll_once()
            if delay:
                self.stop_event.wait(delay)


def consul_kv_fetcher(client, key):
    """A fetch function for KeyWatcher over a py-consul client: (index, bytes or None)."""
    def fetch(index, wait):
        new_index, item = client.kv.get(key, index=index or None, wait=wait)
        if item is None:
            return new_index, MISSING
        return new_index, item.get("Value") or b""
    return fetch
