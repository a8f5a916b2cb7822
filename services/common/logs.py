"""One logging setup for the four services (`--log-level`, SUTRADHAR_LOG_LEVEL;
`--log-format text|json`, SUTRADHAR_<SVC>_LOG_FORMAT). The formats are
`sutradhar._logs`'s, shared with SDK agents."""

from __future__ import annotations

from sutradhar._logs import CHATTY, LOG_FORMATS
from sutradhar._logs import configure_logging as _configure
from sutradhar._settings import LOG_LEVELS as LEVELS

__all__ = ["CHATTY", "configure_logging"]


def configure_logging(level: str, log_format: str = "text", *, service: str = "sutradhar") -> None:
    """Log to stderr at `level` in `log_format`, each JSON line naming `service`;
    SystemExit with one line for an unknown level or format."""
    name = level.strip().upper()
    if name not in LEVELS:
        raise SystemExit(f"error: --log-level {level!r} is not one of {', '.join(LEVELS)}")
    if log_format.strip().lower() not in LOG_FORMATS:
        raise SystemExit(f"error: --log-format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    _configure(name, log_format, service=service)
