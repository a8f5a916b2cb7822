"""Manifest parsing: envelopes, conversion to Agent, durations, clear errors."""

from __future__ import annotations

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar.cli.manifests import agent_from_manifest, load_manifests, parse_duration, parse_manifests

GOOD = """
apiVersion: sutradhar/v1
kind: Agent
metadata:
  name: tutor
  namespace: school
  labels: {tier: gold}
spec:
  type: tutor
  version: 1.4.0
  runtime: process
  capabilities: [answer, hint]
  config:
    command: [python3, -m, sutradhar.serve, "examples.echo_agent:EchoAgent"]
  resources: {cpu: 500m, memory: 256Mi}
  probes:
    readiness: {kind: grpc, period: 500ms, failureThreshold: 2}
  routing:
    strategy: least-loaded
    retry: {maxAttempts: 2, initialBackoff: 20ms}
"""


def test_agent_manifest_converts_every_field() -> None:
    [manifest] = parse_manifests(GOOD)
    agent = agent_from_manifest(manifest)
    assert (agent.id, agent.namespace, agent.type, agent.version) == ("tutor", "school", "tutor", "1.4.0")
    assert list(agent.capabilities) == ["answer", "hint"]
    assert dict(agent.labels) == {"tier": "gold"}
    assert agent.config["command"][3] == "examples.echo_agent:EchoAgent"
    assert agent.resources.memory == "256Mi"
    assert agent.probes.readiness.period.ToMilliseconds() == 500
    assert agent.probes.readiness.failure_threshold == 2
    assert agent.routing.strategy == "least-loaded"
    assert agent.routing.retry.initial_backoff.ToMilliseconds() == 20


def test_several_documents_are_read_in_order() -> None:
    text = GOOD + "---\n" + GOOD.replace("name: tutor", "name: tutor2")
    assert [m.name for m in parse_manifests(text, source="f.yaml")] == ["tutor", "tutor2"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{", "not valid YAML"),
        ("", "holds no manifest"),
        ("- a\n- b\n", "must be a mapping"),
        (GOOD.replace("sutradhar/v1", "v2"), "apiVersion must be"),
        (GOOD.replace("kind: Agent", "kind: Pod"), "kind must be one of"),
        (GOOD.replace("name: tutor\n", "namespace2: x\n"), "metadata.name is required"),
    ],
)
def test_bad_envelopes_are_refused_with_a_reason(text: str, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        parse_manifests(text)


def test_unknown_spec_field_is_named() -> None:
    [manifest] = parse_manifests(GOOD.replace("runtime: process", "runtime: process\n  replicaz: 3"))
    with pytest.raises(InvalidArgument, match="replicaz") as info:
        agent_from_manifest(manifest)
    assert info.value.field == "spec.replicaz"


def test_unknown_nested_field_is_named() -> None:
    [manifest] = parse_manifests(GOOD.replace("strategy: least-loaded", "strategee: least-loaded"))
    with pytest.raises(InvalidArgument, match="strategee"):
        agent_from_manifest(manifest)


@pytest.mark.parametrize(("raw", "expected"), [("500ms", "0.5s"), ("10s", "10s"), ("1m", "60s"), (2, "2s"),
                                                ("1.5h", "5400s")])
def test_durations(raw: object, expected: str) -> None:
    assert parse_duration(raw, field="x") == expected


@pytest.mark.parametrize("raw", ["soon", "10 parsecs", True, "-1s"])
def test_bad_durations(raw: object) -> None:
    with pytest.raises(InvalidArgument, match="not a duration"):
        parse_duration(raw, field="spec.probes.readiness.period")


def test_banana_version_survives_parsing_for_the_registry_to_refuse() -> None:
    # Semantic checks are the registry's (it names agent.version); the CLI must pass it on intact.
    [manifest] = parse_manifests(GOOD.replace("version: 1.4.0", "version: banana"))
    assert agent_from_manifest(manifest).version == "banana"


def test_manifest_that_is_not_utf8_is_refused(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(InvalidArgument, match="not UTF-8"):
        load_manifests(path)


def test_yaml_errors_fit_on_one_line() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_manifests("not: [valid", source="m.yaml")
    assert "\n" not in info.value.message
    assert info.value.message.startswith("m.yaml is not valid YAML")
    assert "line 1" in info.value.message


_SPEC = "type: echo, version: 1.0.0, runtime: process"


@pytest.mark.parametrize("where", [f"metadata: {{name: x1, labels: [a]}}\nspec: {{{_SPEC}}}",
                                   f"metadata: {{name: x1}}\nspec: {{{_SPEC}, labels: x}}"])
def test_manifest_labels_that_are_not_a_mapping_are_named(where: str) -> None:
    # Before: TypeError "'list' object is not a mapping" (a traceback from the CLI).
    from sutradhar.cli.manifests import agent_from_manifest

    (manifest,) = parse_manifests(f"apiVersion: sutradhar/v1\nkind: Agent\n{where}\n", source="m.yaml")
    with pytest.raises(InvalidArgument, match=r"labels must be a mapping"):
        agent_from_manifest(manifest)
