# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Render an Envoy v3 bootstrap from a template, the core assignment and template variables.

Safety by construction: the Jinja2 environment writes the result of every ``{{ expression }}`` as a
JSON scalar (JSON is YAML), so a value from Consul is always one quoted string or number and can
never add keys, lists or documents to the config. StrictUndefined turns a missing variable into an
error that names it.

build() is the one way from an assignment value to what is written: parsed once (model.py), each
host's kind found once, rendered, with the TLS listener's SDS files, the digest, and the layout's
files (files.py). Used by envoyd's applier and settings, and the envoy_config module; each validates
and writes in its own way.
"""

import json
import os
import re
from collections import namedtuple

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import (
    DEFAULT_CORE_PORT,
    DEFAULT_KEY,
    AssignmentError,
    distinct_cores,
    host_kind,
    parse_assignment,
)
from ansible_collections.voltha.envoy.plugins.module_utils._common import durations
from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError
from ansible_collections.voltha.envoy.plugins.module_utils._common.yaml_io import YAMLError, load_yaml
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.files import (
    layout_files,
    secret_files,
    sha256_text,
)
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.template import VOLTHA_TEMPLATE

try:
    import jinja2
    import jinja2.meta
except ImportError:  # reported by the caller that needs it
    jinja2 = None


class RenderError(VolthaEnvoyError, ValueError):
    """The template could not be rendered, or did not give an Envoy bootstrap."""


# The rendered bootstrap as text (what is written and compared), as data (what is split and checked),
# and the text's format: "json" or "yaml" (Envoy picks its parser by the file's extension).
Rendered = namedtuple("Rendered", ["text", "config", "format"])

# Template variables the shipped template uses, with their defaults and types. User templates may
# use any other names; those arrive as strings.
DEFAULT_VARIABLES = {
    "listen_address": "0.0.0.0",
    "listen_port": 50555,
    "admin_address": "127.0.0.1",
    "admin_port": 8001,
    "core_port": DEFAULT_CORE_PORT,
    "access_log_path": "/dev/stdout",
    "connect_timeout": "0.25s",
    "buffer_limit_bytes": 1048576,
    # Retries of calls that never reached a core (connection refused or reset before the request,
    # stream refused by a core going away), each on another core: a core's death costs no call.
    "retry_attempts": 2,
    "listener_name": "voltha_nbi",
    "cluster_name": "voltha-grpc",
    "route_prefix": "/voltha.",
    "round_robin_methods": ["/voltha.VolthaGlobalService/CreateDevice", "/voltha.VolthaService/CreateDevice"],
    # Envoy's own eyes on the cores (an empty value turns each off). HTTP/2 pings on every upstream
    # connection: a frozen core or a cut link fails one within interval + timeout. The timeout
    # outlasts a core starved of CPU for a moment (a busy host starting a container), whose
    # connection would otherwise be closed with calls in flight; the health checks below take a
    # frozen core out of new calls sooner.
    "keepalive_interval": "0.1s",
    "keepalive_timeout": "1s",
    # Active gRPC health checks (grpc.health.v1, service health_check_service) of every core.
    "health_check_interval": "0.2s",
    "health_check_timeout": "0.15s",
    "health_check_unhealthy_threshold": 2,
    "health_check_healthy_threshold": 1,
    "health_check_service": "",
    # At most this many checks a second in all (0: no bound). Envoy runs its checks on its main thread,
    # the one that takes config updates: 10,000 cores checked every 0.2 s keep it busy, and an update
    # waits behind them. Past the bound each core is checked less often (see paced_health_checks).
    "health_check_max_rate": 2000,
    # Outlier detection on local-origin failures (resets, refused connections, timeouts): a core
    # with that many in a row is ejected for base_ejection_time (longer each time, up to
    # max_ejection_time); never more than max_ejection_percent of the cores at once.
    "outlier_consecutive_failures": 2,
    "outlier_interval": "0.5s",
    "outlier_base_ejection_time": "1s",
    "outlier_max_ejection_time": "10s",
    "outlier_max_ejection_percent": 50,
    # Below this percent of cores passing their checks Envoy sends to every core, healthy or not (its
    # panic mode, 50 by its own default: a node lost with two of three cores would keep getting calls).
    # "auto": panic only when no core passes (see panic_threshold).
    "healthy_panic_threshold": "auto",
    # How long Envoy may hold a change of a core's health before its workers see it (its own default,
    # 1s, merges changes that come within a second of the last one): a core that failed its checks
    # would keep getting calls that long. 0s: at once.
    "lb_update_merge_window": "0s",
    # Reads, safe to retry on another core: RE2 patterns over the gRPC path, each matching all of it.
    "read_methods": [r"/voltha\.Voltha[A-Za-z]*Service/(Get|List)[A-Za-z0-9]*"],
    "read_retry_on": "reset,connect-failure,refused-stream,unavailable",
    "read_per_try_timeout": "0.5s",
    # Retries in flight may be at most this share of the requests in flight (at least the minimum).
    # The minimum covers a burst: every call queued on a connection attempt to a core that is gone
    # fails at the same instant when the attempt times out (about rate x connect_timeout calls) and
    # each would retry on another core; with too small a floor the later ones fail instead.
    "retry_budget_percent": 20,
    "retry_budget_min_concurrency": 100,
    # TLS on the NBI listener (empty: plaintext): the certificate and key files, and a CA whose
    # clients alone are let in (mutual TLS). Envoy reads them through SDS files in sds_dir (envoyd's
    # config directory by default) and reloads them when they are replaced (renamed into place).
    "tls_cert_file": "",
    "tls_key_file": "",
    "tls_client_ca_file": "",
    "sds_dir": "",
}
_TLS_FILES = ("tls_cert_file", "tls_key_file", "tls_client_ca_file")
_PORT_VARIABLES = ("listen_port", "admin_port", "core_port")
# Envoy durations in its JSON form ("0.25s"); an empty value turns off what the variable sets.
_DURATION_VARIABLES = ("keepalive_interval", "keepalive_timeout", "health_check_interval", "health_check_timeout",
                       "outlier_interval", "outlier_base_ejection_time", "outlier_max_ejection_time",
                       "read_per_try_timeout")
# Durations where zero means "at once" (not off); an empty value leaves Envoy's own default.
_ZERO_DURATION_VARIABLES = ("lb_update_merge_window",)
_COUNT_VARIABLES = {"health_check_unhealthy_threshold": (1, 100), "health_check_healthy_threshold": (1, 100),
                    "health_check_max_rate": (0, 1000000),
                    "outlier_consecutive_failures": (0, 1000), "outlier_max_ejection_percent": (0, 100),
                    "healthy_panic_threshold": (0, 100),
                    "retry_budget_percent": (0, 100), "retry_budget_min_concurrency": (0, 100000)}
# Counts that may also be "auto": worked out for each assignment (see panic_threshold).
_AUTO_COUNT_VARIABLES = ("healthy_panic_threshold",)

_PLAIN_ASCII = re.compile(r"[\x20-\x7e]*\Z")
_YAML_BREAKS = (0x85, 0x2028, 0x2029, 0xFEFF)  # line breaks (folded to spaces) and the byte order mark


def _yaml_literal(char):
    """Whether a character stands for itself inside a YAML double-quoted scalar (else it is escaped)."""
    code = ord(char)
    return (code == 0x09 or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF
            or 0xE000 <= code <= 0xFFFD or code >= 0x10000) and code not in _YAML_BREAKS


class EndpointList(list):
    """lb_endpoints as a template gets them: a list. Written out by itself, it stands in the text as a
    token (a JSON string no data can spell) until the rest is parsed; then the list itself goes into
    the parsed config and its JSON into the text, so 10,000 endpoints are not parsed back from text."""

    token = "voltha-envoy-endpoints-" + os.urandom(16).hex()

    def __init__(self, cores):
        super().__init__(
            {"endpoint": {"address": {"socket_address": {"address": c.host, "port_value": c.port}}, "hostname": c.id}}
            for c in cores)
        self.cores = cores

    def json(self):
        """The list as _json_scalar writes it, each endpoint of plain text formatted directly: json.dumps
        of 10,000 endpoints takes three times as long."""
        return "[%s]" % ", ".join([
            _ENDPOINT_JSON % (c.host, c.port, c.id)
            if _JSON_PLAIN_TEXT.match(c.host) and _JSON_PLAIN_TEXT.match(c.id) and isinstance(c.port, int)
            and not isinstance(c.port, bool) else _json_scalar(endpoint) for c, endpoint in zip(self.cores, self)])


# One endpoint as json.dumps(sort_keys=True) writes it, for a host and an id of _JSON_PLAIN_TEXT.
_ENDPOINT_JSON = '{"endpoint": {"address": {"socket_address": {"address": "%s", "port_value": %d}}, "hostname": "%s"}}'
_JSON_PLAIN_TEXT = re.compile(r'[\x20\x21\x23-\x5b\x5d-\x7e]*\Z')  # printable ASCII but " and \: written as is


def _json_scalar(value):
    """Jinja2 finalize hook: every expression's output becomes JSON text that YAML reads back equal.

    Non-ASCII text is written as is (a JSON \\u escape of an astral character is a surrogate pair,
    which YAML refuses); line breaks and characters outside YAML's printable set are escaped.
    """
    if jinja2 is not None and isinstance(value, jinja2.Undefined):
        return value
    if isinstance(value, EndpointList):
        return '"%s"' % value.token
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if _PLAIN_ASCII.match(text):
        return text
    return "".join(c if _yaml_literal(c) else "\\u%04x" % ord(c) for c in text)


def parse_variables(pairs):
    """Turn NAME=VALUE strings (from --var) into a dict, typing the shipped template's variables."""
    result = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise RenderError("template variable %r must be NAME=VALUE" % pair)
        result[name.strip()] = value
    return result


def merge_variables(overrides):
    """Defaults plus overrides, with ports checked and converted to integers."""
    merged = dict(DEFAULT_VARIABLES)
    merged.update(overrides or {})
    for name in _PORT_VARIABLES:
        value = merged[name]
        try:
            port = int(value)
        except (TypeError, ValueError):
            port = None
        lowest = 1 if name == "core_port" else 0  # 0 lets Envoy pick a free port (tests, labs)
        if isinstance(value, bool) or port is None or not lowest <= port <= 65535:
            raise RenderError("template variable %s must be a port from %d to 65535, got %s"
                              % (name, lowest, json.dumps(value)))
        merged[name] = port
    attempts = merged["retry_attempts"]
    try:
        merged["retry_attempts"] = int(attempts)
    except (TypeError, ValueError):
        merged["retry_attempts"] = None
    if isinstance(attempts, bool) or merged["retry_attempts"] is None or not 0 <= merged["retry_attempts"] <= 10:
        raise RenderError("template variable retry_attempts must be an integer from 0 to 10, got %s"
                          % json.dumps(attempts))
    for name in ("round_robin_methods", "read_methods"):
        if isinstance(merged[name], str):
            merged[name] = [m.strip() for m in merged[name].split(",") if m.strip()]
    for name in _DURATION_VARIABLES + _ZERO_DURATION_VARIABLES:
        value = merged[name]
        zero_is_off = name in _DURATION_VARIABLES  # Envoy refuses a zero interval or timeout
        if value in (None, "", False):
            merged[name] = ""
            continue
        try:
            written = durations.envoy_duration(durations.seconds(value, "template variable " + name))
        except durations.DurationError as err:
            raise RenderError("%s (%s)" % (err, "empty turns it off" if zero_is_off
                                           else "empty leaves Envoy's default")) from None
        merged[name] = "" if zero_is_off and written == "0s" else written
    for name, (lowest, highest) in _COUNT_VARIABLES.items():
        value = merged[name]
        auto = name in _AUTO_COUNT_VARIABLES
        if auto and value == "auto":
            continue
        try:
            number = None if isinstance(value, bool) else int(value)
        except (TypeError, ValueError):
            number = None
        if number is None or not lowest <= number <= highest:
            raise RenderError("template variable %s must be %san integer from %d to %d, got %s"
                              % (name, "auto or " if auto else "", lowest, highest, json.dumps(value)))
        merged[name] = number
    for pattern in merged["read_methods"]:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as err:
            raise RenderError("template variable read_methods: %s is not a regular expression: %s"
                              % (json.dumps(pattern), err)) from None
    if merged["keepalive_interval"] and not merged["keepalive_timeout"]:
        raise RenderError("template variable keepalive_timeout must be set when keepalive_interval is")
    if merged["health_check_interval"] and not merged["health_check_timeout"]:
        raise RenderError("template variable health_check_timeout must be set when health_check_interval is")
    for name in _TLS_FILES + ("sds_dir",):
        value = merged[name]
        if value and (not isinstance(value, str) or not value.startswith("/")):
            raise RenderError("template variable %s must be an absolute path, got %s" % (name, json.dumps(value)))
    if bool(merged["tls_cert_file"]) != bool(merged["tls_key_file"]):
        raise RenderError("template variables tls_cert_file and tls_key_file go together, got %s and %s"
                          % (json.dumps(merged["tls_cert_file"]), json.dumps(merged["tls_key_file"])))
    if merged["tls_client_ca_file"] and not merged["tls_cert_file"]:
        raise RenderError("template variable tls_client_ca_file needs tls_cert_file and tls_key_file")
    if merged["tls_cert_file"] and not merged["sds_dir"]:
        raise RenderError("template variable sds_dir must be set when tls_cert_file is (envoyd sets it)")
    if merged["outlier_consecutive_failures"]:
        for name in ("outlier_interval", "outlier_base_ejection_time", "outlier_max_ejection_time"):
            if not merged[name]:
                raise RenderError("template variable %s must be set when outlier_consecutive_failures is more "
                                  "than 0" % name)
    return merged


class Renderer:
    """A compiled template; render() is called once per assignment change."""

    def __init__(self, template_text=None, variables=None, template_name="voltha"):
        if jinja2 is None:
            raise RenderError("the jinja2 Python library is required to render Envoy configs")
        self.template_name = template_name
        self.variables = merge_variables(variables)
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, finalize=_json_scalar, autoescape=False,
                                 keep_trailing_newline=True)
        source = template_text if template_text is not None else VOLTHA_TEMPLATE
        try:
            self._template = env.from_string(source)
            # Only what the template uses is built for it: with 10,000 cores each unused list costs megabytes.
            self._uses = jinja2.meta.find_undeclared_variables(env.parse(source))
        except jinja2.TemplateSyntaxError as err:
            raise RenderError("template %s line %s: %s" % (template_name, err.lineno, err.message)) from err

    def render(self, cores, kinds=None, serving=None):
        """Render the bootstrap for a tuple of Cores; raises RenderError naming the problem. ``kinds``:
        {host: kind} from the parse, ``serving``: distinct_cores(cores) (else both are worked out here)."""
        context = dict(self.variables)
        context.update(template_context(cores, self._uses, kinds, serving))
        context.update(paced_health_checks(self.variables, context["core_count"]))
        context["healthy_panic_threshold"] = panic_threshold(self.variables["healthy_panic_threshold"],
                                                             context["core_count"])
        try:
            text = self._template.render(context)
        except jinja2.UndefinedError as err:
            raise RenderError(
                "template %s: %s (pass it with --var NAME=VALUE)" % (self.template_name, err.message)) from err
        except jinja2.TemplateError as err:
            raise RenderError("template %s: %s" % (self.template_name, err)) from err
        except Exception as err:  # a template's own expression failed (1/0, str + int): still the template's error
            raise RenderError("template %s: %s: %s" % (self.template_name, type(err).__name__, err)) from err
        context_endpoints = context.get("lb_endpoints")
        del context  # before the text is parsed: the peak memory of a large assignment
        config, fmt = load_bootstrap(text, self.template_name)
        if isinstance(context_endpoints, EndpointList):
            endpoints = list(context_endpoints)  # a plain list in the config: YAML writers know no subclass
            if _splice(config, EndpointList.token, endpoints):
                text = text.replace('"%s"' % EndpointList.token, context_endpoints.json())
        return Rendered(text, config, fmt)


def template_context(cores, uses=("cores", "lb_endpoints", "cluster_type"), kinds=None, serving=None):
    """What a template gets from the assignment.

    cores: one mapping per core (prefix: its first store, prefixes: every store it serves, id, host,
    port, kind: ipv4, ipv6 or dns), for templates that lay out endpoints themselves; lb_endpoints:
    the Envoy v3 LbEndpoint list, one per core (built here: fast, and already in the right shape);
    cluster_type: STATIC when every host is an IP address, else STRICT_DNS (Envoy resolves the names);
    core_count: how many distinct cores there are.
    A core serving several stores is one endpoint: its share of the calls does not grow with them.
    """
    distinct = distinct_cores(cores) if serving is None else serving
    kinds = [kinds[c.host] for c in distinct] if kinds is not None else [host_kind(c.host) for c in distinct]
    context = {"cluster_type": "STATIC" if "dns" not in kinds else "STRICT_DNS", "core_count": len(distinct)}
    if "cores" in uses:
        prefixes = {}
        for c in cores:
            prefixes.setdefault(c.id, []).append(c.prefix)
        context["cores"] = [dict(prefix=c.prefix, prefixes=prefixes[c.id], id=c.id, host=c.host, port=c.port,
                                 kind=kind) for c, kind in zip(distinct, kinds)]
    if "lb_endpoints" in uses:
        context["lb_endpoints"] = EndpointList(distinct)
    return context


def _splice(node, token, value):
    """Put ``value`` wherever the parsed ``node`` holds the string ``token``; how many places."""
    found = 0
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, item in items:
        if item == token:
            node[key] = value
            found += 1
        elif isinstance(item, (dict, list)) and item is not value:
            found += _splice(item, token, value)
    return found


# The first checks of new cores are spread over at most this long: with every change of the cores the
# dynamic mode warms a new cluster, and an update is confirmed once it is warm.
MAX_INITIAL_JITTER_S = 2.0


def paced_health_checks(variables, core_count):
    """health_check_interval for this many cores, and health_check_initial_jitter ("" for none).

    Below health_check_max_rate checks a second both stay as set. Above it, the interval becomes the
    next of 1, 2 or 5 x 10^n seconds that keeps the rate within the bound (a step, so that a core more
    or less seldom changes the cluster), and each new core's first check comes at a random moment
    within a fifth of it (at most MAX_INITIAL_JITTER_S): 10,000 new cores checked at once delay the
    update that brought them by about half a second, and a new core takes no call before its first check.
    """
    interval, max_rate = variables["health_check_interval"], variables["health_check_max_rate"]
    if not interval or not max_rate or core_count <= max_rate * float(interval[:-1]):
        return {"health_check_interval": interval, "health_check_initial_jitter": ""}
    needed, decade = core_count / max_rate, 0.001
    while 5 * decade < needed:
        decade *= 10
    paced = next(round(m * decade, 3) for m in (1, 2, 5) if round(m * decade, 3) >= needed)
    jitter = min(paced / 5, MAX_INITIAL_JITTER_S)
    return {"health_check_interval": durations.envoy_duration(paced),
            "health_check_initial_jitter": durations.envoy_duration(jitter) if jitter >= 0.001 else ""}


# The most cores for which a panic threshold of 1 panics only when none passes: Envoy panics when
# 100.0 x passing / all is below the threshold, a whole percent (the least that panics at all is 1).
PANIC_ONLY_WHEN_NONE_UP_TO = 100


def panic_threshold(value, core_count):
    """The healthy_panic_threshold Envoy gets for this many cores: as set, or for "auto" the one under
    which Envoy sends calls to every core only when none passes its checks.

    That is 1 with up to 100 cores: cores that all miss their checks at once (a host too busy to answer
    one in time) still get calls, where 0 answers "no healthy upstream". With more cores, 1 would panic
    as soon as fewer than one in a hundred pass, and send most calls to cores that failed theirs, so
    then it is 0: calls go to the cores that pass, however few.
    """
    if value != "auto":
        return value
    return 1 if core_count <= PANIC_ONLY_WHEN_NONE_UP_TO else 0


def load_bootstrap(text, source="config"):
    """Parse rendered text, JSON first (C speed) then YAML; check it is a mapping, as a bootstrap is.

    Returns (config, "json" or "yaml").
    """
    try:
        data, fmt = json.loads(text), "json"
    except ValueError:
        try:
            data, fmt = load_yaml(text), "yaml"
        except YAMLError as err:
            raise RenderError("%s did not render valid JSON or YAML: %s" % (source, err)) from err
    if not isinstance(data, dict):
        raise RenderError("%s must render a mapping (an Envoy bootstrap), got %s" % (source, type(data).__name__))
    return data, fmt


class Built(namedtuple("Built", ["cores", "serving", "kinds", "rendered", "secrets", "sha256"])):
    """One assignment value made ready to write.

    cores: the parsed Cores (every store); serving: one Core per core id (distinct_cores); kinds:
    {host: "ipv4" | "ipv6" | "dns"}; rendered: the Rendered bootstrap; secrets: [(path, text)] of the
    SDS files (none without TLS); sha256: the digest of the rendered text (equal data, equal digest).
    """

    __slots__ = ()

    def files(self, config_dir, layout="static", names=None):
        """The files of a layout (files.py) as [(path, text)] in write order, the static bootstrap
        first; ``names``: the eds.EndpointNames kept from one change to the next (dynamic layout)."""
        text, config, fmt = self.rendered
        return layout_files(config_dir, text, config, fmt, layout, names)


def build(renderer, value, key=DEFAULT_KEY, allowed_networks=None, lap=None):
    """An assignment value (bytes or text from Consul, or decoded data; None: the key does not exist)
    -> Built, every host inside ``allowed_networks`` when given. Raises AssignmentError or RenderError.
    ``lap(stage)``, when given, is called as the parse and the render end (envoyd times them)."""
    if value is None:
        raise AssignmentError("assignment key %s does not exist" % key)
    kinds = {}
    cores = parse_assignment(value, default_port=renderer.variables["core_port"], allowed_networks=allowed_networks,
                             kinds=kinds)
    if lap:
        lap("parse")
    serving = distinct_cores(cores)
    rendered = renderer.render(cores, kinds, serving)
    if lap:
        lap("render")
    return Built(cores, serving, kinds, rendered, secret_files(renderer.variables), sha256_text(rendered.text))


def renderer_for(template_path, variables, sds_dir):
    """The Renderer of a template file (None: the shipped template) and variables; the TLS listener's
    SDS files go in ``sds_dir`` unless the variables say where. Raises RenderError."""
    template_text = None
    if template_path:
        try:
            with open(template_path, "rb") as handle:
                template_text = handle.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise RenderError("cannot read the template %s: %s"
                              % (template_path, getattr(err, "strerror", None) or err)) from err
    variables = dict(variables or {})
    if not variables.get("sds_dir"):
        variables["sds_dir"] = os.path.abspath(sds_dir)
    return Renderer(template_text, variables, template_name=template_path or "voltha")
