"""`sutradhar exec`'s payload and deadline, without a mesh: payload numbers a
double cannot carry are INVALID_ARGUMENT before anything is dialled, payloads
from a file or stdin, and the task deadline with the gRPC call's margin."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from sutradhar._clients import RouterClient, make_task
from sutradhar._errors import SutradharError
from sutradhar.cli import exec_
from sutradhar.cli import main as cli_main
from sutradhar.services.common.etcd_server import free_port

# -- payload numbers ----------------------------------------------------------


@pytest.mark.parametrize("payload", ["1e999", "-1e999", '{"a": [1, 1e309]}', "1" + "0" * 400, "NaN", "Infinity"])
def test_payload_numbers_a_double_cannot_carry_are_invalid_argument(
    payload: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Parsed before any connection: the router address is never dialled.
    code = cli_main.main(["--router", f"127.0.0.1:{free_port()}", "exec", "echo", f"--payload={payload}",
                          "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("error: --payload: not valid JSON") and err.rstrip().endswith("(INVALID_ARGUMENT)")
    assert len(err.strip().splitlines()) == 1
    assert "Infinity" not in out


def test_payload_keeps_finite_numbers() -> None:
    assert exec_.parse_payload('{"big": 1e308, "small": 1e-999, "n": -3, "i": 12345678901234567890}') == {
        "big": 1e308, "small": 0.0, "n": -3, "i": 12345678901234567890,
    }


# -- payload files ---------------------------------------------------------


def test_payload_from_a_file_and_from_stdin(tmp_path: Path) -> None:
    big = {"text": "x" * 300_000, "n": 1}  # over the ~128 KiB one argv string may hold
    path = tmp_path / "task.json"
    path.write_text(json.dumps(big), encoding="utf-8")
    assert exec_.parse_payload(exec_.read_payload(f"@{path}")) == big
    assert exec_.parse_payload(exec_.read_payload("-", io.StringIO('{"from": "stdin"}'))) == {"from": "stdin"}
    assert exec_.read_payload('{"inline": true}') == '{"inline": true}'


def test_a_missing_payload_file_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    code = cli_main.main(["--router", f"127.0.0.1:{free_port()}", "exec", "echo", "--payload", f"@{missing}"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == f"error: --payload: file {str(missing)!r} does not exist (INVALID_ARGUMENT)"


@pytest.mark.parametrize(("spec", "expected"), [("@", "@ needs a file name"), ("@{dir}", "is a directory")])
def test_other_payload_file_errors_are_invalid_argument(spec: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(SutradharError) as err:
        exec_.read_payload(spec.format(dir=tmp_path))
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT and expected in err.value.message


def test_a_payload_file_with_bad_json_names_payload(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{oops", encoding="utf-8")
    with pytest.raises(SutradharError, match="--payload: not valid JSON"):
        exec_.parse_payload(exec_.read_payload(f"@{path}"))


def test_exec_help_documents_the_file_forms(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main.main(["exec", "--help"])
    out = capsys.readouterr().out
    assert "@FILE" in out and "stdin" in out


# -- the task deadline is --timeout; the gRPC deadline has a margin ----------


def test_the_task_carries_its_own_deadline() -> None:
    args = cli_main.build_parser().parse_args(["exec", "echo", "--timeout", "2s"])
    # `exec` hands these options to the SDK's RouterClient, which builds the task and the route from them.
    before = datetime.now(UTC)
    opts = exec_.route_options(args, 2.0)
    task = make_task(None, task_type=opts["task_type"], task_id=None, context=None, timeout=opts["timeout"])
    after = datetime.now(UTC)
    deadline = task.context.deadline
    assert deadline is not None
    assert before + timedelta(seconds=2) <= deadline <= after + timedelta(seconds=2)
    options = RouterClient._options(opts["strategy"], opts["max_attempts"], opts["timeout"])
    assert options.timeout.seconds == 2
    assert exec_.DEADLINE_MARGIN >= 0.5


@pytest.mark.parametrize("payload", ["NaN", '{"x": Infinity}', "[-Infinity]"])
def test_exec_refuses_non_json_numbers(payload: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main.main(["--router", "127.0.0.1:1", "exec", "echo", "--task", "t", "--payload", payload])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: --payload:") and "INVALID_ARGUMENT" in err
    assert "Traceback" not in err
