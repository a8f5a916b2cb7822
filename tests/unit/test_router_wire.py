"""The fast path's protobuf splicing agrees with real protobuf parsing."""

from __future__ import annotations

from datetime import UTC, datetime

from sutradhar._routing import wire
from sutradhar._values import to_value
from sutradhar.v1 import agent_pb2, router_pb2


def routed(**task):
    t = agent_pb2.Task(**task)
    return router_pb2.RouterServiceExecuteRequest(
        task=t,
        selector=router_pb2.Selector(agent_type="echo", capabilities=["a", "b"]),
        options=router_pb2.RouteOptions(strategy="random", max_attempts=2),
    )


def test_task_record_is_an_execute_request():
    req = routed(id="t1", type="answer", payload=to_value({"q": "x" * 1000, "n": [1, 2]}))
    parsed = wire.split_route_request(req.SerializeToString())
    assert not parsed.error
    assert agent_pb2.ExecuteRequest.FromString(parsed.task_record).task == req.task
    assert parsed.selector == req.selector
    assert parsed.options == req.options
    assert (parsed.task_id, parsed.task_type) == ("t1", "answer")


def test_field_order_and_repeated_occurrences_are_handled():
    req = routed(id="t1", type="answer")
    data = req.selector.SerializeToString()
    raw = (b"\x12" + wire.encode_varint(len(data)) + data
           + req.SerializeToString()
           + router_pb2.RouterServiceExecuteRequest(selector=router_pb2.Selector(namespace="ns")).SerializeToString())
    parsed = wire.split_route_request(raw)
    assert parsed.selector.namespace == "ns" and parsed.selector.agent_type == "echo"
    assert agent_pb2.ExecuteRequest.FromString(parsed.task_record).task.id == "t1"


def test_garbage_is_reported_not_raised_naming_the_public_request_type():
    for raw in (b"\x0a\xff", b"\x0a\x05ab", b"\x07", b"\x12\x03\xff\xff\xff", b"\x0a\x03\x0a\x01\xff"):
        for split, name in ((wire.split_route_request, "sutradhar.v1.RouterServiceExecuteRequest"),
                            (wire.split_route_stream_request, "sutradhar.v1.RouterServiceExecuteStreamRequest")):
            error = split(raw).error
            assert error.startswith(f"request is not a valid {name}: "), error
            assert "views" not in error and "View" not in error, error  # never the private view types
    assert "the request bytes are not a valid message (wire format was corrupt)" in (
        wire.split_route_request(b"\x0a\xff").error)
    assert "its task (field 1) is not a valid sutradhar.v1.Task (string field had bad UTF-8)" in (
        wire.split_route_request(b"\x0a\x03\x12\x01\xff").error)


def test_patches_merge_into_the_task():
    deadline = datetime(2030, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)
    ctx = agent_pb2.TaskContext(user_id="u")
    ctx.deadline.FromDatetime(deadline)
    req = routed(type="answer", payload=to_value(1), context=ctx)
    parsed = wire.split_route_request(req.SerializeToString())
    assert parsed.task_id == ""
    assert abs(parsed.task_deadline - deadline.timestamp()) < 1e-6
    patched = parsed.task_record + wire.task_patch(task_id="gen-1", deadline=1_900_000_000.5)
    task = agent_pb2.ExecuteRequest.FromString(patched).task
    assert task.id == "gen-1" and task.type == "answer" and task.context.user_id == "u"
    assert task.payload.number_value == 1
    assert task.context.deadline.seconds == 1_900_000_000 and task.context.deadline.nanos == 500_000_000


def test_metadata_tail_merges_into_the_response():
    resp = agent_pb2.ExecuteResponse(result=agent_pb2.Result(
        success=True, data=to_value({"x": 1}),
        metadata=agent_pb2.ResultMetadata(agent_id="echo", instance_id="wrong", attempts=0)))
    out = router_pb2.RouterServiceExecuteResponse.FromString(
        resp.SerializeToString() + wire.result_metadata_tail("echo-2", 3, "tid"))
    assert out.result.data == resp.result.data
    assert out.result.metadata.agent_id == "echo"
    assert (out.result.metadata.instance_id, out.result.metadata.attempts, out.result.metadata.task_id) == (
        "echo-2", 3, "tid")


def test_stream_result_tail():
    final = agent_pb2.ExecuteStreamResponse(result=agent_pb2.Result(success=True)).SerializeToString()
    progress = agent_pb2.ExecuteStreamResponse(progress=agent_pb2.Progress(fraction=0.5)).SerializeToString()
    assert wire.is_stream_result(final) and not wire.is_stream_result(progress)
    out = router_pb2.RouterServiceExecuteStreamResponse.FromString(final + wire.stream_result_tail("i", 2))
    assert out.result.success and out.result.metadata.instance_id == "i" and out.result.metadata.attempts == 2


def test_stream_result_success_is_read_without_the_data():
    ok = agent_pb2.ExecuteStreamResponse(result=agent_pb2.Result(success=True, data=to_value({"a": [1, "x" * 100]})))
    failed = agent_pb2.ExecuteStreamResponse(result=agent_pb2.Result(
        success=False, error=agent_pb2.TaskError(code="NOPE", message="no")))
    empty_failed = agent_pb2.ExecuteStreamResponse(result=agent_pb2.Result())
    assert wire.stream_result_succeeded(ok.SerializeToString())
    assert wire.stream_result_succeeded(ok.SerializeToString() + wire.stream_result_tail("i-1", 2))
    assert not wire.stream_result_succeeded(failed.SerializeToString())
    assert not wire.stream_result_succeeded(empty_failed.SerializeToString())
    assert not wire.stream_result_succeeded(b"\x1a\x05\xff")  # garbage counts as failed
    partial = agent_pb2.ExecuteStreamResponse(partial=to_value(1)).SerializeToString()
    assert not wire.is_stream_result(partial)
