"""What the router's splicing emits, decoded by protobuf-java (a real JVM, tests/peers/java/WireDecode.java).

The router patches tasks (a generated id, the deadline) and results (instance id, attempts) in place
(`sutradhar._routing.wire`, docs/router.md "Decoder-neutral splicing"); the Node peers
(test_router_node_peers.py) check protobufjs and protobuf-es through a live router. This checks the
same bytes in Java: each case, small (through upb's patch views) and over 64 KiB (the Python walk), is
parsed by protobuf-java's own parser (DynamicMessage over the descriptors Python has, the parser
generated classes use too) and printed in the text format, which Python parses back and compares with
its own decoding and with the values the router set.

Java and protobuf-java come from Debian (`default-jdk-headless`, `libprotobuf-java`; installed by
scripts/install-system-deps.sh); the test skips, naming what is missing, without them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import text_format
from google.protobuf.message import Message

from sutradhar._routing import wire
from sutradhar._values import to_value
from sutradhar.v1 import agent_pb2
from tests.support import descriptor_set

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "peers" / "java" / "WireDecode.java"
PROTOBUF_JAR = Path("/usr/share/java/protobuf.jar")
BIG = "x" * (70 * 1024)  # past wire.SPLICE_VIEWS_UP_TO: the Python walk
DEADLINE = 1_900_000_000.25


@pytest.fixture(scope="module")
def java(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    javac, java_bin = shutil.which("javac"), shutil.which("java")
    if javac is None or java_bin is None or not PROTOBUF_JAR.exists():
        pytest.skip("a JDK and protobuf-java are needed (scripts/install-system-deps.sh installs Debian's "
                    "default-jdk-headless and libprotobuf-java)")
    classes = tmp_path_factory.mktemp("java-peer")
    done = subprocess.run([javac, "-cp", str(PROTOBUF_JAR), "-d", str(classes), str(SOURCE)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    yield java_bin, classes


def task(payload: str) -> agent_pb2.Task:
    return agent_pb2.Task(
        id="caller-id", type="answer", payload=to_value({"q": payload, "n": [1, 2.5, None, True]}),
        context=agent_pb2.TaskContext(session_id="s-1", traceparent="00-" + "ab" * 16 + "-" + "cd" * 8 + "-01",
                                      attributes={"tenant": "acme"}))


def answer(data: str) -> agent_pb2.ExecuteResponse:
    return agent_pb2.ExecuteResponse(result=agent_pb2.Result(
        success=True, data=to_value({"echo": data, "list": [{"k": 1}]}),
        metadata=agent_pb2.ResultMetadata(agent_id="echo", task_id="wrong", instance_id="agent-says", attempts=9)))


def stream_result(data: str) -> agent_pb2.ExecuteStreamResponse:
    return agent_pb2.ExecuteStreamResponse(result=answer(data).result)


def cases() -> dict[str, tuple[bytes, Message]]:
    """Spliced bytes, and the message type to read them as."""
    fields = wire.result_metadata_fields("inst-7", 2, "router-id")
    out: dict[str, tuple[bytes, Message]] = {}
    for size, payload in (("small", "x" * 100), ("big", BIG)):
        record = agent_pb2.ExecuteRequest(task=task(payload)).SerializeToString()
        out[f"request-{size}"] = (wire.patch_task(record, task_id="router-id", deadline=DEADLINE),
                                  agent_pb2.ExecuteRequest())
        out[f"response-{size}"] = (wire.set_result_metadata(answer(payload).SerializeToString(), fields),
                                   agent_pb2.ExecuteResponse())
        out[f"stream-{size}"] = (wire.set_stream_result_metadata(stream_result(payload).SerializeToString(), fields),
                                 agent_pb2.ExecuteStreamResponse())
    return out


def decode_in_java(java: tuple[str, Path], tmp_path: Path, spliced: dict[str, tuple[bytes, Message]]) -> dict[str, str]:
    java_bin, classes = java
    (tmp_path / "descriptors.pb").write_bytes(descriptor_set(agent_pb2.DESCRIPTOR))
    folder = tmp_path / "cases"
    folder.mkdir()
    for name, (data, message) in spliced.items():
        (folder / f"{name}@{message.DESCRIPTOR.full_name}.bin").write_bytes(data)
    done = subprocess.run(
        [java_bin, "-cp", f"{PROTOBUF_JAR}:{classes}", "WireDecode", str(tmp_path / "descriptors.pb"), str(folder)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    texts: dict[str, str] = {}
    for block in done.stdout.split("=== ")[1:]:
        name, _, text = block.partition("\n")
        texts[name] = text
    return texts


def test_java_decodes_what_the_router_splices_as_python_does(java: tuple[str, Path], tmp_path: Path) -> None:
    spliced = cases()
    texts = decode_in_java(java, tmp_path, spliced)
    assert set(texts) == set(spliced)
    for name, (data, message) in spliced.items():
        in_java = text_format.Parse(texts[name], type(message)())
        in_python = type(message).FromString(data)
        assert in_java == in_python, name
        if name.startswith("request"):
            assert isinstance(in_java, agent_pb2.ExecuteRequest)
            sent = in_java.task
            assert (sent.id, sent.type) == ("router-id", "answer"), name
            assert sent.context.deadline.seconds == 1_900_000_000 and sent.context.deadline.nanos == 250_000_000
            assert sent.context.session_id == "s-1" and sent.context.attributes["tenant"] == "acme"
            want = task(BIG if name.endswith("big") else "x" * 100).payload
            assert sent.payload == want, name
        else:
            result = in_java.result  # type: ignore[attr-defined]
            assert result.success and result.data.struct_value.fields["list"].list_value.values, name
            meta = result.metadata
            assert (meta.instance_id, meta.attempts, meta.task_id, meta.agent_id) == \
                ("inst-7", 2, "router-id", "echo"), name
