# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Roll a new image into a running swarm service, or a plain container, one task at a time.

A swarm service (a stack's too: the Engine API does not care who made it) gets its image changed
with an update config that replaces one task at a time, start-first unless the service publishes
ports in mode host (two tasks cannot hold one host port on a node), with a rollback as the failure
action. The swarm waits for a new task's HEALTHCHECK before it counts the task as running, so a
task that never becomes healthy fails the update and the swarm rolls back. When the update has not
finished within the timeout, a rollback is asked for. A plain container is replaced by a new one
made from the same configuration: the old one is stopped and kept until the new one is healthy, and
started again if it is not.

Used by the service_replace module.
"""

import copy
import time

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError
from ansible_collections.voltha.envoy.plugins.module_utils._docker.images import image_or_none

try:
    from docker.errors import APIError, NotFound
except ImportError:  # reported by the module
    APIError = NotFound = Exception

NANOSECONDS = 10 ** 9
DONE_STATES = ("completed", "rollback_completed", "paused", "rollback_paused")


class RolloutError(VolthaEnvoyError):
    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result or {"rolled_back": False}


def publishes_host_ports(spec):
    ports = ((spec.get("EndpointSpec") or {}).get("Ports")) or []
    return any(port.get("PublishMode") == "host" for port in ports)


def image_id(client, name):
    image = image_or_none(client, name)
    return image.id if image is not None else None


def _strip_digest(name):
    # The swarm pins images as NAME:TAG@sha256:... when it can resolve them; compare names only.
    return name.split("@", 1)[0] if name else name


def service_tasks(client, service_id, desired="running"):
    return client.api.tasks(filters={"service": service_id, "desired-state": desired})


def _task_image(task):
    return _strip_digest(task["Spec"]["ContainerSpec"]["Image"])


def replace_service(client, name, image, timeout=300, order="auto", monitor=2, check_mode=False,
                    poll=0.5, clock=time.monotonic, sleep=time.sleep):
    """Roll image into swarm service name. Returns the result dict; raises RolloutError (with the
    result) when the update failed and was rolled back, or could not be started."""
    started = clock()
    try:
        service = client.services.get(name)
    except APIError as err:  # NotFound is an APIError
        if isinstance(err, NotFound):
            raise RolloutError("service %s: no such swarm service" % name) from err
        if getattr(err, "status_code", None) == 503:  # the engine answers services calls only as a swarm manager
            raise RolloutError("service %s: this Docker Engine is not a swarm manager, so it has no services "
                               "(run the task on a manager, or name a container)" % name) from err
        raise
    spec = service.attrs["Spec"]
    current = _strip_digest(spec["TaskTemplate"]["ContainerSpec"]["Image"])
    new_id = image_id(client, image)
    if new_id is None:
        raise RolloutError("service %s: image %s is not in the Docker Engine (build it, or pull it on every node)"
                           % (name, image))
    old_id = image_id(client, current)
    replicas = ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas")
    if order == "auto":
        order = "stop-first" if publishes_host_ports(spec) else "start-first"
    result = dict(changed=False, kind="service", name=name, old_image=current, new_image=image,
                  old_image_id=old_id, new_image_id=new_id, order=order, replicas=replicas,
                  tasks_replaced=0, rolled_back=False, update_state=None, seconds=0.0)
    if current == image:
        result["seconds"] = round(clock() - started, 3)
        return result
    result["changed"] = True
    if check_mode:
        result["seconds"] = round(clock() - started, 3)
        return result

    new_spec = copy.deepcopy(spec)
    new_spec["TaskTemplate"]["ContainerSpec"]["Image"] = image
    new_spec["TaskTemplate"]["ForceUpdate"] = (spec["TaskTemplate"].get("ForceUpdate") or 0)
    new_spec["UpdateConfig"] = {"Parallelism": 1, "Delay": 0, "FailureAction": "rollback",
                                "Monitor": int(monitor * NANOSECONDS), "MaxFailureRatio": 0, "Order": order}
    new_spec["RollbackConfig"] = {"Parallelism": 1, "Delay": 0, "FailureAction": "pause",
                                  "Monitor": int(monitor * NANOSECONDS), "MaxFailureRatio": 0, "Order": order}
    _update(client, service.id, service.version, new_spec)

    deadline = started + timeout
    asked_rollback = False
    while True:
        sleep(poll)
        service.reload()
        status = service.attrs.get("UpdateStatus") or {}
        state = status.get("State")
        result["update_state"] = state
        if state in DONE_STATES:
            result["update_message"] = status.get("Message")
            break
        if clock() > deadline and not asked_rollback:
            # The swarm did not finish (or fail) in time: go back to what ran before.
            _update(client, service.id, service.version, service.attrs["Spec"], rollback=True)
            asked_rollback = True
            deadline = clock() + timeout
        elif clock() > deadline:
            result["seconds"] = round(clock() - started, 3)
            raise RolloutError("service %s: neither the update nor its rollback finished in %ds (state %s)"
                               % (name, timeout, state), result)
    running = [t for t in service_tasks(client, service.id)
               if t.get("Status", {}).get("State") == "running" and _task_image(t) == image]
    result["tasks_replaced"] = len(running)
    result["seconds"] = round(clock() - started, 3)
    if state != "completed":
        result["rolled_back"] = state.startswith("rollback")
        raise RolloutError("service %s: the new tasks of %s did not become healthy in time (%s: %s); %s"
                           % (name, image, state, status.get("Message"),
                              "rolled back to %s" % current if result["rolled_back"] else "the update is paused"),
                           result)
    return result


def _update(client, service_id, version, spec, rollback=False):
    params = {"version": version}
    if rollback:
        params["rollback"] = "previous"
    url = client.api._url("/services/{0}/update", service_id)
    client.api._raise_for_status(client.api._post_json(url, data=spec, params=params))


def _health(container):
    container.reload()
    state = container.attrs.get("State") or {}
    if not state.get("Running"):
        return "exited"
    return (state.get("Health") or {}).get("Status") or "running"


# Container settings (inspect Config key -> create_container argument) carried over to the new container.
CARRIED = (("Cmd", "command"), ("Entrypoint", "entrypoint"), ("Env", "environment"), ("Labels", "labels"),
           ("User", "user"), ("WorkingDir", "working_dir"), ("Hostname", "hostname"), ("Healthcheck", "healthcheck"),
           ("StopSignal", "stop_signal"), ("ExposedPorts", "ports"))


def own_settings(config, image_config, container_id):
    """The settings the container was given itself: those equal to its old image's defaults are left out, so
    the new image's own defaults (its HEALTHCHECK, entry point, environment) apply."""
    settings = {}
    for key, argument in CARRIED:
        value = config.get(key)
        if key == "Hostname" and container_id.startswith(value or "-"):
            continue  # Docker's default host name, the container id
        if key == "Env":
            defaults = set(image_config.get("Env") or ())
            value = [item for item in value or () if item not in defaults]
        elif key == "Labels":
            defaults = image_config.get("Labels") or {}
            value = dict((k, v) for k, v in (value or {}).items() if defaults.get(k) != v)
        elif key == "ExposedPorts":
            value = list(value or ()) if value != image_config.get(key) else None
        elif value == image_config.get(key):
            continue
        if value:
            settings[argument] = value
    return settings


def replace_container(client, name, image, timeout=300, check_mode=False, poll=0.5, clock=time.monotonic,
                      sleep=time.sleep):
    """Replace plain container name by one of image with the same configuration (stop-first: a plain
    container usually holds its published ports). Health-gated by the image's HEALTHCHECK; the old
    container is started again when the new one does not become healthy within the timeout."""
    started = clock()
    try:
        old = client.containers.get(name)
    except NotFound:
        raise RolloutError("container %s: no such container" % name) from None
    if "com.docker.swarm.task.id" in (old.labels or {}):
        raise RolloutError("container %s is a task of a swarm service: replace the service" % name)
    current = old.attrs["Config"]["Image"]
    new_id = image_id(client, image)
    if new_id is None:
        raise RolloutError("container %s: image %s is not in the Docker Engine" % (name, image))
    result = dict(changed=False, kind="container", name=name, old_image=current, new_image=image,
                  old_image_id=old.image.id, new_image_id=new_id, order="stop-first", replicas=1,
                  tasks_replaced=0, rolled_back=False, update_state=None, seconds=0.0)
    if old.image.id == new_id:
        result["seconds"] = round(clock() - started, 3)
        return result
    result["changed"] = True
    if check_mode:
        return result

    config, host_config = old.attrs["Config"], old.attrs["HostConfig"]
    networks = old.attrs["NetworkSettings"].get("Networks") or {}
    backup = "%s-replaced-%d" % (name, int(time.time()))
    old.stop()
    old.rename(backup)
    new = None
    try:
        create = dict(image=image, name=name, host_config=host_config, detach=True,
                      **own_settings(config, old.image.attrs.get("Config") or {}, old.id))
        container_id = client.api.create_container(**create)["Id"]
        new = client.containers.get(container_id)
        mode = host_config.get("NetworkMode") or "default"
        for network, settings in networks.items():
            if network != mode and mode not in ("host", "none") and not mode.startswith("container:"):
                client.api.connect_container_to_network(container_id, network,
                                                        aliases=settings.get("Aliases") or None)
        new.start()
        deadline = clock() + timeout
        health = _health(new)
        while health not in ("healthy", "running") and clock() < deadline:
            if health in ("exited",):
                break
            sleep(poll)
            health = _health(new)
        if health not in ("healthy", "running"):
            raise RolloutError("container %s: the new container of %s did not become healthy in %ds (%s)"
                               % (name, image, timeout, health))
    except (RolloutError, APIError) as err:
        if new is not None:
            new.remove(force=True)
        old.rename(name)
        old.start()
        result.update(rolled_back=True, seconds=round(clock() - started, 3))
        raise RolloutError("%s; the old container was started again" % err, result) from err
    old.remove(force=True)
    result.update(tasks_replaced=1, update_state="completed", seconds=round(clock() - started, 3))
    return result
