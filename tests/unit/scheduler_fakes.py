"""Fakes at the scheduler's own seams (clock, runtime, registry, prober) for unit tests.

No network and no etcd: the controller's parts are driven with these, and
time moves only when a test (or a part's `sleep`) moves it.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from sutradhar._errors import AlreadyExists, Conflict, NotFound
from sutradhar.services.common.probing import ProbeOutcome, ProbeSettings
from sutradhar.services.common.store import Guard, KeyValue, Op, Scan
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
    """Virtual time: wall and monotonic clocks that move only when a test moves them.

    `sleep` blocks until the clock has been moved past its deadline; `advance`
    moves it (waking the sleepers that are due) and `run_until` runs the event
    loop, jumping from one sleeper's deadline to the next, until a condition
    holds. Nothing waits in real time.
    """

    def __init__(self, wall: float = EPOCH, mono: float = 1000.0) -> None:
        self.wall = wall
        self.mono = mono
        self.slept: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def now(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self.mono + seconds, self._seq, future))
        await future

    def advance(self, seconds: float) -> None:
        """Move both clocks on by `seconds`; wake every sleeper now due."""
        self.wall += seconds
        self.mono += seconds
        while self._sleepers and self._sleepers[0][0] <= self.mono:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def settle(self) -> None:
        """Let every runnable task run until it waits again."""
        for _ in range(50):
            await asyncio.sleep(0)

    async def run_until(self, condition: Callable[[], bool], *, limit: float = 3600.0) -> None:
        """Run tasks, moving time to the next sleeper's deadline whenever all
        wait, until `condition()` holds (AssertionError past `limit` seconds)."""
        start = self.mono
        while True:
            await self.settle()
            if condition():
                return
            live = [entry for entry in self._sleepers if not entry[2].done()]
            if not live:
                raise AssertionError("nothing is sleeping and the condition does not hold")
            deadline = min(entry[0] for entry in live)
            if deadline - start > limit:
                raise AssertionError(f"condition did not hold within {limit:g}s of virtual time")
            self.advance(max(0.0, deadline - self.mono))


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
        self.found: list[Replica] = []
        """What `list` finds (replicas left running by an earlier leader)."""

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
        return [r for r in self.found if namespace is None or r.namespace == namespace]

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

    def for_adoption(self, names: object) -> list[FakeRuntime]:
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


class FakeStore:
    """The Store seam in memory: get, list, put, delete and commits guarded by mod revision."""

    def __init__(self) -> None:
        self.kvs: dict[str, KeyValue] = {}
        self.revision = 0

    async def get(self, key: str) -> KeyValue | None:
        return self.kvs.get(key)

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        return sorted((kv for k, kv in self.kvs.items() if k.startswith(prefix)), key=lambda kv: kv.key), self.revision

    async def scan(self, start: str, end: str | bytes, *, keys_only: bool = False, **_: object) -> Scan:
        stop = end.decode() if isinstance(end, bytes) else end
        found = sorted((kv for k, kv in self.kvs.items() if start <= k < stop), key=lambda kv: kv.key)
        if keys_only:
            found = [replace(kv, value=b"") for kv in found]
        return Scan(found, self.revision, False, len(found))

    async def commit(self, guards: list[Guard], ops: list[Op]) -> int:
        for guard in guards:
            kv = self.kvs.get(guard.key)
            if guard.mod_revision == 0 and kv is not None:
                raise AlreadyExists(f"{guard.key} exists")
            if guard.mod_revision and kv is None:
                raise NotFound(f"{guard.key} not found")
            if guard.mod_revision and kv is not None and kv.mod_revision != guard.mod_revision:
                raise Conflict(f"{guard.key} changed")
        self.revision += 1
        for op in ops:
            prev = self.kvs.get(op.key)
            if op.value is None:
                self.kvs.pop(op.key, None)
                continue
            self.kvs[op.key] = KeyValue(
                key=op.key, value=op.value, create_revision=prev.create_revision if prev else self.revision,
                mod_revision=self.revision, version=prev.version + 1 if prev else 1, lease=op.lease,
            )
        return self.revision

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        return await self.commit([], [Op(key, value, lease)])

    async def delete(self, key: str) -> bool:
        existed = key in self.kvs
        await self.commit([], [Op(key, None)])
        return existed


class FakeProbers:
    """The prober seam: a TCP check passes while `port_open`; other kinds answer
    as scripted per call (the last answer repeats)."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers) or [True]
        self.port_open = True
        self.checked: list[tuple[str, ProbeSettings]] = []
        self.forgotten: list[str] = []

    async def check(
        self, endpoint: str, settings: ProbeSettings, *, identity: str = "", instance_id: str = ""
    ) -> ProbeOutcome:
        self.checked.append((endpoint, settings))
        if settings.kind == "tcp":
            return ProbeOutcome(self.port_open, "" if self.port_open else "ConnectionRefusedError: refused")
        ok = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return ProbeOutcome(ok, "" if ok else "health status NOT_SERVING")

    def kinds(self) -> list[str]:
        """The kind of every check so far, in order."""
        return [settings.kind for _, settings in self.checked]

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
        self.store = FakeStore()
        self.registrar = Registrar(self.registry, self.store, self.config, clock=self.clock)  # type: ignore[arg-type]
        self.tasks: list[asyncio.Task[None]] = []
        kwargs = {} if rand is None else {"rand": lambda: rand}
        self.supervisor = Supervisor(
            self.store, FakeRuntimes(self.runtime), self.registrar, self.config,  # type: ignore[arg-type]
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

    async def run(self, coro) -> object:
        """Run `coro` to its end, moving virtual time as it sleeps."""
        task = asyncio.get_running_loop().create_task(coro)
        await self.clock.run_until(task.done)
        return task.result()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.queue.close()
