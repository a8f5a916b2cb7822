"""A work queue of keys in the controller-runtime manner.

Keys, never events: adding a key that is already waiting does nothing, and a
key being processed is never handed to a second worker; if it is added again
meanwhile it is queued once more when the first worker calls `done`. Failed
keys come back after a per-key exponential back-off (`sutradhar._backoff.Backoff`,
jittered); `add_after` schedules a timed retry.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Hashable
from datetime import timedelta
from typing import Generic, TypeVar

from sutradhar._backoff import Backoff

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Deduplicating asyncio work queue with per-key failure back-off."""

    def __init__(
        self,
        *,
        base_delay: timedelta = timedelta(milliseconds=50),
        max_delay: timedelta = timedelta(seconds=10),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._failures: dict[K, int] = {}
        self._backoff = Backoff(initial=base_delay, maximum=max_delay)
        self._rand = rand

    def add(self, key: K) -> None:
        """Queue `key` unless it is queued already."""
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: timedelta) -> None:
        """Queue `key` after `delay` (the earliest of several requests wins)."""
        seconds = max(0.0, delay.total_seconds())
        if seconds == 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + seconds
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: K) -> timedelta:
        """Queue `key` after its failure back-off (doubling per failure, jittered); return the delay."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = self._backoff.delay(failures, self._rand)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset `key`'s failure back-off."""
        self._failures.pop(key, None)

    async def get(self) -> K:
        """The next key to process; call `done(key)` afterwards."""
        key = await self._queue.get()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        """Processing of `key` finished; re-queue it if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.put_nowait(key)

    def __len__(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Cancel pending timers."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
