# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""From an assignment value to the files Envoy reads: one code path for envoyd and the envoy_config module.

render_assignment() parses and renders; layout_files() says which files hold the rendered config
(the static bootstrap, and for the dynamic layout the resource files and their bootstrap) and what
each one holds, in the order they must be written; write_files() writes them. Validation is
EnvoyValidator's (envoy_config.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.voltha.envoy.plugins.module_utils.assignment import (
    DEFAULT_KEY,
    AssignmentError,
    parse_assignment,
)
from ansible_collections.voltha.envoy.plugins.module_utils.envoy_config import (
    BOOTSTRAP_FILE,
    CDS_FILE,
    LDS_FILE,
    RESOURCE_DIR,
    STATIC_FILE,
    dump_json,
    sha256_text,
    split_dynamic,
    write_atomic,
)

LAYOUTS = ("static", "dynamic")


def render_assignment(renderer, value, key=DEFAULT_KEY):
    """An assignment value (bytes or text from Consul, or decoded data; None: the key does not exist)
    -> (cores, Rendered). Raises AssignmentError or RenderError."""
    if value is None:
        raise AssignmentError("assignment key %s does not exist" % key)
    cores = parse_assignment(value, default_port=renderer.variables["core_port"])
    return cores, renderer.render(cores)


def static_path(config_dir, fmt):
    """Where the rendered static bootstrap goes in a config directory: envoy.json or envoy.yaml."""
    return os.path.join(config_dir, STATIC_FILE % fmt)


def dynamic_files(config_dir, text, config):
    """The files of the dynamic layout besides the static bootstrap, as [(path, text)] in write order.

    Clusters first, so that a new listener never points at a cluster Envoy does not have yet; the
    bootstrap (which names the resource files by absolute path) last.
    """
    config_dir = os.path.abspath(config_dir)
    resource_dir = os.path.join(config_dir, RESOURCE_DIR)
    bootstrap, lds, cds = split_dynamic(config, resource_dir)
    return [
        (os.path.join(resource_dir, CDS_FILE), _versioned(cds)),
        (os.path.join(resource_dir, LDS_FILE), _versioned(lds)),
        (os.path.join(config_dir, BOOTSTRAP_FILE), dump_json(bootstrap)),
    ]


def _versioned(resources):
    """A resource file whose version_info (Envoy's cds/lds version_text) is a digest of its own
    resources: a file whose resources did not change keeps its bytes, is not rewritten, and costs
    Envoy no reload."""
    return dump_json(dict(version_info=sha256_text(dump_json(resources))[:16], **resources))


def layout_files(config_dir, text, config, fmt, layout="static"):
    """Every file of a layout as [(path, text)] in write order; the static bootstrap comes first."""
    if layout not in LAYOUTS:
        raise ValueError("layout must be one of %s, got %r" % (", ".join(LAYOUTS), layout))
    files = [(static_path(os.path.abspath(config_dir), fmt), text)]
    if layout == "dynamic":
        files.extend(dynamic_files(config_dir, text, config))
    return files


def write_files(files, mode=0o644):
    """Write [(path, text)] in order with write_atomic, creating missing directories.

    Returns the paths whose content changed.
    """
    changed = []
    for path, text in files:
        directory = os.path.dirname(path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory)
        if write_atomic(path, text, mode=mode):
            changed.append(path)
    return changed
