"""`kind: ResourceQuota` manifests, the `quota` command's arguments and its table rows."""

from __future__ import annotations

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar.cli.deploy import _read_quotas
from sutradhar.cli.main import build_parser
from sutradhar.cli.manifests import parse_manifests, resourcequota_from_manifest
from sutradhar.cli.quota import rows
from sutradhar.v1 import quota_pb2

MANIFEST = """\
apiVersion: sutradhar/v1
kind: ResourceQuota
metadata: {name: compute, namespace: team-a}
spec:
  hard: {agents: 20, replicas: 10, cpu: 4, memory: 8Gi, deployments: "5"}
"""


def test_a_resourcequota_manifest_becomes_a_quota_with_bare_numbers_as_text() -> None:
    (manifest,) = parse_manifests(MANIFEST)
    q = resourcequota_from_manifest(manifest)
    assert (q.namespace, q.name) == ("team-a", "compute")
    assert dict(q.spec.hard) == {"agents": "20", "replicas": "10", "cpu": "4", "memory": "8Gi", "deployments": "5"}


@pytest.mark.parametrize(("spec", "field", "text"), [
    ("{hrd: {cpu: 1}}", "spec.hrd", "did you mean 'hard'"),
    ("{}", "spec.hard", "spec.hard must be a mapping of resources to limits"),
    ("{hard: [cpu]}", "spec.hard", "spec.hard must be a mapping"),
    ("{hard: {cpu: true}}", "spec.hard.cpu", "must be a number or a quantity"),
    ("{hard: {cpu: {a: 1}}}", "spec.hard.cpu", "not dict"),
])
def test_bad_resourcequota_manifests_name_the_field(spec: str, field: str, text: str) -> None:
    doc = f"apiVersion: sutradhar/v1\nkind: ResourceQuota\nmetadata: {{name: q}}\nspec: {spec}\n"
    (manifest,) = parse_manifests(doc)
    with pytest.raises(InvalidArgument) as err:
        resourcequota_from_manifest(manifest)
    assert err.value.field == field and text in err.value.message


def test_apply_checks_quotas_before_applying_anything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "q.yaml"
    path.write_text(MANIFEST.replace("memory: 8Gi", "gpus: 2"))
    with pytest.raises(InvalidArgument) as err:
        _read_quotas(str(path))
    assert err.value.message.startswith('resourcequota/compute: quota.spec.hard.gpus: "gpus" is not a quota resource')
    assert "nothing was applied" in err.value.message


def test_quota_command_parses_and_apply_is_deploy() -> None:
    args = build_parser().parse_args(["quota", "-n", "*", "-o", "json"])
    assert (args.namespace, args.output, args.func.__name__) == ("*", "json", "show_quotas")
    args = build_parser().parse_args(["quota", "-n", "team-a", "delete", "compute"])
    assert (args.namespace, args.name, args.output, args.func.__name__) == ("team-a", "compute", "table",
                                                                            "delete_quota")
    assert build_parser().parse_args(["apply", "-f", "x.yaml"]).func.__name__ == "deploy"


def test_rows_follow_the_usual_resource_order() -> None:
    q = quota_pb2.ResourceQuota(namespace="a", name="q", status=quota_pb2.ResourceQuotaStatus(
        hard={"memory": "1Gi", "cpu": "2", "agents": "3"}, used={"memory": "0", "cpu": "500m", "agents": "1"}))
    assert [(r["resource"], r["used"], r["hard"]) for r in rows([q])] == [
        ("agents", "1", "3"), ("cpu", "500m", "2"), ("memory", "0", "1Gi")]


def test_the_example_quota_manifest_is_valid() -> None:
    from pathlib import Path

    (q,) = _read_quotas(str(Path(__file__).resolve().parents[2] / "examples/manifests/team-quota.yaml"))
    assert (q.namespace, q.name, q.spec.hard["memory"]) == ("team-a", "compute", "8Gi")
