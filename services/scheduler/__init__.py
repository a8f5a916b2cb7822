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

from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.server import SchedulerServer

__all__ = ["SchedulerConfig", "SchedulerServer"]
