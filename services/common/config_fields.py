"""Building blocks of the runtimes' config schemas: the shape checks an
agent's `config` fields share (strings, lists, commands, environments,
ports, URLs) and `ConfigSchema`, what each runtime declares.

Each runtime's schema is a pure module next to the runtime
(`services/scheduler/runtimes/*_config.py`), found by runtime name through
`services.scheduler.runtimes.config_schemas`. Every check raises
`InvalidArgument` naming the dotted field, e.g. ``agent.config.env.PORT``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sutradhar._fields import field_error, quote
from sutradhar.services.common.secret_refs import env_vars_from_config, files_from_config

__all__ = [
    "ConfigCheck",
    "ConfigSchema",
    "FieldCheck",
    "check_bool",
    "check_command",
    "check_env",
    "check_env_name",
    "check_env_or_references",
    "check_file_mounts",
    "check_http_url",
    "check_port",
    "check_string",
    "check_string_list",
]

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


#: Checks one config value: `check(value, field)` raises InvalidArgument naming
#: `field` (what it returns is not used).
FieldCheck = Callable[[Any, str], object]
#: Checks a whole config (keys that depend on each other, required keys):
#: `check(config, field)` raises InvalidArgument naming the bad field under `field`.
ConfigCheck = Callable[[dict[str, Any], str], None]


@dataclass(frozen=True)
class ConfigSchema:
    """What one runtime accepts in an agent's `config`."""

    runtime: str
    """The runtime's name, as an agent's `runtime` gives it ("process")."""
    fields: Mapping[str, FieldCheck | None]
    """Every key the config may hold, in the order messages list them and
    checks run, with the check of its value (None: `check` sees to it)."""
    check: ConfigCheck | None = None
    """Runs first, on the whole config, for what one key's check cannot say."""

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key the config may hold."""
        return tuple(self.fields)

    def validate(self, config: dict[str, Any], field: str) -> None:
        """Check a config that holds known keys only (`field` is its path, "agent.config")."""
        if self.check is not None:
            self.check(config, field)
        for key, check in self.fields.items():
            if check is not None and key in config:
                check(config[key], f"{field}.{key}")


def check_string(value: Any, field: str, *, required: bool = True) -> str:
    """`value` when it is a string (non-blank when `required`)."""
    if not isinstance(value, str):
        raise field_error(field, f"must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise field_error(field, "must not be empty")
    return value


def check_string_list(value: Any, field: str, *, non_empty: bool) -> list[str]:
    """`value` when it is a list of strings (with at least one when `non_empty`)."""
    if not isinstance(value, list):
        raise field_error(field, f"must be a list of strings, not {type(value).__name__}")
    if non_empty and not value:
        raise field_error(field, "must not be empty")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise field_error(f"{field}[{i}]", f"must be a string, not {type(item).__name__}")
    return value


def check_command(value: Any, field: str) -> None:
    """A command: a non-empty string or a list of strings whose first (the program) is not empty."""
    if isinstance(value, str):
        check_string(value, field)
        return
    if not isinstance(value, list):
        raise field_error(field, "must be a non-empty string or a non-empty list of strings")
    items = check_string_list(value, field, non_empty=True)
    if not items[0].strip():
        raise field_error(f"{field}[0]", "the program must not be empty")


def check_env(value: Any, field: str) -> None:
    """An environment: a map of variable names to strings."""
    if not isinstance(value, dict):
        raise field_error(field, f"must be a map of environment variable names to strings, not {type(value).__name__}")
    _check_env_map(value, field)


def check_env_or_references(value: Any, field: str) -> None:
    """An environment: a map of variable names to strings, or a list of {name, value} and
    {name, valueFrom: {secretKeyRef|configMapKeyRef: {name, key}}} (`secret_refs`)."""
    if isinstance(value, dict):
        _check_env_map(value, field)
        return
    env_vars_from_config(value, field=field)


def check_file_mounts(value: Any, field: str) -> None:
    """Files from Secrets and ConfigMaps: a list of {secret|configMap, mountPath, items?}."""
    files_from_config(value, field=field)


def _check_env_map(value: dict[str, Any], field: str) -> None:
    for name, item in value.items():
        _check_env_name_pattern(name, field)
        if not isinstance(item, str):
            raise field_error(f"{field}.{name}", f"must be a string, not {type(item).__name__} (quote numbers)")


def check_bool(value: Any, field: str) -> None:
    """true or false (not a string or a number)."""
    if not isinstance(value, bool):
        raise field_error(field, f"{quote(value)} must be true or false")


def check_port(value: Any, field: str) -> None:
    """A TCP port: a whole number 1-65535 (JSON numbers arrive as floats)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise field_error(field, f"{quote(value)} is not a port number (an integer 1-65535)")
    if not 1 <= int(value) <= 65535:
        raise field_error(field, f"{int(value)} is not a port number (an integer 1-65535)")


def check_env_name(value: Any, field: str) -> None:
    """An environment variable's name."""
    check_string(value, field)
    _check_env_name_pattern(value, field)


def _check_env_name_pattern(name: str, field: str) -> None:
    if not _ENV_NAME_RE.fullmatch(name):
        raise field_error(field, f"{quote(name)} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")


def check_http_url(value: Any, field: str) -> None:
    """An http(s) URL with a host and, when given, a valid port."""
    check_string(value, field)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise field_error(field, f"{quote(value)} is not an http(s) URL (e.g. http://127.0.0.1:8080)")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise field_error(field, f"{quote(value)} has an invalid port") from None
