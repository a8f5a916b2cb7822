"""Every runtime's config schema, by runtime name: the one table that says
which runtimes exist and what each accepts in an agent's `config`.

A new runtime adds its pure `<name>_config.py` beside this module (a
`ConfigSchema` named SCHEMA) and one entry below. This module and the schema
modules import only the SDK and `services.common`, never a runtime's
implementation (no subprocess handling, Docker or HTTP client), so the
registry can check agents at RegisterAgent without loading the scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from sutradhar._fields import field_error, quote
from sutradhar.services.common.config_fields import ConfigSchema
from sutradhar.services.scheduler.runtimes import container_config, http_config, in_process_config, process_config

__all__ = ["RUNTIMES", "SCHEMAS", "validate_runtime_config"]

#: Config schemas by runtime name, in the order messages list the runtimes.
SCHEMAS: Final[Mapping[str, ConfigSchema]] = MappingProxyType({
    schema.runtime: schema
    for schema in (in_process_config.SCHEMA, process_config.SCHEMA, container_config.SCHEMA, http_config.SCHEMA)
})
#: Every runtime an agent may name.
RUNTIMES: Final = tuple(SCHEMAS)


def validate_runtime_config(runtime: str, config: Mapping[str, Any], *, field: str = "agent.config") -> None:
    """Check a runtime's config dict: known keys only, each of the right shape.

    `runtime` must be one of RUNTIMES (the agent's runtime is checked first).
    """
    cfg = dict(config)
    schema = SCHEMAS[runtime]
    unknown = sorted(set(cfg) - set(schema.keys))
    if unknown:
        raise field_error(
            f"{field}.{unknown[0]}",
            f"unknown key(s) {', '.join(quote(k) for k in unknown)} for runtime {quote(runtime)} "
            f"(valid: {', '.join(schema.keys)})",
        )
    schema.validate(cfg, field)
