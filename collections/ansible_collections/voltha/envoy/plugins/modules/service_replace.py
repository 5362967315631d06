#!/usr/bin/python
# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
module: service_replace
short_description: Roll a new image into one running swarm service or plain container, health-gated
version_added: 0.3.0
description:
  - Replaces the image of one swarm service, a stack's service included (community.docker.docker_swarm_service
    refuses those), or of one plain container, while the rest of the cluster keeps running.
  - A swarm service is updated one task at a time; start-first (the new task runs and is healthy before the old
    one stops) unless the service publishes ports in mode host, where two tasks cannot hold the port on one node
    and the order is stop-first. The swarm counts a new task as running only once the image's C(HEALTHCHECK)
    passes; a task that fails or stays unhealthy fails the update and the swarm rolls back to the old image. When
    the update has not finished within O(timeout), the module asks for the rollback itself.
  - A plain container is stopped, kept aside, and replaced by a new one with the same configuration; if the new one
    does not become healthy within O(timeout) it is removed and the old one started again.
  - The same image (by name for a service, by id for a container) changes nothing.
author:
  - voltha.envoy contributors (!UNKNOWN)
extends_documentation_fragment:
  - voltha.envoy.docker
options:
  service:
    description: The swarm service to update, for example V(voltha_vcore).
    type: str
  container:
    description: The plain container (started outside a swarm) to replace.
    type: str
  image:
    description:
      - The new image. It must be in the Docker Engine of every node that runs a task (built there or pulled from
        a registry); nothing is pulled by this module.
    type: str
    required: true
  order:
    description:
      - For a service, V(start-first), V(stop-first), or V(auto) (start-first unless ports are published in mode
        host).
    type: str
    choices: [auto, start-first, stop-first]
    default: auto
  monitor:
    description: Seconds the swarm watches each new task for a failure before it moves to the next one.
    type: int
    default: 2
  rollout_timeout:
    description: Seconds the whole replacement may take before it is rolled back.
    type: int
    default: 300
attributes:
  check_mode:
    support: full
    description: Reports whether the image would change; touches nothing.
  diff_mode:
    support: full
    description: Shows the image before and after.
notes:
  - Exactly one of O(service) and O(container) is given.
"""

EXAMPLES = r"""
- name: Roll a new core image into the running stack
  voltha.envoy.service_replace:
    service: voltha_vcore
    image: voltha-envoy/vcore:4f1c2a9e0b7d

- name: Replace a plain envoyd container
  voltha.envoy.service_replace:
    container: envoyd
    image: voltha-envoy/envoyd:latest
    rollout_timeout: 60
"""

RETURN = r"""
kind:
  description: V(service) or V(container).
  returned: always
  type: str
name:
  description: The service's or container's name.
  returned: always
  type: str
old_image:
  description: The image it ran before.
  returned: success
  type: str
  sample: voltha-envoy/vcore:b5741a77e2a6
new_image:
  description: O(image).
  returned: success
  type: str
old_image_id:
  description: Id of the old image (V(null) when the engine no longer has it).
  returned: success
  type: str
new_image_id:
  description: Id of the new image.
  returned: success
  type: str
order:
  description: The update order used.
  returned: success
  type: str
  sample: start-first
tasks_replaced:
  description: Tasks (or containers) running the new image at the end.
  returned: success
  type: int
  sample: 3
rolled_back:
  description: Whether the replacement was rolled back (the module then fails).
  returned: always
  type: bool
update_state:
  description: The swarm's final update state (V(completed), V(rollback_completed), ...).
  returned: success
  type: str
seconds:
  description: Wall time of the replacement.
  returned: success
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.voltha.envoy.plugins.module_utils._docker.module_runner import (
    DOCKER_ARGUMENT_SPEC,
    run_docker_work,
)
from ansible_collections.voltha.envoy.plugins.module_utils._docker.rollout import (
    replace_container,
    replace_service,
)


def main():
    argument_spec = dict(
        service=dict(type="str"),
        container=dict(type="str"),
        image=dict(type="str", required=True),
        order=dict(type="str", default="auto", choices=["auto", "start-first", "stop-first"]),
        monitor=dict(type="int", default=2),
        rollout_timeout=dict(type="int", default=300),
    )
    argument_spec.update(DOCKER_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_one_of=[("service", "container")], mutually_exclusive=[("service", "container")])
    params = module.params

    def work(client):
        if params["service"]:
            result = replace_service(client, params["service"], params["image"], timeout=params["rollout_timeout"],
                                     order=params["order"], monitor=params["monitor"], check_mode=module.check_mode)
        else:
            result = replace_container(client, params["container"], params["image"],
                                       timeout=params["rollout_timeout"], check_mode=module.check_mode)
        if module._diff and result["changed"]:
            result["diff"] = dict(before="image: %s\n" % result["old_image"],
                                  after="image: %s\n" % result["new_image"],
                                  before_header=result["name"], after_header=result["name"])
        return result

    run_docker_work(module, work, params["service"] or params["container"])


if __name__ == "__main__":
    main()
