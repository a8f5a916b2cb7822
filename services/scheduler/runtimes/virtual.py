"""Runtimes with nothing to run: "http" (external URLs) and "in-process"
(the agent class is loaded inside the routers).

A replica of these is only a registration: the scheduler registers its
endpoint as an instance and keeps the lease alive. Small records on disk
(``<state-dir>/<runtime>/<namespace>/<replica-id>.json``) let a new leader
adopt them like process replicas.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sutradhar._errors import InvalidArgument
from sutradhar._routing.backend import IN_PROCESS_ENDPOINT
from sutradhar.services.scheduler.runtimes.base import (
    Replica,
    ReplicaPhase,
    ReplicaSpec,
    replica_from_record,
    spec_record,
)
from sutradhar.services.scheduler.spec import agent_config


class _RecordRuntime:
    """Shared bookkeeping: one JSON record per replica."""

    name = ""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / self.name

    def _path(self, namespace: str, replica_id: str) -> Path:
        return self.root / namespace / f"{replica_id}.json"

    def _endpoint(self, spec: ReplicaSpec) -> str:
        raise NotImplementedError

    async def start(self, spec: ReplicaSpec) -> Replica:
        """Record the replica; it is RUNNING at once."""
        endpoint = self._endpoint(spec)
        record = spec_record(spec, endpoint=endpoint, native_id=endpoint, started_at=datetime.now(UTC))
        path = self._path(spec.namespace, spec.replica_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        return replica_from_record(record, self.name)

    async def stop(self, replica: Replica, *, grace: timedelta = timedelta(seconds=10)) -> None:
        """Forget the record. Idempotent."""
        with contextlib.suppress(OSError):
            self._path(replica.namespace, replica.replica_id).unlink()

    def _records(self, namespace: str | None) -> list[dict[str, Any]]:
        out = []
        dirs = [self.root / namespace] if namespace else sorted(self.root.glob("*"))
        for d in dirs:
            for path in sorted(d.glob("*.json")):
                with contextlib.suppress(OSError, ValueError):
                    out.append(dict(json.loads(path.read_text())))
        return out

    async def list(self, namespace: str | None = None) -> list[Replica]:
        """Every recorded replica."""
        return [replica_from_record(r, self.name) for r in self._records(namespace)]

    async def inspect(self, replica: Replica) -> Replica:
        """RUNNING while recorded, EXITED after stop."""
        if self._path(replica.namespace, replica.replica_id).exists():
            return replace(replica, phase=ReplicaPhase.RUNNING)
        return replace(replica, phase=ReplicaPhase.EXITED, message="stopped")

    async def logs(self, replica: Replica, *, tail: int = 100, follow: bool = False) -> AsyncIterator[str]:
        """Nothing runs here, so there are no logs."""
        yield f"(runtime {self.name!r} runs nothing locally: no logs for {replica.endpoint})"

    async def close(self) -> None:
        """Nothing to release."""


class HttpRuntime(_RecordRuntime):
    """External HTTP agents: each replica is one of the configured URLs."""

    name = "http"

    def _endpoint(self, spec: ReplicaSpec) -> str:
        config = agent_config(spec.agent)
        urls = list(config.get("urls") or ([config["url"]] if config.get("url") else []))
        if not urls:
            raise InvalidArgument("agent.config.urls: no URL to register", field="agent.config.urls")
        used = {
            r["endpoint"] for r in self._records(spec.namespace)
            if r["deployment"] == spec.deployment and r["revision"] == spec.revision
        }
        for url in urls:
            if url not in used:
                return str(url)
        raise InvalidArgument(
            f"spec.replicas: every URL of agent {spec.agent.id!r} is registered already "
            f"({len(urls)} URLs); an http deployment runs one replica per URL",
            field="spec.replicas",
        )


class InProcessRuntime(_RecordRuntime):
    """In-process agents: each replica is an "in-process" instance that routers load."""

    name = "in-process"

    def _endpoint(self, spec: ReplicaSpec) -> str:
        return IN_PROCESS_ENDPOINT


def http_replica_count(config: dict[str, Any]) -> int:
    """An http deployment runs one replica per URL."""
    return len(config.get("urls") or ([config["url"]] if config.get("url") else []))
