"""confirm.py: Envoy's account of the cds/lds updates, read from its admin API's answers."""

import json

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.files import dump_json
from envoyd.confirm import (
    STATS_PATH,
    EnvoyRejected,
    NotConfirmed,
    file_version,
    parse_stats,
    rejection_reasons,
    wait_confirmed,
    warming_clusters,
)


def stats(cds="c1", lds="l1", cds_rejected=0, lds_rejected=0, warming=0):
    return ('cluster_manager.cds.version_text: "%s"\nlistener_manager.lds.version_text: "%s"\n'
            "cluster_manager.cds.update_rejected: %d\nlistener_manager.lds.update_rejected: %d\n"
            "cluster_manager.warming_clusters: %d\n"
            % (cds, lds, cds_rejected, lds_rejected, warming)).encode()


DUMP = {"configs": [
    {"name": "voltha_nbi", "active_state": {"version_info": "l1"},
     "error_state": {"failed_configuration": {"name": "voltha_nbi"}, "details": "cannot bind '127.0.0.1:1'"}},
    {"name": "voltha_nbi", "error_state": {"details": "cannot bind '127.0.0.1:1'"}},
    {"name": "other", "active_state": {"version_info": "l1"}},
]}


class FakeEnvoy:
    """Answers the admin paths with scripted /stats texts, one per request (the last one repeats)."""

    def __init__(self, *answers, dump=None):
        self.answers, self.dump, self.paths = list(answers), dump or {"configs": []}, []

    def __call__(self, path):
        self.paths.append(path)
        if path.startswith("/config_dump"):
            return json.dumps(self.dump).encode()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_stats_are_read_per_subscription():
    states = parse_stats(stats("abc", "def", 2, 3))
    assert (states["cds"].version, states["cds"].rejected) == ("abc", 2)
    assert (states["lds"].version, states["lds"].rejected) == ("def", 3)


def test_an_envoy_that_loaded_nothing_has_no_version():
    assert parse_stats(b"").get("cds").version is None


def test_the_version_of_a_resource_file_is_its_version_info():
    assert file_version(dump_json({"version_info": "0123abcd", "resources": []})) == "0123abcd"
    assert file_version('{"resources": []}') is None


def test_reasons_name_the_resource_once():
    assert rejection_reasons("lds", DUMP) == ["voltha_nbi: cannot bind '127.0.0.1:1'"]


def test_confirmed_once_envoy_serves_both_versions():
    envoy, clock = FakeEnvoy(stats("c0", "l0"), stats("c1", "l0"), stats("c1", "l1")), Clock()
    states = wait_confirmed(envoy, {"cds": "c1", "lds": "l1"}, {}, 1.0, clock=clock, sleep=clock.sleep)
    assert states["lds"].version == "l1" and envoy.paths == [STATS_PATH] * 3


def test_an_admin_api_not_answering_yet_is_asked_again():
    envoy, clock = FakeEnvoy(OSError("refused"), stats("c1", "l1")), Clock()
    wait_confirmed(envoy, {"cds": "c1", "lds": "l1"}, {}, 1.0, clock=clock, sleep=clock.sleep)


def test_a_refusal_counted_after_the_baseline_is_rejected_with_envoys_reason():
    envoy, clock = FakeEnvoy(stats("c1", "l0", lds_rejected=3), dump=DUMP), Clock()
    with pytest.raises(EnvoyRejected) as rejected:
        wait_confirmed(envoy, {"cds": "c1", "lds": "l1"}, {"cds": 0, "lds": 2}, 1.0, clock=clock, sleep=clock.sleep)
    assert (rejected.value.kind, rejected.value.version) == ("lds", "l1")
    assert "cannot bind" in rejected.value.reason and "voltha_nbi" in str(rejected.value)


def test_old_refusals_are_not_taken_for_new_ones():
    envoy, clock = FakeEnvoy(stats("c1", "l0", lds_rejected=2), stats("c1", "l1", lds_rejected=2)), Clock()
    wait_confirmed(envoy, {"cds": "c1", "lds": "l1"}, {"lds": 2}, 1.0, clock=clock, sleep=clock.sleep)


def test_neither_in_time_is_not_confirmed():
    envoy, clock = FakeEnvoy(stats("c0", "l0")), Clock()
    with pytest.raises(NotConfirmed, match="cds at c0, not c1"):
        wait_confirmed(envoy, {"cds": "c1", "lds": "l0"}, {}, 0.05, clock=clock, sleep=clock.sleep)


def test_warming_clusters_are_counted():
    assert warming_clusters(stats(warming=2)) == 2
    assert warming_clusters(b"") == 0


def test_confirmed_only_once_no_cluster_warms():
    envoy, clock = FakeEnvoy(stats("c1", "l1", warming=1), stats("c1", "l1", warming=1), stats("c1", "l1")), Clock()
    wait_confirmed(envoy, {"cds": "c1", "lds": "l1"}, {}, 1.0, clock=clock, sleep=clock.sleep)
    assert envoy.paths == [STATS_PATH] * 3
    with pytest.raises(NotConfirmed, match="1 clusters warming"):
        wait_confirmed(FakeEnvoy(stats(warming=1)), {}, {}, 0.05, clock=clock, sleep=clock.sleep)
