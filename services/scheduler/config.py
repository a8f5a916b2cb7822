"""The scheduler's configuration: one frozen dataclass, loaded once at start-up from
flags and SUTRADHAR_* variables (`SETTINGS`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sutradhar._settings import (
    BOOLEAN,
    COUNT,
    DURATION,
    NATURAL,
    PORT,
    POSITIVE_DURATION,
    Settings,
    log_format_setting,
    log_level_setting,
    setting,
)
from sutradhar.services.common.security_config import ServiceSecurity


@dataclass(frozen=True)
class SchedulerConfig(ServiceSecurity):
    """Everything the scheduler can be told. Durations are timedeltas."""

    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = setting(50053, kind=PORT)
    """Port to listen on (0 picks a free one)."""
    metrics: bool = setting(True, kind=BOOLEAN)
    """Serve Prometheus metrics over HTTP at /metrics (docs/observability.md, "Metrics")."""
    metrics_port: int = setting(0, kind=PORT)
    """HTTP port of /metrics, on `host`; 0 picks a free one (announced at start)."""
    replica_metrics: bool = setting(True, kind=BOOLEAN)
    """Give every process and container replica a port for its own Prometheus /metrics
    (SUTRADHAR_METRICS_PORT); an agent opts out with `config.metrics: false` (docs/observability.md,
    "Replicas started by the scheduler")."""
    etcd: str = setting("127.0.0.1:2379", shared=True)
    """etcd endpoint, host:port."""
    registry: str = setting("127.0.0.1:50051", shared=True)
    """Registry address: managed replicas are registered through it."""
    state_dir: Path = setting(default_factory=lambda: Path("state/scheduler"))
    """Where process records and replica logs live (shared by scheduler replicas on one host)."""
    member_id: str = ""
    """This scheduler replica's id in the election (default: host-pid)."""
    election_ttl: timedelta = setting(timedelta(seconds=5), kind=POSITIVE_DURATION)
    """Leader lease TTL: a new leader takes over within it."""
    instance_ttl: timedelta = setting(timedelta(seconds=10), kind=POSITIVE_DURATION)
    """Lease TTL of the instances the scheduler registers (longer than election_ttl)."""
    resync_period: timedelta = setting(timedelta(seconds=10), kind=POSITIVE_DURATION)
    """Every deployment is reconciled at least this often."""
    workers: int = setting(4, kind=COUNT)
    """Deployments reconciled concurrently (never one deployment twice at once)."""
    stop_grace: timedelta = setting(timedelta(seconds=10), kind=DURATION)
    """Between SIGTERM and SIGKILL when a replica stops."""
    drain_delay: timedelta = timedelta(milliseconds=500)
    """After deregistering a replica and before stopping it, so routers stop sending first."""
    backoff_base: timedelta = setting(timedelta(seconds=1), kind=POSITIVE_DURATION)
    """First restart delay of a crashed replica; doubles per crash."""
    backoff_max: timedelta = setting(timedelta(seconds=60), kind=POSITIVE_DURATION)
    """Longest restart delay."""
    backoff_reset: timedelta = timedelta(seconds=60)
    """A replica ready this long has its crash count reset."""
    crash_loop_restarts: int = setting(2, kind=NATURAL)
    """Restarts after which a crashing replica is reported as CrashLoopBackOff."""
    readiness_timeout: timedelta = setting(timedelta(seconds=60), kind=POSITIVE_DURATION)
    """A replica not ready by then is stopped and counted as a crash."""
    autoscale_period: timedelta = setting(timedelta(seconds=5), kind=POSITIVE_DURATION)
    """How often autoscaled deployments are evaluated."""
    monitor_period: timedelta = setting(timedelta(milliseconds=250), kind=POSITIVE_DURATION)
    """How often a replica's process is checked (and readiness while starting)."""
    log_max_bytes: int = setting(10 * 1024 * 1024, kind=COUNT)
    """Replica log size that triggers rotation."""
    log_backups: int = setting(3, kind=NATURAL)
    """Rotated log files kept per replica."""
    ca_dir: Path | None = None
    """The mesh CA the scheduler issues every replica's own certificate with: a directory holding
    ca.pem, ca-key.pem (0600) and bundle.pem, as `sutradhar up` writes in its state directory's pki/.
    Required with TLS on; unused with --insecure (replicas then run insecure too)."""
    replica_cert_lifetime: timedelta = setting(timedelta(hours=24), kind=POSITIVE_DURATION)
    """Lifetime of a replica's certificate; renewed at 70 % of it for as long as the replica runs."""
    log_level: str = log_level_setting("INFO")
    """Logging level of `python -m sutradhar.services.scheduler`."""
    log_format: str = log_format_setting()
    """Log line format: text, or json (one object per line with time, level, service, logger, message and the call's
    request_id, trace_id, namespace, agent, instance where known; docs/observability.md)."""


#: SchedulerConfig's flags and variables: SUTRADHAR_SCHEDULER_<FIELD>, or SUTRADHAR_<FIELD> where shared.
SETTINGS = Settings(SchedulerConfig, env_prefix="SCHEDULER_")
