"""Human tables and JSON output for CLI commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from google.protobuf import json_format
from google.protobuf.message import Message

from sutradhar._errors import OutOfRange


def add_output_flag(parser: Any) -> None:
    """Add `-o/--output {table,json}` to a command."""
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table", help="output format")


def message_to_dict(message: Message) -> dict[str, Any]:
    """A protobuf message as a JSON-ready dict (field names as in the proto)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def to_json(data: Any, *, indent: int | None = None) -> str:
    """`data` as strict JSON text (messages converted first). NaN and
    infinities, which JSON cannot carry, raise OutOfRange (one error line from
    the CLI) instead of printing the invalid tokens NaN/Infinity."""
    try:
        if isinstance(data, Message):
            data = message_to_dict(data)
        elif isinstance(data, list):
            data = [message_to_dict(d) if isinstance(d, Message) else d for d in data]
        return json.dumps(data, indent=indent, sort_keys=True, default=str, allow_nan=False)
    except ValueError as err:  # json.dumps and MessageToDict both refuse non-finite numbers
        raise OutOfRange(
            f"cannot print JSON: the output holds NaN or an infinite number, which JSON cannot represent ({err}); "
            "use -o table to see it"
        ) from err


def print_json(data: Any, *, out: TextIO | None = None) -> None:
    """Print data as indented JSON to `out` (sys.stdout as it is at the call); messages are converted first."""
    print(to_json(data, indent=2), file=out or sys.stdout)


def print_json_line(data: Any, *, out: TextIO | None = None) -> None:
    """Print data as one line of JSON (JSON Lines, for streams) to `out` (sys.stdout) and flush."""
    print(to_json(data), file=out or sys.stdout, flush=True)


def print_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], *, out: TextIO | None = None,
                empty: str = "nothing found") -> None:
    """Print rows as an aligned table with upper-case headers to `out` (sys.stdout as it is at the call)."""
    out = out or sys.stdout
    materialized = [[_cell(row.get(col, "")) for col in columns] for row in rows]
    if not materialized:
        print(empty, file=out)
        return
    widths = [max(len(col), *(len(r[i]) for r in materialized)) for i, col in enumerate(columns)]
    print("  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip(), file=out)
    for r in materialized:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip(), file=out)


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
