"""Replica slots and the rules of their restarts, as plain data and pure functions.

A `Slot` is one replica of a deployment as the leader tracks it (its replica
once started, its phase, its restart count and back-off). The restart rules
take the time as an argument, so tests drive it:

- `crashed` counts a crash (an exit, a failed readiness, a liveness restart)
  and puts the slot in back-off: ``backoff_base`` doubling per restart,
  capped at ``backoff_max``, jittered by the shared `Backoff`;
- `restart_due` says whether a slot waiting in back-off may start again;
- `reset_if_stable` clears the restart count of a replica ready for
  ``backoff_reset``;
- `crash_looping` is the CrashLoopBackOff rule (``crash_loop_restarts``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sutradhar._backoff import Backoff
from sutradhar.services.common.probing import ProbeSettings
from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.runtimes.base import Replica
from sutradhar.v1 import scheduler_pb2

Key = tuple[str, str]
"""(namespace, deployment name)."""

LABEL_VERSION = "sutradhar.version"
P = scheduler_pb2


@dataclass
class Slot:
    """One replica slot of a deployment, as the leader tracks it."""

    id: str
    namespace: str
    deployment: str
    revision: str
    version: str
    runtime: str
    created: float
    replica: Replica | None = None
    phase: scheduler_pb2.ReplicaPhase = P.REPLICA_PHASE_STARTING
    ready: bool = False
    lease_id: int = 0
    restarts: int = 0
    back_off_until: float = 0.0
    message: str = ""
    ready_since: float = 0.0
    probe: ProbeSettings | None = None
    identity: str = ""
    """The replica's SPIFFE ID (its certificate's; registered with the instance), "" without TLS."""
    monitor: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def key(self) -> Key:
        """The deployment this slot belongs to."""
        return (self.namespace, self.deployment)

    @property
    def waiting(self) -> bool:
        """In back-off after a crash or a failed start."""
        return self.phase in (P.REPLICA_PHASE_BACK_OFF, P.REPLICA_PHASE_FAILED)


def restart_backoff(config: SchedulerConfig) -> Backoff:
    """The crash-restart back-off: ``backoff_base`` doubling per restart up to ``backoff_max``."""
    return Backoff(initial=config.backoff_base, maximum=config.backoff_max)


def crashed(
    slot: Slot, message: str, *, now: float, backoff: Backoff, rand: Callable[[], float] = random.random
) -> timedelta:
    """Count a crash of `slot` at wall-clock `now`: one more restart, BACK_OFF until
    the back-off of that restart has passed. Returns the delay."""
    slot.restarts += 1
    slot.phase = P.REPLICA_PHASE_BACK_OFF
    slot.message = message
    delay = backoff.delay(slot.restarts, rand)
    slot.back_off_until = now + delay.total_seconds()
    return delay


def restart_due(slot: Slot, now: float) -> bool:
    """Whether a slot waiting in back-off may be started again at `now`."""
    return slot.waiting and slot.back_off_until <= now


def reset_if_stable(slot: Slot, now: float, reset_after: timedelta) -> bool:
    """Clear the restart count of a replica ready for longer than `reset_after`;
    True when it did."""
    if slot.restarts and slot.ready_since and now - slot.ready_since > reset_after.total_seconds():
        slot.restarts = 0
        return True
    return False


def crash_looping(slot: Slot, config: SchedulerConfig) -> bool:
    """CrashLoopBackOff: waiting to restart after ``crash_loop_restarts`` restarts or more."""
    return slot.phase == P.REPLICA_PHASE_BACK_OFF and slot.restarts >= config.crash_loop_restarts
