"""serve()'s settings: explicit arguments, then SUTRADHAR_* variables, then
defaults, read in one place for scripts and `python -m sutradhar.serve`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest

from examples.echo_agent import EchoAgent
from sutradhar._clients import _grpc_timeout, as_timedelta, make_task
from sutradhar._registration import agent_definition, process_command
from sutradhar._serve import ServeSettings, apply_identity, serve_settings
from sutradhar._values import from_struct
from sutradhar.serve import build_parser

ALL = ("HOST", "PORT", "REGISTRY", "NAMESPACE", "INSTANCE_ID", "ADVERTISE", "AGENT_ID", "AGENT_VERSION")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ALL:
        monkeypatch.delenv(f"SUTRADHAR_{name}", raising=False)
    return monkeypatch


def test_defaults_without_env(clean_env: pytest.MonkeyPatch) -> None:
    assert serve_settings() == ServeSettings(
        host="127.0.0.1", port=0, registry=None, namespace="default", instance_id=None, advertise=None,
        agent_id=None, agent_version=None,
    )


def test_env_fills_what_the_caller_left_unset(clean_env: pytest.MonkeyPatch) -> None:
    values = {
        "HOST": "0.0.0.0", "PORT": "7123", "REGISTRY": "r:1", "NAMESPACE": "ns", "INSTANCE_ID": "i-1",
        "ADVERTISE": "a:2", "AGENT_ID": "deployed", "AGENT_VERSION": "3.0.0",
    }
    for name, value in values.items():
        clean_env.setenv(f"SUTRADHAR_{name}", value)
    assert serve_settings() == ServeSettings(
        host="0.0.0.0", port=7123, registry="r:1", namespace="ns", instance_id="i-1", advertise="a:2",
        agent_id="deployed", agent_version="3.0.0",
    )
    explicit = serve_settings(port=0, registry="", namespace="mine", agent_id="own")
    assert (explicit.port, explicit.registry, explicit.namespace, explicit.agent_id) == (0, "", "mine", "own")
    assert explicit.host == "0.0.0.0"  # not given: still the env's


def test_a_bad_env_port_names_the_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SUTRADHAR_PORT", "http")
    with pytest.raises(ValueError, match="SUTRADHAR_PORT='http' is not a port number"):
        serve_settings()
    assert serve_settings(port=9).port == 9


def test_the_module_entry_leaves_serving_flags_to_serve(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SUTRADHAR_PORT", "7123")
    args = build_parser().parse_args(["m:C"])
    assert (args.port, args.host, args.agent_id) == (None, None, None)  # serve() reads the env, once


def test_an_identity_override_keeps_the_class_command() -> None:
    agent = apply_identity(EchoAgent(), "echo-x", "2.0.0")
    assert (agent.id, agent.version, type(agent)) == ("echo-x", "2.0.0", EchoAgent)
    assert (EchoAgent.id, EchoAgent.version) == ("echo", "1.0.0")
    assert process_command(agent) == [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent"]
    definition = agent_definition(agent, "ns")
    assert (definition.id, definition.version) == ("echo-x", "2.0.0")
    assert from_struct(definition.config)["command"] == process_command(agent)


def test_timeouts_take_seconds() -> None:
    assert as_timedelta(5) == timedelta(seconds=5)
    assert as_timedelta(0.25) == timedelta(milliseconds=250)
    assert as_timedelta(None) is None
    task = make_task({}, task_type="", task_id="", context=None, timeout=2)
    assert task.context.deadline is not None
    assert timedelta(seconds=1.9) < task.context.deadline - datetime.now(UTC) <= timedelta(seconds=2)
    assert _grpc_timeout(task, 2) == 2.0
    for bad in ("5", True):
        with pytest.raises(TypeError, match="timeout must be a timedelta or seconds"):
            as_timedelta(bad)  # type: ignore[arg-type]
