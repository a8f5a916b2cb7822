"""One routed call: resolve the pool, take from its rate-limit buckets, pick an instance, send, and on failure
retry on another instance within the retry budget and the deadline; hedge
idempotent task types; stream events through. What to do at each step (the
call's timeout, the next instance, whether and when to retry, when to hedge)
is decided by the routing core, `sutradhar._routing.attempts`; this is the I/O
loop around those decisions, run by the router service and by the SDK's
`DirectClient` (decision 0020): each brings its `Dialer` (how a backend is
reached: the router's speaks the mesh's TLS) and its `Limits` (the router's
rate limiter; a direct caller leaves rate-limited pools to the router).

The engine works on bytes: the task goes out as the caller's field-1 record
(plus tiny appended patches for a generated task id and the deadline), the
answer comes back as the agent's bytes plus an appended metadata fragment
(see `wire`). It never leaks an in-flight count: every `Backend.begin` is
paired with `Backend.end` in a `finally`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar, overload

import grpc
from google.protobuf.message import DecodeError

from sutradhar._errors import (
    DeadlineExceeded,
    InvalidArgument,
    ResourceExhausted,
    SutradharError,
    Unavailable,
    error_for_code,
)
from sutradhar._ratelimit_spec import Numbers
from sutradhar._route_transports import (
    INSTANCE_FAILURE_CODES,
    AttemptError,
    GrpcTransport,
    HttpTransport,
    InProcessTransport,
    invalid_response,
)
from sutradhar._routing import wire
from sutradhar._routing.attempts import (
    Failure,
    call_timeout,
    candidates,
    check_options,
    final_error,
    hedge_again,
    hedge_wait,
    hedges,
    may_eject,
    next_backend,
    retry_pause,
    time_for_attempt,
)
from sutradhar._routing.backend import Backend, Outcome, is_in_process
from sutradhar._routing.policy import Policy
from sutradhar._routing.retry import RetryBudget
from sutradhar._routing.selection import Pool, resolve, unavailable_message
from sutradhar._routing.strategies import Strategy, make_strategy
from sutradhar._routing.view import View
from sutradhar._token_bucket import RateLimited, TokenBucket
from sutradhar._values import from_struct, to_duration
from sutradhar.v1 import router_pb2

log = logging.getLogger(__name__)

_AioRpcError = grpc.aio.AioRpcError

#: Seconds in-flight calls on a removed instance get before its channel closes.
DISCARD_GRACE_S = 30.0
#: Seconds in-flight calls get when the router itself shuts down.
SHUTDOWN_GRACE_S = 2.0
#: A task deadline this close to the call's is left as the caller wrote it rather than patched
#: (``now + (task_deadline - now)`` differs from ``task_deadline`` by float rounding only, well
#: under a microsecond; a Timestamp written from a datetime is exact to the microsecond).
SAME_DEADLINE_S = 1e-6

AnswerT = TypeVar("AnswerT")
#: What a unary call returns, made of the agent's answer bytes, the backend that sent them, the
#: attempts made and the task id the engine assigned ("" when the task had one): `Engine.execute`.
Answer = Callable[[bytes, Backend, int, str], AnswerT]
#: What `Engine.execute_stream` yields per event when the caller decodes them (`decode`).
EventT = TypeVar("EventT")
#: The message type of an agent's stream event (errors name it).
STREAM_RESPONSE = "ExecuteStreamResponse"


def describe_backend(backend: Backend) -> str:
    """How errors and logs name an instance: its id, endpoint and agent."""
    return f"instance {backend.instance_id!r} ({backend.endpoint}) of agent {backend.agent_id!r}"


def named_attempt_error(backend: Backend, err: Exception) -> AttemptError:
    """One failed attempt as an AttemptError naming the instance."""
    if isinstance(err, _AioRpcError):
        code = err.code()
        return AttemptError(code, f"{describe_backend(backend)}: {code.name}: {err.details()}")
    assert isinstance(err, AttemptError)
    return AttemptError(err.code, f"{describe_backend(backend)}: {err.message}", retry_safe=err.retry_safe)


def _failed(backend: Backend, err: Exception) -> tuple[AttemptError, Outcome]:
    """A failed attempt's error (naming the instance) and what it says of the instance: a
    FAILURE for the breaker and ejection when its code is an instance's failure."""
    failed = named_attempt_error(backend, err)
    return failed, Outcome.FAILURE if failed.code in INSTANCE_FAILURE_CODES else Outcome.NEUTRAL


class Limits(Protocol):
    """The rate limits a call is admitted by (the router's `services.router.ratelimits.RateLimiter`)."""

    def agent_bucket(self, namespace: str, agent_id: str, numbers: Numbers | None, now: float) -> TokenBucket | None:
        """The bucket of one agent's routing policy; None without one."""

    def admit(self, pool: Pool, now: float) -> None:
        """Take a token from every bucket of `pool`, or raise RateLimited."""


class Unlimited:
    """No rate limits: what a caller routing itself uses (it leaves rate-limited pools to
    the router, which holds the shared buckets)."""

    def agent_bucket(self, namespace: str, agent_id: str, numbers: Numbers | None, now: float) -> TokenBucket | None:
        return None

    def admit(self, pool: Pool, now: float) -> None:
        return None


class Dialer(Protocol):
    """Makes the transport of a backend and owns what transports share (the pooled HTTP client)."""

    def transport(self, backend: Backend) -> Any:
        """A new transport to `backend`."""

    async def close(self) -> None:
        """Close what the transports share (each transport is closed by the engine)."""


class PlainDialer:
    """Transports with no TLS: a gRPC channel per instance, one pooled ``httpx`` client for
    every HTTP agent (imported on first use: the SDK's base install has no httpx), and
    in-process agents loaded from their agent's config."""

    def __init__(self, view: View, max_message_bytes: int) -> None:
        self.view = view
        self.max_message_bytes = max_message_bytes
        self._http: Any = None

    def transport(self, backend: Backend) -> Any:
        if is_in_process(backend):
            entry = self.view.agents.get((backend.namespace, backend.agent_id))
            config = from_struct(entry.agent.config) if entry is not None else {}
            return InProcessTransport(config, owner=backend)
        if is_http(backend):
            return self.http_transport(backend)
        return self.grpc_transport(backend)

    def grpc_transport(self, backend: Backend) -> Any:
        """A gRPC agent's transport."""
        return GrpcTransport(backend.endpoint, max_message_bytes=self.max_message_bytes)

    def http_transport(self, backend: Backend) -> Any:
        """An HTTP agent's transport over the pooled client."""
        return HttpTransport(backend.endpoint, self.http_client(), max_message_bytes=self.max_message_bytes,
                             owner=backend)

    def http_options(self) -> dict[str, Any]:
        """Extra keyword arguments of the pooled ``httpx.AsyncClient`` (a TLS context, for one)."""
        return {}

    def http_client(self) -> Any:
        """The pooled HTTP client shared by every HTTP agent."""
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                timeout=httpx.Timeout(30.0),
                **self.http_options(),
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def instance_stats(view: View, now: float, namespace: str = "", agent_type: str = "") -> list[router_pb2.InstanceStats]:
    """What this view's router (or direct client) observed of each instance, sorted by namespace
    and instance id; `namespace` and `agent_type` filter when set."""
    out = []
    for key in sorted(view.backends):
        b = view.backends[key]
        if namespace and b.namespace != namespace:
            continue
        if agent_type and b.agent_type != agent_type:
            continue
        p50, p99 = b.percentiles()
        out.append(router_pb2.InstanceStats(
            namespace=b.namespace,
            instance_id=b.instance_id,
            agent_id=b.agent_id,
            agent_type=b.agent_type,
            version=b.version,
            endpoint=b.endpoint,
            in_flight=b.in_flight,
            requests=b.requests,
            errors=b.errors,
            latency_p50=to_duration(timedelta(seconds=p50)),
            latency_p99=to_duration(timedelta(seconds=p99)),
            breaker=f"BREAKER_STATE_{b.breaker_state(now).name}",
            ejected=b.outlier.ejected(now),
            ejections=b.outlier.ejections,
            state=b.state.removeprefix("INSTANCE_STATE_"),
        ))
    return out


def is_http(backend: Backend) -> bool:
    """Whether `backend` is an HTTP agent (an http(s) URL or the http runtime)."""
    return backend.endpoint.startswith(("http://", "https://")) or backend.runtime == "http"


class Engine:
    """Routes calls over a View. `clock` is monotonic seconds; `rng` drives
    strategies and back-off jitter (both injectable for tests); `dial` makes each
    backend's transport (`PlainDialer` unless given: the router passes one that
    speaks the mesh's TLS); `limits` admits each call (`Unlimited` unless given)."""

    def __init__(
        self,
        view: View,
        *,
        max_message_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        dial: Dialer | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.view = view
        self.limits: Limits = limits or Unlimited()
        self.max_message_bytes = max_message_bytes
        self.dial: Dialer = dial or PlainDialer(view, max_message_bytes)
        self.clock = clock
        self.rng = rng or random.Random()
        self._pools: dict[bytes, tuple[int, Pool | SutradharError]] = {}
        self._strategies: dict[tuple[bytes, str], Strategy] = {}
        self._budgets: dict[tuple[str, str], RetryBudget] = {}
        self._closing: set[asyncio.Task[None]] = set()
        #: The router's RouterMetrics (services/common/metrics_router.py) when metrics are on, else None.
        self.metrics: Any = None

    # -- pools and transports ---------------------------------------------

    def pool(self, selector_bytes: bytes) -> Pool:
        """The pool for a serialized Selector, cached per view generation
        (errors too, so a bad selector is refused from the cache)."""
        generation = self.view.generation
        cached = self._pools.get(selector_bytes)
        if cached is not None and cached[0] == generation:
            found = cached[1]
        else:
            try:
                found = resolve(self.view, router_pb2.Selector.FromString(selector_bytes))
                found.agent_bucket = self.limits.agent_bucket(
                    found.namespace, found.limit_agent, found.policy.rate_limit, self.clock())
                if self.metrics is not None:
                    self.metrics.pool(found)
            except SutradharError as err:
                found = err
            if len(self._pools) > 4096:
                self._pools.clear()
            self._pools[selector_bytes] = (generation, found)
        if isinstance(found, SutradharError):
            raise error_for_code(found.code, found.message)
        return found

    def strategy(self, selector_bytes: bytes, name: str) -> Strategy:
        """The strategy object of one pool (its state persists across view changes)."""
        key = (selector_bytes, name)
        strategy = self._strategies.get(key)
        if strategy is None:
            if len(self._strategies) > 4096:
                self._strategies.clear()
            strategy = self._strategies[key] = make_strategy(name, self.rng)
        return strategy

    def budget(self, pool: Pool) -> RetryBudget:
        """The retry budget of a pool (per namespace and agent type or id)."""
        key = (pool.namespace, pool.what)
        budget = self._budgets.get(key)
        if budget is None or budget.settings is not pool.policy.retry:
            budget = self._budgets[key] = RetryBudget(pool.policy.retry)
        return budget

    def transport(self, backend: Backend) -> Any:
        """The backend's transport, made by the dialer on first use."""
        transport = backend.transport
        if transport is not None:
            return transport
        transport = backend.transport = self.dial.transport(backend)
        backend.result_metadata = wire.result_metadata_fields(backend.instance_id, 1)
        return transport

    def discard(self, backend: Backend, *, grace: float = DISCARD_GRACE_S) -> None:
        """Close a removed backend's transport (called by the View).

        Calls already in flight on it get `grace` seconds to finish: an
        instance leaves the view when it is drained or deregistered, and its
        last answers must still reach their callers.
        """
        transport, backend.transport = backend.transport, None
        if transport is None:
            return
        try:
            task = asyncio.get_running_loop().create_task(transport.close(grace))
        except RuntimeError:
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every transport, then the dialer (its pooled HTTP client)."""
        for backend in list(self.view.backends.values()):
            self.discard(backend, grace=SHUTDOWN_GRACE_S)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self.dial.close()

    # -- one call ---------------------------------------------------------

    def _plan(
        self, req: wire.RouteRequest, grpc_timeout: float | None
    ) -> tuple[Pool, Strategy, int, float, bytes, str]:
        if req.error:
            raise InvalidArgument(req.error, field="request")
        options = req.options
        option_timeout = check_options(options)  # bad options are bad input whatever the pool holds
        pool = self.pool(req.selector_bytes)
        # Over a limit: RateLimited before any instance, budget or breaker is touched.
        try:
            self.limits.admit(pool, self.clock())
        except RateLimited:
            if self.metrics is not None:
                self.metrics.refused(pool)
            raise
        policy: Policy = pool.policy
        name = options.strategy or policy.strategy
        strategy = self.strategy(req.selector_bytes, name)
        max_attempts = options.max_attempts or policy.retry.max_attempts
        task_id = ""
        if not req.task_id:
            task_id = req.task_id = uuid.uuid4().hex
        now = time.time()
        timeout = call_timeout(policy.default_timeout, grpc_timeout, option_timeout, req.task_deadline, now)
        deadline = now + timeout
        if req.task_deadline and abs(deadline - req.task_deadline) < SAME_DEADLINE_S:
            deadline = 0.0  # the task's own deadline is the call's (an SDK caller's is): nothing to patch
        request = wire.patch_task(req.task_record, task_id=task_id, deadline=deadline)
        if len(request) > self.max_message_bytes:
            raise ResourceExhausted(
                f"task is {len(request)} bytes, over the router's message limit of {self.max_message_bytes} "
                "bytes; send a smaller payload or raise the router's --max-message-bytes"
            )
        return pool, strategy, max_attempts, timeout, request, task_id

    @staticmethod
    def metadata_fields(backend: Backend, attempts: int, assigned_id: str) -> bytes:
        """The ResultMetadata fields the engine sets on an answer from `backend` after `attempts`
        attempts (instance, attempts, a task id it assigned), serialized (`wire.result_metadata_fields`)."""
        if attempts == 1 and not assigned_id:
            return backend.result_metadata  # built once per backend
        return wire.result_metadata_fields(backend.instance_id, attempts, assigned_id)

    def _answer(self, data: bytes, backend: Backend, attempts: int, assigned_id: str) -> bytes:
        """The agent's answer `data` with the result metadata (`metadata_fields`) spliced in, to be
        sent on; RESOURCE_EXHAUSTED naming the instance when that makes it too large to send."""
        answer = wire.set_result_metadata(data, self.metadata_fields(backend, attempts, assigned_id))
        if len(answer) > self.max_message_bytes:
            raise self._oversized(backend, "the answer", len(answer), len(data), attempts)
        return answer

    def _oversized(self, backend: Backend, what: str, size: int, from_agent: int, attempts: int) -> ResourceExhausted:
        """RESOURCE_EXHAUSTED for an answer over the message limit once the
        router has added its metadata (sending it would fail inside gRPC, with
        a message naming neither the instance nor the fix)."""
        plural = "s" if attempts != 1 else ""
        return ResourceExhausted(
            f"{describe_backend(backend)}: {what} is {size} bytes with the router's metadata ({from_agent} bytes from "
            f"the agent), over the router's message limit of {self.max_message_bytes} bytes (after {attempts} "
            f"attempt{plural}); raise the router's --max-message-bytes or make the agent's answer smaller"
        )

    async def _attempt(
        self, pool: Pool, backend: Backend, request: bytes, time_left: float, trace: Any = None, number: int = 1,
        hedge: bool = False,
    ) -> bytes:
        """One attempt on `backend`. `trace` (tracing on: a `sutradhar._route_tracing.Forward` or `CallTrace`)
        gives the attempt's span and the ``traceparent`` metadata sent with it."""
        transport = backend.transport or self.transport(backend)
        start = self.clock()
        backend.begin(start)
        outcome = Outcome.NEUTRAL
        span = None
        failure: BaseException | None = None
        task_failed = False
        code = grpc.StatusCode.CANCELLED  # unless it ends otherwise: a lost hedge, a caller gone
        try:
            if trace is None:
                data = await transport.execute(request, time_left)
            else:
                span, metadata = trace.attempt(backend, number, hedge)
                data = await transport.execute(request, time_left, metadata)
            try:
                succeeded = wire.response_succeeded(data)  # the agent's data stays undecoded
            except DecodeError as err:
                raise invalid_response(data, err) from None
            if not succeeded:
                backend.app_error()
                task_failed = True
            outcome = Outcome.SUCCESS
            code = grpc.StatusCode.OK
            return data
        except (_AioRpcError, AttemptError) as err:
            failure, outcome = _failed(backend, err)
            code = failure.code
            raise failure from None
        except BaseException as err:
            failure = err
            raise
        finally:
            self._end_attempt(pool, backend, start, outcome, code, trace, span, failure, task_failed)

    def _end_attempt(
        self, pool: Pool, backend: Backend, start: float, outcome: Outcome, code: grpc.StatusCode, trace: Any,
        span: Any, failure: BaseException | None, task_failed: bool,
    ) -> None:
        """Record an attempt's end, unary or streamed: on its backend (latency, breaker, ejection),
        on its span when traced, in the metrics when on."""
        end = self.clock()
        ejects = outcome is Outcome.FAILURE and may_eject(pool, backend, end)
        ejected = backend.end(end, end - start, outcome, may_eject=ejects)
        if ejected:
            log.warning("ejected %s for %.0fs after consecutive failures",
                        describe_backend(backend), backend.outlier.remaining(end),
                        extra={"namespace": backend.namespace, "agent": backend.agent_id,
                               "instance": backend.instance_id})
        if span is not None:
            trace.attempt_end(span, failure, breaker=backend.breaker_state(end).name.lower(),
                              ejected=ejected, task_failed=task_failed)
        if self.metrics is not None:
            self.metrics.attempt(backend, code, end - start)

    async def _back_off(
        self, pool: Pool, failure: Failure, attempts: int, max_attempts: int, deadline: float,
        call_seconds: float, trace: Any,
    ) -> float:
        """Wait out the pause before the next attempt, counted in the pool's budget and metrics and on
        the call's trace; the clock after it. Raises the final error when there must be no next
        attempt (`sutradhar._routing.attempts.retry_pause`)."""
        now = self.clock()
        pause = retry_pause(pool.policy.retry, self.budget(pool), failure, attempts, max_attempts, now, deadline,
                            call_seconds, self.rng)
        if self.metrics is not None:
            self.metrics.retry(pool)
        if trace is not None and trace.sampled:
            trace.retry(failure.code.name, pause, attempts)
        if pause <= 0:
            return now
        await asyncio.sleep(pause)
        return self.clock()

    @overload
    async def execute(self, req: wire.RouteRequest, grpc_timeout: float | None, trace: Any = None) -> bytes: ...

    @overload
    async def execute(self, req: wire.RouteRequest, grpc_timeout: float | None, trace: Any,
                      answer: Answer[AnswerT]) -> AnswerT: ...

    async def execute(self, req: wire.RouteRequest, grpc_timeout: float | None, trace: Any = None,
                      answer: Answer[Any] | None = None) -> Any:
        """Route one unary task; the serialized response with metadata spliced in (`_answer`), or
        what `answer` makes of the agent's bytes, the backend that sent them, the attempts made and
        the task id the engine assigned (a caller that decodes the answer itself: `DirectClient`,
        which sets `metadata_fields` on the decoded result and sends nothing on). `trace`: see `_attempt`."""
        pool, strategy, max_attempts, timeout, request, assigned_id = self._plan(req, grpc_timeout)
        answer = answer or self._answer
        clock = self.clock
        now = clock()
        deadline = now + timeout
        if hedges(pool.policy.hedging, req.task_type):
            return await self._hedged(pool, strategy, request, deadline, assigned_id, answer, trace)
        self.budget(pool).record_request(now)
        tried: list[Backend] = []
        failure: Failure | None = None
        attempts = 0
        while True:
            backend = next_backend(pool, strategy, tried, failure, attempts, now)
            remaining = time_for_attempt(deadline, now, timeout, failure)
            attempts += 1
            try:
                data = await self._attempt(pool, backend, request, remaining, trace, attempts)
            except AttemptError as err:
                failure = Failure(err.code, err.message, err.retry_safe, backend)
            else:
                return answer(data, backend, attempts, assigned_id)
            now = await self._back_off(pool, failure, attempts, max_attempts, deadline, timeout, trace)
            tried.append(backend)

    async def _hedged(
        self, pool: Pool, strategy: Strategy, request: bytes, deadline: float, assigned_id: str,
        answer: Answer[AnswerT], trace: Any = None,
    ) -> AnswerT:
        hedging = pool.policy.hedging
        retry = pool.policy.retry
        tried: list[Backend] = []
        running: dict[asyncio.Task[bytes], Backend] = {}
        failure: Failure | None = None
        clock = self.clock

        def launch() -> bool:
            now = clock()
            found = candidates(pool, tried, now)
            if not found or deadline - now <= 0:
                return False
            backend = strategy.pick(found)
            if tried and self.metrics is not None:
                self.metrics.hedge(pool)
            tried.append(backend)
            task = asyncio.ensure_future(
                self._attempt(pool, backend, request, deadline - now, trace, len(tried), len(tried) > 1))
            running[task] = backend
            return True

        if not launch():
            raise Unavailable(unavailable_message(pool, clock()))
        try:
            while running:
                wait = hedge_wait(hedging, len(tried), deadline, clock())
                done, _ = await asyncio.wait(running, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    backend = running.pop(task)
                    err = task.exception()
                    if err is None:
                        return answer(task.result(), backend, len(tried), assigned_id)
                    if not isinstance(err, AttemptError):
                        raise err
                    failure = Failure(err.code, err.message, err.retry_safe, backend)
                    if err.code not in retry.retryable_codes and not running:
                        raise final_error(failure, len(tried))
                if clock() >= deadline:
                    raise DeadlineExceeded("task did not complete within its deadline (hedged)")
                if hedge_again(hedging, retry, len(tried), not done, failure):
                    launch()
            raise final_error(failure, len(tried))
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    @overload
    def execute_stream(
        self, req: wire.RouteRequest, grpc_timeout: float | None, trace: Any = None,
    ) -> AsyncGenerator[bytes, None]: ...

    @overload
    def execute_stream(
        self, req: wire.RouteRequest, grpc_timeout: float | None, trace: Any, decode: Callable[[bytes], EventT],
    ) -> AsyncGenerator[EventT, None]: ...

    async def execute_stream(
        self, req: wire.RouteRequest, grpc_timeout: float | None, trace: Any = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Route one streaming task; yields serialized stream events, or what `decode` makes of each
        (a caller that decodes them itself: `DirectClient`; bytes that do not decode end the call
        UNAVAILABLE naming the instance, as a result event the splice cannot walk does). Retries
        happen only before the first event has been passed on. `trace`: see `_attempt`."""
        pool, strategy, max_attempts, timeout, request, assigned_id = self._plan(req, grpc_timeout)
        clock = self.clock
        now = clock()
        deadline = now + timeout
        self.budget(pool).record_request(now)
        tried: list[Backend] = []
        failure: Failure | None = None
        attempts = 0
        while True:
            backend = next_backend(pool, strategy, tried, failure, attempts, now)
            attempts += 1
            sent_any = False
            events = self._stream_attempt(pool, backend, request, deadline - now, trace, attempts)
            try:
                async for event in events:
                    sent_any = True
                    try:
                        if wire.is_stream_result(event):
                            from_agent = len(event)
                            event = wire.set_stream_result_metadata(
                                event, wire.result_metadata_fields(backend.instance_id, attempts, assigned_id))
                            if len(event) > self.max_message_bytes:
                                raise self._oversized(
                                    backend, "the stream's result event", len(event), from_agent, attempts)
                        out = event if decode is None else decode(event)
                    except (wire.MalformedMessage, DecodeError) as err:  # the splice's walk, or the caller's decode
                        raise named_attempt_error(backend, invalid_response(event, err, STREAM_RESPONSE)) from None
                    yield out
                return
            except AttemptError as err:
                failure = Failure(err.code, err.message, err.retry_safe and not sent_any, backend)
            finally:
                await events.aclose()
            now = await self._back_off(pool, failure, attempts, max_attempts, deadline, timeout, trace)
            tried.append(backend)

    async def _stream_attempt(
        self, pool: Pool, backend: Backend, request: bytes, time_left: float, trace: Any = None, number: int = 1,
    ) -> AsyncGenerator[bytes, None]:
        transport = backend.transport or self.transport(backend)
        start = self.clock()
        backend.begin(start)
        outcome = Outcome.NEUTRAL
        code = grpc.StatusCode.CANCELLED
        failed_result = False
        call = None
        span = None
        failure: BaseException | None = None
        try:
            if trace is None:
                call = transport.stream(request, time_left)
            else:
                span, metadata = trace.attempt(backend, number)
                call = transport.stream(request, time_left, metadata)
            async for event in call:
                if wire.is_stream_result(event) and not wire.stream_result_succeeded(event):
                    failed_result = True
                yield event
            outcome = Outcome.SUCCESS
            code = grpc.StatusCode.OK
        except (_AioRpcError, AttemptError) as err:
            failure, outcome = _failed(backend, err)
            code = failure.code
            raise failure from None
        except TimeoutError:
            outcome = Outcome.FAILURE
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            failure = AttemptError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"{describe_backend(backend)}: stream passed its deadline",
                retry_safe=False,
            )
            raise failure from None
        except BaseException as err:
            failure = err
            raise
        finally:
            if call is not None:
                cancel = getattr(call, "cancel", None)
                if cancel is not None:
                    cancel()
                else:
                    await call.aclose()
            # A failed result counts as an error once, as in `_attempt`; when the
            # call also failed afterwards, `end` counts that failure instead.
            if failed_result and outcome is not Outcome.FAILURE:
                backend.app_error()
            self._end_attempt(pool, backend, start, outcome, code, trace, span, failure, failed_result)
