"""Namespace quotas as pure arithmetic: amounts, usage, admission and room.

A `ResourceQuota` (quota.proto) holds hard limits on five resources of one
namespace, with Kubernetes ResourceQuota semantics:

==============  ====================================================  =============
resource        what counts                                           unit
==============  ====================================================  =============
``agents``      agent definitions                                     objects
``deployments`` deployments (one being deleted still counts)          objects
``replicas``    sum of desired replicas (an autoscaled deployment     replicas
                counts at least its ``min_replicas``; one being
                deleted counts 0)
``cpu``         sum of replicas x per-replica cpu limit               millicores
``memory``      sum of replicas x per-replica memory limit            bytes
==============  ====================================================  =============

A replica's limit is the deployment's ``spec.resources`` where set, else its
agent's ``resources`` (as the scheduler runs it). Several quotas in a
namespace all apply. An admission is described as the namespace's objects
before and after the change (`Objects`); `admit` refuses, with
`ResourceExhausted`, a change that makes any resource it *increases* exceed a
hard limit (one already over its limit may still shrink or stay), and, with
`FailedPrecondition`, one that would run replicas without a cpu or memory
limit in a namespace whose quota bounds that resource (Kubernetes refuses
such pods). `room` says how many more replicas of one deployment fit, for the
autoscaler and for a rolling update's surge.

Nothing here does I/O (`services.common.quota_store` reads etcd); amounts are
integers so sums are exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from sutradhar._errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from sutradhar._fields import field_error, quote
from sutradhar._names import validate_dns_label, validate_namespace
from sutradhar.services.common import keys
from sutradhar.services.common.validation import cpu_quantity, memory_quantity
from sutradhar.v1 import quota_pb2, registry_pb2, scheduler_pb2

__all__ = [
    "AGENTS",
    "COMPUTE",
    "CPU",
    "DEPLOYMENTS",
    "MEMORY",
    "REPLICAS",
    "RESOURCES",
    "AgentFootprint",
    "DeploymentFootprint",
    "Objects",
    "Quota",
    "Room",
    "admit",
    "agent_footprint",
    "agent_footprint_json",
    "deployment_footprint",
    "deployment_footprint_json",
    "format_amount",
    "parse_amount",
    "quota_from_proto",
    "room",
    "status_of",
    "usage",
    "validate_quota",
]

AGENTS: Final = "agents"
DEPLOYMENTS: Final = "deployments"
REPLICAS: Final = "replicas"
CPU: Final = "cpu"
MEMORY: Final = "memory"
RESOURCES: Final = (AGENTS, DEPLOYMENTS, REPLICAS, CPU, MEMORY)
"""Every resource a quota may bound, in the order they are shown."""
COMPUTE: Final = (CPU, MEMORY)
"""Resources counted per replica from its limits."""

#: Largest count a quota may name (agents, deployments, replicas).
MAX_COUNT: Final = 1_000_000
_BINARY_UNITS: Final = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


# -- amounts ----------------------------------------------------------------


def parse_amount(resource: str, text: str, *, field: str) -> int:
    """A hard limit or a per-replica limit as an integer amount: objects or
    replicas for counts, millicores for cpu (rounded up to 1m, as Kubernetes
    does), bytes for memory. InvalidArgument naming `field`."""
    raw = text.strip() if isinstance(text, str) else text
    if resource == CPU:
        return math.ceil(cpu_quantity(raw, field=field) * 1000)
    if resource == MEMORY:
        return memory_quantity(raw, field=field)
    if resource not in RESOURCES:
        raise field_error(field, f"{quote(resource)} is not a quota resource (valid: {', '.join(RESOURCES)})")
    if not raw.isdigit():
        raise field_error(field, f"{quote(text)} is not a whole number of {resource} (e.g. \"10\")")
    value = int(raw)
    if value > MAX_COUNT:
        raise field_error(field, f"{value} is more than {MAX_COUNT}")
    return value


def format_amount(resource: str, value: int) -> str:
    """An amount as a Kubernetes quantity: cpu "2" or "2500m", memory "8Gi"
    (the largest binary unit that divides it) or bytes, counts as they are."""
    if resource == CPU:
        return str(value // 1000) if value % 1000 == 0 else f"{value}m"
    if resource == MEMORY:
        for unit, size in _BINARY_UNITS:
            if value and value % size == 0:
                return f"{value // size}{unit}"
        return str(value)
    return str(value)


# -- quotas -----------------------------------------------------------------


@dataclass(frozen=True)
class Quota:
    """One quota's hard limits, parsed."""

    namespace: str
    name: str
    hard: Mapping[str, int]
    """Resource -> most allowed (amount units: see `parse_amount`)."""

    @property
    def title(self) -> str:
        """How messages name it: "team-a/compute"."""
        return f"{self.namespace}/{self.name}"


def validate_quota(quota: quota_pb2.ResourceQuota, *, field: str = "quota") -> None:
    """Check a quota a caller sends; InvalidArgument naming the field."""
    validate_namespace(quota.namespace, field=f"{field}.namespace")
    validate_dns_label(quota.name, field=f"{field}.name", what="quota name")
    if not quota.spec.hard:
        raise field_error(f"{field}.spec.hard", (
            f"at least one limit is required (resources: {', '.join(RESOURCES)}; e.g. replicas: \"10\", cpu: \"4\", "
            "memory: \"8Gi\")"))
    for resource in sorted(quota.spec.hard):
        where = f"{field}.spec.hard.{resource}"
        if resource not in RESOURCES:
            raise field_error(where, f"{quote(resource)} is not a quota resource (valid: {', '.join(RESOURCES)})")
        parse_amount(resource, quota.spec.hard[resource], field=where)


def quota_from_proto(quota: quota_pb2.ResourceQuota) -> Quota:
    """The arithmetic's view of a stored quota (entries that do not parse are
    left out: a value no registry wrote limits nothing)."""
    hard: dict[str, int] = {}
    for resource, text in quota.spec.hard.items():
        try:
            hard[resource] = parse_amount(resource, text, field=f"spec.hard.{resource}")
        except InvalidArgument:
            continue
    return Quota(keys.namespace_or_default(quota.namespace), quota.name, hard)


def status_of(quota: Quota, used: Mapping[str, int]) -> quota_pb2.ResourceQuotaStatus:
    """A quota's status: its hard limits and the usage of each, normalized."""
    return quota_pb2.ResourceQuotaStatus(
        hard={r: format_amount(r, v) for r, v in quota.hard.items()},
        used={r: format_amount(r, used.get(r, 0)) for r in quota.hard},
    )


# -- what a namespace holds -------------------------------------------------


@dataclass(frozen=True)
class AgentFootprint:
    """An agent definition's default per-replica limits (None: no limit)."""

    cpu: int | None = None
    """Millicores."""
    memory: int | None = None
    """Bytes."""


@dataclass(frozen=True)
class DeploymentFootprint:
    """What one deployment holds."""

    agent_id: str
    replicas: int
    """Replicas it counts for (see the module docstring)."""
    cpu: int | None = None
    """Per-replica cpu override (spec.resources.cpu), millicores."""
    memory: int | None = None
    """Per-replica memory override (spec.resources.memory), bytes."""


@dataclass(frozen=True)
class Objects:
    """The objects of one namespace that quotas count."""

    agents: Mapping[str, AgentFootprint] = field(default_factory=dict)
    deployments: Mapping[str, DeploymentFootprint] = field(default_factory=dict)

    def per_replica(self, name: str) -> dict[str, int | None]:
        """Deployment `name`'s per-replica amount of each resource a replica uses."""
        d = self.deployments[name]
        agent = self.agents.get(d.agent_id, AgentFootprint())
        return {
            REPLICAS: 1,
            CPU: d.cpu if d.cpu is not None else agent.cpu,
            MEMORY: d.memory if d.memory is not None else agent.memory,
        }

    def with_agent(self, agent_id: str, footprint: AgentFootprint) -> Objects:
        """These objects with agent `agent_id` added or replaced."""
        return replace(self, agents={**self.agents, agent_id: footprint})

    def with_deployment(self, name: str, footprint: DeploymentFootprint) -> Objects:
        """These objects with deployment `name` added or replaced."""
        return replace(self, deployments={**self.deployments, name: footprint})

    def with_replicas(self, replicas: Mapping[str, int]) -> Objects:
        """These objects with the replica counts of some deployments replaced."""
        changed = {n: replace(d, replicas=replicas[n]) for n, d in self.deployments.items() if n in replicas}
        return replace(self, deployments={**self.deployments, **changed})


def _amount(resource: str, text: str) -> int | None:
    if not text:
        return None
    try:
        return parse_amount(resource, text, field=resource)
    except InvalidArgument:
        return None


def agent_footprint(agent: registry_pb2.Agent) -> AgentFootprint:
    """An agent's default per-replica limits."""
    return AgentFootprint(cpu=_amount(CPU, agent.resources.cpu), memory=_amount(MEMORY, agent.resources.memory))


def _footprint(agent_id: str, replicas: int, autoscale_min: int | None, deleting: bool, cpu: str,
               memory: str) -> DeploymentFootprint:
    """The one rule of what a deployment counts for: its desired replicas, at least the
    autoscaler's minimum (`autoscale_min`, None without autoscale), none while it is being
    deleted; and its per-replica overrides."""
    counted = max(replicas, 0)
    if autoscale_min is not None:
        counted = max(counted, autoscale_min or 1)
    if deleting:
        counted = 0
    return DeploymentFootprint(agent_id=agent_id, replicas=counted, cpu=_amount(CPU, cpu),
                               memory=_amount(MEMORY, memory))


def deployment_footprint(d: scheduler_pb2.Deployment) -> DeploymentFootprint:
    """What a deployment counts for (see `_footprint`)."""
    spec = d.spec
    autoscale_min = spec.autoscale.min_replicas if spec.HasField("autoscale") else None
    return _footprint(spec.agent_id, spec.replicas, autoscale_min, d.HasField("delete_time"),
                      spec.resources.cpu, spec.resources.memory)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def agent_footprint_json(stored: Mapping[str, object]) -> AgentFootprint:
    """`agent_footprint` of a stored agent's JSON (`keys.encode`), read without building the
    message: a namespace's agents are read on every admission."""
    resources = _mapping(stored.get("resources"))
    return AgentFootprint(cpu=_amount(CPU, _text(resources.get("cpu"))),
                          memory=_amount(MEMORY, _text(resources.get("memory"))))


def deployment_footprint_json(stored: Mapping[str, object]) -> DeploymentFootprint:
    """`deployment_footprint` of a stored deployment's JSON (`keys.encode`: protobuf JSON
    names), read without building the message (a deployment's status can be large)."""
    spec = _mapping(stored.get("spec"))
    resources = _mapping(spec.get("resources"))
    autoscale = spec.get("autoscale")
    autoscale_min = _int(_mapping(autoscale).get("minReplicas")) if isinstance(autoscale, Mapping) else None
    return _footprint(_text(spec.get("agentId")), _int(spec.get("replicas")), autoscale_min,
                      "deleteTime" in stored, _text(resources.get("cpu")), _text(resources.get("memory")))


def usage(objects: Objects) -> dict[str, int]:
    """How much of each resource the objects use. A replica without a limit
    adds nothing to cpu or memory (admission refuses such replicas where a
    quota bounds that resource)."""
    used = {AGENTS: len(objects.agents), DEPLOYMENTS: len(objects.deployments), REPLICAS: 0, CPU: 0, MEMORY: 0}
    for name, d in objects.deployments.items():
        each = objects.per_replica(name)
        for resource in (REPLICAS, *COMPUTE):
            amount = each[resource]
            if amount is not None:
                used[resource] += d.replicas * amount
    return used


# -- admission --------------------------------------------------------------


_FIX = ("scale down or delete what the namespace no longer needs, or ask a cluster-admin to raise the quota "
        "(`sutradhar quota -n {ns}` shows used and hard)")


def _check_limits(quotas: Iterable[Quota], before: Objects, after: Objects, what: str) -> None:
    """FailedPrecondition for a changed deployment that would run replicas
    without a limit on a resource a quota bounds."""
    bounded = [(q, r) for q in quotas for r in COMPUTE if r in q.hard]
    if not bounded:
        return
    for name, d in sorted(after.deployments.items()):
        if d.replicas <= 0:
            continue
        old = before.deployments.get(name)
        each = after.per_replica(name)
        if old is not None and old == d and before.per_replica(name) == each:
            continue  # unchanged: admitted before the quota, left alone (as Kubernetes leaves running pods)
        for q, resource in bounded:
            if each[resource] is None:
                raise FailedPrecondition(
                    f"{what}: quota {q.title} limits {resource}, so every replica needs a {resource} limit, and "
                    f"deployment {name!r} has none; set spec.resources.{resource} on the deployment (or "
                    f"resources.{resource} on agent {d.agent_id!r})"
                )


def admit(quotas: Iterable[Quota], before: Objects, after: Objects, *, what: str) -> dict[str, int]:
    """Check that changing the namespace from `before` to `after` fits every
    quota; returns the usage after. `what` names the change in messages
    ('deployment "web" scaled 6 -> 10').

    ResourceExhausted when a resource the change increases would exceed a
    quota's hard limit (naming the quota, the resource, requested, used and
    hard); FailedPrecondition when a replica would run without a limit on a
    resource a quota bounds."""
    quotas = sorted(quotas, key=lambda q: q.name)
    used, wanted = usage(before), usage(after)
    for q in quotas:
        for resource in RESOURCES:
            hard = q.hard.get(resource)
            requested = wanted[resource] - used[resource]
            if hard is None or requested <= 0 or wanted[resource] <= hard:
                continue
            raise ResourceExhausted(
                f"exceeded quota {q.title}: requested {resource}={format_amount(resource, requested)}, "
                f"used {format_amount(resource, used[resource])}, hard {format_amount(resource, hard)} ({what}); "
                + _FIX.format(ns=q.namespace)
            )
    _check_limits(quotas, before, after, what)
    return wanted


# -- room -------------------------------------------------------------------


@dataclass(frozen=True)
class Room:
    """How many more replicas of one deployment fit, and what binds."""

    extra: int | None
    """Replicas that still fit (None: no quota bounds them)."""
    quota: str = ""
    """The quota that binds ("team-a/compute"), when one does."""
    resource: str = ""
    """The resource that binds."""
    used: int = 0
    """Its usage (amount units)."""
    hard: int = 0
    """Its hard limit."""
    missing_limit: bool = False
    """The quota bounds `resource` and the replicas have no limit on it."""

    def describe(self) -> str:
        """ "quota team-a/compute: replicas used 10, hard 10"."""
        if self.extra is None:
            return "no quota bounds it"
        if self.missing_limit:
            return f"quota {self.quota} limits {self.resource} and the replicas have no {self.resource} limit"
        return (f"quota {self.quota}: {self.resource} used {format_amount(self.resource, self.used)}, "
                f"hard {format_amount(self.resource, self.hard)}")


def room(quotas: Iterable[Quota], objects: Objects, name: str) -> Room:
    """How many replicas of deployment `name` can be added to `objects`
    before a quota's replicas, cpu or memory limit is passed (0 when one is
    reached or already passed, or when a bounded resource has no per-replica
    limit)."""
    used = usage(objects)
    each = objects.per_replica(name)
    best = Room(extra=None)
    for q in sorted(quotas, key=lambda q: q.name):
        for resource in (REPLICAS, *COMPUTE):
            hard = q.hard.get(resource)
            if hard is None:
                continue
            amount = each[resource]
            if amount is None:
                return Room(extra=0, quota=q.title, resource=resource, hard=hard, missing_limit=True)
            if amount <= 0:
                continue
            fits = max(0, (hard - used[resource]) // amount)
            if best.extra is None or fits < best.extra:
                best = Room(extra=fits, quota=q.title, resource=resource, used=used[resource], hard=hard)
    return best

