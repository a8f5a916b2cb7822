"""Helpers for testing agents: serve one in-process on a free port without a
registry (`run_agent`), or run one as a child process (`spawn_agent`).

::

    async def test_greeter() -> None:
        async with run_agent(Greeter()) as address, AgentClient(address) as client:
            result = await client.execute({"name": "Ada"})
            assert result.data == {"greeting": "hello Ada"}
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

from sutradhar._agent import Agent
from sutradhar._identity import DEFAULT_TRUST_DOMAIN
from sutradhar._serve import AgentServer
from sutradhar._tls import TlsFiles

__all__ = ["AgentProcess", "run_agent", "spawn_agent"]


@asynccontextmanager
async def run_agent(
    agent: Agent,
    *,
    grace: timedelta = timedelta(seconds=1),
    health_period: timedelta = timedelta(seconds=1),
    tls: TlsFiles | None = None,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
) -> AsyncIterator[str]:
    """Serve `agent` on 127.0.0.1 on a free port; yields "127.0.0.1:PORT".
    The server drains and stops when the block exits. Without `tls` it serves
    insecure (plaintext, loopback, as a test runs without certificates); with
    `tls` (certificate, key, trust bundle) it serves mutual TLS like a replica."""
    server = AgentServer(
        agent, host="127.0.0.1", port=0, grace=grace, health_period=health_period,
        insecure=tls is None, trust_domain=trust_domain,
        tls_cert_file=tls.certificate if tls else None, tls_key_file=tls.private_key if tls else None,
        tls_ca_file=tls.trust_bundle if tls else None,
    )
    await server.start()
    try:
        yield server.address
    finally:
        await server.stop()


class AgentProcess:
    """An agent running as a child process (see `spawn_agent`).

    `address` is where it listens; `output` collects its stderr lines.
    Use it as a context manager: the process is killed on exit if still alive.
    """

    def __init__(self, proc: subprocess.Popen[str], address: str, output: list[str]) -> None:
        self.proc = proc
        self.address = address
        self.output = output
        self.pid = proc.pid

    def signal(self, sig: int) -> None:
        """Send `sig` to the process."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: timedelta = timedelta(seconds=15)) -> int:
        """Wait for the process to exit; returns its exit code."""
        return self.proc.wait(timeout.total_seconds())

    def stop(self, timeout: timedelta = timedelta(seconds=15)) -> int:
        """SIGTERM, wait (SIGKILL after `timeout`); returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def spawn_agent(
    command: Sequence[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    ready_pattern: str = r'listening on ([^\s"]+)',
    startup_timeout: timedelta = timedelta(seconds=15),
) -> AgentProcess:
    """Start `command` (e.g. ``[sys.executable, "-m", "sutradhar.serve",
    "pkg.mod:MyAgent"]``) and wait for its ``... listening on HOST:PORT`` line
    on stderr (in text, or inside a JSON log line under ``--log-format json``).
    Raises RuntimeError (with its output) when it exits or stays
    silent past `startup_timeout`."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        list(command), cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    output: list[str] = []
    ready: queue.Queue[str] = queue.Queue()
    pattern = re.compile(ready_pattern)

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            output.append(line.rstrip("\n"))
            match = pattern.search(line)
            if match:
                ready.put(match.group(1))
        ready.put("")

    threading.Thread(target=drain, daemon=True).start()
    try:
        address = ready.get(timeout=startup_timeout.total_seconds())
    except queue.Empty:
        address = ""
    if not address:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{' '.join(command)} did not start serving:\n" + "\n".join(output))
    return AgentProcess(proc, address, output)
