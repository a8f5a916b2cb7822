"""`python -m sutradhar.services.scheduler`: run one scheduler replica.

Every flag falls back to a SUTRADHAR_* variable, then to a default (`--help`
lists them; see `config.SchedulerConfig`)."""

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
from sutradhar.services.scheduler.config import SETTINGS, SchedulerConfig
from sutradhar.services.scheduler.server import SchedulerServer

#: The logger that start-up lines and start-up errors are written as.
LOGGER = "sutradhar.services.scheduler"


def load_config(argv: Sequence[str] | None) -> tuple[SchedulerConfig, bool]:
    """The config (flags, then SUTRADHAR_* variables, then defaults) and whether
    --stop-replicas was given."""
    parser = SETTINGS.parser("python -m sutradhar.services.scheduler", description=__doc__)
    parser.add_argument("--stop-replicas", action="store_true",
                        help="do not serve: stop every replica managed under --state-dir (and the containers of "
                             "the deployments in --etcd), then exit; for `sutradhar down` after the scheduler stopped")
    config, args = SETTINGS.parse(parser, argv)
    return config, bool(args.stop_replicas)


async def _serve(config: SchedulerConfig) -> int:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    try:
        server = SchedulerServer(config)
        await server.start()
    except SutradharError as err:
        announce(LOGGER, f"scheduler: {err}", level=logging.ERROR)
        return 1
    announce(LOGGER, f"scheduler listening on {server.address}", address=server.address)
    if server.metrics is not None:
        announce(LOGGER, f"scheduler metrics on {server.metrics.url}")
    if server.token_address:
        announce(LOGGER, f"scheduler token port on {server.token_address}")
    await stop.wait()
    await server.stop()
    return 0


async def _stop_replicas(config: SchedulerConfig) -> int:
    from sutradhar.services.scheduler.cleanup import stop_replicas

    tls = config.tls_source("scheduler", config.host)
    stopped = await stop_replicas(config.state_dir, etcd=config.etcd, grace=config.stop_grace, tls=tls)
    announce(LOGGER, f"scheduler: stopped {len(stopped)} replica(s) managed under {config.state_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scheduler until SIGTERM/SIGINT (or, with --stop-replicas, stop its
    replicas and exit); return the exit code."""
    config, stop_only = load_config(argv)
    configure_logging(config.log_level, config.log_format, service="scheduler")
    configure_tracing("scheduler")
    return asyncio.run(_stop_replicas(config) if stop_only else _serve(config))


if __name__ == "__main__":
    sys.exit(main())
