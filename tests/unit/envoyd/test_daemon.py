"""The daemon's main loop survives what it did not foresee, and its validator's failures are rejections."""

import logging
import time

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.validate import ConfigRejected, EnvoyValidator
from envoyd.daemon import Daemon
from envoyd.settings import load_settings


def test_an_unexpected_error_in_apply_is_logged_and_counted_not_raised(tmp_path, caplog):
    daemon = Daemon(load_settings(["--config-dir", str(tmp_path)], {}))

    def explode(value):
        raise RuntimeError("boom")

    daemon.applier.apply = explode
    with caplog.at_level(logging.ERROR, logger="envoyd"):
        daemon._handle_kv(("kv", b"{}", 7, time.monotonic()))
    assert daemon.metrics.value("envoyd_rejects_total", reason="internal") == 1
    assert "unexpected error" in caplog.text and "boom" in caplog.text


def test_validator_timeout_and_missing_binary_are_rejections(tmp_path):
    slow = tmp_path / "slow-envoy"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    with pytest.raises(ConfigRejected, match="did not finish within 0.2s"):
        EnvoyValidator(str(slow), str(tmp_path), use_shape_cache=False, timeout=0.2).run_envoy("{}", "json")
    with pytest.raises(ConfigRejected, match="could not validate with"):
        EnvoyValidator(str(tmp_path / "missing"), str(tmp_path), use_shape_cache=False).run_envoy("{}", "json")
    assert not list(tmp_path.glob(".validate.*"))  # the config handed to Envoy is always removed
