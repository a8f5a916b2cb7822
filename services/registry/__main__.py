"""`python -m sutradhar.services.registry`: run the registry until SIGTERM/SIGINT.

Every flag falls back to a SUTRADHAR_* variable, then to a default (`--help`
lists them; see `config.RegistryConfig`)."""

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
from sutradhar.services.registry.config import SETTINGS, RegistryConfig
from sutradhar.services.registry.scrape_targets import PATH as SCRAPE_TARGETS_PATH
from sutradhar.services.registry.server import RegistryServer

#: The logger that start-up lines and start-up errors are written as.
LOGGER = "sutradhar.services.registry"


async def serve(config: RegistryConfig) -> None:
    """Run the registry until a stop signal."""
    stop = asyncio.Event()
    install_signal_handlers(stop)
    server = RegistryServer(config)
    await server.start()
    announce(LOGGER, f"registry listening on {server.address}", address=server.address)
    if server.metrics is not None:
        announce(LOGGER, f"registry metrics on {server.metrics.url}")
        announce(LOGGER, f"registry scrape targets on {server.metrics.endpoint.url_of(SCRAPE_TARGETS_PATH)}")
    if server.bootstrap_address is not None:
        announce(LOGGER, f"registry bootstrap port (bearer token for a certificate) on {server.bootstrap_address}")
    if server.token_address:
        announce(LOGGER, f"registry token port on {server.token_address}")
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    config = SETTINGS.load(argv, prog="python -m sutradhar.services.registry", description=__doc__)
    configure_logging(config.log_level, config.log_format, service="registry")
    configure_tracing("registry")
    try:
        asyncio.run(serve(config))
    except SutradharError as err:
        announce(LOGGER, f"registry: {err}", level=logging.ERROR)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
