#!/usr/bin/python
# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

# Ansible plugins keep their documentation above the imports.

DOCUMENTATION = r"""
module: core_assignment
short_description: Set, change, read or delete the VOLTHA core assignment in Consul
version_added: 0.1.0
description:
  - >-
    Manages the core assignment that envoyd watches, a JSON object in Consul KV keyed by prefix (a
    VOLTHA core store) with the core serving it, for example
    C({"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 50556}}).
  - Validation is exactly envoyd's (hosts must be IP addresses or DNS names, ports 1-65535; a core
    id under several prefixes must name one host and port each time); a bad core fails the task
    with a message naming the prefix, the field and the value, so bad data never reaches Consul.
  - The value is written as canonical JSON (sorted keys, no spaces). A stored value that parses to
    the wanted assignment is left alone, even when its text is formatted differently.
  - Every write is a Consul check-and-set on the key's ModifyIndex. When another writer changes the
    key between the read and the write, the module reads again, recomputes and retries, so no
    concurrent change is lost.
author:
  - voltha.envoy contributors (!UNKNOWN)
extends_documentation_fragment:
  - voltha.envoy.consul
options:
  key:
    description:
      - Consul KV key that holds the assignment (no leading C(/)).
    type: str
    default: service/voltha/data/core/assignment
  state:
    description:
      - V(present) sets the whole assignment with O(cores), or changes it with O(add) and O(remove).
      - V(absent) deletes the key.
      - V(read) changes nothing and returns the current assignment.
    type: str
    choices: [present, absent, read]
    default: present
  cores:
    description:
      - The whole assignment; the key ends up holding exactly these cores.
      - Either a list of dicts with C(prefix), C(id), C(host) and optionally C(port), or a dict keyed
        by prefix whose values have C(id), C(host) and optionally C(port).
      - A stored value that is not a valid assignment is replaced (the result says
        RV(replaced_invalid=true)).
      - Mutually exclusive with O(add) and O(remove). Only with O(state=present).
    type: raw
  add:
    description:
      - Cores to add, or to update when their prefix is already assigned; the same shapes as O(cores).
      - The other cores are kept. Fails when the stored value is not a valid assignment (there is
        nothing sound to merge into).
      - Only with O(state=present); may be combined with O(remove).
    type: raw
  remove:
    description:
      - Prefixes of cores to remove; prefixes that are not assigned are ignored.
      - Removing the last core fails, because an empty assignment is invalid; use O(state=absent).
      - Only with O(state=present); may be combined with O(add) (not with the same prefix).
    type: list
    elements: str
  default_port:
    description:
      - Port of the cores given without C(port), and of stored cores without C(port) when the
        stored value is compared with the wanted one.
    type: int
    default: 50556
  allowed_networks:
    description:
      - Networks (CIDRs) the cores' hosts must be in, as envoyd's C(--allowed-networks); a core with a host
        outside them (or a DNS name, which cannot be checked) fails the task naming the prefix, the host and
        the networks. With O(state=read) a stored value naming such a host is invalid.
      - Empty (the default) allows every address.
    type: list
    elements: str
    default: []
  retries:
    description:
      - How many times to read again and retry when another writer changed the key between the read
        and the check-and-set write. After that the task fails.
    type: int
    default: 3
  ignore_invalid:
    description:
      - With O(state=read), return RV(valid=false) and the parse error in RV(error) instead of failing
        when the stored value is not a valid assignment.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - The assignment before and after, as indented JSON.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: all
    details:
      - The module talks to Consul over HTTP; it runs wherever py-consul can reach the agent.
  action_group:
    description: Use C(group/voltha.envoy.consul) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - voltha.envoy.consul
seealso:
  - plugin: voltha.envoy.core_assignment
    plugin_type: lookup
notes:
  - Ports given as strings of digits (as templates may produce) are taken as integers; fields other
    than C(prefix), C(id), C(host) and C(port) are refused, because they would be dropped.
"""

EXAMPLES = r"""
- name: Assign three cores (exactly these)
  voltha.envoy.core_assignment:
    host: consul.example.net
    cores:
      - {prefix: vcore1, id: core-1, host: 10.0.1.5}
      - {prefix: vcore2, id: core-2, host: 10.0.1.6}
      - {prefix: vcore3, id: core-3, host: voltha-core-3.voltha.svc, port: 50557}

- name: The same, as a dict keyed by prefix
  voltha.envoy.core_assignment:
    cores:
      vcore1: {id: core-1, host: 10.0.1.5}
      vcore2: {id: core-2, host: 10.0.1.6, port: 50556}

- name: Swap one core and retire another; the others stay
  voltha.envoy.core_assignment:
    add:
      - {prefix: vcore2, id: core-2b, host: 10.0.1.16}
    remove: [vcore3]

- name: Read the assignment
  voltha.envoy.core_assignment:
    state: read
  register: assignment

- name: Delete the key
  voltha.envoy.core_assignment:
    key: service/voltha/data/core/assignment
    state: absent

- name: Set the connection once for every task of the group
  module_defaults:
    group/voltha.envoy.consul:
      host: 127.0.0.1
      port: 8500
      token: "{{ consul_token }}"
  block:
    - name: Add a core
      voltha.envoy.core_assignment:
        add: {vcore4: {id: core-4, host: 10.0.1.8}}
"""

RETURN = r"""
key:
  description: The Consul key.
  returned: always
  type: str
  sample: service/voltha/data/core/assignment
assignment:
  description:
    - The assignment after the task (the current one for O(state=read)), keyed by prefix.
    - Empty when the key does not exist (or, with O(ignore_invalid), holds an invalid value).
  returned: success
  type: dict
  sample: {"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 50556}}
cores:
  description: The same cores as a list sorted by prefix.
  returned: success
  type: list
  elements: dict
  sample: [{"prefix": "vcore1", "id": "core-1", "host": "10.0.1.5", "port": 50556}]
index:
  description:
    - The key's Consul ModifyIndex after the write, or as read when nothing was written.
    - Consul's index of the read when the key does not exist. Usable as the index of a blocking query.
  returned: success
  type: int
  sample: 1234
conflicts:
  description: How many check-and-set writes lost to another writer and were retried.
  returned: success
  type: int
  sample: 0
exists:
  description: Whether the key exists after the task.
  returned: success
  type: bool
  sample: true
valid:
  description: Whether the stored value is a valid assignment (only false with O(state=read) and O(ignore_invalid)).
  returned: success
  type: bool
  sample: true
error:
  description: Why the stored value is invalid.
  returned: when RV(valid=false)
  type: str
  sample: "core \"vcore1\": field 'port' must be an integer from 1 to 65535, got 0"
replaced_invalid:
  description: Whether a stored value that was not a valid assignment was (or, in check mode, would be) replaced.
  returned: when O(state=present) with O(cores)
  type: bool
  sample: false
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import (
    DEFAULT_CORE_PORT,
    DEFAULT_KEY,
    AssignmentError,
    assignment_to_dict,
    parse_networks,
)
from ansible_collections.voltha.envoy.plugins.module_utils._assignment.store import (
    DEFAULT_RETRIES,
    AssignmentConflictError,
    AssignmentStore,
    AssignmentStoreError,
    cores_to_list,
    normalize_cores,
    normalize_prefixes,
    pretty,
)
from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import (
    CONSUL_ARGUMENT_SPEC,
    PY_CONSUL_IMPORT_ERROR,
    ConsulConfigError,
    settings_from_params,
)


def argument_spec():
    spec = dict(CONSUL_ARGUMENT_SPEC)
    spec.update(
        key=dict(type="str", default=DEFAULT_KEY, no_log=False),
        state=dict(type="str", default="present", choices=["present", "absent", "read"]),
        cores=dict(type="raw"),
        add=dict(type="raw"),
        remove=dict(type="list", elements="str"),
        default_port=dict(type="int", default=DEFAULT_CORE_PORT),
        allowed_networks=dict(type="list", elements="str", default=[]),
        retries=dict(type="int", default=DEFAULT_RETRIES),
        ignore_invalid=dict(type="bool", default=False),
    )
    return spec


def check_params(params):
    """Refuse options that do not go together; return the error message, or None."""
    state = params["state"]
    given = [name for name in ("cores", "add", "remove") if params.get(name) is not None]
    if state != "present" and given:
        return "%s only go(es) with state=present, not state=%s" % (", ".join(given), state)
    if state == "present" and not given:
        return "state=present needs cores (the whole assignment), or add and/or remove"
    if not 1 <= params["default_port"] <= 65535:
        return "default_port must be from 1 to 65535, got %d" % params["default_port"]
    if params["retries"] < 0:
        return "retries must be 0 or more, got %d" % params["retries"]
    return None


def consul_kv(params):
    """The py-consul KV endpoint for the task's connection options."""
    return settings_from_params(params).kv()


def describe(cores, exists=True):
    cores = cores or ()
    return dict(assignment=assignment_to_dict(cores), cores=cores_to_list(cores), exists=exists)


def run(module, params):
    """The task's result (a dict for exit_json); raises AssignmentError and AssignmentStoreError to fail."""
    state = params["state"]
    # Checks the key and the networks before connecting.
    store = AssignmentStore(None, params["key"], params["default_port"], parse_networks(params["allowed_networks"]))
    cores = add = remove = None
    if state == "present":
        if params.get("cores") is not None:
            cores = normalize_cores(params["cores"], "cores")
            store.parse(cores)  # a bad core fails before Consul is contacted
        add = normalize_cores(params["add"], "add") if params.get("add") is not None else {}
        remove = normalize_prefixes(params["remove"]) if params.get("remove") is not None else []
        store.check_change(add, remove)
    store.kv = consul_kv(params)
    result = dict(key=store.key, conflicts=0, valid=True)
    if state == "read":
        snap = store.read()
        result.update(changed=False, index=snap.modify_index or snap.index, **describe(snap.cores, snap.exists))
        if snap.error is not None:
            if not params["ignore_invalid"]:
                raise store.invalid(snap)
            result.update(valid=False, error=str(snap.error))
        return result
    check_mode = module.check_mode
    retries = params["retries"]
    if state == "absent":
        outcome = store.delete(retries, check_mode)
    elif cores is not None:
        outcome = store.set(cores, retries, check_mode)
        result["replaced_invalid"] = bool(outcome.changed and outcome.before.error is not None)
    else:
        outcome = store.change(add, remove, retries, check_mode)
    after_exists = outcome.after is not None or (not outcome.changed and outcome.before.exists)
    result.update(changed=outcome.changed, index=outcome.index, conflicts=outcome.conflicts,
                  **describe(outcome.after, after_exists))
    if module._diff:
        before = outcome.before
        result["diff"] = dict(before_header=store.key, after_header=store.key,
                              before=pretty(before.cores) if before.error is None else before.raw,
                              after=pretty(outcome.after))
    return result


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("cores", "add"), ("cores", "remove")],
        supports_check_mode=True,
    )
    if PY_CONSUL_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("py-consul"), exception=PY_CONSUL_IMPORT_ERROR)
    params = module.params
    problem = check_params(params)
    if problem:
        module.fail_json(msg=problem, key=params["key"])
    try:
        result = run(module, params)
    except AssignmentError as err:
        module.fail_json(msg=str(err), key=params["key"], prefix=err.prefix, field=err.field)
    except AssignmentConflictError as err:
        module.fail_json(msg=str(err), key=params["key"], conflicts=err.conflicts)
    except AssignmentStoreError as err:
        module.fail_json(msg=str(err), key=params["key"])
    except ConsulConfigError as err:
        module.fail_json(msg=str(err), key=params["key"])
    except Exception as err:  # py-consul's and requests' errors: report any, with its type
        settings = settings_from_params(params)
        module.fail_json(msg="Consul at %s://%s failed: %s: %s" % (settings.scheme, settings.address,
                                                                   type(err).__name__, err),
                         key=params["key"], exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
