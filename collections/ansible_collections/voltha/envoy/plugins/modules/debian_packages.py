#!/usr/bin/python
# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
module: debian_packages
short_description: Fetch Debian packages and unpack them into a directory, installing nothing
version_added: 0.2.0
description:
  - Downloads O(packages) of one O(suite) from a Debian O(mirror) with C(apt-get download) and a private sources
    list (the host's apt configuration is neither read for packages nor changed), keeps the C(.deb) files in
    O(cache_dir), and unpacks them into O(dest) with C(dpkg-deb -x).
  - This is how the images role gets Consul (Debian 11 packages it) and Prometheus on a builder host that has no
    container registry, only a Debian mirror.
  - A package already in O(cache_dir) is not downloaded again; when O(creates) exists the packages are not
    unpacked again and nothing changes.
  - Needs C(apt-get), C(dpkg-deb) and Debian's archive keyring on the host that runs it.
author:
  - voltha.envoy contributors (!UNKNOWN)
options:
  packages:
    description: Package names.
    type: list
    elements: str
    required: true
  suite:
    description: The Debian suite to take them from, for example V(bullseye).
    type: str
    default: bookworm
  mirror:
    description:
      - The Debian archive, the URL that ends in C(/debian).
      - When not set, E(DEBIAN_MIRROR), else the first archive ending in C(/debian) in the host's apt sources.
    type: str
  cache_dir:
    description: Where the downloaded C(.deb) files and the private apt lists are kept.
    type: path
    required: true
  dest:
    description: The directory the packages are unpacked into (their C(usr/...) trees).
    type: path
    required: true
  creates:
    description: A path under O(dest) that exists once the packages are unpacked, for example C(usr/bin/consul).
    type: str
attributes:
  check_mode:
    support: full
    description: Reports what would be downloaded and unpacked; runs nothing.
  diff_mode:
    support: none
    description: Binary packages have no text to compare; RV(downloaded) and RV(debs) say what changed.
"""

EXAMPLES = r"""
- name: Debian's consul binary, into a directory of its own
  voltha.envoy.debian_packages:
    packages: [consul]
    suite: bullseye
    cache_dir: ~/.cache/voltha.envoy/debian/consul
    dest: ~/.cache/voltha.envoy/consul-root
    creates: usr/bin/consul

- name: From a local mirror of an air-gapped lab
  voltha.envoy.debian_packages:
    packages: [prometheus]
    mirror: http://mirror.lab.example/debian
    cache_dir: /srv/cache/prometheus
    dest: /srv/prometheus-root
    creates: usr/bin/prometheus
"""

RETURN = r"""
debs:
  description: The C(.deb) file of each package.
  returned: always
  type: dict
  sample: {consul: /root/.cache/voltha.envoy/debian/consul/consul_1.8.7+dfsg1-3_amd64.deb}
downloaded:
  description: The packages downloaded now (would be, in check mode).
  returned: always
  type: list
  elements: str
unpacked:
  description: Whether the packages were (would be) unpacked into O(dest).
  returned: always
  type: bool
dest:
  description: The directory they are unpacked into.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError
from ansible_collections.voltha.envoy.plugins.module_utils._debian.archive import find_mirror
from ansible_collections.voltha.envoy.plugins.module_utils._debian.packages import cached, download, unpack


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="list", elements="str", required=True),
            suite=dict(type="str", default="bookworm"),
            mirror=dict(type="str"),
            cache_dir=dict(type="path", required=True),
            dest=dict(type="path", required=True),
            creates=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    dest = params["dest"]
    done = bool(params["creates"]) and os.path.exists(os.path.join(dest, params["creates"]))

    def run(argv, cwd):
        return module.run_command(argv, cwd=cwd)

    try:
        if module.check_mode:
            missing = [p for p in params["packages"] if cached(params["cache_dir"], p) is None]
            debs = dict((p, cached(params["cache_dir"], p)) for p in params["packages"])
        else:
            mirror = params["mirror"] or find_mirror()
            debs, missing = download(params["packages"], params["suite"], mirror, params["cache_dir"], run)
            if not done or missing:
                unpack([debs[p] for p in params["packages"]], dest, run)
    except VolthaEnvoyError as err:
        module.fail_json(msg="debian_packages %s: %s" % (" ".join(params["packages"]), err))
    unpacked = not done or bool(missing)
    module.exit_json(changed=unpacked, debs=debs, downloaded=missing, unpacked=unpacked, dest=dest)


if __name__ == "__main__":
    main()
