# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Debian packages fetched and unpacked without touching the host's apt setup or installing anything.

apt-get downloads through a private sources list (one suite of one mirror, the host's archive
keyring) into a cache directory; ``dpkg-deb -x`` unpacks the .debs into a root directory. A package
already in the cache is not downloaded again.

``run(argv, cwd)`` runs a command and returns (rc, stdout, stderr): AnsibleModule.run_command in the
debian_packages module, subprocess in scripts/setup.py.
"""

import glob
import os

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class PackageFetchError(VolthaEnvoyError, RuntimeError):
    pass


def cached(cache_dir, package):
    """The newest .deb of ``package`` in the cache, or None."""
    debs = sorted(glob.glob(os.path.join(cache_dir, "%s_*.deb" % glob.escape(package))))
    return debs[-1] if debs else None


def apt_command(cache_dir, mirror, suite, keyring=KEYRING):
    """apt-get with a private sources list, lists and cache, all under cache_dir."""
    lists = os.path.join(cache_dir, "apt-lists")
    os.makedirs(os.path.join(lists, "partial"), exist_ok=True)
    sources = os.path.join(cache_dir, "sources.list")
    with open(sources, "w") as handle:
        handle.write("deb [signed-by=%s] %s %s main\n" % (keyring, mirror.rstrip("/"), suite))
    return ["apt-get", "-qq", "-o", "Dir::Etc::sourcelist=%s" % sources, "-o", "Dir::Etc::sourceparts=/dev/null",
            "-o", "Dir::State::Lists=%s" % lists, "-o", "Dir::Cache=%s" % cache_dir, "-o", "Dir::Cache::pkgcache=",
            "-o", "Dir::Cache::srcpkgcache="]


def _checked(run, argv, cwd, what):
    rc, out, err = run(argv, cwd)
    if rc != 0:
        raise PackageFetchError("%s failed (exit %s): %s" % (what, rc, " ".join((err or out or "").split())[-500:]))
    return out


def download(packages, suite, mirror, cache_dir, run):
    """{package: .deb path}, downloading those not cached; and the list of packages downloaded now."""
    os.makedirs(cache_dir, exist_ok=True)
    missing = [p for p in packages if cached(cache_dir, p) is None]
    if missing:
        apt = apt_command(cache_dir, mirror, suite)
        _checked(run, apt + ["update"], cache_dir, "apt-get update from %s %s" % (mirror, suite))
        _checked(run, apt + ["download"] + missing, cache_dir, "apt-get download %s" % " ".join(missing))
    debs = {}
    for package in packages:
        deb = cached(cache_dir, package)
        if deb is None:
            raise PackageFetchError("apt-get download %s left no package in %s" % (package, cache_dir))
        debs[package] = deb
    return debs, missing


def unpack(debs, root, run):
    os.makedirs(root, exist_ok=True)
    for deb in debs:
        _checked(run, ["dpkg-deb", "-x", deb, root], root, "dpkg-deb -x %s" % deb)
