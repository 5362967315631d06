# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The one grammar of every duration the collection takes, and its forms for Consul and Envoy.

A duration is a Go duration, as Consul, Docker and Envoy's own tools write them ("250ms", "1m30s",
"1h", "1.5s", "0"), or a number of seconds ("30", "1.5", or a number): ``--consul-wait 30``,
``30s`` and ``0.5m`` are the same half minute everywhere. Never negative, never infinite.
go_duration() writes one for Consul (its ``wait`` and check intervals), envoy_duration() for an Envoy
config (fixed-point seconds, "0.25s").

Used by envoyd's settings, the Consul reader, the renderer's template variables and the core simulator.
"""

import math
import re

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_SECONDS = re.compile(_NUMBER + r"\Z")
_GO = re.compile(r"(?:%s(?:ns|us|µs|μs|ms|s|m|h))+\Z" % _NUMBER)
_GO_PART = re.compile(r"(%s)(ns|us|µs|μs|ms|s|m|h)" % _NUMBER)
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
EXAMPLES = "250ms, 30s, 1m30s or 30 (seconds)"


class DurationError(VolthaEnvoyError, ValueError):
    """Not a duration; the message names the option and the value."""


def seconds(value, name="duration"):
    """A duration (text or a number of seconds) -> seconds as a float; DurationError names ``name``."""
    if isinstance(value, bool) or value is None:
        raise DurationError("%s must be a duration such as %s, got %r" % (name, EXAMPLES, value))
    if isinstance(value, (int, float)):
        result = float(value)
    else:
        text = str(value).strip()
        if text.startswith("-"):
            raise DurationError("%s must not be negative, got %r" % (name, value))
        if _SECONDS.match(text):
            result = float(text)
        elif _GO.match(text):
            result = sum(float(number) * _UNITS[unit] for number, unit in _GO_PART.findall(text))
        else:
            raise DurationError("%s must be a duration such as %s, got %r" % (name, EXAMPLES, value))
    if result < 0:
        raise DurationError("%s must not be negative, got %r" % (name, value))
    if not math.isfinite(result):
        raise DurationError("%s must be a finite duration, got %r" % (name, value))
    return result


def go_duration(value):
    """Seconds -> a Go duration Consul takes, to the millisecond: "90s", "250ms", "0s". A wait under a
    millisecond is one millisecond: a zero wait is Consul's default, five minutes."""
    millis = int(round(value * 1000)) or (1 if value > 0 else 0)
    return "%ds" % (millis // 1000) if millis % 1000 == 0 else "%dms" % millis


def envoy_duration(value):
    """Seconds -> an Envoy JSON duration in fixed point, to the microsecond ("0.25s", "5s", "2000000s"); a
    duration under a microsecond is one, not zero (which turns an interval off)."""
    if 0 < value < 0.0000005:
        value = 0.000001
    return ("%.6f" % value).rstrip("0").rstrip(".") + "s"
