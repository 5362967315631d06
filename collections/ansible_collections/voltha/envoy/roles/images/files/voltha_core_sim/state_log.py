"""Log a component's state once per change, not once per retry."""

from __future__ import annotations

import logging
import threading


class StateLog:
    """Remembers the last state reported per topic and logs only when it changes.

    A Consul that is down for a minute makes every loop fail many times; the log says so once, and
    once more when it comes back.
    """

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self._states: dict[str, str] = {}
        self._lock = threading.Lock()

    def report(self, topic: str, state: str, message: str, level: int = logging.INFO) -> bool:
        """Log ``message`` if ``state`` differs from the last one reported for ``topic``; True if logged."""
        with self._lock:
            if self._states.get(topic) == state:
                return False
            self._states[topic] = state
        self.logger.log(level, "%s: %s", topic, message)
        return True

    def state(self, topic: str) -> str | None:
        with self._lock:
            return self._states.get(topic)
