"""The CLI's error surface: one line, the status, a hint; install hints for missing extras."""

from __future__ import annotations

import argparse

import pytest

from sutradhar._errors import InvalidArgument, Unavailable
from sutradhar.cli import main as cli_main


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
