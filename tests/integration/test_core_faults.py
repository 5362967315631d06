"""Dead, hung and unreachable cores under load through Envoy (tests/support/core_faults.py): Envoy
notices by itself within a few hundred milliseconds, no read fails, CreateDevice fails only for
calls that were on that core, and the core takes traffic again by itself when it comes back."""

from __future__ import annotations

import pytest

from tests.support.consul_faults import Rig
from tests.support.core_faults import FAULTS, run_fault

pytestmark = pytest.mark.slow


@pytest.fixture(params=["dynamic", "xds"])
def rig(tmp_path, request):
    with Rig(tmp_path, reload=request.param) as running:
        yield running


@pytest.mark.parametrize("fault", FAULTS)
def test_a_core_fault_costs_no_read(rig, fault):
    result = run_fault(rig, fault)
    summary = repr(result)
    print("\n" + summary)
    assert result.failed_reads == 0, summary
    assert result.failed_creates <= max(result.creates_in_flight, result.victim_in_flight), summary
    assert result.detection is not None and result.detection < 1.0, summary  # the benchmark reports it against 300 ms
    assert result.back is not None and result.back < 5.0, summary
    assert result.metrics_flagged >= 1, summary  # envoyd_envoy_hosts counts the core Envoy took out
