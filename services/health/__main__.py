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
from sutradhar.services.common.logs import configure_logging

from .config import SETTINGS, HealthConfig
from .server import HealthServer


async def _run(config: HealthConfig) -> None:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    server = HealthServer(config)
    await server.start()
    print(f"health listening on {server.address}", file=sys.stderr, flush=True)
    if server.token_address:
        print(f"health token port on {server.token_address}", file=sys.stderr, flush=True)
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
    configure_logging(config.log_level)
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
