"""The fast path's protobuf splicing agrees with real protobuf parsing, and the
bytes it emits hold every singular field once at each level (decoders that
replace a repeated sub-message, as protobufjs does, read them the same)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.descriptor import Descriptor
from google.protobuf.internal.decoder import _DecodeVarint as _varint  # type: ignore[attr-defined]
from google.protobuf.message import Message

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
    assert (parsed.task_traceparent, parsed.task_tracestate) == ("", "")


def test_the_tasks_trace_context_is_read():
    ctx = agent_pb2.TaskContext(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                tracestate="congo=t61rcWkgMzE")
    parsed = wire.split_route_request(routed(id="t1", context=ctx).SerializeToString())
    assert (parsed.task_traceparent, parsed.task_tracestate) == (ctx.traceparent, ctx.tracestate)


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


def test_patches_set_the_task_id_and_deadline():
    deadline = datetime(2030, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)
    ctx = agent_pb2.TaskContext(user_id="u")
    ctx.deadline.FromDatetime(deadline)
    req = routed(type="answer", payload=to_value(1), context=ctx)
    parsed = wire.split_route_request(req.SerializeToString())
    assert parsed.task_id == ""
    assert abs(parsed.task_deadline - deadline.timestamp()) < 1e-6
    patched = wire.patch_task(parsed.task_record, task_id="gen-1", deadline=1_900_000_000.5)
    task = agent_pb2.ExecuteRequest.FromString(patched).task
    assert task.id == "gen-1" and task.type == "answer" and task.context.user_id == "u"
    assert task.payload.number_value == 1
    assert task.context.deadline.seconds == 1_900_000_000 and task.context.deadline.nanos == 500_000_000


def test_stream_result_metadata():
    final = agent_pb2.ExecuteStreamResponse(result=agent_pb2.Result(success=True)).SerializeToString()
    progress = agent_pb2.ExecuteStreamResponse(progress=agent_pb2.Progress(fraction=0.5)).SerializeToString()
    assert wire.is_stream_result(final) and not wire.is_stream_result(progress)
    out = router_pb2.RouterServiceExecuteStreamResponse.FromString(
        wire.set_stream_result_metadata(final, wire.result_metadata_fields("i", 2)))
    assert out.result.success and out.result.metadata.instance_id == "i" and out.result.metadata.attempts == 2


def test_stream_result_success_is_read_without_the_data():
    ok = agent_pb2.ExecuteStreamResponse(result=agent_pb2.Result(success=True, data=to_value({"a": [1, "x" * 100]})))
    failed = agent_pb2.ExecuteStreamResponse(result=agent_pb2.Result(
        success=False, error=agent_pb2.TaskError(code="NOPE", message="no")))
    empty_failed = agent_pb2.ExecuteStreamResponse(result=agent_pb2.Result())
    assert wire.stream_result_succeeded(ok.SerializeToString())
    assert wire.stream_result_succeeded(
        wire.set_stream_result_metadata(ok.SerializeToString(), wire.result_metadata_fields("i-1", 2)))
    assert not wire.stream_result_succeeded(failed.SerializeToString())
    assert not wire.stream_result_succeeded(empty_failed.SerializeToString())
    assert not wire.stream_result_succeeded(b"\x1a\x05\xff")  # garbage counts as failed
    partial = agent_pb2.ExecuteStreamResponse(partial=to_value(1)).SerializeToString()
    assert not wire.is_stream_result(partial)


# -- the splice: same message as protobuf's merge, each field once per level ----------------------

def occurrences(descriptor: Descriptor, data: bytes, path: str = "") -> list[str]:
    """Every field of `data` (a `descriptor` message) that occurs more than once
    though it is not repeated, at any level, as dotted paths. A scanner of its
    own, independent of wire.py's (varints read by protobuf's pure-Python decoder)."""
    counts: dict[int, int] = {}
    repeated: list[str] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        counts[number] = counts.get(number, 0) + 1
        if wire_type == 0:
            _, pos = _varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            assert wire_type == 2, (path, number, wire_type)
            length, pos = _varint(data, pos)
            value = data[pos:pos + length]
            pos += length
            field = descriptor.fields_by_number.get(number)
            if field is not None and field.type == field.TYPE_MESSAGE:
                repeated += occurrences(field.message_type, value, f"{path}{field.name}.")
    assert pos == len(data), path
    for number, count in counts.items():
        field = descriptor.fields_by_number.get(number)
        if count > 1 and (field is None or not field.is_repeated):
            repeated.append(f"{path}{field.name if field else number} x{count}")
    return repeated


def once(message_type: type[Message], data: bytes) -> Message:
    """`data` parsed, after checking no singular field occurs twice at any level."""
    assert occurrences(message_type.DESCRIPTOR, data) == []
    return message_type.FromString(data)


def test_the_scanner_sees_a_repeated_singular_field():
    twice = agent_pb2.ExecuteResponse(result=agent_pb2.Result(success=True)).SerializeToString() * 2
    assert occurrences(agent_pb2.ExecuteResponse.DESCRIPTOR, twice) == ["result x2"]
    inner = agent_pb2.ExecuteRequest(task=agent_pb2.Task(context=agent_pb2.TaskContext(user_id="u")))
    nested = inner.SerializeToString() + inner.SerializeToString()
    assert occurrences(agent_pb2.ExecuteRequest.DESCRIPTOR, nested) == ["task x2"]


@pytest.fixture(params=["views", "scan"])
def splice(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of splicing, whatever the message's size: upb views (small
    messages) and the Python scan (large ones)."""
    monkeypatch.setattr(wire, "SPLICE_VIEWS_UP_TO", 1 << 62 if request.param == "views" else -1)
    return str(request.param)


def context_with_deadline(seconds: int, nanos: int, **fields: object) -> agent_pb2.TaskContext:
    ctx = agent_pb2.TaskContext(**fields)  # type: ignore[arg-type]
    ctx.deadline.seconds, ctx.deadline.nanos = seconds, nanos
    return ctx


TASKS = [
    agent_pb2.Task(type="answer", payload=to_value({"q": "x" * 300, "n": [1, 2.5, None, True]})),
    agent_pb2.Task(id="kept", type="answer", payload=to_value("p" * 70_000)),
    agent_pb2.Task(type="t", context=agent_pb2.TaskContext(
        session_id="s", user_id="u", request_id="r", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        tracestate="k=v", attributes={"a": "1", "b": "2"})),
    agent_pb2.Task(type="t", payload=to_value([]), context=context_with_deadline(1_900_000_000, 250_000_000,
                                                                                  user_id="u")),
    agent_pb2.Task(),
]


@pytest.mark.parametrize("task", TASKS, ids=range(len(TASKS)))
@pytest.mark.parametrize(("task_id", "deadline"), [("gen-1", 1_800_000_000.5), ("", 1_800_000_000.5), ("gen-2", 0.0)])
def test_patched_task_is_the_merged_task_with_each_field_once(
        task: agent_pb2.Task, task_id: str, deadline: float, splice: str):
    record = wire.split_route_request(router_pb2.RouterServiceExecuteRequest(task=task).SerializeToString()).task_record
    patch = agent_pb2.ExecuteRequest()
    if task_id:
        patch.task.id = task_id
    if deadline:
        patch.task.context.deadline.seconds, patch.task.context.deadline.nanos = 1_800_000_000, 500_000_000
    expected = agent_pb2.ExecuteRequest.FromString(record)
    expected.MergeFrom(patch)  # what appending the patch meant, to protobuf's own parser
    spliced = wire.patch_task(record, task_id=task_id, deadline=deadline)
    assert once(agent_pb2.ExecuteRequest, spliced) == expected
    assert wire.patch_task(record) is record


def test_the_deadline_replaces_the_callers_whole_timestamp(splice: str):
    # Merging a Timestamp keeps the caller's nanos when the new ones are 0; the splice does not.
    task = agent_pb2.Task(type="t", context=context_with_deadline(1_900_000_000, 999))
    record = agent_pb2.ExecuteRequest(task=task).SerializeToString()
    out = once(agent_pb2.ExecuteRequest, wire.patch_task(record, deadline=1_800_000_000.0)).task  # type: ignore[attr-defined]
    assert (out.context.deadline.seconds, out.context.deadline.nanos) == (1_800_000_000, 0)


def test_the_splice_keeps_unknown_fields_byte_for_byte_and_merges_split_occurrences(splice: str):
    unknown = b"\xa2\x06\x03abc" + b"\xa8\x06\x07"  # field 100 (bytes), field 101 (varint)
    ctx = agent_pb2.TaskContext(user_id="u").SerializeToString() + unknown
    task = (agent_pb2.Task(type="t", payload=to_value(7)).SerializeToString()
            + b"\x22" + wire.encode_varint(len(ctx)) + ctx
            + agent_pb2.Task(context=agent_pb2.TaskContext(session_id="s")).SerializeToString() + unknown)
    record = b"\x0a" + wire.encode_varint(len(task)) + task
    spliced = wire.patch_task(record, task_id="g", deadline=1_800_000_000.25)
    assert occurrences(agent_pb2.ExecuteRequest.DESCRIPTOR, spliced) == []  # the two contexts are one now
    assert spliced.count(unknown) == 2  # the task's and the context's, untouched
    out = agent_pb2.ExecuteRequest.FromString(spliced).task
    assert (out.id, out.type, out.payload.number_value) == ("g", "t", 7)
    assert (out.context.user_id, out.context.session_id, out.context.deadline.nanos) == ("u", "s", 250_000_000)


RESULTS = [
    agent_pb2.Result(success=True, data=to_value({"x": 1, "y": "z" * 200})),
    agent_pb2.Result(success=True, data=to_value("d" * 70_000), metadata=agent_pb2.ResultMetadata(
        agent_id="echo", agent_version="1.2.3", instance_id="wrong", attempts=9, task_id="agents")),
    agent_pb2.Result(success=False, error=agent_pb2.TaskError(code="NOPE", message="no", retryable=True)),
    agent_pb2.Result(),
]


def metadata_patch(instance_id: str, attempts: int, task_id: str) -> agent_pb2.Result:
    return agent_pb2.Result(metadata=agent_pb2.ResultMetadata(
        instance_id=instance_id, attempts=attempts, task_id=task_id))


@pytest.mark.parametrize("result", RESULTS, ids=range(len(RESULTS)))
@pytest.mark.parametrize("task_id", ["", "tid"])
def test_result_metadata_is_the_merged_result_with_each_field_once(result: agent_pb2.Result, task_id: str, splice: str):
    fields = wire.result_metadata_fields("echo-2", 3, task_id)
    response = agent_pb2.ExecuteResponse(result=result).SerializeToString()
    expected = router_pb2.RouterServiceExecuteResponse(result=result)
    expected.result.MergeFrom(metadata_patch("echo-2", 3, task_id))
    assert once(router_pb2.RouterServiceExecuteResponse, wire.set_result_metadata(response, fields)) == expected
    event = agent_pb2.ExecuteStreamResponse(result=result).SerializeToString()
    expected_event = router_pb2.RouterServiceExecuteStreamResponse(result=expected.result)
    assert once(router_pb2.RouterServiceExecuteStreamResponse,
                wire.set_stream_result_metadata(event, fields)) == expected_event


def test_result_metadata_on_an_empty_response_and_split_results(splice: str):
    fields = wire.result_metadata_fields("i", 1)
    out = once(agent_pb2.ExecuteResponse, wire.set_result_metadata(b"", fields))
    assert out.result.metadata.instance_id == "i" and out.result.metadata.attempts == 1  # type: ignore[attr-defined]
    split = (agent_pb2.ExecuteResponse(result=agent_pb2.Result(success=True)).SerializeToString()
             + agent_pb2.ExecuteResponse(result=agent_pb2.Result(data=to_value(5))).SerializeToString())
    merged = once(agent_pb2.ExecuteResponse, wire.set_result_metadata(split, fields)).result  # type: ignore[attr-defined]
    assert merged.success and merged.data.number_value == 5 and merged.metadata.instance_id == "i"


def test_bytes_the_splice_cannot_walk_raise_malformed_message(splice: str):
    fields = wire.result_metadata_fields("i", 1)
    for garbage in (b"\x1a\x05\xff", b"\x1a", b"\x1a\x80", b"\x1f", b"\x00\x01", b"\x1b\x0c"):
        with pytest.raises(wire.MalformedMessage):
            wire.set_stream_result_metadata(garbage, fields)
    group = b"\x0b\x08\x01\x0c"  # field 1 as a (deprecated) group: skipped, kept
    assert group in wire.set_stream_result_metadata(group, fields)
    if splice == "scan":  # (upb keeps a field of the wrong wire type as an unknown field)
        with pytest.raises(wire.MalformedMessage, match="wire type 0, not 2"):
            wire.set_result_metadata(b"\x08\x01", fields)
        with pytest.raises(wire.MalformedMessage, match="wire type 3, not 2"):
            wire.set_stream_result_metadata(b"\x1b\x08\x01\x1c", fields)


@pytest.mark.parametrize("success", [True, False])
def test_response_succeeded_reads_success_without_the_data(success: bool) -> None:
    data = to_value({"text": "x" * 70_000, "n": [1, 2, 3]})
    response = agent_pb2.ExecuteResponse(result=agent_pb2.Result(success=success, data=data)).SerializeToString()
    assert wire.response_succeeded(response) is success
    assert wire.response_succeeded(b"") is False  # an empty answer: a default Result


def test_response_succeeded_refuses_bytes_that_are_not_protobuf() -> None:
    from google.protobuf.message import DecodeError

    with pytest.raises(DecodeError):
        wire.response_succeeded(b"\x0a\xff\xff\xff\xff\x0f")  # a length past the end
