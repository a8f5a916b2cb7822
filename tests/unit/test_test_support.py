"""The suites' shared helpers (tests/support.py): `eventually`'s contract and the skipping clock."""

from __future__ import annotations

import time

import grpc
import pytest

from tests.support import SkippingClock, eventually, eventually_blocking, rpc_status


async def test_eventually_returns_the_first_truthy_answer_of_a_plain_or_async_check() -> None:
    answers = iter([0, None, "", "ready", "later"])
    assert await eventually(lambda: next(answers), within=5, period=0) == "ready"

    async def async_check() -> list[int]:
        return [1]

    assert await eventually(async_check, within=5) == [1]
    assert eventually_blocking(lambda: 7, within=5) == 7


async def test_eventually_names_what_and_the_last_answer_when_time_runs_out() -> None:
    with pytest.raises(AssertionError, match=r"^the replica: not within 0s \(last: \[\]\)$"):
        await eventually(lambda: [], within=0, what="the replica")
    state = {"phase": "STARTING"}
    with pytest.raises(AssertionError, match=r"still STARTING: not within 0s \(last: False\)"):
        await eventually(lambda: False, within=0, what=lambda: f"still {state['phase']}")
    with pytest.raises(AssertionError, match=r"^the condition: not within 0s"):
        eventually_blocking(lambda: 0, within=0)


async def test_eventually_retries_ignored_errors_and_raises_the_last_one() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return "up"

    assert await eventually(flaky, within=5, period=0, ignoring=(ConnectionError,)) == "up"

    def down() -> str:
        raise ConnectionError("still down")

    with pytest.raises(ConnectionError, match="still down"):
        await eventually(down, within=0, ignoring=(ConnectionError,))
    with pytest.raises(KeyError):  # not ignored: straight through, no retry
        await eventually(lambda: {}["x"], within=5, ignoring=(ConnectionError,))


def test_skipping_clock_follows_real_time_plus_what_was_skipped() -> None:
    clock = SkippingClock()
    before = time.monotonic()
    assert before <= clock() <= time.monotonic()
    clock.advance(30)
    assert clock() >= before + 30
    assert clock() - time.monotonic() == pytest.approx(30, abs=1)


async def test_rpc_status_of_a_call_that_succeeds_is_ok() -> None:
    async def ok() -> None:
        return None

    assert await rpc_status(ok()) == (grpc.StatusCode.OK, "")
