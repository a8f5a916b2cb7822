"""A secret's value reaches a container replica: in its environment (from the agent config's
list-form env) and as a read-only 0400 file at the mount path, owned by the user the container
runs as; the value is on no command line and in no CLI output."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_scheduler_support import (
    api,
    deployment,
    eventually,
    namespace,
    ready_instances,
    registry_client,
    run_cli,
    scheduler,
)
from test_secrets_support import registry

from sutradhar._secret_clients import SecretClient
from sutradhar._values import to_struct
from sutradhar.services.registry.server import RegistryServer
from sutradhar.services.scheduler.runtimes.base import LABEL_REPLICA
from sutradhar.v1 import registry_pb2
from sutradhar.v1 import scheduler_pb2 as P
from tests import docker_support
from tests.docker_support import DOCKER_TEST_TIMEOUT

docker_engine = docker_support.docker_engine  # fixtures
agent_image = docker_support.agent_image

__all__ = ["api", "namespace", "registry", "registry_client", "scheduler"]
pytestmark = [pytest.mark.docker, pytest.mark.timeout(DOCKER_TEST_TIMEOUT)]

VALUE = "sk-container-51b0e2f7aa"


def _exec(container: Any, *argv: str) -> str:
    code, out = container.exec_run(list(argv))
    assert code == 0, out
    return str(out.decode())


async def test_secret_reaches_a_container_replica(
    docker_engine: Any, agent_image: str, registry: RegistryServer, scheduler: object, api: Any,
    registry_client: Any, namespace: str,
) -> None:
    ns = namespace
    async with SecretClient(registry.address) as secrets:
        await secrets.apply_secret("llm", {"openai": VALUE.encode()}, namespace=ns)
    await registry_client.register_agent(registry_pb2.Agent(
        id="boxed", namespace=ns, type="echo", version="1.0.0", runtime="container",
        config=to_struct({
            "image": agent_image, "command": ["examples.echo_agent:EchoAgent"],
            "env": [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm", "key": "openai"}}}],
            "files": [{"secret": "llm", "mountPath": "/etc/agent/keys"}],
        }),
    ))
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(ns, "boxed", "boxed", 1)))
    [instance] = await eventually(lambda: _one(ready_instances(registry_client, ns, "boxed")), within=90)
    [container] = await asyncio.to_thread(
        docker_engine.containers.list, filters={"label": f"{LABEL_REPLICA}={instance.id}"})
    attrs = container.attrs
    assert f"API_KEY={VALUE}" in attrs["Config"]["Env"]
    assert VALUE not in " ".join([attrs["Path"], *attrs["Args"]]), "never on the command line"
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/etc/agent/keys"]["RW"] is False
    assert await asyncio.to_thread(_exec, container, "cat", "/etc/agent/keys/openai") == VALUE
    user = attrs["Config"]["User"]
    listing = await asyncio.to_thread(_exec, container, "stat", "-c", "%a %u:%g", "/etc/agent/keys/openai")
    assert listing.split() == ["400", user], (listing, user)
    code, out = await run_cli(registry, scheduler, "deployments", "get", "boxed", "-n", ns, "-o", "json")
    assert code == 0 and VALUE not in out
    await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=ns, name="boxed", wait=True))


async def _one(found: Any) -> Any:
    items = await found
    return items if len(items) == 1 else None
