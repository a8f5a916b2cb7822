"""Run the whole mesh on one machine as child processes: what `sutradhar up`
does, and what end-to-end tests use.

The launcher starts etcd (unless an external one is given), then registry,
scheduler, health and router, each as `python -m sutradhar.services.<name>`
in its own process group with its log under ``<state>/logs/``, and waits for
each to print its "listening on" line. `stop()` takes them down in reverse
order (SIGTERM, then SIGKILL after a grace period) and leaves no process
behind. Its data and logs go to a state directory, by default one of this
checkout's own (`default_state_dir`). While it runs, `supervise()` restarts a
child that died (crash, OOM kill, `kill -9`) on its old port, with
exponential back-off (1 s doubling to 30 s, jittered by `sutradhar._backoff`'s
default, reset once it stayed up for a minute), and says so. The state file
``<state>/mesh.json`` lets `sutradhar down` find a detached mesh.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sutradhar._backoff import Backoff
from sutradhar._errors import FailedPrecondition, Unavailable
from sutradhar._identity import DEFAULT_TRUST_DOMAIN
from sutradhar.services.common.procs import proc_start_ticks

if TYPE_CHECKING:  # the etcd helper and the CA live in the `mesh` extra; imported where used
    from sutradhar.cli._pki import MeshPki
    from sutradhar.services.common.etcd_server import LocalEtcd

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICE_ORDER = ("registry", "scheduler", "health", "router")
STATE_FILE = "mesh.json"
LOCK_FILE = "up.lock"  # flock()ed by the running `up`: one mesh per state directory

#: Restart back-off for a child that died: first delay, cap, and how long a
#: restarted child must stay up before its back-off starts over.
RESTART_INITIAL = 1.0
RESTART_MAX = 30.0
RESTART_STABLE_AFTER = 60.0
RESTART_BACKOFF = Backoff(initial=timedelta(seconds=RESTART_INITIAL), maximum=timedelta(seconds=RESTART_MAX))


@dataclass
class _Restart:
    """Back-off bookkeeping of one supervised child."""

    count: int = 0
    due: float | None = None  # monotonic time of the next attempt, while the child is down
    started: float = field(default_factory=time.monotonic)
    rand: Callable[[], float] = random.random  # the jitter's source (tests pin it)

    def delay(self) -> float:
        """Seconds before restart number `count`: RESTART_BACKOFF's, jittered."""
        return RESTART_BACKOFF.seconds(self.count, self.rand)


def state_home() -> Path:
    """Where every default state directory lives: ``$XDG_STATE_HOME/sutradhar``,
    else ``~/.local/state/sutradhar``. Before state directories were per
    checkout, this directory itself was the one every checkout shared."""
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "sutradhar"


def checkout_key(root: Path) -> str:
    """A directory name of this checkout's own: its folder name and a hash of its path."""
    resolved = root.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", resolved.name) or "root"
    return f"{name}-{digest}"


def default_state_dir(root: Path = REPO_ROOT) -> Path:
    """``$SUTRADHAR_STATE_DIR``, else ``<state_home()>/<checkout_key(root)>``: each
    checkout (or installation) keeps its own etcd data, logs and replicas, so
    one never sees the agents another registered."""
    env = os.environ.get("SUTRADHAR_STATE_DIR")
    if env:
        return Path(env)
    return state_home() / checkout_key(root)


#: The registry's encryption config in the state directory (0600): the key that seals Secrets.
ENCRYPTION_CONFIG = "encryption-config.yaml"
#: What a state directory holds (a directory holding none of these is not one,
#: and `down --purge` leaves it alone).
STATE_ENTRIES = ("etcd", "logs", "scheduler", "pki", STATE_FILE, LOCK_FILE, "up.log", ENCRYPTION_CONFIG)


@dataclass(frozen=True)
class MeshPorts:
    """Where each part listens; 0 picks a free port."""

    etcd: int = 2379
    registry: int = 50051
    router: int = 50052
    scheduler: int = 50053
    health: int = 50054
    # Token ports (TLS without a client certificate, a bearer token on every call) of a secured mesh.
    registry_token: int = 50061
    router_token: int = 50062
    scheduler_token: int = 50063
    health_token: int = 50064


@dataclass
class ChildProcess:
    """A started child: its name, pid, address and log file."""

    name: str
    pid: int
    address: str
    log: str
    ticks: int = 0  # start time (/proc clock ticks): `down` signals this pid only while it is this process


@dataclass
class Mesh:
    """The mesh on one machine. Build, `start()`, use the addresses, `stop()`."""

    state_dir: Path
    host: str = "127.0.0.1"
    ports: MeshPorts = field(default_factory=MeshPorts)
    external_etcd: str | None = None
    services: tuple[str, ...] = SERVICE_ORDER
    progress: Callable[[str], None] = lambda _msg: None
    insecure: bool = False
    """Development only: plaintext, no authentication (every service runs --insecure)."""
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    pki: MeshPki | None = None
    """The mesh CA and the certificates `start` issues (None when insecure)."""
    children: dict[str, ChildProcess] = field(default_factory=dict)
    token_ports: dict[str, int] = field(default_factory=dict)
    """Service -> the token port it listens on (a secured mesh), once started."""
    metrics_urls: dict[str, str] = field(default_factory=dict)
    """Service -> its Prometheus /metrics URL (a free port per start, printed as it starts)."""
    scrape_targets_url: str = ""
    """The registry's Prometheus HTTP service discovery URL of the agents' own /metrics (`up` prints it)."""
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _etcd: LocalEtcd | None = None
    _restarts: dict[str, _Restart] = field(default_factory=dict)

    @property
    def etcd_address(self) -> str:
        if self.external_etcd:
            return self.external_etcd
        return self.children["etcd"].address

    def address(self, name: str) -> str:
        return self.children[name].address

    # -- start ----------------------------------------------------------------

    def start(self) -> None:
        """Start etcd and every available service; on failure stop what started."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        self._check_ports()
        if not self.insecure and self.pki is None:
            self.progress(f"pki: certificate authority of trust domain {self.trust_domain} in {self.state_dir}/pki")
            from sutradhar.cli._pki import MeshPki

            self.pki = MeshPki(self.state_dir / "pki", self.trust_domain, hosts=(self.host, "localhost"))
        from sutradhar.services.common.encryption import ensure_config_file

        ensure_config_file(self.state_dir / ENCRYPTION_CONFIG)  # kept across restarts: the secrets need it
        try:
            if not self.external_etcd:
                self._start_etcd()
            for name in self.services:
                if importlib.util.find_spec(f"sutradhar.services.{name}.__main__") is None:
                    self.progress(f"{name}: not part of this build, skipped")
                    continue
                self._start_service(name)
        except BaseException:
            self.stop()
            raise

    def _check_ports(self) -> None:
        from sutradhar.services.common.etcd_server import port_is_open

        wanted = {name: getattr(self.ports, name) for name in ("registry", "router", "scheduler", "health")}
        if not self.insecure:
            wanted |= {f"{name}-token": getattr(self.ports, f"{name}_token") for name in SERVICE_ORDER}
        if not self.external_etcd:
            wanted["etcd"] = self.ports.etcd
        for name, port in wanted.items():
            if port and port_is_open(self.host, port):
                raise FailedPrecondition(
                    f"port {port} for {name} on {self.host} is already in use; if a mesh is running, stop it with "
                    f"`sutradhar down`, or choose another port with --{name}-port"
                )

    def _start_etcd(self) -> None:
        from sutradhar.services.common.etcd_server import LocalEtcd, free_port

        port = self.ports.etcd or free_port(self.host)
        self.progress(f"etcd: starting on {self.host}:{port} (data in {self.state_dir / 'etcd'})")
        tls = None
        if self.pki is not None:
            from sutradhar.services.common.etcd_server import EtcdTls, etcd_client_name

            tls = EtcdTls(self.pki.ensure("etcd"), etcd_client_name(self.trust_domain))
        etcd = LocalEtcd(self.state_dir / "etcd", host=self.host, client_port=port,
                         log_path=self.state_dir / "logs" / "etcd.log", tls=tls)
        etcd.start()
        self._etcd = etcd
        assert etcd.process is not None
        self.children["etcd"] = ChildProcess("etcd", etcd.process.pid, etcd.endpoint, str(etcd.log_path),
                                             proc_start_ticks(etcd.process.pid) or 0)

    def _service_args(self, name: str, port: int | None = None) -> list[str]:
        port = getattr(self.ports, name) if port is None else port
        args = [sys.executable, "-m", f"sutradhar.services.{name}", "--host", self.host, "--port", str(port),
                "--etcd", self.etcd_address]
        if name in ("router", "scheduler") and "registry" in self.children:
            args += ["--registry", self.children["registry"].address]
        if name == "scheduler":
            args += ["--state-dir", str(self.state_dir / "scheduler")]
        if name == "registry":  # seals Secrets at rest, secured mesh or not
            args += ["--encryption-config", str(self.state_dir / ENCRYPTION_CONFIG)]
        return args + self.security_args(name)

    def security_args(self, name: str) -> list[str]:
        """The flags that give service `name` its certificate, the token key and its token port
        (or --insecure)."""
        if self.pki is None:
            return ["--insecure"]
        args = [*self.pki.flags(name), "--token-public-key-file", str(self.pki.issuer_public_key)]
        if name in SERVICE_ORDER:
            args += ["--token-port", str(self.token_ports.get(name, getattr(self.ports, f"{name}_token")))]
        if name == "registry":  # mints tokens; signs certificates for token holders (IdentityService)
            args += ["--token-issuer-key-file", str(self.pki.issuer_key), "--ca-dir", str(self.pki.directory)]
        if name == "scheduler":
            args += ["--ca-dir", str(self.pki.directory)]
        return args

    def renew_certificates(self) -> None:
        """Renew the certificates past 70 % of their life; the services pick up the new files."""
        if self.pki is not None:
            for name in self.pki.renew_due():
                self.progress(f"{name}: certificate renewed")

    def _start_service(self, name: str, *, timeout: float = 30.0, port: int | None = None) -> None:
        log_path = self.state_dir / "logs" / f"{name}.log"
        self.progress(f"{name}: starting")
        env = child_env()
        with open(log_path, "ab") as log:
            offset = log.tell()
            proc = subprocess.Popen(self._service_args(name, port), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=env, cwd=REPO_ROOT)
        self._procs[name] = proc
        address = wait_for_listening(proc, log_path, f"{name} listening on ", offset=offset, timeout=timeout)
        self.children[name] = ChildProcess(name, proc.pid, address, str(log_path), proc_start_ticks(proc.pid) or 0)
        self.progress(f"{name}: listening on {address}")
        metrics = wait_for_listening(proc, log_path, f"{name} metrics on ", offset=offset, timeout=timeout)
        self.metrics_urls[name] = metrics
        self.progress(f"{name}: metrics on {metrics}")
        if name == "registry":
            targets = wait_for_listening(proc, log_path, "registry scrape targets on ", offset=offset, timeout=timeout)
            self.scrape_targets_url = targets
            self.progress(f"registry: Prometheus scrape targets (http_sd_configs) on {targets}")
        if self.pki is not None and name in SERVICE_ORDER:
            token = wait_for_listening(proc, log_path, f"{name} token port on ", offset=offset, timeout=timeout)
            self.token_ports[name] = int(token.rsplit(":", 1)[1])  # a restart keeps it

    # -- supervise ------------------------------------------------------------

    def _exit_code(self, name: str) -> int | None:
        """The exit code of child `name` if it has exited, else None."""
        proc = self._etcd.process if name == "etcd" and self._etcd is not None else self._procs.get(name)
        return None if proc is None else proc.poll()

    def supervise(self) -> bool:
        """One pass: notice children that died and restart those that are due.

        Returns True when a child was restarted (its pid changed: rewrite the
        state file). A restart that fails is retried after the next back-off.
        """
        now = time.monotonic()
        changed = False
        names = (["etcd"] if self._etcd is not None else []) + list(self._procs)
        for name in names:
            state = self._restarts.setdefault(name, _Restart())
            if state.due is None:
                code = self._exit_code(name)
                if code is None:
                    if state.count and now - state.started >= RESTART_STABLE_AFTER:
                        state.count = 0
                    continue
                state.count += 1
                delay = state.delay()
                state.due = now + delay
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                self.progress(f"{name}: {how}; restarting in {delay:.1f}s (restart {state.count}, "
                              f"log {self.children[name].log})")
                continue
            if now < state.due:
                continue
            try:
                self._restart(name)
            except Exception as err:  # reported, retried after the next back-off
                state.count += 1
                delay = state.delay()
                state.due = time.monotonic() + delay
                self.progress(f"{name}: restart failed: {err}; next try in {delay:.1f}s")
                continue
            state.due = None
            state.started = time.monotonic()
            changed = True
        return changed

    def _restart(self, name: str) -> None:
        port = int(self.children[name].address.rsplit(":", 1)[1])
        if name == "etcd" and self._etcd is not None:
            self._etcd.start()
            assert self._etcd.process is not None
            pid = self._etcd.process.pid
            self.children["etcd"] = ChildProcess("etcd", pid, self.children["etcd"].address,
                                                 self.children["etcd"].log, proc_start_ticks(pid) or 0)
            self.progress(f"etcd: restarted on {self.children['etcd'].address}")
            return
        try:
            self._start_service(name, port=port)  # replaces the dead one in place: stop order is kept
        except BaseException:
            stop_process_group(self._procs[name], grace=2.0)  # one that hangs must not hold the port
            raise

    # -- stop -----------------------------------------------------------------

    def stop(self, *, grace: float = 10.0) -> None:
        """Stop every child in reverse start order; nothing is left running."""
        for name in reversed(list(self._procs)):
            stop_process_group(self._procs[name], grace=grace)
            self.progress(f"{name}: stopped")
            if name == "scheduler":
                self.stop_managed_replicas()
        self._procs.clear()
        if self._etcd is not None:
            self._etcd.stop()
            self._etcd = None
            self.progress("etcd: stopped")

    def stop_managed_replicas(self, *, timeout: float = 60.0) -> None:
        """Stop every replica the scheduler ran (processes and containers).

        A scheduler leaves its replicas running when it exits, so that the
        next leader adopts them; when the whole mesh goes down they go too.
        """
        etcd = self.external_etcd or (self.children["etcd"].address if "etcd" in self.children else "")
        stop_replicas(self.state_dir, etcd=etcd, timeout=timeout, security=self.security_args("scheduler"))
        self.progress("scheduler replicas: stopped")

    # -- state file -----------------------------------------------------------

    def write_state(self, *, supervisor_pid: int, extra: dict[str, object] | None = None) -> Path:
        """Record the running mesh for `sutradhar down`."""
        path = self.state_dir / STATE_FILE
        data = {
            "supervisor_pid": supervisor_pid,
            "supervisor_ticks": proc_start_ticks(supervisor_pid) or 0,
            "started": time.time(),
            "children": {name: asdict(child) for name, child in self.children.items()},
            **(extra or {}),
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)
        return path


def child_env() -> dict[str, str]:
    """Environment for children: this interpreter's bin first on PATH (so a
    `python3` in an agent command is the one Sutradhar is installed in) and
    the source checkout importable (for `examples.*`)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH", "")]))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return env


def stop_replicas(state_dir: Path, *, etcd: str = "", timeout: float = 60.0, security: list[str] | None = None) -> None:
    """Run the scheduler's replica cleanup for a mesh whose state is in `state_dir`
    (`security`: the scheduler's certificate flags, or --insecure)."""
    args = [sys.executable, "-m", "sutradhar.services.scheduler", "--stop-replicas",
            "--state-dir", str(state_dir / "scheduler"), "--etcd", etcd]  # "" leaves containers alone
    if security is None:  # `down` without a running supervisor: the certificates `up` left, if any
        from sutradhar.cli._pki import MeshPki

        pki = MeshPki.existing(state_dir / "pki")
        security = ["--insecure"] if pki is None else pki.flags("scheduler")
    log_path = state_dir / "logs" / "scheduler-cleanup.log"
    args += security
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout,
                           cwd=REPO_ROOT, check=False)
        except subprocess.TimeoutExpired:
            log.write(b"replica cleanup did not finish in time\n")


def wait_for_listening(proc: subprocess.Popen[bytes], log_path: Path, marker: str, *, offset: int = 0,
                       timeout: float = 30.0) -> str:
    """Wait until `proc` writes `marker` + address to its log; return the address.
    The line may be text or a JSON log line (``--log-format json``), where a quote ends the address."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        for line in text.splitlines():
            if marker in line:
                return line.split(marker, 1)[1].split()[0].split('"')[0]
        if proc.poll() is not None:
            tail = "\n".join(text.splitlines()[-15:])
            raise Unavailable(f"{marker.split()[0]} exited with code {proc.returncode} while starting; "
                              f"its log ({log_path}) ends with:\n{tail}")
        time.sleep(0.05)
    stop_process_group(proc)
    raise Unavailable(f"{marker.split()[0]} did not report ready within {timeout:.0f}s; see {log_path}")


def stop_process_group(proc: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL it after `grace` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
