# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What every Docker-facing module shares: its options (doc fragment voltha.envoy.docker) and how it
turns the work's outcome into the module's result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

DOCKER_ARGUMENT_SPEC = dict(
    docker_host=dict(type="str"),
    timeout=dict(type="int", default=1800),
)


def run_docker_work(module, work, expected_errors, what, import_error, missing_message):
    """Call work(client) with a client for the module's docker_host and exit the module with its result.

    expected_errors: exception classes whose message is the whole story (an error with a ``result``
    dict adds it to the failure); anything else fails with its traceback. what names the object in
    an unexpected error; import_error is the docker SDK's ImportError (or None)."""
    from ansible_collections.voltha.envoy.plugins.module_utils.docker_images import connect

    if import_error:
        module.fail_json(msg=missing_message, exception=str(import_error))
    try:
        result = work(connect(module.params["docker_host"], module.params["timeout"]))
    except expected_errors as err:
        module.fail_json(msg=str(err), **getattr(err, "result", {}))
    except Exception as err:  # an Engine API error the SDK did not wrap
        module.fail_json(msg="%s: %s" % (what, err), exception=traceback.format_exc())
    module.exit_json(**result)
