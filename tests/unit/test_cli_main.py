"""The CLI's error surface: one line, the status, a hint fitting the cause (the
mesh hint only when the client could not connect), malformed addresses named,
install hints for missing extras."""

from __future__ import annotations

import argparse

import grpc
import pytest

from sutradhar._errors import DeadlineExceeded, InvalidArgument, Unavailable, error_for_code
from sutradhar.cli import main as cli_main
from sutradhar.services.common.etcd_server import free_port

MESH_HINT = "sutradhar up"


def _run_with(func, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Run `sutradhar agents list` with its handler replaced by `func`."""
    real_build = cli_main.build_parser

    def build() -> argparse.ArgumentParser:
        parser = real_build()
        parser.set_defaults(func=func)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    sub.set_defaults(func=func)
                    for nested in sub._actions:
                        if isinstance(nested, argparse._SubParsersAction):
                            for leaf in nested.choices.values():
                                leaf.set_defaults(func=func)
        return parser

    monkeypatch.setattr(cli_main, "build_parser", build)
    code = cli_main.main(["agents", "list"])
    return code, capsys.readouterr().err


def test_domain_error_prints_one_line_with_the_code(capsys, monkeypatch) -> None:
    def fail(args: argparse.Namespace) -> int:
        raise InvalidArgument("agent.version: \"banana\" is not a semantic version", field="agent.version")

    code, err = _run_with(fail, capsys, monkeypatch)
    assert code == 1
    assert err.strip() == 'error: agent.version: "banana" is not a semantic version (INVALID_ARGUMENT)'


def test_unavailable_gets_a_hint(capsys, monkeypatch) -> None:
    def fail(args: argparse.Namespace) -> int:
        # gRPC's own wording when the client cannot connect (not a running service's UNAVAILABLE)
        raise Unavailable("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
                          "Failed to connect to remote host: Connection refused")

    code, err = _run_with(fail, capsys, monkeypatch)
    assert code == 1
    assert "UNAVAILABLE" in err and "sutradhar up" in err


def test_missing_mesh_extra_gives_an_install_hint(capsys, monkeypatch) -> None:
    def fail(args: argparse.Namespace) -> int:
        raise ModuleNotFoundError("No module named 'aetcd'", name="aetcd")

    code, err = _run_with(fail, capsys, monkeypatch)
    assert code == 1
    assert "pip install 'sutradhar[mesh]'" in err


def test_every_command_group_is_discovered() -> None:
    parser = cli_main.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"up", "down", "agents", "instances", "exec", "stats"} <= set(sub.choices)


def test_unexpected_cli_errors_print_one_line(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    def boom(args: object) -> int:
        raise ValueError("something odd")

    parser = cli_main.build_parser()
    args = parser.parse_args(["stats"])
    args.func = boom
    monkeypatch.setattr(cli_main, "build_parser", lambda: _Fixed(parser, args))
    assert cli_main.main(["stats"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected ValueError: something odd")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 2 and "SUTRADHAR_DEBUG" in err  # the error and a hint


class _Fixed:
    """A parser stand-in whose parse_args returns prepared args."""

    def __init__(self, parser: object, args: object) -> None:
        self.parser, self.args = parser, args

    def parse_args(self, argv: object) -> object:
        return self.args


@pytest.mark.parametrize("address", ["bad:address:x", "999.1.1.1:99999", "localhost", ":50051", "host:0", "::1:80"])
def test_cli_names_a_malformed_service_address(address: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: UNAVAILABLE "errors resolving ..." with the hint "is the mesh running?".
    assert cli_main.main(["--registry", address, "agents", "list"]) == 1
    err = capsys.readouterr().err
    assert "is not a host:port address" in err and "INVALID_ARGUMENT" in err
    assert "is the mesh running" not in err


@pytest.mark.parametrize("address", ["127.0.0.1:50051", "localhost:1", "[::1]:50051", "dns:///localhost:1", "unix:/x"])
def test_cli_accepts_well_formed_addresses(address: str) -> None:
    from sutradhar.cli._rpc import check_address

    check_address(address)



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
