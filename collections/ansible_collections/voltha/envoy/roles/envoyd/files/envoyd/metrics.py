# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""envoyd's metrics, kept with prometheus_client in a registry of the daemon's own and served on
/metrics by status.py in Prometheus' text format.

Used by envoyd's daemon, applier and status server. Only envoyd imports it (its venv and image carry
prometheus-client); the modules never do.
"""

try:
    import prometheus_client
    from prometheus_client.core import GaugeMetricFamily
except ImportError:  # said when envoyd starts without it
    prometheus_client = GaugeMetricFamily = None

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError

# The stages of an apply run from tens of microseconds (parse two cores) to seconds (validate 10,000).
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STAGES = ("consul", "parse", "render", "validate", "write", "confirm")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DaemonMetrics:
    """The daemon's counters, gauges and histogram, in a registry of their own (one per daemon)."""

    def __init__(self):
        if prometheus_client is None:
            raise VolthaEnvoyError("envoyd needs the Python package prometheus-client (pip install prometheus-client)")
        # One sample per series: the *_created series say nothing a scrape needs.
        prometheus_client.disable_created_metrics()
        self.registry = prometheus_client.CollectorRegistry()
        counter, gauge = self._make(prometheus_client.Counter), self._make(prometheus_client.Gauge)
        self.renders = counter("envoyd_renders_total", "Configs rendered from an assignment.")
        self.applies = counter("envoyd_applies_total", "Configs applied to Envoy.", ("mode",))
        self.unchanged = counter("envoyd_unchanged_total", "Changes that rendered the config already applied.")
        self.rejects = counter("envoyd_rejects_total", "Assignments or configs not applied.", ("reason",))
        self.validations = counter("envoyd_validations_total", "Config validations.", ("by",))
        self.consul_errors = counter("envoyd_consul_errors_total", "Failed Consul requests.")
        self.envoy_restarts = counter("envoyd_envoy_restarts_total", "Envoy starts after a death.")
        self.last_apply = gauge("envoyd_last_apply_timestamp_seconds", "Unix time of the last apply.")
        self.cores = gauge("envoyd_assignment_cores", "Cores in the applied assignment.")
        self.healthy = gauge("envoyd_up", "1 while Envoy serves a validated config.")
        self.envoy_rejected = gauge("envoyd_envoy_rejected", "1 while Envoy refuses the last update (its last good "
                                    "files restored and serving).")
        self.stages = prometheus_client.Histogram(
            "envoyd_apply_stage_seconds", "Each stage of an apply: consul (the answer read and decoded), parse, "
            "render, validate, write, confirm (Envoy serves the files' versions).", labelnames=("stage",),
            buckets=STAGE_BUCKETS, registry=self.registry)
        self.latency = prometheus_client.Histogram(
            "envoyd_change_to_applied_seconds", "From Consul's answer with a change reaching envoyd to the config "
            "applied (and confirmed by Envoy).",
            buckets=LATENCY_BUCKETS, registry=self.registry)

    def watch_envoy_hosts(self, fetch):
        """Export envoyd_envoy_hosts{cluster,state}: how many hosts Envoy counts healthy, ejected,
        failing their checks...; ``fetch()`` gives the HostViews, asked at each scrape (none when it
        raises: Envoy not up)."""
        self.registry.register(_HostsCollector(fetch))

    def _make(self, kind):
        def make(name, documentation, labelnames=()):
            return kind(name, documentation, labelnames=labelnames, registry=self.registry)
        return make

    def value(self, name, **labels):
        """A sample's current value (0 when it has none yet), e.g. value("envoyd_rejects_total", reason="envoy")."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def exposition(self):
        """(body, content type) of the text format for /metrics."""
        return prometheus_client.generate_latest(self.registry), prometheus_client.CONTENT_TYPE_LATEST


class _HostsCollector:
    NAME = "envoyd_envoy_hosts"
    HELP = "Upstream hosts by what Envoy thinks of them (healthy, ejected, failing_checks, pending_check, unhealthy)."

    def __init__(self, fetch):
        self.fetch = fetch

    def _family(self):
        return GaugeMetricFamily(self.NAME, self.HELP, labels=("cluster", "state"))

    def describe(self):
        return [self._family()]

    def collect(self):
        from envoyd.hosts import state_counts

        family = self._family()
        try:
            views = self.fetch()
        except Exception:  # Envoy not up (yet): no samples rather than a failed scrape
            views = []
        for (cluster, state), count in sorted(state_counts(views).items()):
            family.add_metric((cluster, state), count)
        yield family
