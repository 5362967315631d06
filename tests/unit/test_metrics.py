"""Unit tests for the metrics registry (metrics.py) and its Prometheus text exposition."""

import re
import threading

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils.metrics import Registry

# One sample line of the text format 0.0.4: name, optional labels with escaped values, a number.
SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? '
                    r'(\+Inf|-Inf|NaN|-?[0-9.e+-]+)$')


def check_format(text):
    assert text.endswith("\n")
    for line in text[:-1].split("\n"):
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line


def test_counter_without_labels_shows_zero():
    r = Registry()
    r.counter("x_total", "Things.")
    assert r.exposition() == "# HELP x_total Things.\n# TYPE x_total counter\nx_total 0\n"


def test_counter_with_labels_shows_no_sample_before_use():
    r = Registry()
    r.counter("x_total", "Things.", ("reason",))
    assert r.exposition() == "# HELP x_total Things.\n# TYPE x_total counter\n"


def test_counter_with_labels():
    r = Registry()
    c = r.counter("rejects_total", "Rejects.", ("reason", "by"))
    c.inc(reason="render", by="x")
    c.inc(3, by="x", reason="render")
    c.inc(by="y", reason="assignment")
    assert c.get(reason="render", by="x") == 4
    assert c.get(reason="nothing", by="x") == 0
    text = r.exposition()
    assert text == ("# HELP rejects_total Rejects.\n# TYPE rejects_total counter\n"
                    'rejects_total{reason="assignment",by="y"} 1\n'
                    'rejects_total{reason="render",by="x"} 4\n')
    check_format(text)


def test_label_values_are_escaped():
    r = Registry()
    c = r.counter("x_total", "X.", ("detail",))
    c.inc(detail='a"b\\c\nd')
    line = r.exposition().splitlines()[-1]
    assert line == 'x_total{detail="a\\"b\\\\c\\nd"} 1'
    check_format(r.exposition())


def test_hostile_label_value_stays_on_one_line():
    r = Registry()
    c = r.counter("x_total", "X.", ("detail",))
    c.inc(detail='"} 1\nevil_metric 666\n# ')
    text = r.exposition()
    check_format(text)
    assert not any(line.startswith("evil_metric") for line in text.splitlines())
    assert len(text.splitlines()) == 3


@pytest.mark.parametrize("labels", [{}, {"reason": "a", "extra": "b"}, {"other": "a"}])
def test_wrong_labels_are_refused_naming_the_metric(labels):
    r = Registry()
    c = r.counter("x_total", "X.", ("reason",))
    with pytest.raises(ValueError, match=r"^x_total takes labels \('reason',\), got "):
        c.inc(**labels)
    with pytest.raises(ValueError, match="x_total"):
        c.get(**labels)


def test_gauge():
    r = Registry()
    g = r.gauge("up", "Up.")
    assert r.exposition().splitlines()[-1] == "up 0"
    g.set(1)
    assert r.exposition().splitlines()[-1] == "up 1"
    g.set(1712345678.25)
    assert r.exposition().splitlines()[-1] == "up 1712345678.25"
    g.set(0.1)
    assert r.exposition().splitlines()[-1] == "up 0.1"
    assert g.get() == 0.1
    assert "# TYPE up gauge" in r.exposition()


def test_gauge_with_labels():
    r = Registry()
    g = r.gauge("temp", "T.", ("where",))
    g.set(2, where="b")
    g.set(1, where="a")
    g.set(3, where="b")
    assert r.exposition().splitlines()[2:] == ['temp{where="a"} 1', 'temp{where="b"} 3']


def test_histogram_buckets_are_cumulative():
    r = Registry()
    h = r.histogram("lat_seconds", "Latency.", (1.0, 0.1, 10))  # given unsorted
    for value in (0.05, 0.1, 0.5, 5, 50):
        h.observe(value)
    text = r.exposition()
    assert text == ("# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
                    'lat_seconds_bucket{le="0.1"} 2\n'
                    'lat_seconds_bucket{le="1.0"} 3\n'
                    'lat_seconds_bucket{le="10"} 4\n'
                    'lat_seconds_bucket{le="+Inf"} 5\n'
                    "lat_seconds_sum 55.65\n"
                    "lat_seconds_count 5\n")
    check_format(text)


def test_empty_histogram():
    r = Registry()
    r.histogram("h", "H.", (0.5,))
    assert r.exposition().splitlines()[2:] == ['h_bucket{le="0.5"} 0', 'h_bucket{le="+Inf"} 0', "h_sum 0.0",
                                               "h_count 0"]


def test_histogram_counts_never_decrease_along_buckets():
    r = Registry()
    h = r.histogram("h", "H.", (0.001, 0.01, 0.1, 1.0, 10.0))
    for i in range(200):
        h.observe((i * 7919 % 1000) / 50.0)
    counts = [int(line.rsplit(" ", 1)[1]) for line in r.exposition().splitlines() if "_bucket" in line]
    assert counts == sorted(counts)
    assert counts[-1] == 200


def test_exposition_keeps_registration_order():
    r = Registry()
    r.counter("b_total", "B.")
    r.gauge("a", "A.")
    r.histogram("c", "C.", (1,))
    names = [line.split()[2] for line in r.exposition().splitlines() if line.startswith("# TYPE")]
    assert names == ["b_total", "a", "c"]
    check_format(r.exposition())


def test_registries_are_independent():
    one, two = Registry(), Registry()
    one.counter("x_total", "X.").inc()
    assert two.exposition() == "\n"


def test_concurrent_increments_are_not_lost():
    r = Registry()
    c = r.counter("x_total", "X.", ("t",))
    h = r.histogram("h", "H.", (1,))

    def work(name):
        for _ in range(2000):
            c.inc(t="same")
            h.observe(0.5)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.get(t="same") == 8000
    assert 'h_count 8000' in r.exposition()
