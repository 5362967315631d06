"""The applier's judgement of Envoy's failures after an apply: a config after which Envoy fails twice
within its probation is rolled back to the kept files and refused if it comes again; one failure, or
failures once the config has proven itself, change nothing."""

import os
import time

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import Core
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.files import keep_good, write_atomic
from envoyd import applier as applier_module
from envoyd.daemon import Daemon
from envoyd.settings import load_settings

GOOD, BAD = "a" * 64, "b" * 64
CORE_0, CORE_1 = Core("p0", "core-0", "127.0.0.1", 50057), Core("p1", "core-1", "127.0.0.2", 50057)
VALUE = '{"p0": {"id": "core-0", "host": "127.0.0.1", "port": 50057}}'


@pytest.fixture
def applier(tmp_path):
    """An applier whose config BAD was just applied over GOOD, whose files it kept."""
    applier = Daemon(load_settings(["--config-dir", str(tmp_path)], {})).applier
    files = [tmp_path / "envoy.json", tmp_path / "bootstrap.json"]
    for path in files:
        path.write_text("good\n")
    keep_good([str(path) for path in files])
    for path in files:
        write_atomic(str(path), "bad\n")  # a new file renamed in: the kept link keeps the old one
    applier.kept = [str(path) for path in files]
    applier.good = (GOOD, (CORE_0,), "good\n")
    applier.applied_sha, applier.applied_cores = BAD, (CORE_0, CORE_1)
    applier.probation = {"sha": BAD, "since": time.monotonic(), "failures": applier.supervisor.failures}
    applier.files = files
    return applier


def fail(applier, how="Envoy was killed by SIGSEGV"):
    applier.supervisor.failures += 1
    applier.supervisor.last_failure = how


def test_two_failures_within_the_probation_roll_the_config_back(applier):
    fail(applier)
    assert applier.judge_failures() is None  # once may be Envoy's own bad luck
    fail(applier)
    reason = applier.judge_failures()
    assert reason.startswith("Envoy was killed by SIGSEGV: it failed 2 times within 30s of the config sha256 bbbb")
    assert "rolled back to the last good config (sha256 aaaaaaaaaaaa)" in reason
    assert [path.read_text() for path in applier.files] == ["good\n", "good\n"]
    assert (applier.applied_sha, applier.applied_cores, applier.applied_bootstrap) == applier.good
    assert applier.envoy_update["state"] == "died" and applier.envoy_update["sha256"] == BAD
    assert applier.metrics.value("envoyd_rejects_total", reason="envoy-died") == 1
    assert applier.metrics.value("envoyd_assignment_cores") == 1
    assert BAD in applier.fatal and applier.probation is None
    fail(applier)
    assert applier.judge_failures() is None  # judged once


def test_failures_after_the_probation_leave_the_config_alone(applier, monkeypatch):
    monkeypatch.setattr(applier_module, "PROBATION_S", 0.0)
    fail(applier)
    fail(applier)
    assert applier.judge_failures() is None
    assert applier.probation is None and applier.applied_sha == BAD
    assert [path.read_text() for path in applier.files] == ["bad\n", "bad\n"]


def test_failures_before_the_apply_are_not_the_configs(applier):
    applier.probation["failures"] = applier.supervisor.failures + 1  # one failure happened before
    fail(applier)
    fail(applier)
    assert applier.judge_failures() is None
    fail(applier)
    assert "failed 2 times" in applier.judge_failures()


def test_a_config_that_killed_envoy_is_refused_when_it_comes_again(applier):
    fail(applier)
    fail(applier)
    applier.judge_failures()
    # Say the config that killed Envoy was VALUE's: it is refused before it reaches Envoy.
    killer = applier.build(VALUE).sha256
    applier.fatal[killer] = applier.fatal.pop(BAD)
    result = applier.apply(VALUE)
    assert (result.applied, result.reason) == (False, "envoy-died")
    assert "made Envoy die 0s ago and was rolled back; it is refused for 600s" in result.detail
    assert applier.metrics.value("envoyd_rejects_total", reason="envoy-died") == 2


def test_no_kept_files_means_no_rollback_but_a_report(applier):
    for path in applier.kept:
        os.unlink(path + ".good")
    fail(applier)
    fail(applier)
    assert applier.judge_failures().endswith("no earlier config to roll back to")
    assert applier.applied_sha == BAD


class Versions:
    """A snapshot as _wait_xds sees it: its versions."""

    def __init__(self, cds):
        self.cds = cds

    def kinds(self):
        return {"cds": self.cds, "eds": "e", "lds": "l"}


class Ads:
    """ACKs every snapshot, or NACKs the ones whose cds version is in ``nack``."""

    def __init__(self, nack=()):
        self.nack = nack

    def wait_acked(self, snapshot, timeout, envoy_gone=None):
        if snapshot.cds in self.nack:
            raise applier_module.EnvoyRejected("lds", "l", "refused")


def test_xds_waits_for_a_warm_cluster_only_when_the_cluster_changed(applier, monkeypatch):
    warming = []  # what Envoy's /stats says, one answer per question
    asked = []

    def admin(path):
        asked.append(path)
        return ("cluster_manager.warming_clusters: %d\n" % (warming.pop(0) if warming else 0)).encode()

    monkeypatch.setattr(applier, "_admin", admin)
    applier.ads = Ads(nack=("c2",))
    warming[:] = [1, 1, 0]
    applier._wait_xds(Versions("c1"))
    assert len(asked) == 3 and applier.warm_cds == "c1"
    applier._wait_xds(Versions("c1"))  # the same cluster: endpoints only, nothing warms
    assert len(asked) == 3
    # An update whose cluster Envoy took but whose listener it refused: the cluster it goes back to
    # warms again, and is waited for although it is the one seen warm before.
    with pytest.raises(applier_module.EnvoyRejected):
        applier._wait_xds(Versions("c2"))
    assert applier.warm_cds is None
    warming[:] = [1, 0]
    applier._wait_xds(Versions("c1"))
    assert len(asked) == 5 and applier.warm_cds == "c1"


# The pipeline, value to confirmed files, through its seams: the validator, the Envoy supervisor and
# Envoy's word (wait_confirmed) stand in for Envoy; parse, render and the files are the real ones.

VALUE_2 = ('{"p0": {"id": "core-0", "host": "127.0.0.1", "port": 50057}, '
           '"p1": {"id": "core-1", "host": "127.0.0.2", "port": 50057}}')


class Supervisor:
    """Starts nothing: records the bootstrap it is given, or raises the error it is told to."""

    def __init__(self):
        self.started, self.failures, self.last_failure, self.cold_next = [], 0, None, False
        self.config_path, self.current, self.fail_with = None, None, None

    def start(self, path):
        if self.fail_with is not None:
            raise self.fail_with
        self.started.append(path)
        self.config_path = path

    def pids(self):
        return [4242] if self.started else []

    def admin(self, path):
        raise OSError("no Envoy runs")  # Envoy's word comes from the stand-in wait_confirmed


class Validator:
    def __init__(self):
        self.refusal = None

    def validate(self, text, config, fmt, kinds=None):
        if self.refusal:
            raise applier_module.ConfigRejected(self.refusal)
        return "stand-in"


class Envoy:
    """Envoy's word on each update: the versions asked for, answered from a script (None: served)."""

    def __init__(self):
        self.asked, self.script = [], []

    def wait_confirmed(self, admin, expected, rejected, timeout):
        self.asked.append(dict(expected))
        answer = self.script.pop(0) if self.script else None
        if answer is not None:
            raise answer
        return {}


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    applier = Daemon(load_settings(["--config-dir", str(tmp_path)], {})).applier
    applier.supervisor, applier.validator, envoy = Supervisor(), Validator(), Envoy()
    monkeypatch.setattr(applier_module, "wait_confirmed", envoy.wait_confirmed)
    return applier, envoy, tmp_path


def files_of(directory):
    return {str(path.relative_to(directory)): path.read_text() for path in sorted(directory.rglob("*"))
            if path.is_file() and not path.name.endswith(".good")}


def test_a_value_is_written_started_and_confirmed_once(pipeline):
    applier, envoy, directory = pipeline
    result = applier.apply(VALUE)
    assert result.applied and result.detail.startswith("1 cores, validated by stand-in, sha256 ")
    assert ", confirmed by Envoy (" in result.detail
    assert applier.supervisor.started == [str(directory / "bootstrap.json")]
    assert [sorted(asked) for asked in envoy.asked] == [["cds", "eds voltha-grpc", "lds"]]
    assert applier.envoy_update == {"state": "confirmed", "versions": envoy.asked[0]}
    assert applier.applied_cores == (CORE_0,)
    assert list(result.stages) == ["parse", "render", "validate", "write", "confirm"]
    assert applier.metrics.value("envoyd_applies_total", mode="dynamic") == 1
    again = applier.apply(VALUE)
    assert (again.applied, again.reason) == (False, "unchanged")
    assert len(envoy.asked) == 1 and applier.metrics.value("envoyd_unchanged_total") == 1


def test_a_change_of_cores_rewrites_the_endpoints_only_and_starts_no_envoy(pipeline):
    applier, envoy, directory = pipeline
    applier.apply(VALUE)
    before = files_of(directory)
    assert applier.apply(VALUE_2).applied
    after = files_of(directory)
    changed = sorted(name for name in after if before.get(name) != after[name])
    assert changed == ["envoy.json"] + [name for name in changed if name.startswith("xds/eds/")]
    assert len(changed) == 2 and applier.supervisor.started == [str(directory / "bootstrap.json")]
    first, second = envoy.asked
    assert (first["cds"], first["lds"]) == (second["cds"], second["lds"])
    assert first["eds voltha-grpc"] != second["eds voltha-grpc"]
    assert applier.metrics.value("envoyd_assignment_cores") == 2


@pytest.mark.parametrize("value,refusal,reason", [
    ("{not json", None, "assignment"),
    ('{"p0": {"id": "core-0", "host": "127.0.0.1", "port": 0}}', None, "assignment"),
    (VALUE_2, "cluster 'voltha-grpc': no such thing", "envoy"),
])
def test_a_value_refused_before_envoy_changes_nothing(pipeline, value, refusal, reason):
    applier, envoy, directory = pipeline
    applier.apply(VALUE)
    good, sha = files_of(directory), applier.applied_sha
    applier.validator.refusal = refusal
    result = applier.apply(value)
    assert (result.applied, result.reason) == (False, reason)
    if refusal:
        assert result.detail == refusal
    assert files_of(directory) == good and applier.applied_sha == sha and len(envoy.asked) == 1
    assert applier.metrics.value("envoyd_rejects_total", reason=reason) == 1


def test_an_update_envoy_refuses_is_replaced_by_the_last_good_files(pipeline):
    applier, envoy, directory = pipeline
    applier.apply(VALUE)
    good, sha = files_of(directory), applier.applied_sha
    envoy.script = [applier_module.EnvoyRejected("eds voltha-grpc", "v2", "malformed IP address: 127.0.0.2")]
    result = applier.apply(VALUE_2)
    assert (result.applied, result.reason) == (False, "envoy-rejected")
    assert result.detail.startswith("Envoy rejected eds voltha-grpc version v2: malformed IP address: 127.0.0.2; ")
    assert "restored the last good files, which Envoy serves (" in result.detail
    assert files_of(directory) == good and applier.applied_sha == sha
    assert envoy.asked[-1] == envoy.asked[0]  # the restore waited for the good versions, and got them
    assert applier.envoy_update["state"] == "rejected" and applier.envoy_update["serving"] == envoy.asked[0]
    assert applier.metrics.value("envoyd_envoy_rejected") == 1
    assert applier.apply(VALUE_2).applied  # the same value later, when Envoy takes it
    assert applier.metrics.value("envoyd_envoy_rejected") == 0


def test_an_envoy_that_does_not_say_leaves_the_update_applied_but_unconfirmed(pipeline):
    applier, envoy, _directory = pipeline
    envoy.script = [applier_module.NotConfirmed("Envoy served cds 1 for 10s, not 2")]
    result = applier.apply(VALUE)
    assert result.applied and result.detail.endswith("(not confirmed: Envoy served cds 1 for 10s, not 2)")
    assert applier.envoy_update["state"] == "unconfirmed"


def test_an_envoy_that_does_not_come_up_gets_the_last_good_files_back(pipeline):
    applier, envoy, directory = pipeline
    applier.apply(VALUE)
    good, sha = files_of(directory), applier.applied_sha
    applier.renderer.variables["admin_port"] = 9902  # a new bootstrap: Envoy is started anew
    applier.supervisor.fail_with = applier_module.EnvoyStartError("Envoy exited with status 1 at its start")
    result = applier.apply(VALUE_2)
    assert (result.applied, result.reason) == (False, "envoy-died")
    assert result.detail == "Envoy exited with status 1 at its start; the last good files are back"
    assert files_of(directory) == good and applier.applied_sha == sha
    assert applier.envoy_update["state"] == "died" and len(applier.fatal) == 1
