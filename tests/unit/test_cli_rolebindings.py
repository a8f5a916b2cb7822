"""`kind: RoleBinding` manifests and the `rolebindings` / `roles` commands' arguments."""

from __future__ import annotations

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar.cli.deploy import _read_bindings
from sutradhar.cli.main import build_parser
from sutradhar.cli.manifests import parse_manifests, rolebinding_from_manifest

MANIFEST = """\
apiVersion: sutradhar/v1
kind: RoleBinding
metadata: {name: ci-deployers, namespace: team-a}
spec:
  role: operator
  subjects: [spiffe://sutradhar.local/ns/team-a/user/ci]
"""


def test_a_rolebinding_manifest_becomes_a_rolebinding() -> None:
    (manifest,) = parse_manifests(MANIFEST)
    binding = rolebinding_from_manifest(manifest)
    assert (binding.namespace, binding.name, binding.role) == ("team-a", "ci-deployers", "operator")
    assert list(binding.subjects) == ["spiffe://sutradhar.local/ns/team-a/user/ci"]


@pytest.mark.parametrize(("spec", "field", "text"), [
    ("{rol: operator, subjects: []}", "spec.rol", "did you mean 'role'"),
    ("{subjects: [x]}", "spec.role", "spec.role is required"),
    ("{role: operator, subjects: spiffe://x}", "spec.subjects", "list of SPIFFE IDs"),
])
def test_bad_rolebinding_manifests_name_the_field(spec: str, field: str, text: str) -> None:
    doc = f"apiVersion: sutradhar/v1\nkind: RoleBinding\nmetadata: {{name: b}}\nspec: {spec}\n"
    (manifest,) = parse_manifests(doc)
    with pytest.raises(InvalidArgument) as err:
        rolebinding_from_manifest(manifest)
    assert err.value.field == field and text in err.value.message


def test_deploy_checks_bindings_before_applying_anything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rb.yaml"
    path.write_text(MANIFEST.replace("operator", "root"))
    with pytest.raises(InvalidArgument) as err:
        _read_bindings(str(path))
    assert "rolebinding/ci-deployers: binding.role:" in err.value.message
    assert "nothing was applied" in err.value.message and "viewer" in err.value.message


def test_rolebindings_and_roles_commands_parse() -> None:
    args = build_parser().parse_args(["rolebindings", "-n", "*", "-o", "json"])
    assert (args.namespace, args.output) == ("*", "json")
    args = build_parser().parse_args(["roles"])
    assert args.output == "table"
