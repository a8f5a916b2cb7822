"""sutradhar._aio.wait_set: a timed wait on an event that never loses a cancellation."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from sutradhar._aio import wait_set


async def _cancel_as_the_event_is_set(wait) -> None:  # type: ignore[no-untyped-def]
    event = asyncio.Event()
    task = asyncio.create_task(wait(event))
    await asyncio.sleep(0)  # the task now waits on the event
    event.set()
    task.cancel()
    await task


def test_a_cancellation_that_races_the_event_is_kept() -> None:
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(_cancel_as_the_event_is_set(lambda e: wait_set(e, 10)))


def test_set_before_the_limit_is_true_and_a_timeout_is_false() -> None:
    async def main() -> tuple[bool, bool, bool]:
        event = asyncio.Event()
        asyncio.get_running_loop().call_later(0.01, event.set)
        first = await wait_set(event, timedelta(seconds=5))
        again = await wait_set(event, 0)  # already set: no wait at all
        return first, again, await wait_set(asyncio.Event(), 0.01)

    assert asyncio.run(main()) == (True, True, False)


def test_an_etcd_call_cancelled_as_it_completes_stays_cancelled() -> None:
    """The store's deadline once used wait_for: a router's member-lease loop then
    lost its cancellation and the router's stop() waited forever (a CI timeout)."""
    from sutradhar.services.common.store import EtcdEndpoint, Store

    async def main() -> None:
        store = Store(EtcdEndpoint(port=1))  # never connects: the call below does not reach etcd

        async def call(event: asyncio.Event) -> None:
            async def answer() -> None:
                await event.wait()

            await store._call(answer)

        await _cancel_as_the_event_is_set(call)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())


def test_no_module_uses_wait_for() -> None:
    """One rule for timed waits: asyncio.timeout or wait_set, never asyncio.wait_for (gh-86296 on 3.11)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for top in ("sdk/sutradhar", "services", "cli")
        for path in (root / top).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "asyncio.wait_for(" in line and not line.lstrip().startswith("#")
    ]
    assert not offenders, offenders


def test_cancel_until_done_cancels_again_a_task_that_swallowed_its_cancellation() -> None:
    from sutradhar._aio import cancel_until_done

    async def main() -> int:
        swallowed = 0

        async def stubborn() -> None:
            nonlocal swallowed
            while True:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    swallowed += 1
                    if swallowed == 1:
                        continue  # as a lost cancellation looks to the task: it goes on
                    raise

        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        async with asyncio.timeout(5):
            await cancel_until_done([task], every=0.01)
        assert task.cancelled()
        return swallowed

    assert asyncio.run(main()) == 2
