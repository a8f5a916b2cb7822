"""The README's "Using the mesh" and "With grpcurl" commands, run as written by
a newcomer from a fresh state directory: every one succeeds (the grpcurl
`Execute` reaches the agent the README's own deploy created), `up` says where
its state is, and `down --purge` leaves neither processes nor state behind.

Only the ports (free ones instead of the defaults, which other checkouts may
hold) and the placeholder INSTANCE are filled in; the state directory comes
from SUTRADHAR_STATE_DIR, as the README documents.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from sutradhar.cli._launcher import REPO_ROOT, pid_alive
from sutradhar.services.common.etcd_server import free_port

BIN = Path(sys.executable).parent
DEFAULT_PORTS = {"etcd": 2379, "registry": 50051, "router": 50052, "scheduler": 50053, "health": 50054,
                 "registry-token": 50061, "router-token": 50062, "scheduler-token": 50063, "health-token": 50064}
SERVICES = ("registry", "router", "scheduler", "health")


def _block_after(text: str, heading: str) -> list[str]:
    """The commands of the first ```sh block after `heading`, continuation lines joined."""
    rest = text[text.index(heading):]
    body = re.search(r"```sh\n(.*?)```", rest, re.S)
    assert body, f"no sh block after {heading!r}"
    commands: list[str] = []
    pending = ""
    for line in body.group(1).splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if command:
            commands.append(command)
    return commands


def _without_comment(command: str) -> str:
    return shlex.join(shlex.split(command, comments=True))


def test_the_readme_commands_work_as_written(tmp_path: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    using = _block_after(readme, "## Using the mesh")
    grpcurl_lines = _block_after(readme, "### With grpcurl")
    ports = {name: free_port() for name in DEFAULT_PORTS}
    state = tmp_path / "state"
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(REPO_ROOT / "examples")
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "SUTRADHAR_STATE_DIR": str(state),
        "SUTRADHAR_CREDENTIALS": str(tmp_path / "credentials.yaml"),  # its own, not the other tests'
        **{f"SUTRADHAR_{name.upper()}": f"127.0.0.1:{ports[name]}" for name in SERVICES},
    }

    def run(command: str) -> subprocess.CompletedProcess[str]:
        for name, default in DEFAULT_PORTS.items():
            command = command.replace(f"127.0.0.1:{default}", f"127.0.0.1:{ports[name]}")
        proc = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True,
                              timeout=240)
        assert proc.returncode == 0, f"{command!r} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        return proc

    outputs: list[tuple[str, str]] = []
    undeploy = next(i for i, c in enumerate(using) if c.startswith("sutradhar undeploy"))
    try:
        for command in [*using[:undeploy], *grpcurl_lines, *using[undeploy:]]:
            if command.startswith(". "):
                continue  # the README's `. .venv/bin/activate`: PATH above does the same
            command = _without_comment(command) if command.startswith("sutradhar") else command
            if command == "sutradhar up --detach":
                command += " " + " ".join(f"--{name}-port={port}" for name, port in ports.items())
            if "INSTANCE" in command:
                listed = json.loads(run("sutradhar instances list -o json").stdout)
                command = command.replace("INSTANCE", listed[0]["id"])
            outputs.append((command, run(command).stdout))
    finally:
        subprocess.run([str(BIN / "sutradhar"), "down", "--purge"], env=env, capture_output=True, timeout=120)

    def output(prefix: str) -> str:
        return next(out for command, out in outputs if command.startswith(prefix))

    up = output("sutradhar up --detach")
    assert f"state in {state}" in up
    execute = output("grpcurl $(sutradhar context --grpcurl) -d '{\"selector\"")
    assert '"success": true' in execute and '"text": "hi"' in execute
    assert "round trip" in output("sutradhar exec echo-deployed") and "agent time" in output("sutradhar exec")
    assert re.search(r"^NAMESPACE\s+AGENT\s+INSTANCE\s+STATE\s", output("sutradhar health --instances"), re.M)
    assert re.search(r"^NAMESPACE\s+AGENT\s+STATUS", output("sutradhar health"), re.M)
    assert not state.exists(), "down --purge left the state directory"
    supervisor = int(re.findall(r"in the background \(pid (\d+)", up)[0])
    assert not pid_alive(supervisor)
