"""The health probe (roles/images/files/health-probe): its Go tests, run by Debian's Go in the images
role's builder image, and the static binary the images role ships FROM scratch."""

from __future__ import annotations

import subprocess

from tests.support.paths import IMAGE_FILES

PROBE = "voltha-envoy/health-probe:latest"
BUILDER = "voltha-envoy/go-builder:latest"


def test_the_go_tests_pass_and_the_sources_are_gofmt_clean(lab_images):
    # GOPATH mode against Debian's packaged Go libraries, as the image build compiles it; no network.
    script = 'test -z "$(gofmt -l .)" || { gofmt -l .; exit 3; }; go vet . && go test -count=1 .'
    run = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp:exec",
         "-v", f"{IMAGE_FILES / 'health-probe'}:/src:ro", "-w", "/src",
         "-e", "CGO_ENABLED=0", "-e", "GO111MODULE=off", "-e", "GOPATH=/usr/share/gocode",
         "-e", "GOCACHE=/tmp/go-cache",
         BUILDER, "sh", "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "ok" in run.stdout


def test_the_probe_is_static_and_probes(lab_images):
    """FROM scratch, and its modes answer with the exit codes the image HEALTHCHECKs rely on."""
    image = lab_images.images.get(PROBE)
    assert image.attrs["Size"] < 20 * 2**20
    closed = subprocess.run(["docker", "run", "--rm", "--network", "none", PROBE, "tcp", "127.0.0.1:9", "-timeout",
                             "1s"], capture_output=True, text=True, timeout=60)
    assert closed.returncode == 1 and "127.0.0.1:9" in closed.stderr
    usage = subprocess.run(["docker", "run", "--rm", "--network", "none", PROBE, "nonsense"], capture_output=True,
                           text=True, timeout=60)
    assert usage.returncode == 2
