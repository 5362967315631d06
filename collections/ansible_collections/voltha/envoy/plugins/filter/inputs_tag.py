# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
name: inputs_tag
short_description: The tag an image of this collection is named by (its inputs digest)
version_added: 0.1.0
author: voltha.envoy contributors
description:
  - Every image that M(voltha.envoy.image_build) and M(voltha.envoy.debootstrap_image) make is tagged
    C(NAME:<tag>) and labelled C(io.voltha-envoy.inputs) with the digest of its inputs; the tag is the
    start of that digest. This filter gives the tag of an image as M(community.docker.docker_image_info)
    describes it, the one rule the images and stack roles name images by.
options:
  _input:
    description: One image as M(community.docker.docker_image_info) returns it (an element of its C(images)).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Find the core image's current build
  community.docker.docker_image_info:
    name: voltha-envoy/vcore:latest
  register: vcore

- name: Name it by its inputs tag
  ansible.builtin.debug:
    msg: "voltha-envoy/vcore:{{ vcore.images[0] | voltha.envoy.inputs_tag }}"
"""

RETURN = r"""
_value:
  description: The image's inputs tag; empty when the image has no C(io.voltha-envoy.inputs) label.
  type: str
"""

from ansible_collections.voltha.envoy.plugins.module_utils._docker.inputs import LABEL_INPUTS, tag_of


def inputs_tag(image):
    labels = ((image or {}).get("Config") or {}).get("Labels") or {}
    return tag_of(labels.get(LABEL_INPUTS) or "")


class FilterModule:
    def filters(self):
        return {"inputs_tag": inputs_tag}
