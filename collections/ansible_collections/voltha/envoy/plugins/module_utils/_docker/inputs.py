# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What goes into an image, as a digest: the image is rebuilt only when that digest changes.

A build's inputs are the Dockerfile, the files of its context (names, modes and bytes), the build
arguments, the labels and the ids of the images it starts from (FROM and COPY --from). An image
made by debootstrap has the suite, the variant, the package list and its image config as inputs.
The digest names the image's tag and is kept in the label LABEL_INPUTS.

Used by _docker/images and the image_build module.
"""

import hashlib
import io
import json
import os
import re
import stat
import tarfile

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError

LABEL_INPUTS = "io.voltha-envoy.inputs"
TAG_LENGTH = 12
# Never part of a context: byte code and editor or VCS litter changes nothing in an image.
EXCLUDED_NAMES = ("__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache")
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".swp")


class ContextError(VolthaEnvoyError, ValueError):
    pass


def digest_of(document):
    """sha256 hex of a JSON-able document, in a canonical form."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tag_of(digest):
    return digest[:TAG_LENGTH]


def _excluded(name):
    return name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES)


def context_entries(sources):
    """[{'src': path, 'dest': name in the context}, ...] -> sorted [(dest, path)] of regular files.

    A directory source brings its whole tree under dest. Raises ContextError naming the source
    that does not exist or a dest that leaves the context."""
    entries = {}
    for index, source in enumerate(sources):
        src, dest = source.get("src"), source.get("dest")
        if not src or not os.path.exists(src):
            raise ContextError("sources[%d].src %r does not exist" % (index, src))
        dest = os.path.normpath(dest or os.path.basename(os.path.normpath(src)))
        if dest.startswith(("..", "/")) or dest == ".":
            raise ContextError("sources[%d].dest %r must be a path inside the build context"
                               % (index, source.get("dest")))
        if os.path.isdir(src):
            for root, dirs, files in os.walk(src):
                dirs[:] = sorted(d for d in dirs if not _excluded(d))
                for name in sorted(files):
                    if not _excluded(name):
                        path = os.path.join(root, name)
                        entries[os.path.join(dest, os.path.relpath(path, src))] = path
        else:
            entries[dest] = src
    if "Dockerfile" in entries:
        raise ContextError("sources must not bring a file named Dockerfile: the dockerfile option is the Dockerfile")
    return sorted(entries.items())


def _file_digest(path):
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _mode(path):
    # Only the execute bit matters to a build; umask differences between checkouts do not.
    return 0o755 if os.stat(path).st_mode & stat.S_IXUSR else 0o644


def _substitute(text, args):
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), ""), text)


def referenced_images(dockerfile, buildargs):
    """The image names a Dockerfile starts from or copies from, build arguments substituted; stage
    names and scratch are left out."""
    args, stages, images = {}, set(), []
    for raw in dockerfile.splitlines():
        words = raw.strip().split()
        if not words or words[0].startswith("#"):
            continue
        keyword = words[0].upper()
        if keyword == "ARG" and len(words) > 1:
            name, dummy, default = words[1].partition("=")
            args[name] = buildargs.get(name, default)
        elif keyword == "FROM" and len(words) > 1:
            name = _substitute([w for w in words[1:] if not w.startswith("--")][0], args)
            if name not in stages and name != "scratch":
                images.append(name)
            if len(words) > 3 and words[-2].upper() == "AS":
                stages.add(words[-1])
        elif keyword == "COPY":
            for word in words[1:]:
                if word.startswith("--from="):
                    name = _substitute(word[len("--from="):], args)
                    if name not in stages and not name.isdigit():
                        images.append(name)
    return images


def build_inputs(dockerfile, entries, buildargs, labels, image_ids):
    """The document whose digest names a built image."""
    return {
        "kind": "build",
        "dockerfile": dockerfile,
        "files": [[dest, _mode(path), _file_digest(path)] for dest, path in entries],
        "buildargs": buildargs,
        "labels": labels,
        "images": image_ids,
    }


def debootstrap_inputs(suite, variant, packages, components, changes):
    """The document whose digest names an image made by debootstrap (the mirror is not an input:
    every mirror serves the same packages)."""
    return {
        "kind": "debootstrap",
        "suite": suite,
        "variant": variant,
        "packages": sorted(set(packages)),
        "components": list(components),
        "changes": list(changes),
    }


def context_tar(dockerfile, entries, fileobj):
    """Write the build context (the Dockerfile first, then the files) as a tar stream to fileobj."""
    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        data = dockerfile.encode("utf-8")
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
        for dest, path in entries:
            info = tar.gettarinfo(path, arcname=dest)
            info.mode, info.uid, info.gid, info.uname, info.gname, info.mtime = _mode(path), 0, 0, "", "", 0
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    fileobj.seek(0)
    return fileobj
