"""Log output of every Sutradhar server: text (the default) or JSON lines.

`configure_logging` sets up the root logger once at start-up for a service
(``--log-format``, SUTRADHAR_<SVC>_LOG_FORMAT) or an SDK agent (``serve()``,
SUTRADHAR_LOG_FORMAT). In JSON one record is one line::

    {"time": "2026-12-02T04:00:00.123Z", "level": "WARNING", "service": "router",
     "logger": "sutradhar._route_engine", "message": "ejected ...",
     "namespace": "team-a", "agent": "echo", "instance": "echo-1f2e3d4c"}

``time`` is RFC 3339 in UTC with milliseconds; ``exception`` holds the
traceback when there is one (``stack`` a stack_info); the call's fields
(`sutradhar._log_context.FIELDS`: request_id, task_id, trace_id, span_id,
namespace, agent, instance, method) appear when known, from ``extra=`` on the
call or else from the per-call `LogContext`. Other ``extra=`` keys whose
values are JSON scalars are kept too.

Both formats pass every message and traceback through `redact`: bearer
tokens, JWTs and PEM private keys never reach a log line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, Final, TextIO

from sutradhar._log_context import FIELDS, current
from sutradhar._settings import LOG_FORMATS

#: The text format (unchanged from before JSON existed).
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.S)
REDACTED: Final = "[redacted]"


def redact(text: str) -> str:
    """`text` with bearer tokens (``Bearer <token>``), JWT-shaped strings and
    PEM private keys replaced by ``[redacted]``."""
    if "earer" in text or "eyJ" in text or "PRIVATE KEY" in text or "EARER" in text:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        text = _JWT.sub(REDACTED, text)
        text = _PRIVATE_KEY.sub(REDACTED, text)
    return text


#: Attributes every `logging.LogRecord` has; anything else came with ``extra=``.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_CALL_FIELDS: Final = frozenset(FIELDS)


def rfc3339(created: float) -> str:
    """A `time.time()` value as RFC 3339 in UTC with milliseconds: ``2026-12-02T04:00:00.123Z``."""
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module docstring).

    `service` names the server (``registry``, ``router``, ..., or the agent's id)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = redact(record.exc_text)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        for name, value in current().items():
            out[name] = value
        for name, value in vars(record).items():
            if name in _RECORD_ATTRIBUTES or name.startswith("_"):
                continue
            if name in _CALL_FIELDS:
                if value:
                    out[name] = str(value)
            elif value is None or isinstance(value, (bool, int, float)):
                out[name] = value
            elif isinstance(value, str):
                out[name] = redact(value)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The text format, with `redact` applied to the message and traceback."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """The record as `TEXT_FORMAT`, redacted."""
        return redact(super().format(record))


#: Libraries that log every request at INFO. The health service probes
#: thousands of HTTP endpoints a second and the router forwards to HTTP agents:
#: at INFO, httpx alone wrote one line per probe (6,631 lines in 5 minutes
#: for 30 instances). They speak at WARNING unless the services are at DEBUG.
CHATTY: Final = ("httpx", "httpcore", "docker", "urllib3")

_json: JsonFormatter | None = None


def configure_logging(level: str, log_format: str = "text", *, service: str, stream: TextIO | None = None,
                      quiet_libraries: bool = True) -> None:
    """Log to `stream` (stderr) at `level` in `log_format` (one of `LOG_FORMATS`),
    replacing any handler the root logger has. With `quiet_libraries`, the
    `CHATTY` libraries log at WARNING unless `level` is DEBUG. ValueError for an
    unknown level or format."""
    global _json
    name = level.strip().upper()
    if name not in logging.getLevelNamesMapping():
        raise ValueError(f"log level {level!r} is not a logging level")
    kind = log_format.strip().lower()
    if kind not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter: logging.Formatter = JsonFormatter(service) if kind == "json" else TextFormatter()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(name)
    _json = formatter if isinstance(formatter, JsonFormatter) else None
    if quiet_libraries:
        quiet = logging.DEBUG if name == "DEBUG" else logging.WARNING
        for library in CHATTY:
            logging.getLogger(library).setLevel(quiet)


def announce(logger: str, message: str, *, level: int = logging.INFO, out: TextIO | None = None,
             **fields: Any) -> None:
    """Write a line that people and tools read whatever the log level (``router
    listening on HOST:PORT``, a start-up error) to `out` (stderr): as it is in
    text, as one JSON log record (at `level`, `fields` added, e.g.
    ``address=...``) when `configure_logging` chose JSON. Either way the line
    holds `message`, so ``listening on ([^\\s"]+)`` finds an address in both."""
    stream = out or sys.stderr
    if _json is None:
        print(message, file=stream, flush=True)
        return
    record = logging.LogRecord(logger, level, "", 0, message, (), None)
    record.__dict__.update(fields)
    print(_json.format(record), file=stream, flush=True)


def json_logging() -> bool:
    """Whether `configure_logging` chose JSON for this process."""
    return _json is not None


__all__ = [
    "CHATTY",
    "LOG_FORMATS",
    "TEXT_FORMAT",
    "JsonFormatter",
    "TextFormatter",
    "announce",
    "configure_logging",
    "json_logging",
    "redact",
    "rfc3339",
]
