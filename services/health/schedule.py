"""One asyncio scheduler for every probe of a health member.

A heap keyed by due time (`DueQueue`, pure and clock-free) holds one entry per
probe job; one event-loop timer is armed for the earliest due time; when it
fires, every due job starts as a task under a concurrency bound, and each job
is put back at its next tick when it finishes. A thousand instances cost one
timer and a heap, not a thousand sleeping tasks (bench/health.py compares
the two).

Probe lag (start time - scheduled time) is recorded for every run.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from .probes import next_due

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """A periodic probe. `run` is awaited at each due time."""

    key: str
    period: timedelta
    run: Callable[[], Awaitable[None]]
    due: float = 0.0
    active: bool = True
    running: bool = False


class DueQueue:
    """Jobs ordered by due time; a job re-added or removed leaves a stale heap
    entry behind that is skipped when it surfaces."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, job: Job, due: float) -> None:
        """(Re)schedule `job` at `due`."""
        job.due = due
        job.active = True
        heapq.heappush(self._heap, (due, next(self._seq), job))

    def next_due(self) -> float | None:
        """The earliest live due time, or None when nothing is scheduled."""
        while self._heap:
            due, _, job = self._heap[0]
            if job.active and job.due == due and not job.running:
                return due
            heapq.heappop(self._heap)
        return None

    def pop_due(self, now: float, limit: int | None = None) -> list[Job]:
        """Remove and return the live jobs due at or before `now`, earliest
        first, marked running (the caller pushes them back when done)."""
        out: list[Job] = []
        while self._heap and (limit is None or len(out) < limit):
            due, _, job = self._heap[0]
            if not (job.active and job.due == due and not job.running):
                heapq.heappop(self._heap)
                continue
            if due > now:
                break
            heapq.heappop(self._heap)
            job.running = True
            out.append(job)
        return out


@dataclass
class LagStats:
    """Recent probe lags (seconds) and a running probe count."""

    window: int = 20_000
    lags: deque[float] = field(default_factory=deque)
    started: int = 0
    finished: int = 0

    def record(self, lag: float) -> None:
        """Add one lag sample."""
        self.started += 1
        self.lags.append(lag)
        if len(self.lags) > self.window:
            self.lags.popleft()

    def percentile(self, q: float) -> float:
        """The q-quantile (0..1) of the kept samples; 0 when there are none."""
        if not self.lags:
            return 0.0
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ProbeScheduler:
    """Runs jobs at their due times with at most `concurrency` at once.

    Callback-driven: one timer is armed for the earliest due job; when it
    fires, every due job starts as a task (or waits in `ready` for a free
    slot), and the timer is armed again. A finished job is pushed back at
    its next tick and frees its slot for a waiting one.
    """

    def __init__(
        self, *, concurrency: int = 256, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self.stats = LagStats()
        self._queue = DueQueue()
        self._jobs: dict[str, Job] = {}
        self._concurrency = concurrency
        self._running = 0
        self._ready: deque[Job] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._tg: asyncio.TaskGroup | None = None

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: Job, due: float) -> None:
        """Schedule a new job (replacing one with the same key) at `due`."""
        old = self._jobs.get(job.key)
        if old is not None:
            old.active = False
        self._jobs[job.key] = job
        self._queue.push(job, due)
        self.wake()

    def remove(self, key: str) -> None:
        """Stop scheduling `key` (a run under way finishes)."""
        job = self._jobs.pop(key, None)
        if job is not None:
            job.active = False

    def reschedule(self, key: str, period: timedelta) -> None:
        """Change a job's period; it takes effect from the next tick."""
        job = self._jobs.get(key)
        if job is None or job.period == period:
            return
        job.period = period
        due = min(job.due, self.clock() + period.total_seconds())
        if not job.running and due != job.due:
            self._queue.push(job, due)
            self.wake()

    def wake(self) -> None:
        """Start what is due now and arm the timer for the next due job."""
        if self._tg is None:
            return
        self._ready.extend(self._queue.pop_due(self.clock()))
        while self._ready and self._running < self._concurrency:
            job = self._ready.popleft()
            if not job.active:
                job.running = False
                continue
            self._running += 1
            run = self._run(job)
            try:
                self._tg.create_task(run)
            except RuntimeError:  # run() is ending (cancelled): its TaskGroup takes no more tasks
                run.close()
                self._running -= 1
                job.running = False
                self._tg = None
                return
        self._arm()

    def _arm(self) -> None:
        due = self._queue.next_due()
        if due is None or (self._timer is not None and self._timer_at <= due):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = asyncio.get_running_loop().call_later(max(0.0, due - self.clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        self.wake()

    async def run(self) -> None:
        """Dispatch until cancelled; runs are tasks of a TaskGroup."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self.wake()
                await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            self._tg = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer, self._timer_at = None, math.inf

    async def _run(self, job: Job) -> None:
        start = self.clock()
        self.stats.record(start - job.due)
        try:
            await job.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("probe job %s failed", job.key)
        finally:
            self._running -= 1
            job.running = False
            self.stats.finished += 1
        if job.active and self._jobs.get(job.key) is job:
            self._queue.push(job, next_due(job.due, job.period, self.clock()))
        self.wake()
