"""The docs held to the code: docs/health.md's probe limits and
quoted messages come from the real validation (CLI and registry), the
container label table names every label the runtime and scheduler set, and
docs/scheduler.md says which version routing sees."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar.cli.manifests import agent_from_manifest, parse_manifests
from sutradhar.services.registry.agent_validation import validate_agent
from sutradhar.services.scheduler import controller
from sutradhar.services.scheduler.runtimes import base, container
from sutradhar.v1 import registry_pb2

ROOT = Path(__file__).resolve().parents[2]
HEALTH = (ROOT / "docs" / "health.md").read_text()
CONTAINERS = (ROOT / "docs" / "containers.md").read_text()
SCHEDULER = (ROOT / "docs" / "scheduler.md").read_text()

MANIFEST = """\
apiVersion: sutradhar/v1
kind: Agent
metadata: {name: echo}
spec:
  type: echo
  version: 1.0.0
  runtime: process
  probes: {readiness: {period: PERIOD}}
"""


def _flat(text: str) -> str:
    return " ".join(text.split())


def _probe_agent(**fields: object) -> registry_pb2.Agent:
    agent = registry_pb2.Agent(id="echo", namespace="default", type="echo", version="1.0.0", runtime="process")
    spec = agent.probes.readiness
    for name, value in fields.items():
        if isinstance(value, timedelta):
            getattr(spec, name).FromTimedelta(value)
        else:
            setattr(spec, name, value)
    return agent


def _refusal(agent: registry_pb2.Agent) -> str | None:
    try:
        validate_agent(agent)
    except InvalidArgument as err:
        return err.message
    return None


# -- docs/health.md -----------------------------------------------------------


def test_health_doc_says_a_restarted_replica_keeps_its_instance_id() -> None:
    text = _flat(HEALTH)
    assert "registers as a new instance" not in text
    assert "same instance id" in text
    assert "`INSTANCE_REMOVED` and then `INSTANCE_ADDED` for the same id" in text


@pytest.mark.parametrize(("row", "field", "highest", "too_high"), [
    ("| `initial_delay` | 0 to 3600 s (one hour) |", "initial_delay", timedelta(hours=1), timedelta(seconds=3601)),
    ("| `period` | 0, or 0.1 s to 3600 s |", "period", timedelta(hours=1), timedelta(seconds=3601)),
    ("| `timeout` | 0 to 60 s |", "timeout", timedelta(seconds=60), timedelta(seconds=61)),
    ("| `failure_threshold`, `success_threshold` | 0 to 1000 |", "failure_threshold", 1000, 1001),
    ("| `failure_threshold`, `success_threshold` | 0 to 1000 |", "success_threshold", 1000, 1001),
])
def test_health_doc_probe_limits_are_the_registrys(row: str, field: str, highest: object, too_high: object) -> None:
    assert row in HEALTH
    assert _refusal(_probe_agent(**{field: highest})) is None
    refused = _refusal(_probe_agent(**{field: too_high}))
    assert refused is not None and refused.startswith(f"agent.probes.readiness.{field}:")


def test_health_doc_shortest_period_is_the_registrys() -> None:
    assert _refusal(_probe_agent(period=timedelta(milliseconds=100))) is None
    refused = _refusal(_probe_agent(period=timedelta(milliseconds=50)))
    assert refused == "agent.probes.readiness.period: 0.05s is too short (at least 0.1s; 0 means 10s)"
    assert f"`{refused}`" in _flat(HEALTH)
    refused = _refusal(_probe_agent(period=timedelta(hours=2)))
    assert f"`{refused}`" in _flat(HEALTH)


def test_health_doc_quotes_the_cli_and_the_registry_messages() -> None:
    # the CLI refuses what is not a duration before anything is sent ...
    with pytest.raises(InvalidArgument) as err:
        agent_from_manifest(parse_manifests(MANIFEST.replace("PERIOD", "-1s"))[0])
    assert err.value.message.startswith("spec.probes.readiness.period: '-1s' is not a duration")
    assert f"`{err.value.message}`" in _flat(HEALTH)
    # ... and the registry checks what arrives over gRPC (a bare -1 gets through the CLI)
    agent = agent_from_manifest(parse_manifests(MANIFEST.replace("PERIOD", "-1"))[0])
    refused = _refusal(agent)
    assert refused == "agent.probes.readiness.period: must not be negative"
    assert f"`{refused}`" in _flat(HEALTH)


# -- docs/containers.md -------------------------------------------------------


def test_containers_doc_label_row_names_every_label_the_code_sets() -> None:
    [row] = [line for line in CONTAINERS.splitlines() if line.startswith("| labels |")]
    named = set(re.findall(r"`(sutradhar\.[a-z-]+)", row))
    set_by_code = {
        base.LABEL_MANAGED, base.LABEL_NAMESPACE, base.LABEL_DEPLOYMENT, base.LABEL_AGENT, base.LABEL_REVISION,
        base.LABEL_REPLICA, container.LABEL_CONTAINER_PORT, container.LABEL_SCOPE, controller.LABEL_VERSION,
    }
    assert set_by_code <= named
    assert "sutradhar.version" in named


def test_containers_doc_env_example_uses_a_setting_the_sdk_reads() -> None:
    assert "env: {LOG_LEVEL:" not in CONTAINERS
    assert "env: {SUTRADHAR_LOG_LEVEL: info}" in CONTAINERS


# -- docs/scheduler.md --------------------------------------------------------


def test_scheduler_doc_has_no_stale_validation_note() -> None:
    assert "validation must accept them" not in _flat(SCHEDULER)


def test_scheduler_doc_says_routing_uses_the_definitions_version() -> None:
    rolling = _flat(SCHEDULER[SCHEDULER.index("## Rolling updates"):SCHEDULER.index("## Measured")])
    assert "agent **definition's** `version`" in rolling
    assert "sutradhar agents register -f" in rolling and "sutradhar deploy -f" in rolling
