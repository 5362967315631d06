# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The base of every error the collection raises on purpose.

Its message is written for the user: it names what was wrong (the field, the value, the file) and,
where there is one, what to do. Modules, the lookup and envoyd report it as it is; anything else that
reaches them is an unforeseen failure and is reported with its type. Each concern's errors derive
from it (and from the builtin error they are a kind of, such as ValueError for bad input).

Used by every subpackage of module_utils.
"""


class VolthaEnvoyError(Exception):
    """An error whose message is for the user."""
