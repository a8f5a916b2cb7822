"""`sutradhar up` refusing what it cannot use: impossible ports, an unusable
state directory, and a detached child's error reported with its own code."""

from __future__ import annotations

import pytest

from sutradhar._errors import FailedPrecondition
from sutradhar.cli import main as cli_main


def test_detached_up_reports_the_childs_error_with_its_code(tmp_path) -> None:
    # Before: "the mesh failed to start (exit code 1); ... ends with:" and three
    # raw log lines, the child's code nested inside "(FAILED_PRECONDITION) (UNAVAILABLE)"
    # and the hint "is the mesh running? start it with `sutradhar up`".
    from sutradhar._errors import Unavailable
    from sutradhar.cli.up import _failure_from_log

    log = (
        "Starting the Sutradhar mesh (state in /s)\n"
        "Mesh stopped; nothing left running.\n"
        "error: port 50051 for registry on 127.0.0.1 is already in use; choose another port (FAILED_PRECONDITION)\n"
    )
    err = _failure_from_log(log, tmp_path / "up.log", 1)
    assert isinstance(err, FailedPrecondition)
    assert err.message.startswith("port 50051 for registry") and "\n" not in err.message
    plain = _failure_from_log("Traceback (most recent call last):\nboom\n", tmp_path / "up.log", 2)
    assert isinstance(plain, Unavailable) and "exit code 2" in plain.message and "\n" not in plain.message


@pytest.mark.parametrize("flags", [["--etcd-port", "99999"], ["--router-port", "0"], ["--health-port", "x"]])
def test_up_refuses_impossible_ports(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli_main.main(["up", "--detach", *flags])
    assert info.value.code == 2
    assert "is not a TCP port" in capsys.readouterr().err


def test_up_names_an_unusable_state_dir(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli_main.main(["up", "--detach", "--state-dir", str(blocker / "state")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot use {blocker / 'state'} as the state directory")
    assert "FAILED_PRECONDITION" in err and "unexpected" not in err
