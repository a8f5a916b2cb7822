"""`python -m sutradhar.services.health`: run one health member."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta

from sutradhar._errors import SutradharError
from sutradhar._hosting import install_signal_handlers
from sutradhar.services.common.logs import configure_logging

from .server import HealthConfig, HealthServer, new_member_id


def _seconds(text: str) -> timedelta:
    value = float(text.removesuffix("s"))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return timedelta(seconds=value)


def parse_args(argv: Sequence[str] | None) -> HealthConfig:
    """Flags, with SUTRADHAR_* environment variables as fallback."""
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m sutradhar.services.health",
                                     description="Run one Sutradhar health member.")
    parser.add_argument("--host", default=env("SUTRADHAR_HEALTH_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("SUTRADHAR_HEALTH_PORT", "50054")))
    parser.add_argument("--etcd", default=env("SUTRADHAR_ETCD", "127.0.0.1:2379"))
    parser.add_argument("--member-id", default=env("SUTRADHAR_HEALTH_MEMBER_ID", "") or new_member_id())
    parser.add_argument("--member-ttl", type=_seconds, default=_seconds(env("SUTRADHAR_HEALTH_MEMBER_TTL", "5")),
                        help="lease TTL of this member, seconds (default 5)")
    parser.add_argument("--flush-interval", type=_seconds,
                        default=_seconds(env("SUTRADHAR_HEALTH_FLUSH_INTERVAL", "10")),
                        help="longest time probe bookkeeping stays unwritten, seconds (default 10)")
    parser.add_argument("--probe-concurrency", type=int, default=256)
    parser.add_argument("--log-level", default=env("SUTRADHAR_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    return HealthConfig(
        host=args.host, port=args.port, etcd=args.etcd, member_id=args.member_id, member_ttl=args.member_ttl,
        flush_interval=args.flush_interval, probe_concurrency=args.probe_concurrency,
    )


async def _run(config: HealthConfig) -> None:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    server = HealthServer(config)
    await server.start()
    print(f"health listening on {server.address}", file=sys.stderr, flush=True)
    logging.getLogger("sutradhar.services.health").info("member id %s", server.member_id)
    stopping = asyncio.create_task(stop.wait())
    running = asyncio.create_task(server.wait())
    try:
        await asyncio.wait([stopping, running], return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()  # the member's loops failed: say why and exit 1
    finally:
        stopping.cancel()
        running.cancel()
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    config = parse_args(argv)
    try:
        asyncio.run(_run(config))
    except SutradharError as err:
        print(f"health: error: {err.message}", file=sys.stderr)
        return 1
    except Exception as err:
        logging.getLogger("sutradhar.services.health").exception("health member failed")
        print(f"health: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
