"""How the router reaches an instance. Every transport takes a serialized
`ExecuteRequest` and answers a serialized `ExecuteResponse` (or a stream of
serialized `ExecuteStreamResponse`), so the engine - and the caller - cannot
tell which one served a task.

- `GrpcTransport`: one reused channel per instance; bytes in, bytes out
  (identity serializers), so the payload is never decoded in the router.
- `HttpTransport`: the JSON form of DESIGN.md section 2,
  ``POST {url}/execute {type, payload, context}`` ->
  ``{success, data, error, metadata}``, over one pooled `httpx.AsyncClient`.
- `InProcessTransport`: the agent class named by the agent's config
  ``{class: "module:Class", kwargs: {...}}`` is imported and called in the
  router's event loop (SDK `Agent` interface).

Transport failures are raised as `AttemptError` (or `grpc.aio.AioRpcError`
from the gRPC transport, which the engine reads the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from sutradhar._hosting import reconnect_options
from sutradhar._values import from_value, to_value
from sutradhar.v1 import agent_pb2

EXECUTE_PATH = "/sutradhar.v1.AgentService/Execute"
EXECUTE_STREAM_PATH = "/sutradhar.v1.AgentService/ExecuteStream"

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


class AttemptError(Exception):
    """One attempt failed: the status code to report and whether a retry on
    another instance is safe (False when the agent may have run the task)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, retry_safe: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_safe = retry_safe


class GrpcTransport:
    """A gRPC agent: one channel, raw bytes both ways."""

    def __init__(self, endpoint: str, *, max_message_bytes: int) -> None:
        self.endpoint = endpoint
        self.channel = grpc.aio.insecure_channel(
            endpoint,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.enable_retries", 0),  # the router retries itself, on another instance
                ("grpc.enable_channelz", 0),
                # Reconnect fast after a restart; failures stay fast meanwhile.
                *reconnect_options(initial=timedelta(milliseconds=100), maximum=timedelta(seconds=2)),
            ],
        )
        # Registered methods (as generated stubs do) spare core a per-call method lookup.
        self._execute = self.channel.unary_unary(EXECUTE_PATH, _registered_method=True)
        self._stream = self.channel.unary_stream(EXECUTE_STREAM_PATH, _registered_method=True)

    def execute(self, request: bytes, timeout: float | None) -> Any:
        """Await the serialized ExecuteResponse (an awaitable call)."""
        return self._execute(request, timeout=timeout)

    def stream(self, request: bytes, timeout: float | None) -> Any:
        """The call, an async iterator of serialized ExecuteStreamResponse; `cancel()` ends it."""
        return self._stream(request, timeout=timeout)

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; calls in flight get `grace` seconds to finish first."""
        await self.channel.close(grace)


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


def result_from_json(body: Any, *, source: str) -> agent_pb2.Result:
    """The Result of an HTTP agent's JSON answer; AttemptError when it is not one."""
    if not isinstance(body, Mapping) or not isinstance(body.get("success"), bool):
        raise AttemptError(
            grpc.StatusCode.UNAVAILABLE,
            f"{source} answered JSON without a boolean 'success' field; an HTTP agent must answer "
            "{success, data, error, metadata} (DESIGN.md section 2)",
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
            result.metadata.agent_id = str(meta.get("agent_id", ""))
            result.metadata.agent_version = str(meta.get("agent_version", meta.get("version", "")))
    except TypeError as err:
        raise AttemptError(
            grpc.StatusCode.UNAVAILABLE, f"{source} answered data that is not JSON-like: {err}", retry_safe=False
        ) from err
    return result


class HttpTransport:
    """An external HTTP agent speaking the JSON form."""

    def __init__(self, url: str, client: Any, *, max_message_bytes: int) -> None:
        self.url = url.rstrip("/")
        self.endpoint = url
        self._client = client
        self._max = max_message_bytes

    async def call(self, request: bytes, time_left: float | None) -> agent_pb2.Result:
        """POST the task and return its Result."""
        import httpx

        task = agent_pb2.ExecuteRequest.FromString(request).task
        body = {
            "id": task.id,
            "type": task.type,
            "payload": from_value(task.payload) if task.HasField("payload") else None,
            "context": _context_json(task.context),
        }
        target = f"{self.url}/execute"
        try:
            response = await self._client.post(target, json=body, timeout=time_left)
        except httpx.TimeoutException as err:
            raise AttemptError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"HTTP agent {target} did not answer in time ({err!r})",
                retry_safe=False,
            ) from err
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            raise AttemptError(grpc.StatusCode.UNAVAILABLE, f"cannot connect to HTTP agent {target}: {err}") from err
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
        try:
            parsed = response.json()
        except (ValueError, json.JSONDecodeError):
            parsed = None
        if isinstance(parsed, Mapping) and "success" in parsed:
            return result_from_json(parsed, source=f"HTTP agent {target}")
        if response.status_code >= 300:
            code = _status_for_http(response.status_code)
            text = response.text[:200].strip()
            raise AttemptError(
                code, f"HTTP agent {target} answered HTTP {response.status_code}: {text or response.reason_phrase}",
                retry_safe=response.status_code in (502, 503),
            )
        raise AttemptError(
            grpc.StatusCode.UNAVAILABLE,
            f"HTTP agent {target} answered HTTP {response.status_code} with a body that is not the JSON "
            "result form {success, data, error, metadata}",
            retry_safe=False,
        )

    async def execute(self, request: bytes, time_left: float | None) -> bytes:
        result = await self.call(request, time_left)
        return agent_pb2.ExecuteResponse(result=result).SerializeToString()

    def stream(self, request: bytes, timeout: float | None) -> AsyncIterator[bytes]:
        return _single_result_stream(self.call(request, timeout))

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
    except (ImportError, AttributeError) as err:
        raise AttemptError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"cannot load in-process agent class {spec!r}: {type(err).__name__}: {err}; "
            "is its module importable by the router (PYTHONPATH)?",
            retry_safe=False,
        ) from err
    if not isinstance(obj, type):
        raise AttemptError(
            grpc.StatusCode.FAILED_PRECONDITION, f"in-process agent {spec!r} is not a class", retry_safe=False
        )
    return obj


class InProcessTransport:
    """An agent class instantiated and called inside the router."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.endpoint = "in-process"
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

    async def execute(self, request: bytes, time_left: float | None) -> bytes:
        from sutradhar._agent import ResultMetadata, run_execute, with_metadata
        from sutradhar._convert import result_to_proto

        agent = self._instance()
        task = self._task(request)
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(run_execute(agent, task), time_left)
        except TimeoutError as err:
            raise AttemptError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"in-process agent {self._spec!r} did not finish in time",
                retry_safe=False,
            ) from err
        from datetime import timedelta

        result = with_metadata(result, ResultMetadata(
            latency=timedelta(seconds=time.perf_counter() - started),
            agent_id=getattr(agent, "id", ""),
            agent_version=getattr(agent, "version", ""),
            task_id=task.id,
        ))
        return _serialize_result(result_to_proto, result)

    async def stream(self, request: bytes, time_left: float | None) -> AsyncIterator[bytes]:
        from sutradhar._agent import stream_events
        from sutradhar._convert import event_to_proto

        agent = self._instance()
        task = self._task(request)
        async with asyncio.timeout(time_left):
            async for event in stream_events(agent, task):
                try:
                    yield event_to_proto(event).SerializeToString()
                except TypeError as err:
                    raise AttemptError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"in-process agent {self._spec!r} produced data that is not JSON-like: {err}",
                        retry_safe=False,
                    ) from err

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


def check_response(data: bytes, *, source: str) -> agent_pb2.ExecuteResponse:
    """Parse an agent's ExecuteResponse; AttemptError when it is garbage."""
    try:
        response = agent_pb2.ExecuteResponse.FromString(data)
    except DecodeError as err:
        raise AttemptError(
            grpc.StatusCode.UNAVAILABLE,
            f"{source} answered {len(data)} bytes that are not a valid ExecuteResponse ({err}); "
            "does it implement sutradhar.v1.AgentService?",
            retry_safe=False,
        ) from err
    return response
