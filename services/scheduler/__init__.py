"""The scheduler: deployments reconciled onto runtimes, autoscaling, rolling
updates, leader election (docs/scheduler.md).

- ``deployments``  Deployments: the API's domain logic over etcd
- ``controller``   Controller: watches, work queue, workers, leadership
- ``reconciler``   Reconciler: one deployment's spec onto its slots
- ``supervision``  Supervisor: start, readiness, monitor, crash back-off, stop
- ``registration`` Registrar: register, deregister, keep instance leases alive
- ``adoption``     adopt(): a new leader takes over what runs
- ``status``       counts, replica statuses, events and conditions
- ``slots``        Slot and the restart rules (back-off, reset, crash loop)
- ``clock``        the wall and monotonic clocks the parts read (injectable)
- ``rollout``      plan(): replicas to start/stop within max surge/unavailable
- ``autoscale``    autoscale(): the HPA arithmetic with stabilization windows
- ``election``     LeaderElection: etcd lease + lowest create revision leads
- ``workqueue``    WorkQueue: deduplicating keys, per-key back-off
- ``runtimes``     process, container, http, in-process
- ``server``       SchedulerConfig / SchedulerServer (the gRPC surface)

Run it with ``python -m sutradhar.services.scheduler --port 50053 --etcd 127.0.0.1:2379``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sutradhar.services.scheduler.config import SchedulerConfig
    from sutradhar.services.scheduler.server import SchedulerServer

__all__ = ["SchedulerConfig", "SchedulerServer"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the registry imports the runtimes' pure config schemas
    # (runtimes/config_schemas.py), which must not pull in the scheduler's server,
    # etcd client and controller with this package.
    if name == "SchedulerConfig":
        from sutradhar.services.scheduler.config import SchedulerConfig

        return SchedulerConfig
    if name == "SchedulerServer":
        from sutradhar.services.scheduler.server import SchedulerServer

        return SchedulerServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
