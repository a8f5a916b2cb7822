"""`sutradhar deploy -f` applies a file as a whole and waits for what it applied:
a file with one bad document changes nothing; `--wait` after an agent-only
change waits for the new revision; a manifest without `paused` keeps a pause."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from test_scheduler_support import (
    ECHO_COMMAND,
    ROOT,
    api,
    eventually,
    get,
    namespace,
    registry,
    registry_client,
    run_cli,
    scheduler,
)

from sutradhar.v1 import scheduler_pb2 as P

__all__ = ["api", "namespace", "registry", "registry_client", "scheduler"]  # fixtures imported for pytest


cli = run_cli


def manifest(path: Path, namespace: str, *, version: str, max_surge: str = "1", paused: str = "") -> Path:
    command = json.dumps(ECHO_COMMAND)
    path.write_text(f"""
apiVersion: sutradhar/v1
kind: Agent
metadata: {{name: echo, namespace: {namespace}}}
spec:
  type: echo
  version: {version}
  runtime: process
  config: {{command: {command}, workdir: "{ROOT}"}}
---
apiVersion: sutradhar/v1
kind: Deployment
metadata: {{name: echo, namespace: {namespace}}}
spec:
  agent: echo
  replicas: 2
  strategy: {{max_surge: {max_surge}, max_unavailable: 0}}
{paused}
""")
    return path


def shell_manifest(path: Path, namespace: str, name: str, script: str, replicas: int) -> Path:
    """An Agent running `sh -c SCRIPT` and a Deployment of it."""
    path.write_text(f"""
apiVersion: sutradhar/v1
kind: Agent
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  type: {name}
  version: 1.0.0
  runtime: process
  config: {{command: [sh, -c, {json.dumps(script)}]}}
---
apiVersion: sutradhar/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{agent: {name}, replicas: {replicas}}}
""")
    return path


async def test_a_file_with_a_bad_deployment_applies_nothing(registry, scheduler, api, namespace, tmp_path):
    code, out = await cli(registry, scheduler, "deploy", "-f", str(manifest(tmp_path / "a.yaml", namespace,
                                                                              version="1.0.0")), "--wait")
    assert code == 0, out
    bad = manifest(tmp_path / "bad.yaml", namespace, version="1.4.0", max_surge="abc")
    code, out = await cli(registry, scheduler, "deploy", "-f", str(bad))
    assert code == 1 and "deployment/echo: spec.strategy.max_surge" in out and "nothing was applied" in out, out
    assert "applied in namespace" not in out  # the agent document was not applied either
    await asyncio.sleep(1.0)
    d = await get(api, namespace, "echo")
    assert d.status.current_version == "1.0.0" and d.status.updated_replicas == 2


async def test_wait_after_an_agent_only_change_waits_for_the_new_revision(registry, scheduler, api, namespace,
                                                                            tmp_path):
    code, out = await cli(registry, scheduler, "deploy", "-f", str(manifest(tmp_path / "a.yaml", namespace,
                                                                              version="1.0.0")), "--wait")
    assert code == 0, out
    for version in ("1.1.0", "1.2.0"):  # the deployment document is the same: its generation does not move
        code, out = await cli(registry, scheduler, "deploy", "-f",
                              str(manifest(tmp_path / f"{version}.yaml", namespace, version=version)), "--wait")
        assert code == 0, out
        assert "successfully rolled out (revision" in out and f"version {version})" in out, out
        d = await get(api, namespace, "echo")
        assert d.status.current_version == version and d.status.updated_replicas == 2, d.status


async def test_apply_without_paused_keeps_a_paused_rollout_paused(registry, scheduler, api, namespace, tmp_path):
    code, out = await cli(registry, scheduler, "deploy", "-f", str(manifest(tmp_path / "a.yaml", namespace,
                                                                              version="1.0.0")), "--wait")
    assert code == 0, out
    code, out = await cli(registry, scheduler, "rollout", "pause", "echo", "-n", namespace)
    assert code == 0, out
    code, out = await cli(registry, scheduler, "deploy", "-f",
                          str(manifest(tmp_path / "b.yaml", namespace, version="1.2.0")))
    assert code == 0 and "paused" in out, out
    await asyncio.sleep(2.0)
    d = await get(api, namespace, "echo")
    assert d.spec.paused and d.status.updated_replicas == 0, d.status
    assert any(c.type == "Paused" and c.status == P.CONDITION_STATUS_TRUE for c in d.status.conditions)
    # saying `paused: false` in the manifest resumes it, as asked
    code, out = await cli(registry, scheduler, "deploy", "-f",
                          str(manifest(tmp_path / "c.yaml", namespace, version="1.2.0", paused="  paused: false")),
                          "--wait")
    assert code == 0 and "version 1.2.0)" in out, out


async def test_scale_waits_and_a_closed_pipe_is_quiet(registry, scheduler, api, namespace, tmp_path):
    code, out = await cli(registry, scheduler, "deploy", "-f", str(manifest(tmp_path / "a.yaml", namespace,
                                                                              version="1.0.0")), "--wait")
    assert code == 0, out
    code, out = await cli(registry, scheduler, "scale", "echo", "-n", namespace, "--replicas", "1", "--wait")
    assert code == 0 and "scaled to 1 replica\n" in out and "successfully rolled out" in out, out
    d = await get(api, namespace, "echo")
    assert d.status.ready_replicas == 1 and d.status.replicas == 1, d.status
    # `| head` style: the reader is gone before the CLI writes
    shell = (f"{sys.executable} -m sutradhar.cli.main --scheduler {scheduler.address} "
             f"deployments get echo -n {namespace} | true")
    proc = await asyncio.create_subprocess_shell(shell, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert err.decode() == "", err.decode()
    code, out = await cli(registry, scheduler, "logs", "echo", "-n", namespace, "--tail", "-5")
    assert code == 2 and "not a whole number >= 1" in out, out


async def test_wait_shows_a_crash_loops_reason_before_the_deadline(registry, scheduler, namespace, tmp_path):
    path = shell_manifest(tmp_path / "crash.yaml", namespace, "crashy", "echo dying-for-a-reason; exit 7", 1)
    code, out = await cli(registry, scheduler, "deploy", "-f", str(path), "--wait", "--timeout", "5")
    assert code == 1 and "(1 replica of agent crashy)" in out, out
    before_deadline = out.split("not rolled out after")[0]
    assert "CrashLoopBackOff: replica crashy-" in before_deadline and "dying-for-a-reason" in before_deadline, out
    progress = [line for line in before_deadline.splitlines() if line.startswith("  CrashLoopBackOff")]
    assert any("next restart in" not in line for line in progress), out  # no countdown: no line per poll
    code, out = await cli(registry, scheduler, "undeploy", "crashy", "-n", namespace)
    assert code == 0, out


async def test_rollout_history_lists_revisions_and_undo_to_the_current_one_says_so(registry, scheduler, namespace,
                                                                                    tmp_path):
    for version in ("1.0.0", "1.1.0"):
        code, out = await cli(registry, scheduler, "deploy", "-f",
                              str(manifest(tmp_path / f"{version}.yaml", namespace, version=version)), "--wait")
        assert code == 0, out
    code, out = await cli(registry, scheduler, "rollout", "history", "echo", "-n", namespace, "-o", "json")
    assert code == 0, out
    revisions = json.loads(out)
    assert [r["version"] for r in revisions] == ["1.0.0", "1.1.0"], revisions
    code, table = await cli(registry, scheduler, "rollout", "history", "echo", "-n", namespace)
    current = revisions[1]["revision"]
    assert code == 0 and "REVISION" in table and any(
        line.startswith(current) and line.rstrip().endswith("*") for line in table.splitlines()), table
    code, out = await cli(registry, scheduler, "rollout", "undo", "echo", "-n", namespace,
                          "--to-revision", current[:6])
    assert code == 0 and "nothing to roll back" in out, out
    code, out = await cli(registry, scheduler, "rollout", "undo", "echo", "-n", namespace)
    assert code == 0 and "rolled back to agent echo version 1.0.0" in out, out


async def test_logs_follow_picks_up_replicas_started_later(registry, scheduler, api, namespace, tmp_path):
    code, out = await cli(registry, scheduler, "deploy", "-f", str(manifest(tmp_path / "a.yaml", namespace,
                                                                              version="1.0.0")), "--wait")
    assert code == 0, out
    code, out = await cli(registry, scheduler, "scale", "echo", "-n", namespace, "--replicas", "1", "--wait")
    assert code == 0, out
    first = {r.id for r in (await get(api, namespace, "echo")).status.replica_statuses}
    follower = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sutradhar.cli.main", "--scheduler", scheduler.address,
        "logs", "echo", "-n", namespace, "-f", stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    try:
        await asyncio.sleep(1.0)
        code, out = await cli(registry, scheduler, "scale", "echo", "-n", namespace, "--replicas", "2", "--wait")
        assert code == 0, out
        later = {r.id for r in (await get(api, namespace, "echo")).status.replica_statuses} - first
        assert len(later) == 1, later
        (new_id,) = later
        assert follower.stdout is not None
        seen = []
        async with asyncio.timeout(10):
            while not any(line.startswith(f"[{new_id}] ") and "listening on" in line for line in seen):
                seen.append((await follower.stdout.readline()).decode())
    finally:
        follower.kill()
        await follower.wait()


async def test_undeploy_reports_the_replicas_still_stopping(registry, scheduler, api, namespace, tmp_path):
    path = shell_manifest(tmp_path / "stubborn.yaml", namespace, "stubborn", "trap '' TERM; sleep 60", 2)
    code, out = await cli(registry, scheduler, "deploy", "-f", str(path))
    assert code == 0, out

    async def started() -> bool:
        return (await get(api, namespace, "stubborn")).status.replicas == 2

    await eventually(started, within=5, what="both stubborn replicas started")
    code, out = await cli(registry, scheduler, "undeploy", "stubborn", "-n", namespace)
    # they ignore SIGTERM: the scheduler's stop grace (3 s here) passes before SIGKILL
    assert code == 0 and "deployment/stubborn: 2 replicas stopping" in out, out
    assert out.rstrip().endswith("every replica stopped"), out
