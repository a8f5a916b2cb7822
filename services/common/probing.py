"""Probing an instance, the one definition the health service and the scheduler share.

- `ProbeSettings.resolve` / `ProbeSettings.for_agent` turn an agent's
  `ProbeSpec` into concrete settings with the Kubernetes defaults (period
  10 s, timeout 1 s, failure threshold 3, success threshold 1, initial delay
  0 s, path ``/health``) and the kind rule: an empty kind is ``http`` for
  ``runtime: http`` agents and URL endpoints, else ``grpc``.
- `Probers.check(endpoint, settings, identity=...)` runs one probe (gRPC health check,
  HTTP GET, TCP connect) and returns a `ProbeOutcome`; it never raises for
  an unhealthy or unreachable instance. With TLS (`Probers(tls=...)`), a gRPC
  probe runs over mutual TLS and requires the instance's registered identity:
  an instance without one fails ("registered no identity"), and one whose
  endpoint presents another identity fails with a message naming both
  (`sutradhar._peer_identity`). gRPC channels are kept per endpoint
  and reused (dropped after a transport failure so that a restarted instance
  is reached without waiting for gRPC's reconnect back-off); HTTP probes
  share one pooled `httpx.AsyncClient`.

The health service probes live instances with these (`services/health`);
the scheduler waits for a new replica's readiness with the same settings and
the same prober, so both judge an instance the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import grpc
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sutradhar._hosting import reconnect_options
from sutradhar._peer_identity import MeshHttps, NoIdentity, expected_identity, presented_identity
from sutradhar._routing.backend import IN_PROCESS_ENDPOINT
from sutradhar._tls import TlsSource, secure_channel
from sutradhar.v1 import probe_pb2, registry_pb2

__all__ = [
    "DEFAULT_FAILURE_THRESHOLD",
    "DEFAULT_HTTP_PATH",
    "DEFAULT_INITIAL_DELAY",
    "DEFAULT_PERIOD",
    "DEFAULT_SUCCESS_THRESHOLD",
    "DEFAULT_TIMEOUT",
    "IN_PROCESS_ENDPOINT",
    "PROBER_HEADER",
    "ProbeName",
    "ProbeOutcome",
    "ProbeSettings",
    "Probers",
    "default_kind",
    "http_url",
    "split_host_port",
]

DEFAULT_PERIOD = timedelta(seconds=10)
DEFAULT_TIMEOUT = timedelta(seconds=1)
DEFAULT_INITIAL_DELAY = timedelta(0)
DEFAULT_FAILURE_THRESHOLD = 3
DEFAULT_SUCCESS_THRESHOLD = 1
DEFAULT_HTTP_PATH = "/health"


#: Metadata key / header naming the member that probes.
PROBER_HEADER = "x-sutradhar-prober"

_FAST_RECONNECT = timedelta(milliseconds=100)


class ProbeName(Enum):
    """Which of an instance's two probes."""

    READINESS = "readiness"
    LIVENESS = "liveness"


def default_kind(runtime: str, endpoint: str) -> str:
    """The probe kind used when a spec leaves `kind` empty."""
    if runtime == "http" or endpoint.startswith(("http://", "https://")):
        return "http"
    return "grpc"


def _duration(d: duration_pb2.Duration, default: timedelta) -> timedelta:
    return d.ToTimedelta() if (d.seconds or d.nanos) else default


@dataclass(frozen=True)
class ProbeSettings:
    """One probe's concrete settings, defaults applied."""

    kind: str = "grpc"
    """"grpc", "http" or "tcp"."""
    grpc_service: str = ""
    """Service name sent in the gRPC health check."""
    http_path: str = DEFAULT_HTTP_PATH
    """Path probed with GET (kind "http")."""
    initial_delay: timedelta = DEFAULT_INITIAL_DELAY
    """Wait after registration before the first probe."""
    period: timedelta = DEFAULT_PERIOD
    """Time between probes."""
    timeout: timedelta = DEFAULT_TIMEOUT
    """A probe that takes longer fails."""
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    """Consecutive failures that make the verdict FAILURE."""
    success_threshold: int = DEFAULT_SUCCESS_THRESHOLD
    """Consecutive successes that make the verdict SUCCESS."""
    enabled: bool = True
    """False when the probe is off."""

    @classmethod
    def resolve(
        cls, spec: probe_pb2.ProbeSpec | None, *, runtime: str = "", endpoint: str = "", enabled: bool = True,
        liveness: bool = False,
    ) -> ProbeSettings:
        """Settings from a (validated) spec, every unset field (or 0) taking its
        default; `enabled` is the default when the spec is absent (readiness is
        on by default, liveness off). A liveness probe's success threshold is 1."""
        given = spec if spec is not None else probe_pb2.ProbeSpec()
        return cls(
            kind=given.kind or default_kind(runtime, endpoint),
            grpc_service=given.grpc_service,
            http_path=given.http_path or DEFAULT_HTTP_PATH,
            initial_delay=_duration(given.initial_delay, DEFAULT_INITIAL_DELAY),
            period=_duration(given.period, DEFAULT_PERIOD),
            timeout=_duration(given.timeout, DEFAULT_TIMEOUT),
            failure_threshold=given.failure_threshold or DEFAULT_FAILURE_THRESHOLD,
            success_threshold=1 if liveness else (given.success_threshold or DEFAULT_SUCCESS_THRESHOLD),
            enabled=enabled if spec is None else not given.disabled,
        )

    @classmethod
    def for_agent(
        cls, agent: registry_pb2.Agent | None, which: ProbeName, *, runtime: str = "", endpoint: str = ""
    ) -> ProbeSettings:
        """The settings of one probe of `agent` (None: an unknown agent, defaults).

        Readiness is on unless disabled; liveness is on only when the agent
        declares it (as in Kubernetes, where a missing liveness probe never
        restarts anything).
        """
        runtime = runtime or (agent.runtime if agent is not None else "")
        readiness = which is ProbeName.READINESS
        name = which.value
        spec = None
        if agent is not None and agent.HasField("probes") and agent.probes.HasField(name):  # type: ignore[arg-type]
            spec = getattr(agent.probes, name)
        return cls.resolve(spec, runtime=runtime, endpoint=endpoint, enabled=readiness, liveness=not readiness)


@dataclass(frozen=True)
class ProbeOutcome:
    """The result of one probe attempt."""

    ok: bool
    message: str = ""
    latency: float = 0.0


def split_host_port(endpoint: str) -> tuple[str, int]:
    """("host", port) from "host:port" or a URL (default ports 80/443)."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.hostname or "127.0.0.1", port
    host, sep, digits = endpoint.rpartition(":")
    if not sep or not digits.isdigit():
        raise ValueError(f"endpoint {endpoint!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(digits)


def http_url(endpoint: str, path: str) -> str:
    """The URL probed for an HTTP instance: its base URL with `path`."""
    base = endpoint if "://" in endpoint else f"http://{endpoint}"
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}{path}"


class Probers:
    """Runs probes; owns reusable gRPC channels and an HTTP connection pool."""

    def __init__(
        self, *, member_id: str = "", http_connections: int = 1024, user_agent: str = "sutradhar-health",
        tls: TlsSource | None = None,
    ) -> None:
        self.member_id = member_id
        self.tls = tls
        """With it, gRPC probes run over mutual TLS and require the instance's registered
        identity; ``https://`` probes present this certificate (`peer_identity`)."""
        self._https = MeshHttps(tls) if tls is not None else None
        self._channels: dict[str, tuple[Any, health_pb2_grpc.HealthStub, str]] = {}
        self._http_connections = http_connections
        self._user_agent = user_agent
        self._http: object | None = None

    async def check(
        self, endpoint: str, settings: ProbeSettings, *, identity: str = "", instance_id: str = ""
    ) -> ProbeOutcome:
        """Probe `endpoint` once with `settings` (kind, timeout, ...). With TLS on, a gRPC
        probe needs `identity` (the instance's registered SPIFFE ID) and fails without it."""
        start = time.perf_counter()
        if endpoint == IN_PROCESS_ENDPOINT:  # never probed, always ready
            return ProbeOutcome(True, "in-process", 0.0)
        timeout = settings.timeout.total_seconds()
        try:
            async with asyncio.timeout(timeout):
                if settings.kind == "http":
                    ok, message = await self._http_check(endpoint, settings, identity, instance_id)
                elif settings.kind == "tcp":
                    ok, message = await self._tcp_check(endpoint)
                else:
                    ok, message = await self._grpc_check(endpoint, settings, identity, instance_id)
        except TimeoutError:
            ok, message = False, f"timed out after {timeout:g}s"
        except asyncio.CancelledError:
            raise
        except NoIdentity as err:
            ok, message = False, str(err)
        except Exception as err:
            ok, message = False, f"{type(err).__name__}: {err}"
        return ProbeOutcome(ok, message, time.perf_counter() - start)

    # -- gRPC -----------------------------------------------------------------

    async def _stub(self, endpoint: str, identity: str, instance_id: str) -> health_pb2_grpc.HealthStub:
        entry = self._channels.get(endpoint)
        if entry is not None and entry[2] != identity:
            await self._drop_channel(endpoint)  # another instance (identity) at this address now
            entry = None
        if entry is None:
            options = [
                *reconnect_options(initial=_FAST_RECONNECT, connect_timeout=_FAST_RECONNECT),
                ("grpc.enable_retries", 0),
                ("grpc.use_local_subchannel_pool", 1),
            ]
            channel: Any
            if self.tls is None:
                channel = grpc.aio.insecure_channel(endpoint, options=options)
            else:
                expected = expected_identity(instance_id or endpoint, endpoint, identity)
                channel = secure_channel(endpoint, self.tls, options=options, expected=expected)
            entry = (channel, health_pb2_grpc.HealthStub(channel), identity)
            self._channels[endpoint] = entry
        return entry[1]

    async def _handshake_refused(self, endpoint: str, identity: str) -> str:
        """Why a secured gRPC probe could not connect, when the peer presents another identity
        ("" when that is not the reason)."""
        if self.tls is None:
            return ""
        with contextlib.suppress(ValueError):
            host, port = split_host_port(endpoint)
            presented = await presented_identity(host, port, self.tls)
            if presented and presented != identity:
                return (
                    f"identity mismatch: {endpoint} presents {presented}, not the identity {identity} the instance "
                    "registered; the handshake was refused and the instance gets no task"
                )
        return ""

    async def _drop_channel(self, endpoint: str) -> None:
        entry = self._channels.pop(endpoint, None)
        if entry is not None:
            with contextlib.suppress(Exception):
                await entry[0].close()

    async def _grpc_check(
        self, endpoint: str, settings: ProbeSettings, identity: str, instance_id: str
    ) -> tuple[bool, str]:
        stub = await self._stub(endpoint, identity, instance_id)
        timeout = settings.timeout.total_seconds()
        metadata = ((PROBER_HEADER, self.member_id),) if self.member_id else None
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=settings.grpc_service),
                timeout=timeout,
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as err:
            code = err.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return False, f"timed out after {timeout:g}s"
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                await self._drop_channel(endpoint)
            if code == grpc.StatusCode.UNAVAILABLE:
                mismatch = await self._handshake_refused(endpoint, identity)
                if mismatch:
                    return False, mismatch
            if code == grpc.StatusCode.NOT_FOUND:
                return False, f"service {settings.grpc_service!r} is unknown to the instance"
            return False, f"{code.name}: {err.details()}"
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return True, ""
        return False, f"health status {status}"

    # -- HTTP -----------------------------------------------------------------

    def _client(self) -> object:
        if self._http is None:
            import httpx  # the mesh extra; imported lazily so the module loads without it

            self._http = httpx.AsyncClient(
                verify=self._https.context if self._https is not None else True,
                trust_env=False,
                follow_redirects=False,
                # Open connections are bounded by the scheduler's probe
                # concurrency; keep one alive per probed endpoint.
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=self._http_connections),
                headers={PROBER_HEADER: self.member_id or "-", "user-agent": self._user_agent},
            )
        return self._http

    async def _http_check(
        self, endpoint: str, settings: ProbeSettings, identity: str, instance_id: str
    ) -> tuple[bool, str]:
        client = self._client()
        url = http_url(endpoint, settings.http_path)
        extensions: dict[str, Any] = {}
        if self._https is not None and url.startswith("https://"):
            self._https.refresh()
            if identity:
                extensions = self._https.extensions(expected_identity(instance_id or endpoint, endpoint, identity))
        reply = await client.get(  # type: ignore[attr-defined]
            url, timeout=settings.timeout.total_seconds(), extensions=extensions
        )
        if 200 <= reply.status_code < 300:
            return True, ""
        return False, f"HTTP {reply.status_code}"

    # -- TCP ------------------------------------------------------------------

    async def _tcp_check(self, endpoint: str) -> tuple[bool, str]:
        host, port = split_host_port(endpoint)
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return True, ""

    # -- lifecycle ------------------------------------------------------------

    async def forget(self, endpoint: str) -> None:
        """Release what is kept for an endpoint no longer probed."""
        await self._drop_channel(endpoint)

    async def close(self) -> None:
        """Close every channel and the HTTP pool."""
        for endpoint in list(self._channels):
            await self._drop_channel(endpoint)
        if self._http is not None:
            with contextlib.suppress(Exception):
                await self._http.aclose()  # type: ignore[attr-defined]
            self._http = None
