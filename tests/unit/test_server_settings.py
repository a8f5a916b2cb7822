"""Each server's one config dataclass: every field has a flag and a SUTRADHAR_*
variable, the names that existed before keep working, and the entry points
(`python -m sutradhar.services.*`, `python -m sutradhar.serve`, `serve()`,
`AgentServer`) take their options from it."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sutradhar._serve import AgentServer, serve
from sutradhar._serve_settings import SERVE_SETTINGS, ServeSettings, serve_settings
from sutradhar._settings import Settings
from sutradhar.serve import build_parser
from sutradhar.services.health.config import SETTINGS as HEALTH
from sutradhar.services.registry.config import SETTINGS as REGISTRY
from sutradhar.services.router.config import SETTINGS as ROUTER
from sutradhar.services.scheduler.config import SETTINGS as SCHEDULER

SERVERS: dict[str, Settings[Any]] = {
    "registry": REGISTRY, "router": ROUTER, "health": HEALTH, "scheduler": SCHEDULER, "agent": SERVE_SETTINGS,
}

#: Every variable read before the config dataclasses, and the field it sets.
HISTORICAL_ENV: dict[str, dict[str, str]] = {
    "registry": {"SUTRADHAR_REGISTRY_HOST": "host", "SUTRADHAR_REGISTRY_PORT": "port", "SUTRADHAR_ETCD": "etcd",
                 "SUTRADHAR_LOG_LEVEL": "log_level"},
    "router": {"SUTRADHAR_ROUTER_HOST": "host", "SUTRADHAR_ROUTER_PORT": "port", "SUTRADHAR_REGISTRY": "registry",
               "SUTRADHAR_ETCD": "etcd", "SUTRADHAR_MAX_MESSAGE_BYTES": "max_message_bytes",
               "SUTRADHAR_ROUTER_ID": "router_id", "SUTRADHAR_ROUTER_EVENT_LOOP": "event_loop",
               "SUTRADHAR_LOG_LEVEL": "log_level"},
    "health": {"SUTRADHAR_HEALTH_HOST": "host", "SUTRADHAR_HEALTH_PORT": "port", "SUTRADHAR_ETCD": "etcd",
               "SUTRADHAR_HEALTH_MEMBER_ID": "member_id", "SUTRADHAR_HEALTH_MEMBER_TTL": "member_ttl",
               "SUTRADHAR_HEALTH_FLUSH_INTERVAL": "flush_interval", "SUTRADHAR_LOG_LEVEL": "log_level"},
    "scheduler": {"SUTRADHAR_SCHEDULER_HOST": "host", "SUTRADHAR_SCHEDULER_PORT": "port", "SUTRADHAR_ETCD": "etcd",
                  "SUTRADHAR_REGISTRY": "registry", "SUTRADHAR_SCHEDULER_STATE_DIR": "state_dir",
                  "SUTRADHAR_SCHEDULER_MEMBER_ID": "member_id", "SUTRADHAR_SCHEDULER_ELECTION_TTL": "election_ttl",
                  "SUTRADHAR_SCHEDULER_INSTANCE_TTL": "instance_ttl", "SUTRADHAR_LOG_LEVEL": "log_level"},
    "agent": {"SUTRADHAR_HOST": "host", "SUTRADHAR_PORT": "port", "SUTRADHAR_REGISTRY": "registry",
              "SUTRADHAR_NAMESPACE": "namespace", "SUTRADHAR_INSTANCE_ID": "instance_id",
              "SUTRADHAR_ADVERTISE": "advertise", "SUTRADHAR_AGENT_ID": "agent_id",
              "SUTRADHAR_AGENT_VERSION": "agent_version", "SUTRADHAR_LOG_LEVEL": "log_level"},
}

#: Every flag that existed before (cli/up.py, the scheduler's runtimes, tests and benches pass them).
HISTORICAL_FLAGS: dict[str, list[str]] = {
    "registry": ["--host", "--port", "--etcd", "--log-level"],
    "router": ["--host", "--port", "--registry", "--etcd", "--max-message-bytes", "--router-id", "--event-loop",
               "--log-level"],
    "health": ["--host", "--port", "--etcd", "--member-id", "--member-ttl", "--flush-interval",
               "--probe-concurrency", "--log-level"],
    "scheduler": ["--host", "--port", "--etcd", "--registry", "--state-dir", "--member-id", "--election-ttl",
                  "--instance-ttl", "--backoff-base", "--backoff-max", "--stop-grace", "--drain-delay",
                  "--autoscale-period", "--resync-period", "--log-level"],
    "agent": ["--host", "--port", "--registry", "--namespace", "--instance-id", "--advertise", "--agent-id",
              "--agent-version", "--label", "--ttl", "--grace", "--no-register-agent", "--log-level"],
}


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_every_config_field_has_a_flag_a_variable_and_help(server: str) -> None:
    settings = SERVERS[server]
    fields = [f.name for f in dataclasses.fields(settings.config)]
    assert [o.name for o in settings.options] == fields
    for option in settings.options:
        assert option.flag.startswith("--") and option.env.startswith("SUTRADHAR_"), option
        assert option.help, f"{settings.config.__name__}.{option.name} has no docstring"
    assert len({o.flag for o in settings.options}) == len(fields)
    assert len({o.env for o in settings.options}) == len(fields)
    text = settings.parser("x").format_help()
    for option in settings.options:
        assert option.flag in text and option.env in text


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_the_variables_and_flags_that_existed_keep_their_meaning(server: str) -> None:
    settings = SERVERS[server]
    by_env = {o.env: o.name for o in settings.options}
    for env, name in HISTORICAL_ENV[server].items():
        assert by_env.get(env) == name, env
    text = settings.parser("x").format_help()
    for flag in HISTORICAL_FLAGS[server]:
        assert flag in text, flag


@pytest.mark.parametrize("server", ["registry", "router", "health", "scheduler"])
def test_each_service_main_shows_variables_and_defaults_in_help(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main = importlib.import_module(f"sutradhar.services.{server}.__main__").main
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in SERVERS[server].options:
        assert f"env {option.env}; default {option.shown_default})" in text, option.name


@pytest.mark.parametrize(
    ("server", "env", "flag"),
    [("registry", "SUTRADHAR_REGISTRY_PORT", "--port"),
     ("router", "SUTRADHAR_MAX_MESSAGE_BYTES", "--max-message-bytes"),
     ("health", "SUTRADHAR_HEALTH_MEMBER_TTL", "--member-ttl"),
     ("scheduler", "SUTRADHAR_SCHEDULER_DRAIN_DELAY", "--drain-delay")],
)
def test_each_service_main_refuses_a_bad_variable_in_one_line(
    server: str, env: str, flag: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(env, "soon")
    main = importlib.import_module(f"sutradhar.services.{server}.__main__").main
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"python -m sutradhar.services.{server}: error: {env}='soon' is not")
    assert f"set {flag} or {env}" in err


def test_the_schedulers_formerly_env_less_flags_read_the_environment() -> None:
    environ = {
        "SUTRADHAR_SCHEDULER_BACKOFF_BASE": "2", "SUTRADHAR_SCHEDULER_BACKOFF_MAX": "90s",
        "SUTRADHAR_SCHEDULER_STOP_GRACE": "3", "SUTRADHAR_SCHEDULER_DRAIN_DELAY": "100ms",
        "SUTRADHAR_SCHEDULER_AUTOSCALE_PERIOD": "7", "SUTRADHAR_SCHEDULER_RESYNC_PERIOD": "1m",
    }
    config = SCHEDULER.resolve(environ=environ)
    assert (config.backoff_base, config.backoff_max, config.stop_grace, config.drain_delay,
            config.autoscale_period, config.resync_period) == (
        timedelta(seconds=2), timedelta(seconds=90), timedelta(seconds=3), timedelta(milliseconds=100),
        timedelta(seconds=7), timedelta(minutes=1))
    flagged, _ = SCHEDULER.parse(SCHEDULER.parser("x"), ["--backoff-base", "0.5", "--resync-period", "4"],
                                 environ=environ)
    assert (flagged.backoff_base, flagged.resync_period, flagged.backoff_max) == (
        timedelta(milliseconds=500), timedelta(seconds=4), timedelta(seconds=90))


def test_the_scheduler_keeps_its_stop_replicas_mode() -> None:
    from sutradhar.services.scheduler.__main__ import load_config

    config, stop_only = load_config(["--stop-replicas", "--state-dir", "/tmp/s", "--etcd", ""])
    assert (stop_only, config.state_dir, config.etcd) == (True, Path("/tmp/s"), "")
    assert load_config([])[1] is False


def test_the_services_read_the_values_their_launchers_pass() -> None:
    """The flag values cli/_launcher.py, cli/up.py and the tests pass: seconds
    as plain numbers (and the health member's "5s"), port 0, an empty --etcd."""
    health = HEALTH.resolve(environ={"SUTRADHAR_HEALTH_MEMBER_TTL": "5s", "SUTRADHAR_HEALTH_FLUSH_INTERVAL": "0.5"})
    assert (health.member_ttl, health.flush_interval) == (timedelta(seconds=5), timedelta(milliseconds=500))
    router, _ = ROUTER.parse(ROUTER.parser("x"), ["--port", "0", "--registry", "r:1", "--etcd", ""], environ={})
    assert (router.port, router.registry, router.etcd, router.event_loop) == (0, "r:1", "", "auto")
    scheduler, _ = SCHEDULER.parse(SCHEDULER.parser("x"), ["--election-ttl", "1.5"], environ={})
    assert scheduler.election_ttl == timedelta(seconds=1.5)


def test_a_health_member_without_an_id_gets_a_new_one() -> None:
    first, second = HEALTH.resolve(environ={}), HEALTH.resolve(environ={})
    assert first.member_id.startswith("health-") and first.member_id != second.member_id
    assert HEALTH.resolve(environ={"SUTRADHAR_HEALTH_MEMBER_ID": "h-1"}).member_id == "h-1"


# -- the SDK's agent server -------------------------------------------------


def test_serve_and_agent_server_take_only_serve_settings_fields() -> None:
    fields = {f.name for f in dataclasses.fields(ServeSettings)}
    for function in (serve, AgentServer.__init__):
        params = set(inspect.signature(function).parameters) - {"self", "agent", "settings"}
        assert params <= fields, params - fields
    assert set(inspect.signature(serve).parameters) - {"agent", "settings"} == fields
    assert {a.dest for a in build_parser()._actions} - {"help", "agent"} == fields


def test_serve_settings_read_the_new_variables_too(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"TTL": "5", "GRACE": "1.5s", "LABELS": "tier=gold,zone=a", "REGISTER_AGENT": "no",
                        "HEALTH_PERIOD": "250ms", "MAX_MESSAGE_BYTES": "1024"}.items():
        monkeypatch.setenv(f"SUTRADHAR_{name}", value)
    settings = serve_settings()
    assert (settings.ttl, settings.grace, dict(settings.labels), settings.register_agent, settings.health_period,
            settings.max_message_bytes) == (
        timedelta(seconds=5), timedelta(seconds=1.5), {"tier": "gold", "zone": "a"}, False,
        timedelta(milliseconds=250), 1024)
    assert serve_settings(ttl=timedelta(seconds=30), labels={"x": "y"}).ttl == timedelta(seconds=30)


def test_the_module_entry_reads_flags_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTRADHAR_PORT", "7123")
    monkeypatch.setenv("SUTRADHAR_NAMESPACE", "from-env")
    args = build_parser().parse_args(["m:C", "--namespace", "flagged", "--label", "a=1", "--ttl", "5",
                                      "--no-register-agent"])
    settings = SERVE_SETTINGS.resolve(args)
    assert (settings.port, settings.namespace, dict(settings.labels), settings.ttl, settings.register_agent) == (
        7123, "flagged", {"a": "1"}, timedelta(seconds=5), False)


async def test_agent_server_takes_settings_and_keywords_but_not_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from examples.echo_agent import EchoAgent

    monkeypatch.setenv("SUTRADHAR_PORT", "7123")
    monkeypatch.setenv("SUTRADHAR_NAMESPACE", "from-env")
    plain = AgentServer(EchoAgent(), insecure=True)
    assert plain.settings == ServeSettings(insecure=True)
    base = ServeSettings(namespace="ns", grace=timedelta(seconds=3), agent_version="9.9.9", insecure=True)
    server = AgentServer(EchoAgent(), settings=base, grace=timedelta(seconds=1), labels={"a": "b"})
    assert (server.namespace, server.grace, server.settings.labels, server.agent.version) == (
        "ns", timedelta(seconds=1), {"a": "b"}, "9.9.9")
