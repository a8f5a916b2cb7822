"""JSON log lines, the per-call log context, redaction and the log_format setting."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from sutradhar._log_context import EMPTY, LogContext, bind, current, trace_from_traceparent, traceparent_of
from sutradhar._logs import JsonFormatter, TextFormatter, announce, configure_logging, redact, rfc3339
from sutradhar._serve_settings import SERVE_SETTINGS
from sutradhar.services.health.config import SETTINGS as HEALTH
from sutradhar.services.registry.config import SETTINGS as REGISTRY
from sutradhar.services.router.config import SETTINGS as ROUTER
from sutradhar.services.scheduler.config import SETTINGS as SCHEDULER

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJzcGlmZmU6Ly9tZXNoIn0.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    configure_logging.__globals__["_json"] = None


def record(message: str, *args: object, level: int = logging.WARNING, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("sutradhar.test", level, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    rec.created = 1796184000.123456  # 2026-12-02T04:00:00.123Z
    return rec


def test_a_json_line_has_time_level_service_logger_and_message() -> None:
    line = json.loads(JsonFormatter("router").format(record("ejected %s", "x")))
    assert line == {"time": "2026-12-02T04:00:00.123Z", "level": "WARNING", "service": "router",
                    "logger": "sutradhar.test", "message": "ejected x"}


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert rfc3339(0.0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1796184000.9999) == "2026-12-02T04:00:00.999Z"


def test_the_call_context_and_extra_fields_join_the_line_extra_winning() -> None:
    fmt = JsonFormatter("agent")
    with bind(request_id="r-1", namespace="team-a", agent="echo", trace_id=TRACE):
        line = json.loads(fmt.format(record("hi", instance="echo-1", namespace="team-b", attempt=2, ok=True,
                                            note="x", ignored=object())))
    assert line["request_id"] == "r-1" and line["agent"] == "echo" and line["trace_id"] == TRACE
    assert line["instance"] == "echo-1" and line["namespace"] == "team-b"
    assert line["attempt"] == 2 and line["ok"] is True and line["note"] == "x"
    assert "ignored" not in line and "span_id" not in line  # unknown values and empty fields stay out
    assert current() is EMPTY


def test_an_exception_is_its_traceback_text() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = logging.LogRecord("l", logging.ERROR, __file__, 1, "failed", (), exc_info=__import__("sys").exc_info())
    line = json.loads(JsonFormatter("s").format(rec))
    assert line["exception"].startswith("Traceback") and "RuntimeError: boom" in line["exception"]
    assert "\n" not in JsonFormatter("s").format(rec)  # still one line


@pytest.mark.parametrize("secret", [
    f"Bearer {JWT}", "authorization: bearer abc.def-ghi_jkl", JWT,
    "-----BEGIN PRIVATE KEY-----\nMIIEv...\n-----END PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY-----\nMHcC...\n-----END EC PRIVATE KEY-----",
])
def test_tokens_and_private_keys_never_reach_a_line(secret: str) -> None:
    text = redact(f"call refused ({secret}) for team-a")
    assert "[redacted]" in text and text.startswith("call refused (") and text.endswith(") for team-a")
    for part in ("eyJhbGci", "abc.def", "MIIEv", "MHcC"):
        assert part not in text
    assert "MIIEv" not in json.loads(JsonFormatter("s").format(record("%s", secret)))["message"]
    assert "MIIEv" not in TextFormatter().format(record("%s", secret))


def test_redaction_leaves_ordinary_text_alone() -> None:
    text = "instance 'echo-1' (127.0.0.1:5000) of agent 'echo': UNAVAILABLE: failed to connect"
    assert redact(text) == text


def test_bind_nests_and_restores() -> None:
    with bind(namespace="a"):
        with bind(agent="x", namespace=""):
            assert current() == LogContext(namespace="a", agent="x")
        assert current() == LogContext(namespace="a")
    assert current() is EMPTY


@pytest.mark.parametrize(("value", "expected"), [
    (f"00-{TRACE}-{SPAN}-01", (TRACE, SPAN)),
    (f"00-{TRACE.upper()}-{SPAN}-00", (TRACE, SPAN)),
    (f"01-{TRACE}-{SPAN}-01-future", (TRACE, SPAN)),
    (f"00-{TRACE}-{SPAN}-01-extra", ("", "")),
    (f"ff-{TRACE}-{SPAN}-01", ("", "")),
    (f"00-{'0' * 32}-{SPAN}-01", ("", "")),
    (f"00-{TRACE}-{'0' * 16}-01", ("", "")),
    ("garbage", ("", "")),
    ("", ("", "")),
])
def test_traceparent_gives_the_trace_and_parent_span_when_valid(value: str, expected: tuple[str, str]) -> None:
    assert trace_from_traceparent(value) == expected


def test_traceparent_is_read_from_grpc_metadata() -> None:
    assert traceparent_of((("authorization", "Bearer x"), ("traceparent", "00-a"))) == "00-a"
    assert traceparent_of(((b"x", b"y"),)) == ""
    assert traceparent_of(None) == ""


def test_text_is_the_default_and_unchanged(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", service="router", stream=out)
    logging.getLogger("sutradhar.x").warning("plain %d", 1)
    assert out.getvalue().endswith(" WARNING sutradhar.x: plain 1\n")
    announce("sutradhar.x", "router listening on 127.0.0.1:1", out=out, address="127.0.0.1:1")
    assert out.getvalue().endswith("\nrouter listening on 127.0.0.1:1\n")


def test_json_logging_and_announcements_below_the_level(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("ERROR", "json", service="health", stream=out)
    logging.getLogger("sutradhar.x").warning("not shown")
    announce("sutradhar.x", "health listening on 127.0.0.1:2", out=out, address="127.0.0.1:2")
    (line,) = [json.loads(text) for text in out.getvalue().splitlines()]
    assert line["message"] == "health listening on 127.0.0.1:2" and line["address"] == "127.0.0.1:2"
    assert line["level"] == "INFO" and line["service"] == "health"


def test_unknown_format_or_level_is_refused(restore_logging: None) -> None:
    with pytest.raises(ValueError, match="log format 'xml' is not one of text, json"):
        configure_logging("INFO", "xml", service="s")
    with pytest.raises(ValueError, match="log level 'LOUD'"):
        configure_logging("LOUD", service="s")


def test_one_log_format_setting_per_server_with_its_own_variable() -> None:
    for settings, env in ((REGISTRY, "SUTRADHAR_REGISTRY_LOG_FORMAT"), (ROUTER, "SUTRADHAR_ROUTER_LOG_FORMAT"),
                          (SCHEDULER, "SUTRADHAR_SCHEDULER_LOG_FORMAT"), (HEALTH, "SUTRADHAR_HEALTH_LOG_FORMAT"),
                          (SERVE_SETTINGS, "SUTRADHAR_LOG_FORMAT")):
        (option,) = [o for o in settings.options if o.name == "log_format"]
        assert option.flag == "--log-format" and option.env == env and option.shown_default == "text"
        assert settings.resolve(environ={env: "JSON"}).log_format == "json"  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match=f"{env}='yaml' is not one of text, json"):
            settings.resolve(environ={env: "yaml"})
