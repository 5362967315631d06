"""Unit tests for the core assignment parser (assignment.py)."""

import json

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import (
    DEFAULT_CORE_PORT,
    AssignmentError,
    Core,
    assignment_to_dict,
    distinct_cores,
    dump_assignment,
    host_kind,
    parse_assignment,
    parse_core,
    parse_networks,
)

LONG = "x" * 10000

# Strings that must never be accepted as a host: quoting, YAML/JSON structure, Jinja, whitespace.
HOSTILE_HOSTS = [
    '"',
    "'",
    "10.0.0.1\nevil: 1",
    "host name",
    "a: b",
    "- item",
    "{a: b}",
    "[1, 2]",
    '", "evil": "x',
    "---\nfoo: bar",
    "{{ 7*7 }}",
    "{% raw %}",
    "#comment",
    "&anchor",
    "*alias",
    "!!python/object:os.system",
    "\\",
    "\t",
    "a\x00b",
    "10.0.0.1 ",
    " 10.0.0.1",
    "",
    ".",
    "..",
    "a..b",
    "-leading.example",
    "trailing-.example",
    "1.2.3.999",
    "01.2.3.4",
    "example.com/path",
    "user@example.com",
    "example.com:80",
    "é.example",
    LONG,
    "a." * 127 + "b",
    "\nexample.com",
]


def entry(core_id="core-0", host="10.0.0.1", **extra):
    data = {"id": core_id, "host": host}
    data.update(extra)
    return data


# ------------------------------------------------------------------ host_kind

@pytest.mark.parametrize("host,kind", [
    ("10.0.0.1", "ipv4"),
    ("0.0.0.0", "ipv4"),
    ("255.255.255.255", "ipv4"),
    ("::1", "ipv6"),
    ("fd00::1:2", "ipv6"),
    ("2001:db8::8a2e:370:7334", "ipv6"),
    ("localhost", "dns"),
    ("voltha-core.voltha.svc.cluster.local", "dns"),
    ("voltha-core.voltha.svc.cluster.local.", "dns"),
    ("_grpc._tcp.example", "dns"),
    ("a" * 63 + ".example", "dns"),
    ("1.2.3.example", "dns"),
    ("123abc", "dns"),
])
def test_host_kind_valid(host, kind):
    assert host_kind(host) == kind


@pytest.mark.parametrize("host", [
    "a" * 64 + ".example",  # label too long
    "1.2.3",  # all-numeric last label looks like a broken IP
    "1.2.3.4.5",
    "256.0.0.1",
    ":::1",
])
def test_host_kind_invalid(host):
    assert host_kind(host) is None


def test_host_kind_total_length_limit():
    name = ".".join(["a" * 63] * 3 + ["a" * 61])  # 253 characters
    assert len(name) == 253
    assert host_kind(name) == "dns"
    assert host_kind(name + ".") == "dns"  # the root dot does not count
    assert host_kind("b" + name) is None


@pytest.mark.parametrize("host", HOSTILE_HOSTS, ids=lambda h: repr(h)[:40])
def test_hostile_hosts_are_not_hosts(host):
    assert host_kind(host) is None


@pytest.mark.parametrize("host", ["example.com\n", "a\n.b", "1.2.3.4\n"])
def test_host_with_newline_is_rejected(host):
    assert host_kind(host) is None
    with pytest.raises(AssignmentError):
        parse_core("core-a", entry(host=host))


@pytest.mark.parametrize("host", ['fe80::1%"x\n{{ 7*7 }}', "fe80::1%a: b", "::1%\n- evil"])
def test_ipv6_scope_with_hostile_content_is_rejected(host):
    assert host_kind(host) is None
    with pytest.raises(AssignmentError):
        parse_core("core-a", entry(host=host))


# ------------------------------------------------------------------ parse_core

def test_parse_core_defaults_port():
    assert parse_core("p", entry()) == Core("p", "core-0", "10.0.0.1", DEFAULT_CORE_PORT)
    assert parse_core("p", entry(), default_port=1234).port == 1234
    assert parse_core("p", entry(port=9), default_port=1234).port == 9


@pytest.mark.parametrize("port", [1, 80, 65535])
def test_parse_core_port_bounds_ok(port):
    assert parse_core("p", entry(port=port)).port == port


@pytest.mark.parametrize("port,shown", [
    (0, "0"), (65536, "65536"), (-1, "-1"), ("80", '"80"'), (80.0, "80.0"), (True, "true"), (None, "null"),
    ([80], "[80]"),
])
def test_parse_core_bad_port_names_field_and_value(port, shown):
    with pytest.raises(AssignmentError) as info:
        parse_core("core-b", entry(port=port))
    err = info.value
    assert str(err) == 'core "core-b": field \'port\' must be an integer from 1 to 65535, got %s' % shown
    assert (err.prefix, err.field) == ("core-b", "port")
    assert err.value == port


@pytest.mark.parametrize("value", ["", "   ", "\n\t", None, 7, ["a"], {"a": 1}])
def test_parse_core_bad_id(value):
    with pytest.raises(AssignmentError) as info:
        parse_core("core-c", entry(core_id=value))
    assert str(info.value).startswith('core "core-c": field \'id\' must be a non-empty string, got ')
    assert str(info.value).endswith(json.dumps(value))
    assert (info.value.prefix, info.value.field, info.value.value) == ("core-c", "id", value)


@pytest.mark.parametrize("value", [None, 10, ["10.0.0.1"], {"ip": "10.0.0.1"}])
def test_parse_core_host_not_string(value):
    with pytest.raises(AssignmentError) as info:
        parse_core("core-d", entry(host=value))
    assert str(info.value) == 'core "core-d": field \'host\' must be a string, got %s' % json.dumps(value)
    assert info.value.field == "host"


@pytest.mark.parametrize("host", HOSTILE_HOSTS, ids=lambda h: repr(h)[:40])
def test_parse_core_rejects_hostile_host_naming_it(host):
    with pytest.raises(AssignmentError) as info:
        parse_core("core-e", entry(host=host))
    message = str(info.value)
    assert message.startswith('core "core-e": field \'host\' must be an IP address or a DNS name, got ')
    shown = json.dumps(host, ensure_ascii=True)
    if len(shown) <= 80:
        assert message.endswith(shown)
    else:
        assert shown[:80] in message and "(%d characters)" % len(shown) in message
    assert "\n" not in message  # the value is shown escaped, one line
    assert (info.value.prefix, info.value.field, info.value.value) == ("core-e", "host", host)


def test_long_values_are_cut_in_messages():
    with pytest.raises(AssignmentError) as info:
        parse_core("p", entry(host=LONG))
    assert len(str(info.value)) < 250
    assert "... (10002 characters)" in str(info.value)


@pytest.mark.parametrize("field", ["id", "host"])
def test_parse_core_missing_field(field):
    data = entry()
    del data[field]
    with pytest.raises(AssignmentError) as info:
        parse_core("core-f", data)
    assert str(info.value) == "core \"core-f\": field '%s' is missing" % field
    assert (info.value.prefix, info.value.field) == ("core-f", field)


@pytest.mark.parametrize("value", ["10.0.0.1", ["10.0.0.1"], None, 3])
def test_parse_core_entry_not_object(value):
    with pytest.raises(AssignmentError) as info:
        parse_core("core-g", value)
    assert str(info.value) == ("core \"core-g\": must be a JSON object with 'id' and 'host', got %s"
                               % json.dumps(value))
    assert info.value.prefix == "core-g" and info.value.value == value


def test_hostile_prefix_is_shown_escaped():
    prefix = '"}\n{{ 7*7 }}'
    with pytest.raises(AssignmentError) as info:
        parse_core(prefix, entry(host="bad host"))
    assert str(info.value).startswith("core %s:" % json.dumps(prefix))
    assert info.value.prefix == prefix


# ------------------------------------------------------------------ parse_assignment

HOSTILE_IDS = [
    '"', "'", '\\"', "a\nb", "a\r\nb", "key: value", "- item", "{a: b}", "[1, 2]", '", "evil": "x',
    "---\nfoo: bar", "...", "{{ 7*7 }}", "{% for x in y %}{% endfor %}", "{# c #}", "#comment", "&a *a",
    "!!python/object/apply:os.system ['id']", "null", "true", "123", "1e3", "~", "@type", "a\tb", "é😀",
    "\x00\x01\x1f", "a\x7fb", LONG, '"}]\n  evil: 1\n#',
]


@pytest.mark.parametrize("core_id", HOSTILE_IDS, ids=lambda h: repr(h)[:40])
def test_hostile_ids_are_kept_exactly(core_id):
    raw = json.dumps({"p": {"id": core_id, "host": "10.0.0.1"}})
    cores = parse_assignment(raw)
    assert cores == (Core("p", core_id, "10.0.0.1", DEFAULT_CORE_PORT),)
    assert parse_assignment(dump_assignment(cores)) == cores


def test_parse_assignment_sorted_by_prefix_from_all_input_forms():
    data = {"b": entry("core-b", "10.0.0.2", port=1), "a": entry("core-a", "voltha.example"),
            "c": entry("core-c", "::1")}
    expected = (Core("a", "core-a", "voltha.example", DEFAULT_CORE_PORT), Core("b", "core-b", "10.0.0.2", 1),
                Core("c", "core-c", "::1", DEFAULT_CORE_PORT))
    text = json.dumps(data)
    assert parse_assignment(text) == expected
    assert parse_assignment(text.encode("utf-8")) == expected
    assert parse_assignment(data) == expected
    assert [c.port for c in parse_assignment(data, default_port=7)] == [7, 1, 7]


def test_dump_assignment_canonical_and_round_trip():
    a = parse_assignment({"b": entry("core-b", "10.0.0.2"), "a": entry("core-a", "10.0.0.1", port=9)})
    b = parse_assignment('{"a": {"port": 9, "host": "10.0.0.1", "id": "core-a"}, '
                         '"b": {"host": "10.0.0.2", "id": "core-b"}}')
    assert dump_assignment(a) == dump_assignment(b)
    assert dump_assignment(a) == ('{"a":{"host":"10.0.0.1","id":"core-a","port":9},'
                                  '"b":{"host":"10.0.0.2","id":"core-b","port":50556}}')
    assert parse_assignment(dump_assignment(a)) == a
    assert assignment_to_dict(a)["a"] == {"id": "core-a", "host": "10.0.0.1", "port": 9}


@pytest.mark.parametrize("raw,message", [
    ("", "assignment is empty"),
    ("  \n", "assignment is empty"),
    (b"", "assignment is empty"),
    ("{}", "assignment has no cores"),
    ({}, "assignment has no cores"),
    ("[]", "assignment must be a JSON object of cores keyed by prefix, got []"),
    ('"text"', 'assignment must be a JSON object of cores keyed by prefix, got "text"'),
    ("null", "assignment must be a JSON object of cores keyed by prefix, got null"),
    ("42", "assignment must be a JSON object of cores keyed by prefix, got 42"),
])
def test_parse_assignment_whole_value_errors(raw, message):
    with pytest.raises(AssignmentError) as info:
        parse_assignment(raw)
    assert str(info.value) == message


def test_parse_assignment_not_json():
    with pytest.raises(AssignmentError, match="^assignment is not valid JSON: "):
        parse_assignment('{"a": ')


def test_parse_assignment_not_utf8():
    with pytest.raises(AssignmentError, match="^assignment is not UTF-8 text: .*0xff"):
        parse_assignment(b'{"a": "\xff"}')


def test_parse_assignment_error_in_one_core_names_it():
    with pytest.raises(AssignmentError) as info:
        parse_assignment({"a": entry("core-a"), "b": entry("core-b", port=0)})
    assert info.value.prefix == "b" and info.value.field == "port" and info.value.value == 0


def test_duplicate_ids_name_both_prefixes_and_the_id():
    with pytest.raises(AssignmentError) as info:
        parse_assignment({"b": entry("same"), "a": entry("same", "10.0.0.2")})
    assert str(info.value) == ('core "b": field \'id\' duplicates core "a" at another address ("10.0.0.2:50556"), '
                               'got "same"')
    assert (info.value.prefix, info.value.field, info.value.value) == ("b", "id", "same")


def test_a_core_may_serve_several_stores_at_one_address():
    cores = parse_assignment({"b": entry("same"), "a": entry("same"), "c": entry("other", "10.0.0.3")})
    assert [c.prefix for c in cores] == ["a", "b", "c"]
    assert [(c.prefix, c.id) for c in distinct_cores(cores)] == [("a", "same"), ("c", "other")]


def test_assignment_error_is_a_value_error():
    assert issubclass(AssignmentError, ValueError)
    err = AssignmentError("m")
    assert (err.prefix, err.field, err.value) == (None, None, None)


def test_allowed_networks_keep_the_hosts_in():
    networks = parse_networks("10.0.0.0/8, 127.0.0.1/32,fd00::/8")
    assert [str(n) for n in networks] == ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"]
    assert parse_networks("") is None and parse_networks([]) is None and parse_networks(None) is None
    assert parse_assignment({"a": entry("a", "10.9.8.7"), "b": entry("b", "fd00::1")}, allowed_networks=networks)
    with pytest.raises(AssignmentError) as info:
        parse_assignment({"a": entry("a", "10.0.0.1"), "b": entry("b", "192.0.2.7")}, allowed_networks=networks)
    assert str(info.value) == ('core "b": field \'host\' is outside the allowed networks (10.0.0.0/8, 127.0.0.1/32, '
                               'fd00::/8), got "192.0.2.7"')
    assert (info.value.prefix, info.value.field, info.value.value) == ("b", "host", "192.0.2.7")
    with pytest.raises(AssignmentError, match="a DNS name cannot be checked, got \"core.example\""):
        parse_assignment({"a": entry("a", "core.example")}, allowed_networks=networks)


def test_a_bad_allowed_network_is_named():
    with pytest.raises(AssignmentError, match='allowed networks: "10.0.0.0/33" is not a network'):
        parse_networks("10.0.0.0/8,10.0.0.0/33")
