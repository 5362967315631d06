# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A process's log lines go out through a bounded queue and a writer thread of their own.

A process in a container writes its log to a pipe that the container engine reads. When the engine
dies (its containers run on), nobody reads that pipe: once it is full, a plain ``StreamHandler``
blocks the thread that logs (envoyd's watcher would stop applying the assignment at its next
warning, a core's membership at its next step). Here, while the writer is stuck on the stream, a
record the full queue cannot take is dropped and counted instead, and the count is logged once the
writer moves again. While the writer moves, a burst waits for room as a plain handler would.
"""

import logging
import logging.handlers
import queue
import threading
import time

STUCK_AFTER = 0.5  # seconds one write may take before the stream counts as nobody reading it
ROOM_WAIT = 1.0  # seconds a record waits for room in the queue while the writer still moves


class DroppingQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler that does not wait on a stuck writer: a record it cannot queue is counted."""

    def __init__(self, records, writer_stuck):
        super().__init__(records)
        self.writer_stuck = writer_stuck
        self.dropped = 0

    def enqueue(self, record):
        if self.dropped and self._put(logging.makeLogRecord({
                "name": record.name, "levelno": logging.WARNING, "levelname": "WARNING",
                "msg": "%d log line(s) dropped: nothing read the log for a while", "args": (self.dropped,)})):
            self.dropped = 0
        if not self._put(record):
            self.dropped += 1

    def _put(self, record):
        try:
            self.queue.put_nowait(record)
            return True
        except queue.Full:
            pass
        if self.writer_stuck():
            return False
        try:
            self.queue.put(record, timeout=ROOM_WAIT)
            return True
        except queue.Full:
            return False


class QueuedLog:
    """Records of ``logger`` (the root logger by default) go to ``stream`` through a queue of
    ``capacity`` records and a writer thread; stop() writes out what is queued (within ``timeout``:
    the stream may be the one nobody reads) and detaches."""

    def __init__(self, stream, level, fmt, capacity=10000, logger=None):
        self.records = queue.Queue(capacity)
        # Not a logging.Handler: logging.shutdown() at exit flushes every Handler under its lock, and
        # would wait forever on a writer stuck in a full pipe.
        self.stream = stream
        self.formatter = logging.Formatter(fmt)
        self.writing_since = None  # when the write under way began
        self.handler = DroppingQueueHandler(self.records, self.writer_stuck)
        self.logger = logger or logging.getLogger()
        self.logger.setLevel(level)
        self.logger.addHandler(self.handler)
        # A daemon thread: a writer stuck on a full pipe must not keep the process from exiting.
        self.thread = threading.Thread(target=self._write, name="log-writer", daemon=True)
        self.thread.start()

    def writer_stuck(self):
        since = self.writing_since
        return since is not None and time.monotonic() - since > STUCK_AFTER

    def _write(self):
        while True:
            record = self.records.get()
            if record is None:
                return
            self.writing_since = time.monotonic()
            try:
                self.stream.write(self.formatter.format(record) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # the stream is gone: nothing more to write to
                return
            finally:
                self.writing_since = None

    def stop(self, timeout=2.0):
        self.logger.removeHandler(self.handler)
        try:
            self.records.put(None, timeout=timeout)
        except queue.Full:
            return
        self.thread.join(timeout)
