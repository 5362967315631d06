# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Build images through the Docker Engine API, only when their inputs changed.

ensure_built() builds a Dockerfile with a context assembled from listed sources (the legacy
builder: there is no BuildKit here); ensure_debootstrap() makes an image from debootstrap piped
into an import, with nothing pulled. Both tag the image NAME:<input digest> and NAME:latest, label
it with the digest, and do nothing when NAME:<digest> is already there.

Used by the image_build, debootstrap_image and service_replace modules (through module_runner and
rollout).
"""

import os
import shutil
import subprocess
import tempfile
import time

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError
from ansible_collections.voltha.envoy.plugins.module_utils._docker.inputs import (
    LABEL_INPUTS,
    build_inputs,
    context_entries,
    context_tar,
    debootstrap_inputs,
    digest_of,
    referenced_images,
    tag_of,
)

try:
    import docker
    from docker.errors import DockerException, ImageNotFound

    DOCKER_IMPORT_ERROR = None
except ImportError as import_error:  # reported by the modules with missing_required_lib
    docker = None
    DockerException = ImageNotFound = Exception
    DOCKER_IMPORT_ERROR = import_error


class ImageError(VolthaEnvoyError):
    pass


def connect(docker_host=None, timeout=300):
    """A docker SDK client for docker_host (default: DOCKER_HOST or the local socket)."""
    try:
        if docker_host:
            return docker.DockerClient(base_url=docker_host, timeout=timeout)
        return docker.from_env(timeout=timeout)
    except DockerException as err:
        raise ImageError(
            "cannot reach the Docker Engine at %s: %s" % (docker_host or "the default socket", err)) from err


def split_name(name):
    """'repo/name:tag' -> ('repo/name', 'tag' or None); a registry port is not a tag."""
    repository, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, None
    return repository, tag


def image_or_none(client, name):
    try:
        return client.images.get(name)
    except ImageNotFound:
        return None


def _result(client, repository, digest, built, seconds, tags):
    image = image_or_none(client, "%s:%s" % (repository, tag_of(digest)))
    return dict(
        changed=built or bool(tags),
        built=built,
        image="%s:%s" % (repository, tag_of(digest)),
        image_id=image.id if image else None,
        size=image.attrs.get("Size") if image else None,
        inputs_digest=digest,
        tags_added=tags,
        seconds=round(seconds, 3),
    )


def _tag_extra(client, repository, digest, extra_tags, check_mode):
    """Point the extra tags (latest, ...) at NAME:<digest>; the tags that moved."""
    wanted = image_or_none(client, "%s:%s" % (repository, tag_of(digest)))
    moved = []
    for tag in extra_tags:
        current = image_or_none(client, "%s:%s" % (repository, tag))
        if wanted is None or current is None or current.id != wanted.id:
            moved.append(tag)
            if not check_mode and wanted is not None:
                wanted.tag(repository, tag)
    return moved


def ensure_built(client, name, dockerfile, sources, buildargs=None, labels=None, extra_tags=("latest",),
                 check_mode=False, timeout=1800):
    """Build NAME from dockerfile (its text) and sources unless NAME:<digest> exists."""
    started = time.monotonic()
    repository, dummy = split_name(name)
    buildargs, labels = dict(buildargs or {}), dict(labels or {})
    entries = context_entries(sources)
    image_ids = {}
    for ref in referenced_images(dockerfile, buildargs):
        image = image_or_none(client, ref)
        if image is None:
            raise ImageError("%s: the Dockerfile starts from image %r, which the Docker Engine does not have "
                             "(nothing is pulled: build it first)" % (name, ref))
        image_ids[ref] = image.id
    digest = digest_of(build_inputs(dockerfile, entries, buildargs, labels, image_ids))
    if image_or_none(client, "%s:%s" % (repository, tag_of(digest))) is not None or check_mode:
        built = image_or_none(client, "%s:%s" % (repository, tag_of(digest))) is None
        tags = _tag_extra(client, repository, digest, extra_tags, check_mode)
        return _result(client, repository, digest, built, time.monotonic() - started, tags)
    labels[LABEL_INPUTS] = digest
    with tempfile.TemporaryFile() as context:
        context_tar(dockerfile, entries, context)
        log = []
        try:
            tag = "%s:%s" % (repository, tag_of(digest))
            for chunk in client.api.build(fileobj=context, custom_context=True, tag=tag, buildargs=buildargs,
                                          labels=labels, rm=True, forcerm=True, pull=False, decode=True,
                                          timeout=timeout):
                if "error" in chunk:
                    tail = "".join(log[-20:])
                    raise ImageError("%s: the build failed: %s\n%s" % (name, chunk["error"].strip(), tail))
                log.append(chunk.get("stream", ""))
        except DockerException as err:
            raise ImageError("%s: the build failed: %s" % (name, err)) from err
    tags = _tag_extra(client, repository, digest, extra_tags, check_mode)
    return _result(client, repository, digest, True, time.monotonic() - started, tags)


def ensure_debootstrap(client, name, suite, mirror, packages=(), variant="minbase", components=("main",),
                       changes=('CMD ["/bin/bash"]',), extra_tags=("latest",), check_mode=False,
                       debootstrap="debootstrap", workdir=None):
    """Make NAME from `debootstrap --variant=VARIANT --include=PACKAGES SUITE ROOT MIRROR` piped into an
    image import, unless NAME:<digest> exists. Needs root and the debootstrap command."""
    started = time.monotonic()
    repository, dummy = split_name(name)
    digest = digest_of(debootstrap_inputs(suite, variant, packages, components, changes))
    exists = image_or_none(client, "%s:%s" % (repository, tag_of(digest))) is not None
    if exists or check_mode:
        tags = _tag_extra(client, repository, digest, extra_tags, check_mode)
        return _result(client, repository, digest, not exists, time.monotonic() - started, tags)
    if shutil.which(debootstrap) is None:
        raise ImageError("%s: the %s command is not installed (Debian package debootstrap)" % (name, debootstrap))
    root = tempfile.mkdtemp(prefix="voltha-envoy-rootfs-", dir=workdir)
    try:
        command = [debootstrap, "--variant=%s" % variant, "--components=%s" % ",".join(components)]
        if packages:
            command.append("--include=%s" % ",".join(sorted(set(packages))))
        process = subprocess.run(command + [suite, root, mirror], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, check=False)
        if process.returncode != 0:
            raise ImageError("%s: debootstrap %s from %s failed (exit %d):\n%s"
                             % (name, suite, mirror, process.returncode, process.stdout[-3000:]))
        # Package caches and lists only make the image larger.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            path = os.path.join(root, leftover)
            for entry in os.listdir(path) if os.path.isdir(path) else ():
                if entry.endswith((".deb", "_Packages", "_InRelease", "_Release")):
                    os.remove(os.path.join(path, entry))
        changes = list(changes) + ["LABEL %s=%s" % (LABEL_INPUTS, digest)]
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        try:
            client.api.import_image_from_stream(tar.stdout, repository=repository, tag=tag_of(digest), changes=changes)
        except DockerException as err:
            raise ImageError("%s: the import failed: %s" % (name, err)) from err
        finally:
            if tar.wait() != 0:
                raise ImageError("%s: tar of the root file system failed" % name)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    tags = _tag_extra(client, repository, digest, extra_tags, check_mode)
    return _result(client, repository, digest, True, time.monotonic() - started, tags)
