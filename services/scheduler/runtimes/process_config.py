"""The "process" runtime's config: what `config` of a process agent may hold.

Pure (no subprocess, no etcd): the registry checks an agent against it at
RegisterAgent, and the process runtime applies `check_process_limit` again
with the host's hard limit when it starts a replica.

The command is optional: an agent without one is started outside the mesh
and registers its instances itself (SDK `serve()`).
"""

from __future__ import annotations

from typing import Any, Final

from sutradhar._fields import field_error, quote
from sutradhar.services.common.config_fields import (
    ConfigSchema,
    check_bool,
    check_command,
    check_env_name,
    check_env_or_references,
    check_file_mounts,
    check_port,
    check_string,
    check_string_list,
)

__all__ = ["PROCESS_LIMITS", "SCHEMA", "check_process_limit"]

#: Process rlimits a process agent may set, with their allowed ranges.
PROCESS_LIMITS: Final = {"cpu_seconds": (1, 10_000_000), "open_files": (16, 1 << 20)}


def check_process_limit(key: str, value: Any, *, field: str, high: int | None = None) -> int:
    """One process limit as a whole number within its range (`high` lowers the
    maximum, e.g. to the host's hard limit); what the process runtime applies."""
    low, most = PROCESS_LIMITS[key]
    high = most if high is None else min(high, most)
    unit = " of seconds" if key == "cpu_seconds" else ""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        raise field_error(field, f"{quote(value)} must be a whole number{unit} ({low} to {high})")
    if not low <= value <= high:
        raise field_error(field, f"{int(value)} is out of range ({low} to {high})")
    return int(value)


def _limits(limits: Any, field: str) -> None:
    if not isinstance(limits, dict):
        raise field_error(field, f"must be a mapping with {', '.join(PROCESS_LIMITS)}")
    for key, value in limits.items():
        if key not in PROCESS_LIMITS:
            raise field_error(f"{field}.{key}", f"is not a process limit (valid: {', '.join(PROCESS_LIMITS)})")
        check_process_limit(key, value, field=f"{field}.{key}")


def _args(value: Any, field: str) -> None:
    check_string_list(value, field, non_empty=False)


SCHEMA: Final = ConfigSchema(
    runtime="process",
    fields={
        "command": check_command,
        "args": _args,
        "env": check_env_or_references,
        "workdir": check_string,
        "port_env": check_env_name,
        "port": check_port,
        "metrics": check_bool,
        "limits": _limits,
        "files": check_file_mounts,
    },
)
