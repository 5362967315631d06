# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""envoyd's applier: one assignment value from Consul -> parsed, rendered, validated, written, and
confirmed by Envoy (it serves the files' versions, or refuses them and the last good files go back).
It remembers the last good config, so a value that fails any step changes nothing, and times each
stage. Used by the daemon (daemon.py) for every change and by --once / --dry-run.
"""

import os
import time

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import AssignmentError, distinct_cores
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.confirm import (
    STATS_PATH,
    SUBSCRIPTIONS,
    EnvoyRejected,
    NotConfirmed,
    file_version,
    parse_stats,
    wait_confirmed,
)
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.files import (
    dynamic_files,
    keep_good,
    restore_good,
    secret_files,
    sha256_text,
    static_path,
    write_atomic,
    write_files,
)
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.process import EnvoyStartError
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import Renderer, RenderError, parse_value
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.validate import ConfigRejected, EnvoyValidator
from ansible_collections.voltha.envoy.plugins.module_utils._envoyd.settings import SettingsError


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

    def __init__(self, settings, envoy_bin, metrics, supervisor=None):
        self.settings = settings
        self.metrics = metrics
        self.supervisor = supervisor
        self.config_dir = os.path.abspath(settings.config_dir)
        template_text = None
        if settings.template:
            try:
                with open(settings.template, encoding="utf-8") as handle:
                    template_text = handle.read()
            except OSError as err:
                raise SettingsError("cannot read the template %s: %s" % (settings.template, err.strerror)) from err
        variables = dict(settings.variables)
        variables.setdefault("sds_dir", os.path.join(os.path.abspath(self.config_dir), "secrets"))
        self.renderer = Renderer(template_text, variables, template_name=settings.template or "voltha")
        self.validator = EnvoyValidator(envoy_bin, self.config_dir,
                                        use_shape_cache=settings.validation == "shape-cache")
        self.applied_sha = None  # sha256 of the rendered text applied last (kept instead of megabytes of text)
        self.applied_bootstrap = None
        self.applied_cores = ()
        # Envoy's account of the last update: state confirmed, rejected or unconfirmed, the versions
        # it serves, and its reason for a refusal (None until envoyd wrote a dynamic update).
        self.envoy_update = None
        self.xds_rejected = {kind: 0 for kind in SUBSCRIPTIONS}  # Envoy's refusal counts, as last seen
        self.kept = []  # the files of the last write, whose last good versions keep_good() kept

    def render(self, value, stages=None):
        """Value from Consul -> (cores, Rendered); raises AssignmentError or RenderError."""
        cores = parse_value(self.renderer, value, self.settings.assignment_key, allowed_networks=self.settings.networks)
        if stages:
            stages.lap("parse")
        rendered = self.renderer.render(cores)
        if stages:
            stages.lap("render")
        self.metrics.renders.inc()
        return cores, rendered

    def apply(self, value, dry_run=False):
        stages = StageClock()
        result = self._apply(value, dry_run, stages)
        result.stages = stages.stages
        for stage, seconds in stages.stages.items():
            self.metrics.stages.labels(stage=stage).observe(seconds)
        return result

    def _apply(self, value, dry_run, stages):
        try:
            cores, (text, config, fmt) = self.render(value, stages)
        except AssignmentError as err:
            self.metrics.rejects.labels(reason="assignment").inc()
            return ApplyResult(False, "assignment", str(err))
        except RenderError as err:
            self.metrics.rejects.labels(reason="render").inc()
            return ApplyResult(False, "render", str(err))
        if dry_run:
            return ApplyResult(True, "dry-run", text)
        sha = sha256_text(text)
        if sha == self.applied_sha:
            self.metrics.unchanged.inc()
            return ApplyResult(False, "unchanged")
        try:
            # The TLS listener's SDS files name only the certificate files: written before Envoy
            # validates (it reads them) and left as they are when unchanged.
            write_files(secret_files(self.renderer.variables))
        except OSError as err:
            self.metrics.rejects.labels(reason="apply").inc()
            return ApplyResult(False, "apply", "cannot write the TLS secret files: %s" % err)
        try:
            how = self.validator.validate(text, config, fmt)
        except ConfigRejected as err:
            self.metrics.rejects.labels(reason="envoy").inc()
            return ApplyResult(False, "envoy", str(err))
        stages.lap("validate")
        self.metrics.validations.labels(by=how).inc()
        try:
            expected = self.write_and_reload(text, config, fmt)
        except (EnvoyStartError, OSError) as err:
            self.metrics.rejects.labels(reason="apply").inc()
            return ApplyResult(False, "apply", str(err))
        stages.lap("write")
        confirmed = ""
        if expected:
            try:
                confirmed = self.confirm(expected)
            except EnvoyRejected as err:
                self.metrics.rejects.labels(reason="envoy-rejected").inc()
                return ApplyResult(False, "envoy-rejected", "%s; %s" % (err, self.restore()))
            stages.lap("confirm")
        self.applied_sha, self.applied_cores = sha, cores
        self.metrics.applies.labels(mode=self.settings.reload).inc()
        serving = len(distinct_cores(cores))  # a core serving several stores counts once
        self.metrics.cores.set(serving)
        self.metrics.last_apply.set(time.time())
        return ApplyResult(True, detail="%d cores, validated by %s, sha256 %s%s" % (serving, how, sha[:12], confirmed))

    def write_and_reload(self, text, config, fmt):
        """Write the validated config; reload Envoy the way the settings say (no Envoy with --once).

        Returns the versions Envoy must confirm ({"cds": version, "lds": version}), or None when
        nothing is to be confirmed (hot restart, --once, confirmation off)."""
        static = static_path(self.config_dir, fmt)
        confirming = (self.settings.reload == "dynamic" and self.supervisor is not None
                      and self.settings.confirm_timeout_s > 0)
        files = dynamic_files(self.config_dir, text, config) if self.settings.reload == "dynamic" else []
        self.kept = [static] + [path for path, _text in files[:2]]
        if confirming:
            keep_good(self.kept)
        write_atomic(static, text)
        if self.settings.reload == "hot-restart":
            if self.supervisor is not None:
                self.supervisor.start(static)
            return None
        write_files(files)  # cds, lds, then the bootstrap
        bootstrap_path, bootstrap_text = files[-1]
        if self.supervisor is not None and (bootstrap_text != self.applied_bootstrap or not self.supervisor.pids()):
            self.supervisor.start(bootstrap_path)
        self.applied_bootstrap = bootstrap_text
        if not confirming:
            return None
        return {kind: file_version(file_text) for kind, (_path, file_text) in zip(SUBSCRIPTIONS, files)}

    def _admin(self, path):
        current = self.supervisor.current
        if current is None:
            raise OSError("no Envoy runs")
        return current.admin(path, timeout=2.0)

    def confirm(self, expected):
        """Wait until Envoy serves the expected versions; EnvoyRejected when it refuses one. An Envoy
        that says neither in time leaves the update applied but unconfirmed (logged by the caller)."""
        try:
            states = wait_confirmed(self._admin, expected, self.xds_rejected, self.settings.confirm_timeout_s)
        except NotConfirmed as err:
            self.envoy_update = {"state": "unconfirmed", "versions": expected, "reason": str(err)}
            self.metrics.envoy_rejected.set(0)
            return " (not confirmed: %s)" % err
        except EnvoyRejected as err:
            self.envoy_update = {"state": "rejected", "versions": expected, "rejected": err.kind,
                                 "reason": err.reason, "at": time.time()}
            self.metrics.envoy_rejected.set(1)
            self._note_rejections()
            raise
        self.xds_rejected = {kind: state.rejected for kind, state in states.items()}
        self.envoy_update = {"state": "confirmed", "versions": expected}
        self.metrics.envoy_rejected.set(0)
        return ", confirmed by Envoy (cds %s, lds %s)" % (expected["cds"], expected["lds"])

    def _note_rejections(self):
        """Remember Envoy's refusal counts, so the next update is judged by new refusals only."""
        try:
            states = parse_stats(self._admin(STATS_PATH))
        except OSError:
            return
        self.xds_rejected = {kind: state.rejected for kind, state in states.items()}

    def restore(self):
        """After a refusal: the last good files back in place, and Envoy's word that it serves them."""
        restored = restore_good(self.kept)
        if not restored:
            return "no earlier files to restore"
        versions = {}
        for kind, path in zip(SUBSCRIPTIONS, self.kept[1:]):
            with open(path, encoding="utf-8") as handle:
                versions[kind] = file_version(handle.read(64))
        try:
            wait_confirmed(self._admin, versions, self.xds_rejected, self.settings.confirm_timeout_s)
        except (NotConfirmed, EnvoyRejected) as err:
            return "restored the last good files, but Envoy did not confirm them: %s" % err
        self.envoy_update["serving"] = versions
        return "restored the last good files, which Envoy serves (cds %s, lds %s)" % (versions["cds"], versions["lds"])
