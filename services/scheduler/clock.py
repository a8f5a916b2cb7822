"""The scheduler's clock: one small seam for every time it reads or waits.

`Clock.now()` is the wall clock (epoch seconds) for what is written down
(start times, back-off deadlines, events, condition transitions);
`Clock.monotonic()` is for deadlines measured in-process (readiness
timeouts, the autoscale period); `Clock.sleep()` is how the controller's
loops wait. `SYSTEM_CLOCK` reads the real ones; tests pass a clock of their
own and drive time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf import timestamp_pb2


class Clock(Protocol):
    """What the controller's parts read time from."""

    def now(self) -> float:
        """Wall-clock time, seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...


class SystemClock:
    """The real clocks: `time.time`, `time.monotonic`, `asyncio.sleep`."""

    def now(self) -> float:
        """`time.time()`."""
        return time.time()

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep(seconds)`."""
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
"""The clock every part uses unless it is given another."""


def timestamp(epoch: float) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp of `epoch` (wall-clock seconds)."""
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.fromtimestamp(epoch, UTC))
    return ts


def epoch(ts: timestamp_pb2.Timestamp) -> float:
    """Wall-clock seconds of a protobuf Timestamp (0 when unset)."""
    return ts.seconds + ts.nanos / 1e9
