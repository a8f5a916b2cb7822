"""asyncio helpers that keep cancellation.

On Python 3.11, `asyncio.wait_for` can swallow a cancellation that arrives
just as the awaited thing completes (CPython gh-86296, fixed in 3.12 by
rebuilding `wait_for` on `asyncio.timeout`): a loop that waits on an event
with `wait_for` may then never see its task being cancelled, and whatever
awaits that task on shutdown waits forever. `asyncio.timeout` has no such
race, so waits with a time limit go through here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta
from typing import Any


async def wait_set(event: asyncio.Event, within: timedelta | float) -> bool:
    """Wait until `event` is set, at most `within` (a timedelta or seconds);
    True if it was set. A cancellation of the caller always propagates."""
    if event.is_set():
        return True
    seconds = within.total_seconds() if isinstance(within, timedelta) else float(within)
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_until_done(tasks: Iterable[asyncio.Task[Any]], *, every: float = 1.0) -> None:
    """Cancel `tasks` and wait until each has ended, cancelling again every `every` seconds:
    a cancellation can still be lost inside code we do not own (aetcd's connect and watch
    use `wait_for`), and one lost cancellation must not make a stop wait forever."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=every)
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: a task that failed while stopping is not logged as never awaited
