"""The process runtime: each replica is a child process group on this host.

A replica gets an assigned free port (``SUTRADHAR_PORT``, or the agent's
``port_env``, and ``{port}`` substituted in its command and args), its own
session and process group (so a signal reaches everything it spawned, and it
outlives a scheduler that dies), resource limits as rlimits (memory ->
RLIMIT_DATA, ``limits.cpu_seconds`` -> RLIMIT_CPU, ``limits.open_files`` ->
RLIMIT_NOFILE), and stdout/stderr appended to a log file that the scheduler
rotates by copy-and-truncate. Values from Secrets and ConfigMaps (resolved by the
scheduler) arrive in the environment, never on the command line, and files in a
private directory named by ``SUTRADHAR_FILES_DIR`` (`replica_files`). A replica with a
certificate also gets ``SUTRADHAR_ACCESS_REVIEW``, the scheduler's registry address, where it
asks whether a direct caller (a DirectClient's user) may execute it.

Everything needed to adopt a replica after a scheduler restart is on disk::

    <state-dir>/process/<namespace>/<replica-id>/record.json   pid, start ticks, port, labels
    <state-dir>/process/<namespace>/<replica-id>/output.log    (+ .1, .2 rotated)

A record is trusted only while ``/proc/<pid>/stat`` shows the same start time,
so a recycled pid is never mistaken for a replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sutradhar._errors import FailedPrecondition, InvalidArgument
from sutradhar.services.common.etcd_server import free_port, port_is_open
from sutradhar.services.common.procs import proc_start_ticks
from sutradhar.services.common.secret_refs import FILES_DIR_ENV
from sutradhar.services.common.validation import parse_memory
from sutradhar.services.scheduler.runtimes.base import (
    Replica,
    ReplicaPhase,
    ReplicaSpec,
    access_review_env,
    metrics_env,
    replica_from_record,
    security_env,
    spec_record,
)
from sutradhar.services.scheduler.runtimes.process_config import check_process_limit
from sutradhar.services.scheduler.spec import agent_config

#: A replica inherits the scheduler's environment (PATH, locale, ...) except
#: the scheduler's own SUTRADHAR_* settings (its registry, router, ports,
#: container scope): the runtime sets what a replica needs below, and users
#: add more through config.env and the deployment's env.
_SCRUBBED_PREFIX = "SUTRADHAR_"
LOG_NAME = "output.log"
RECORD_NAME = "record.json"


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _tail_lines(path: Path, count: int) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return []
    lines = data.decode(errors="replace").splitlines()
    return lines[-count:] if count > 0 else []


class ProcessRuntime:
    """Runs replicas as local child process groups (see module docstring)."""

    name = "process"

    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        log_max_bytes: int = 10 * 1024 * 1024,
        log_backups: int = 3,
    ) -> None:
        self.root = Path(state_dir) / "process"
        self.host = host
        self.log_max_bytes = log_max_bytes
        self.log_backups = log_backups
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- paths ----------------------------------------------------------------

    def _dir(self, namespace: str, replica_id: str) -> Path:
        return self.root / namespace / replica_id

    def log_path(self, replica: Replica) -> Path:
        """The replica's current log file."""
        return self._dir(replica.namespace, replica.replica_id) / LOG_NAME

    # -- start ----------------------------------------------------------------

    def _argv(self, config: dict[str, Any], port: int) -> list[str]:
        command = config.get("command")
        argv = shlex.split(command) if isinstance(command, str) else list(command or [])
        argv += list(config.get("args") or [])
        if not argv:
            raise InvalidArgument("agent.config.command: no command to run", field="agent.config.command")
        return [a.replace("{port}", str(port)) for a in argv]

    @staticmethod
    def _resolve(program: str, env: dict[str, str], workdir: str | None) -> str:
        if "/" in program:
            path = Path(workdir or ".") / program if not program.startswith("/") else Path(program)
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
            raise InvalidArgument(
                f"command {program!r} not found or not executable", field="agent.config.command"
            )
        found = shutil.which(program, path=env.get("PATH"))
        if found is None:
            raise InvalidArgument(f"command {program!r} not found on PATH", field="agent.config.command")
        return found

    @staticmethod
    def _limits(spec: ReplicaSpec, config: dict[str, Any]) -> list[str]:
        """The replica's resource limits as a ``prlimit ... --`` command prefix ([] for none).

        Limits are set by util-linux's `prlimit`, which sets them and execs the
        command in place (same pid), never by a Python ``preexec_fn``: that runs
        Python between fork and exec in this multi-threaded (gRPC, etcd client)
        process, which is unsafe and was measured to kill replicas with SIGSEGV
        before they ran a line.
        """
        memory_text = spec.agent.resources.memory
        memory = parse_memory(memory_text, field="resources.memory") if memory_text else None
        limits = config.get("limits") or {}
        hard_files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        cpu_seconds, open_files = (
            None if limits.get(key) is None else check_process_limit(
                key, limits[key], field=f"agent.config.limits.{key}",
                high=hard_files if key == "open_files" and hard_files > 0 else None)
            for key in ("cpu_seconds", "open_files")
        )

        options = []
        if memory is not None:
            # RLIMIT_DATA (Linux >= 4.7: the data segment and private writable mappings) bounds the memory a
            # replica writes to; RLIMIT_AS would count address space it only reserves: V8 (Node) reserves
            # gigabytes at start and died under any smaller limit, glibc 64 MiB per thread arena.
            options.append(f"--data={memory}")
        if cpu_seconds is not None:
            options.append(f"--cpu={cpu_seconds}:{cpu_seconds + 5}")
        if open_files is not None:
            options.append(f"--nofile={open_files}")
        if not options:
            return []
        prlimit = shutil.which("prlimit") or next(
            (p for p in ("/usr/bin/prlimit", "/bin/prlimit") if os.access(p, os.X_OK)), None)
        if prlimit is None:
            raise FailedPrecondition(
                "resource limits (resources.memory, config.limits) need util-linux's prlimit, which is not "
                "installed; apt-get install util-linux, or drop the limits"
            )
        return [prlimit, *options, "--"]

    async def start(self, spec: ReplicaSpec) -> Replica:
        """Spawn the replica; it is RUNNING once the process exists (readiness is the caller's)."""
        return self._spawn(spec)

    def _spawn(self, spec: ReplicaSpec) -> Replica:
        # synchronous on purpose: fork+exec takes a few milliseconds
        config = agent_config(spec.agent)
        fixed = config.get("port")
        if fixed is not None:
            port = int(fixed)
            if port_is_open(self.host, port):
                raise InvalidArgument(
                    f"port {port} is already in use on {self.host}; stop what listens there or drop config.port",
                    field="agent.config.port",
                )
        else:
            port = free_port(self.host)
        metrics_port = free_port(self.host) if spec.metrics else None
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIX)}
        if spec.agent.resources.memory:
            # Fewer glibc malloc arenas (each thread may get one): less memory written for nothing under
            # the RLIMIT_DATA limit.
            env.setdefault("MALLOC_ARENA_MAX", "2")
        config_env = config.get("env")
        if isinstance(config_env, dict):  # a list (with references) is resolved into spec.env by the scheduler
            env.update({str(k): str(v) for k, v in config_env.items()})
        env.update(spec.env)
        port_env = config.get("port_env") or "SUTRADHAR_PORT"
        env.update({
            port_env: str(port),
            "SUTRADHAR_PORT": str(port),
            "SUTRADHAR_HOST": self.host,
            "SUTRADHAR_INSTANCE_ID": spec.replica_id,
            "SUTRADHAR_NAMESPACE": spec.namespace,
            "SUTRADHAR_AGENT_ID": spec.agent.id,
            "SUTRADHAR_AGENT_VERSION": spec.agent.version,
            **security_env(spec),
            **access_review_env(spec),
            **(metrics_env(metrics_port) if metrics_port is not None else {}),
            **({FILES_DIR_ENV: str(spec.files_dir)} if spec.files_dir is not None else {}),
        })
        workdir = config.get("workdir") or None
        if workdir and not Path(workdir).is_dir():
            raise InvalidArgument(f"agent.config.workdir: {workdir!r} is not a directory", field="agent.config.workdir")
        argv = self._argv(config, port)
        argv[0] = self._resolve(argv[0], env, workdir)
        limits = self._limits(spec, config)

        directory = self._dir(spec.namespace, spec.replica_id)
        directory.mkdir(parents=True, exist_ok=True)
        log_path = directory / LOG_NAME
        with log_path.open("ab") as log:
            log.write(f"--- {datetime.now(UTC).isoformat()} starting: {shlex.join(argv)}\n".encode())
            log.flush()
            try:
                child = subprocess.Popen(
                    [*limits, *argv],
                    env=env,
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as err:
                raise InvalidArgument(
                    f"command {argv[0]!r} could not start: {err}", field="agent.config.command"
                ) from err
        self._children[child.pid] = child
        started = datetime.now(UTC)
        ticks = proc_start_ticks(child.pid) or 0
        record = spec_record(spec, endpoint=f"{self.host}:{port}", native_id=str(child.pid), started_at=started)
        record.update(pid=child.pid, start_ticks=ticks, port=port, argv=argv,
                      metrics_endpoint=f"{self.host}:{metrics_port}" if metrics_port is not None else "")
        tmp = directory / (RECORD_NAME + ".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(directory / RECORD_NAME)
        return self._from_record(record)

    # -- observe --------------------------------------------------------------

    def _from_record(self, record: dict[str, Any]) -> Replica:
        return replica_from_record(record, self.name)

    def _read_record(self, namespace: str, replica_id: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads((self._dir(namespace, replica_id) / RECORD_NAME).read_text()))
        except (OSError, ValueError):
            return None

    def _status(self, replica: Replica, record: dict[str, Any] | None) -> Replica:
        if record is None or str(record["pid"]) != replica.native_id:
            # the record was replaced by a newer start or removed by stop
            return replace(replica, phase=ReplicaPhase.EXITED, message="stopped")
        pid = int(record["pid"])
        child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is None:
                return replace(replica, phase=ReplicaPhase.RUNNING)
            message = self._exit_message(replica, code)
            return replace(replica, phase=ReplicaPhase.EXITED, exit_code=code, message=message)
        ticks = proc_start_ticks(pid)
        if ticks is not None and ticks == record["start_ticks"]:
            return replace(replica, phase=ReplicaPhase.RUNNING)
        return replace(replica, phase=ReplicaPhase.EXITED, message=self._exit_message(replica, None))

    def _exit_message(self, replica: Replica, code: int | None) -> str:
        if code is None:
            how = "exited"
        elif code < 0:
            how = f"was killed by {_signal_name(code)}"
        else:
            how = f"exited with code {code}"
        last = [line for line in _tail_lines(self.log_path(replica), 3) if not line.startswith("--- ")]
        return f"process {replica.native_id} {how}" + (f": {last[-1][:300]}" if last else "")

    async def inspect(self, replica: Replica) -> Replica:
        """RUNNING while the same process lives; EXITED (with code when it was our child) after."""
        return self._status(replica, self._read_record(replica.namespace, replica.replica_id))

    async def list(self, namespace: str | None = None) -> list[Replica]:
        """Every replica with a record on disk, with its current phase."""
        out: list[Replica] = []
        namespaces = [self.root / namespace] if namespace else sorted(self.root.glob("*"))
        for ns_dir in namespaces:
            for record_path in sorted(ns_dir.glob(f"*/{RECORD_NAME}")):
                try:
                    record = dict(json.loads(record_path.read_text()))
                except (OSError, ValueError):
                    continue
                replica = self._from_record(record)
                out.append(self._status(replica, record))
        return out

    # -- stop -----------------------------------------------------------------

    async def stop(self, replica: Replica, *, grace: timedelta = timedelta(seconds=10)) -> None:
        """SIGTERM to the process group, SIGKILL after `grace`, then forget the record."""
        record = self._read_record(replica.namespace, replica.replica_id)
        pid = int(replica.native_id) if replica.native_id.isdigit() else 0
        alive = pid and (record is None or int(record["pid"]) == pid) and self._alive(pid, record)
        if alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace.total_seconds()
            while self._alive(pid, record) and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a pid
                await asyncio.sleep(0.05)
            if self._alive(pid, record):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                for _ in range(100):
                    if not self._alive(pid, record):
                        break
                    await asyncio.sleep(0.02)
        if pid:
            # whatever else is left in the group (grandchildren) goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            child = self._children.pop(pid, None)
            if child is not None:
                with contextlib.suppress(Exception):
                    child.wait(timeout=1)
        if record is not None and (not pid or int(record["pid"]) == pid):
            with contextlib.suppress(OSError):
                (self._dir(replica.namespace, replica.replica_id) / RECORD_NAME).unlink()

    def _alive(self, pid: int, record: dict[str, Any] | None) -> bool:
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        ticks = proc_start_ticks(pid)
        return ticks is not None and (record is None or ticks == record["start_ticks"])

    # -- logs -----------------------------------------------------------------

    def rotate_logs(self) -> int:
        """Copy-and-truncate every log above the size limit; return how many rotated."""
        rotated = 0
        for log in self.root.glob(f"*/*/{LOG_NAME}"):
            try:
                if log.stat().st_size <= self.log_max_bytes:
                    continue
                for i in range(self.log_backups - 1, 0, -1):
                    older = log.with_name(f"{LOG_NAME}.{i}")
                    if older.exists():
                        older.replace(log.with_name(f"{LOG_NAME}.{i + 1}"))
                shutil.copyfile(log, log.with_name(f"{LOG_NAME}.1"))
                os.truncate(log, 0)
                rotated += 1
            except OSError:
                continue
        return rotated

    async def logs(self, replica: Replica, *, tail: int = 100, follow: bool = False) -> AsyncIterator[str]:
        """The last `tail` lines of the replica's log, then new lines while `follow`."""
        path = self.log_path(replica)
        for line in _tail_lines(path, tail):
            yield line
        if not follow:
            return
        position = path.stat().st_size if path.exists() else 0
        buffer = b""
        while True:
            await asyncio.sleep(0.2)
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size < position:  # truncated by rotation
                position = 0
            if size == position:
                continue
            with path.open("rb") as f:
                f.seek(position)
                data = f.read()
            position += len(data)
            buffer += data
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                yield raw.decode(errors="replace")

    async def close(self) -> None:
        """Forget child handles; the processes keep running (a successor adopts them)."""
        self._children.clear()
