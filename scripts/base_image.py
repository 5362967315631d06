"""Build the offline Debian base image that molecule instances (and the lab's images) start from.

debootstrap (minbase plus PACKAGES) piped into `docker import`; nothing is pulled from a registry.
The tag is a digest of the suite and the package list, so the image is built again only when they
change. Run as root (debootstrap needs it); needs the Docker Engine and the debootstrap command.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup import debian_mirror  # noqa: E402 (the same mirror setup uses)

NAME = "voltha-envoy/debian-base"
SUITE = "bookworm"
PACKAGES = ["python3", "python3-venv", "python3-packaging", "ca-certificates", "procps"]


def tag() -> str:
    return hashlib.sha256(f"{SUITE} {' '.join(sorted(PACKAGES))}".encode()).hexdigest()[:12]


def main() -> int:
    client = docker.from_env()
    wanted = f"{NAME}:{tag()}"
    try:
        client.images.get(wanted)
        print(f"base image: {wanted} is up to date")
        return 0
    except docker.errors.ImageNotFound:
        pass
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="voltha-envoy-rootfs-") as root:
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, root,
                        debian_mirror()], check=True, stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        client.api.import_image_from_stream(tar.stdout, repository=NAME, tag=tag(), changes=['CMD ["/bin/bash"]'])
        if tar.wait() != 0:
            raise SystemExit("base image: tar of the root file system failed")
    image = client.images.get(wanted)
    image.tag(NAME, "latest")
    print(f"base image: built {wanted} ({image.short_id}, {image.attrs['Size'] / 2**20:.0f} MiB) "
          f"in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
