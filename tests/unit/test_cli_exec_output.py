"""`sutradhar exec`'s two times are named apart: the round trip this command
measured, and the agent's own time (the result's metadata.latency)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from sutradhar import Result, ResultMetadata, TaskError
from sutradhar.cli.exec_ import _print_result

RESULT = Result(success=True, data={"echo": 1}, metadata=ResultMetadata(
    latency=timedelta(microseconds=1500), agent_id="echo", agent_version="1.0.0", instance_id="echo-1", attempts=1,
    task_id="t1"))


def test_the_table_names_the_round_trip_and_the_agents_time(capsys: pytest.CaptureFixture[str]) -> None:
    _print_result(RESULT, "table", 0.0123)
    rows = {line.split("  ")[0].strip(): line for line in capsys.readouterr().out.splitlines()}
    assert "12.3 ms (measured by this command" in rows["round trip"]
    assert "1.5 ms (the result's metadata.latency)" in rows["agent time"]
    assert "latency" not in rows  # no bare "latency" row that means something else than -o json's


def test_json_keeps_the_agents_latency_and_adds_the_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    _print_result(RESULT, "json", 0.0123)
    data = json.loads(capsys.readouterr().out)
    assert data["metadata"] == {"latency": "0.001500s", "agent_id": "echo", "agent_version": "1.0.0",
                                "instance_id": "echo-1", "attempts": 1, "task_id": "t1"}
    assert data["round_trip_ms"] == 12.3
    assert (data["success"], data["data"], data["error"]) == (True, {"echo": 1}, None)


def test_a_failure_prints_its_error_and_no_data(capsys: pytest.CaptureFixture[str]) -> None:
    failed = Result(success=False, error=TaskError(code="BOOM", message="it broke"))
    _print_result(failed, "table", 0.001)
    out = capsys.readouterr().out
    assert "BOOM: it broke" in out and "agent time" in out and "- (the result's" in out
    assert out.rstrip().splitlines()[-1].startswith("error")  # no data block after the table
    _print_result(failed, "json", 0.001)
    assert json.loads(capsys.readouterr().out)["error"] == {"code": "BOOM", "message": "it broke", "details": {}}
