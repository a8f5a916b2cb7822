"""Helpers shared by the test suites (no tests here): polling until a condition
holds, a monotonic clock tests can move forward, the status of a gRPC call, and the
serialized descriptors of our protos for peers in other languages.

Import as `from tests.support import eventually` (the repository root is on
pytest's `pythonpath`).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

T = TypeVar("T")


def _attempts(within: float) -> Iterator[None]:
    """One step per attempt, the first at once, until `within` seconds have passed."""
    deadline = time.monotonic() + within
    yield
    while time.monotonic() < deadline:
        yield


def _not_met(what: str | Callable[[], str], within: float, last: object) -> AssertionError:
    said = what() if callable(what) else what
    return AssertionError(f"{said}: not within {within}s (last: {last!r})")


async def eventually(
    check: Callable[[], Awaitable[T] | T],
    *,
    within: float,
    period: float = 0.05,
    what: str | Callable[[], str] = "the condition",
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `check` every `period` seconds until it returns something truthy, and return that.

    `check` may be a plain function or a coroutine function. An exception of a
    type in `ignoring` counts as "not yet"; any other goes straight through.
    After `within` seconds: the last attempt's exception again if it raised one
    of `ignoring`, else AssertionError naming `what` (a string, or a function
    called then, to describe the state at the end) and the last answer.
    """
    answer: object = None
    error: BaseException | None = None
    for _ in _attempts(within):
        try:
            answer = check()
            if inspect.isawaitable(answer):
                answer = await answer
        except ignoring as err:
            answer, error = None, err
        else:
            error = None
            if answer:
                return answer  # type: ignore[return-value]
        await asyncio.sleep(period)
    if error is not None:
        raise error
    raise _not_met(what, within, answer)


def eventually_blocking(
    check: Callable[[], T], *, within: float, period: float = 0.05, what: str | Callable[[], str] = "the condition"
) -> T:
    """`eventually` for synchronous tests (no `ignoring`): the same contract, sleeping the thread."""
    answer: object = None
    for _ in _attempts(within):
        answer = check()
        if answer:
            return answer  # type: ignore[return-value]
        time.sleep(period)
    raise _not_met(what, within, answer)


class SkippingClock:
    """A monotonic clock (seconds) a test moves forward: real time plus what `advance` added.

    For servers that take a clock, so a test skips past a timer (a breaker's
    open timeout, an ejection) instead of sleeping through it, while deadlines
    and timeouts measured between two readings still pass in real time.
    """

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped

    def advance(self, seconds: float) -> None:
        """Move the clock `seconds` forward at once."""
        self.skipped += seconds


async def rpc_status(call: Awaitable[object]) -> tuple[grpc.StatusCode, str]:
    """Await a gRPC call: its status code and details (OK and "" when it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def descriptor_set(*files: FileDescriptor) -> bytes:
    """A serialized FileDescriptorSet of `files` and everything they import, dependencies
    first: what a peer in another language (protobufjs, protobuf-es, protobuf-java's
    DynamicMessage) loads to decode our messages without generated code."""
    out = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            add(dependency)
        file.CopyToProto(out.file.add())

    for file in files:
        add(file)
    return out.SerializeToString()
