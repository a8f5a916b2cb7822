"""A whole agent definition checked, as the registry does at RegisterAgent
and ReplaceAgent (and `sutradhar deploy` before it sends a manifest).

The checks come in a fixed order, so an agent with several faults always
reports the same first one: identity (id, namespace, type, version), runtime,
capabilities, labels, description, config (its size, then the runtime's own
schema from `services.scheduler.runtimes.config_schemas`), resources, probes,
routing. Every error is an `InvalidArgument` naming the dotted field, e.g.::

    agent.version: "banana" is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. 1.4.0)
"""

from __future__ import annotations

from typing import Final

from google.protobuf import json_format

from sutradhar._fields import field_error, one_of, quote
from sutradhar._labels import validate_label_name, validate_labels
from sutradhar._names import validate_dns_label, validate_namespace
from sutradhar._semver import parse_version
from sutradhar.services.common.validation import parse_cpu, parse_memory, validate_probe, validate_routing
from sutradhar.services.scheduler.runtimes.config_schemas import RUNTIMES, validate_runtime_config
from sutradhar.v1 import registry_pb2

__all__ = ["MAX_CAPABILITIES", "MAX_CONFIG_BYTES", "MAX_DESCRIPTION_BYTES", "validate_agent"]

MAX_DESCRIPTION_BYTES: Final = 4 * 1024
MAX_CONFIG_BYTES: Final = 64 * 1024
MAX_CAPABILITIES: Final = 64


def validate_agent(agent: registry_pb2.Agent, *, field: str = "agent") -> None:
    """Check a whole agent definition; output-only fields are not looked at."""
    validate_dns_label(agent.id, field=f"{field}.id", what="agent id")
    validate_namespace(agent.namespace, field=f"{field}.namespace")
    validate_dns_label(agent.type, field=f"{field}.type", what="agent type")
    parse_version(agent.version, field=f"{field}.version")

    if not agent.runtime:
        raise field_error(f"{field}.runtime", f"runtime is required (valid: {one_of(RUNTIMES)})")
    if agent.runtime not in RUNTIMES:
        raise field_error(f"{field}.runtime", f"{quote(agent.runtime)} is not a runtime (valid: {one_of(RUNTIMES)})")

    if len(agent.capabilities) > MAX_CAPABILITIES:
        raise field_error(
            f"{field}.capabilities", f"{len(agent.capabilities)} capabilities given, at most {MAX_CAPABILITIES} allowed"
        )
    seen: set[str] = set()
    for i, cap in enumerate(agent.capabilities):
        validate_label_name(cap, field=f"{field}.capabilities[{i}]", what="capability")
        if cap in seen:
            raise field_error(f"{field}.capabilities[{i}]", f"{quote(cap)} is listed twice")
        seen.add(cap)

    validate_labels(dict(agent.labels), field=f"{field}.labels")

    if len(agent.description.encode()) > MAX_DESCRIPTION_BYTES:
        raise field_error(
            f"{field}.description",
            f"is {len(agent.description.encode())} bytes, at most {MAX_DESCRIPTION_BYTES} (4 KiB) allowed",
        )

    try:
        config_json = json_format.MessageToJson(agent.config, indent=None) if agent.HasField("config") else ""
    except ValueError as err:  # NaN or Infinity: JSON (and so etcd's stored form) has no such numbers
        raise field_error(f"{field}.config", f"holds a number JSON cannot represent (NaN or Infinity): {err}") from None
    config_bytes = len(config_json.encode())
    if config_bytes > MAX_CONFIG_BYTES:
        raise field_error(
            f"{field}.config", f"is {config_bytes} bytes serialized, at most {MAX_CONFIG_BYTES} (64 KiB) allowed"
        )
    config = json_format.MessageToDict(agent.config) if agent.HasField("config") else {}
    validate_runtime_config(agent.runtime, config, field=f"{field}.config")

    if agent.resources.cpu:
        parse_cpu(agent.resources.cpu, field=f"{field}.resources.cpu")
    if agent.resources.memory:
        parse_memory(agent.resources.memory, field=f"{field}.resources.memory")

    validate_probe(agent.probes.readiness, f"{field}.probes.readiness", liveness=False)
    validate_probe(agent.probes.liveness, f"{field}.probes.liveness", liveness=True)
    validate_routing(agent.routing, f"{field}.routing")
