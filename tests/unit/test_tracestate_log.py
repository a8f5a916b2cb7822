"""A caller's malformed tracestate costs the logs at most a line a minute, without its text."""

from __future__ import annotations

import logging

import pytest

from sutradhar import _tracing
from sutradhar._tracestate_log import MALFORMED_MEMBER, OTEL_SPAN_LOGGER, MalformedTraceStates

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
MALFORMED = "vendor=ok,caller-text-not-a-member"


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(OTEL_SPAN_LOGGER, logging.WARNING, __file__, 1, msg, args, None)


def test_the_first_passes_then_one_a_minute_counting_those_dropped() -> None:
    now = [100.0]
    malformed = MalformedTraceStates(clock=lambda: now[0], every=60)
    passed = []
    for step in (0, 1, 30, 59.9, 60, 61, 200):
        now[0] = 100 + step
        one = record(MALFORMED_MEMBER, "caller-text")
        if malformed.filter(one):
            passed.append((step, one.getMessage()))
    assert [step for step, _ in passed] == [0, 60, 200]
    assert [text.split(" W3C")[0] for _, text in passed] == ["dropped 1", "dropped 4", "dropped 2"]
    assert all("caller-text" not in text for _, text in passed)


def test_other_warnings_of_the_logger_pass_as_they_are() -> None:
    malformed = MalformedTraceStates(clock=lambda: 0.0)
    for _ in range(3):
        other = record("There can't be more 32 key/value pairs.")
        assert malformed.filter(other) and other.getMessage() == "There can't be more 32 key/value pairs."


def test_opentelemetrys_parser_writes_one_line_for_many_malformed_headers(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("opentelemetry.trace")
    with caplog.at_level(logging.WARNING, logger=OTEL_SPAN_LOGGER):
        for _ in range(50):
            context = _tracing.remote_parent(TRACEPARENT, MALFORMED)
            assert context is not None
    lines = [r.getMessage() for r in caplog.records if r.name == OTEL_SPAN_LOGGER]
    assert len(lines) <= 1  # none when an earlier test of this process reported within the minute
    assert all("caller-text" not in line and line.startswith("dropped ") for line in lines)
    from opentelemetry import trace

    span = trace.get_current_span(_tracing.remote_parent(TRACEPARENT, MALFORMED))
    assert len(span.get_span_context().trace_state) == 0  # still dropped whole
