"""Health events: derived from changes of stored instances, fanned out to watchers.

Events come from the etcd watch of instances, not from the member's own
probes, so a client watching any member sees the events of every instance,
whichever member probes it. `diff` is pure: it compares the previous and the
new stored instance and names what changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from sutradhar._names import ALL_NAMESPACES
from sutradhar.v1 import health_pb2, registry_pb2

from ..common import keys
from .probes import FAILURE, SUCCESS

E = health_pb2.HealthEventType


def _event(kind: int, instance: registry_pb2.Instance, revision: int, **extra: object) -> health_pb2.HealthEvent:
    ev = health_pb2.HealthEvent(
        type=kind,  # type: ignore[arg-type]
        namespace=keys.namespace_or_default(instance.namespace),
        agent_id=instance.agent_id,
        instance_id=instance.id,
        state=instance.state,
        revision=revision,
        **extra,  # type: ignore[arg-type]
    )
    ev.instance.CopyFrom(instance)
    ev.time.GetCurrentTime()
    return ev


def diff(
    old: registry_pb2.Instance | None, new: registry_pb2.Instance | None, revision: int
) -> list[health_pb2.HealthEvent]:
    """The health events between two stored versions of one instance
    (`old` None: it appeared; `new` None: it went away)."""
    if new is None:
        return [] if old is None else [_event(E.HEALTH_EVENT_TYPE_INSTANCE_REMOVED, old, revision)]
    if old is None:
        return [_event(E.HEALTH_EVENT_TYPE_INSTANCE_ADDED, new, revision)]
    out: list[health_pb2.HealthEvent] = []
    if new.drained and not old.drained:
        out.append(_event(E.HEALTH_EVENT_TYPE_DRAINED, new, revision))
    elif old.drained and not new.drained:
        out.append(_event(E.HEALTH_EVENT_TYPE_ENABLED, new, revision))
    for probe in ("readiness", "liveness"):
        before = getattr(old.health, probe)
        after = getattr(new.health, probe)
        if after.last_result == FAILURE and (
            before.last_result != FAILURE or after.consecutive_failures < before.consecutive_failures
        ):
            out.append(_event(E.HEALTH_EVENT_TYPE_PROBE_FAILED, new, revision, probe=probe,
                              message=after.last_message))
        elif after.last_result == SUCCESS and before.last_result == FAILURE:
            out.append(_event(E.HEALTH_EVENT_TYPE_PROBE_PASSED, new, revision, probe=probe))
    if new.health.restart_requested and not old.health.restart_requested:
        out.append(_event(E.HEALTH_EVENT_TYPE_RESTART_REQUESTED, new, revision, probe="liveness",
                          message=new.health.liveness.last_message))
    if new.state != old.state:
        reason = new.health.readiness.last_message if new.state == registry_pb2.INSTANCE_STATE_NOT_SERVING else ""
        out.append(_event(E.HEALTH_EVENT_TYPE_STATE_CHANGED, new, revision,
                          previous_state=old.state, message=reason))
    return out


def current(instance: registry_pb2.Instance) -> health_pb2.HealthEvent:
    """A CURRENT event: the instance as it is now."""
    return _event(E.HEALTH_EVENT_TYPE_CURRENT, instance, 0)


def matches(event: health_pb2.HealthEvent, namespace: str, agent_id: str) -> bool:
    """Whether `event` passes a watcher's filter ("*" namespace: every one)."""
    if namespace != ALL_NAMESPACES and event.namespace != keys.namespace_or_default(namespace):
        return False
    return not agent_id or event.agent_id == agent_id


@dataclass(eq=False)
class Subscription:
    """One watcher's queue. `overflowed` is set when it fell too far behind."""

    namespace: str
    agent_id: str
    queue: asyncio.Queue[health_pb2.HealthEvent] = field(default_factory=lambda: asyncio.Queue(10_000))
    overflowed: bool = False


class EventBus:
    """Fans events out to subscribers; a subscriber that falls 10,000 events
    behind is cut off (its stream ends with RESOURCE_EXHAUSTED) rather than
    growing memory without bound."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def subscribe(self, namespace: str, agent_id: str) -> Subscription:
        """Start receiving matching events."""
        sub = Subscription(namespace, agent_id)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop receiving events."""
        self._subs.discard(sub)

    def publish(self, events: Iterable[health_pb2.HealthEvent]) -> None:
        """Deliver events to every matching subscriber."""
        for ev in events:
            for sub in list(self._subs):
                if sub.overflowed or not matches(ev, sub.namespace, sub.agent_id):
                    continue
                try:
                    sub.queue.put_nowait(ev)
                except asyncio.QueueFull:
                    sub.overflowed = True
                    self._subs.discard(sub)
