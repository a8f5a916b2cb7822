"""Aggregate health of an agent from its instances (pure)."""

from __future__ import annotations

from collections.abc import Iterable

from sutradhar.v1 import health_pb2, registry_pb2

from ..common import keys
from .probes import DRAINING, NOT_SERVING, SERVING

S = health_pb2.AgentHealthStatus


def aggregate(
    namespace: str, agent_id: str, instances: Iterable[registry_pb2.Instance], *, include_instances: bool = True
) -> health_pb2.AgentHealth:
    """Count the instances by state and give the verdict:

    - HEALTHY: at least one instance, and every one not drained is SERVING;
    - DEGRADED: some SERVING, some undrained ones not;
    - UNHEALTHY: instances exist but none is SERVING;
    - UNSPECIFIED: no instance.
    """
    ordered = sorted(instances, key=lambda i: i.id)
    out = health_pb2.AgentHealth(namespace=keys.namespace_or_default(namespace), agent_id=agent_id)
    for inst in ordered:
        out.total += 1
        if inst.state == SERVING:
            out.serving += 1
        elif inst.state == NOT_SERVING:
            out.not_serving += 1
        elif inst.state == DRAINING:
            out.draining += 1
        else:
            out.unknown += 1
        if inst.health.restart_requested:
            out.restart_requested += 1
    undrained_not_serving = sum(1 for i in ordered if i.state != SERVING and not i.drained)
    if out.total == 0:
        out.status = S.AGENT_HEALTH_STATUS_UNSPECIFIED
    elif out.serving == 0:
        out.status = S.AGENT_HEALTH_STATUS_UNHEALTHY
    elif undrained_not_serving or out.restart_requested:
        out.status = S.AGENT_HEALTH_STATUS_DEGRADED
    else:
        out.status = S.AGENT_HEALTH_STATUS_HEALTHY
    if include_instances:
        out.instances.extend(ordered)
    return out
