"""What the router puts on the wire decodes right on the most common Node stack.

A real registry and router; an agent written directly on @grpc/grpc-js +
@grpc/proto-loader (tests/peers/node/agent.js, no SDK) that registers itself
through RegistryService and echoes every task field it decoded; and a Node
client on the same stack (client.js) calling RouterService/Execute and
ExecuteStream through the router. protobufjs (under proto-loader) replaces a
repeated sub-message instead of merging it, so any splice that repeats
`task`, `task.context`, `result` or `result.metadata` shows here as lost
fields. Both peers also decode the very bytes with protobuf-es (from a
descriptor set written by this test, no code generation), a decoder that
follows the spec's merge: both must agree.

Node and npm come from Debian (scripts/install-system-deps.sh); the peers'
packages from tests/peers/node/package-lock.json (`npm ci`, once a session).
Without Node the tests fail in CI and are skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from sutradhar.services.router.server import RouterConfig, RouterServer
from sutradhar.v1 import agent_pb2, router_pb2
from tests.support import descriptor_set as protos_of
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "tests" / "peers" / "node"
AGENT_VERSION = "2.0.1"  # agent.js's
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PAYLOAD: dict[str, Any] = {
    "text": "héllo, wörld", "n": [1, 2.5, None, True, "s"], "nested": {"deep": {"x": "y", "empty": {}}},
    "big": "x" * 5000,
}
#: Over wire.SPLICE_VIEWS_UP_TO: the router splices it in Python rather than through its upb views.
LARGE_PAYLOAD: dict[str, Any] = {**PAYLOAD, "big": "y" * 100_000}
SIZES = pytest.mark.parametrize("payload", [PAYLOAD, LARGE_PAYLOAD], ids=["small", "large"])
HEX_ID = re.compile(r"[0-9a-f]{32}")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def node_peers() -> Path:
    """tests/peers/node with its packages installed from the lock file (`npm ci`, once a session)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        why = "node and npm are not installed (scripts/install-system-deps.sh installs Debian's nodejs and npm)"
        if _in_ci():
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PEERS, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, f"npm ci in {PEERS} failed:\n{done.stdout}\n{done.stderr}"
    return PEERS


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent and router protos (and all they import) as a FileDescriptorSet, for protobuf-es."""
    path = tmp_path_factory.mktemp("descriptors") / "sutradhar.binpb"
    path.write_bytes(protos_of(agent_pb2.DESCRIPTOR, router_pb2.DESCRIPTOR))
    return path


@pytest.fixture(scope="module")
async def mesh(etcd: str) -> AsyncIterator[dict[str, Any]]:
    registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
    await registry.start()
    router = RouterServer(RouterConfig(insecure=True, port=0, registry=registry.address, etcd=etcd))
    try:
        await router.start()
        assert await router.wait_synced(timedelta(seconds=10))
        yield {"registry": registry, "router": router}
    finally:
        await router.stop(timedelta(seconds=1))
        await registry.stop()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM (agent.js deregisters, then exits), SIGKILL after 5 s."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def node_agent(mesh: dict[str, Any], node_peers: Path, descriptor_set: Path,
                     unique: str) -> AsyncIterator[dict[str, str]]:
    """agent.js registered (by itself) in a namespace of its own and routable: its namespace and instance id."""
    agent_id = "node-echo"
    proc = await asyncio.create_subprocess_exec(
        "node", "agent.js", mesh["registry"].address, unique, agent_id, str(descriptor_set),
        cwd=node_peers, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
        except TimeoutError:
            line = b""
        words = line.decode().split()
        if words[:1] != ["READY"]:
            await _stop(proc)
            pytest.fail(f"agent.js did not start: {line!r}\n{(await proc.stderr.read()).decode()}")
        instance_id = words[1]
        router: RouterServer = mesh["router"]
        await eventually(
            lambda: any(ns == unique and iid == instance_id and router.view.routable(b)
                        for (ns, iid), b in router.view.backends.items()),
            within=10, period=0.02, what=f"the router never saw {instance_id}")
        yield {"namespace": unique, "instance_id": instance_id, "agent_id": agent_id}
    finally:
        await _stop(proc)


async def node_call(mesh: dict[str, Any], peers: Path, descriptor_set: Path, mode: str,
                    request: dict[str, Any]) -> dict[str, Any]:
    """client.js's answer (see its header) to `request` sent with `mode` (execute or stream)."""
    proc = await asyncio.create_subprocess_exec(
        "node", "client.js", mesh["router"].address, mode, str(descriptor_set), cwd=peers,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(request).encode()), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    answer: dict[str, Any] = json.loads(out)
    assert "error" not in answer, answer
    return answer


def routed(ns: str, task: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"task": task, "selector": {"namespace": ns, "agent_type": "node-echo"}, "options": options}


def full_context(deadline: float) -> dict[str, Any]:
    seconds = int(deadline)
    return {
        "session_id": "s-1", "user_id": "u-1", "request_id": "r-1",
        "deadline": {"seconds": seconds, "nanos": 250_000_000}, "traceparent": TRACEPARENT,
        "tracestate": "vendor=1", "attributes": {"lang": "node", "k": "v"},
    }


def rfc3339(deadline: dict[str, int]) -> float:
    """A {seconds, nanos} view as unix seconds."""
    return deadline["seconds"] + deadline["nanos"] / 1e9


def es_deadline(text: str) -> float:
    """protobuf-es's RFC 3339 Timestamp as unix seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def check_seen_task(data: dict[str, Any], sent: dict[str, Any], *, deadline_between: tuple[float, float]) -> str:
    """The task the agent decoded (both decoders) is the task sent, with the router's
    deadline within `deadline_between` and the id it sent or assigned; that id."""
    seen, seen_es = data["task"], data["task_es"]
    task_id = sent.get("id") or seen["id"]
    if not sent.get("id"):
        assert HEX_ID.fullmatch(task_id), seen
    sent_context = {"session_id": "", "user_id": "", "request_id": "", "traceparent": "", "tracestate": "",
                    "attributes": {}, **{k: v for k, v in sent.get("context", {}).items() if k != "deadline"}}
    context = dict(seen["context"])
    deadline = context.pop("deadline")
    assert (seen["id"], seen["type"], seen["payload"]) == (task_id, sent["type"], sent["payload"]), seen
    assert context == sent_context, seen
    low, high = deadline_between
    assert low - 1e-6 <= rfc3339(deadline) <= high + 1e-6, (deadline, deadline_between)
    # protobuf-es: proto3 JSON, default values left out.
    es_context = dict(seen_es["context"])
    assert abs(es_deadline(es_context.pop("deadline")) - rfc3339(deadline)) < 1e-6
    assert es_context == {k: v for k, v in sent_context.items() if v}, seen_es
    assert {k: v for k, v in seen_es.items() if k != "context"} == {
        "id": task_id, "type": sent["type"], "payload": sent["payload"]}, seen_es
    return task_id


def check_metadata(result: dict[str, Any], result_es: dict[str, Any], agent: dict[str, str], task_id: str) -> None:
    assert result["metadata"] == {
        "latency": {"seconds": 0, "nanos": 1_234_000}, "agent_id": agent["agent_id"], "agent_version": AGENT_VERSION,
        "instance_id": agent["instance_id"], "attempts": 1, "task_id": task_id,
    }, result
    assert result_es["metadata"] == {
        "latency": "0.001234s", "agent_id": agent["agent_id"], "agent_version": AGENT_VERSION,
        "instance_id": agent["instance_id"], "attempts": 1, "task_id": task_id,
    }, result_es
    assert result_es["data"] == result["data"]


@SIZES
async def test_execute_through_the_router_keeps_every_field_both_ways(
        mesh, node_peers, descriptor_set, node_agent, payload):
    ns = node_agent["namespace"]
    deadline = time.time() + 20
    sent = {"id": "t-node-1", "type": "echo.full", "payload": payload, "context": full_context(deadline)}
    answer = await node_call(mesh, node_peers, descriptor_set, "execute", routed(ns, sent))
    result, result_es = answer["protobufjs"], answer["protobuf_es"]["result"]
    assert result["success"] is True and result["error"] is None, result
    assert result_es["success"] is True and "error" not in result_es, result_es
    caller_deadline = rfc3339(sent["context"]["deadline"])
    task_id = check_seen_task(result["data"], sent, deadline_between=(caller_deadline, caller_deadline))
    check_metadata(result, result_es, node_agent, task_id)


async def test_execute_with_a_router_assigned_id_and_deadline_and_a_failed_result(
        mesh, node_peers, descriptor_set, node_agent):
    ns = node_agent["namespace"]
    fail = {"code": "E_NODE", "message": "failed on purpose", "retryable": True, "details": {"why": "test", "n": 3}}
    sent = {"type": "echo.fail", "payload": {"fail": fail, "more": PAYLOAD}}
    before = time.time()
    answer = await node_call(mesh, node_peers, descriptor_set, "execute",
                             routed(ns, sent, timeout={"seconds": 15}))
    after = time.time()
    result, result_es = answer["protobufjs"], answer["protobuf_es"]["result"]
    assert result["success"] is False and result["error"] == fail, result
    assert "success" not in result_es and result_es["error"] == fail, result_es
    task_id = check_seen_task(result["data"], sent, deadline_between=(before + 15, after + 15))
    check_metadata(result, result_es, node_agent, task_id)


@SIZES
@pytest.mark.parametrize("with_id", [True, False], ids=["caller-id-and-deadline", "router-id-and-deadline"])
async def test_execute_stream_through_the_router_keeps_every_field(
        mesh, node_peers, descriptor_set, node_agent, with_id, payload):
    ns = node_agent["namespace"]
    deadline = time.time() + 10  # sooner than the options' timeout: the router keeps it
    sent: dict[str, Any] = {"type": "echo.stream", "payload": payload}
    if with_id:
        sent.update(id="t-node-stream", context=full_context(deadline))
    before = time.time()
    answer = await node_call(mesh, node_peers, descriptor_set, "stream", routed(ns, sent, timeout={"seconds": 15}))
    after = time.time()
    events, events_es = answer["protobufjs"], answer["protobuf_es"]
    assert [next(iter(e)) for e in events] == ["progress", "partial", "result"], events
    assert events[0]["progress"] == {"message": "working", "fraction": 0.5}
    assert events[1]["partial"] == payload
    assert events_es[:2] == [{"progress": {"message": "working", "fraction": 0.5}}, {"partial": payload}]
    result, result_es = events[2]["result"], events_es[2]["result"]
    assert result["success"] is True and result["error"] is None, result
    window = ((rfc3339(sent["context"]["deadline"]),) * 2 if with_id else (before + 15, after + 15))
    task_id = check_seen_task(result["data"], sent, deadline_between=window)
    check_metadata(result, result_es, node_agent, task_id)
