# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

# Ansible plugins keep their documentation above the imports.

DOCUMENTATION = r"""
name: core_assignment
short_description: Read the VOLTHA core assignment from Consul
version_added: 0.1.0
description:
  - Returns the core assignment stored in Consul KV, parsed and validated exactly as envoyd does,
    as a dict keyed by prefix with C(id), C(host) and C(port) for each core.
  - One element per key; the terms are the keys, and without terms O(key) is read.
  - An invalid stored value raises an error that names the prefix, the field and the value.
author:
  - voltha.envoy contributors (!UNKNOWN)
extends_documentation_fragment:
  - voltha.envoy.consul
options:
  _terms:
    description: Consul KV keys to read (no leading C(/)). When none are given, O(key).
    required: false
    type: list
    elements: str
  key:
    description: The key read when no terms are given.
    type: str
    default: service/voltha/data/core/assignment
  default_port:
    description: Port of stored cores that have no C(port).
    type: int
    default: 50556
  missing:
    description:
      - What a key that does not exist gives.
      - V(error) raises an error; V(empty) gives an empty dict.
    type: str
    choices: [error, empty]
    default: error
seealso:
  - module: voltha.envoy.core_assignment
"""

EXAMPLES = r"""
- name: Show the assignment on the default key of the local agent
  ansible.builtin.debug:
    msg: "{{ lookup('voltha.envoy.core_assignment') }}"

- name: Hosts of the assigned cores, from another Consul
  ansible.builtin.debug:
    msg: "{{ lookup('voltha.envoy.core_assignment', host='consul.example.net', port=8500).values()
             | map(attribute='host') | list }}"

- name: Two keys at once; a missing key gives {}
  ansible.builtin.set_fact:
    assignments: "{{ query('voltha.envoy.core_assignment', 'lab/a/assignment', 'lab/b/assignment', missing='empty') }}"
"""

RETURN = r"""
_raw:
  description:
    - One assignment per key, as a dict keyed by prefix; each core has C(id), C(host) and C(port).
    - An empty dict for a missing key with O(missing=empty).
  type: list
  elements: dict
  sample: [{"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 50556}}]
"""

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.lookup import LookupBase

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import assignment_to_dict
from ansible_collections.voltha.envoy.plugins.module_utils._assignment.store import (
    AssignmentStore,
    AssignmentStoreError,
)
from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import (
    CONSUL_ARGUMENT_SPEC,
    PY_CONSUL_IMPORT_ERROR,
    ConsulConfigError,
    settings_from_params,
)


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if PY_CONSUL_IMPORT_ERROR:
            raise AnsibleError("the voltha.envoy.core_assignment lookup needs the py-consul Python library "
                               "(pip install py-consul)")
        keys = list(terms) or [self.get_option("key")]
        params = dict((name, self.get_option(name)) for name in CONSUL_ARGUMENT_SPEC)
        default_port = self.get_option("default_port")
        missing = self.get_option("missing")
        try:
            settings = settings_from_params(params)
            kv = settings.kv()
        except ConsulConfigError as err:
            raise AnsibleError("voltha.envoy.core_assignment: %s" % to_native(err)) from err
        results = []
        for key in keys:
            try:
                store = AssignmentStore(kv, key, default_port)
                snap = store.read_valid(allow_missing=True)
            except AssignmentStoreError as err:
                raise AnsibleError("voltha.envoy.core_assignment: %s" % to_native(err)) from err
            except Exception as err:  # py-consul's and requests' errors: report any, with its type
                raise AnsibleError(
                    "voltha.envoy.core_assignment: Consul at %s://%s failed reading %s: %s: %s"
                    % (settings.scheme, settings.address, key, type(err).__name__, to_native(err))) from err
            if not snap.exists:
                if missing == "error":
                    raise AnsibleError("voltha.envoy.core_assignment: key %s does not exist in Consul at %s "
                                       "(missing='empty' gives {} instead)" % (key, settings.address))
                results.append({})
                continue
            results.append(assignment_to_dict(snap.cores))
        return results
