"""Manifest errors a newcomer can act on: which document of the file, that
nothing was applied, and an unknown field named with the nearest valid one."""

from __future__ import annotations

from pathlib import Path

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar.cli import main as cli_main
from sutradhar.cli.deploy import deployment_from_manifest
from sutradhar.cli.manifests import agent_from_manifest, parse_manifests
from sutradhar.services.common.etcd_server import free_port

AGENT = """apiVersion: sutradhar/v1
kind: Agent
metadata: {name: echo}
spec:
  type: echo
  version: 1.0.0
  runtime: process
  config: {command: [python3, -m, sutradhar.serve, "examples.echo_agent:EchoAgent"]}
  routing: {strategy: round-robin}
"""
DEPLOYMENT = """apiVersion: sutradhar/v1
kind: Deployment
metadata: {name: echo}
spec: {agent: echo, replicas: 2}
"""


def test_a_misspelt_top_level_field_is_unknown_not_a_missing_name() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_manifests(AGENT.replace("metadata:", "metdata:"), source="a.yaml")
    assert "unknown field 'metdata' (did you mean 'metadata'?)" in info.value.message
    assert "metadata.name is required" not in info.value.message
    assert info.value.field == "metdata"
    assert info.value.code.name == "INVALID_ARGUMENT"


def test_an_unknown_field_far_from_every_valid_one_lists_the_valid_fields() -> None:
    with pytest.raises(InvalidArgument, match="unknown field 'zzz'; valid fields: apiVersion, kind, metadata, spec"):
        parse_manifests(AGENT + "zzz: 1\n")


def test_a_misspelt_metadata_field_is_named() -> None:
    with pytest.raises(InvalidArgument, match=r"unknown field 'metadata.namespce' \(did you mean 'namespace'\?\)"):
        parse_manifests(AGENT.replace("{name: echo}", "{name: echo, namespce: x}"))
    with pytest.raises(InvalidArgument, match=r"metadata.name is required \(is 'nmae' a misspelling of it\?\)"):
        parse_manifests(AGENT.replace("{name: echo}", "{nmae: echo}"))


def test_nested_agent_fields_are_checked_against_the_schema() -> None:
    [m] = parse_manifests(AGENT.replace("strategy: round-robin", "strategee: round-robin"))
    with pytest.raises(InvalidArgument) as info:
        agent_from_manifest(m)
    assert "unknown field 'spec.routing.strategee' (did you mean 'strategy'?)" in info.value.message
    assert info.value.field == "spec.routing.strategee"
    [m] = parse_manifests(AGENT.replace("routing: {strategy: round-robin}",
                                        "probes: {readiness: {kind: grpc, failureTreshold: 2}}"))
    with pytest.raises(InvalidArgument, match=r"'spec.probes.readiness.failureTreshold' \(did you mean "
                                              r"'failureThreshold'\?\)"):
        agent_from_manifest(m)
    [m] = parse_manifests(AGENT.replace("type: echo", "tpye: echo"))
    with pytest.raises(InvalidArgument, match=r"unknown field 'spec.tpye' \(did you mean 'type'\?\)"):
        agent_from_manifest(m)


def test_deployment_spec_fields_suggest_the_nearest() -> None:
    [m] = parse_manifests(DEPLOYMENT.replace("replicas: 2", "replica: 2"))
    with pytest.raises(InvalidArgument, match=r"unknown field 'spec.replica' \(did you mean 'replicas'\?\)"):
        deployment_from_manifest(m)


def test_an_error_in_a_later_document_names_it_by_number_and_file() -> None:
    text = AGENT + "---\n" + DEPLOYMENT.replace("metadata:", "metdata:")
    with pytest.raises(InvalidArgument, match=r"^document 2 of f.yaml: unknown field 'metdata'"):
        parse_manifests(text, source="f.yaml")
    [agent, deployment] = parse_manifests(text.replace("metdata:", "metadata:"), source="f.yaml")
    assert (agent.source, deployment.source) == ("document 1 of f.yaml", "document 2 of f.yaml")


@pytest.mark.parametrize("command", ["deploy", "agents register"])
def test_the_cli_says_which_document_and_that_nothing_was_applied(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(AGENT + "---\n" + AGENT.replace("type: echo", "tpye: echo"))
    closed = f"127.0.0.1:{free_port()}"  # nothing listens: the error comes before any call
    code = cli_main.main(["--registry", closed, "--scheduler", closed, *command.split(), "-f", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"document 2 of {path}: unknown field 'spec.tpye' (did you mean 'type'?)" in err
    assert "nothing was applied" in err and "(INVALID_ARGUMENT)" in err
