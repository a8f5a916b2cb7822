"""`python -m sutradhar.services.scheduler`: run one scheduler replica."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from sutradhar._errors import SutradharError
from sutradhar._hosting import install_signal_handlers
from sutradhar.services.common.logs import configure_logging
from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.server import SchedulerServer


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SUTRADHAR_{name}", default)


def parse_args(argv: Sequence[str] | None) -> tuple[SchedulerConfig, bool]:
    """Flags, then SUTRADHAR_* environment variables, then defaults."""
    p = argparse.ArgumentParser(prog="python -m sutradhar.services.scheduler", description="Sutradhar scheduler.")
    p.add_argument("--host", default=_env("SCHEDULER_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(_env("SCHEDULER_PORT", "50053")))
    p.add_argument("--etcd", default=_env("ETCD", "127.0.0.1:2379"))
    p.add_argument("--registry", default=_env("REGISTRY", "127.0.0.1:50051"))
    p.add_argument("--state-dir", default=_env("SCHEDULER_STATE_DIR", "state/scheduler"))
    p.add_argument("--member-id", default=_env("SCHEDULER_MEMBER_ID", ""))
    p.add_argument("--election-ttl", type=float, default=float(_env("SCHEDULER_ELECTION_TTL", "5")),
                   help="leader lease TTL in seconds (default 5)")
    p.add_argument("--instance-ttl", type=float, default=float(_env("SCHEDULER_INSTANCE_TTL", "10")),
                   help="TTL of registered instances in seconds (default 10)")
    p.add_argument("--backoff-base", type=float, default=1.0, help="first crash restart delay, seconds")
    p.add_argument("--backoff-max", type=float, default=60.0, help="longest crash restart delay, seconds")
    p.add_argument("--stop-grace", type=float, default=10.0, help="SIGTERM to SIGKILL, seconds")
    p.add_argument("--drain-delay", type=float, default=0.5, help="deregister to SIGTERM, seconds")
    p.add_argument("--autoscale-period", type=float, default=5.0, help="autoscaler evaluation period, seconds")
    p.add_argument("--resync-period", type=float, default=10.0, help="full resync period, seconds")
    p.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))
    p.add_argument("--stop-replicas", action="store_true",
                   help="do not serve: stop every replica managed under --state-dir (and the containers of the "
                        "deployments in --etcd), then exit; for `sutradhar down` after the scheduler stopped")
    a = p.parse_args(argv)
    configure_logging(a.log_level)
    return (SchedulerConfig(
        host=a.host, port=a.port, etcd=a.etcd, registry=a.registry, state_dir=Path(a.state_dir),
        member_id=a.member_id, election_ttl=timedelta(seconds=a.election_ttl),
        instance_ttl=timedelta(seconds=a.instance_ttl), backoff_base=timedelta(seconds=a.backoff_base),
        backoff_max=timedelta(seconds=a.backoff_max), stop_grace=timedelta(seconds=a.stop_grace),
        drain_delay=timedelta(seconds=a.drain_delay), autoscale_period=timedelta(seconds=a.autoscale_period),
        resync_period=timedelta(seconds=a.resync_period),
    ), a.stop_replicas)


async def _serve(config: SchedulerConfig) -> int:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    server = SchedulerServer(config)
    try:
        await server.start()
    except SutradharError as err:
        print(f"scheduler: {err}", file=sys.stderr)
        return 1
    print(f"scheduler listening on {server.address}", file=sys.stderr, flush=True)
    await stop.wait()
    await server.stop()
    return 0


async def _stop_replicas(config: SchedulerConfig) -> int:
    from sutradhar.services.scheduler.cleanup import stop_replicas

    stopped = await stop_replicas(config.state_dir, etcd=config.etcd, grace=config.stop_grace)
    print(f"scheduler: stopped {len(stopped)} replica(s) managed under {config.state_dir}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scheduler until SIGTERM/SIGINT (or, with --stop-replicas, stop its
    replicas and exit); return the exit code."""
    config, stop_only = parse_args(argv)
    return asyncio.run(_stop_replicas(config) if stop_only else _serve(config))


if __name__ == "__main__":
    sys.exit(main())
