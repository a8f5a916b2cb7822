"""The middleware chain (sutradhar._middleware) without a network: order,
composition once per method, the errors stage, streams, per-request context,
and the error table both ways."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from sutradhar._errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SutradharError,
    Unauthenticated,
    error_for_code,
)
from sutradhar._middleware import (
    MAX_STATUS_DETAILS_BYTES,
    Chain,
    ChainedGenericHandler,
    Errors,
    Method,
    Outcome,
    Stage,
    Streaming,
    Unary,
    UndecodableRequest,
    status_of,
)
from sutradhar.v1 import registry_pb2


class Aborted(grpc.aio.AbortError):
    """What FakeContext.abort raises (gRPC raises AbortError)."""


class FakeContext:
    """The part of a ServicerContext the chain uses."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.written: list[Any] = []

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted()

    async def write(self, message: Any) -> None:
        self.written.append(message)


class Recorder:
    """A middleware that logs when it is composed and when it runs."""

    def __init__(self, stage: Stage, name: str, log: list[str]) -> None:
        self.stage = stage
        self.name = name
        self.log = log
        self.composed: list[str] = []

    def unary(self, method: Method, call_next: Unary) -> Unary:
        self.composed.append(method.full_name)

        async def run(request: Any, context: Any) -> Any:
            self.log.append(self.name)
            return await call_next(request, context)

        return run

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        self.composed.append(method.full_name)

        async def run(request: Any, context: Any) -> AsyncIterator[Any]:
            self.log.append(self.name)
            async for item in call_next(request, context):
                self.log.append(f"{self.name} saw {item}")
                yield item

        return run


def unary_handler(behaviour: Unary) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=registry_pb2.GetAgentRequest.FromString,
        response_serializer=registry_pb2.GetAgentResponse.SerializeToString,
    )


async def call(handler: grpc.RpcMethodHandler, request: Any, context: FakeContext | None = None) -> Any:
    return await handler.unary_unary(request, context or FakeContext())


def test_stages_run_in_stage_order_whatever_order_they_are_given() -> None:
    log: list[str] = []
    given = [
        Recorder(Stage.METRICS, "metrics", log),
        Recorder(Stage.AUTHORIZATION, "authz", log),
        Recorder(Stage.TRACING, "tracing", log),
        Recorder(Stage.AUTHENTICATION, "authn", log),
        Recorder(Stage.RATE_LIMIT, "limits", log),
        Recorder(Stage.AUDIT, "audit", log),
        Recorder(Stage.AUTHENTICATION, "authn-2", log),
    ]
    chain = Chain(given)
    assert isinstance(chain.middleware[0], Errors)
    assert [m.stage for m in chain.middleware] == sorted(m.stage for m in chain.middleware)

    async def handle(request: Any, context: Any) -> str:
        log.append("handler")
        return "ok"

    handler = chain.handler("x.v1.S", "M", unary_handler(handle))
    assert asyncio.run(call(handler, registry_pb2.GetAgentRequest())) == "ok"
    # Same stage: the order given.
    # Traces and metrics see refused calls; audit wraps authorization (it records denials); rate limits
    # come after authorization (a caller who may not call cannot drain a bucket).
    assert log == ["tracing", "metrics", "authn", "authn-2", "audit", "authz", "limits", "handler"]


def test_the_errors_stage_is_the_chains_own() -> None:
    with pytest.raises(ValueError, match=r"Stage\.ERRORS"):
        Chain([Recorder(Stage.ERRORS, "mine", [])])


def test_the_chain_is_composed_once_per_method_not_per_call() -> None:
    log: list[str] = []
    recorder = Recorder(Stage.METRICS, "metrics", log)
    chain = Chain([recorder])

    async def handle(request: Any, context: Any) -> str:
        return "ok"

    handlers = chain.handlers("x.v1.S", {"A": unary_handler(handle), "B": unary_handler(handle)})
    assert recorder.composed == ["/x.v1.S/A", "/x.v1.S/B"]

    async def many() -> None:
        for _ in range(5):
            await call(handlers["A"], registry_pb2.GetAgentRequest())

    asyncio.run(many())
    assert recorder.composed == ["/x.v1.S/A", "/x.v1.S/B"]
    assert log == ["metrics"] * 5


def test_a_stage_that_skips_a_method_adds_nothing_to_it() -> None:
    class SkipsInfrastructure:
        stage = Stage.AUTHENTICATION

        def unary(self, method: Method, call_next: Unary) -> Unary:
            return call_next if method.infrastructure else _refuse

        def stream(self, method: Method, call_next: Streaming) -> Streaming:
            return call_next

    async def _refuse(request: Any, context: Any) -> Any:
        raise Unauthenticated("no certificate")

    async def handle(request: Any, context: Any) -> str:
        return "ok"

    chain = Chain([SkipsInfrastructure()])
    skip = SkipsInfrastructure()
    assert skip.unary(Method("grpc.health.v1.Health", "Check"), handle) is handle
    assert skip.unary(Method("sutradhar.v1.RegistryService", "GetAgent"), handle) is _refuse
    health = chain.handler("grpc.health.v1.Health", "Check", unary_handler(handle))
    assert asyncio.run(call(health, registry_pb2.GetAgentRequest())) == "ok"

    # An error raised by a later stage becomes a status too: errors run first.
    guarded = chain.handler("sutradhar.v1.RegistryService", "GetAgent", unary_handler(handle))
    context = FakeContext()
    with pytest.raises(Aborted):
        asyncio.run(call(guarded, registry_pb2.GetAgentRequest(), context))
    assert context.code == grpc.StatusCode.UNAUTHENTICATED and context.details == "no certificate"


def test_method_names_and_infrastructure() -> None:
    m = Method("sutradhar.v1.RegistryService", "Watch", server_streaming=True)
    assert m.full_name == "/sutradhar.v1.RegistryService/Watch" and not m.infrastructure
    assert Method("grpc.health.v1.Health", "Check").infrastructure
    assert Method("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo").infrastructure


@pytest.mark.parametrize(
    ("raised", "code", "details"),
    [
        (NotFound('agent "x" not found'), grpc.StatusCode.NOT_FOUND, 'agent "x" not found'),
        (Conflict("stale"), grpc.StatusCode.ABORTED, "stale"),
        (FailedPrecondition("live instances"), grpc.StatusCode.FAILED_PRECONDITION, "live instances"),
        (KeyError("boom"), grpc.StatusCode.INTERNAL, "internal error: KeyError: 'boom'"),
        (InvalidArgument("x" * 5000), grpc.StatusCode.INVALID_ARGUMENT, None),
    ],
)
def test_the_errors_stage_maps_what_a_handler_raises(
    raised: Exception, code: grpc.StatusCode, details: str | None
) -> None:
    async def handle(request: Any, context: Any) -> Any:
        raise raised

    handler = Chain().handler("x.v1.S", "M", unary_handler(handle))
    context = FakeContext()
    with pytest.raises(Aborted):
        asyncio.run(call(handler, registry_pb2.GetAgentRequest(), context))
    assert context.code == code
    if details is not None:
        assert context.details == details
    assert len(context.details.encode()) <= MAX_STATUS_DETAILS_BYTES


def test_an_undecodable_request_is_invalid_argument_before_any_stage_runs() -> None:
    log: list[str] = []
    handler = Chain([Recorder(Stage.AUTHENTICATION, "authn", log)]).handler(
        "x.v1.S", "M", unary_handler(lambda r, c: None)  # type: ignore[arg-type, return-value]
    )
    assert handler.request_deserializer is not None
    request = handler.request_deserializer(b"\x0a\x01\xff")  # field 1 (a string) with invalid UTF-8
    assert isinstance(request, UndecodableRequest)
    context = FakeContext()
    with pytest.raises(Aborted):
        asyncio.run(call(handler, request, context))
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    assert context.details.startswith("request is not a valid sutradhar.v1.GetAgentRequest")
    assert log == []


def test_a_stream_passes_each_response_through_the_stages_and_fails_with_a_status() -> None:
    log: list[str] = []

    async def responses(request: Any, context: Any) -> AsyncIterator[int]:
        yield 1
        yield 2
        raise NotFound("gone mid-stream")

    handler = Chain([Recorder(Stage.METRICS, "metrics", log)]).handler(
        "x.v1.S", "Watch", grpc.unary_stream_rpc_method_handler(responses)
    )
    context = FakeContext()

    async def consume() -> list[int]:
        got: list[int] = []
        with pytest.raises(Aborted):
            async for item in handler.unary_stream(None, context):
                got.append(item)
        return got

    assert asyncio.run(consume()) == [1, 2]
    assert log == ["metrics", "metrics saw 1", "metrics saw 2"]
    assert context.code == grpc.StatusCode.NOT_FOUND


def test_a_stream_handler_that_raises_before_its_first_response_gets_a_status() -> None:
    def responses(request: Any, context: Any) -> AsyncIterator[int]:
        raise FailedPrecondition("not synced")  # a plain function returning an iterator (the router's)

    handler = Chain().handler("x.v1.S", "Watch", grpc.unary_stream_rpc_method_handler(responses))
    context = FakeContext()

    async def consume() -> None:
        async for _ in handler.unary_stream(None, context):
            pass

    with pytest.raises(Aborted):
        asyncio.run(consume())
    assert context.code == grpc.StatusCode.FAILED_PRECONDITION


def test_a_handler_that_writes_with_context_write_is_a_stream_too() -> None:
    async def watch(request: Any, context: FakeContext) -> None:  # grpc.health.v1 Watch does this
        await context.write("SERVING")

    handler = Chain().handler("grpc.health.v1.Health", "Watch", grpc.unary_stream_rpc_method_handler(watch))
    context = FakeContext()

    async def consume() -> list[Any]:
        return [item async for item in handler.unary_stream(None, context)]

    assert asyncio.run(consume()) == []
    assert context.written == ["SERVING"] and context.code is None


def test_request_streaming_handlers_are_left_as_they_are() -> None:
    async def bidi(requests: Any, context: Any) -> AsyncIterator[Any]:
        async for r in requests:
            yield r

    handler = grpc.stream_stream_rpc_method_handler(bidi)
    assert Chain().handler("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo", handler) is handler


def test_a_stage_can_set_per_request_context_for_the_handler() -> None:
    caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="nobody")

    class Authenticate:
        stage = Stage.AUTHENTICATION

        def unary(self, method: Method, call_next: Unary) -> Unary:
            async def run(request: Any, context: Any) -> Any:
                caller.set(request.id)
                return await call_next(request, context)

            return run

        def stream(self, method: Method, call_next: Streaming) -> Streaming:
            return call_next

    async def handle(request: Any, context: Any) -> str:
        await asyncio.sleep(0)
        return caller.get()

    handler = Chain([Authenticate()]).handler("x.v1.S", "M", unary_handler(handle))

    async def concurrently() -> list[str]:
        # gRPC runs each call in its own task; so do we here.
        calls = [asyncio.create_task(call(handler, registry_pb2.GetAgentRequest(id=f"c{i}"))) for i in range(3)]
        return list(await asyncio.gather(*calls))

    assert asyncio.run(concurrently()) == ["c0", "c1", "c2"]
    assert caller.get() == "nobody"


def test_a_generic_handler_is_composed_on_first_call_and_kept() -> None:
    recorder = Recorder(Stage.METRICS, "metrics", [])

    async def handle(request: Any, context: Any) -> str:
        return "ok"

    inner = grpc.method_handlers_generic_handler("x.v1.S", {"M": unary_handler(handle)})
    generic = ChainedGenericHandler(inner, Chain([recorder]))

    class Details:
        method = "/x.v1.S/M"

    first = generic.service(Details())  # type: ignore[arg-type]
    assert first is generic.service(Details())  # type: ignore[arg-type]
    assert recorder.composed == ["/x.v1.S/M"]
    assert first is not None and asyncio.run(call(first, registry_pb2.GetAgentRequest())) == "ok"

    class Unknown:
        method = "/x.v1.S/Nope"

    assert generic.service(Unknown()) is None  # type: ignore[arg-type]
    assert recorder.composed == ["/x.v1.S/M"] and list(generic._composed) == ["/x.v1.S/M"]  # no entry for "Nope"


class Ends:
    """A middleware that records, with `Outcome`, how each call ends: (method, status, error type)."""

    stage = Stage.METRICS

    def __init__(self) -> None:
        self.ends: list[tuple[str, str, str]] = []

    def _ended(self, method: Method) -> Any:
        def ended(status: str, error: BaseException | None, seconds: float) -> None:
            assert seconds >= 0
            self.ends.append((method.name, status, type(error).__name__ if error is not None else ""))

        return ended

    def unary(self, method: Method, call_next: Unary) -> Unary:
        ended = self._ended(method)

        async def run(request: Any, context: Any) -> Any:
            with Outcome(context, ended):
                return await call_next(request, context)

        return run

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        ended = self._ended(method)

        async def run(request: Any, context: Any) -> AsyncIterator[Any]:
            with Outcome(context, ended):
                async for item in call_next(request, context):
                    yield item

        return run


def test_outcome_gives_a_stage_the_status_of_every_end_of_unary_and_streaming_calls() -> None:
    ends = Ends()
    chain = Chain([ends])

    async def ok(request: Any, context: Any) -> str:
        return "ok"

    async def missing(request: Any, context: Any) -> str:
        raise NotFound("no such agent")

    async def broken(request: Any, context: Any) -> str:
        raise KeyError("bug")

    async def cancelled(request: Any, context: Any) -> str:
        raise asyncio.CancelledError()

    async def two_then_refused(request: Any, context: Any) -> AsyncIterator[int]:
        yield 1
        yield 2
        raise Unauthenticated("no token")

    async def endless(request: Any, context: Any) -> AsyncIterator[int]:
        while True:
            yield 0

    async def run() -> None:
        for name, behaviour in (("Ok", ok), ("Missing", missing), ("Broken", broken)):
            with contextlib.suppress(Aborted):
                await call(chain.handler("x.v1.S", name, unary_handler(behaviour)), None)
        with pytest.raises(asyncio.CancelledError):
            await call(chain.handler("x.v1.S", "Cancelled", unary_handler(cancelled)), None)
        stream = chain.handler("x.v1.S", "Stream", grpc.unary_stream_rpc_method_handler(two_then_refused))
        got: list[int] = []
        with pytest.raises(Aborted):
            async for item in stream.unary_stream(None, FakeContext()):
                got.append(item)
        assert got == [1, 2]
        closed = chain.handler("x.v1.S", "Closed", grpc.unary_stream_rpc_method_handler(endless)).unary_stream(
            None, FakeContext())
        assert await anext(closed) == 0
        await closed.aclose()  # the caller went away: the stage still sees the end

    asyncio.run(run())
    assert ends.ends == [
        ("Ok", "OK", ""),
        ("Missing", "NOT_FOUND", "NotFound"),
        ("Broken", "INTERNAL", "KeyError"),
        ("Cancelled", "CANCELLED", "CancelledError"),
        ("Stream", "UNAUTHENTICATED", "Unauthenticated"),
        ("Closed", "CANCELLED", "GeneratorExit"),  # stopped, not failed: as the audit log records it
    ]


def test_status_of_an_abort_is_the_code_the_handler_set() -> None:
    class Context:
        def __init__(self, code: grpc.StatusCode | None) -> None:
            self._code = code

        def code(self) -> grpc.StatusCode | None:
            return self._code

    aborted = grpc.aio.AbortError()
    assert status_of(aborted, Context(grpc.StatusCode.RESOURCE_EXHAUSTED)) == "RESOURCE_EXHAUSTED"  # type: ignore[arg-type]
    assert status_of(aborted, Context(None)) == "ABORTED"  # type: ignore[arg-type]
    assert status_of(None, Context(None)) == "OK"  # type: ignore[arg-type]


def test_every_code_maps_to_its_class_and_back() -> None:
    classes = SutradharError.__subclasses__()
    assert len({cls.code for cls in classes}) == len(classes), "one class per status code"
    for cls in classes:
        err = error_for_code(cls.code, "m")
        assert type(err) is cls and err.code == cls.code and err.message == "m"
    assert Conflict.code == grpc.StatusCode.ABORTED
    assert type(error_for_code(grpc.StatusCode.ABORTED, "stale")) is Conflict
    unknown = error_for_code(grpc.StatusCode.UNIMPLEMENTED, "no such method")
    assert type(unknown) is SutradharError and unknown.code == grpc.StatusCode.UNIMPLEMENTED
