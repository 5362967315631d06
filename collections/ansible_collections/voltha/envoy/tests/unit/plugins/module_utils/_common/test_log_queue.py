# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
import logging
import os
import threading
import time

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._common.log_queue import QueuedLog

LINE = "x" * 90


@pytest.fixture
def pipe_log(request):
    """A QueuedLog of its own logger writing into a pipe: (log, logger, read end, stream)."""
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w", buffering=1)
    logger = logging.getLogger("test-log-queue-" + request.node.name)
    logger.propagate = False
    log = QueuedLog(stream, logging.INFO, "%(message)s", capacity=100, logger=logger)
    yield log, logger, read_end, stream
    log.stop(timeout=0.5)
    # The read end first: a writer still stuck in the pipe gets EPIPE and lets go of the stream.
    for close in (lambda: os.close(read_end), stream.close):
        try:
            close()
        except OSError:
            pass


def _read_all(fd, into):
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            into.append(b"".join(chunks).decode())
            return
        chunks.append(chunk)


def test_a_burst_read_by_someone_keeps_every_line(pipe_log):
    log, logger, read_end, stream = pipe_log
    collected = []
    reader = threading.Thread(target=_read_all, args=(read_end, collected), daemon=True)
    reader.start()
    for number in range(20000):  # 200 times the queue
        logger.info("line %05d %s", number, LINE)
    log.stop()
    stream.close()
    reader.join(5)
    lines = collected[0].splitlines()
    assert lines == ["line %05d %s" % (number, LINE) for number in range(20000)]


def test_logging_does_not_wait_for_a_stream_nobody_reads(pipe_log):
    log, logger, read_end, stream = pipe_log
    started = time.monotonic()
    for number in range(5000):  # ~500 KB: far more than a pipe holds
        logger.info("line %05d %s", number, LINE)
    assert time.monotonic() - started < 3.0
    assert log.handler.dropped > 3000

    # Read again: the lines that waited come out, then how many were dropped, then the new ones.
    collected = []
    reader = threading.Thread(target=_read_all, args=(read_end, collected), daemon=True)
    reader.start()
    deadline = time.monotonic() + 5
    while log.records.qsize() and time.monotonic() < deadline:
        time.sleep(0.01)
    logger.info("after")
    log.stop()
    stream.close()
    reader.join(5)
    lines = collected[0].splitlines()
    assert lines[0] == "line 00000 " + LINE
    assert lines[-2].endswith(" log line(s) dropped: nothing read the log for a while")
    assert lines[-1] == "after"


def test_stop_gives_up_on_a_stream_that_never_drains(pipe_log):
    log, logger = pipe_log[:2]
    for number in range(2000):
        logger.info("line %05d %s", number, LINE)
    started = time.monotonic()
    log.stop(timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert log.handler not in logger.handlers
