"""`sutradhar exec TYPE`: route one task through the router and print its result."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from google.protobuf import json_format

from sutradhar._agent import Progress, Result
from sutradhar._clients import ROUTER_DEADLINE_MARGIN, RouterClient
from sutradhar._convert import event_to_proto, result_to_proto
from sutradhar._errors import InvalidArgument
from sutradhar._strategy_names import STRATEGIES
from sutradhar.cli._output import add_output_flag, print_json, print_json_line, print_table
from sutradhar.cli._rpc import connect

#: The client's gRPC deadline is the task's deadline plus the SDK's margin (see ROUTER_DEADLINE_MARGIN).
DEADLINE_MARGIN = ROUTER_DEADLINE_MARGIN.total_seconds()

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$")


def parse_timeout(text: str) -> float:
    """Seconds from "5", "2.5s", "500ms" or "1m"; InvalidArgument naming --timeout otherwise."""
    match = _DURATION.match(text or "")
    if not match:
        raise InvalidArgument(f"--timeout: {text!r} is not a duration (e.g. 5s, 500ms, 1m)", field="timeout")
    value = float(match.group(1))
    unit = match.group(2) or "s"
    seconds = value / 1000 if unit == "ms" else value * 60 if unit == "m" else value
    if seconds <= 0:
        raise InvalidArgument("--timeout: must be positive", field="timeout")
    return seconds


def register(sub: Any) -> None:
    p = sub.add_parser("exec", help="route one task to an agent through the router")
    p.add_argument("type", help="agent type to route to")
    p.add_argument("--task", default="", help="task type understood by the agent (e.g. answer)")
    p.add_argument("--payload", default="null", metavar="JSON|@FILE|-",
                   help="JSON payload (default null); @FILE reads it from FILE, - from stdin "
                        "(for payloads over the ~128 KiB a command-line argument can hold)")
    p.add_argument("--version", default="", help="semver range the agent must satisfy, e.g. ^1.4")
    p.add_argument("--capability", action="append", default=[], help="required capability (repeatable)")
    p.add_argument("--label", default="", help="label selector, e.g. tier=gold,env!=dev")
    p.add_argument("--agent-id", default="", help="route to this agent definition only")
    p.add_argument("-n", "--namespace", default="", help="namespace (default: default)")
    p.add_argument("--strategy", default="",
                   help=f"{', '.join(STRATEGIES)} (default: the agent's)")
    p.add_argument("--max-attempts", type=int, default=0, help="attempts in all (1 disables retries)")
    p.add_argument("--timeout", default="30s", help="deadline, e.g. 5s or 500ms (default 30s)")
    p.add_argument("--stream", action="store_true", help="stream progress and partial output")
    add_output_flag(p)
    p.set_defaults(func=run)


def _no_constant(name: str) -> object:
    """json.loads accepts NaN and Infinity, which JSON (and agents) do not."""
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    """A JSON number as a double; one that overflows to infinity (1e999) is refused like NaN."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range for a JSON number (a double)")
    return value


def _finite_int(text: str) -> int:
    """A JSON integer; protobuf carries numbers as doubles, so one beyond the double range is refused."""
    value = int(text)
    try:
        float(value)
    except OverflowError:
        shown = text if len(text) <= 24 else f"{text[:12]}...({len(text)} digits)"
        raise ValueError(f"{shown} is out of range for a JSON number (a double)") from None
    return value


def parse_payload(text: str) -> Any:
    """The JSON value of a payload; InvalidArgument naming --payload when it is not JSON
    or holds a number a double cannot carry (NaN, Infinity, 1e999)."""
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_finite_int)
    except (json.JSONDecodeError, ValueError) as err:
        raise InvalidArgument(f"--payload: not valid JSON: {err}", field="payload") from err


def read_payload(spec: str, stdin: TextIO | None = None) -> str:
    """The payload text of `--payload`: JSON as given, `@FILE` read from FILE, `-` read from stdin."""
    if spec == "-":
        return (stdin or sys.stdin).read()
    if spec.startswith("@"):
        path = spec[1:]
        if not path:
            raise InvalidArgument("--payload: @ needs a file name, e.g. --payload @task.json", field="payload")
        try:
            return Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidArgument(f"--payload: file {path!r} does not exist", field="payload") from None
        except IsADirectoryError:
            raise InvalidArgument(f"--payload: {path!r} is a directory, not a file", field="payload") from None
        except UnicodeDecodeError as err:
            raise InvalidArgument(f"--payload: file {path!r} is not UTF-8 text: {err}", field="payload") from None
        except OSError as err:
            raise InvalidArgument(f"--payload: cannot read file {path!r}: {err.strerror or err}",
                                  field="payload") from None
    return spec


def route_options(args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    """The keyword options of `RouterClient.execute` / `execute_stream` for this command line.

    The task's deadline is --timeout (the SDK sets it from `timeout`, as the
    route's own timeout); the router takes the earlier of this and the gRPC
    deadline, which the SDK sets DEADLINE_MARGIN later.
    """
    return {
        "task_type": args.task, "namespace": args.namespace, "version_range": args.version,
        "capabilities": args.capability, "labels": args.label, "agent_id": args.agent_id,
        "strategy": args.strategy, "max_attempts": args.max_attempts, "timeout": timedelta(seconds=timeout),
    }


def plain(value: Any) -> Any:
    """JSON from a protobuf Value with whole numbers shown as integers
    (protobuf carries every number as a double)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def result_dict(result: Result) -> dict[str, Any]:
    """A Result as plain JSON (proto field names; the metadata as protobuf JSON, e.g. "latency": "0.0012s")."""
    message = result_to_proto(result)
    error = None
    if result.error is not None:
        error = json_format.MessageToDict(message.error, preserving_proto_field_name=True)
        error.setdefault("code", "")
        error.setdefault("message", "")
    return {
        "success": result.success,
        "data": plain(result.data),
        "error": error,
        "metadata": json_format.MessageToDict(message.metadata, preserving_proto_field_name=True),
    }


def _ms(delta: timedelta | None) -> str:
    return "-" if delta is None else f"{delta.total_seconds() * 1000:.1f} ms"


def _print_result(result: Result, output: str, elapsed: float) -> None:
    """The result as a table, or as JSON (`result_dict` plus `round_trip_ms`).

    Two times, named apart: the round trip is what this command measured around
    the call (router, network, retries included); the agent's time is the
    result's own `metadata.latency` (what the agent, or the router timing it,
    reports).
    """
    if output == "json":
        print_json({**result_dict(result), "round_trip_ms": round(elapsed * 1000, 3)})
        return
    meta = result.metadata
    rows: list[dict[str, Any]] = [
        {"field": "success", "value": str(result.success).lower()},
        {"field": "instance", "value": f"{meta.instance_id} (agent {meta.agent_id} {meta.agent_version})".strip()},
        {"field": "attempts", "value": meta.attempts},
        {"field": "task", "value": meta.task_id},
        {"field": "round trip", "value": f"{elapsed * 1000:.1f} ms (measured by this command; -o json: round_trip_ms)"},
        {"field": "agent time", "value": f"{_ms(meta.latency)} (the result's metadata.latency)"},
    ]
    if result.error is not None:
        rows.append({"field": "error", "value": f"{result.error.code}: {result.error.message}"})
    print_table(rows, ["field", "value"])
    if result.data is not None or result.success:
        print(json.dumps(plain(result.data), indent=2, sort_keys=True))


async def run(args: argparse.Namespace) -> int:
    timeout = parse_timeout(args.timeout)
    payload = parse_payload(read_payload(args.payload))
    options = route_options(args, timeout)
    started = time.perf_counter()
    async with connect(RouterClient, args.router) as router:
        if not args.stream:
            result = await router.execute(args.type, payload, **options)
            _print_result(result, args.output, time.perf_counter() - started)
            return 0 if result.success else 1
        final: Result | None = None
        async for event in router.execute_stream(args.type, payload, **options):
            if isinstance(event, Result):
                final = event
                if args.output == "json":
                    print_json_line({"result": result_dict(event)})
                else:
                    _print_result(event, "table", time.perf_counter() - started)
            elif args.output == "json":
                print_json_line(event_to_proto(event))
            elif isinstance(event, Progress):
                print(f"progress {event.fraction:5.0%}  {event.message}")
            else:
                print(f"partial  {json.dumps(plain(event.data))}")
            sys.stdout.flush()
        return 0 if final is not None and final.success else 1
