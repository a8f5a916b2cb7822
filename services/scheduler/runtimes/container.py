"""The container runtime: replicas are Docker containers, run through the
Docker Engine API (the `docker` package).

An agent with ``runtime: container`` carries in ``config``::

    image:   "sutradhar/agent:0.1.0"        # required; built with `sutradhar image build`
    command: ["examples.echo_agent:EchoAgent"]  # optional, args after the image's ENTRYPOINT
    port:    50051                           # optional, the agent's port inside the container
    env:     {KEY: value}                    # optional

Each replica is one container named ``sutradhar-<namespace>-<replica>`` (the
replica id starts with the deployment's name; the runtime's scope goes after
``sutradhar-`` when it has one, see `ContainerRuntime`) and Sutradhar's labels
(so `list()` adopts it after a scheduler restart, whatever its name),
cpu/memory limits from ``agent.resources`` ("500m", "2"; "256Mi", "1Gi"), no
restart policy (the scheduler restarts with back-off), and the agent port
published on 127.0.0.1 only, on a host port the engine picks. The endpoint is
``127.0.0.1:<host port>``.

The agent inside gets ``SUTRADHAR_PORT`` (the container port),
``SUTRADHAR_HOST=0.0.0.0`` (it must listen on the container's interface for the
published port to reach it; the host side stays bound to loopback),
``SUTRADHAR_INSTANCE_ID``, ``SUTRADHAR_NAMESPACE``, ``SUTRADHAR_AGENT_ID`` and
``SUTRADHAR_AGENT_VERSION``, then ``config.env``, then
the spec's env (later wins), then how to serve: with a certificate (a secured
scheduler), the replica's certificate directory mounted read-only at
``/run/sutradhar/tls`` with ``SUTRADHAR_TLS_*`` pointing there, and the container
runs as a user that can read its 0600 key: the image's unprivileged 65534 (the
files are handed to it) under a root scheduler, else the scheduler's own user; else
``SUTRADHAR_INSECURE=1`` (and ``SUTRADHAR_PUBLISHED_ON_LOOPBACK=1``: the agent may
listen on 0.0.0.0 inside, as the port is published on the host's loopback only). No
``SUTRADHAR_ACCESS_REVIEW``: the registry listens on the host's loopback, which a container on
Docker's bridge network cannot reach, so container replicas take calls from the mesh's router,
health and scheduler only, and a DirectClient leaves their calls to the router (``container-replica``).
Values from Secrets and ConfigMaps (resolved by the scheduler) arrive in the
environment, and file mounts as read-only binds at their mount paths, the files
0400 and owned by the user the container runs as (`replica_files`).

The `docker` client is blocking; every call runs on this runtime's own thread
pool, and `logs(follow=True)` reads on a thread of its own, so nothing here
blocks the event loop.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import functools
import math
import os
import re
import shlex
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sutradhar._errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SutradharError,
    Unavailable,
)
from sutradhar._values import from_struct
from sutradhar.services.common.validation import parse_cpu, parse_memory
from sutradhar.services.scheduler.identities import CONTAINER_MOUNT
from sutradhar.services.scheduler.runtimes.base import (
    LABEL_AGENT,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED,
    LABEL_NAMESPACE,
    LABEL_REPLICA,
    LABEL_REVISION,
    Replica,
    ReplicaPhase,
    ReplicaSpec,
    metrics_env,
    security_env,
)
from sutradhar.services.scheduler.runtimes.config_schemas import validate_runtime_config
from sutradhar.services.scheduler.runtimes.container_config import CONTAINER_USER
from sutradhar.services.scheduler.spec import CONTAINER_MIN_MEMORY

try:  # the `docker` package comes with the mesh extra
    import docker
    import docker.errors
    import requests.exceptions
except ImportError:  # pragma: no cover - exercised only without the extra
    docker = None

T = TypeVar("T")

#: Label holding the agent's port inside the container (to find its published port).
LABEL_CONTAINER_PORT = "sutradhar.container-port"
#: The agent port inside the container when config.port is not set.
DEFAULT_CONTAINER_PORT = 50051
#: Label holding the port of the agent's /metrics inside the container, when it was given one.
LABEL_CONTAINER_METRICS_PORT = "sutradhar.container-metrics-port"
#: The /metrics port inside the container (the next one when the agent's own port is this one).
CONTAINER_METRICS_PORT = 9464
#: Label naming the scope a container belongs to (absent: the unscoped default).
LABEL_SCOPE = "sutradhar.scope"
#: Environment variable with the default scope of a ContainerRuntime.
SCOPE_ENV = "SUTRADHAR_CONTAINER_SCOPE"
#: Docker refuses memory limits below 6 MiB.
MIN_MEMORY_BYTES = CONTAINER_MIN_MEMORY

_INSTALL_HINT = (
    "start one with `sudo scripts/install-docker.sh` (installs docker.io and starts dockerd), "
    "or set DOCKER_HOST to a running engine"
)
_BUILD_HINT = "build it with `sutradhar image build` (see docs/containers.md)"

def nano_cpus(text: str) -> int:
    """CPU in Kubernetes syntax ("500m", "2") as Docker nano-CPUs; 0 for "" (no limit)."""
    if not text.strip():
        return 0
    return int(parse_cpu(text.strip(), field="agent.resources.cpu") * 1_000_000_000)


def memory_bytes(text: str) -> int:
    """Memory in Kubernetes syntax ("256Mi", "1Gi") as bytes; 0 for "" (no limit)."""
    if not text.strip():
        return 0
    value = parse_memory(text.strip(), field="agent.resources.memory")
    if value < MIN_MEMORY_BYTES:
        raise InvalidArgument(
            f"agent.resources.memory: {text!r} is below Docker's minimum of 6Mi",
            field="agent.resources.memory",
        )
    return value


def container_name(namespace: str, replica_id: str, scope: str = "") -> str:
    """The container's name: ``sutradhar-[<scope>-]<ns>-<replica>``, Docker-safe.

    Unique because a replica id is unique in its namespace (it is the instance
    id); it starts with the deployment's name already, so the name does not
    repeat it. Containers named before (``...-<ns>-<deployment>-<replica>``)
    are still found: listing and adoption go by labels, never by name."""
    raw = f"sutradhar-{scope + '-' if scope else ''}{namespace or 'default'}-{replica_id}"
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", raw)


def docker_client(*, base_url: str | None = None, timeout: timedelta = timedelta(seconds=120),
                  max_pool_size: int = 16) -> Any:
    """A connected `docker.DockerClient` (API version negotiated), or Unavailable with a hint.

    `base_url` defaults to DOCKER_HOST or the local socket. Blocking: call it
    from a thread in async code.
    """
    if docker is None:
        raise FailedPrecondition(
            "the container runtime needs the `docker` package: pip install 'sutradhar[mesh]'"
        )
    try:
        if base_url:
            return docker.DockerClient(
                base_url=base_url, version="auto", timeout=int(timeout.total_seconds()),
                max_pool_size=max_pool_size,
            )
        return docker.DockerClient.from_env(
            version="auto", timeout=int(timeout.total_seconds()), max_pool_size=max_pool_size
        )
    except docker.errors.DockerException as err:
        raise Unavailable(f"no Docker engine answers ({_short(err)}); {_INSTALL_HINT}") from err


def _short(err: BaseException) -> str:
    text = getattr(err, "explanation", None) or str(err)
    return str(text).strip().splitlines()[0][:300] if str(text).strip() else type(err).__name__


@contextlib.contextmanager
def translate_docker_errors(*, image: str = "") -> Iterator[None]:
    """Turn errors of the `docker` package into Sutradhar's error tree."""
    try:
        yield
    except SutradharError:
        raise
    except docker.errors.ImageNotFound as err:
        raise InvalidArgument(
            f"container image {image!r} is not on this Docker engine (Sutradhar never pulls); "
            f"{_BUILD_HINT}",
            field="agent.config.image",
        ) from err
    except docker.errors.NotFound as err:
        raise FailedPrecondition(f"Docker: {_short(err)}") from err
    except docker.errors.APIError as err:
        status = err.status_code or 0
        text = _short(err)
        if status == 409:
            raise AlreadyExists(f"Docker: {text}") from err
        if 400 <= status < 500 or "executable file not found" in text or "no such file" in text:
            raise InvalidArgument(f"Docker refused the container: {text}") from err
        raise Unavailable(f"Docker engine error: {text}") from err
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as err:
        raise Unavailable(f"the Docker engine stopped answering ({_short(err)}); {_INSTALL_HINT}") from err


def _parse_time(text: str | None) -> datetime | None:
    """Docker's RFC 3339 times have nanoseconds; Python takes microseconds."""
    if not text or text.startswith("0001-01-01"):
        return None
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        return None
    frac = (match.group(2) or ".0")[:7]
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(match.group(1) + frac + zone)


def _phase_from_state(state: Mapping[str, Any]) -> tuple[ReplicaPhase, int | None, str]:
    """(phase, exit code, message) from a container's inspect `State`."""
    status = str(state.get("Status", ""))
    error = str(state.get("Error") or "")
    exit_code = state.get("ExitCode")
    if status in ("running", "paused"):
        return ReplicaPhase.RUNNING, None, ""
    if status in ("created", "restarting"):
        if error:
            return ReplicaPhase.FAILED, exit_code, error
        return ReplicaPhase.STARTING, None, ""
    # exited, dead, removing
    if error:
        return ReplicaPhase.FAILED, exit_code, error
    if state.get("OOMKilled"):
        return ReplicaPhase.EXITED, exit_code, "OOMKilled: the container exceeded its memory limit"
    message = f"exited with code {exit_code}"
    if exit_code == 127:
        message += " (command not found in the image)"
    elif exit_code == 126:
        message += " (command not executable)"
    elif exit_code == 137:
        message += " (SIGKILL)"
    elif exit_code == 143:
        message += " (SIGTERM)"
    return ReplicaPhase.EXITED, exit_code, message


_STATUS_EXIT = re.compile(r"Exited \((-?\d+)\)")


class ContainerRuntime:
    """Runs replicas as Docker containers; implements `Runtime` under the name "container".

    ``ContainerRuntime(base_url=None, *, scope=None, timeout=..., max_workers=8)``:
    the engine at `base_url` (default DOCKER_HOST or the local socket).

    `scope` (default: ``SUTRADHAR_CONTAINER_SCOPE``, else none) partitions one
    engine between several meshes: containers are labelled ``sutradhar.scope``
    with it, and `list()` returns only containers of the same scope (an
    unscoped runtime sees only unscoped containers). Without it, a scheduler of
    one mesh would adopt, and remove as surplus, the replicas of another mesh
    on the same engine (a developer's `sutradhar up` beside a test run, or two
    test runs).

    Connecting is lazy, on first use, so creating the runtime never fails for
    lack of an engine.
    """

    name = "container"

    def __init__(self, base_url: str | None = None, *, scope: str | None = None,
                 timeout: timedelta = timedelta(seconds=120), max_workers: int = 8) -> None:
        self._base_url = base_url
        self.scope = (os.environ.get(SCOPE_ENV, "") if scope is None else scope).strip()
        """This runtime's scope ("" = unscoped)."""
        self._timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sutradhar-docker")
        self._max_pool = max_workers + 4
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._followers: set[Any] = set()
        self._closed = False

    # -- plumbing ----------------------------------------------------------

    def _docker(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = docker_client(
                    base_url=self._base_url, timeout=self._timeout, max_pool_size=self._max_pool
                )
            return self._client

    def _ref(self, replica: Replica) -> str:
        """The container's id; when the id is unknown, the id of the container
        labelled as this replica (whatever its name), else its name. Blocking."""
        if replica.native_id:
            return replica.native_id
        filters = [f"{LABEL_MANAGED}=true", f"{LABEL_NAMESPACE}={replica.namespace or 'default'}",
                   f"{LABEL_REPLICA}={replica.replica_id}"]
        with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
            for summary in self._docker().api.containers(all=True, filters={"label": filters}):
                if (summary.get("Labels") or {}).get(LABEL_SCOPE, "") == self.scope:
                    return str(summary["Id"])
        return container_name(replica.namespace, replica.replica_id, self.scope)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise FailedPrecondition("the container runtime is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    # -- Runtime -----------------------------------------------------------

    async def start(self, spec: ReplicaSpec) -> Replica:
        """Create and start the replica's container; return it RUNNING with its endpoint.

        Raises InvalidArgument (missing image, bad config or limits, a command the
        image cannot run), AlreadyExists (a container of that name runs another
        revision) or Unavailable (no engine).
        """
        return await self._call(self._start_sync, spec)

    async def stop(self, replica: Replica, *, grace: timedelta = timedelta(seconds=10)) -> None:
        """SIGTERM, SIGKILL after `grace`, then remove the container. Idempotent."""
        await self._call(self._stop_sync, replica, grace)

    async def list(self, namespace: str | None = None) -> list[Replica]:
        """Every container with ``sutradhar.managed=true`` of this runtime's scope
        (in `namespace` when given)."""
        return await self._call(self._list_sync, namespace)

    async def inspect(self, replica: Replica) -> Replica:
        """The container's current phase, exit code and message (OOMKilled, ...).

        A container that no longer exists is EXITED with a message saying so.
        """
        return await self._call(self._inspect_sync, replica)

    async def logs(self, replica: Replica, *, tail: int = 100, follow: bool = False) -> AsyncIterator[str]:
        """The container's output lines (stdout and stderr), oldest first.

        With `follow`, lines keep coming until the container stops or the
        caller stops iterating. NotFound when the container is gone.
        """
        if not follow:
            text = await self._call(self._logs_sync, replica, tail)
            for line in text.splitlines():
                yield line
            return
        async for line in self._follow(replica, tail):
            yield line

    async def close(self) -> None:
        """Stop log followers, close the Docker client and the thread pool."""
        self._closed = True
        for stream in list(self._followers):
            with contextlib.suppress(Exception):
                stream.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    # -- blocking implementations (run on the pool) ---------------------------

    def _start_sync(self, spec: ReplicaSpec) -> Replica:
        config = from_struct(spec.agent.config) if spec.agent.HasField("config") else {}
        validate_runtime_config("container", config, field="agent.config")
        image = str(config["image"]).strip()
        port = int(config.get("port", DEFAULT_CONTAINER_PORT))
        command = _command(config.get("command"))
        namespace = spec.namespace or "default"
        env: dict[str, str] = {
            "SUTRADHAR_PORT": str(port),
            "SUTRADHAR_HOST": "0.0.0.0",
            "SUTRADHAR_INSTANCE_ID": spec.replica_id,
            "SUTRADHAR_NAMESPACE": namespace,
            "SUTRADHAR_AGENT_ID": spec.agent.id,
            "SUTRADHAR_AGENT_VERSION": spec.agent.version,
        }
        config_env = config.get("env")
        if isinstance(config_env, dict):  # a list (with references) is resolved into spec.env by the scheduler
            env.update(config_env)
        env.update(spec.env)
        env.update(security_env(spec, CONTAINER_MOUNT))
        metrics_port = (CONTAINER_METRICS_PORT + (port == CONTAINER_METRICS_PORT)) if spec.metrics else None
        if metrics_port is not None:
            env.update(metrics_env(metrics_port))
        if spec.insecure:
            # inside, the agent listens on 0.0.0.0; outside, the port is published on loopback only
            env["SUTRADHAR_PUBLISHED_ON_LOOPBACK"] = "1"
        cpus = nano_cpus(spec.agent.resources.cpu)
        mem_limit = memory_bytes(spec.agent.resources.memory)
        labels = {
            **dict(spec.labels),
            **({LABEL_SCOPE: self.scope} if self.scope else {}),
            LABEL_MANAGED: "true",
            LABEL_NAMESPACE: namespace,
            LABEL_DEPLOYMENT: spec.deployment,
            LABEL_AGENT: spec.agent.id,
            LABEL_REVISION: spec.revision,
            LABEL_REPLICA: spec.replica_id,
            LABEL_CONTAINER_PORT: str(port),
            **({LABEL_CONTAINER_METRICS_PORT: str(metrics_port)} if metrics_port is not None else {}),
        }
        published = [port] + ([metrics_port] if metrics_port is not None else [])
        name = container_name(namespace, spec.replica_id, self.scope)
        client = self._docker()
        api = client.api
        host_config = api.create_host_config(
            port_bindings={f"{p}/tcp": ("127.0.0.1", None) for p in published},
            nano_cpus=cpus or None,
            mem_limit=mem_limit or None,
            memswap_limit=mem_limit or None,  # no swap beyond the limit
            init=True,  # docker-init reaps zombies and forwards SIGTERM
            binds=_binds(spec),
        )
        # A replica with a certificate must read its 0600 key: a root scheduler hands the files to
        # the unprivileged CONTAINER_USER and runs it as that; another scheduler runs it as itself.
        user = None
        if spec.tls is not None or spec.mounts:  # the 0400 files are the container user's
            uid, gid = CONTAINER_USER if os.geteuid() == 0 else (os.getuid(), os.getgid())
            user = f"{uid}:{gid}"
        with translate_docker_errors(image=image):
            try:
                created = api.create_container(
                    image=image, command=command, environment=env, labels=labels, name=name,
                    ports=published, host_config=host_config, detach=True, user=user,
                )
            except docker.errors.APIError as err:
                if err.status_code != 409:
                    raise
                adopted = self._existing_for(name, spec)
                if adopted is not None:
                    return adopted
                created = api.create_container(
                    image=image, command=command, environment=env, labels=labels, name=name,
                    ports=published, host_config=host_config, detach=True, user=user,
                )
        container_id = created["Id"]
        try:
            with translate_docker_errors(image=image):
                api.start(container_id)
                attrs = api.inspect_container(container_id)
        except BaseException:
            with contextlib.suppress(Exception):
                api.remove_container(container_id, force=True)
            raise
        return _replica_from_inspect(attrs)

    def _existing_for(self, name: str, spec: ReplicaSpec) -> Replica | None:
        """A container named `name` exists: adopt it when it is this very replica and
        runs, remove it when it is a dead one of ours; otherwise AlreadyExists."""
        api = self._docker().api
        attrs = api.inspect_container(name)
        labels = attrs["Config"].get("Labels") or {}
        ours = (
            labels.get(LABEL_MANAGED) == "true"
            and labels.get(LABEL_REPLICA) == spec.replica_id
            and labels.get(LABEL_SCOPE, "") == self.scope
        )
        if not ours:
            raise AlreadyExists(f"a container named {name!r} exists and is not this replica")
        replica = _replica_from_inspect(attrs)
        if replica.phase is ReplicaPhase.RUNNING and labels.get(LABEL_REVISION) == spec.revision:
            return replica
        if replica.phase is ReplicaPhase.RUNNING:
            raise AlreadyExists(
                f"container {name!r} runs revision {labels.get(LABEL_REVISION)!r}, not {spec.revision!r}; "
                "stop it first"
            )
        if replica.phase is ReplicaPhase.STARTING:  # another start() of this replica is under way
            raise AlreadyExists(f"container {name!r} is being started already")
        api.remove_container(attrs["Id"], force=True)
        return None

    def _stop_sync(self, replica: Replica, grace: timedelta) -> None:
        api = self._docker().api
        ref = self._ref(replica)
        with translate_docker_errors():
            try:
                api.stop(ref, timeout=max(0, math.ceil(grace.total_seconds())))
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as err:
                if err.status_code != 409:  # 409: already being removed
                    raise
            try:
                api.remove_container(ref, force=True)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as err:
                if err.status_code != 409 or "already in progress" not in _short(err):
                    raise

    def _list_sync(self, namespace: str | None) -> builtins.list[Replica]:
        filters = [f"{LABEL_MANAGED}=true"]
        if namespace is not None:
            filters.append(f"{LABEL_NAMESPACE}={namespace or 'default'}")
        if self.scope:
            filters.append(f"{LABEL_SCOPE}={self.scope}")
        with translate_docker_errors():
            summaries = self._docker().api.containers(all=True, filters={"label": filters})
        return [
            _replica_from_summary(s) for s in summaries
            if (s.get("Labels") or {}).get(LABEL_SCOPE, "") == self.scope
        ]

    def _inspect_sync(self, replica: Replica) -> Replica:
        ref = self._ref(replica)
        with translate_docker_errors():
            try:
                attrs = self._docker().api.inspect_container(ref)
            except docker.errors.NotFound:
                return _gone(replica)
        return _replica_from_inspect(attrs)

    def _logs_sync(self, replica: Replica, tail: int) -> str:
        ref = self._ref(replica)
        with translate_docker_errors():
            try:
                data = self._docker().api.logs(ref, stdout=True, stderr=True, tail=max(0, tail))
            except docker.errors.NotFound as err:
                raise NotFound(f"no container {ref!r}: the replica is gone") from err
        return bytes(data).decode("utf-8", "replace")

    async def _follow(self, replica: Replica, tail: int) -> AsyncIterator[str]:
        ref = await self._call(self._ref, replica)

        def open_stream() -> Any:
            with translate_docker_errors():
                try:
                    return self._docker().api.logs(
                        ref, stdout=True, stderr=True, stream=True, follow=True, tail=max(0, tail)
                    )
                except docker.errors.NotFound as err:
                    raise NotFound(f"no container {ref!r}: the replica is gone") from err

        stream = await self._call(open_stream)
        self._followers.add(stream)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        def pump() -> None:  # a thread of its own: it blocks as long as the container runs
            try:
                for chunk in stream:
                    loop.call_soon_threadsafe(queue.put_nowait, bytes(chunk))
            except Exception:  # closed under us: the caller stopped reading
                pass
            finally:
                with contextlib.suppress(RuntimeError):  # loop closed
                    loop.call_soon_threadsafe(queue.put_nowait, None)

        thread = threading.Thread(target=pump, name=f"sutradhar-logs-{ref[:12]}", daemon=True)
        thread.start()
        pending = b""
        try:
            while True:
                chunk = await queue.get()
                if chunk is None:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
            if pending:
                yield pending.decode("utf-8", "replace")
        finally:
            self._followers.discard(stream)
            with contextlib.suppress(Exception):
                stream.close()


# -- helpers ------------------------------------------------------------------


def _binds(spec: ReplicaSpec) -> dict[str, dict[str, str]] | None:
    """Read-only binds: the certificate directory, and each Secret/ConfigMap file mount."""
    binds = {host: {"bind": path, "mode": "ro"} for host, path in spec.mounts}
    if spec.tls is not None:
        binds[str(spec.tls.directory)] = {"bind": CONTAINER_MOUNT, "mode": "ro"}
    return binds or None


def _command(value: Any) -> list[str] | None:
    """config.command (validated already) as Docker's argv after the ENTRYPOINT."""
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _endpoint(ports: Mapping[str, Any] | None, port: str) -> str:
    for binding in (ports or {}).get(f"{port}/tcp") or []:
        if binding.get("HostPort"):
            return f"127.0.0.1:{binding['HostPort']}"
    return ""


def _published(ports: list[Mapping[str, Any]], port: int) -> str:
    """"127.0.0.1:<host port>" where a `docker ps` entry publishes container `port` (empty: nowhere)."""
    for entry in ports:
        if entry.get("PrivatePort") == port and entry.get("PublicPort") and entry.get("Type") == "tcp":
            return f"127.0.0.1:{entry['PublicPort']}"
    return ""


def _replica(labels: dict[str, str], *, phase: ReplicaPhase, endpoint: str, native_id: str,
             started_at: datetime | None, exit_code: int | None, message: str, metrics_endpoint: str = "") -> Replica:
    """A Replica whose identity comes from the container's labels."""
    return Replica(
        replica_id=labels.get(LABEL_REPLICA, ""),
        runtime=ContainerRuntime.name,
        namespace=labels.get(LABEL_NAMESPACE, ""),
        deployment=labels.get(LABEL_DEPLOYMENT, ""),
        revision=labels.get(LABEL_REVISION, ""),
        agent_id=labels.get(LABEL_AGENT, ""),
        phase=phase,
        endpoint=endpoint,
        native_id=native_id,
        labels=labels,
        started_at=started_at,
        exit_code=exit_code,
        message=message,
        metrics_endpoint=metrics_endpoint,
    )


def _replica_from_inspect(attrs: Mapping[str, Any]) -> Replica:
    labels = dict(attrs["Config"].get("Labels") or {})
    state = attrs.get("State") or {}
    phase, exit_code, message = _phase_from_state(state)
    endpoint = metrics_endpoint = ""
    if phase is ReplicaPhase.RUNNING:
        ports = (attrs.get("NetworkSettings") or {}).get("Ports")
        endpoint = _endpoint(ports, labels.get(LABEL_CONTAINER_PORT, str(DEFAULT_CONTAINER_PORT)))
        if LABEL_CONTAINER_METRICS_PORT in labels:
            metrics_endpoint = _endpoint(ports, labels[LABEL_CONTAINER_METRICS_PORT])
    return _replica(
        labels, phase=phase, endpoint=endpoint, metrics_endpoint=metrics_endpoint, native_id=str(attrs["Id"]),
        started_at=_parse_time(state.get("StartedAt")) or _parse_time(attrs.get("Created")),
        exit_code=exit_code, message=message,
    )


def _replica_from_summary(summary: Mapping[str, Any]) -> Replica:
    """A Replica from one `docker ps -a` entry (no per-container inspect).

    started_at is the container's creation time here; `inspect` gives the
    exact start time and the OOMKilled flag.
    """
    labels = dict(summary.get("Labels") or {})
    state = str(summary.get("State", ""))
    exit_code: int | None = None
    message = ""
    endpoint = metrics_endpoint = ""
    if state in ("running", "paused"):
        phase = ReplicaPhase.RUNNING
        ports = summary.get("Ports") or []
        endpoint = _published(ports, int(labels.get(LABEL_CONTAINER_PORT, DEFAULT_CONTAINER_PORT)))
        if LABEL_CONTAINER_METRICS_PORT in labels:
            metrics_endpoint = _published(ports, int(labels[LABEL_CONTAINER_METRICS_PORT]))
    elif state in ("created", "restarting"):
        phase = ReplicaPhase.STARTING
    else:
        phase = ReplicaPhase.EXITED
        match = _STATUS_EXIT.search(str(summary.get("Status", "")))
        exit_code = int(match.group(1)) if match else None
        message = str(summary.get("Status", state))
    created = summary.get("Created")
    return _replica(
        labels, phase=phase, endpoint=endpoint, metrics_endpoint=metrics_endpoint, native_id=str(summary["Id"]),
        started_at=datetime.fromtimestamp(created, UTC) if isinstance(created, int | float) else None,
        exit_code=exit_code, message=message,
    )


def _gone(replica: Replica) -> Replica:
    return dataclasses.replace(
        replica, phase=ReplicaPhase.EXITED, endpoint="", message="the container no longer exists (removed)"
    )
