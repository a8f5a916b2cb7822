"""Micro-benchmark: the CPU cost per call of the router's fast-path splice (sutradhar/_routing/wire.py).

In one process, without a network, it times the two splices of every routed
call, old and new, on messages whose payload (the task's) or data (the
agent's) is about 100 B, 16 KiB, 256 KiB and 1 MiB (``path``: up to
`wire.SPLICE_VIEWS_UP_TO` bytes through upb views, above by the Python scan):

- ``request``: the task record handed to the agent with the router's deadline
  (``caller id``: the task had an id) or with a generated id and the deadline
  (``router id``). Old: the record with a second ExecuteRequest appended
  (protobuf merges it; protobufjs replaced the task with it). New:
  `wire.patch_task`, the context rebuilt inside the one task.
- ``response``: the agent's ExecuteResponse with result.metadata's
  instance_id and attempts (first attempt: the per-instance precomputed
  fields). Old: a second ``result`` appended. New: `wire.set_result_metadata`.
- ``stream result``: the same for a stream's final event
  (`wire.set_stream_result_metadata`).

For scale, ``full parse`` is what the fast path avoids: the public message
parsed (upb, in C) and serialized again. Every variant runs `--rounds` times
interleaved; the best round counts. Prints a table and writes
bench/results/wire-splice.json as ``{case: {size: {"old_ns", "new_ns",
"added_ns", "full_parse_ns", "bytes", "path"}}}``.

    .venv/bin/python bench/wire_splice.py [--calls 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import google.protobuf
from google.protobuf.message import Message

from sutradhar._routing import wire
from sutradhar._values import to_value
from sutradhar.v1 import agent_pb2, router_pb2

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "wire-splice.json"
SIZES = {"100 B": 100, "16 KiB": 16 * 1024, "256 KiB": 256 * 1024, "1 MiB": 1024 * 1024}
DEADLINE = 1_900_000_000.123456
TASK_ID = "0123456789abcdef0123456789abcdef"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def payload(size: int) -> object:
    """A JSON-like payload of about `size` bytes serialized: records of a few small fields
    (what a full parse pays for per field; the splice skips them whole)."""
    record = {"id": 12345, "name": "item", "tags": ["a", "b"], "ok": True}
    return {"lang": "en", "items": [record] * max(1, size // 75)}


def old_request(record: bytes, task_id: str, deadline: float) -> bytes:
    """The appending patch as the router sent it before: a second ExecuteRequest after the record."""
    patch = agent_pb2.ExecuteRequest()
    if task_id:
        patch.task.id = task_id
    seconds = int(deadline)
    patch.task.context.deadline.seconds = seconds
    patch.task.context.deadline.nanos = int((deadline - seconds) * 1e9)
    return record + patch.SerializeToString()


def old_tail(field: int, fields: bytes) -> bytes:
    """A second `result` (field 1, or 3 in a stream event) holding only the metadata fields."""
    metadata = b"\x22" + wire.encode_varint(len(fields)) + fields
    return wire.encode_varint((field << 3) | 2) + wire.encode_varint(len(metadata)) + metadata


def best_per_call(fn: Callable[[], object], calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def reparse(cls: type[Message], data: bytes) -> Callable[[], object]:
    return lambda: cls.FromString(data).SerializeToString()


def cases(size: int) -> dict[str, tuple[Callable[[], object], Callable[[], object], Callable[[], object], int]]:
    """case -> (old, new, full parse, bytes of the message spliced)."""
    context = agent_pb2.TaskContext(user_id="u-1", traceparent=TRACEPARENT)
    with_id = router_pb2.RouterServiceExecuteRequest(
        task=agent_pb2.Task(id="t-1", type="answer", payload=to_value(payload(size)), context=context),
        selector=router_pb2.Selector(agent_type="answer"))
    record = wire.split_route_request(with_id.SerializeToString()).task_record
    without_id = router_pb2.RouterServiceExecuteRequest()
    without_id.CopyFrom(with_id)
    without_id.task.ClearField("id")
    bare_record = wire.split_route_request(without_id.SerializeToString()).task_record
    result = agent_pb2.Result(success=True, data=to_value(payload(size)), metadata=agent_pb2.ResultMetadata(
        agent_id="answer", agent_version="1.0.0"))
    result.metadata.latency.FromMilliseconds(12)
    response = agent_pb2.ExecuteResponse(result=result).SerializeToString()
    event = agent_pb2.ExecuteStreamResponse(result=result).SerializeToString()
    fields = wire.result_metadata_fields("answer-7f9c4", 1)
    result_metadata, event_tail = old_tail(1, fields), old_tail(3, fields)
    return {
        "request, caller id": (
            lambda: old_request(record, "", DEADLINE),
            lambda: wire.patch_task(record, deadline=DEADLINE),
            reparse(agent_pb2.ExecuteRequest, record), len(record)),
        "request, router id": (
            lambda: old_request(bare_record, TASK_ID, DEADLINE),
            lambda: wire.patch_task(bare_record, task_id=TASK_ID, deadline=DEADLINE),
            reparse(agent_pb2.ExecuteRequest, bare_record), len(bare_record)),
        "response": (
            lambda: response + result_metadata,
            lambda: wire.set_result_metadata(response, fields),
            reparse(agent_pb2.ExecuteResponse, response), len(response)),
        "stream result": (
            lambda: event + event_tail,
            lambda: wire.set_stream_result_metadata(event, fields),
            reparse(agent_pb2.ExecuteStreamResponse, event), len(event)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per variant per round (100 B; fewer above)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best counts")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)

    out: dict[str, dict[str, dict[str, float | str]]] = {}
    print(f"{'case':<20} {'size':>7} {'bytes':>8} {'path':>5} {'old ns':>9} {'new ns':>9} {'added ns':>9} "
          f"{'full parse ns':>14}")
    for label, size in SIZES.items():
        calls = max(100, args.calls * 1000 // max(1000, size // 4))
        for case, (old, new, full, length) in cases(size).items():
            timings = [best_per_call(fn, calls, args.rounds) * 1e9 for fn in (old, new, full)]
            old_ns, new_ns, full_ns = timings
            path = "views" if length <= wire.SPLICE_VIEWS_UP_TO else "scan"
            out.setdefault(case, {})[label] = {
                "old_ns": round(old_ns, 1), "new_ns": round(new_ns, 1), "added_ns": round(new_ns - old_ns, 1),
                "full_parse_ns": round(full_ns, 1), "bytes": length, "path": path,
            }
            print(f"{case:<20} {label:>7} {length:>8} {path:>5} {old_ns:>9.0f} {new_ns:>9.0f} "
                  f"{new_ns - old_ns:>+9.0f} {full_ns:>14.0f}")
    out_path = Path(args.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"({args.calls} calls at 100 B, fewer for the larger sizes, x {args.rounds} rounds, best round; "
          f"{os.cpu_count()} cpus, Python {platform.python_version()}, protobuf {google.protobuf.__version__})")
    print(f"\nwrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
