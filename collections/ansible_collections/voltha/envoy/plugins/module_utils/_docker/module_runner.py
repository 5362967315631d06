# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What every Docker-facing module shares: its options (doc fragment voltha.envoy.docker) and how it
turns the work's outcome into the module's result.

Used by the image_build, debootstrap_image and service_replace modules.
"""

import traceback

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError

DOCKER_ARGUMENT_SPEC = dict(
    docker_host=dict(type="str"),
    timeout=dict(type="int", default=1800),
)


def run_docker_work(module, work, what):
    """Call work(client) with a client for the module's docker_host and exit the module with its result.

    The collection's own errors (VolthaEnvoyError) say the whole story, and one with a ``result``
    dict adds it to the failure; anything else fails with its traceback, what naming the object."""
    from ansible.module_utils.basic import missing_required_lib

    from ansible_collections.voltha.envoy.plugins.module_utils._docker.images import DOCKER_IMPORT_ERROR, connect

    if DOCKER_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("docker"), exception=str(DOCKER_IMPORT_ERROR))
    try:
        result = work(connect(module.params["docker_host"], module.params["timeout"]))
    except VolthaEnvoyError as err:
        module.fail_json(msg=str(err), **getattr(err, "result", {}))
    except Exception as err:  # an Engine API error the SDK did not wrap
        module.fail_json(msg="%s: %s" % (what, err), exception=traceback.format_exc())
    module.exit_json(**result)
