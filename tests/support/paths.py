"""Where the repository keeps things the tests need."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("STATE_DIR", REPO / ".state"))
COLLECTION = REPO / "collections" / "ansible_collections" / "voltha" / "envoy"
ENVOYD_PACKAGE_DIR = COLLECTION / "roles" / "envoyd" / "files"  # the envoyd package (python -m envoyd)
IMAGE_FILES = COLLECTION / "roles" / "images" / "files"  # the core simulator and the health probe


def source_env() -> dict:
    """The environment for a child process that runs this checkout's code (envoyd, the core simulator)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "collections"), str(ENVOYD_PACKAGE_DIR), str(IMAGE_FILES)])
    return env


def consul_binary() -> str:
    """The Consul that `make setup` chose (it links it at .state/bin/consul)."""
    path = os.environ.get("CONSUL_BIN") or str(STATE / "bin" / "consul")
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"no Consul at {path}: run `make setup` first")
    return path
