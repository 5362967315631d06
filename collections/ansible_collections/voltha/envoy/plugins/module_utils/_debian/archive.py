# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The Debian archive a host's apt already uses: where debootstrap and private apt lists fetch from.

Used by the debootstrap_image module and scripts/setup.py.
"""

import glob
import os
import re

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError

_URI = re.compile(r"(?:^deb\s+(?:\[[^\]]*\]\s+)?|^URIs:\s*)(\S+)", re.M)


class MirrorNotFound(VolthaEnvoyError, LookupError):
    pass


def find_mirror(environ=None, apt_dir="/etc/apt"):
    """DEBIAN_MIRROR, else the first archive ending in /debian in the host's apt sources."""
    environ = os.environ if environ is None else environ
    if environ.get("DEBIAN_MIRROR"):
        return environ["DEBIAN_MIRROR"].rstrip("/")
    paths = [os.path.join(apt_dir, "sources.list")] + sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*")))
    for path in paths:
        if not os.path.isfile(path) or os.path.splitext(path)[1] not in (".list", ".sources", ""):
            continue
        with open(path) as handle:
            for uri in _URI.findall(handle.read()):
                if uri.rstrip("/").endswith("/debian"):
                    return uri.rstrip("/")
    raise MirrorNotFound("no Debian archive in %s/sources.list*; set DEBIAN_MIRROR (the URL that ends in /debian)"
                         % apt_dir)
