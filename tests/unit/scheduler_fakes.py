"""Fakes at the scheduler's own seams (clock, runtime, registry, prober) for unit tests.

No network and no etcd: the controller's parts are driven with these, and
time moves only when a test (or a part's `sleep`) moves it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

from sutradhar._errors import NotFound
from sutradhar.services.common.probing import ProbeOutcome, ProbeSettings
from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.registration import Registrar
from sutradhar.services.scheduler.runtimes.base import Replica, ReplicaPhase, ReplicaSpec
from sutradhar.services.scheduler.slots import Slot
from sutradhar.services.scheduler.status import EventLog
from sutradhar.services.scheduler.supervision import Supervisor
from sutradhar.services.scheduler.workqueue import WorkQueue
from sutradhar.v1 import registry_pb2

EPOCH = 1_800_000_000.0


class FakeClock:
    """Wall and monotonic time that move only when told (or slept through)."""

    def __init__(self, wall: float = EPOCH, mono: float = 1000.0) -> None:
        self.wall = wall
        self.mono = mono
        self.slept: list[float] = []

    def now(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


class FakeRuntime:
    """A runtime whose replicas run until the test says they exit."""

    name = "process"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.started: list[ReplicaSpec] = []
        self.stopped: list[str] = []
        self.exit_at: dict[str, float] = {}
        """replica id -> monotonic time from which `inspect` says it exited."""
        self.exit_message = "exited with code 3"

    async def start(self, spec: ReplicaSpec) -> Replica:
        self.started.append(spec)
        return Replica(
            replica_id=spec.replica_id, runtime=self.name, namespace=spec.namespace, deployment=spec.deployment,
            revision=spec.revision, agent_id=spec.agent.id, phase=ReplicaPhase.RUNNING,
            endpoint=f"127.0.0.1:{40000 + len(self.started)}", native_id=str(len(self.started)),
            started_at=datetime.fromtimestamp(self.clock.now()),
        )

    async def stop(self, replica: Replica, *, grace: timedelta = timedelta(seconds=10)) -> None:
        self.stopped.append(replica.replica_id)

    async def list(self, namespace: str | None = None) -> list[Replica]:
        return []

    async def inspect(self, replica: Replica) -> Replica:
        at = self.exit_at.get(replica.replica_id)
        if replica.replica_id in self.stopped or (at is not None and self.clock.monotonic() >= at):
            return replace(replica, phase=ReplicaPhase.EXITED, message=self.exit_message)
        return replace(replica, phase=ReplicaPhase.RUNNING)


class FakeRuntimes:
    """The RuntimeSet seam: one fake runtime for every name."""

    def __init__(self, runtime: FakeRuntime) -> None:
        self.runtime = runtime

    def get(self, name: str) -> FakeRuntime:
        return self.runtime

    def loaded(self) -> list[FakeRuntime]:
        return [self.runtime]


class FakeRegistry:
    """The RegistryClient seam: instances kept in a dict."""

    def __init__(self) -> None:
        self.instances: dict[str, registry_pb2.Instance] = {}
        self.leases = 0
        self.renewed: list[str] = []
        self.states: dict[str, int] = {}

    async def register_instance(self, instance, *, ttl, replace=False, timeout=None):  # noqa: ASYNC109 (RegistryClient's signature)
        self.leases += 1
        stored = registry_pb2.Instance()
        stored.CopyFrom(instance)
        stored.lease_id = self.leases
        self.instances[instance.id] = stored
        return stored

    async def deregister_instance(self, instance_id, *, namespace="", timeout=None):  # noqa: ASYNC109 (RegistryClient's signature)
        if self.instances.pop(instance_id, None) is None:
            raise NotFound(f"instance {instance_id} not found")

    async def keep_alive_instance(self, instance_id, lease_id, *, namespace="", timeout=None):  # noqa: ASYNC109 (RegistryClient's signature)
        inst = self.instances.get(instance_id)
        if inst is None or inst.lease_id != lease_id:
            raise NotFound(f"instance {instance_id} not found")
        self.renewed.append(instance_id)

    async def update_instance_state(self, instance_id, state, *, namespace="", timeout=None):  # noqa: ASYNC109 (RegistryClient's signature)
        self.states[instance_id] = state


class FakeProbers:
    """The prober seam: readiness answers scripted per call (the last one repeats)."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers) or [True]
        self.checked: list[tuple[str, ProbeSettings]] = []
        self.forgotten: list[str] = []

    async def check(self, endpoint: str, settings: ProbeSettings) -> ProbeOutcome:
        self.checked.append((endpoint, settings))
        ok = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return ProbeOutcome(ok, "" if ok else "health status NOT_SERVING")

    async def forget(self, endpoint: str) -> None:
        self.forgotten.append(endpoint)


def unit_config(**overrides: object) -> SchedulerConfig:
    """Scheduler settings for unit tests (round numbers)."""
    values: dict[str, object] = dict(
        backoff_base=timedelta(seconds=1), backoff_max=timedelta(seconds=8), backoff_reset=timedelta(seconds=60),
        crash_loop_restarts=2, readiness_timeout=timedelta(seconds=10), monitor_period=timedelta(seconds=1),
        instance_ttl=timedelta(seconds=9), drain_delay=timedelta(0),
    )
    values.update(overrides)
    return SchedulerConfig(**values)  # type: ignore[arg-type]


class Harness:
    """A Supervisor over fakes, with the pieces a test looks at."""

    def __init__(self, *, probers: FakeProbers | None = None, rand: float | None = 0.0, **config: object) -> None:
        self.clock = FakeClock()
        self.config = unit_config(**config)
        self.runtime = FakeRuntime(self.clock)
        self.registry = FakeRegistry()
        self.probers = probers or FakeProbers(True)
        self.queue: WorkQueue[tuple[str, str]] = WorkQueue()
        self.events = EventLog()
        self.registrar = Registrar(self.registry, None, self.config, clock=self.clock)  # type: ignore[arg-type]
        self.tasks: list[asyncio.Task[None]] = []
        kwargs = {} if rand is None else {"rand": lambda: rand}
        self.supervisor = Supervisor(
            None, FakeRuntimes(self.runtime), self.registrar, self.config,  # type: ignore[arg-type]
            queue=self.queue, events=self.events, spawn=self._spawn, probers=self.probers,  # type: ignore[arg-type]
            clock=self.clock, **kwargs,  # type: ignore[arg-type]
        )

    def _spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.append(task)
        return task

    def reasons(self, key: tuple[str, str] = ("ns", "web")) -> list[str]:
        return [e.reason for e in self.events.pending.get(key, [])]

    def slot(self, slot_id: str = "web-1", **fields: object) -> Slot:
        values: dict[str, object] = dict(
            id=slot_id, namespace="ns", deployment="web", revision="r1", version="1.0.0", runtime="process",
            created=self.clock.now(),
        )
        values.update(fields)
        slot = Slot(**values)  # type: ignore[arg-type]
        self.supervisor.slots.setdefault(slot.key, {})[slot.id] = slot
        return slot

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.queue.close()
