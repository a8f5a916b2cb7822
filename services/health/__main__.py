"""`python -m sutradhar.services.health`: run one health member.

Every flag falls back to a SUTRADHAR_* variable, then to a default (`--help`
lists them; see `config.HealthConfig`)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from sutradhar._errors import SutradharError
from sutradhar._hosting import install_signal_handlers
from sutradhar._logs import announce
from sutradhar.services.common.logs import configure_logging
from sutradhar.services.common.tracing import configure_tracing

from .config import SETTINGS, HealthConfig
from .server import HealthServer

#: The logger that start-up lines and start-up errors are written as.
LOGGER = "sutradhar.services.health"


async def _run(config: HealthConfig) -> None:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    server = HealthServer(config)
    await server.start()
    announce(LOGGER, f"health listening on {server.address}", address=server.address)
    if server.metrics is not None:
        announce(LOGGER, f"health metrics on {server.metrics.url}")
    if server.token_address:
        announce(LOGGER, f"health token port on {server.token_address}")
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
    config = SETTINGS.load(argv, prog="python -m sutradhar.services.health", description=__doc__)
    configure_logging(config.log_level, config.log_format, service="health")
    configure_tracing("health")
    try:
        asyncio.run(_run(config))
    except SutradharError as err:
        announce(LOGGER, f"health: error: {err.message}", level=logging.ERROR)
        return 1
    except Exception as err:
        logging.getLogger("sutradhar.services.health").exception("health member failed")
        announce(LOGGER, f"health: error: {type(err).__name__}: {err}", level=logging.ERROR)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
