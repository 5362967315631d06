# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""envoyd's applier: one assignment value from Consul -> parsed, rendered, validated, written, and
confirmed by Envoy (it serves the files' versions, or refuses them and the last good files go back).
It remembers the last good config, so a value that fails any step changes nothing, and times each
stage. A config after which Envoy keeps dying, or does not come up, is rolled back the same way.
Used by the daemon (daemon.py) for every change and by --once / --dry-run.
"""

import logging
import os
import resource
import time

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import AssignmentError, distinct_cores
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.eds import EndpointNames
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.files import (
    BOOTSTRAP_FILE,
    dump_json,
    endpoint_files_named,
    keep_good,
    prune_endpoint_files,
    restore_good,
    subscription_of,
    write_atomic,
    write_files,
)
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import RenderError, build, renderer_for
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.validate import ConfigRejected, EnvoyValidator
from envoyd.ads_server import Snapshot
from envoyd.confirm import (
    STATS_PATH,
    EnvoyRejected,
    NotConfirmed,
    file_version,
    parse_stats,
    wait_confirmed,
)
from envoyd.supervisor import (
    EnvoyStartError,
    describe_exit,
    sockets_needed,
)
from envoyd.xds import ResourceBuilder, XdsError, ads_bootstrap

LOG = logging.getLogger("envoyd")
# A config is on probation for this long after it is applied: when Envoy fails STRIKES times within
# it (dies, or a restart does not come up), the config is blamed and the last good files go back. One
# failure is not enough: Envoy may have been killed for a reason of its own.
PROBATION_S = 30.0
STRIKES = 2
# A config that made Envoy die is refused for this long if it comes again, not tried on Envoy.
FATAL_FOR_S = 600.0
FATAL_KEPT = 16


def versions_of(files):
    """{subscription: version} of the (path, text) of files of the dynamic layout (a text may be the
    file's head only); the bootstrap and the static file are read by no subscription."""
    versions = {}
    for path, text in files:
        kind = subscription_of(path)
        if kind:
            versions[kind] = file_version(text)
    return versions


class ApplyResult:
    def __init__(self, applied, reason=None, detail=None, stages=None):
        self.applied, self.reason, self.detail = applied, reason, detail
        self.stages = stages or {}  # seconds by stage (parse, render, validate, write, confirm)


class StageClock:
    """Times the stages of one apply: lap(name) ends the stage under way."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.mark = clock()
        self.stages = {}

    def lap(self, name):
        now = self.clock()
        self.stages[name] = now - self.mark
        self.mark = now


class ConfigApplier:
    """Parse, render, validate and apply one assignment value; remembers the last good config."""

    def __init__(self, settings, envoy_bin, metrics, supervisor=None, open_files=None, ads=None):
        self.settings = settings
        self.ads = ads  # the ADS server (xds mode): the config goes to Envoy as a snapshot
        self.builder = ResourceBuilder() if settings.reload == "xds" else None
        # The names each cluster's endpoints go under (_envoy/eds.py), in the dynamic and the xds mode.
        self.endpoint_names = self.builder.names if self.builder else EndpointNames()
        self.open_files = open_files  # the open-files limit Envoy inherits (None: not known)
        self.sockets_short = False  # whether the last assignment may need more sockets than that
        self.metrics = metrics
        self.supervisor = supervisor
        self.config_dir = os.path.abspath(settings.config_dir)
        self.renderer = renderer_for(settings.template, settings.variables, os.path.join(self.config_dir, "secrets"))
        self.validator = EnvoyValidator(envoy_bin, self.config_dir,
                                        use_shape_cache=settings.validation == "shape-cache")
        self.applied_sha = None  # sha256 of the rendered text applied last (kept instead of megabytes of text)
        self.applied_bootstrap = None
        self.applied_cores = ()
        # Envoy's account of the last update: state confirmed, rejected or unconfirmed, the versions
        # it serves, and its reason for a refusal (None until envoyd wrote a dynamic update).
        self.envoy_update = None
        self.xds_rejected = {}  # Envoy's refusal counts by subscription, as last seen
        self.warm_cds = None  # the cds version Envoy was seen warm with (xds mode)
        self.kept = []  # the files of the last write, whose last good versions keep_good() kept
        self.good = None  # (sha, cores, bootstrap) of the config in the kept files
        self.good_snapshot = None  # and the snapshot that goes with them (xds mode)
        self.good_names = None  # and the endpoint names as they were then
        self.probation = None  # the config applied last, until Envoy has lived PROBATION_S with it
        self.fatal = {}  # sha256 -> when a config made Envoy die (monotonic), FATAL_KEPT at most

    def build(self, value, stages=None):
        """Value from Consul -> render.Built; raises AssignmentError or RenderError."""
        built = build(self.renderer, value, self.settings.assignment_key, self.settings.networks,
                      stages.lap if stages else None)
        self.metrics.renders.inc()
        return built

    def apply(self, value, dry_run=False):
        stages = StageClock()
        result = self._apply(value, dry_run, stages)
        result.stages = stages.stages
        for stage, seconds in stages.stages.items():
            self.metrics.stages.labels(stage=stage).observe(seconds)
        return result

    def _apply(self, value, dry_run, stages):
        try:
            built = self.build(value, stages)
        except AssignmentError as err:
            self.metrics.rejects.labels(reason="assignment").inc()
            return ApplyResult(False, "assignment", str(err))
        except RenderError as err:
            self.metrics.rejects.labels(reason="render").inc()
            return ApplyResult(False, "render", str(err))
        if dry_run:
            return ApplyResult(True, "dry-run", built.rendered.text)
        sha = built.sha256
        if sha == self.applied_sha:
            self.metrics.unchanged.inc()
            return ApplyResult(False, "unchanged")
        died_at = self.fatal.get(sha)
        if died_at is not None and time.monotonic() - died_at < FATAL_FOR_S:
            self.metrics.rejects.labels(reason="envoy-died").inc()
            return ApplyResult(False, "envoy-died", "this config (sha256 %s) made Envoy die %ds ago and was rolled "
                               "back; it is refused for %ds" % (sha[:12], time.monotonic() - died_at, FATAL_FOR_S))
        try:
            # The TLS listener's SDS files name only the certificate files: written before Envoy
            # validates (it reads them) and left as they are when unchanged.
            write_files(built.secrets)
        except OSError as err:
            self.metrics.rejects.labels(reason="apply").inc()
            return ApplyResult(False, "apply", "cannot write the TLS secret files: %s" % err)
        try:
            how = self.validator.validate(*built.rendered, kinds=built.kinds)
        except ConfigRejected as err:
            self.metrics.rejects.labels(reason="envoy").inc()
            return ApplyResult(False, "envoy", str(err))
        stages.lap("validate")
        self.metrics.validations.labels(by=how).inc()
        serving = len(built.serving)  # a core serving several stores counts once
        self._check_sockets(serving)
        try:
            expected = self.write_and_reload(built)
        except EnvoyStartError as err:
            # An Envoy that does not come up with these files must not find them at its next start.
            if not self._restore_good_state():
                done = "no earlier files to restore"
            elif self.supervisor.cold_next:
                done = "the last good files are back, " + self._start_afresh()
            else:
                done = "the last good files are back"
            reason = "%s; %s" % (err, done)
            self._mark_fatal(sha)
            self.metrics.rejects.labels(reason="envoy-died").inc()
            self.envoy_update = {"state": "died", "sha256": sha, "reason": reason, "at": time.time()}
            return ApplyResult(False, "envoy-died", reason)
        except XdsError as err:
            self.metrics.rejects.labels(reason="render").inc()
            return ApplyResult(False, "render", "as xDS resources: %s" % err)
        except OSError as err:
            self.metrics.rejects.labels(reason="apply").inc()
            return ApplyResult(False, "apply", str(err))
        stages.lap("write")
        confirmed = ""
        if expected:
            try:
                confirmed = self.confirm(expected)
            except EnvoyRejected as err:
                restored = self.restore()  # counted once the last good config is back (and warm)
                self.metrics.rejects.labels(reason="envoy-rejected").inc()
                return ApplyResult(False, "envoy-rejected", "%s; %s" % (err, restored))
            stages.lap("confirm")
        self.applied_sha, self.applied_cores = sha, built.cores
        if not expected and (self.envoy_update or {}).get("state") == "died":
            self.envoy_update = None  # nothing to confirm (hot restart): a live Envoy serves this config
        if self.supervisor is not None:
            self.probation = {"sha": sha, "since": time.monotonic(), "failures": self.supervisor.failures}
        self.metrics.applies.labels(mode=self.settings.reload).inc()
        self.metrics.cores.set(serving)
        self.metrics.last_apply.set(time.time())
        return ApplyResult(True, detail="%d cores, validated by %s, sha256 %s%s" % (serving, how, sha[:12], confirmed))

    def _check_sockets(self, cores):
        """Warn once when an assignment may need more sockets than Envoy may open: Envoy crashes when it runs out."""
        if not self.open_files or self.open_files == resource.RLIM_INFINITY:
            return
        workers = self.settings.envoy_concurrency or len(os.sched_getaffinity(0))
        needed = sockets_needed(cores, workers)
        short = needed > self.open_files
        if short and not self.sockets_short:
            LOG.warning("%d cores may need up to %d open files in Envoy (a health-check connection to each core and "
                        "one from each of %d workers), more than its limit of %d: raise the hard limit (ulimit -Hn, "
                        "docker run --ulimit nofile=N:N, systemd LimitNOFILE=N); Envoy exits when it runs out",
                        cores, needed, workers, self.open_files)
        elif self.sockets_short and not short:
            LOG.info("%d cores fit Envoy's open-files limit of %d", cores, self.open_files)
        self.sockets_short = short

    def write_and_reload(self, built):
        """Write a validated render.Built; reload Envoy the way the settings say (no Envoy with --once).

        Returns the versions Envoy must confirm ({"cds": version, "lds": version}), or None when
        nothing is to be confirmed (hot restart, --once, confirmation off)."""
        reload = self.settings.reload
        confirming = (reload != "hot-restart" and self.supervisor is not None and self.settings.confirm_timeout_s > 0)
        snapshot, names_before = None, self.endpoint_names.state()
        # The static bootstrap first, in every mode; the dynamic mode's files after it.
        (static, text), *files = built.files(self.config_dir, "dynamic" if reload == "dynamic" else "static",
                                             self.endpoint_names)
        if reload == "xds":
            config = built.rendered.config
            snapshot = Snapshot(self.builder.build(config))  # the resources encoded once, here
            bootstrap = ads_bootstrap(config, self.ads.socket_path if self.ads else "xds.sock")
            files = [(os.path.join(self.config_dir, BOOTSTRAP_FILE), dump_json(bootstrap))]
        elif reload == "dynamic":
            # The endpoint files of older clusters go; those the files in place name stay (they are
            # what a refusal goes back to), as do the new ones.
            prune_endpoint_files(self.config_dir, endpoint_files_named(self.config_dir) + [p for p, _t in files])
        if self.supervisor is not None and not self._applied_failed():
            # The files as they are now are the ones to go back to; not when Envoy failed since they
            # were applied: then the good files kept before them stay.
            self.kept = [static] + [path for path, _text in files]
            keep_good(self.kept)
            self.good = (self.applied_sha, self.applied_cores, self.applied_bootstrap)
            self.good_snapshot = self.ads.snapshot if self.ads else None
            self.good_names = names_before
        write_atomic(static, text)
        if snapshot is not None:
            write_files(files)
            if self.ads is not None:
                self.ads.set(snapshot)
            return self._start_if_new(files[-1], snapshot if confirming else None)
        if reload == "hot-restart":
            if self.supervisor is not None:
                self.supervisor.start(static)
            return None
        write_files(files)  # endpoints, cds, lds, then the bootstrap
        expected = versions_of(files)
        return self._start_if_new(files[-1], expected if confirming else None)

    def _start_if_new(self, bootstrap_file, expected):
        """Start Envoy (a hot restart when one runs) when the bootstrap changed or none runs; returns expected."""
        bootstrap_path, bootstrap_text = bootstrap_file
        if self.supervisor is not None and (bootstrap_text != self.applied_bootstrap or not self.supervisor.pids()):
            self.supervisor.start(bootstrap_path)
        self.applied_bootstrap = bootstrap_text
        return expected

    def _envoy_gone(self):
        """Why the current Envoy will not answer (it died), or None."""
        current = self.supervisor.current if self.supervisor else None
        if current is not None and not current.alive():
            return "Envoy %s" % describe_exit(current.popen.returncode)
        return None

    def _admin(self, path):
        gone = self._envoy_gone()
        if gone:  # no use waiting for a dead Envoy's word
            raise NotConfirmed(gone)
        return self.supervisor.admin(path)

    def confirm(self, expected):
        """Wait until Envoy serves the expected versions; EnvoyRejected when it refuses one. An Envoy
        that says neither in time leaves the update applied but unconfirmed (logged by the caller)."""
        snapshot = expected if isinstance(expected, Snapshot) else None
        versions = snapshot.kinds() if snapshot else expected
        try:
            if snapshot:
                self._wait_xds(snapshot)
            else:
                states = wait_confirmed(self._admin, expected, self.xds_rejected, self.settings.confirm_timeout_s)
        except NotConfirmed as err:
            self.envoy_update = {"state": "unconfirmed", "versions": versions, "reason": str(err)}
            self.metrics.envoy_rejected.set(0)
            return " (not confirmed: %s)" % err
        except EnvoyRejected as err:
            self.envoy_update = {"state": "rejected", "versions": versions, "rejected": err.kind,
                                 "reason": err.reason, "at": time.time()}
            self.metrics.envoy_rejected.set(1)
            if not snapshot:
                self._note_rejections()
            raise
        if not snapshot:
            self.xds_rejected = {kind: state.rejected for kind, state in states.items()}
        self.envoy_update = {"state": "confirmed", "versions": versions}
        self.metrics.envoy_rejected.set(0)
        return ", confirmed by Envoy (%s)" % ", ".join("%s %s" % item for item in versions.items())

    def _wait_xds(self, snapshot):
        """Until Envoy ACKed every version of the snapshot and warmed a cluster it was sent anew.

        A cluster sent anew serves only once warm (its endpoints and their first health checks), and
        endpoints sent while it warms end the warming early: Envoy counts checks, not cores, so the
        cores that answer may not be checked yet, and no call finds a healthy core."""
        deadline = time.monotonic() + self.settings.confirm_timeout_s
        cds = snapshot.kinds().get("cds")
        warm = cds == self.warm_cds
        if not warm:
            self.warm_cds = None  # until seen warm: an ACKed cluster whose update then failed may still warm
        self.ads.wait_acked(snapshot, self.settings.confirm_timeout_s, self._envoy_gone)
        if not warm:
            wait_confirmed(self._admin, {}, {}, max(0.0, deadline - time.monotonic()))
            self.warm_cds = cds

    def _note_rejections(self):
        """Remember Envoy's refusal counts, so the next update is judged by new refusals only."""
        try:
            states = parse_stats(self._admin(STATS_PATH))
        except (OSError, NotConfirmed):
            return
        self.xds_rejected = {kind: state.rejected for kind, state in states.items()}

    def _applied_failed(self):
        """Whether Envoy failed since the config applied last was applied (while it is on probation)."""
        return bool(self.probation and self.supervisor.failures > self.probation["failures"])

    def _restore_good_state(self):
        """The kept files back in place, and what envoyd thinks is applied with them; the paths restored."""
        restored = restore_good(self.kept)
        if not restored:
            return []
        self.kept = []
        if self.good is not None:
            self.applied_sha, self.applied_cores, self.applied_bootstrap = self.good
        if self.ads is not None and self.good_snapshot is not None:
            self.ads.set(self.good_snapshot)
        if self.good_names is not None:
            self.endpoint_names.restore(self.good_names)  # the next change is compared with what serves
        return restored

    def _mark_fatal(self, sha):
        self.fatal[sha] = time.monotonic()
        for old in sorted(self.fatal, key=self.fatal.get)[:-FATAL_KEPT]:
            del self.fatal[old]

    def _start_afresh(self):
        """After a failed hot restart: a new Envoy with the files restored (the old one cannot be
        handed over from any more)."""
        try:
            self.supervisor.start(self.supervisor.config_path)
        except (EnvoyStartError, OSError) as err:
            return "and an Envoy started afresh with them failed too: %s" % err
        return "and Envoy started afresh with them (a hot restart that failed blocks the next ones)"

    def judge_failures(self):
        """After the supervisor looked at Envoy: when Envoy failed STRIKES times since the config on
        probation was applied, roll the config back. Returns what was done (None: nothing)."""
        probation = self.probation
        if probation is None or self.supervisor is None:
            return None
        if time.monotonic() - probation["since"] > PROBATION_S:
            self.probation = None  # Envoy lived with it: proven
            return None
        if self.supervisor.failures - probation["failures"] < STRIKES:
            return None
        self.probation = None
        self._mark_fatal(probation["sha"])
        self.metrics.rejects.labels(reason="envoy-died").inc()
        failure = self.supervisor.last_failure
        if self._restore_good_state():
            done = "rolled back to the last good config (sha256 %s)" % (self.applied_sha or "none")[:12]
            self.metrics.cores.set(len(distinct_cores(self.applied_cores)))
        else:
            done = "no earlier config to roll back to"
        reason = "%s: it failed %d times within %ds of the config sha256 %s being applied; %s" % (
            failure, STRIKES, PROBATION_S, probation["sha"][:12], done)
        self.envoy_update = {"state": "died", "sha256": probation["sha"], "reason": reason, "at": time.time()}
        return reason

    def restore(self):
        """After a refusal: the last good files back in place, and Envoy's word that it serves them."""
        snapshot = self.good_snapshot
        restored = self._restore_good_state()
        if not restored:
            return "no earlier files to restore"
        if self.ads is not None and snapshot is not None:
            try:
                self._wait_xds(snapshot)
            except (NotConfirmed, EnvoyRejected) as err:
                return "restored the last good config, but Envoy did not confirm it: %s" % err
            self.envoy_update["serving"] = snapshot.kinds()
            return "restored the last good config, which Envoy serves (%s)" % ", ".join(
                "%s %s" % item for item in snapshot.kinds().items())
        named = set(endpoint_files_named(self.config_dir))
        heads = []
        for path in restored:
            # Endpoint files the restored clusters do not name (left by the refused config) are not read.
            if path in named or not (subscription_of(path) or "").startswith("eds "):
                with open(path, encoding="utf-8") as handle:
                    heads.append((path, handle.read(64)))
        versions = versions_of(heads)
        try:
            wait_confirmed(self._admin, versions, self.xds_rejected, self.settings.confirm_timeout_s)
        except (NotConfirmed, EnvoyRejected) as err:
            return "restored the last good files, but Envoy did not confirm them: %s" % err
        self.envoy_update["serving"] = versions
        return "restored the last good files, which Envoy serves (%s)" % ", ".join(
            "%s %s" % item for item in versions.items())
