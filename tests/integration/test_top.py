"""`sutradhar top` against a live mesh of real processes (etcd, registry, router,
scheduler running a 2-replica deployment of the echo agent) under a little load:
``-o json`` numbers, the live view in a pseudo-terminal stopped by SIGINT, and an
unreachable router."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from obs_support import ROOT, Child, children, start

from sutradhar import RouterClient, SutradharError
from sutradhar.services.common.etcd_server import free_port
from tests.support import eventually

CLI = [sys.executable, "-m", "sutradhar.cli.main"]
ECHO_COMMAND = [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent"]


@dataclass
class Mesh:
    namespace: str
    env: dict[str, str]
    router: Child


@pytest.fixture(scope="module")
def mesh(etcd: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    logs = tmp_path_factory.mktemp("top-mesh")
    namespace = f"top-{os.getpid()}"
    with children() as started:
        started.append(registry := start(
            "registry", ["-m", "sutradhar.services.registry", "--insecure", "--port", "0", "--etcd", etcd], logs))
        started.append(router := start(
            "router", ["-m", "sutradhar.services.router", "--insecure", "--port", "0", "--registry",
                       registry.address], logs))
        started.append(scheduler := start(
            "scheduler", ["-m", "sutradhar.services.scheduler", "--insecure", "--port", "0", "--etcd", etcd,
                          "--registry", registry.address, "--state-dir", str(logs / "state"),
                          "--member-id", f"top-{os.getpid()}", "--election-ttl", "2s",
                          "--resync-period", "1s", "--stop-grace", "3s"], logs))
        env = {**os.environ, "SUTRADHAR_REGISTRY": registry.address, "SUTRADHAR_ROUTER": router.address,
               "SUTRADHAR_SCHEDULER": scheduler.address}
        manifest = logs / "echo.yaml"
        manifest.write_text(f"""
apiVersion: sutradhar/v1
kind: Agent
metadata: {{name: echo, namespace: {namespace}}}
spec:
  type: echo
  version: 1.0.0
  runtime: process
  capabilities: [echo]
  config: {{command: {json.dumps(ECHO_COMMAND)}, workdir: "{ROOT}"}}
---
apiVersion: sutradhar/v1
kind: Deployment
metadata: {{name: echo, namespace: {namespace}}}
spec:
  agent: echo
  replicas: 2
""")
        out = subprocess.run([*CLI, "deploy", "-f", str(manifest), "--wait", "--timeout", "60"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stdout + out.stderr
        try:
            yield Mesh(namespace, env, router)
        finally:
            subprocess.run([*CLI, "undeploy", "echo", "-n", namespace], env=env, cwd=ROOT, capture_output=True,
                           timeout=60)


@dataclass
class Load:
    sent: int = 0
    failed: int = 0


@contextlib.asynccontextmanager
async def load(mesh: Mesh, *, workers: int = 4, every_failing: int = 5) -> AsyncIterator[Load]:
    """Calls through the router until the block ends; every `every_failing`-th call of a worker fails."""
    counts = Load()
    stop = asyncio.Event()

    async def worker(client: RouterClient) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            failing = i % every_failing == 0
            payload = {"fail": "LOAD"} if failing else {"n": i}
            result = await client.execute("echo", payload, namespace=mesh.namespace, max_attempts=1,
                                          timeout=timedelta(seconds=5))
            counts.sent += 1
            counts.failed += not result.success
            await asyncio.sleep(0.005)

    async with RouterClient(mesh.router.address) as client:
        await eventually(lambda: client.execute("echo", 0, namespace=mesh.namespace, timeout=timedelta(seconds=5)),
                         within=20, ignoring=(SutradharError,))
        tasks = [asyncio.create_task(worker(client)) for _ in range(workers)]
        try:
            yield counts
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def test_top_json_reports_rates_errors_and_replicas_of_a_loaded_mesh(mesh: Mesh) -> None:
    async with load(mesh) as counts:
        await asyncio.sleep(0.5)
        before, started = counts.sent, time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *CLI, "top", "-o", "json", "--interval", "2s", "-n", mesh.namespace, env=mesh.env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        during, elapsed = counts.sent - before, time.monotonic() - started
    assert proc.returncode == 0, err.decode()
    snap = json.loads(out)
    assert 1.9 <= snap["interval_s"] <= 3.0
    (agent,) = snap["agents"]
    assert agent["namespace"] == mesh.namespace and agent["agent_id"] == "echo"
    assert agent["instances"] == 2 and agent["ready"] == 2 and agent["desired"] == 2
    instances = snap["instances"]
    assert len(instances) == 2 and all(i["breaker"] == "CLOSED" and not i["ejected"] for i in instances)

    # The interval's calls: no more than the load sent while top ran, most of what it sent in the interval.
    requests = agent["requests"]
    assert requests == sum(i["requests"] for i in instances)
    assert 0.6 * during / elapsed * snap["interval_s"] <= requests <= during, (requests, during, elapsed)
    assert agent["rps"] == pytest.approx(requests / snap["interval_s"], rel=0.02)
    assert agent["rps"] == pytest.approx(sum(i["rps"] for i in instances), rel=0.02)
    assert min(i["requests"] for i in instances) > 0  # both replicas serve
    assert abs(agent["errors"] - requests / 5) <= 8, agent  # every fifth call of each worker fails
    assert agent["error_pct"] == pytest.approx(100 * agent["errors"] / requests, abs=0.01)
    assert agent["p50_ms"] > 0 and agent["p99_ms"] >= agent["p50_ms"]
    assert snap["scheduler_error"] == ""


def _read(fd: int, seconds: float, *, until: bytes = b"", count: int = 0) -> bytes:
    """What the terminal shows within `seconds`, stopping early once `until` appeared
    `count` times, or when the child closes the terminal."""
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if until and out.count(until) >= count:
                break
    return out


async def test_the_live_view_refreshes_in_a_terminal_and_ctrl_c_ends_it_with_0(mesh: Mesh) -> None:
    async with load(mesh, workers=1):
        controller, terminal = pty.openpty()
        env = {**mesh.env, "COLUMNS": "160", "LINES": "40", "TERM": "xterm-256color"}
        proc = await asyncio.create_subprocess_exec(
            *CLI, "top", "--interval", "0.5s", env=env, cwd=ROOT, stdin=terminal, stdout=terminal, stderr=terminal,
            start_new_session=True)
        os.close(terminal)
        try:
            # the first frame and at least two refreshes (a loaded machine may take a while to start the CLI)
            screen = await asyncio.to_thread(_read, controller, 30.0, until=b"sutradhar top", count=3)
            proc.send_signal(signal.SIGINT)
            # keep draining the terminal while it stops: a full pty buffer would block its last writes
            drained = asyncio.create_task(asyncio.to_thread(_read, controller, 20.0))
            code = await asyncio.wait_for(proc.wait(), 20)
            screen += await drained
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            os.close(controller)
    text = screen.decode(errors="replace")
    assert code == 0, text
    assert text.count("sutradhar top") >= 3, text  # the first frame and at least two refreshes
    # a refresh with rates: over the time between two samples, 0.5 s and however long sampling took
    assert re.search(r"rates over (0\.[5-9]|[1-9]\.\d)s", text), text
    assert mesh.namespace in text and "2/2" in text
    assert "\x1b[?25l" in text and text.rstrip().endswith("\x1b[?25h")  # the cursor is hidden, then given back
    assert "Traceback" not in text


def test_an_unreachable_router_is_one_error_saying_how_to_reach_one() -> None:
    port = free_port()
    out = subprocess.run([*CLI, "--router", f"127.0.0.1:{port}", "--scheduler", f"127.0.0.1:{port}", "top", "-o",
                          "json", "--interval", "0.1s"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"error: cannot read the router at 127.0.0.1:{port}: "), out.stderr
    assert "sutradhar up" in out.stderr and "--router (env SUTRADHAR_ROUTER)" in out.stderr
    assert len(out.stderr.splitlines()) == 1


def test_the_live_view_needs_a_terminal(tmp_path: Path) -> None:
    port = free_port()
    out = subprocess.run([*CLI, "--router", f"127.0.0.1:{port}", "top"], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 1 and "use -o json for one snapshot" in out.stderr, out.stderr
