"""metrics.py: the series envoyd exposes on /metrics, in Prometheus' text format."""

import re

from envoyd.metrics import LATENCY_BUCKETS, DaemonMetrics

# One sample line of the text format 0.0.4: name, optional labels with escaped values, a number.
SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? '
                    r'(\+Inf|-Inf|NaN|-?[0-9.e+-]+)$')


def exposition(metrics):
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    text = body.decode()
    assert text.endswith("\n")
    for line in text[:-1].split("\n"):
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line
    return text


def test_every_series_is_there_with_its_type():
    text = exposition(DaemonMetrics())
    for name, kind in [("envoyd_renders_total", "counter"), ("envoyd_unchanged_total", "counter"),
                       ("envoyd_consul_errors_total", "counter"), ("envoyd_envoy_restarts_total", "counter"),
                       ("envoyd_last_apply_timestamp_seconds", "gauge"), ("envoyd_assignment_cores", "gauge"),
                       ("envoyd_up", "gauge"), ("envoyd_change_to_applied_seconds", "histogram")]:
        assert re.search(r"^# TYPE %s %s$" % (name, kind), text, re.M), name
    assert "_created" not in text
    assert "envoyd_renders_total 0.0" in text


def test_labelled_counters_count_per_label():
    metrics = DaemonMetrics()
    metrics.rejects.labels(reason="render").inc()
    metrics.rejects.labels(reason="render").inc(2)
    metrics.rejects.labels(reason="envoy").inc()
    metrics.applies.labels(mode="dynamic").inc()
    assert metrics.value("envoyd_rejects_total", reason="render") == 3
    assert metrics.value("envoyd_rejects_total", reason="envoy") == 1
    assert metrics.value("envoyd_rejects_total", reason="nothing") == 0
    text = exposition(metrics)
    assert 'envoyd_rejects_total{reason="render"} 3.0' in text
    assert 'envoyd_applies_total{mode="dynamic"} 1.0' in text


def test_the_latency_histogram_has_the_buckets():
    metrics = DaemonMetrics()
    metrics.latency.observe(0.003)
    metrics.latency.observe(20)
    text = exposition(metrics)
    assert 'envoyd_change_to_applied_seconds_bucket{le="0.0025"} 0.0' in text
    assert 'envoyd_change_to_applied_seconds_bucket{le="0.005"} 1.0' in text
    assert 'envoyd_change_to_applied_seconds_bucket{le="+Inf"} 2.0' in text
    assert "envoyd_change_to_applied_seconds_count 2.0" in text
    assert len(re.findall(r"_bucket\{", text)) == len(LATENCY_BUCKETS) + 1


def test_two_daemons_keep_their_own_registries():
    first, second = DaemonMetrics(), DaemonMetrics()
    first.renders.inc()
    assert first.value("envoyd_renders_total") == 1 and second.value("envoyd_renders_total") == 0
    first.healthy.set(1)
    assert first.value("envoyd_up") == 1 and second.value("envoyd_up") == 0
