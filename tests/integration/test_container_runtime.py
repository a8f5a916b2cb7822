"""The container runtime against a real Docker engine and the locally built
echo agent image: start, serve, limits, adoption, logs, stop, bad input."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from sutradhar._errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from sutradhar._values import from_value, to_struct, to_value
from sutradhar.services.scheduler.runtimes.base import (
    LABEL_AGENT,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED,
    LABEL_NAMESPACE,
    LABEL_REPLICA,
    LABEL_REVISION,
    Replica,
    ReplicaPhase,
    ReplicaSpec,
)
from sutradhar.services.scheduler.runtimes.container import ContainerRuntime
from sutradhar.v1 import agent_pb2, agent_pb2_grpc, registry_pb2
from tests import docker_support
from tests.docker_support import DOCKER_TEST_TIMEOUT, SESSION_SCOPE, wait_serving
from tests.support import eventually

docker_engine = docker_support.docker_engine  # fixtures
agent_image = docker_support.agent_image

pytestmark = [pytest.mark.docker, pytest.mark.timeout(DOCKER_TEST_TIMEOUT)]

ECHO = ["examples.echo_agent:EchoAgent"]


def echo_spec(image: str, namespace: str, *, replica: str = "r0", revision: str = "1",
              cpu: str = "", memory: str = "", command: list[str] | None = None,
              env: dict[str, str] | None = None) -> ReplicaSpec:
    agent = registry_pb2.Agent(
        id="echo", namespace=namespace, type="echo", version="1.0.0", runtime="container",
        config=to_struct({"image": image, "command": command or ECHO, "env": env or {}}),
        resources=registry_pb2.Resources(cpu=cpu, memory=memory),
    )
    return ReplicaSpec(
        namespace=namespace, deployment="echo", replica_id=f"echo-{replica}", revision=revision,
        agent=agent, env={"EXTRA_FROM_SPEC": "yes"}, labels={"team": "tests"}, insecure=True,
    )


async def wait_stopped(runtime: ContainerRuntime, replica: Replica, within: float = 30.0) -> Replica:
    """The replica once it is no longer STARTING or RUNNING (fails after `within` seconds)."""
    async def stopped() -> Replica | None:
        current = await runtime.inspect(replica)
        return current if current.phase not in (ReplicaPhase.RUNNING, ReplicaPhase.STARTING) else None

    try:
        return await eventually(stopped, within=within, period=0.1)
    except AssertionError:
        current = await runtime.inspect(replica)
        logs = [line async for line in runtime.logs(replica, tail=20)]
        raise AssertionError(f"{replica.replica_id} still {current.phase} after {within} s; logs: {logs}") from None


@pytest.fixture
async def runtime(docker_engine):  # after docker_engine: it sets the session label for new runtimes
    rt = ContainerRuntime()
    try:
        yield rt
    finally:
        await rt.close()


async def test_echo_replica_serves_with_limits_labels_and_logs(runtime, agent_image, docker_engine, unique):
    spec = echo_spec(agent_image, unique, cpu="500m", memory="256Mi")
    replica = await runtime.start(spec)
    try:
        assert replica.phase is ReplicaPhase.RUNNING
        assert replica.endpoint.startswith("127.0.0.1:")
        assert replica.runtime == "container"
        assert (replica.namespace, replica.deployment, replica.replica_id) == (unique, "echo", "echo-r0")

        await wait_serving(replica.endpoint)
        async with grpc.aio.insecure_channel(replica.endpoint) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            answer = await stub.Execute(
                agent_pb2.ExecuteRequest(task=agent_pb2.Task(
                    id="t1", type="echo", payload=to_value({"hello": "container"}))),
                timeout=5,
            )
        assert answer.result.success, answer.result.error
        assert from_value(answer.result.data)["echo"] == {"hello": "container"}

        attrs = docker_engine.api.inspect_container(replica.native_id)
        assert attrs["Name"] == f"/sutradhar-{SESSION_SCOPE}-{unique}-echo-r0"
        host = attrs["HostConfig"]
        assert host["NanoCpus"] == 500_000_000
        assert host["Memory"] == 256 * 1024 * 1024
        assert host["RestartPolicy"]["Name"] in ("", "no")
        bindings = host["PortBindings"]["50051/tcp"]
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
        env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
        assert env["SUTRADHAR_PORT"] == "50051"
        assert env["SUTRADHAR_INSTANCE_ID"] == "echo-r0"
        assert env["SUTRADHAR_NAMESPACE"] == unique
        assert env["EXTRA_FROM_SPEC"] == "yes"

        # adoption: a fresh runtime (a restarted scheduler) finds it by its labels
        other = ContainerRuntime()
        try:
            found = await other.list(unique)
        finally:
            await other.close()
        assert [r.native_id for r in found] == [replica.native_id]
        adopted = found[0]
        assert adopted.phase is ReplicaPhase.RUNNING
        assert adopted.endpoint == replica.endpoint
        assert (adopted.deployment, adopted.replica_id, adopted.revision, adopted.agent_id) == (
            "echo", "echo-r0", "1", "echo")
        assert adopted.labels[LABEL_MANAGED] == "true"
        assert adopted.labels[LABEL_NAMESPACE] == unique
        assert adopted.labels["team"] == "tests"
        assert {LABEL_DEPLOYMENT, LABEL_AGENT, LABEL_REVISION, LABEL_REPLICA} <= set(adopted.labels)
        assert await runtime.list(f"{unique}-other") == []

        lines = [line async for line in runtime.logs(replica, tail=20)]
        assert any("listening on 0.0.0.0:50051" in line for line in lines), lines
        follow = runtime.logs(replica, tail=20, follow=True)
        async for line in follow:
            if "listening on" in line:
                break
        await follow.aclose()

        again = await runtime.start(spec)  # same replica, same revision: adopted, not duplicated
        assert again.native_id == replica.native_id
        with pytest.raises(AlreadyExists, match="revision"):
            await runtime.start(echo_spec(agent_image, unique, revision="2"))
    finally:
        await runtime.stop(replica, grace=timedelta(seconds=5))
    assert await runtime.list(unique) == []
    await runtime.stop(replica)  # idempotent
    gone = await runtime.inspect(replica)
    assert gone.phase is ReplicaPhase.EXITED
    assert "no longer exists" in gone.message
    with pytest.raises(NotFound):
        [line async for line in runtime.logs(replica)]


async def test_missing_image_names_it_and_how_to_build(runtime, docker_engine, unique):
    spec = echo_spec("sutradhar/no-such-image:0.0.0", unique)
    with pytest.raises(InvalidArgument) as caught:
        await runtime.start(spec)
    assert "sutradhar/no-such-image:0.0.0" in caught.value.message
    assert "sutradhar image build" in caught.value.message
    assert caught.value.field == "agent.config.image"
    assert await runtime.list(unique) == []


async def test_limits_out_of_range_are_refused(runtime, agent_image, unique):
    with pytest.raises(InvalidArgument) as caught:
        await runtime.start(echo_spec(agent_image, unique, memory="2Mi"))
    assert caught.value.field == "agent.resources.memory"
    with pytest.raises(InvalidArgument, match="CPU"):  # more CPUs than the machine has
        await runtime.start(echo_spec(agent_image, unique, cpu="64"))
    assert await runtime.list(unique) == []


async def test_agent_that_exits_at_once_reports_exit_code_and_logs(runtime, agent_image, unique):
    replica = await runtime.start(echo_spec(agent_image, unique, command=["no_such_module:Nope"]))
    try:
        current = await wait_stopped(runtime, replica)
        assert current.phase is ReplicaPhase.EXITED
        assert current.exit_code == 1
        assert "exited with code 1" in current.message
        listed = await runtime.list(unique)
        assert [(r.phase, r.exit_code) for r in listed] == [(ReplicaPhase.EXITED, 1)]
        lines = [line async for line in runtime.logs(replica)]
        assert any("no_such_module" in line for line in lines), lines

        # restarting the replica (same id) replaces the dead container of that name
        restarted = await runtime.start(echo_spec(agent_image, unique, command=["no_such_module:Nope"]))
        assert restarted.native_id != replica.native_id
        assert [r.native_id for r in await runtime.list(unique)] == [restarted.native_id]
        replica = restarted
    finally:
        await runtime.stop(replica)
    assert await runtime.list(unique) == []


async def test_engine_down_is_unavailable_with_how_to_start_it(unique, tmp_path):
    rt = ContainerRuntime(f"unix://{tmp_path}/no-docker.sock")
    try:
        with pytest.raises(Unavailable, match=r"install-docker\.sh"):
            await rt.list(unique)
    finally:
        await rt.close()


async def test_memory_limit_is_enforced_and_oom_kill_reported(runtime, agent_image, unique):
    # 8Mi cannot hold a Python interpreter with grpc: the kernel kills it at start-up.
    replica = await runtime.start(echo_spec(agent_image, unique, memory="8Mi"))
    try:
        current = await wait_stopped(runtime, replica)
        assert current.phase is ReplicaPhase.EXITED
        assert current.exit_code == 137
        assert current.message.startswith("OOMKilled")
    finally:
        await runtime.stop(replica)


async def test_scopes_partition_one_engine(runtime, agent_image, docker_engine, unique):
    # docker_support sets SUTRADHAR_CONTAINER_SCOPE, so `runtime` works in this session's scope.
    assert runtime.scope == SESSION_SCOPE
    other = ContainerRuntime(scope=f"{SESSION_SCOPE}-other")  # another mesh on the same engine
    try:
        mine = await runtime.start(echo_spec(agent_image, unique))
        theirs = await other.start(echo_spec(agent_image, unique))  # same ns/deployment/replica id
        try:
            assert mine.native_id != theirs.native_id
            labels = docker_engine.api.inspect_container(mine.native_id)["Config"]["Labels"]
            assert labels["sutradhar.scope"] == SESSION_SCOPE
            assert [r.native_id for r in await runtime.list(unique)] == [mine.native_id]
            assert [r.native_id for r in await other.list(unique)] == [theirs.native_id]
            assert theirs.native_id not in {r.native_id for r in await runtime.list()}
        finally:
            await other.stop(theirs, grace=timedelta(0))
            await runtime.stop(mine, grace=timedelta(0))
    finally:
        await other.close()
    assert await runtime.list(unique) == []

async def test_command_missing_from_the_image_exits_127_and_says_so(runtime, agent_image, unique):
    from sutradhar.services.scheduler.images import BASE_IMAGE

    replica = await runtime.start(echo_spec(BASE_IMAGE, unique, command=["/no/such/program"]))
    try:
        current = await wait_stopped(runtime, replica)
        assert (current.phase, current.exit_code) == (ReplicaPhase.EXITED, 127)
        assert "command not found" in current.message
    finally:
        await runtime.stop(replica)
