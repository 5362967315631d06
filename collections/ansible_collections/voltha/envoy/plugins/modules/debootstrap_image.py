#!/usr/bin/python
# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
module: debootstrap_image
short_description: Make a Debian image with debootstrap, offline from any registry
version_added: 0.2.0
description:
  - Runs C(debootstrap) for O(suite) into a temporary directory and imports the tree into the Docker Engine, so
    a base image needs a Debian mirror and nothing from a container registry.
  - The suite, variant, components, package list and O(changes) are hashed; the image is tagged
    C(NAME:<first 12 hex digits>) and labelled C(io.voltha-envoy.inputs=<digest>). When that tag exists nothing
    is run and the module reports no change, so the image is made again only when its package list changes.
  - Must run as root on a host with C(debootstrap) (the Docker Engine may be elsewhere, O(docker_host)).
author:
  - voltha.envoy contributors (!UNKNOWN)
extends_documentation_fragment:
  - voltha.envoy.docker
options:
  name:
    description: The repository of the image, for example V(voltha-envoy/debian-base).
    type: str
    required: true
  suite:
    description: The Debian suite.
    type: str
    default: bookworm
  mirror:
    description:
      - The Debian archive to fetch packages from (not an input of the digest).
      - When not set, E(DEBIAN_MIRROR), else the first archive ending in C(/debian) in the host's apt sources.
    type: str
  variant:
    description: The debootstrap variant.
    type: str
    default: minbase
  components:
    description: Archive components.
    type: list
    elements: str
    default: [main]
  packages:
    description: Packages installed beside the variant's own (C(--include)).
    type: list
    elements: str
    default: []
  changes:
    description: Dockerfile instructions applied to the imported image (C(docker import --change)).
    type: list
    elements: str
    default: ['CMD ["/bin/bash"]']
  extra_tags:
    description: Tags, besides the inputs digest, to point at the image.
    type: list
    elements: str
    default: [latest]
  workdir:
    description: Where to make the temporary root file system (default the system's temporary directory).
    type: path
attributes:
  check_mode:
    support: full
    description: Reports whether the image would be made; runs nothing.
  diff_mode:
    support: none
    description: An image has no text to compare; RV(inputs_digest) says what it was built from.
"""

EXAMPLES = r"""
- name: The offline base image the other images start from
  voltha.envoy.debootstrap_image:
    name: voltha-envoy/debian-base
    packages: [python3, python3-venv, ca-certificates]

- name: Debian's Go toolchain, for the builder image
  voltha.envoy.debootstrap_image:
    name: voltha-envoy/go-builder
    mirror: "{{ debian_mirror }}"
    packages: [golang-go, golang-golang-x-net-dev]
"""

RETURN = r"""
image:
  description: The image, C(NAME:<inputs digest tag>).
  returned: always
  type: str
  sample: voltha-envoy/debian-base:77a8ea949b75
image_id:
  description: Its id (V(null) in check mode when it would be made).
  returned: always
  type: str
size:
  description: Its size in bytes.
  returned: always
  type: int
built:
  description: Whether the image was made (would be, in check mode).
  returned: always
  type: bool
inputs_digest:
  description: SHA-256 of the inputs.
  returned: always
  type: str
tags_added:
  description: The extra tags that were (would be) moved to the image.
  returned: always
  type: list
  elements: str
seconds:
  description: Wall time of the module's work.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.voltha.envoy.plugins.module_utils._debian.archive import find_mirror
from ansible_collections.voltha.envoy.plugins.module_utils._docker.images import (
    ensure_debootstrap,
)
from ansible_collections.voltha.envoy.plugins.module_utils._docker.module_runner import (
    DOCKER_ARGUMENT_SPEC,
    run_docker_work,
)


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        suite=dict(type="str", default="bookworm"),
        mirror=dict(type="str"),
        variant=dict(type="str", default="minbase"),
        components=dict(type="list", elements="str", default=["main"]),
        packages=dict(type="list", elements="str", default=[]),
        changes=dict(type="list", elements="str", default=['CMD ["/bin/bash"]']),
        extra_tags=dict(type="list", elements="str", default=["latest"]),
        workdir=dict(type="path"),
    )
    argument_spec.update(DOCKER_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    def work(client):
        return ensure_debootstrap(client, params["name"], params["suite"], params["mirror"] or find_mirror(),
                                  params["packages"], variant=params["variant"], components=params["components"],
                                  changes=params["changes"], extra_tags=params["extra_tags"],
                                  check_mode=module.check_mode, workdir=params["workdir"])

    run_docker_work(module, work, params["name"])


if __name__ == "__main__":
    main()
