"""How the router, or a `DirectClient`, reaches an instance (made by the engine's
`Dialer`). Every transport takes a serialized `ExecuteRequest` and answers a
serialized `ExecuteResponse` (or a stream of serialized `ExecuteStreamResponse`),
so the engine - and the caller - cannot tell which one served a task.

- `GrpcTransport`: one reused channel per instance; bytes in, bytes out
  (identity serializers), so the payload is never decoded in the router.
- `HttpTransport`: the JSON form documented in docs/router.md ("HTTP agents"),
  ``POST {url}/execute {id, type, payload, context}`` ->
  ``{success, data, error, metadata}``, over one pooled `httpx.AsyncClient`.
- `RefusedTransport`: an instance a secured router will not dial (no identity).

With TLS on (docs/security.md), gRPC agents are dialed over mutual TLS and must
present the identity they registered (`Instance.identity`); ``https://`` agents
get the router's client certificate (`services.common.peer_identity.MeshHttps`);
``http://`` URLs stay plaintext (an external agent an admin registered).
- `InProcessTransport`: the agent class named by the agent's config
  ``{class: "module:Class", kwargs: {...}}`` is imported and called in the
  router's event loop (SDK `Agent` interface).

The HTTP and in-process transports fill the result metadata a gRPC SDK agent
fills itself (task id, agent id and version of the instance's agent
definition, latency), keeping whatever the agent reported.

W3C trace context reaches every kind of agent (docs/observability.md, "Tracing"):

- gRPC agents get the attempt's ``traceparent`` and ``tracestate`` as gRPC
  metadata when the router traces (`Metadata`); with router tracing off no
  metadata is sent and an SDK agent reads the caller's ``task.context`` from the
  task.
- HTTP agents get the standard ``traceparent`` and ``tracestate`` HTTP headers
  (`trace_headers`): the attempt's when the router traces, else the caller's own
  ``task.context.traceparent`` unchanged (when it is a valid one) and
  ``task.context.tracestate`` with it.
- In-process agents run under a SERVER span made as an SDK agent makes its own
  (`sutradhar._tracing.task_span`), parented on the attempt and current only
  while the agent's code runs (`sutradhar._tracing.TaskScope`), so spans the
  agent starts nest under it; with tracing off no span is made, and unsampled
  none is started either (the agent's code runs under the caller's unsampled
  context, so its own spans are not sampled).

Transport failures are raised as `AttemptError` (or `grpc.aio.AioRpcError`
from the gRPC transport, which the engine reads the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

import grpc
from google.protobuf import json_format

from sutradhar import _tracing
from sutradhar._convert import value_to_python
from sutradhar._hosting import reconnect_options
from sutradhar._identity import SpiffeId
from sutradhar._log_context import trace_context_of, traceparent_parts
from sutradhar._routing.backend import IN_PROCESS_ENDPOINT
from sutradhar._tls import TlsSource, secure_channel
from sutradhar._values import to_value
from sutradhar.v1 import agent_pb2

EXECUTE_PATH = "/sutradhar.v1.AgentService/Execute"
EXECUTE_STREAM_PATH = "/sutradhar.v1.AgentService/ExecuteStream"

#: The trace context the engine hands an attempt when the router traces: its ``traceparent``
#: (gRPC agents get it as metadata, HTTP agents as a header, in-process agents as their span's
#: parent); None while router tracing is off.
Metadata = tuple[tuple[str, str], ...]

# Codes that say the instance, not the task, is at fault (they count against
# it for circuit breaking and outlier ejection), as Envoy's "gateway errors".
INSTANCE_FAILURE_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.DATA_LOSS,
})


#: Where the HTTP JSON form is documented (error messages point there).
HTTP_FORM_DOC = "docs/router.md, \"HTTP agents\""


class Owner(Protocol):
    """The instance a transport serves, as the router's view knows it
    (`Backend`): the agent definition it belongs to, its namespace and id."""

    agent_id: str
    version: str
    namespace: str
    instance_id: str


class AttemptError(Exception):
    """One attempt failed: the status code to report and whether a retry on
    another instance is safe (False when the agent may have run the task)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, retry_safe: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_safe = retry_safe


class GrpcTransport:
    """A gRPC agent: one channel, raw bytes both ways. With `tls`, mutual TLS presenting the
    router's certificate, and the handshake fails unless the agent presents `expected`."""

    def __init__(
        self, endpoint: str, *, max_message_bytes: int, tls: TlsSource | None = None,
        expected: SpiffeId | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.expected = expected
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.enable_retries", 0),  # the router retries itself, on another instance
            ("grpc.enable_channelz", 0),
            # Reconnect fast after a restart; failures stay fast meanwhile.
            *reconnect_options(initial=timedelta(milliseconds=100), maximum=timedelta(seconds=2)),
        ]
        self.channel: Any = (
            grpc.aio.insecure_channel(endpoint, options=options) if tls is None
            else secure_channel(endpoint, tls, options=options, expected=expected)
        )
        # Registered methods (as generated stubs do) spare core a per-call method lookup.
        self._execute = self.channel.unary_unary(EXECUTE_PATH, _registered_method=True)
        self._stream = self.channel.unary_stream(EXECUTE_STREAM_PATH, _registered_method=True)

    def execute(self, request: bytes, timeout: float | None, metadata: Metadata | None = None) -> Any:
        """Await the serialized ExecuteResponse (an awaitable call); `metadata` is sent with it
        (the ``traceparent`` of the attempt when tracing is on)."""
        return self._execute(request, timeout=timeout, metadata=metadata)

    def stream(self, request: bytes, timeout: float | None, metadata: Metadata | None = None) -> Any:
        """The call, an async iterator of serialized ExecuteStreamResponse; `cancel()` ends it."""
        return self._stream(request, timeout=timeout, metadata=metadata)

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; calls in flight get `grace` seconds to finish first."""
        await self.channel.close(grace)


class RefusedTransport:
    """An instance the router will not dial (in a secured mesh, one that registered no
    identity): every attempt fails at once, retry-safe, with `message` - nothing is sent."""

    def __init__(self, endpoint: str, message: str) -> None:
        self.endpoint = endpoint
        self.message = message

    def _refuse(self) -> AttemptError:
        return AttemptError(grpc.StatusCode.UNAVAILABLE, self.message)

    async def execute(self, request: bytes, time_left: float | None, metadata: Metadata | None = None) -> bytes:
        raise self._refuse()

    async def stream(
        self, request: bytes, time_left: float | None, metadata: Metadata | None = None
    ) -> AsyncIterator[bytes]:
        raise self._refuse()
        yield b""  # pragma: no cover - makes this an async generator

    async def close(self, grace: float | None = None) -> None:
        """Nothing to close."""


def _status_for_http(status: int) -> grpc.StatusCode:
    if status == 400:
        return grpc.StatusCode.INVALID_ARGUMENT
    if status in (401,):
        return grpc.StatusCode.UNAUTHENTICATED
    if status == 403:
        return grpc.StatusCode.PERMISSION_DENIED
    if status == 404:
        return grpc.StatusCode.UNIMPLEMENTED
    if status in (413, 429):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if status == 504:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.UNAVAILABLE


def _context_json(ctx: agent_pb2.TaskContext) -> dict[str, Any]:
    return json_format.MessageToDict(ctx)


def _meta_str(meta: Mapping[str, Any], *names: str) -> str:
    """The first non-empty string among `names` (snake_case and camelCase spellings)."""
    for name in names:
        value = meta.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _meta_latency(meta: Mapping[str, Any], into: agent_pb2.ResultMetadata) -> None:
    """The agent's reported latency: ``latency_ms`` (a number of milliseconds)
    or ``latency`` (protobuf JSON Duration, ``"0.012s"``); ignored when malformed."""
    for name in ("latency_ms", "latencyMs"):
        value = meta.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e15:
            into.latency.FromNanoseconds(int(value * 1e6))
            return
    value = meta.get("latency")
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            into.latency.FromJsonString(value)


def fill_metadata(
    result: agent_pb2.Result, *, task_id: str, agent_id: str, agent_version: str, latency_s: float
) -> agent_pb2.Result:
    """Fill what the agent left unset of `result.metadata`, as a gRPC SDK
    agent fills it: task id, agent id and version, latency."""
    meta = result.metadata
    if not meta.task_id:
        meta.task_id = task_id
    if not meta.agent_id:
        meta.agent_id = agent_id
    if not meta.agent_version:
        meta.agent_version = agent_version
    if not meta.HasField("latency"):
        meta.latency.FromNanoseconds(max(0, int(latency_s * 1e9)))
    return result


def result_from_json(body: Any, *, source: str) -> agent_pb2.Result:
    """The Result of an HTTP agent's JSON answer; AttemptError when it is not one."""
    if not isinstance(body, Mapping) or not isinstance(body.get("success"), bool):
        raise AttemptError(
            grpc.StatusCode.UNAVAILABLE,
            f"{source} answered JSON without a boolean 'success' field; an HTTP agent must answer "
            f"{{success, data, error, metadata}} (see {HTTP_FORM_DOC})",
            retry_safe=False,
        )
    result = agent_pb2.Result(success=body["success"])
    try:
        if body.get("data") is not None or result.success:
            result.data.CopyFrom(to_value(body.get("data")))
        error = body.get("error")
        if isinstance(error, Mapping):
            result.error.code = str(error.get("code", "") or "AGENT_ERROR")
            result.error.message = str(error.get("message", ""))
            result.error.retryable = bool(error.get("retryable", False))
        elif isinstance(error, str) and error:
            result.error.code = "AGENT_ERROR"
            result.error.message = error
        meta = body.get("metadata")
        if isinstance(meta, Mapping):
            out = result.metadata
            out.agent_id = _meta_str(meta, "agent_id", "agentId")
            out.agent_version = _meta_str(meta, "agent_version", "agentVersion", "version")
            out.task_id = _meta_str(meta, "task_id", "taskId")
            _meta_latency(meta, out)
    except TypeError as err:
        raise AttemptError(
            grpc.StatusCode.UNAVAILABLE, f"{source} answered data that is not JSON-like: {err}", retry_safe=False
        ) from err
    return result


def task_json(task: agent_pb2.Task) -> dict[str, Any]:
    """The JSON body POSTed to an HTTP agent. Payload numbers are doubles in
    protobuf; whole ones below 2**53 are written as integers (``3``, not
    ``3.0``), as the SDK hands them to gRPC agents."""
    return {
        "id": task.id,
        "type": task.type,
        "payload": value_to_python(task.payload) if task.HasField("payload") else None,
        "context": _context_json(task.context),
    }


def trace_headers(metadata: Metadata | None, context: agent_pb2.TaskContext) -> dict[str, str] | None:
    """The W3C trace context headers of an HTTP agent's request; None when there is none to send.

    The attempt's ``traceparent`` and ``tracestate`` (`metadata`, when the router traces), else
    the caller's own ``context.traceparent`` and ``context.tracestate`` (`trace_context_of`);
    ``traceparent`` only when it is a valid one (stripped and lower-cased, as the router forwards
    it to gRPC agents), ``tracestate`` only along with it and when printable ASCII (the spec's
    alphabet; anything else is dropped)."""
    value, state = trace_context_of(metadata, context.traceparent, context.tracestate)
    if not value or traceparent_parts(value) is None:
        return None
    headers = {"traceparent": value.strip().lower()}
    if state:
        headers["tracestate"] = state
    return headers


_NOT_JSON = object()


class HttpTransport:
    """An external HTTP agent speaking the JSON form."""

    def __init__(
        self, url: str, client: Any, *, max_message_bytes: int, owner: Owner | None = None,
        extensions: Mapping[str, Any] | None = None, before: Callable[[], object] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.endpoint = url
        self._client = client
        self._max = max_message_bytes
        self._owner = owner
        self._extensions = dict(extensions or {})  # e.g. sni_hostname: the identity to verify
        self._before = before  # e.g. MeshHttps.refresh: a rotated client certificate

    async def call(self, request: bytes, time_left: float | None, metadata: Metadata | None = None) -> agent_pb2.Result:
        """POST the task (with its trace context headers, `trace_headers`) and return its Result."""
        import httpx

        task = agent_pb2.ExecuteRequest.FromString(request).task
        body = task_json(task)
        headers = trace_headers(metadata, task.context)
        target = f"{self.url}/execute"
        started = time.perf_counter()
        try:
            if self._before is not None:
                self._before()
            response = await self._client.post(target, json=body, headers=headers, timeout=time_left,
                                               extensions=self._extensions)
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            # Before the TimeoutException clause: ConnectTimeout is one, but the task was never sent.
            raise AttemptError(grpc.StatusCode.UNAVAILABLE, f"cannot connect to HTTP agent {target}: {err!r}") from err
        except httpx.TimeoutException as err:
            raise AttemptError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"HTTP agent {target} did not answer in time ({err!r})",
                retry_safe=False,
            ) from err
        except httpx.HTTPError as err:
            raise AttemptError(
                grpc.StatusCode.UNAVAILABLE, f"HTTP agent {target} failed: {type(err).__name__}: {err}",
                retry_safe=False,
            ) from err
        if len(response.content) > self._max:
            raise AttemptError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"HTTP agent {target} answered {len(response.content)} bytes, over the router's "
                f"message limit of {self._max} bytes",
                retry_safe=False,
            )
        latency = time.perf_counter() - started
        try:
            parsed = response.json()
        except (ValueError, json.JSONDecodeError):
            parsed = _NOT_JSON
        if (isinstance(parsed, Mapping) and "success" in parsed) or (
            parsed is not _NOT_JSON and response.status_code < 300
        ):
            # A result body is the answer whatever the status code; other JSON
            # on a 2xx is a broken result form (the specific message says why).
            result = result_from_json(parsed, source=f"HTTP agent {target}")
            owner = self._owner
            return fill_metadata(
                result, task_id=task.id, agent_id=owner.agent_id if owner else "",
                agent_version=owner.version if owner else "", latency_s=latency,
            )
        if response.status_code >= 300:
            code = _status_for_http(response.status_code)
            text = response.text[:200].strip()
            raise AttemptError(
                code, f"HTTP agent {target} answered HTTP {response.status_code}: {text or response.reason_phrase}",
                retry_safe=response.status_code in (502, 503),
            )
        raise AttemptError(
            grpc.StatusCode.UNAVAILABLE,
            f"HTTP agent {target} answered HTTP {response.status_code} with a body that is not JSON; an HTTP "
            f"agent must answer the JSON result form {{success, data, error, metadata}} (see {HTTP_FORM_DOC})",
            retry_safe=False,
        )

    async def execute(self, request: bytes, time_left: float | None, metadata: Metadata | None = None) -> bytes:
        result = await self.call(request, time_left, metadata)
        return agent_pb2.ExecuteResponse(result=result).SerializeToString()

    def stream(self, request: bytes, timeout: float | None, metadata: Metadata | None = None) -> AsyncIterator[bytes]:
        return _single_result_stream(self.call(request, timeout, metadata))

    async def close(self, grace: float | None = None) -> None:
        """The pooled client is shared and closed by the router."""


async def _single_result_stream(result: Any) -> AsyncIterator[bytes]:
    final = await result
    yield agent_pb2.ExecuteStreamResponse(result=final).SerializeToString()


def load_agent_class(spec: str) -> type:
    """Import ``module:Class``; FAILED_PRECONDITION-worthy errors as AttemptError."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise AttemptError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"in-process agent config 'class' must be 'module:Class', got {spec!r}",
            retry_safe=False,
        )
    try:
        module = importlib.import_module(module_name)
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as err:
        raise AttemptError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"cannot load in-process agent class {spec!r}: {type(err).__name__}: {err}. In-process agents "
            f"are imported by the router process (cwd {os.getcwd()}), not by the CLI that registered them: "
            f"install the agent's package into the mesh's Python environment (`{sys.executable} -m pip "
            "install -e DIR`), or put the directory that holds its module on PYTHONPATH before `sutradhar up` "
            "(or before starting the router); then restart the mesh (see docs/router.md, \"In-process agents\")",
            retry_safe=False,
        ) from err
    except AttributeError as err:
        raise AttemptError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"cannot load in-process agent class {spec!r}: module {module_name!r} was imported but "
            f"{type(err).__name__}: {err}; check the class name in the agent's config 'class'",
            retry_safe=False,
        ) from err
    if not isinstance(obj, type):
        raise AttemptError(
            grpc.StatusCode.FAILED_PRECONDITION, f"in-process agent {spec!r} is not a class", retry_safe=False
        )
    return obj


class InProcessTransport:
    """An agent class instantiated and called inside the router."""

    def __init__(self, config: Mapping[str, Any], owner: Owner | None = None) -> None:
        self.endpoint = IN_PROCESS_ENDPOINT
        self._owner = owner
        self._spec = str(config.get("class", ""))
        kwargs = config.get("kwargs") or {}
        self._kwargs = dict(kwargs) if isinstance(kwargs, Mapping) else {}
        self._agent: Any = None

    def _instance(self) -> Any:
        if self._agent is None:
            cls = load_agent_class(self._spec)
            try:
                self._agent = cls(**self._kwargs)
            except Exception as err:
                raise AttemptError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"cannot construct in-process agent {self._spec!r} with kwargs {self._kwargs}: "
                    f"{type(err).__name__}: {err}",
                    retry_safe=False,
                ) from err
        return self._agent

    def _task(self, request: bytes) -> Any:
        from sutradhar._convert import task_from_proto

        return task_from_proto(agent_pb2.ExecuteRequest.FromString(request).task)

    def _scope(self, path: str, agent: Any, task: Any, metadata: Metadata | None) -> _tracing.TaskScope | None:
        """The task's `TaskScope` under the attempt's trace context (else the task's own,
        `trace_context_of`); None while tracing is off (`sutradhar._tracing.task_scope`)."""
        if _tracing.active() is None:
            return None
        owner = self._owner
        traceparent, tracestate = trace_context_of(metadata, task.context.traceparent, task.context.tracestate)
        return _tracing.task_scope(
            path.lstrip("/"), traceparent, tracestate=tracestate,
            namespace=owner.namespace if owner else "",
            agent=(owner.agent_id if owner else "") or getattr(agent, "id", ""),
            instance=owner.instance_id if owner else "", task_type=task.type,
        )

    def _metadata(self, agent: Any, task: Any, started: float) -> Any:
        """What a gRPC SDK agent fills into its results: the agent definition
        (what the mesh deployed) rather than the class's own id and version."""
        from sutradhar._agent import ResultMetadata

        owner = self._owner
        return ResultMetadata(
            latency=timedelta(seconds=time.perf_counter() - started),
            agent_id=(owner.agent_id if owner else "") or getattr(agent, "id", ""),
            agent_version=(owner.version if owner else "") or getattr(agent, "version", ""),
            task_id=task.id,
        )

    async def execute(self, request: bytes, time_left: float | None, metadata: Metadata | None = None) -> bytes:
        from sutradhar._agent import run_execute, with_metadata
        from sutradhar._convert import result_to_proto

        agent = self._instance()
        task = self._task(request)
        scope = self._scope(EXECUTE_PATH, agent, task, metadata)
        started = time.perf_counter()
        failure: BaseException | None = None
        ok = False
        token = None if scope is None else scope.enter()
        try:
            async with asyncio.timeout(time_left):
                result = await run_execute(agent, task)
            data = _serialize_result(result_to_proto, with_metadata(result, self._metadata(agent, task, started)))
            ok = result.success
            return data
        except TimeoutError as err:
            failure = self._late()
            raise failure from err
        except BaseException as err:
            failure = err
            raise
        finally:
            if scope is not None:
                scope.leave(token)
                scope.end(failure, ok)

    def _late(self) -> AttemptError:
        """The failure of a task that passed its deadline."""
        return AttemptError(
            grpc.StatusCode.DEADLINE_EXCEEDED, f"in-process agent {self._spec!r} did not finish in time",
            retry_safe=False,
        )

    async def stream(
        self, request: bytes, time_left: float | None, metadata: Metadata | None = None
    ) -> AsyncIterator[bytes]:
        from sutradhar._agent import Result, stream_events, with_metadata
        from sutradhar._convert import event_to_proto

        agent = self._instance()
        task = self._task(request)
        scope = self._scope(EXECUTE_STREAM_PATH, agent, task, metadata)
        started = time.perf_counter()
        events = stream_events(agent, task)
        failure: BaseException | None = None
        ok = finished = False
        try:
            async with asyncio.timeout(time_left):
                while True:
                    # The agent's generator runs under its scope; the router's code between its
                    # steps (the yield below) does not.
                    token = None if scope is None else scope.enter()
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:  # pragma: no cover - stream_events always ends with a Result
                        return
                    finally:
                        if scope is not None:
                            scope.leave(token)
                    if isinstance(event, Result):
                        ok = event.success
                        event = with_metadata(event, self._metadata(agent, task, started))
                    try:
                        out = event_to_proto(event).SerializeToString()
                    except TypeError as err:
                        ok = False
                        raise AttemptError(
                            grpc.StatusCode.UNAVAILABLE,
                            f"in-process agent {self._spec!r} produced data that is not JSON-like: {err}",
                            retry_safe=False,
                        ) from err
                    finished = isinstance(event, Result)
                    yield out
                    if finished:
                        return
        except TimeoutError:
            failure = self._late()  # the span's status; the engine reads the TimeoutError itself
            raise
        except GeneratorExit:
            if not finished:  # closed before its result: the caller went away
                failure = asyncio.CancelledError("the stream was closed before its end")
            raise
        except BaseException as err:
            failure = err
            raise
        finally:
            token = None if scope is None else scope.enter()
            try:
                await events.aclose()  # the agent's own clean-up (and the spans it ends) under its scope
            finally:
                if scope is not None:
                    scope.leave(token)
                    scope.end(failure, ok)

    async def close(self, grace: float | None = None) -> None:
        agent, self._agent = self._agent, None
        on_stop = getattr(agent, "on_stop", None)
        if on_stop is not None:
            with contextlib.suppress(Exception):  # an agent's shutdown hook must not break the router
                await on_stop()


def _serialize_result(convert: Any, result: Any) -> bytes:
    try:
        return agent_pb2.ExecuteResponse(result=convert(result)).SerializeToString()
    except TypeError as err:
        raise AttemptError(
            grpc.StatusCode.UNAVAILABLE, f"in-process agent produced data that is not JSON-like: {err}",
            retry_safe=False,
        ) from err


def invalid_response(data: bytes, err: Exception, message_type: str = "ExecuteResponse") -> AttemptError:
    """The failure of an attempt whose answer `data` (or one stream event, `message_type`
    "ExecuteStreamResponse") does not parse (not retried: the agent may have run the task); the
    engine's error names the instance before it (`named_attempt_error`)."""
    return AttemptError(
        grpc.StatusCode.UNAVAILABLE,
        f"answered {len(data)} bytes that are not a valid {message_type} ({err}); "
        "does it implement sutradhar.v1.AgentService?",
        retry_safe=False,
    )
