"""Unit tests for the renderer (render.py): typed variables, JSON-quoted output, no injection."""

import json
import re

import pytest
import yaml

from ansible_collections.voltha.envoy.plugins.module_utils._assignment import model
from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import (
    AssignmentError,
    Core,
    parse_assignment,
)
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.files import layout_files, secret_files, sha256_text
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import (
    DEFAULT_VARIABLES,
    EndpointList,
    Renderer,
    RenderError,
    _json_scalar,
    build,
    merge_variables,
    paced_health_checks,
    panic_threshold,
    parse_variables,
    renderer_for,
)
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.validate import config_shape

LONG = "y" * 10000

HOSTILE_IDS = [
    '"', "'", '\\"', "\\", "a\nb", "a\r\nb", "a\rb", "key: value", "- item", "{a: b}", "[1, 2]",
    '", "evil": "x', "---\nfoo: bar", "...", "{{ 7*7 }}", "{% for x in y %}{% endfor %}", "{# c #}",
    "{{ cores }}", "#comment", "&a *a", "!!python/object/apply:os.system ['id']", "null", "true", "123", "1e3",
    "~", "@type", "a\tb", "é", "😀", "\x00", "a\x01\x1fb", "a\x7fb", "a\x85b", "a\u2028b", "a\u2029b",
    "\ufeffa", "a\x9fb", "a\ufffeb", " padded ", LONG, '"}]\n  evil: 1\n#', "hostname: other\n",
    "\u2028 a \u2029",
]


# A hostname key (JSON or YAML style) and the one JSON string scalar after it, on the same line.
HOSTNAME = re.compile(r'"?hostname"?[ \t]*:[ \t]*("(?:[^"\\\n]|\\.)*")')


def cores_with_id(core_id):
    return (Core("p", core_id, "10.0.0.1", 50556),)


def endpoints(config, cluster=0):
    cluster = config["static_resources"]["clusters"][cluster]
    return [e["endpoint"] for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]]


def shape(data):
    """The structure of data without its string and number leaves."""
    if isinstance(data, dict):
        return {k: shape(v) for k, v in data.items()}
    if isinstance(data, list):
        return [shape(v) for v in data]
    return type(data).__name__


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


# ------------------------------------------------------------------ the shipped template

def test_default_render(renderer):
    cores = parse_assignment({"b": {"id": "core-b", "host": "10.0.0.2", "port": 7},
                              "a": {"id": "core-a", "host": "10.0.0.1"}})
    rendered = renderer.render(cores)
    text, config = rendered.text, rendered.config
    assert yaml.safe_load(text) == config  # JSON or YAML, it is YAML
    assert config["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8001}
    listener = config["static_resources"]["listeners"][0]
    assert listener["name"] == "voltha_nbi"
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 50555}
    clusters = config["static_resources"]["clusters"]
    # One core cluster: each core is health-checked and connected to once.
    assert [c["name"] for c in clusters] == ["voltha-grpc"]
    assert {c["type"] for c in clusters} == {"STATIC"}
    assert endpoints(config, 0) == [
        {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 50556}}, "hostname": "core-a"},
        {"address": {"socket_address": {"address": "10.0.0.2", "port_value": 7}}, "hostname": "core-b"},
    ]
    routes = listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert [r["match"].get("prefix") or r["match"]["safe_regex"]["regex"] for r in routes] == (
        DEFAULT_VARIABLES["read_methods"] + DEFAULT_VARIABLES["round_robin_methods"] + ["/voltha."])
    assert [r["route"]["cluster"] for r in routes] == ["voltha-grpc"] * 4


READ_PATTERN = re.compile(DEFAULT_VARIABLES["read_methods"][0])


@pytest.mark.parametrize("path,read", [
    ("/voltha.VolthaService/GetVoltha", True),
    ("/voltha.VolthaService/GetDevice", True),
    ("/voltha.VolthaService/ListDevices", True),
    ("/voltha.VolthaService/ListDeviceTypes", True),
    ("/voltha.VolthaGlobalService/ListAdapters", True),
    ("/voltha.VolthaService/CreateDevice", False),
    ("/voltha.VolthaService/EnableDevice", False),
    ("/voltha.VolthaService/DeleteDevice", False),
    ("/voltha.VolthaService/ReceiveChangeEvents", False),  # a stream: no per-try timeout
    ("/voltha.VolthaService/GetDevice/extra", False),
    ("/other.Service/GetThing", False),
])
def test_the_default_reads_are_the_nbi_get_and_list_calls(path, read):
    """Envoy's safe_regex matches the whole path, as fullmatch does."""
    assert bool(READ_PATTERN.fullmatch(path)) is read


def routes_of(config):
    listener = config["static_resources"]["listeners"][0]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]


def test_reads_are_retried_elsewhere_and_writes_only_before_they_reach_a_core(renderer):
    config = renderer.render(cores_with_id("c")).config
    read, create = routes_of(config)[0], routes_of(config)[1]
    assert read["route"]["retry_policy"]["retry_on"] == "reset,connect-failure,refused-stream,unavailable"
    assert read["route"]["retry_policy"]["per_try_timeout"] == "0.5s"
    assert "retry_policy" not in create["route"]  # the virtual host's: only calls that never reached a core
    virtual_host = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"]["virtual_hosts"][0]
    assert virtual_host["retry_policy"]["retry_on"] == "connect-failure,refused-stream,reset-before-request"


def test_envoy_watches_the_cores_itself(renderer):
    for cluster in renderer.render(cores_with_id("c")).config["static_resources"]["clusters"]:
        http2 = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"][
            "explicit_http_config"]["http2_protocol_options"]
        assert http2 == {"connection_keepalive": {"interval": "0.1s", "timeout": "1s"}}
        [check] = cluster["health_checks"]
        assert check["grpc_health_check"] == {"service_name": ""} and check["interval"] == "0.2s"
        assert cluster["outlier_detection"]["consecutive_local_origin_failure"] == 2
        assert cluster["outlier_detection"]["max_ejection_percent"] == 50
        assert cluster["circuit_breakers"]["thresholds"][0]["retry_budget"] == {
            "budget_percent": {"value": 20}, "min_retry_concurrency": 100}
        # Panic mode only when no core passes; a change of a core's health reaches Envoy's workers at once.
        assert cluster["common_lb_config"] == {"healthy_panic_threshold": {"value": 1}, "update_merge_window": "0s"}


def many_cores(count):
    return parse_assignment({"c%05d" % i: {"id": "c%05d" % i, "host": "10.0.%d.%d" % (i >> 8, i & 255)}
                             for i in range(count)})


@pytest.mark.parametrize("count,interval", [(1, "0.2s"), (400, "0.2s"), (401, "0.5s"), (1000, "0.5s"),
                                            (1001, "1s"), (4000, "2s"), (10000, "5s"), (10001, "10s")])
def test_health_checks_stay_within_their_rate(count, interval):
    [check] = Renderer().render(many_cores(count)).config["static_resources"]["clusters"][0]["health_checks"]
    assert check["interval"] == check["no_traffic_interval"] == interval
    # Paced: each new core's first check comes within a fifth of the interval, not all at once.
    assert check.get("initial_jitter") == (None if interval == "0.2s" else "%gs" % (float(interval[:-1]) / 5))


def test_health_check_pacing_follows_the_variables():
    assert paced_health_checks(merge_variables({"health_check_max_rate": 0}), 10 ** 6) == {
        "health_check_interval": "0.2s", "health_check_initial_jitter": ""}
    assert paced_health_checks(merge_variables({"health_check_interval": "1s", "health_check_max_rate": 100}),
                               101) == {"health_check_interval": "2s", "health_check_initial_jitter": "0.4s"}
    assert paced_health_checks(merge_variables({"health_check_max_rate": 1}), 3) == {
        "health_check_interval": "5s", "health_check_initial_jitter": "1s"}
    assert paced_health_checks(merge_variables({"health_check_interval": ""}), 10 ** 6) == {
        "health_check_interval": "", "health_check_initial_jitter": ""}
    # Fixed point however long (Envoy refuses "1e+06s"); the first checks spread over 2 s at most.
    assert paced_health_checks(merge_variables({"health_check_max_rate": 1}), 10 ** 6) == {
        "health_check_interval": "1000000s", "health_check_initial_jitter": "2s"}
    assert paced_health_checks(merge_variables({"health_check_max_rate": 2000}), 40001) == {
        "health_check_interval": "50s", "health_check_initial_jitter": "2s"}
    assert paced_health_checks(merge_variables({"health_check_interval": "0.001s", "health_check_max_rate": 10 ** 6}),
                               1001) == {"health_check_interval": "0.002s", "health_check_initial_jitter": ""}


def test_panic_threshold_can_be_envoys_own():
    config = Renderer(variables={"healthy_panic_threshold": 50, "lb_update_merge_window": ""}).render(
        cores_with_id("c")).config
    for cluster in config["static_resources"]["clusters"]:
        assert cluster["common_lb_config"] == {"healthy_panic_threshold": {"value": 50}}


def test_merge_window_takes_any_duration():
    config = Renderer(variables={"lb_update_merge_window": "0.5s"}).render(cores_with_id("c")).config
    for cluster in config["static_resources"]["clusters"]:
        assert cluster["common_lb_config"]["update_merge_window"] == "0.5s"


def test_each_means_turns_off_with_an_empty_value():
    off = {"keepalive_interval": "", "health_check_interval": "", "outlier_consecutive_failures": 0,
           "retry_budget_percent": 0, "read_methods": "", "read_per_try_timeout": ""}
    config = Renderer(variables=off).render(cores_with_id("c")).config
    for cluster in config["static_resources"]["clusters"]:
        assert not {"health_checks", "outlier_detection", "circuit_breakers"} & set(cluster)
        assert cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"][
            "explicit_http_config"]["http2_protocol_options"] == {}
    assert [r["match"].get("prefix") for r in routes_of(config)] == DEFAULT_VARIABLES["round_robin_methods"] + [
        "/voltha."]
    kept = Renderer(variables={"read_per_try_timeout": "0s"}).render(cores_with_id("c")).config
    assert "per_try_timeout" not in routes_of(kept)[0]["route"]["retry_policy"]


@pytest.mark.parametrize("name,value,message", [
    ("keepalive_interval", "100 ms", "template variable keepalive_interval must be a duration such as 250ms, 30s, "
                                     "1m30s or 30 (seconds), got '100 ms' (empty turns it off)"),
    ("health_check_timeout", -5, "template variable health_check_timeout must not be negative, got -5"),
    ("health_check_unhealthy_threshold", 0, "health_check_unhealthy_threshold must be an integer from 1 to 100"),
    ("outlier_max_ejection_percent", "half", "outlier_max_ejection_percent must be an integer from 0 to 100"),
    ("retry_budget_percent", True, "retry_budget_percent must be an integer from 0 to 100, got true"),
    ("healthy_panic_threshold", 101, "healthy_panic_threshold must be auto or an integer from 0 to 100, got 101"),
    ("healthy_panic_threshold", "never", 'healthy_panic_threshold must be auto or an integer from 0 to 100, '
                                         'got "never"'),
    ("health_check_max_rate", -1, "health_check_max_rate must be an integer from 0 to 1000000, got -1"),
    ("lb_update_merge_window", "soon", "lb_update_merge_window must be a duration such as 250ms, 30s, 1m30s or 30 "
                                       "(seconds), got 'soon' (empty leaves Envoy's default)"),
    ("read_methods", ["(Get"], 'read_methods: "(Get" is not a regular expression'),
    ("keepalive_timeout", "", "keepalive_timeout must be set when keepalive_interval is"),
    ("health_check_timeout", "0.0s", "health_check_timeout must be set when health_check_interval is"),
    ("outlier_base_ejection_time", "", "outlier_base_ejection_time must be set when outlier_consecutive_failures"),
])
def test_bad_watch_variables_are_named(name, value, message):
    with pytest.raises(RenderError, match=re.escape(message)):
        Renderer(variables={name: value})


def test_dns_host_makes_strict_dns(renderer):
    cores = parse_assignment({"a": {"id": "a", "host": "10.0.0.1"}, "b": {"id": "b", "host": "core.example"}})
    config = renderer.render(cores).config
    assert {c["type"] for c in config["static_resources"]["clusters"]} == {"STRICT_DNS"}
    v6 = renderer.render(parse_assignment({"a": {"id": "a", "host": "::1"}})).config
    assert {c["type"] for c in v6["static_resources"]["clusters"]} == {"STATIC"}


def test_the_endpoints_in_the_text_are_the_endpoints_in_the_config(renderer):
    rendered = renderer.render(many_cores(3))
    assert json.loads(rendered.text) == rendered.config
    [cluster] = rendered.config["static_resources"]["clusters"]
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert not isinstance(endpoints, EndpointList)  # a plain list, as YAML writers know
    assert [e["endpoint"]["hostname"] for e in endpoints] == ["c00000", "c00001", "c00002"]
    assert EndpointList.token not in rendered.text
    # A template may write them twice, count them, or take some: each is what the list says.
    text = ('{"a": {{ lb_endpoints }}, "b": {{ lb_endpoints }}, "n": {{ lb_endpoints | length }}, '
            '"first": {{ lb_endpoints[:1] }}, "yaml": false}')
    custom = Renderer(text).render(many_cores(2))
    assert json.loads(custom.text) == custom.config
    assert custom.config["a"] == custom.config["b"] == endpoints[:2] and custom.config["n"] == 2
    assert custom.config["first"] == endpoints[:1]
    yaml_text = "a: {{ lb_endpoints }}\nb: [{{ lb_endpoints | length }}]\n"
    in_yaml = Renderer(yaml_text).render(many_cores(2))
    assert in_yaml.format == "yaml" and yaml.safe_load(in_yaml.text) == in_yaml.config
    assert in_yaml.config == {"a": endpoints[:2], "b": [2]}


def test_the_endpoints_are_written_as_json_scalar_writes_them():
    """Endpoints of plain text are formatted directly, the others through _json_scalar: the same bytes."""
    cores = [Core("p%d" % i, core_id, host, port) for i, (core_id, host, port) in enumerate(
        [(core_id, "10.0.0.1", 50556) for core_id in HOSTILE_IDS]
        + [("c", "h.example", 1), ("c", "::1", 65535), ("c", 'a"b', 5), ("c", "a\\b", 5)])]
    endpoints = EndpointList(cores)
    assert endpoints.json() == _json_scalar(list(endpoints))
    assert json.loads(endpoints.json()) == list(endpoints)


def test_equal_data_renders_equal_bytes(renderer):
    one = parse_assignment('{"a": {"id": "x", "host": "10.0.0.1"}, "b": {"id": "y", "host": "10.0.0.2"}}')
    two = parse_assignment('{"b": {"host": "10.0.0.2", "id": "y"}, "a": {"host": "10.0.0.1", "id": "x"}}')
    assert renderer.render(one).text == renderer.render(two).text


# ------------------------------------------------------------------ no injection

@pytest.mark.parametrize("core_id", HOSTILE_IDS, ids=lambda h: repr(h)[:40])
def test_hostile_id_is_one_json_scalar_and_reads_back_equal(renderer, core_id):
    benign = renderer.render(cores_with_id("core-0"))
    rendered = renderer.render(cores_with_id(core_id))
    text, config = rendered.text, rendered.config
    # The id is written as one double-quoted JSON string, once (one core cluster), and nowhere else.
    scalars = HOSTNAME.findall(text)
    assert len(scalars) == 1
    assert json.loads(scalars[0]) == core_id
    assert text.count("\n") == benign.text.count("\n")  # no line added
    # And YAML reads back exactly the id, with nothing added anywhere in the config.
    assert [e["hostname"] for e in endpoints(config, 0)] == [core_id]
    assert shape(config) == shape(benign.config)
    assert yaml.safe_load(text) == config


def test_jinja_in_an_id_is_not_evaluated(renderer):
    config = renderer.render(cores_with_id("{{ 7*7 }}")).config
    assert endpoints(config)[0]["hostname"] == "{{ 7*7 }}"
    assert "49" not in json.dumps(endpoints(config))


def test_hostile_variable_is_quoted_too():
    evil = 'x"\n      evil: 1\n{{ 7*7 }}'
    rendered = Renderer(variables={"listener_name": evil, "access_log_path": "- a\n- b"}).render(cores_with_id("c"))
    listener = rendered.config["static_resources"]["listeners"][0]
    assert listener["name"] == evil
    assert "evil" not in listener
    assert shape(rendered.config) == shape(Renderer().render(cores_with_id("c")).config)


def test_user_template_variables_arrive_as_strings():
    variables = parse_variables(["x=1", "n=true"])
    renderer = Renderer("a: {{ x }}\nb: {{ n }}\nc: {{ cores | length }}\n", variables=variables)
    rendered = renderer.render(cores_with_id("c"))
    assert rendered.text == 'a: "1"\nb: "true"\nc: 1\n'
    assert rendered.config == {"a": "1", "b": "true", "c": 1}


def test_core_fields_in_user_template():
    template = "c: [{% for c in cores %}{{ [c.prefix, c.id, c.host, c.port, c.kind] }}{% endfor %}]\n"
    config = Renderer(template).render((Core("p", "i", "h.example", 5),)).config
    assert config == {"c": [["p", "i", "h.example", 5, "dns"]]}


def test_a_core_serving_several_stores_is_one_endpoint(renderer):
    cores = parse_assignment({"0001": {"id": "a", "host": "10.0.0.1"}, "0002": {"id": "b", "host": "10.0.0.2"},
                              "0003": {"id": "a", "host": "10.0.0.1"}})
    config = renderer.render(cores).config
    assert [e["hostname"] for e in endpoints(config)] == ["a", "b"]
    template = "c: [{% for c in cores %}{% if not loop.first %},{% endif %}{{ [c.id, c.prefixes] }}{% endfor %}]\n"
    assert Renderer(template).render(cores).config == {"c": [["a", ["0001", "0003"]], ["b", ["0002"]]]}


# ------------------------------------------------------------------ errors

def test_syntax_error_names_template_and_line():
    with pytest.raises(RenderError) as info:
        Renderer("a: 1\nb: {{ x \n", template_name="mine.j2")
    assert str(info.value).startswith("template mine.j2 line 2: ")


def test_undefined_variable_is_named():
    renderer = Renderer("a: {{ not_given }}\n", template_name="mine.j2")
    with pytest.raises(RenderError) as info:
        renderer.render(cores_with_id("c"))
    assert str(info.value) == "template mine.j2: 'not_given' is undefined (pass it with --var NAME=VALUE)"


def test_template_error_at_render_time():
    with pytest.raises(RenderError, match="^template t: "):
        Renderer("{{ x.y.z }}\n", template_name="t").render(())  # UndefinedError
    with pytest.raises(RenderError, match="^template t: "):
        Renderer("{{ [].missing() }}\n", template_name="t").render(())  # calling an undefined attribute


@pytest.mark.parametrize("template", ["a: {{ listener_name + 1 }}\n", "a: {{ 1 / 0 }}\n"])
def test_python_error_in_template_is_a_render_error(template):
    with pytest.raises(RenderError, match="^template t: "):
        Renderer(template, template_name="t").render(cores_with_id("c"))


def test_template_must_render_a_mapping():
    for template in ("- a\n- b\n", '["a", "b"]\n'):
        with pytest.raises(RenderError, match=r"^t\.j2 must render a (YAML )?mapping \(an Envoy bootstrap\), got list"):
            Renderer(template, template_name="t.j2").render(())
    with pytest.raises(RenderError, match=r"^x must render a (YAML )?mapping \(an Envoy bootstrap\), got str$"):
        Renderer("text\n", template_name="x").render(())


def test_template_must_render_yaml():
    with pytest.raises(RenderError, match=r"^t\.j2 did not render valid (JSON or )?YAML: "):
        Renderer("a: [\n", template_name="t.j2").render(())


def test_json_and_yaml_templates():
    as_json = Renderer('{"a": {{ cores | length }}}\n').render(cores_with_id("c"))
    as_yaml = Renderer("a: {{ cores | length }}\n").render(cores_with_id("c"))
    assert as_json.config == as_yaml.config == {"a": 1}
    # Envoy picks its parser by the file name: the renderer says which format the text is in.
    assert (as_json.format, as_yaml.format) == ("json", "yaml")
    assert Renderer().render(cores_with_id("c")).format == "json"


# ------------------------------------------------------------------ variables

def test_parse_variables():
    assert parse_variables(None) == {}
    assert parse_variables([" a =1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}


@pytest.mark.parametrize("pair", ["novalue", "=value", "  =value", ""])
def test_parse_variables_names_the_bad_pair(pair):
    with pytest.raises(RenderError) as info:
        parse_variables([pair])
    assert str(info.value) == "template variable %r must be NAME=VALUE" % pair


def test_merge_variables_types_ports_and_methods():
    merged = merge_variables({"listen_port": "9000", "admin_port": 0, "core_port": " 65535 ",
                              "round_robin_methods": " /a.B/C , ,/d.E/F,", "other": "x"})
    assert (merged["listen_port"], merged["admin_port"], merged["core_port"]) == (9000, 0, 65535)
    assert merged["round_robin_methods"] == ["/a.B/C", "/d.E/F"]
    assert merged["other"] == "x"
    assert merged["cluster_name"] == DEFAULT_VARIABLES["cluster_name"]
    assert merge_variables(None) == merge_variables({})
    assert DEFAULT_VARIABLES["listen_port"] == 50555  # defaults are not changed by a merge


@pytest.mark.parametrize("name,value,message", [
    ("listen_port", "abc", 'template variable listen_port must be a port from 0 to 65535, got "abc"'),
    ("listen_port", "65536", 'template variable listen_port must be a port from 0 to 65535, got "65536"'),
    ("admin_port", -1, "template variable admin_port must be a port from 0 to 65535, got -1"),
    ("admin_port", None, "template variable admin_port must be a port from 0 to 65535, got null"),
    ("core_port", "0", 'template variable core_port must be a port from 1 to 65535, got "0"'),
    ("core_port", True, "template variable core_port must be a port from 1 to 65535, got true"),
    ("core_port", "8\n0", 'template variable core_port must be a port from 1 to 65535, got "8\\n0"'),
    ("listen_port", "", 'template variable listen_port must be a port from 0 to 65535, got ""'),
])
def test_merge_variables_bad_port_names_variable_and_value(name, value, message):
    with pytest.raises(RenderError) as info:
        merge_variables({name: value})
    assert str(info.value) == message


@pytest.mark.parametrize("value", ["x", -1, 11, True, "2.5"])
def test_retry_attempts_must_be_a_small_integer(value):
    with pytest.raises(RenderError) as info:
        merge_variables({"retry_attempts": value})
    assert str(info.value).startswith("template variable retry_attempts must be an integer from 0 to 10, got ")


def test_retries_only_calls_that_never_reached_a_core():
    config = Renderer(variables={"retry_attempts": "3"}).render({})[1]
    host = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"]["virtual_hosts"][0]
    assert host["retry_policy"]["num_retries"] == 3
    assert set(host["retry_policy"]["retry_on"].split(",")) == {"connect-failure", "refused-stream",
                                                                "reset-before-request"}


def test_renderer_checks_variables():
    with pytest.raises(RenderError, match="core_port"):
        Renderer(variables={"core_port": "x"})
    assert Renderer(variables={"core_port": "7"}).variables["core_port"] == 7


# ------------------------------------------------------------------ build


def test_build_parses_renders_and_digests_a_value_once(tmp_path, monkeypatch):
    value = json.dumps({"a": {"id": "one", "host": "10.0.0.1"}, "b": {"id": "one", "host": "10.0.0.1"},
                        "c": {"id": "two", "host": "core.example", "port": 7}})
    asked = []
    kind_of = model._kind_of
    monkeypatch.setattr(model, "_kind_of", lambda host: asked.append(host) or kind_of(host))
    monkeypatch.setattr(model, "_HOST_KINDS", {})
    renderer = Renderer(variables={"core_port": 50999})
    laps = []
    built = build(renderer, value, lap=laps.append)
    assert laps == ["parse", "render"]
    assert [c.prefix for c in built.cores] == ["a", "b", "c"] and built.cores[0].port == 50999
    assert [c.id for c in built.serving] == ["one", "two"]  # a core serving two stores is one upstream
    assert built.kinds == {"10.0.0.1": "ipv4", "core.example": "dns"}
    assert built.rendered == renderer.render(parse_assignment(value, default_port=50999))
    assert built.sha256 == sha256_text(built.rendered.text)
    assert built.secrets == []
    text, config, fmt = built.rendered
    assert config_shape(config, built.kinds) == config_shape(config)
    assert sorted(asked) == ["10.0.0.1", "core.example"]  # each host's kind found once: parse, render, shape
    assert built.files(str(tmp_path), "dynamic") == layout_files(str(tmp_path), text, config, fmt, "dynamic")
    assert built.files(str(tmp_path)) == [(str(tmp_path / "envoy.json"), text)]


def test_build_refuses_a_missing_key_and_bad_data_by_name():
    with pytest.raises(AssignmentError, match="assignment key some/key does not exist"):
        build(Renderer(), None, "some/key")
    with pytest.raises(AssignmentError, match="core \"a\": field 'host' must be an IP address or a DNS name"):
        build(Renderer(), {"a": {"id": "x", "host": "-bad-"}})
    with pytest.raises(AssignmentError, match="outside the allowed networks"):
        build(Renderer(), {"a": {"id": "x", "host": "10.0.0.1"}}, allowed_networks=model.parse_networks("10.1.0.0/16"))


def test_renderer_for_reads_the_template_and_puts_the_secrets_beside_the_config(tmp_path):
    template = tmp_path / "t.j2"
    template.write_text('{"n": {{ core_count }}, "dir": {{ sds_dir }}}\n')
    renderer = renderer_for(str(template), {"tls_cert_file": "/c.pem", "tls_key_file": "/k.pem"}, str(tmp_path / "s"))
    assert renderer.template_name == str(template)
    built = build(renderer, {"a": {"id": "x", "host": "10.0.0.1"}})
    assert built.rendered.config == {"n": 1, "dir": str(tmp_path / "s")}
    assert built.secrets == secret_files(renderer.variables)
    assert [path for path, _text in built.secrets] == [str(tmp_path / "s" / "nbi_certificate.json")]
    assert renderer_for(None, {"sds_dir": "/elsewhere"}, "/ignored").variables["sds_dir"] == "/elsewhere"
    assert renderer_for(None, {}, "rel").variables["sds_dir"] == str(tmp_path.cwd() / "rel")
    missing = tmp_path / "missing.j2"
    with pytest.raises(RenderError, match="cannot read the template %s: No such file or directory" % missing):
        renderer_for(str(missing), {}, str(tmp_path))


def test_the_panic_threshold_sends_to_every_core_only_when_none_passes():
    def threshold(count, **variables):
        [cluster] = Renderer(variables=variables).render(many_cores(count)).config["static_resources"]["clusters"]
        return cluster["common_lb_config"]["healthy_panic_threshold"]["value"]

    # Envoy panics when 100.0 x passing / all is below it: with 100 cores one passing is 1 %, not below 1.
    assert threshold(3) == threshold(100) == 1
    assert threshold(101) == threshold(10000) == 0  # 1 would panic with 1 of 101 passing
    assert threshold(101, healthy_panic_threshold="50") == threshold(3, healthy_panic_threshold=50) == 50
    assert panic_threshold("auto", 0) == 1 and panic_threshold(0, 5) == 0
