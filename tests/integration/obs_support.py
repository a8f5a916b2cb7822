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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
