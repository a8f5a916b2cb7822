"""`sutradhar up` creates the encryption config (0600) and the registry seals secrets with it:
the CLI creates a secret from stdin, lists it without the value, reveals it, and the value is in
no service log of the state directory."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_mesh import BIN, CREDENTIALS, mesh_ports, sutradhar

from sutradhar.cli._launcher import ENCRYPTION_CONFIG, REPO_ROOT
from sutradhar.services.common.encryption import EncryptionConfig

VALUE = "sk-up-0d9f1a2b3c4e"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("secrets-up-state")
    _, flags = mesh_ports()
    try:
        sutradhar("up", "--detach", "--state-dir", str(state), *flags, timeout=180)
        yield state
    finally:
        sutradhar("down", "--state-dir", str(state), check=False)


def test_up_makes_a_private_encryption_config_and_secrets_work(mesh: Path) -> None:
    path = mesh / ENCRYPTION_CONFIG
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert EncryptionConfig.load(path).names
    created = subprocess.run([str(BIN / "sutradhar"), "secrets", "create", "llm", "--from-stdin", "openai"],
                             input=VALUE, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
                             env={**_env(), "SUTRADHAR_STATE_DIR": str(mesh)})
    assert created.returncode == 0, created.stderr
    assert "secret/llm created" in created.stdout and VALUE not in created.stdout + created.stderr
    listed = sutradhar("secrets", "list", "-o", "json")
    assert '"openai"' in listed.stdout and VALUE not in listed.stdout
    assert sutradhar("secrets", "reveal", "llm", "--key", "openai").stdout == VALUE
    for log in (mesh / "logs").glob("*.log"):
        assert VALUE not in log.read_text(errors="replace"), log


def _env() -> dict[str, str]:
    return {**os.environ, "SUTRADHAR_CREDENTIALS": str(CREDENTIALS)}


def test_the_example_deploys_with_a_secret_in_a_secured_up_mesh(mesh: Path) -> None:
    created = subprocess.run([str(BIN / "sutradhar"), "secrets", "create", "echo-keys", "--from-stdin", "token"],
                             input=VALUE, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, env=_env())
    assert created.returncode == 0, created.stderr
    out = sutradhar("deploy", "-f", "examples/manifests/echo-with-secrets.yaml", "--wait", timeout=120).stdout
    assert "configmap/echo-settings created" in out and "successfully rolled out" in out, out
    described = sutradhar("deployments", "get", "echo-configured", "-o", "json").stdout
    assert "echo-keys" in described and VALUE not in out + described
    [record] = (mesh / "scheduler" / "process" / "default").glob("echo-configured-*/record.json")
    pid = json.loads(record.read_text())["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"ECHO_TOKEN={VALUE}".encode() in environ and b"ECHO_GREETING=hello from a config map" in environ
    sutradhar("undeploy", "echo-configured", timeout=60)
