"""Pure checks and derivations on deployments: validation (InvalidArgument
naming the field), the revision hash of a pod template, and the runtime
requirements a deployment puts on its agent.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from google.protobuf import json_format

from sutradhar._errors import InvalidArgument
from sutradhar.services.common.labelselector import validate_labels
from sutradhar.services.common.validation import (
    RUNTIMES,
    parse_cpu,
    parse_memory,
    validate_dns_label,
    validate_namespace,
)
from sutradhar.services.scheduler.autoscale import AutoscaleParams
from sutradhar.services.scheduler.rollout import parse_int_or_percent
from sutradhar.v1 import registry_pb2, scheduler_pb2

#: Largest replica count a deployment may ask for.
MAX_REPLICAS = 1000
#: Default scale-down stabilization window (Kubernetes HPA default).
DEFAULT_SCALE_DOWN_WINDOW = timedelta(seconds=300)
_MAX_WINDOW = timedelta(hours=1)
_ENV_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _window(d: Any, field: str, default: timedelta) -> timedelta:
    if d.seconds < 0 or d.nanos < 0:
        raise InvalidArgument(f"{field}: must not be negative", field=field)
    if d.seconds == 0 and d.nanos == 0:
        return default
    value = d.ToTimedelta()
    if value > _MAX_WINDOW:
        raise InvalidArgument(f"{field}: {value.total_seconds():g}s is longer than 1h", field=field)
    return value


def validate_replicas(replicas: int, *, field: str = "spec.replicas") -> None:
    """0 <= replicas <= 1000."""
    if not 0 <= replicas <= MAX_REPLICAS:
        raise InvalidArgument(
            f"{field}: {replicas} is out of range (0 to {MAX_REPLICAS})", field=field
        )


def validate_deployment(d: scheduler_pb2.Deployment) -> None:
    """Check a deployment a caller sends; status and output-only fields are ignored."""
    validate_dns_label(d.name, field="deployment.name", what="deployment name")
    validate_namespace(d.namespace, field="deployment.namespace")
    spec = d.spec
    validate_dns_label(spec.agent_id, field="spec.agent_id", what="agent id")
    validate_replicas(spec.replicas)
    if spec.resources.cpu:
        parse_cpu(spec.resources.cpu, field="spec.resources.cpu")
    if spec.resources.memory:
        parse_memory(spec.resources.memory, field="spec.resources.memory")
    if spec.HasField("autoscale"):
        autoscale_params(spec.autoscale)
    for name, value in (("max_surge", spec.strategy.max_surge), ("max_unavailable", spec.strategy.max_unavailable)):
        if value:
            parse_int_or_percent(value, field=f"spec.strategy.{name}")
    for name in spec.env:
        if not name or name[0].isdigit() or not set(name) <= _ENV_NAME_CHARS:
            raise InvalidArgument(f"spec.env: {name!r} is not an environment variable name", field="spec.env")
    validate_labels(dict(spec.labels), field="spec.labels")


def autoscale_params(policy: scheduler_pb2.AutoscalePolicy) -> AutoscaleParams:
    """Validated autoscale parameters with defaults applied."""
    field = "spec.autoscale"
    lo, hi = policy.min_replicas or 1, policy.max_replicas
    if not 1 <= lo <= MAX_REPLICAS:
        raise InvalidArgument(f"{field}.min_replicas: {lo} is out of range (1 to {MAX_REPLICAS})",
                              field=f"{field}.min_replicas")
    if not lo <= hi <= MAX_REPLICAS:
        raise InvalidArgument(
            f"{field}.max_replicas: {hi} must be between min_replicas ({lo}) and {MAX_REPLICAS}",
            field=f"{field}.max_replicas",
        )
    if not policy.target_in_flight > 0:
        raise InvalidArgument(f"{field}.target_in_flight: must be more than 0", field=f"{field}.target_in_flight")
    tolerance = policy.tolerance if policy.tolerance else 0.1
    if not 0 <= tolerance < 1:
        raise InvalidArgument(f"{field}.tolerance: {tolerance} must be in [0, 1)", field=f"{field}.tolerance")
    return AutoscaleParams(
        min_replicas=lo,
        max_replicas=hi,
        target=policy.target_in_flight,
        tolerance=tolerance,
        scale_up_window=_window(policy.scale_up_window, f"{field}.scale_up_window", timedelta(0)),
        scale_down_window=_window(policy.scale_down_window, f"{field}.scale_down_window", DEFAULT_SCALE_DOWN_WINDOW),
    )


def agent_config(agent: registry_pb2.Agent) -> dict[str, Any]:
    """The agent's runtime config as plain JSON values."""
    return json_format.MessageToDict(agent.config) if agent.HasField("config") else {}


def check_deployable(agent: registry_pb2.Agent) -> None:
    """What a deployment needs beyond a valid agent: a known runtime and, for
    "process", a command; for "container", an image."""
    if agent.runtime not in RUNTIMES:
        raise InvalidArgument(
            f"agent.runtime: unknown runtime {agent.runtime!r} (valid: {', '.join(RUNTIMES)})", field="agent.runtime"
        )
    config = agent_config(agent)
    if agent.runtime == "process" and not config.get("command"):
        raise InvalidArgument(
            f"agent.config.command: agent {agent.id!r} has no command, so the scheduler cannot start it "
            "(set config.command, e.g. [\"python\", \"-m\", \"sutradhar.serve\", \"my_module:MyAgent\"])",
            field="agent.config.command",
        )
    if agent.runtime == "container" and not config.get("image"):
        raise InvalidArgument(
            f"agent.config.image: agent {agent.id!r} has no image (set config.image, e.g. \"my-agent:1.0\")",
            field="agent.config.image",
        )


def template_agent(agent: registry_pb2.Agent) -> registry_pb2.Agent:
    """The agent without output-only fields: what a revision snapshots."""
    out = registry_pb2.Agent()
    out.CopyFrom(agent)
    for name in ("create_time", "update_time", "resource_version"):
        out.ClearField(name)
    return out


def revision_of(agent: registry_pb2.Agent, spec: scheduler_pb2.DeploymentSpec) -> str:
    """Hash of everything that changes what a replica runs (10 hex digits).

    Routing policy, description and probes do not restart replicas; the
    version, runtime, config, resources, env and labels do.
    """
    material = {
        "type": agent.type,
        "version": agent.version,
        "capabilities": list(agent.capabilities),
        "runtime": agent.runtime,
        "config": agent_config(agent),
        "resources": [agent.resources.cpu, agent.resources.memory],
        "agent_labels": dict(agent.labels),
        "deploy_resources": [spec.resources.cpu, spec.resources.memory],
        "env": dict(spec.env),
        "labels": dict(spec.labels),
    }
    raw = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:10]
