# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The files Envoy reads, from a rendered bootstrap: one code path for envoyd and the envoy_config module.

layout_files() says which files hold the rendered config and what each one holds, in the order they
must be written; write_files() writes them, each atomically. The static layout is one bootstrap; the
dynamic layout splits the same bootstrap into a bootstrap whose listeners and clusters come from
``xds/lds.json`` and ``xds/cds.json``, and those two resource files, which are replaced by rename. Each
static cluster with endpoints becomes an EDS cluster whose endpoints come from a file of their own in
``xds/eds/`` (eds.py): a change of the cores rewrites only that file, and Envoy rebuilds no cluster.
Validation is validate.py's; rendering is render.py's.

Used by envoyd's applier and the envoy_config module.
"""

import hashlib
import json
import os
import tempfile
from urllib.parse import quote, unquote

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.eds import (
    eds_name,
    split_endpoints,
    with_endpoints_from,
)

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINTS_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
BOOTSTRAP_FILE, LDS_FILE, CDS_FILE = "bootstrap.json", "lds.json", "cds.json"
# Envoy re-reads both resource files on any rename into the directory it watches, so they live in a
# directory of their own: a write of another file must not cost a reload.
RESOURCE_DIR = "xds"
# The endpoints, one file per cluster (CLUSTER@GENERATION.json, the name quoted), in a directory of
# their own below it: a new cds or lds file does not make Envoy read 10,000 endpoints again.
EDS_DIR = "eds"
STATIC_FILE = "envoy.%s"  # the rendered static bootstrap, by its format: envoy.json or envoy.yaml

LAYOUTS = ("static", "dynamic")


def static_path(config_dir, fmt):
    """Where the rendered static bootstrap goes in a config directory: envoy.json or envoy.yaml."""
    return os.path.join(config_dir, STATIC_FILE % fmt)


def dynamic_files(config_dir, text, config, names=None):
    """The files of the dynamic layout besides the static bootstrap, as [(path, text)] in write order.

    Endpoints first, then clusters, so that a cluster never names endpoints Envoy cannot read yet; then
    listeners, so that a new listener never points at a cluster Envoy does not have yet; the bootstrap
    (which names the resource files by absolute path) last. ``names`` (an eds.EndpointNames, kept
    from one change to the next) says when a cluster's endpoints go under a name of their own.
    """
    config_dir = os.path.abspath(config_dir)
    resource_dir = os.path.join(config_dir, RESOURCE_DIR)
    bootstrap, lds, cds, endpoints = split_dynamic(config, resource_dir, names=names)
    files = [(path, _versioned({"resources": [dict({"@type": ENDPOINTS_TYPE}, **assignment)]}))
             for path, assignment in endpoints]
    return files + [
        (os.path.join(resource_dir, CDS_FILE), _versioned(cds)),
        (os.path.join(resource_dir, LDS_FILE), _versioned(lds)),
        (os.path.join(config_dir, BOOTSTRAP_FILE), dump_json(bootstrap)),
    ]


def eds_path(resource_dir, cluster_name, generation):
    """The file of a cluster's endpoints (quote() leaves no "/" or "@" in the name)."""
    return os.path.join(resource_dir, EDS_DIR, "%s@%d.json" % (quote(cluster_name, safe=""), generation))


def subscription_of(path):
    """Which of Envoy's subscriptions reads a file of the dynamic layout: "cds", "lds", "eds CLUSTER"
    (the endpoints of that cluster), or None (the bootstrap)."""
    name, directory = os.path.basename(path), os.path.basename(os.path.dirname(path))
    if directory == EDS_DIR and name.endswith(".json") and "@" in name:
        return "eds " + unquote(name.rsplit("@", 1)[0])
    return {CDS_FILE: "cds", LDS_FILE: "lds"}.get(name)


def endpoint_files_named(config_dir):
    """The endpoint files that the cds.json in config_dir names, and the one kept beside it names (the
    files a refusal goes back to); [] for a file that is missing or cannot be read."""
    paths = []
    cds_path = os.path.join(os.path.abspath(config_dir), RESOURCE_DIR, CDS_FILE)
    for path in (cds_path, cds_path + GOOD_SUFFIX):
        try:
            with open(path, encoding="utf-8") as handle:
                clusters = json.load(handle).get("resources") or []
        except (OSError, ValueError, AttributeError):
            continue
        for cluster in clusters:
            try:
                paths.append(cluster["eds_cluster_config"]["eds_config"]["path_config_source"]["path"])
            except (KeyError, TypeError):
                continue
    return paths


def prune_endpoint_files(config_dir, keep):
    """Remove the endpoint files in config_dir's xds/eds/ that are not in ``keep`` (paths), and their
    kept copies; returns the paths removed."""
    directory = os.path.join(os.path.abspath(config_dir), RESOURCE_DIR, EDS_DIR)
    keep = {os.path.abspath(path) for path in keep}
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        base = path[:-len(GOOD_SUFFIX)] if path.endswith(GOOD_SUFFIX) else path
        if base.endswith(".json") and base not in keep:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed


def _versioned(resources):
    """A resource file whose version_info (Envoy's cds/lds version_text) is a digest of its own
    resources: a file whose resources did not change keeps its bytes, is not rewritten, and costs
    Envoy no reload."""
    text = dump_json(resources)
    # The same bytes as dump_json(dict(version_info=..., **resources)), serialised once, not twice.
    return '{"version_info":"%s",%s' % (sha256_text(text)[:16], text[1:])


def layout_files(config_dir, text, config, fmt, layout="static", names=None):
    """Every file of a layout as [(path, text)] in write order; the static bootstrap comes first.
    ``names``: as for dynamic_files."""
    if layout not in LAYOUTS:
        raise ValueError("layout must be one of %s, got %r" % (", ".join(LAYOUTS), layout))
    files = [(static_path(os.path.abspath(config_dir), fmt), text)]
    if layout == "dynamic":
        files.extend(dynamic_files(config_dir, text, config, names))
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


GOOD_SUFFIX = ".good"


def keep_good(paths):
    """Before files are replaced: a hard link NAME.good to each one as it is (the last good files), so
    that restore_good() can put them back if Envoy refuses what replaces them."""
    for path in paths:
        good = path + GOOD_SUFFIX
        try:
            os.unlink(good)
        except FileNotFoundError:
            pass
        try:
            os.link(path, good)
        except FileNotFoundError:
            pass  # nothing written yet: nothing to go back to


def restore_good(paths):
    """Put back the files keep_good() kept, each by a rename (Envoy sees the old file again, whole).
    Returns the paths restored."""
    restored = []
    for path in paths:
        good = path + GOOD_SUFFIX
        try:
            os.replace(good, path)
        except FileNotFoundError:
            continue
        if os.path.lexists(good):
            os.unlink(good)  # a file never replaced: the link and the file were one, and rename(2) kept both
        restored.append(path)
    return restored


def sha256_text(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_atomic(path, text, mode=0o644, durable=False):
    """Write text to path through a temporary file in the same directory and a rename.

    Readers (Envoy's file watch among them) see the old file or the new one, never a partial one.
    Returns False and writes nothing when the file already holds exactly this text. durable=True
    also fsyncs the file before the rename; envoyd does not need it (it renders every file again
    from Consul when it starts) and an fsync costs milliseconds on the data path.
    """
    data = text.encode("utf-8")
    try:
        if os.path.getsize(path) == len(data):
            with open(path, "rb") as handle:
                if handle.read() == data:
                    if (os.stat(path).st_mode & 0o7777) != mode:
                        os.chmod(path, mode)
                    return False
    except OSError:
        pass
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def split_dynamic(config, resource_dir, node_id="envoyd", node_cluster="voltha", names=None):
    """Split a static bootstrap into (bootstrap, lds, cds, endpoints) for file-based dynamic config, with
    lds.json and cds.json in resource_dir; endpoints: [(path, ClusterLoadAssignment)], one file in
    resource_dir/eds/ for each static cluster with endpoints, which becomes an EDS cluster."""
    bootstrap = dict(config)
    static = dict(bootstrap.pop("static_resources", None) or {})
    listeners = static.pop("listeners", None) or []
    clusters = static.pop("clusters", None) or []
    if static:
        bootstrap["static_resources"] = static  # secrets and the like stay static
    node = dict(bootstrap.get("node") or {})
    node.setdefault("id", node_id)
    node.setdefault("cluster", node_cluster)
    bootstrap["node"] = node

    def source(path):
        return {"path_config_source": {"path": path, "watched_directory": {"path": os.path.dirname(path)}},
                "resource_api_version": "V3"}

    bootstrap["dynamic_resources"] = {"lds_config": source(os.path.join(resource_dir, LDS_FILE)),
                                      "cds_config": source(os.path.join(resource_dir, CDS_FILE))}
    lds = {"resources": [dict({"@type": LISTENER_TYPE}, **item) for item in listeners]}
    cds_resources, endpoints = [], []
    for name, cluster, assignment in split_endpoints(clusters):
        if assignment is not None:
            generation = names.generation(name, cluster, assignment) if names else 0
            service, path = eds_name(name, generation), eds_path(resource_dir, name, generation)
            cluster = with_endpoints_from(cluster, service, source(path))
            endpoints.append((path, dict(assignment, cluster_name=service)))
        cds_resources.append(dict({"@type": CLUSTER_TYPE}, **cluster))
    return bootstrap, lds, {"resources": cds_resources}, endpoints


def dump_json(data):
    """Config files envoyd writes itself are compact JSON: Envoy and Python both read it fast."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def secret_files(variables):
    """[(path, text)] of the SDS files the shipped template's TLS listener reads (none without TLS).

    Each holds one Secret naming the certificate files and the directory Envoy watches for them: a
    file renamed into that directory (how certificates are rotated) is loaded again, without a restart.
    """
    cert, key = variables.get("tls_cert_file"), variables.get("tls_key_file")
    if not cert:
        return []
    sds_dir = variables["sds_dir"]
    secrets = [{"name": "nbi_certificate", "tls_certificate": {
        "certificate_chain": {"filename": cert}, "private_key": {"filename": key},
        "watched_directory": {"path": os.path.dirname(cert)}}}]
    client_ca = variables.get("tls_client_ca_file")
    if client_ca:
        secrets.append({"name": "nbi_client_ca", "validation_context": {
            "trusted_ca": {"filename": client_ca}, "watched_directory": {"path": os.path.dirname(client_ca)}}})
    return [(os.path.join(sds_dir, secret["name"] + ".json"),
             dump_json({"resources": [dict({"@type": SECRET_TYPE}, **secret)]})) for secret in secrets]
