"""The scheduler's configuration: one frozen dataclass, loaded once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path


@dataclass(frozen=True)
class SchedulerConfig:
    """Everything the scheduler can be told. Durations are timedeltas."""

    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 50053
    """Port to listen on (0 picks a free one)."""
    etcd: str = "127.0.0.1:2379"
    """etcd endpoint, host:port."""
    registry: str = "127.0.0.1:50051"
    """Registry address: managed replicas are registered through it."""
    state_dir: Path = field(default_factory=lambda: Path("state/scheduler"))
    """Where process records and replica logs live (shared by scheduler replicas on one host)."""
    member_id: str = ""
    """This scheduler replica's id in the election (default: host-pid)."""
    election_ttl: timedelta = timedelta(seconds=5)
    """Leader lease TTL: a new leader takes over within it."""
    instance_ttl: timedelta = timedelta(seconds=10)
    """Lease TTL of the instances the scheduler registers (longer than election_ttl)."""
    resync_period: timedelta = timedelta(seconds=10)
    """Every deployment is reconciled at least this often."""
    workers: int = 4
    """Deployments reconciled concurrently (never one deployment twice at once)."""
    stop_grace: timedelta = timedelta(seconds=10)
    """Between SIGTERM and SIGKILL when a replica stops."""
    drain_delay: timedelta = timedelta(milliseconds=500)
    """After deregistering a replica and before stopping it, so routers stop sending first."""
    backoff_base: timedelta = timedelta(seconds=1)
    """First restart delay of a crashed replica; doubles per crash."""
    backoff_max: timedelta = timedelta(seconds=60)
    """Longest restart delay."""
    backoff_reset: timedelta = timedelta(seconds=60)
    """A replica ready this long has its crash count reset."""
    crash_loop_restarts: int = 2
    """Restarts after which a crashing replica is reported as CrashLoopBackOff."""
    readiness_timeout: timedelta = timedelta(seconds=60)
    """A replica not ready by then is stopped and counted as a crash."""
    autoscale_period: timedelta = timedelta(seconds=5)
    """How often autoscaled deployments are evaluated."""
    monitor_period: timedelta = timedelta(milliseconds=250)
    """How often a replica's process is checked (and readiness while starting)."""
    log_max_bytes: int = 10 * 1024 * 1024
    """Replica log size that triggers rotation."""
    log_backups: int = 3
    """Rotated log files kept per replica."""
