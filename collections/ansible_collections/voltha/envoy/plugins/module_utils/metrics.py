# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A small thread-safe metrics registry that writes the Prometheus text format (version 0.0.4)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import threading


def _labels(names, values):
    if not names:
        return ""
    pairs = ('%s="%s"' % (n, str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
             for n, v in zip(names, values))
    return "{%s}" % ",".join(pairs)


def _number(value):
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)


def _help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class _Metric:
    kind = ""

    def __init__(self, registry, name, help_text, labelnames=()):
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self._lock = registry.lock
        self._values = {}
        registry.metrics.append(self)

    def _key(self, labels):
        if set(labels) != set(self.labelnames):
            raise ValueError("%s takes labels %s, got %s" % (self.name, self.labelnames, sorted(labels)))
        return tuple(labels[n] for n in self.labelnames)

    def get(self, **labels):
        with self._lock:
            return self._values.get(self._key(labels), 0)

    def lines(self):
        out = ["# HELP %s %s" % (self.name, _help(self.help)), "# TYPE %s %s" % (self.name, self.kind)]
        if not self._values and not self.labelnames:
            out.append("%s 0" % self.name)
        for key in sorted(self._values):
            out.append("%s%s %s" % (self.name, _labels(self.labelnames, key), _number(self._values[key])))
        return out


class Counter(_Metric):
    kind = "counter"

    def inc(self, amount=1, **labels):
        with self._lock:
            key = self._key(labels)
            self._values[key] = self._values.get(key, 0) + amount


class Gauge(_Metric):
    kind = "gauge"

    def set(self, value, **labels):
        with self._lock:
            self._values[self._key(labels)] = value


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, registry, name, help_text, buckets):
        super(Histogram, self).__init__(registry, name, help_text)
        self.buckets = tuple(sorted(b for b in buckets if b != float("inf"))) + (float("inf"),)
        self._counts = [0] * len(self.buckets)
        self._sum = 0.0
        self._count = 0

    def observe(self, value):
        with self._lock:
            self._sum += value
            self._count += 1
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1

    def lines(self):
        out = ["# HELP %s %s" % (self.name, _help(self.help)), "# TYPE %s histogram" % self.name]
        for bound, count in zip(self.buckets, self._counts):
            out.append('%s_bucket{le="%s"} %d' % (self.name, _number(bound), count))
        out.append("%s_sum %s" % (self.name, repr(self._sum)))
        out.append("%s_count %d" % (self.name, self._count))
        return out


class Registry:
    def __init__(self):
        self.lock = threading.RLock()
        self.metrics = []

    def counter(self, name, help_text, labelnames=()):
        return Counter(self, name, help_text, labelnames)

    def gauge(self, name, help_text, labelnames=()):
        return Gauge(self, name, help_text, labelnames)

    def histogram(self, name, help_text, buckets):
        return Histogram(self, name, help_text, buckets)

    def exposition(self):
        """The whole registry in the Prometheus text format."""
        with self.lock:
            lines = []
            for metric in self.metrics:
                lines.extend(metric.lines())
        return "\n".join(lines) + "\n"
