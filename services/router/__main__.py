"""``python -m sutradhar.services.router``: run one router until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta

from sutradhar._errors import SutradharError
from sutradhar._hosting import DEFAULT_MAX_MESSAGE_BYTES, install_signal_handlers
from sutradhar.services.common import eventloop
from sutradhar.services.common.logs import configure_logging
from sutradhar.services.router.server import RouterConfig, RouterServer

log = logging.getLogger("sutradhar.router")

#: How long to wait for the first registry sync before announcing the port anyway.
SYNC_WAIT = timedelta(seconds=3)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m sutradhar.services.router", description=__doc__)
    parser.add_argument("--host", default=env("SUTRADHAR_ROUTER_HOST", "127.0.0.1"), help="listen address")
    parser.add_argument("--port", type=int, default=int(env("SUTRADHAR_ROUTER_PORT", "50052")),
                        help="listen port (0 picks a free one)")
    parser.add_argument("--registry", default=env("SUTRADHAR_REGISTRY", "127.0.0.1:50051"),
                        help="registry address whose Watch feeds the router")
    parser.add_argument("--etcd", default=env("SUTRADHAR_ETCD", ""),
                        help="etcd endpoint for load publishing (empty: do not publish)")
    parser.add_argument("--max-message-bytes", type=int,
                        default=int(env("SUTRADHAR_MAX_MESSAGE_BYTES", str(DEFAULT_MAX_MESSAGE_BYTES))),
                        help="largest message accepted or forwarded (default 4 MiB)")
    parser.add_argument("--router-id", default=env("SUTRADHAR_ROUTER_ID", ""), help="identity in load keys")
    parser.add_argument("--event-loop", choices=eventloop.CHOICES,
                        default=env("SUTRADHAR_ROUTER_EVENT_LOOP", "auto"),
                        help="auto (uvloop when installed, about 8%% less CPU per call), uvloop or asyncio")
    parser.add_argument("--log-level", default=env("SUTRADHAR_LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, loop_name: str = "asyncio") -> int:
    config = RouterConfig(
        host=args.host, port=args.port, registry=args.registry or None, etcd=args.etcd or None,
        max_message_bytes=args.max_message_bytes, router_id=args.router_id,
    )
    server = RouterServer(config)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    await server.start()
    try:
        if not await server.wait_synced(SYNC_WAIT):
            log.warning("registry at %s not reachable yet; routing answers UNAVAILABLE until it is", args.registry)
        print(f"router listening on {server.address} (event loop: {loop_name})", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await server.stop(timedelta(seconds=5))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        factory, loop_name = eventloop.loop_factory(args.event_loop)
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(run(args, loop_name))
    except SutradharError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
