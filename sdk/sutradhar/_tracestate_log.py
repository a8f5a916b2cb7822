"""What a malformed W3C ``tracestate`` a caller sends costs the logs: at most a line a minute.

OpenTelemetry Python's `TraceState.from_header` (which `_tracing` reads a caller's trace
state with) logs a WARNING for every header with a member it cannot read, and the member's
text with it. The text is the caller's, and a caller that sends one on every call would
write a line per call. `MalformedTraceStates`, a filter on that logger, lets the first
through in its own words, without the text, then at most one a `REPORT_EVERY` saying how
many were dropped since the last line. OpenTelemetry's other warnings pass unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

#: The logger of OpenTelemetry's `TraceState` (``opentelemetry/trace/span.py``).
OTEL_SPAN_LOGGER: Final = "opentelemetry.trace.span"
#: What `TraceState.from_header` logs, with the member's text, when a member does not parse.
MALFORMED_MEMBER: Final = "Member doesn't match the w3c identifiers format %s"
#: Seconds between two lines about malformed trace states.
REPORT_EVERY: Final = 60.0
#: The line, with the count of headers dropped since the last one.
REPORT: Final = ("dropped %d W3C tracestate header(s) that do not parse (each read whole or not at all) since the "
                 "last line like this; their traces continue without a trace state")


class MalformedTraceStates(logging.Filter):
    """Turns OpenTelemetry's line per malformed ``tracestate`` into at most one per `every`
    seconds of `clock`, counting, without the caller's text."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, every: float = REPORT_EVERY) -> None:
        super().__init__()
        self.clock = clock
        self.every = every
        self._dropped = 0
        self._last: float | None = None
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != MALFORMED_MEMBER:
            return True
        with self._lock:
            self._dropped += 1
            now = self.clock()
            if self._last is not None and now - self._last < self.every:
                return False
            record.msg, record.args = REPORT, (self._dropped,)
            self._dropped, self._last = 0, now
        return True


_installed: MalformedTraceStates | None = None


def install() -> MalformedTraceStates:
    """Put the filter on OpenTelemetry's `TraceState` logger, once per process (the one in place after)."""
    global _installed
    if _installed is None:
        _installed = MalformedTraceStates()
        logging.getLogger(OTEL_SPAN_LOGGER).addFilter(_installed)
    return _installed
