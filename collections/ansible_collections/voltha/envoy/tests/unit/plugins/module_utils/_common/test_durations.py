"""The one duration grammar (durations.py): Go durations and plain seconds, and their Consul and Envoy forms."""

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._common.durations import (
    DurationError,
    envoy_duration,
    go_duration,
    seconds,
)


@pytest.mark.parametrize("value,expected", [
    ("30", 30.0), (30, 30.0), ("30s", 30.0), ("0.5m", 30.0), ("30000ms", 30.0), ("1m30s", 90.0), ("1h", 3600.0),
    ("250ms", 0.25), ("1.5", 1.5), (".5s", 0.5), ("0", 0.0), ("0s", 0.0), (" 2s ", 2.0), ("1.5h2m", 5520.0),
    ("500us", 0.0005), ("500µs", 0.0005), ("100ns", 1e-7), (0.25, 0.25),
])
def test_every_form_of_a_duration(value, expected):
    assert seconds(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["", "abc", "5x", "2 s", "1.2.3s", "1e3", "s", "ms", "1sec", "5d", "nan", "inf",
                                   "²s", "1s 2s", "1_0s", None, True])
def test_what_is_not_a_duration_is_named(value):
    with pytest.raises(DurationError) as info:
        seconds(value, "consul_wait")
    assert str(info.value) == "consul_wait must be a duration such as 250ms, 30s, 1m30s or 30 (seconds), got %r" % (
        value,)


@pytest.mark.parametrize("value", ["-1", "-0.5s", -2])
def test_negative_durations_are_refused(value):
    with pytest.raises(DurationError) as info:
        seconds(value, "wait")
    assert str(info.value) == "wait must not be negative, got %r" % (value,)


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(DurationError, match="wait must"):
        seconds(value, "wait")


@pytest.mark.parametrize("value,consul,envoy", [
    (30.0, "30s", "30s"), (90.0, "90s", "90s"), (0.25, "250ms", "0.25s"), (0.0, "0s", "0s"), (1.5, "1500ms", "1.5s"),
    (2000000.0, "2000000s", "2000000s"), (0.0005, "1ms", "0.0005s"),
])
def test_written_for_consul_and_for_envoy(value, consul, envoy):
    assert go_duration(value) == consul
    assert envoy_duration(value) == envoy
    assert seconds(consul) == pytest.approx(round(value, 3))


@pytest.mark.parametrize("value", ["400ns", "0.0000004s", 1e-9])
def test_a_duration_under_a_microsecond_is_one_for_envoy_not_zero(value):
    assert envoy_duration(seconds(value)) == "0.000001s"  # zero would turn a health check off
