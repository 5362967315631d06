"""The shipped template rendered for given hosts: the configs the files and validate tests work on."""

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import parse_assignment
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import Renderer
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.validate import config_shape

RENDERER = Renderer()


def render(*hosts, ports=None, ids=None, variables=None):
    """Render the shipped template for cores on these hosts."""
    data = {}
    for i, host in enumerate(hosts):
        data["p%03d" % i] = {"id": (ids[i] if ids else "core-%d" % i), "host": host,
                             "port": (ports[i] if ports else 50556)}
    renderer = Renderer(variables=variables) if variables else RENDERER
    return renderer.render(parse_assignment(data))


def shape_of(*hosts, **kwargs):
    return config_shape(render(*hosts, **kwargs).config)


def first_endpoint(config, cluster=0):
    lb = config["static_resources"]["clusters"][cluster]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    return lb[0]["endpoint"]
