"""The CLI's JSON output is strict JSON: NaN and infinities are refused (one
OUT_OF_RANGE error line, nothing half-printed), keys sorted."""

from __future__ import annotations

import argparse
import math

import pytest
from google.protobuf import struct_pb2

from sutradhar._errors import OutOfRange
from sutradhar.cli import main as cli_main
from sutradhar.cli._output import print_json, print_json_line, to_json


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
