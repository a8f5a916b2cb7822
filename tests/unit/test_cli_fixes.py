"""CLI fixes from the QA pass, without a mesh: hints only when the client could
not connect, strict JSON output, payload numbers and payload files, the exec
deadline margin, JSON Lines for `health --watch`."""

from __future__ import annotations

import argparse
import io
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from sutradhar._clients import RouterClient, make_task
from sutradhar._errors import DeadlineExceeded, OutOfRange, SutradharError, Unavailable, error_for_code
from sutradhar.cli import exec_
from sutradhar.cli import main as cli_main
from sutradhar.cli._output import print_json, print_json_line, to_json
from sutradhar.services.common.etcd_server import free_port

MESH_HINT = "sutradhar up"


# -- 1. hints -----------------------------------------------------------------


def test_a_refused_connection_gets_the_mesh_hint(capsys: pytest.CaptureFixture[str]) -> None:
    # A real gRPC call to a closed port: the details are gRPC's own.
    code = cli_main.main(["--registry", f"127.0.0.1:{free_port()}", "agents", "list"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: failed to connect to all addresses")
    assert "(UNAVAILABLE)" in err and MESH_HINT in err


@pytest.mark.parametrize("message", [
    "agent type 'echo' in namespace 'demo' has no live instance (agents 'echo'); start one "
    "(e.g. `sutradhar deploy` or `python -m sutradhar.serve ...`)",
    "none of the 2 instance(s) of agent type 'echo' in namespace 'demo' is SERVING (1 DRAINING, 1 NOT_SERVING); "
    "wait for them to pass their readiness probes",
    "the router has not loaded the registry's state yet (registry at 127.0.0.1:50051); "
    "is the registry running? the router keeps retrying",
    # the router relaying an instance it could not reach: the mesh itself runs
    "instance echo-1 (127.0.0.1:7001): UNAVAILABLE: failed to connect to all addresses; last error: "
    "UNKNOWN: ipv4:127.0.0.1:7001: Failed to connect to remote host: Connection refused (after 3 attempts)",
])
def test_a_running_router_answering_unavailable_gets_no_mesh_hint(message: str) -> None:
    text = cli_main._explain(Unavailable(message))
    assert text == f"error: {message} (UNAVAILABLE)"


def test_an_unresolvable_host_names_the_address_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main.main(["--router", "no-such-host.invalid:50052", "exec", "echo", "--timeout", "5s"])
    err = capsys.readouterr().err
    assert code == 1 and "(UNAVAILABLE)" in err
    assert "hint: the host name does not resolve" in err and "--router (env SUTRADHAR_ROUTER)" in err
    assert MESH_HINT not in err


def test_deadline_exceeded_keeps_a_hint_fitting_the_command() -> None:
    parser = cli_main.build_parser()
    exec_args = parser.parse_args(["exec", "echo"])
    list_args = parser.parse_args(["agents", "list"])
    assert "raise --timeout" in cli_main._explain(DeadlineExceeded("Deadline Exceeded"), exec_args)
    other = cli_main._explain(DeadlineExceeded("Deadline Exceeded"), list_args)
    assert "hint: " in other and "--timeout" not in other


def test_method_not_found_hints_at_another_service_naming_the_flag() -> None:
    parser = cli_main.build_parser()
    args = parser.parse_args(["--router", "127.0.0.1:50051", "exec", "echo"])
    text = cli_main._explain(error_for_code(grpc.StatusCode.UNIMPLEMENTED, "Method not found!"), args)
    assert text.startswith("error: Method not found! (UNIMPLEMENTED)\nhint: ")
    assert "another Sutradhar service" in text
    assert "--router (env SUTRADHAR_ROUTER)" in text and "127.0.0.1:50051, the registry's default port" in text
    # another UNIMPLEMENTED (an agent without streaming, say) is not about addresses
    plain = cli_main._explain(error_for_code(grpc.StatusCode.UNIMPLEMENTED, "echo does not stream"), args)
    assert "hint" not in plain


# -- 2. strict JSON -----------------------------------------------------------


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


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {"x": [1, math.inf]},
                                 struct_pb2.Value(number_value=math.nan)])
def test_json_output_refuses_nan_and_infinity(bad: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(OutOfRange, match="NaN or an infinite number"):
        print_json(bad)
    with pytest.raises(OutOfRange):
        print_json_line(bad)
    assert capsys.readouterr().out == ""


def test_nan_in_output_becomes_one_error_line(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def emits_nan(args: object) -> int:
        print_json({"score": math.nan})
        return 0

    real_build = cli_main.build_parser

    def build() -> argparse.ArgumentParser:
        parser = real_build()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices["stats"].set_defaults(func=emits_nan)
        return parser

    monkeypatch.setattr(cli_main, "build_parser", build)
    code = cli_main.main(["stats", "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("error: cannot print JSON") and "(OUT_OF_RANGE)" in err
    assert "bug" not in err


def test_to_json_is_strict_and_sorted() -> None:
    assert to_json({"b": 1, "a": [True, None]}) == '{"a": [true, null], "b": 1}'


# -- 4. payload files ---------------------------------------------------------


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


# -- 5. the task deadline is --timeout; the gRPC deadline has a margin ----------


def test_the_task_carries_its_own_deadline() -> None:
    # `exec` hands these options to the SDK's RouterClient, which builds the task and the route from them.
    args = cli_main.build_parser().parse_args(["exec", "echo", "--timeout", "2s"])
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
