"""The real engines answer: Consul KV, Envoy from a static v3 config, the Docker Engine."""

from __future__ import annotations

import io
import tarfile
import urllib.request
import uuid

import docker.errors
import pytest


def test_consul_kv_put_get(consul_agent):
    client = consul_agent.client()
    key = f"test/smoke/{uuid.uuid4()}"
    assert client.kv.put(key, '{"hello": "consul"}')
    index, item = client.kv.get(key)
    assert int(index) > 0
    assert item["Value"] == b'{"hello": "consul"}'
    client.kv.delete(key)
    assert client.kv.get(key)[1] is None


def direct_response_bootstrap(body: str) -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": [{
            "name": "smoke",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                             ".HttpConnectionManager",
                    "stat_prefix": "smoke",
                    "route_config": {"virtual_hosts": [{
                        "name": "all", "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"},
                                    "direct_response": {"status": 200, "body": {"inline_string": body}}}],
                    }]},
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                    }],
                },
            }]}],
        }]},
    }


def test_envoy_answers_from_static_v3_config(start_envoy):
    proxy = start_envoy(direct_response_bootstrap("hello from envoy"))
    port = proxy.listener_port("smoke")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/anything", timeout=5) as resp:
        assert resp.status == 200
        assert resp.read() == b"hello from envoy"
    assert proxy.admin("/server_info")


def test_docker_engine_builds_from_scratch(docker_client):
    """Nothing can be pulled here: an image FROM scratch proves the Engine builds."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY hello.txt /\nLABEL org.voltha.envoy.test=smoke\n"),
                           ("hello.txt", b"hello\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    tag = f"voltha-envoy-smoke:{uuid.uuid4().hex[:12]}"
    image, _ = docker_client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    try:
        assert image.labels["org.voltha.envoy.test"] == "smoke"
    finally:
        docker_client.images.remove(image.id, force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)
