"""``python -m sutradhar.services.router``: run one router until SIGTERM/SIGINT.

Every flag falls back to a SUTRADHAR_* variable, then to a default (``--help``
lists them; see ``config.RouterConfig``)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta

from sutradhar import _event_loop as eventloop
from sutradhar._errors import SutradharError
from sutradhar._hosting import install_signal_handlers
from sutradhar._logs import announce
from sutradhar.services.common.logs import configure_logging
from sutradhar.services.common.tracing import configure_tracing
from sutradhar.services.router.config import SETTINGS, RouterConfig
from sutradhar.services.router.server import RouterServer

log = logging.getLogger("sutradhar.router")

#: How long to wait for the first registry sync before announcing the port anyway.
SYNC_WAIT = timedelta(seconds=3)

#: The logger that start-up lines and start-up errors are written as.
LOGGER = "sutradhar.services.router"


async def run(config: RouterConfig, loop_name: str = "asyncio") -> int:
    """Serve until a stop signal; the exit code."""
    server = RouterServer(config)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    await server.start()
    try:
        if not await server.wait_synced(SYNC_WAIT):
            log.warning("registry at %s not reachable yet; routing answers UNAVAILABLE until it is", config.registry)
        announce(LOGGER, f"router listening on {server.address} (event loop: {loop_name})", address=server.address)
        if server.token_address:
            announce(LOGGER, f"router token port on {server.token_address}")
        if server.metrics_url:
            announce(LOGGER, f"router metrics on {server.metrics_url}")
        await stop.wait()
    finally:
        await server.stop(timedelta(seconds=5))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    config = SETTINGS.load(argv, prog="python -m sutradhar.services.router", description=__doc__)
    configure_logging(config.log_level, config.log_format, service="router")
    configure_tracing("router")
    try:
        factory, loop_name = eventloop.loop_factory(config.event_loop)
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(run(config, loop_name))
    except SutradharError as err:
        announce(LOGGER, f"error: {err}", level=logging.ERROR)
        return 1


if __name__ == "__main__":
    sys.exit(main())
