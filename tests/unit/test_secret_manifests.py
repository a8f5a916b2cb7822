"""`kind: Secret` and `kind: ConfigMap` manifests, and the deployment's list-form env and files."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar.cli.deploy import _revision, deployment_from_manifest
from sutradhar.cli.main import build_parser
from sutradhar.cli.manifests import configmap_from_manifest, parse_manifests, secret_from_manifest
from sutradhar.v1 import registry_pb2

VALUE = "sk-manifest-42f1c9"

SECRET = f"""
apiVersion: sutradhar/v1
kind: Secret
metadata: {{name: llm, namespace: team-a, labels: {{app: x}}}}
data: {{cert: {base64.b64encode(b"binary-cert").decode()}, both: {base64.b64encode(b"old").decode()}}}
stringData: {{openai: {VALUE}, both: new}}
---
apiVersion: sutradhar/v1
kind: ConfigMap
metadata: {{name: settings, namespace: team-a}}
data: {{model: gpt-x, temperature: "0.2"}}
"""


def test_secret_and_configmap_documents() -> None:
    secret_doc, cm_doc = parse_manifests(SECRET)
    secret, data = secret_from_manifest(secret_doc)
    assert (secret.namespace, secret.name, dict(secret.labels)) == ("team-a", "llm", {"app": "x"})
    assert data == {"cert": b"binary-cert", "both": b"new", "openai": VALUE.encode()}
    assert VALUE not in secret.SerializeToString().decode(errors="replace")
    cm = configmap_from_manifest(cm_doc)
    assert dict(cm.data) == {"model": "gpt-x", "temperature": "0.2"}


@pytest.mark.parametrize(("body", "match"), [
    (f"data: {{k: '{VALUE}!'}}", "data.k is not base64"),
    ("stringData: {k: 12}", "stringData.k must be a string"),
    ("spec: {}", "unknown field 'spec'"),
    ("", "needs data or stringData"),
])
def test_secret_errors_never_quote_the_value(body: str, match: str) -> None:
    text = f"apiVersion: sutradhar/v1\nkind: Secret\nmetadata: {{name: s}}\n{body}\n"
    with pytest.raises(InvalidArgument, match=match) as err:
        secret_from_manifest(parse_manifests(text)[0])
    assert VALUE not in str(err.value)


def test_deployment_env_list_and_files() -> None:
    text = """
apiVersion: sutradhar/v1
kind: Deployment
metadata: {name: d, namespace: team-a}
spec:
  agent: echo
  env:
    - {name: A, value: "1"}
    - name: KEY
      valueFrom: {secretKeyRef: {name: llm, key: openai}}
  files: [{secret: llm, mountPath: /etc/keys, items: [{key: openai, path: key.txt}]}]
"""
    d, _ = deployment_from_manifest(parse_manifests(text)[0])
    assert [v.name for v in d.spec.env_vars] == ["A", "KEY"]
    assert d.spec.env_vars[1].value_from.secret_key_ref.key == "openai"
    assert d.spec.files[0].items[0].path == "key.txt"
    agent = registry_pb2.Agent(id="echo", namespace="team-a", type="echo", version="1.0.0", runtime="process")
    assert _revision(agent, d) == "", "only the scheduler knows the referenced versions"
    bad = text.replace("secretKeyRef", "secretKeyReff")
    with pytest.raises(InvalidArgument, match=r"spec\.env"):
        deployment_from_manifest(parse_manifests(bad)[0])


def test_cli_has_no_from_literal_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["secrets", "create", "s", "--from-literal", "k=v"])
    with pytest.raises(SystemExit):
        parser.parse_args(["secrets", "create", "--help"])
    assert "process list" in capsys.readouterr().out


def test_add_key_rotates_the_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sutradhar.cli.main import main
    from sutradhar.services.common.encryption import EncryptionConfig, ensure_config_file

    path = tmp_path / "encryption-config.yaml"
    old = ensure_config_file(path).current.name
    assert main(["secrets", "add-key", "--encryption-config", str(path), "--name", "key-next"]) == 0
    assert EncryptionConfig.load(path).names == ("key-next", old)
    assert "reencrypt" in capsys.readouterr().out
    assert main(["secrets", "add-key", "--state-dir", str(tmp_path)]) == 0
    assert EncryptionConfig.load(path).names[1:] == ("key-next", old)
    assert main(["secrets", "add-key", "--encryption-config", str(path), "--name", "Bad:Name"]) != 0


def test_describe_lists_references_by_name_only() -> None:
    from sutradhar.cli.deploy import _references
    from sutradhar.v1 import scheduler_pb2, secrets_pb2

    spec = scheduler_pb2.DeploymentSpec(agent_id="echo")
    spec.env_vars.add(name="KEY").value_from.secret_key_ref.CopyFrom(secrets_pb2.KeyReference(name="llm",
                                                                                                key="openai"))
    spec.files.add(config_map="settings", mount_path="/etc/s")
    assert _references(spec) == [
        {"kind": "secret", "name": "llm", "key": "openai", "as": "env KEY"},
        {"kind": "configmap", "name": "settings", "key": "(every key)", "as": "files in /etc/s"},
    ]
