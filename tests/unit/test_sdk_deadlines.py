"""RouterClient's deadlines: the task carries the caller's timeout, the gRPC call
trails it by ROUTER_DEADLINE_MARGIN so the router's own message comes back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sutradhar._clients import ROUTER_DEADLINE_MARGIN, _grpc_timeout, _router_grpc_timeout, make_task


def test_the_task_deadline_is_the_timeout_and_the_call_trails_it() -> None:
    timeout = timedelta(milliseconds=300)
    task = make_task({}, task_type="", task_id="", context=None, timeout=timeout)
    assert task.context.deadline is not None
    left = task.context.deadline - datetime.now(UTC)
    assert timedelta(milliseconds=250) < left <= timeout
    assert _grpc_timeout(task, timeout) == 0.3
    assert _router_grpc_timeout(task, timeout) == 0.3 + ROUTER_DEADLINE_MARGIN.total_seconds()


def test_no_timeout_means_no_deadline_either_way() -> None:
    task = make_task({}, task_type="", task_id="", context=None, timeout=None)
    assert _router_grpc_timeout(task, None) is None
