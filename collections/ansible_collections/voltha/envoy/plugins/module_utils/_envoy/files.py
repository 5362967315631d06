# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The files Envoy reads, from a rendered bootstrap: one code path for envoyd and the envoy_config module.

layout_files() says which files hold the rendered config and what each one holds, in the order they
must be written; write_files() writes them, each atomically. The static layout is one bootstrap; the
dynamic layout splits the same bootstrap into a bootstrap whose listeners and clusters come from
``xds/lds.json`` and ``xds/cds.json``, and those two resource files, which are replaced by rename.
Validation is validate.py's; rendering is render.py's.

Used by envoyd's applier and the envoy_config module.
"""

import hashlib
import json
import os
import tempfile

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
BOOTSTRAP_FILE, LDS_FILE, CDS_FILE = "bootstrap.json", "lds.json", "cds.json"
# Envoy re-reads both resource files on any rename into the directory it watches, so they live in a
# directory of their own: a write of another file must not cost a reload.
RESOURCE_DIR = "xds"
STATIC_FILE = "envoy.%s"  # the rendered static bootstrap, by its format: envoy.json or envoy.yaml

LAYOUTS = ("static", "dynamic")


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
    text = dump_json(resources)
    # The same bytes as dump_json(dict(version_info=..., **resources)), serialised once, not twice.
    return '{"version_info":"%s",%s' % (sha256_text(text)[:16], text[1:])


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


def split_dynamic(config, resource_dir, node_id="envoyd", node_cluster="voltha"):
    """Split a static bootstrap into (bootstrap, lds, cds) dicts for file-based dynamic config,
    with lds.json and cds.json in resource_dir."""
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

    def source(name):
        return {"path_config_source": {"path": os.path.join(resource_dir, name),
                                       "watched_directory": {"path": resource_dir}},
                "resource_api_version": "V3"}

    bootstrap["dynamic_resources"] = {"lds_config": source(LDS_FILE), "cds_config": source(CDS_FILE)}
    lds = {"resources": [dict({"@type": LISTENER_TYPE}, **item) for item in listeners]}
    cds = {"resources": [dict({"@type": CLUSTER_TYPE}, **item) for item in clusters]}
    return bootstrap, lds, cds


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
