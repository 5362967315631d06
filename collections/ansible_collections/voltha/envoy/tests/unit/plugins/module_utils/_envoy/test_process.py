"""The supervisor's small pure parts: how an exit is told, and how many sockets an assignment may need."""

import resource
import signal

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.process import (
    describe_exit,
    raise_open_files_limit,
    sockets_needed,
)


def test_an_exit_is_told_by_its_signal_or_status():
    assert describe_exit(-signal.SIGSEGV) == "was killed by SIGSEGV"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(1) == "exited with status 1"
    assert describe_exit(0) == "exited with status 0"
    assert describe_exit(None) == "is still running"


def test_each_core_costs_a_health_check_socket_and_one_per_worker():
    assert sockets_needed(0, 2) == 64
    assert sockets_needed(10000, 2) == 30064
    assert sockets_needed(10000, 1) - sockets_needed(9999, 1) == 2


def test_the_open_files_limit_is_raised_to_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        lower = min(soft, 512) if hard == resource.RLIM_INFINITY else min(soft, hard - 1, 512)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lower, hard))
        before, now = raise_open_files_limit()
        assert before == lower
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == now
        assert now == hard or (hard == resource.RLIM_INFINITY and now == lower)
        assert raise_open_files_limit() == (now, now)  # nothing left to raise
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
