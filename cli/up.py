"""`sutradhar up` and `sutradhar down`: the whole mesh on one machine.

`up` starts a local etcd (data under the state directory) and the registry,
scheduler, health and router services on their default ports, prints the
endpoints, and runs until Ctrl-C or SIGTERM, when it stops everything it
started. `--demo` also starts the example echo agent and routes sample tasks.
`--detach` runs the same in the background; `down` stops it.

Everything `up` keeps (etcd's data, so the agents and deployments registered,
the logs, the scheduler's replica records) is in one state directory: by
default one of this checkout's own under ``~/.local/state/sutradhar/``
(`default_state_dir`), else ``--state-dir`` or ``$SUTRADHAR_STATE_DIR``. `up`
prints it; `down --purge` stops the mesh and deletes it, for a fresh start.
The first `up` also writes the registry's encryption config there
(``encryption-config.yaml``, 0600: one random AES-256 key that seals every
Secret at rest) and every `up` passes it to the registry; rotate it as
docs/secrets.md says.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from sutradhar._credentials import SERVICES, Context, locked
from sutradhar._errors import FailedPrecondition, InvalidArgument, SutradharError, Unavailable, error_for_code
from sutradhar._identity import DEFAULT_TRUST_DOMAIN, validate_trust_domain
from sutradhar.cli._launcher import (
    LOCK_FILE,
    REPO_ROOT,
    STATE_ENTRIES,
    STATE_FILE,
    Mesh,
    MeshPorts,
    child_env,
    default_state_dir,
    pid_alive,
    state_home,
    stop_process_group,
    stop_replicas,
    wait_for_listening,
)
from sutradhar.cli._output import print_table
from sutradhar.cli._pki import ADMIN_NAME
from sutradhar.services.common.procs import same_process

DEMO_REPLICAS = 2
DEMO_TASKS = 6


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="start the whole mesh on this machine (etcd + every service)")
    p.add_argument("--state-dir", type=Path, default=None,
                   help="where etcd's data (the agents and deployments), logs and replica records go "
                        f"(env SUTRADHAR_STATE_DIR; default: this checkout's own, {default_state_dir()})")
    p.add_argument("--host", type=_host, default="127.0.0.1",
                   help="IPv4 address every service binds (default %(default)s)")
    p.add_argument("--etcd", type=_endpoint, default=None,
                   help="use this external etcd (host:port) instead of starting one")
    p.add_argument("--etcd-port", type=_port, default=2379)
    p.add_argument("--registry-port", type=_port, default=50051)
    p.add_argument("--router-port", type=_port, default=50052)
    p.add_argument("--scheduler-port", type=_port, default=50053)
    p.add_argument("--health-port", type=_port, default=50054)
    for service, port in (("registry", 50061), ("router", 50062), ("scheduler", 50063), ("health", 50064)):
        p.add_argument(f"--{service}-token-port", type=_port, default=port,
                       help=f"the {service}'s token port: TLS without a client certificate, for callers holding "
                            "a bearer token (default %(default)s)")
    p.add_argument("--demo", action="store_true", help="also run the echo agent and route sample tasks")
    p.add_argument("--detach", action="store_true", help="run in the background; stop with `sutradhar down`")
    p.add_argument("--trust-domain", type=_trust_domain, default=DEFAULT_TRUST_DOMAIN,
                   help="SPIFFE trust domain of the mesh's identities (default %(default)s)")
    p.add_argument("--insecure", action="store_true",
                   help="development only: plaintext, no certificates, no authentication (loopback addresses only)")
    p.set_defaults(func=up)

    p = sub.add_parser("down", help="stop a mesh started with `sutradhar up --detach`")
    p.add_argument("--state-dir", type=Path, default=None,
                   help=f"the state directory `up` used (env SUTRADHAR_STATE_DIR; default {default_state_dir()})")
    p.add_argument("--purge", action="store_true",
                   help="then delete the state directory: etcd's data (every agent and deployment), logs, records")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait before killing")
    p.set_defaults(func=down)


def _port(text: str) -> int:
    """An argparse type: a TCP port, 1-65535."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return int(text)


def _host(text: str) -> str:
    """An argparse type: an IPv4 address or `localhost` (the services and etcd bind it)."""
    if text == "localhost":
        return text
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 address (e.g. 127.0.0.1)") from None
    if address.version != 4:
        raise argparse.ArgumentTypeError(f"{text!r}: IPv6 is not supported yet; use an IPv4 address such as 127.0.0.1")
    return text


def _trust_domain(text: str) -> str:
    """An argparse type: a SPIFFE trust domain."""
    try:
        validate_trust_domain(text)
    except InvalidArgument as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _endpoint(text: str) -> str:
    """An argparse type: host:port of an external etcd."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port (e.g. 127.0.0.1:2379)")
    return text


_CHILD_ERROR = re.compile(r"^error: (?P<message>.*) \((?P<code>[A-Z_]+)\)$")


def _failure_from_log(log_text: str, log_path: Path, exit_code: int) -> SutradharError:
    """The error a detached `up` that exited reported (its last "error: ... (CODE)"
    line), with its own status code; the raw log tail when there is none."""
    lines = log_text.splitlines()
    for line in reversed(lines):
        m = _CHILD_ERROR.match(line.strip())
        if m and m.group("code") in grpc.StatusCode.__members__:
            return error_for_code(grpc.StatusCode[m.group("code")], f"{m.group('message')} (log: {log_path})")
    tail = " | ".join(line.strip() for line in lines[-5:] if line.strip())
    return Unavailable(f"the mesh failed to start (exit code {exit_code}); {log_path} ends with: {tail}")


def _say(message: str) -> None:
    print(f"  {message}", flush=True)


def _mesh_from_args(args: argparse.Namespace, state_dir: Path) -> Mesh:
    ports = MeshPorts(etcd=args.etcd_port, registry=args.registry_port, router=args.router_port,
                      scheduler=args.scheduler_port, health=args.health_port,
                      registry_token=args.registry_token_port, router_token=args.router_token_port,
                      scheduler_token=args.scheduler_token_port, health_token=args.health_token_port)
    return Mesh(state_dir=state_dir, host=args.host, ports=ports, external_etcd=args.etcd, progress=_say,
                insecure=args.insecure, trust_domain=args.trust_domain)


def _write_context(mesh: Mesh) -> Path:
    """Make this mesh the current context of the credential file (the CLI's and the SDK's
    default), with the admin certificate `up` issued; returns the file."""
    endpoints = {name: child.address for name, child in mesh.children.items() if name in SERVICES}
    if mesh.pki is None:
        context = Context(mesh.state_dir.name, endpoints, trust_domain=mesh.trust_domain, insecure=True)
    else:
        admin = mesh.pki.ensure(ADMIN_NAME)
        # A token holder (`sutradhar login`, an agent with a bootstrap token) trades its token
        # for a certificate at the registry's token port.
        bootstrap = f"{mesh.host}:{mesh.token_ports['registry']}" if "registry" in mesh.token_ports else ""
        context = Context(mesh.state_dir.name, endpoints, trust_domain=mesh.trust_domain,
                          certificate_authority=admin.trust_bundle, client_certificate=admin.certificate,
                          client_key=admin.private_key, bootstrap=bootstrap)
    with locked() as credentials:
        credentials = credentials.with_context(context)
        credentials.save()
    return credentials.path


def _grpcurl_hint(mesh: Mesh) -> str:
    registry = mesh.address("registry")
    if mesh.pki is None:
        return f"grpcurl -plaintext {registry} list"
    admin = mesh.pki.files(ADMIN_NAME)
    return (f"grpcurl -cacert {admin.trust_bundle} -cert {admin.certificate} -key {admin.private_key} "
            f"{registry} list")


def _ours(pid: int, ticks: int) -> bool:
    """Whether `pid` is still the process the state file recorded: same start time,
    or, for a state file written before start times were recorded, a sutradhar or
    etcd command line. A reused pid is never signalled."""
    if ticks:
        return same_process(pid, ticks)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return pid_alive(pid) and (b"sutradhar" in cmdline or b"etcd" in cmdline)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
        int(state["supervisor_pid"])
    except (ValueError, KeyError, TypeError) as err:
        raise FailedPrecondition(
            f"{path} is not a state file sutradhar wrote ({type(err).__name__}: {err}); nothing was stopped. "
            "If no mesh runs from this state directory, delete the file"
        ) from None
    if not isinstance(state, dict):
        raise FailedPrecondition(f"{path} is not a state file sutradhar wrote; delete it if no mesh runs from there")
    return state


def _running_supervisor(state_dir: Path) -> int | None:
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        state = _read_state(path)
    except FailedPrecondition:
        return None
    pid = int(state["supervisor_pid"])
    return pid if _ours(pid, int(state.get("supervisor_ticks") or 0)) else None


def _lock_state_dir(state_dir: Path) -> int:
    """Hold an exclusive lock on the state directory for this process's life: two
    `up` on one directory would share etcd's data and the logs."""
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FailedPrecondition(
            f"another `sutradhar up` is using {state_dir}; stop it with `sutradhar down --state-dir {state_dir}` "
            "or choose another --state-dir"
        ) from None
    return fd


def _check_distinct_ports(args: argparse.Namespace) -> None:
    names = ["registry", "router", "scheduler", "health"] + ([] if args.etcd else ["etcd"])
    if not args.insecure:
        names += ["registry-token", "router-token", "scheduler-token", "health-token"]
    seen: dict[int, str] = {}
    for name in names:
        port = getattr(args, f"{name.replace('-', '_')}_port")
        if port in seen:
            raise InvalidArgument(f"--{seen[port]}-port and --{name}-port are both {port}; give each its own port")
        seen[port] = name


def up(args: argparse.Namespace) -> int:
    state_dir: Path = (args.state_dir or default_state_dir()).resolve()
    running = _running_supervisor(state_dir)
    if running:
        raise FailedPrecondition(
            f"a mesh is already running from {state_dir} (supervisor pid {running}); stop it with `sutradhar down`"
        )
    _check_distinct_ports(args)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FailedPrecondition(
            f"cannot use {state_dir} as the state directory ({err.strerror}); choose another with --state-dir"
        ) from err
    if args.detach:
        os.close(_lock_state_dir(state_dir))  # fail now if taken; the background supervisor takes it for good
        return _detach(args, state_dir)
    _lock_state_dir(state_dir)  # held until this process exits
    return _foreground(args, state_dir)


def _print_endpoints(mesh: Mesh) -> None:
    rows = [{"service": name, "address": child.address, "pid": child.pid, "log": child.log}
            for name, child in mesh.children.items() if name != "demo-agent"]
    print()
    print_table(rows, ["service", "address", "pid", "log"])
    print()


def _foreground(args: argparse.Namespace, state_dir: Path) -> int:
    stop_requested = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"Starting the Sutradhar mesh (state in {state_dir}; `sutradhar down --purge` resets it)", flush=True)
    mesh = _mesh_from_args(args, state_dir)
    demo_procs: list[subprocess.Popen[bytes]] = []
    try:
        mesh.start()
        credential_file = _write_context(mesh)
        _say(f"credentials: context {mesh.state_dir.name!r} is current in {credential_file} "
             "(the CLI and the SDK use it)")
        if args.demo:
            demo_procs = _start_demo_agents(mesh)
        extra = {"ready": True, "demo_pids": [p.pid for p in demo_procs]}
        mesh.write_state(supervisor_pid=os.getpid(), extra=extra)
        _print_endpoints(mesh)
        if args.demo:
            asyncio.run(_run_demo(mesh.address("router")))
        print(f"Mesh is up. Try: {_grpcurl_hint(mesh)}\n(Ctrl-C or `sutradhar down` stops it)", flush=True)
        while not stop_requested:
            time.sleep(0.2)
            if mesh.supervise():  # a service died and was restarted: `down` must find its new pid
                mesh.write_state(supervisor_pid=os.getpid(), extra=extra)
            mesh.renew_certificates()
        print("\nStopping the mesh...", flush=True)
        return 0
    finally:
        for proc in demo_procs:
            stop_process_group(proc)
        if demo_procs:
            _say("demo agents: stopped")
        mesh.stop()
        with contextlib.suppress(FileNotFoundError):
            (state_dir / STATE_FILE).unlink()
        print("Mesh stopped; nothing left running.", flush=True)


async def _define_demo_agent(registry: str) -> None:
    """Register the echo agent's definition as the admin: in a secured mesh a replica's own
    identity may register its instance but not define what code runs (an admin verb)."""
    from sutradhar._clients import RegistryClient
    from sutradhar._errors import AlreadyExists
    from sutradhar._registration import agent_definition

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from examples.echo_agent import EchoAgent

    definition = agent_definition(EchoAgent(), "default")
    async with RegistryClient(registry) as client:
        with contextlib.suppress(AlreadyExists):
            await client.register_agent(definition, timeout=10)


def _start_demo_agents(mesh: Mesh) -> list[subprocess.Popen[bytes]]:
    """Start the example echo agent replicas; they register themselves with the registry
    (their definition is the admin's: `_define_demo_agent`)."""
    procs = []
    env = child_env()
    if not (REPO_ROOT / "examples" / "echo_agent.py").exists():
        raise FailedPrecondition("the demo needs the examples/ folder of a source checkout; run it from the repository")
    if mesh.pki is not None:
        asyncio.run(_define_demo_agent(mesh.address("registry")))
    for i in range(1, DEMO_REPLICAS + 1):
        log_path = mesh.state_dir / "logs" / f"demo-echo-{i}.log"
        _say(f"demo: starting echo agent replica {i}")
        security = ["--insecure"] if mesh.pki is None else mesh.pki.agent_flags("default", "echo", f"echo-{i}")
        with open(log_path, "ab") as log:
            offset = log.tell()
            proc = subprocess.Popen(
                [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--host", mesh.host,
                 "--port", "0", "--registry", mesh.address("registry"), "--instance-id", f"echo-{i}", "--ttl", "5",
                 *security],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                cwd=REPO_ROOT,
            )
        procs.append(proc)
        try:
            address = wait_for_listening(proc, log_path, "listening on ", offset=offset, timeout=30)
        except SutradharError:
            for p in procs:
                stop_process_group(p)
            raise
        _say(f"demo: echo-{i} listening on {address}")
    return procs


async def _run_demo(router: str) -> None:
    from sutradhar._clients import RouterClient

    print(f"Routing sample tasks through the router at {router}:", flush=True)
    async with RouterClient(router) as client:
        # Wait until the router has seen the demo replicas.
        deadline = time.monotonic() + 20
        seen: set[str] = set()
        while len(seen) < DEMO_REPLICAS and time.monotonic() < deadline:
            try:
                warmup = await client.execute("echo", {"warmup": True}, task_type="echo", timeout=5)
                seen.add(warmup.metadata.instance_id)
            except SutradharError:
                await asyncio.sleep(0.2)
        if not seen:
            raise Unavailable("the router never saw the demo agent; see the logs under the state directory")
        rows = []
        for n in range(1, DEMO_TASKS + 1):
            payload = {"text": f"hello #{n} from sutradhar"}
            started = time.perf_counter()
            result = await client.execute("echo", payload, task_type="echo", task_id=f"demo-{n}", timeout=5)
            elapsed = (time.perf_counter() - started) * 1000
            data = result.data if result.success else (result.error.message if result.error else "")
            shown = data.get("echo", data) if isinstance(data, dict) else data
            rows.append({"task": f"demo-{n}", "instance": result.metadata.instance_id,
                         "ok": result.success, "ms": f"{elapsed:.2f}", "result": json.dumps(shown)[:70]})
    print_table(rows, ["task", "instance", "ok", "ms", "result"])
    print(flush=True)


def _detach(args: argparse.Namespace, state_dir: Path) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "sutradhar.cli.main", "up", "--state-dir", str(state_dir), "--host", args.host,
            "--etcd-port", str(args.etcd_port), "--registry-port", str(args.registry_port),
            "--router-port", str(args.router_port), "--scheduler-port", str(args.scheduler_port),
            "--health-port", str(args.health_port), "--trust-domain", args.trust_domain,
            "--registry-token-port", str(args.registry_token_port), "--router-token-port", str(args.router_token_port),
            "--scheduler-token-port", str(args.scheduler_token_port),
            "--health-token-port", str(args.health_token_port)]
    if args.insecure:
        argv.append("--insecure")
    if args.etcd:
        argv += ["--etcd", args.etcd]
    if args.demo:
        argv.append("--demo")
    log_path = state_dir / "up.log"
    with contextlib.suppress(FileNotFoundError):
        (state_dir / STATE_FILE).unlink()
    offset = log_path.stat().st_size if log_path.exists() else 0  # the log is appended to, run after run
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=Path.cwd())
    print(f"Starting the mesh in the background (pid {proc.pid}, state in {state_dir}, log {log_path})", flush=True)
    deadline = time.monotonic() + 90
    path = state_dir / STATE_FILE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, "rb") as log_file:
                log_file.seek(offset)
                this_run = log_file.read().decode(errors="replace")
            raise _failure_from_log(this_run, log_path, proc.returncode)
        if path.exists():
            with contextlib.suppress(ValueError, OSError):
                state = json.loads(path.read_text())
                if state.get("ready") and state.get("supervisor_pid") == proc.pid:
                    rows = [{"service": n, "address": c["address"], "pid": c["pid"]}
                            for n, c in state["children"].items()]
                    print_table(rows, ["service", "address", "pid"])
                    print("Stop it with `sutradhar down`.")
                    return 0
        time.sleep(0.1)
    stop_process_group(proc)
    raise Unavailable(f"the mesh did not come up within 90s; see {log_path}")


def _purge(state_dir: Path) -> None:
    """Delete a state directory `up` made (and no other directory), once no mesh uses it."""
    if not state_dir.exists():
        print(f"{state_dir} does not exist; nothing to purge")
        return
    if not state_dir.is_dir() or not any((state_dir / entry).exists() for entry in STATE_ENTRIES):
        raise FailedPrecondition(
            f"{state_dir} does not look like a state directory `sutradhar up` made (none of "
            f"{', '.join(STATE_ENTRIES)} in it); nothing was deleted"
        )
    os.close(_lock_state_dir(state_dir))  # FAILED_PRECONDITION while an `up` still holds it
    shutil.rmtree(state_dir)
    print(f"Deleted {state_dir}: the next `sutradhar up` starts with no agents, deployments or logs.")


def _legacy_mesh_hint(state_dir: Path) -> str:
    """Where a mesh runs from the state directory every checkout shared before
    state directories were per checkout (an `up` of an older version), if one does."""
    legacy = state_home()
    if os.environ.get("SUTRADHAR_STATE_DIR") or legacy == state_dir or not _running_supervisor(legacy):
        return ""
    return f" (one runs from {legacy}: stop it with `sutradhar down --state-dir {legacy}`)"


def down(args: argparse.Namespace) -> int:
    state_dir: Path = (args.state_dir or default_state_dir()).resolve()
    code = _down(args, state_dir)
    if args.purge:
        _purge(state_dir)
    return code


def _down(args: argparse.Namespace, state_dir: Path) -> int:
    path = state_dir / STATE_FILE
    if not path.exists():
        print(f"no mesh is running from {state_dir}" + ("" if args.state_dir else _legacy_mesh_hint(state_dir)))
        return 0
    state = _read_state(path)
    pid = int(state["supervisor_pid"])
    supervisor_ours = _ours(pid, int(state.get("supervisor_ticks") or 0))
    if supervisor_ours:
        print(f"Stopping the mesh (supervisor pid {pid})...", flush=True)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    else:
        print(f"The mesh's supervisor (pid {pid}) is gone; stopping what it left behind.", flush=True)
    leftovers = [(int(c["pid"]), int(c.get("ticks") or 0)) for c in state.get("children", {}).values()]
    leftovers += [(int(p), 0) for p in state.get("demo_pids", [])]
    if supervisor_ours and pid_alive(pid):  # the supervisor first: it would restart the children killed before it
        leftovers.insert(0, (pid, int(state.get("supervisor_ticks") or 0)))
    killed = 0
    for child, ticks in leftovers:
        if _ours(child, ticks):  # never a process that merely reuses a recorded pid
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGKILL)
                killed += 1
    if (state_dir / "scheduler").exists():
        stop_replicas(state_dir)  # a safety net when the supervisor could not clean up itself
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    print("Mesh stopped" + (f" ({killed} process group(s) had to be killed)" if killed else "") + ".")
    return 0
