"""Docker for the test suite: an engine, the agent image, and cleanup.

Test modules that need Docker bind the fixtures they use::

    from tests import docker_support

    docker_engine = docker_support.docker_engine  # fixtures
    agent_image = docker_support.agent_image
    pytestmark = [pytest.mark.docker, pytest.mark.timeout(DOCKER_TEST_TIMEOUT)]

- `docker_engine` (session): a connected `docker.DockerClient`. When no engine
  answers and we are root, runs scripts/install-docker.sh (installs docker.io,
  starts dockerd). Where that fails, the test FAILS in CI (CI=true) and is
  skipped elsewhere, with the reason.
- `agent_image` (session): the tag of the echo agent image
  (`sutradhar/agent:<version>`), built once; an up-to-date image is reused, so
  only the first run on a machine pays for the base image (about 1 minute).
- While `docker_engine` is active, SUTRADHAR_CONTAINER_SCOPE holds this
  session's scope (`SESSION_SCOPE`): every ContainerRuntime made in this
  process or its children labels its containers with it and lists no others,
  so several test runs (and a developer's mesh) can share one engine. At the
  end of the session every container of that scope is removed, even when
  tests failed.

- `start_image_prebuild` (called by conftest once the session's tests are collected): when
  they need the images and an engine already answers, the agent image and the Node base image
  are built in a background thread from the start, while the tests before them run (most of
  them wait on the network and processes, not the cores). `agent_image` and the TypeScript
  image fixture wait for it (`wait_image_prebuild`) and then build as before, finding the
  images up to date; a prebuild that failed is left for that build to report.

`wait_serving(endpoint)` waits for grpc.health.v1 SERVING on a 127.0.0.1 port.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from sutradhar.services.scheduler.runtimes.container import LABEL_SCOPE, SCOPE_ENV

ROOT = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = ROOT / "scripts" / "install-docker.sh"
#: Per-test timeout for Docker tests: the first one may build the base image.
DOCKER_TEST_TIMEOUT = 600
#: This session's container scope: every ContainerRuntime made while the
#: `docker_engine` fixture is active (here or in child processes, such as a
#: scheduler under test) labels its containers with it and sees no others.
SESSION_SCOPE = f"test-{uuid.uuid4().hex[:10]}"
#: The session's background image build (`start_image_prebuild`), when one was started, and its
#: progress lines (kept, not printed: printed while a test runs, they would land in its captured output).
_prebuild: concurrent.futures.Future[None] | None = None
_prebuild_lines: list[str] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _connect() -> tuple[Any, str]:
    """(client, "") or (None, why not)."""
    from sutradhar._errors import SutradharError
    from sutradhar.services.scheduler.runtimes.container import docker_client

    try:
        return docker_client(), ""
    except SutradharError as err:
        return None, err.message


def _give_up(reason: str) -> NoReturn:
    if _in_ci():
        pytest.fail(f"no Docker engine in CI: {reason}", pytrace=False)
    pytest.skip(f"no Docker engine: {reason}")


def remove_test_containers(client: Any) -> list[str]:
    """Remove every container of this session's scope (or a scope named after it,
    as tests of several scopes make); return their names."""
    removed: list[str] = []
    for summary in client.api.containers(all=True, filters={"label": [LABEL_SCOPE]}):
        if not (summary.get("Labels") or {}).get(LABEL_SCOPE, "").startswith(SESSION_SCOPE):
            continue
        try:
            client.api.remove_container(summary["Id"], force=True)
            removed.extend(n.lstrip("/") for n in summary.get("Names") or [])
        except Exception:  # already gone
            pass
    return removed


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """A connected docker.DockerClient; installs/starts the engine when possible."""
    client, why = _connect()
    if client is None:
        if os.geteuid() != 0:
            _give_up(f"{why} (not root, so scripts/install-docker.sh was not run)")
        try:
            done = subprocess.run(
                ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=300, check=False
            )
        except subprocess.TimeoutExpired:
            _give_up("scripts/install-docker.sh did not finish within 300 s")
        if done.returncode != 0:
            _give_up(f"scripts/install-docker.sh failed: {(done.stderr or done.stdout).strip()[-800:]}")
        client, why = _connect()
        if client is None:
            _give_up(why)
    # Every ContainerRuntime made from now on, here or in child processes (a
    # scheduler under test), works in this session's scope: it labels its
    # containers with it and lists no others. Other test runs and a developer's
    # mesh on the same engine neither see nor remove ours, nor we theirs.
    previous = os.environ.get(SCOPE_ENV)
    os.environ[SCOPE_ENV] = SESSION_SCOPE
    try:
        yield client
    finally:
        if previous is None:
            os.environ.pop(SCOPE_ENV, None)
        else:
            os.environ[SCOPE_ENV] = previous
        remove_test_containers(client)
        client.close()


def start_image_prebuild(*, agent: bool, node_base: bool) -> None:
    """Build the agent image (`agent`) and the Node base image (`node_base`) in a background thread,
    when we are root (debootstrap) and a Docker engine already answers; otherwise do nothing and
    leave it to the fixtures (which install the engine where they can). The thread is joined when
    the interpreter exits, so a session that ends early leaves no build running."""
    global _prebuild
    if not (agent or node_base) or _prebuild is not None or os.geteuid() != 0:
        return
    client, _ = _connect()
    if client is None:
        return

    def build() -> None:
        from sutradhar.services.scheduler.images import build_agent_image, build_node_base_image

        try:
            if agent:
                build_agent_image(client=client, progress=lambda line: _prebuild_lines.append(f"[agent image] {line}"))
            if node_base:
                build_node_base_image(client=client,
                                      progress=lambda line: _prebuild_lines.append(f"[node base image] {line}"))
        finally:
            client.close()

    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="image-prebuild")
    _prebuild = pool.submit(build)
    pool.shutdown(wait=False)


def wait_image_prebuild() -> None:
    """Wait for the session's background image build, if one runs. Its failure is not raised
    here: the fixture's own build, run next, reports it (or builds what it could not)."""
    if _prebuild is None:
        return
    began = time.monotonic()
    try:
        _prebuild.result()
    except Exception as err:
        print("\n".join(_prebuild_lines[-20:]), flush=True)
        print(f"[image prebuild] failed, building in the fixture instead: {err}", flush=True)
    else:
        print(f"[image prebuild] done ({len(_prebuild_lines)} lines of progress; waited "
              f"{time.monotonic() - began:.0f} s for it)", flush=True)


@pytest.fixture(scope="session")
def agent_image(docker_engine: Any) -> str:
    """The echo agent image's tag, built once (reused when up to date)."""
    from sutradhar.services.scheduler.images import build_agent_image

    def progress(line: str) -> None:
        print(f"[agent image] {line}", flush=True)

    wait_image_prebuild()
    try:
        built = build_agent_image(client=docker_engine, progress=progress)
    except Exception as err:
        if _in_ci():
            raise
        if os.geteuid() != 0:  # debootstrap needs root
            pytest.skip(f"cannot build the agent image: {err}")
        raise
    return built.tags[0]


async def wait_serving(endpoint: str, *, within: float = 30.0, service: str = "") -> None:
    """Wait until grpc.health.v1 answers SERVING at `endpoint` (a 127.0.0.1 address)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from tests.support import eventually

    assert endpoint.startswith("127.0.0.1:"), f"tests talk to loopback only, not {endpoint}"
    last = "no answer"
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        async def serving() -> bool:
            nonlocal last
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
            except grpc.aio.AioRpcError as err:
                last = f"{err.code().name}: {err.details()}"
                return False
            last = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            return answer.status == health_pb2.HealthCheckResponse.SERVING

        await eventually(serving, within=within, period=0.1, what=lambda: f"{endpoint} not SERVING (last: {last})")
