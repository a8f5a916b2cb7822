"""One logging setup for the four services (`--log-level`, SUTRADHAR_LOG_LEVEL)."""

from __future__ import annotations

import logging

from sutradhar._hosting import LOG_FORMAT
from sutradhar._settings import LOG_LEVELS as LEVELS

#: Libraries that log every request at INFO. The health service probes
#: thousands of HTTP endpoints a second and the router forwards to HTTP agents:
#: at INFO, httpx alone wrote one line per probe (6,631 lines in 5 minutes
#: for 30 instances). They speak at WARNING unless the services are at DEBUG.
CHATTY = ("httpx", "httpcore", "docker", "urllib3")


def configure_logging(level: str) -> None:
    """Log to stderr at `level`; SystemExit with one line for an unknown level."""
    name = level.strip().upper()
    if name not in LEVELS:
        raise SystemExit(f"error: --log-level {level!r} is not one of {', '.join(LEVELS)}")
    logging.basicConfig(level=name, format=LOG_FORMAT)
    quiet = logging.DEBUG if name == "DEBUG" else logging.WARNING
    for library in CHATTY:
        logging.getLogger(library).setLevel(quiet)
