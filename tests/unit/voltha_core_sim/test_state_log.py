"""state_log.py: each change of state logged once."""

from __future__ import annotations

import logging

from voltha_core_sim.state_log import StateLog


def test_state_log_logs_each_change_once(caplog):
    states = StateLog(logging.getLogger("test.core_sim"))
    with caplog.at_level(logging.INFO, logger="test.core_sim"):
        assert states.report("election", "error:X", "down")
        assert not states.report("election", "error:X", "down again")
        assert states.report("election", "leader", "leader")
        assert states.report("health", "error:X", "down")
    assert [r.getMessage() for r in caplog.records] == ["election: down", "election: leader", "health: down"]
    assert states.state("election") == "leader"
