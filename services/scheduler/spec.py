"""Pure checks and derivations on deployments: validation (InvalidArgument
naming the field), the revision hash of a pod template, and the runtime
requirements a deployment puts on its agent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from google.protobuf import json_format

from sutradhar._errors import InvalidArgument
from sutradhar._labels import validate_labels
from sutradhar._names import validate_dns_label, validate_namespace
from sutradhar.services.common.secret_refs import References, references, validate_env_vars, validate_files
from sutradhar.services.common.validation import parse_cpu, parse_memory
from sutradhar.services.scheduler.autoscale import AutoscaleParams
from sutradhar.services.scheduler.rollout import parse_int_or_percent, resolve_strategy
from sutradhar.services.scheduler.runtimes.config_schemas import RUNTIMES
from sutradhar.v1 import registry_pb2, scheduler_pb2

#: Largest replica count a deployment may ask for.
MAX_REPLICAS = 1000
#: Default scale-down stabilization window (Kubernetes HPA default).
DEFAULT_SCALE_DOWN_WINDOW = timedelta(seconds=300)
_MAX_WINDOW = timedelta(hours=1)
#: Docker refuses memory limits below 6 MiB.
CONTAINER_MIN_MEMORY = 6 * 1024 * 1024
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
    strategy = {}
    for name, value in (("max_surge", spec.strategy.max_surge), ("max_unavailable", spec.strategy.max_unavailable)):
        if value:
            strategy[name] = parse_int_or_percent(value, field=f"spec.strategy.{name}")[0]
    if strategy.get("max_surge") == 0 and strategy.get("max_unavailable") == 0:
        # a rollout could then neither start a new replica nor stop an old one (Kubernetes refuses it too)
        raise InvalidArgument(
            "spec.strategy.max_unavailable: may not be 0 when spec.strategy.max_surge is 0 (a rollout could "
            "neither add a new replica nor take an old one away); set max_unavailable or max_surge to at least 1",
            field="spec.strategy.max_unavailable",
        )
    for name in spec.env:
        if not name or name[0].isdigit() or not set(name) <= _ENV_NAME_CHARS:
            raise InvalidArgument(f"spec.env: {name!r} is not an environment variable name", field="spec.env")
    validate_labels(dict(spec.labels), field="spec.labels")
    validate_env_vars(spec.env_vars, field="spec.env_vars")
    validate_files(spec.files, field="spec.files")


def spec_references(agent: registry_pb2.Agent, spec: scheduler_pb2.DeploymentSpec) -> References:
    """What a replica of `agent` under `spec` takes from Secrets and ConfigMaps: the agent
    config's list-form `env` and `files`, then the deployment's `env_vars` and `files`."""
    config = agent_config(agent) if agent.runtime in ("process", "container") else {}
    return references(config.get("env"), config.get("files"), spec.env_vars, spec.files)


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


def serves_metrics(agent: registry_pb2.Agent, *, replica_metrics: bool) -> bool:
    """Whether the scheduler gives replicas of `agent` a metrics port: process and container
    replicas, when the scheduler's `replica_metrics` is on and the agent does not say `metrics: false`."""
    return replica_metrics and agent.runtime in ("process", "container") and \
        agent_config(agent).get("metrics", True) is not False


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


def fixed_port(agent: registry_pb2.Agent) -> int | None:
    """The host port a process agent always listens on (`config.port`), or None."""
    if agent.runtime != "process":
        return None  # a container's config.port is inside the container; each replica is published apart
    port = agent_config(agent).get("port")
    return int(port) if isinstance(port, int | float) and not isinstance(port, bool) else None


def check_fixed_port(agent: registry_pb2.Agent, spec: scheduler_pb2.DeploymentSpec) -> None:
    """A process agent with a fixed `config.port` can run one replica at a time:
    replicas (and autoscale max) at most 1, and a strategy that stops the old
    replica before starting the new one (a surge replica could never bind the
    port its old replica holds, so the rollout would never finish)."""
    port = fixed_port(agent)
    if port is None:
        return
    field = "agent.config.port"
    most = max(spec.replicas, spec.autoscale.max_replicas if spec.HasField("autoscale") else 0)
    if most > 1:
        what = (f"spec.autoscale.max_replicas is {spec.autoscale.max_replicas}"
                if spec.HasField("autoscale") and spec.autoscale.max_replicas > 1 else f"replicas is {spec.replicas}")
        raise InvalidArgument(
            f"{field}: agent {agent.id!r} always listens on port {port}, so only one replica can run, but {what}; "
            "set replicas to 1 (and autoscale max to 1, or remove autoscale), or drop config.port so that every "
            "replica gets a free port",
            field=field,
        )
    surge, unavailable = resolve_strategy(spec.strategy.max_surge, spec.strategy.max_unavailable, 1)
    if surge or not unavailable:
        raise InvalidArgument(
            f"{field}: agent {agent.id!r} always listens on port {port}, so a rollout cannot start the new replica "
            "beside the old one; set spec.strategy to max_surge: 0 and max_unavailable: 1 (the old replica stops "
            "first), or drop config.port so that every replica gets a free port",
            field=field,
        )


def check_resources(agent: registry_pb2.Agent, spec: scheduler_pb2.DeploymentSpec) -> None:
    """Resources the agent's runtime cannot honour: a container below Docker's 6Mi minimum."""
    if agent.runtime != "container":
        return
    for field, text in (("spec.resources.memory", spec.resources.memory),
                        ("agent.resources.memory", agent.resources.memory)):
        if text:
            if parse_memory(text, field=field) < CONTAINER_MIN_MEMORY:
                raise InvalidArgument(
                    f"{field}: {text!r} is below Docker's minimum of 6Mi for a container (set at least 6Mi)",
                    field=field,
                )
            return  # the deployment's memory overrides the agent's


def template_agent(agent: registry_pb2.Agent) -> registry_pb2.Agent:
    """The agent without output-only fields: what a revision snapshots."""
    out = registry_pb2.Agent()
    out.CopyFrom(agent)
    for name in ("create_time", "update_time", "resource_version"):
        out.ClearField(name)
    return out


def revision_of(
    agent: registry_pb2.Agent, spec: scheduler_pb2.DeploymentSpec, objects: Mapping[str, str] | None = None
) -> str:
    """Hash of everything that changes what a replica runs (10 hex digits).

    Routing policy, description and probes do not restart replicas; the
    version, runtime, config, resources, env and labels do, and so do the
    versions of the Secrets and ConfigMaps the replicas reference (`objects`:
    "secret/NAME" -> version, `secret_refs.object_versions`; never values), so a
    changed secret rolls the deployment like a changed spec. What only a newer
    spec has (env_vars, files, objects) enters the hash only when set, so the
    revisions of deployments without them are what they were.
    """
    material: dict[str, Any] = {
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
    if spec.env_vars:
        material["env_vars"] = [json_format.MessageToDict(v) for v in spec.env_vars]
    if spec.files:
        material["files"] = [json_format.MessageToDict(f) for f in spec.files]
    if objects:
        material["objects"] = dict(objects)
    raw = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:10]
