# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""YAML in and out, with libyaml's C speed when PyYAML was built with it (rendering is on the data path).

Used by _envoy (render, validate) and envoyd's settings.
"""

try:
    import yaml
except ImportError:  # said when used: the callers' errors name the missing library
    yaml = None

YAMLError = yaml.YAMLError if yaml else ValueError


def _require_yaml():
    if yaml is None:
        raise ImportError("the PyYAML Python library is required (pip install pyyaml)")


def load_yaml(text):
    _require_yaml()
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # a safe loader


def dump_yaml(data):
    _require_yaml()
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False,
                     default_flow_style=False, width=1000)
