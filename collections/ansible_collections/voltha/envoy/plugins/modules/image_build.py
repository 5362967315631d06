#!/usr/bin/python
# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
module: image_build
short_description: Build a Docker image from listed sources, only when its inputs changed
version_added: 0.2.0
description:
  - Builds an image through the Docker Engine API with the classic builder (no BuildKit needed), from a
    Dockerfile given as text and a build context assembled from O(sources), so a context is exactly the files
    listed and nothing of the working tree leaks in.
  - The inputs (the Dockerfile, each context file's name, execute bit and bytes, O(buildargs), O(labels) and the
    ids of the images the Dockerfile starts from or copies from) are hashed; the image is tagged
    C(NAME:<first 12 hex digits>) and labelled C(io.voltha-envoy.inputs=<digest>). When that tag exists nothing
    is built and the module reports no change.
  - Nothing is pulled. An image named in C(FROM) or C(COPY --from) must already be in the Docker Engine; the
    module fails naming it otherwise.
  - O(extra_tags) (V(latest) by default) are pointed at the image; moving one counts as a change.
author:
  - voltha.envoy contributors (!UNKNOWN)
extends_documentation_fragment:
  - voltha.envoy.docker
options:
  name:
    description:
      - The repository of the image, for example V(voltha-envoy/vcore). A tag given here is ignored; the tag is
        the inputs digest.
    type: str
    required: true
  dockerfile:
    description:
      - The Dockerfile, as text (use P(ansible.builtin.template#lookup) or P(ansible.builtin.file#lookup)).
    type: str
    required: true
  sources:
    description:
      - Files and directories that make up the build context, each copied to O(sources[].dest).
      - Directories bring their whole tree, without C(__pycache__), C(.git) and C(*.pyc).
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: A file or directory on the host the module runs on.
        type: path
        required: true
      dest:
        description: Its path inside the build context (default the base name of O(sources[].src)).
        type: str
  buildargs:
    description: Build arguments (C(ARG) values); part of the inputs.
    type: dict
    default: {}
  labels:
    description: Labels of the image; part of the inputs.
    type: dict
    default: {}
  extra_tags:
    description: Tags, besides the inputs digest, to point at the image.
    type: list
    elements: str
    default: [latest]
attributes:
  check_mode:
    support: full
    description: Reports whether the image would be built and which tags would move; builds nothing.
  diff_mode:
    support: none
    description: An image has no text to compare; RV(inputs_digest) says what it was built from.
"""

EXAMPLES = r"""
- name: Build the core simulator image
  voltha.envoy.image_build:
    name: voltha-envoy/vcore
    dockerfile: "{{ lookup('ansible.builtin.template', 'vcore.Dockerfile.j2') }}"
    buildargs:
      BASE_IMAGE: voltha-envoy/debian-base:latest
    sources:
      - src: "{{ repo }}/src/voltha_core_sim"
        dest: src/voltha_core_sim
      - src: "{{ wheelhouse }}"
        dest: wheels

- name: A static Go binary FROM scratch, compiled in the builder image
  voltha.envoy.image_build:
    name: voltha-envoy/health-probe
    dockerfile: "{{ lookup('ansible.builtin.file', 'go-static.Dockerfile') }}"
    buildargs:
      BUILDER_IMAGE: voltha-envoy/go-builder:latest
      PROGRAM: health-probe
    sources:
      - src: "{{ repo }}/go/health-probe"
        dest: src
"""

RETURN = r"""
image:
  description: The image, C(NAME:<inputs digest tag>).
  returned: always
  type: str
  sample: voltha-envoy/vcore:4f1c2a9e0b7d
image_id:
  description: Its id (V(null) in check mode when it would be built).
  returned: always
  type: str
  sample: sha256:0e5a8f6b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f
size:
  description: Its size in bytes as the Docker Engine reports it.
  returned: always
  type: int
  sample: 312456789
built:
  description: Whether the image was built (would be, in check mode).
  returned: always
  type: bool
inputs_digest:
  description: SHA-256 of the inputs; its first 12 digits are the tag.
  returned: always
  type: str
tags_added:
  description: The extra tags that were (would be) moved to the image.
  returned: always
  type: list
  elements: str
  sample: [latest]
seconds:
  description: Wall time of the module's work.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.voltha.envoy.plugins.module_utils._docker.images import (
    ensure_built,
)
from ansible_collections.voltha.envoy.plugins.module_utils._docker.module_runner import (
    DOCKER_ARGUMENT_SPEC,
    run_docker_work,
)


def stringify(values):
    """Build arguments and labels are strings to the Engine API, whatever YAML made of them."""
    return dict((str(key), str(value)) for key, value in values.items())


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        dockerfile=dict(type="str", required=True),
        sources=dict(type="list", elements="dict", default=[],
                     options=dict(src=dict(type="path", required=True), dest=dict(type="str"))),
        buildargs=dict(type="dict", default={}),
        labels=dict(type="dict", default={}),
        extra_tags=dict(type="list", elements="str", default=["latest"]),
    )
    argument_spec.update(DOCKER_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    def work(client):
        return ensure_built(client, params["name"], params["dockerfile"], params["sources"],
                            buildargs=stringify(params["buildargs"]), labels=stringify(params["labels"]),
                            extra_tags=params["extra_tags"], check_mode=module.check_mode, timeout=params["timeout"])

    run_docker_work(module, work, params["name"])


if __name__ == "__main__":
    main()
