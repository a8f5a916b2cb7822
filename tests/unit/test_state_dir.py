"""Where `sutradhar up` keeps its state, and `sutradhar down --purge`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sutradhar.cli import main as cli_main
from sutradhar.cli._launcher import REPO_ROOT, checkout_key, default_state_dir, state_home
from sutradhar.cli.up import _lock_state_dir
from sutradhar.services.common.procs import proc_start_ticks


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SUTRADHAR_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg"


def test_each_checkout_has_its_own_default_state_directory(xdg: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one" / "sutradhar", tmp_path / "two" / "sutradhar"
    assert default_state_dir(one) != default_state_dir(two)
    assert default_state_dir(one) == default_state_dir(one)  # stable from run to run
    for root in (one, two):
        assert default_state_dir(root).parent == xdg / "sutradhar" == state_home()
        assert default_state_dir(root).name.startswith("sutradhar-")
    # This checkout's default is its own, not the directory every checkout used to share.
    assert default_state_dir() == state_home() / checkout_key(REPO_ROOT) != state_home()


def test_the_environment_variable_still_chooses_the_state_directory(
    xdg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUTRADHAR_STATE_DIR", str(tmp_path / "mine"))
    assert default_state_dir() == tmp_path / "mine"


def test_up_and_down_help_say_where_state_lives(xdg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("up", "down"):
        with pytest.raises(SystemExit):
            cli_main.main([command, "--help"])
        out = "".join(capsys.readouterr().out.split())  # argparse wraps long paths: compare without spaces
        assert "SUTRADHAR_STATE_DIR" in out and str(default_state_dir()) in out


def _state_dir(path: Path) -> Path:
    (path / "logs").mkdir(parents=True)
    (path / "logs" / "registry.log").write_text("registry listening on 127.0.0.1:1\n")
    (path / "etcd" / "member").mkdir(parents=True)
    return path


def test_down_purge_deletes_the_state_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = _state_dir(tmp_path / "state")
    assert cli_main.main(["down", "--state-dir", str(state), "--purge"]) == 0
    out = capsys.readouterr().out
    assert not state.exists()
    assert f"no mesh is running from {state}" in out and f"Deleted {state}" in out
    assert cli_main.main(["down", "--state-dir", str(state), "--purge"]) == 0
    assert "nothing to purge" in capsys.readouterr().out


def test_down_purge_refuses_a_directory_up_did_not_make(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert cli_main.main(["down", "--state-dir", str(tmp_path), "--purge"]) == 1
    err = capsys.readouterr().err
    assert "does not look like a state directory" in err and "FAILED_PRECONDITION" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_down_purge_refuses_while_an_up_holds_the_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _state_dir(tmp_path / "state")
    held = _lock_state_dir(state)  # what a running `up` holds for its life
    try:
        assert cli_main.main(["down", "--state-dir", str(state), "--purge"]) == 1
        assert "another `sutradhar up` is using" in capsys.readouterr().err
        assert (state / "logs" / "registry.log").exists()
    finally:
        os.close(held)


def test_down_points_at_a_mesh_still_running_from_the_old_shared_directory(
    xdg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy = state_home()  # where every checkout's `up` kept its state before
    legacy.mkdir(parents=True)
    (legacy / "mesh.json").write_text(json.dumps({  # "running": this very process stands in for its supervisor
        "supervisor_pid": os.getpid(), "supervisor_ticks": proc_start_ticks(os.getpid()), "children": {},
    }))
    assert cli_main.main(["down"]) == 0
    out = capsys.readouterr().out
    assert f"no mesh is running from {default_state_dir()}" in out
    assert f"one runs from {legacy}: stop it with `sutradhar down --state-dir {legacy}`" in out
    assert (legacy / "mesh.json").exists()  # nothing of it was touched
