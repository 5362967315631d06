# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

class ModuleDocFragment:
    # How to reach the Docker Engine; shared by every module that talks to it.
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker Engine API to talk to, for example V(unix:///var/run/docker.sock) or V(tcp://10.0.0.5:2376).
      - When not set, E(DOCKER_HOST), else the local socket (the docker SDK's C(from_env)).
    type: str
  timeout:
    description:
      - Seconds to wait for one Docker Engine API call (a whole build counts as one).
    type: int
    default: 1800
requirements:
  - docker (the Python SDK for the Docker Engine API)
"""
