"""The Agent conformance suite: the Python example agents pass it (in-process, and as processes
through `sutradhar conformance` and `python -m sutradhar.conformance`), an agent written on the
wire contract alone passes it, and each flaw of a deliberately broken agent fails its rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from examples.echo_agent import EchoAgent
from examples.traced_agent import TracedEchoAgent
from sutradhar._credentials import Credentials
from sutradhar._hosting import GrpcHost
from sutradhar._identity import SpiffeId
from sutradhar._tls import TlsSource
from sutradhar.cli.main import main as cli_main
from sutradhar.conformance import CHECKS, FAIL, PASS, SKIP, run_conformance
from sutradhar.conformance import main as conformance_main
from sutradhar.testing import run_agent, spawn_agent
from tests.secure_support import TD, Pki

ROOT = Path(__file__).resolve().parents[2]
NAMES = [name for name, _ in CHECKS]


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`sutradhar conformance ...` as a process, with no credential file of the user's."""
    return subprocess.run(
        [sys.executable, "-m", "sutradhar.cli.main", "conformance", *args],
        capture_output=True, text=True, timeout=90, check=False, cwd=str(ROOT),
        env={"PATH": "/usr/bin:/bin", "SUTRADHAR_CREDENTIALS": str(tmp_path / "credentials.yaml")},
    )


def _statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


@pytest.mark.parametrize("agent", [EchoAgent, TracedEchoAgent])
async def test_the_example_agents_in_process_pass_every_check(agent: type[EchoAgent]) -> None:
    async with run_agent(agent()) as address:
        results = await run_conformance(address)
    assert [r.name for r in results] == NAMES
    assert {r.name: r.status for r in results} == {**dict.fromkeys(NAMES, PASS), "drain": SKIP}
    by_name = {r.name: r for r in results}
    assert "INVALID_ARGUMENT" in by_name["malformed-input"].detail
    assert "DEADLINE_EXCEEDED" in by_name["deadline"].detail
    assert "failure CONFORMANCE" in by_name["execute-failure"].detail
    assert "8 slow tasks in flight at once" in by_name["concurrency"].detail
    assert "--drain-pid" in by_name["drain"].detail


def test_the_echo_agent_process_passes_the_cli_suite_and_drains_on_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure"]
    with spawn_agent(command, cwd=str(ROOT)) as agent:
        table = _cli(agent.address, "--insecure", tmp_path=tmp_path)
        assert table.returncode == 0, table.stdout + table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["CHECK", "RESULT", "TIME", "DETAIL"]
        assert [line.split()[:2] for line in lines[1:-1]] == [[n, "SKIP" if n == "drain" else "PASS"] for n in NAMES]
        assert lines[-1] == f"{len(NAMES) - 1}/{len(NAMES)} checks passed, 0 failed, 1 skipped"

        module = subprocess.run(
            [sys.executable, "-m", "sutradhar.conformance", agent.address, "--failure-payload", '{"fail": "E42"}'],
            capture_output=True, text=True, timeout=60, check=False, cwd=str(ROOT),
        )
        assert module.returncode == 0, module.stdout + module.stderr
        assert "failure E42" in module.stdout

        out = _cli(agent.address, "--insecure", "-o", "json", "--drain-pid", str(agent.proc.pid), tmp_path=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        report = json.loads(out.stdout)
        assert report["passed"] is True
        assert _statuses(report) == dict.fromkeys(NAMES, PASS)
        drain = report["checks"][-1]
        assert drain["detail"].startswith(
            "NOT_SERVING after SIGTERM; a new task refused (UNAVAILABLE); the in-flight task finished (success"
        )
        assert agent.wait() == 0  # the suite's SIGTERM stopped it, cleanly


#: Each flaw of tests/flawed_agent.py and the rows it must fail (all others pass).
FLAWED_ROWS = {
    "two-results": ({"stream"}, "a result event came after the final result"),
    "event-after-result": ({"stream"}, "a progress event came after the final result"),
    "ignores-deadline": ({"stream-cancel", "deadline"}, "still running 2s after the deadline"),
    "failure-as-status": ({"execute-failure"}, "the call ended with INTERNAL"),
    "no-task-id": ({"task-metadata", "stream", "concurrency"}, "metadata.task_id is '', not the task's id"),
    "one-at-a-time": ({"concurrency"}, "run calls concurrently instead of one after another"),
    "bad-version": ({"describe", "task-metadata"}, "version 'one' is not a semantic version"),
    "stops-at-once": ({"drain"}, "before it reported NOT_SERVING"),
    "works-while-draining": ({"drain"}, "while draining a new task ended with OK; refuse new tasks with UNAVAILABLE"),
}


@pytest.mark.parametrize("flaw", ["", *FLAWED_ROWS])
def test_an_agent_on_the_wire_contract_alone_passes_and_each_flaw_fails_its_rows(flaw: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tests.flawed_agent", *(["--flaw", flaw] if flaw else [])]
    failing, message = FLAWED_ROWS.get(flaw, (set(), ""))
    with spawn_agent(command, cwd=str(ROOT)) as agent:
        drain = ["--drain-pid", str(agent.proc.pid)] if flaw in ("", "stops-at-once", "works-while-draining") else []
        out = _cli(agent.address, "--insecure", "-o", "json", *drain, tmp_path=tmp_path)
    report = json.loads(out.stdout)
    statuses = _statuses(report)
    assert {name for name, status in statuses.items() if status == FAIL} == failing, out.stdout
    assert out.returncode == (1 if failing else 0)
    assert report["passed"] is (not failing)
    if flaw:
        details = [c["detail"] for c in report["checks"] if c["status"] == FAIL]
        assert any(message in d for d in details), details
    if not drain:
        assert statuses["drain"] == SKIP


async def test_a_server_without_the_agent_service_fails() -> None:
    host = GrpcHost(service_names=[])
    await host.start()
    await host.set_serving()
    try:
        results = await run_conformance(host.address)
    finally:
        await host.stop()
    by_name = {r.name: r for r in results}
    assert by_name["health-unknown-service"].passed
    assert not by_name["health"].passed
    assert "NOT_FOUND" in by_name["health"].detail
    assert not by_name["describe"].passed
    assert "UNIMPLEMENTED" in by_name["describe"].detail
    assert not by_name["reflection"].passed
    assert "does not list sutradhar.v1.AgentService" in by_name["reflection"].detail
    assert not by_name["execute"].passed


async def test_a_secured_agent_passes_for_a_mesh_caller_and_refuses_others(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path)
    identity = SpiffeId.agent(TD, "default", "echo", "echo-1")
    async with run_agent(EchoAgent(), tls=pki.issue(identity), trust_domain=TD) as address:
        as_health = Credentials(tls=TlsSource(pki.issue(SpiffeId.service(TD, "health"))))
        results = await run_conformance(address, credentials=as_health, expected=identity)
        assert {r.name: r.status for r in results} == {**dict.fromkeys(NAMES, PASS), "drain": SKIP}

        as_user = Credentials(tls=TlsSource(pki.issue(SpiffeId.user(TD, "default", "alice"))))
        refused = {r.name: r for r in await run_conformance(address, credentials=as_user, expected=identity)}
    assert refused["health"].passed and refused["reflection"].passed  # open to any holder of a certificate
    assert not refused["describe"].passed
    assert refused["describe"].detail.startswith("PERMISSION_DENIED")
    assert "present one of their certificates (sutradhar conformance --tls-cert-file" in refused["describe"].detail


def test_the_cli_checks_a_secured_agent_with_given_certificates(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path)
    identity = SpiffeId.agent(TD, "default", "echo", "echo-1")
    agent_files = pki.issue(identity)
    health = pki.issue(SpiffeId.service(TD, "health"))
    command = [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--trust-domain", TD,
               "--tls-cert-file", str(agent_files.certificate), "--tls-key-file", str(agent_files.private_key),
               "--tls-ca-file", str(agent_files.trust_bundle)]
    tls = ["--tls-cert-file", str(health.certificate), "--tls-key-file", str(health.private_key),
           "--tls-ca-file", str(health.trust_bundle)]
    with spawn_agent(command, cwd=str(ROOT)) as agent:
        out = _cli(agent.address, "-o", "json", "--identity", str(identity), *tls, tmp_path=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        assert _statuses(json.loads(out.stdout)) == {**dict.fromkeys(NAMES, PASS), "drain": SKIP}

        unverified = _cli(agent.address, *tls, tmp_path=tmp_path)
        assert unverified.returncode == 1
        assert "needs the identity it must present: pass --identity" in unverified.stderr

        wrong = _cli(agent.address, "--identity", str(SpiffeId.agent(TD, "default", "other")), "--timeout", "1",
                     *tls, tmp_path=tmp_path)
        assert wrong.returncode == 1
        assert "do --identity and the certificates match it?" in wrong.stderr


def test_cli_usage_errors_say_what_to_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTRADHAR_CREDENTIALS", str(tmp_path / "credentials.yaml"))
    assert cli_main(["conformance", "not-an-address", "--insecure"]) == 1
    assert "'not-an-address' is not a host:port address of an agent" in capsys.readouterr().err
    assert cli_main(["conformance", "127.0.0.1:1", "--insecure", "--identity", "spiffe://x/ns/a/agent/b"]) == 1
    assert "--insecure and --tls-*/--identity contradict each other" in capsys.readouterr().err
    assert cli_main(["conformance", "127.0.0.1:1", "--insecure", "--timeout", "0.5"]) == 1
    assert "no connection to 127.0.0.1:1 within 0.5s: is an agent listening there" in capsys.readouterr().err
    assert conformance_main(["127.0.0.1:1", "--timeout", "0.5"]) == 1
    assert capsys.readouterr().err.startswith("error: no connection to 127.0.0.1:1 within 0.5s")
    with pytest.raises(SystemExit) as usage:
        cli_main(["conformance", "127.0.0.1:1", "--insecure", "--concurrency", "0"])
    assert usage.value.code == 2
    assert "0 calls: give at least 1" in capsys.readouterr().err
