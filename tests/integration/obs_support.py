"""Real mesh processes for the observability tests: each a child process in its own
process group, its stderr in a file the test reads, stopped by its pid."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from otlp_receiver import Receiver

from sutradhar import RegistryClient, SutradharError
from sutradhar.services.common.etcd_server import free_port
from sutradhar.v1 import registry_pb2
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]

_LISTENING = re.compile(r'listening on ([^\s"]+)')


@dataclass
class Child:
    """One started process and the file its stderr goes to."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    address: str = ""
    stopped: bool = field(default=False)

    def lines(self) -> list[str]:
        """Its stderr so far, line by line."""
        return self.log.read_text(errors="replace").splitlines()

    def records(self) -> list[dict[str, Any]]:
        """Its stderr as JSON log records; AssertionError naming the first line that is not one."""
        out = []
        for line in self.lines():
            try:
                record = json.loads(line)
            except ValueError:
                raise AssertionError(f"{self.name}: stderr line is not JSON: {line!r}") from None
            assert isinstance(record, dict), line
            out.append(record)
        return out

    def stop(self, grace: float = 15.0) -> int:
        """SIGTERM its process group, SIGKILL after `grace` seconds; its exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.stopped = True
        return self.proc.returncode


def start(name: str, argv: Sequence[str], log_dir: Path, *, env: Mapping[str, str] | None = None,
          timeout: float = 30.0) -> Child:
    """Start ``python argv...`` and wait for its ``listening on ADDRESS`` line (text or JSON)."""
    log = log_dir / f"{name}.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sink,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
    child = Child(name, proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _LISTENING.search(log.read_text(errors="replace"))
        if match:
            child.address = match.group(1)
            return child
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    child.stop()
    raise AssertionError(f"{name} did not report listening in {timeout}s:\n{log.read_text(errors='replace')}")


@contextlib.asynccontextmanager
async def receiving() -> AsyncIterator[tuple[Receiver, str]]:
    """A real OTLP receiver on 127.0.0.1 and its endpoint, stopped on the way out."""
    receiver = Receiver()
    endpoint = await receiver.start()
    try:
        yield receiver, endpoint
    finally:
        await receiver.stop()


def exporting_to(endpoint: str) -> dict[str, str]:
    """The OTEL_* variables of a process that exports its spans by OTLP to `endpoint` (a test's
    receiver), in batches sent every 50 ms."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """A list to put started children in; each is stopped (by pid) on the way out, last first."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            if not child.stopped:
                child.stop()


async def traced_echo_beside_a_dead_instance(started: list[Child], registry: str, namespace: str, log_dir: Path,
                                            env: Mapping[str, str]) -> tuple[Child, str]:
    """Start examples/traced_agent.py's TracedEchoAgent with the tracing `env` and JSON logs, registered
    in `namespace` as instance ``echo-<namespace>`` (put in `started`), and register beside it an
    instance nobody listens at, so calls routed to it first are retried; (the agent, the dead
    instance's id)."""
    started.append(agent := start(
        "agent", ["-m", "sutradhar.serve", "examples.traced_agent:TracedEchoAgent", "--insecure", "--registry",
                  registry, "--namespace", namespace, "--instance-id", f"echo-{namespace}"],
        log_dir, env={**env, "SUTRADHAR_LOG_FORMAT": "json"}))
    dead = f"dead-{namespace}"
    async with RegistryClient(registry) as reg:
        await eventually(lambda: reg.get_agent("echo", namespace=namespace), within=10, ignoring=(SutradharError,))
        await reg.register_instance(registry_pb2.Instance(
            id=dead, agent_id="echo", namespace=namespace, endpoint=f"127.0.0.1:{free_port()}",
            state=registry_pb2.INSTANCE_STATE_SERVING), ttl=timedelta(seconds=60))
    return agent, dead
