"""The pure parts of rolling replacements: which settings a replaced container keeps, which order a service gets."""

from ansible_collections.voltha.envoy.plugins.module_utils._docker.rollout import own_settings, publishes_host_ports

IMAGE = {"Cmd": ["--host", "0.0.0.0"], "Entrypoint": ["/opt/vcore/bin/python", "-m", "voltha_core_sim"],
         "Env": ["PATH=/usr/bin"], "Labels": {"io.voltha-envoy.inputs": "abc"}, "User": "vcore",
         "Healthcheck": {"Test": ["CMD", "/usr/local/bin/health-probe", "grpc", "127.0.0.1:50556"]},
         "ExposedPorts": {"50556/tcp": {}}}


def test_only_what_the_container_was_given_is_carried_over():
    config = dict(IMAGE, Cmd=["--core-id", "c1"], Env=["PATH=/usr/bin", "VOLTHA_CORE_ID=c1"],
                  Labels={"io.voltha-envoy.inputs": "abc", "team": "olt"}, Hostname="0123456789ab")
    assert own_settings(config, IMAGE, "0123456789abcdef") == {
        "command": ["--core-id", "c1"], "environment": ["VOLTHA_CORE_ID=c1"], "labels": {"team": "olt"}}


def test_a_chosen_host_name_and_health_check_are_kept():
    check = {"Test": ["CMD", "true"]}
    settings = own_settings(dict(IMAGE, Hostname="core-a", Healthcheck=check), IMAGE, "0123456789abcdef")
    assert settings == {"hostname": "core-a", "healthcheck": check}


def test_order_follows_host_published_ports():
    assert publishes_host_ports({"EndpointSpec": {"Ports": [{"PublishMode": "host", "TargetPort": 50555}]}})
    assert not publishes_host_ports({"EndpointSpec": {"Ports": [{"PublishMode": "ingress", "TargetPort": 1}]}})
    assert not publishes_host_ports({})
