"""The runtime interface: how the scheduler starts, stops, finds and reads
replicas, whatever runs them.

A runtime is stateless towards the scheduler: everything it needs to adopt
replicas after a scheduler restart is recoverable from the world itself
(process records on disk, Docker labels). `list()` returns every replica the
runtime can find that carries Sutradhar's labels, so a new leader adopts
instead of starting duplicates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Protocol

from sutradhar._labels import DEPLOYMENT_LABEL
from sutradhar.services.scheduler.identities import ReplicaTls
from sutradhar.v1 import registry_pb2

#: Labels every managed replica carries (process records and Docker labels).
LABEL_MANAGED = "sutradhar.managed"
LABEL_NAMESPACE = "sutradhar.namespace"
LABEL_DEPLOYMENT = DEPLOYMENT_LABEL
LABEL_AGENT = "sutradhar.agent"
LABEL_REVISION = "sutradhar.revision"
LABEL_REPLICA = "sutradhar.replica"


class ReplicaPhase(Enum):
    """Where a replica is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"
    FAILED = "failed"  # could not be started at all (see `message`)


@dataclass(frozen=True)
class ReplicaSpec:
    """What to run: one replica of one agent for one deployment revision."""

    namespace: str
    deployment: str
    replica_id: str
    revision: str
    agent: registry_pb2.Agent
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The replica's extra environment; it may hold values of Secrets, so it is never in a repr."""
    labels: Mapping[str, str] = field(default_factory=dict)
    tls: ReplicaTls | None = None
    """The replica's own certificate (a secured scheduler issues one per replica)."""
    insecure: bool = False
    """No certificate: the replica serves plaintext (the scheduler itself runs --insecure)."""
    files_dir: Path | None = None
    """The replica's private directory of Secret and ConfigMap files (`replica_files`): a process
    replica finds it in SUTRADHAR_FILES_DIR, each mount under it at its mount path."""
    mounts: tuple[tuple[str, str], ...] = ()
    """(host directory, mount path) of each file mount: read-only binds of a container replica."""
    access_review: str = ""
    """Registry host:port the replica asks whether a caller that is not a mesh service (a DirectClient's
    user) may execute it (SUTRADHAR_ACCESS_REVIEW; a secured scheduler sets its registry address). The
    process runtime passes it on; a container cannot reach the host's loopback, so its replicas go without
    and take calls from the mesh's services only."""
    metrics: bool = False
    """Give the replica a port for its Prometheus /metrics (SUTRADHAR_METRICS_PORT, with
    SUTRADHAR_METRICS_OPTIONAL=1: an agent that cannot serve one still starts)."""


def metrics_env(port: int) -> dict[str, str]:
    """The variables that give an agent its metrics port: an SDK agent serves /metrics there, and starts
    without it when it cannot (prometheus-client not installed), so the scheduler's default never breaks one."""
    return {"SUTRADHAR_METRICS_PORT": str(port), "SUTRADHAR_METRICS_OPTIONAL": "1"}


def access_review_env(spec: ReplicaSpec) -> dict[str, str]:
    """The variable that tells a replica where to ask about its direct callers (none: it refuses them)."""
    return {"SUTRADHAR_ACCESS_REVIEW": spec.access_review} if spec.access_review and spec.tls is not None else {}


def security_env(spec: ReplicaSpec, root: str | None = None) -> dict[str, str]:
    """The variables that tell an SDK agent how to serve: its certificate files (as seen
    under `root` inside a container, else where they are), or SUTRADHAR_INSECURE=1."""
    if spec.tls is not None:
        return spec.tls.env(root)
    return {"SUTRADHAR_INSECURE": "1"} if spec.insecure else {}


@dataclass(frozen=True)
class Replica:
    """A replica as the runtime sees it now."""

    replica_id: str
    runtime: str
    namespace: str
    deployment: str
    revision: str
    agent_id: str
    phase: ReplicaPhase
    endpoint: str = ""  # "127.0.0.1:port", a URL, or "in-process"
    native_id: str = ""  # pid, container id, URL
    labels: Mapping[str, str] = field(default_factory=dict)
    started_at: datetime | None = None
    exit_code: int | None = None
    message: str = ""  # why it failed or exited, for status conditions and events
    metrics_endpoint: str = ""  # "127.0.0.1:port" of the replica's /metrics when it was given a port


class Runtime(Protocol):
    """What the scheduler needs from a runtime."""

    name: str

    async def start(self, spec: ReplicaSpec) -> Replica:
        """Start one replica and return it (phase STARTING or RUNNING).

        Raises InvalidArgument for a config the runtime cannot run (missing
        image, unknown command) and Unavailable when the runtime's engine is
        down; the message names the cause and how to fix it.
        """
        ...

    async def stop(self, replica: Replica, *, grace: timedelta = timedelta(seconds=10)) -> None:
        """Stop one replica: a graceful signal, then a kill after `grace`. Idempotent."""
        ...

    async def list(self, namespace: str | None = None) -> list[Replica]:
        """Every managed replica this runtime can find (for adoption)."""
        ...

    async def inspect(self, replica: Replica) -> Replica:
        """The replica's current phase (RUNNING, EXITED with exit code, ...)."""
        ...

    def logs(self, replica: Replica, *, tail: int = 100, follow: bool = False) -> AsyncIterator[str]:
        """The replica's log lines, oldest first."""
        ...

    async def close(self) -> None:
        """Release clients and background tasks."""
        ...


def managed_labels(spec: ReplicaSpec) -> dict[str, str]:
    """The spec's labels plus the ones every managed replica carries."""
    return {
        **spec.labels,
        LABEL_MANAGED: "true",
        LABEL_NAMESPACE: spec.namespace,
        LABEL_DEPLOYMENT: spec.deployment,
        LABEL_AGENT: spec.agent.id,
        LABEL_REVISION: spec.revision,
        LABEL_REPLICA: spec.replica_id,
    }


def spec_record(spec: ReplicaSpec, *, endpoint: str, native_id: str, started_at: datetime) -> dict[str, object]:
    """A JSON-able record of a started replica (for runtimes that keep records on disk)."""
    return {
        "replica_id": spec.replica_id,
        "namespace": spec.namespace,
        "deployment": spec.deployment,
        "revision": spec.revision,
        "agent_id": spec.agent.id,
        "endpoint": endpoint,
        "native_id": native_id,
        "labels": managed_labels(spec),
        "started_at": started_at.isoformat(),
    }


def replica_from_record(record: Mapping[str, object], runtime: str) -> Replica:
    """The RUNNING replica a `spec_record` describes."""
    return Replica(
        replica_id=str(record["replica_id"]),
        runtime=runtime,
        namespace=str(record["namespace"]),
        deployment=str(record["deployment"]),
        revision=str(record["revision"]),
        agent_id=str(record["agent_id"]),
        phase=ReplicaPhase.RUNNING,
        endpoint=str(record["endpoint"]),
        native_id=str(record["native_id"]),
        labels=dict(record.get("labels") or {}),  # type: ignore[call-overload]
        started_at=datetime.fromisoformat(str(record["started_at"])),
        metrics_endpoint=str(record.get("metrics_endpoint") or ""),
    )
