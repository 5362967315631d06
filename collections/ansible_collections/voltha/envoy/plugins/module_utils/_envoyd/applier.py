# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""envoyd's applier: one assignment value from Consul -> parsed, rendered, validated, written, and
Envoy told. It remembers the last good config, so a value that fails any step changes nothing.
Used by the daemon (daemon.py) for every change and by --once / --dry-run.
"""

import os
import time

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import AssignmentError, distinct_cores
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.files import (
    dynamic_files,
    secret_files,
    sha256_text,
    static_path,
    write_atomic,
    write_files,
)
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.process import EnvoyStartError
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import Renderer, RenderError, render_assignment
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.validate import ConfigRejected, EnvoyValidator
from ansible_collections.voltha.envoy.plugins.module_utils._envoyd.settings import SettingsError


class ApplyResult:
    def __init__(self, applied, reason=None, detail=None):
        self.applied, self.reason, self.detail = applied, reason, detail


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

    def render(self, value):
        """Value from Consul -> (cores, Rendered); raises AssignmentError or RenderError."""
        cores, rendered = render_assignment(self.renderer, value, self.settings.assignment_key,
                                            allowed_networks=self.settings.networks)
        self.metrics.renders.inc()
        return cores, rendered

    def apply(self, value, dry_run=False):
        try:
            cores, (text, config, fmt) = self.render(value)
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
        self.metrics.validations.labels(by=how).inc()
        try:
            self.write_and_reload(text, config, fmt)
        except (EnvoyStartError, OSError) as err:
            self.metrics.rejects.labels(reason="apply").inc()
            return ApplyResult(False, "apply", str(err))
        self.applied_sha, self.applied_cores = sha, cores
        self.metrics.applies.labels(mode=self.settings.reload).inc()
        serving = len(distinct_cores(cores))  # a core serving several stores counts once
        self.metrics.cores.set(serving)
        self.metrics.last_apply.set(time.time())
        return ApplyResult(True, detail="%d cores, validated by %s, sha256 %s" % (serving, how, sha[:12]))

    def write_and_reload(self, text, config, fmt):
        """Write the validated config; reload Envoy the way the settings say (no Envoy with --once)."""
        static = static_path(self.config_dir, fmt)
        write_atomic(static, text)
        if self.settings.reload == "hot-restart":
            if self.supervisor is not None:
                self.supervisor.start(static)
            return
        files = dynamic_files(self.config_dir, text, config)  # cds, lds, then the bootstrap
        write_files(files)
        bootstrap_path, bootstrap_text = files[-1]
        if self.supervisor is not None and (bootstrap_text != self.applied_bootstrap or not self.supervisor.pids()):
            self.supervisor.start(bootstrap_path)
        self.applied_bootstrap = bootstrap_text
