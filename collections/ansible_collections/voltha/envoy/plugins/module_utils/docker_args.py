# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The Docker Engine options every Docker-facing module takes (doc fragment voltha.envoy.docker)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCKER_ARGUMENT_SPEC = dict(
    docker_host=dict(type="str"),
    timeout=dict(type="int", default=1800),
)
