"""Stop every replica a scheduler manages, without a running scheduler: what
`sutradhar down` needs so that no replica outlives the mesh.

A scheduler that exits leaves its replicas running on purpose (the next
leader adopts them). When the whole mesh goes away instead, call
`stop_replicas(state_dir, etcd=...)` (or run ``python -m
sutradhar.services.scheduler --stop-replicas --state-dir DIR --etcd HOST:PORT``)
after the scheduler has stopped: every process group recorded under the state
dir gets SIGTERM then SIGKILL, records of http/in-process replicas are
dropped, and containers of the deployments stored in etcd are removed.
Deployments stay in etcd, so the next `sutradhar up` starts them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path

from sutradhar._errors import SutradharError
from sutradhar._tls import TlsSource
from sutradhar.services.common import keys
from sutradhar.services.common.store import EtcdEndpoint, Store
from sutradhar.services.scheduler.runtimes.base import Replica
from sutradhar.services.scheduler.runtimes.loader import RuntimeSet
from sutradhar.v1 import scheduler_pb2

log = logging.getLogger(__name__)


async def _deployments(etcd: str, tls: TlsSource | None) -> set[tuple[str, str]]:
    store = Store(EtcdEndpoint.parse(etcd), tls=tls)
    try:
        kvs, _ = await store.list(keys.kind_prefix(keys.DEPLOYMENTS))
    finally:
        await store.close()
    out = set()
    for kv in kvs:
        d = keys.decode(kv.value, scheduler_pb2.Deployment)
        out.add((d.namespace or keys.DEFAULT_NAMESPACE, d.name))
    return out


async def stop_replicas(
    state_dir: Path, *, etcd: str | None = None, grace: timedelta = timedelta(seconds=10),
    tls: TlsSource | None = None,
) -> list[Replica]:
    """Stop every managed replica (see the module docstring); return what was stopped.
    `tls`: the scheduler's certificate, for a secured etcd."""
    runtimes = RuntimeSet(state_dir)
    stopped: list[Replica] = []
    try:
        owned: set[tuple[str, str]] | None = None
        if etcd:
            try:
                owned = await _deployments(etcd, tls)
                runtimes.get("container")
            except SutradharError as err:
                log.warning("containers are left alone: %s", err)
        for runtime in runtimes.loaded():
            try:
                replicas = await runtime.list()
            except SutradharError as err:
                log.warning("cannot list %s replicas: %s", runtime.name, err)
                continue
            if runtime.name == "container":
                replicas = [r for r in replicas if owned is not None and (r.namespace, r.deployment) in owned]
            results = await asyncio.gather(*(runtime.stop(r, grace=grace) for r in replicas), return_exceptions=True)
            for replica, result in zip(replicas, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("stopping %s failed: %s", replica.replica_id, result)
                else:
                    stopped.append(replica)
    finally:
        with contextlib.suppress(Exception):
            await runtimes.close()
    return stopped
