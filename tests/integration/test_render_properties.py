"""Property: any assignment either renders a config that the real Envoy accepts, or is rejected with
an error naming what is wrong. And what renders routes to exactly the cores that were given."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import AssignmentError, parse_assignment
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.binary import find_envoy
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import Renderer
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.validate import EnvoyValidator

label = st.from_regex(r"\A[a-z0-9_]([a-z0-9_-]{0,10}[a-z0-9_])?\Z")
dns_names = st.lists(label, min_size=1, max_size=4).map(".".join).filter(lambda n: not n.split(".")[-1].isdigit())
hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    dns_names,
    st.text(max_size=40),  # mostly garbage: must be rejected, never rendered
    st.sampled_from(['1.2.3.4", "x": "y', "a\nb: c", "{{ admin_port }}", "-leading.dash", "x" * 300]),
)
ports = st.one_of(st.integers(-5, 70000), st.text(max_size=5), st.booleans(), st.none(), st.floats())
ids = st.one_of(st.text(min_size=0, max_size=30), st.integers(), st.none())


@st.composite
def entries(draw):
    entry = {"id": draw(ids), "host": draw(hosts)}
    if draw(st.booleans()):
        entry["port"] = draw(ports)
    for field in ("id", "host"):
        if draw(st.integers(0, 20)) == 0:
            del entry[field]
    return entry


valid_entries = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=30).filter(str.strip),
     "host": st.one_of(st.ip_addresses().map(str), dns_names)},
    optional={"port": st.integers(1, 65535)})
valid_assignments = st.dictionaries(st.text(min_size=1, max_size=12), valid_entries, min_size=1, max_size=6).filter(
    lambda d: len({e["id"] for e in d.values()}) == len(d))

assignments = st.one_of(
    valid_assignments,
    st.dictionaries(st.text(min_size=1, max_size=12), entries(), min_size=0, max_size=5),
    st.dictionaries(st.text(min_size=1, max_size=12), st.one_of(st.integers(), st.text(), st.lists(st.integers())),
                    max_size=2),
    st.lists(st.integers(), max_size=3),
)


@pytest.fixture(scope="module")
def validator(tmp_path_factory):
    return EnvoyValidator(find_envoy(), str(tmp_path_factory.mktemp("validate")), use_shape_cache=False)


SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(data=assignments)
def test_renders_valid_envoy_config_or_names_the_error(data, validator):
    check(data, validator)


@SETTINGS
@given(data=valid_assignments)
def test_valid_assignments_always_render_what_envoy_accepts(data, validator):
    assert check(data, validator) == "rendered"


def check(data, validator):
    raw = json.dumps(data)
    try:
        cores = parse_assignment(raw)
    except AssignmentError as err:
        event("rejected")
        message = str(err)
        assert message
        if err.field:
            assert repr(err.field) in message
        if err.prefix is not None:
            assert json.dumps(err.prefix, ensure_ascii=True)[:40] in message
        return "rejected"
    rendered = Renderer().render(cores)
    validator.validate(rendered.text)  # raises ConfigRejected if the real Envoy says no
    for cluster in rendered.config["static_resources"]["clusters"]:
        endpoints = [e["endpoint"] for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]]
        got = [(e["hostname"], e["address"]["socket_address"]["address"], e["address"]["socket_address"]["port_value"])
               for e in endpoints]
        assert got == [(c.id, c.host, c.port) for c in cores]
    event("rendered")
    return "rendered"
