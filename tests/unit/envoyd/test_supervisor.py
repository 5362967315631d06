"""The Envoy supervisor: its small pure parts (how an exit is told, how many sockets an assignment may
need, the open-files limit), then the supervisor with a stand-in Envoy (stand_in_envoy.py): starts, hot
restarts, an Envoy that exits or never becomes ready at its start, a death and the restart after it, and a
drained stop."""

import os
import resource
import signal
import sys
import time

import pytest

from envoyd import supervisor as supervisor_module
from envoyd.supervisor import (
    EnvoyStartError,
    EnvoySupervisor,
    describe_exit,
    raise_open_files_limit,
    sockets_needed,
)
from tests.unit.envoyd import stand_in_envoy


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


@pytest.fixture
def supervisor(tmp_path):
    binary = tmp_path / "envoy"
    with open(stand_in_envoy.__file__) as handle:
        binary.write_text("#!%s\n%s" % (sys.executable, handle.read()))
    binary.chmod(0o755)
    events = []
    made = EnvoySupervisor(str(binary), str(tmp_path), drain_time=0.1, ready_timeout=5.0,
                           on_event=lambda name, **fields: events.append((name, fields)), backoff_base=0.1)
    made.events, made.dir = events, tmp_path
    yield made
    made.stop(drain_time=0)


def config(supervisor, behaviour, name="bootstrap.json"):
    path = supervisor.dir / name
    path.write_text(behaviour + "\n")
    return str(path)


def argv(supervisor, epoch):
    return (supervisor.dir / ("argv.%d" % epoch)).read_text().split()


def names(supervisor):
    return [name for name, _fields in supervisor.events]


def test_a_start_then_hot_restarts_keep_one_envoy_and_its_parent(supervisor):
    first = supervisor.start(config(supervisor, "serve"))
    assert first.epoch == 0 and supervisor.serving() and supervisor.pids() == [first.pid]
    started = argv(supervisor, 0)
    assert "--use-dynamic-base-id" in started and "--skip-hot-restart-on-no-parent" not in started
    second = supervisor.start(config(supervisor, "serve", "bootstrap-2.json"))
    assert second.epoch == 1 and supervisor.pids() == [first.pid, second.pid]  # the parent drains, here it stays
    assert argv(supervisor, 1)[argv(supervisor, 1).index("--base-id") + 1] == "7"  # the base id epoch 0 chose
    assert "--skip-hot-restart-on-no-parent" in argv(supervisor, 1)
    third = supervisor.start(config(supervisor, "serve"))
    assert supervisor.pids() == [second.pid, third.pid] and not first.alive()
    assert names(supervisor) == ["start", "hot-restart", "hot-restart"]
    assert supervisor.admin("/stats?filter=x") == b"epoch 2: /stats?filter=x"  # the current Envoy answers


def test_the_admin_api_of_no_envoy_is_an_error(supervisor):
    with pytest.raises(OSError, match="no Envoy runs"):
        supervisor.admin("/stats")


@pytest.mark.parametrize("behaviour,said", [
    ("exit-at-start", "Envoy (epoch 0) exited with status 1 before it was ready"),
    ("never-ready", "Envoy (epoch 0) was not ready within 0.5s"),
])
def test_an_envoy_that_does_not_come_up_is_an_error_and_leaves_nothing(supervisor, behaviour, said):
    supervisor.ready_timeout = 0.5
    with pytest.raises(EnvoyStartError) as failed:
        supervisor.start(config(supervisor, behaviour))
    assert str(failed.value) == said
    assert supervisor.generations == [] and supervisor.pids() == [] and not supervisor.cold_next


def test_a_failed_hot_restart_makes_the_next_start_a_cold_one(supervisor):
    first = supervisor.start(config(supervisor, "serve"))
    with pytest.raises(EnvoyStartError):
        supervisor.start(config(supervisor, "exit-at-start", "broken.json"))
    assert supervisor.cold_next and supervisor.pids() == [first.pid]  # the old one still serves
    fresh = supervisor.start(config(supervisor, "serve"))
    assert fresh.epoch == 0 and not first.alive() and supervisor.pids() == [fresh.pid]
    assert names(supervisor) == ["start", "cold-restart", "start"]


def test_a_death_is_counted_and_envoy_started_again_after_its_backoff(supervisor):
    dying = supervisor.start(config(supervisor, "die-when-ready"))
    dying.popen.wait(5)
    config(supervisor, "serve")  # the same bootstrap path, now one that lives
    delay = supervisor.check()
    assert delay == pytest.approx(0.1) and supervisor.failures == 1  # the first backoff: backoff_base
    assert supervisor.last_failure == "Envoy was killed by SIGSEGV"
    time.sleep(delay)
    assert supervisor.check() is None and supervisor.serving()
    assert names(supervisor) == ["start", "died", "start", "restarted"]
    assert supervisor.events[1][1]["code"] == -signal.SIGSEGV


def test_a_stop_drains_the_listeners_then_ends_every_envoy(supervisor):
    first = supervisor.start(config(supervisor, "serve"))
    second = supervisor.start(config(supervisor, "serve"))
    supervisor.stop()
    assert (supervisor.dir / "posted").read_text() == "/drain_listeners?graceful\n"
    assert not first.alive() and not second.alive() and supervisor.generations == []
    assert first.popen.returncode == 0 and second.popen.returncode == 0
    assert supervisor.check() is None  # a stopped supervisor starts nothing


def test_the_shared_memory_of_a_dynamic_base_id_is_removed(supervisor, monkeypatch):
    removed = []
    monkeypatch.setattr(supervisor_module.os, "unlink", removed.append)
    supervisor.start(config(supervisor, "serve"))
    supervisor.stop(drain_time=0)
    assert removed[-1] == "/dev/shm/envoy_shared_memory_70"
    assert os.path.exists(supervisor.dir / "envoy-base-id")
