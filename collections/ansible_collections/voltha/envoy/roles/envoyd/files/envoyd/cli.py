# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""envoyd's command line: settings (settings.py), logging, --check-settings, then the daemon.

The one entry point: `python -m envoyd` and the `envoyd` command of the venv, the image and the role
all call main().
"""

import gc
import logging
import sys

from ansible_collections.voltha.envoy.plugins.module_utils._common.log_queue import QueuedLog
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.binary import find_envoy
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import RenderError
from envoyd.applier import ConfigApplier
from envoyd.daemon import Daemon
from envoyd.metrics import DaemonMetrics
from envoyd.settings import SettingsError, load_settings

LOG = logging.getLogger("envoyd")


def check_settings(settings):
    """--check-settings: everything that can be checked without Consul (for installers and CI)."""
    try:
        envoy_bin = find_envoy(settings.envoy_bin)
        ConfigApplier(settings, envoy_bin, DaemonMetrics())
    except Exception as err:  # report any problem as one line, whatever its type
        sys.stderr.write("envoyd: %s\n" % err)
        return 2
    sys.stdout.write("envoyd: settings ok (envoy %s, consul %s, key %s)\n"
                     % (envoy_bin, settings.consul.address, settings.assignment_key))
    return 0


def main(argv=None):
    try:
        settings = load_settings(argv)
    except SettingsError as err:
        sys.stderr.write("envoyd: %s\n" % err)
        return 2
    # Logging never blocks the thread that logs, even when nothing reads stderr (see log_queue).
    log_writer = QueuedLog(sys.stderr, getattr(logging, settings.log_level.upper(), logging.INFO),
                           "%(asctime)s envoyd %(levelname)s %(message)s")
    try:
        return _run(settings)
    finally:
        log_writer.stop()


def _run(settings):
    LOG.debug("settings: consul %r", settings.consul)
    if settings.check_settings:
        return check_settings(settings)
    try:
        daemon = Daemon(settings)
    except (SettingsError, RenderError) as err:
        LOG.error("%s", err)
        return 2
    except Exception as err:  # a missing Envoy binary and the like: say what, not a traceback
        LOG.error("cannot start: %s: %s", type(err).__name__, err)
        return 2
    pace_garbage_collection()
    return daemon.run()


# An apply of 10,000 cores makes about 100,000 short-lived dicts and tuples, which reference counting
# frees. At Python's default pace (a collection every 700 new containers, a full one every 100 of
# those) they set off hundreds of collections per apply, some over every object envoyd holds: a
# quarter of the apply's time. Cycles are rare here (an exception's traceback), so a slower pace costs
# little memory.
GC_THRESHOLDS = (100000, 50, 100)


def pace_garbage_collection():
    """What envoyd holds once it is up (modules, the compiled template) is never looked at again; the
    rest is collected at GC_THRESHOLDS."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
