"""Shared fixtures: a real etcd for the whole session, started on a free port.

Unit tests (tests/unit) never touch these. Integration tests get `etcd` (the
endpoint) and `store`, and start services on port 0 in the test process or as
real child processes. Tests isolate themselves with unique namespaces and ids
(see `unique`), so no test has to wipe etcd.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

_counter = itertools.count()

# Tests never read (or write) the developer's credential file: clients built without
# credentials find no context and speak plaintext to the insecure test meshes, and any
# `sutradhar up` a test starts writes its context here.
_CREDENTIALS_DIR = Path(tempfile.mkdtemp(prefix="sutradhar-test-credentials-"))
os.environ["SUTRADHAR_CREDENTIALS"] = str(_CREDENTIALS_DIR / "credentials.yaml")
os.environ.pop("SUTRADHAR_CONTEXT", None)


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def pytest_configure(config: pytest.Config) -> None:
    """A SIGTERM (a CI job cancelled, `timeout`, `kill`) stops the session as Ctrl-C does, so the
    fixtures' teardown still stops their etcd, processes and containers; Python's default for
    SIGTERM is to die at once, leaving them running."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)


def pytest_collection_finish(session: pytest.Session) -> None:
    """When the collected tests need the Docker images, start building them now, in the background
    (`tests.docker_support.start_image_prebuild`), so the tests that come before them overlap the build."""
    if session.config.option.collectonly:
        return
    needed: set[str] = set()
    for item in session.items:
        needed.update(getattr(item, "fixturenames", ()))
    from tests import docker_support

    docker_support.start_image_prebuild(agent="agent_image" in needed, node_base="node_agent_image" in needed)


@pytest.fixture(scope="session")
def etcd() -> Iterator[str]:
    """Endpoint ("host:port") of a real etcd started for this test session.

    SUTRADHAR_TEST_ETCD=host:port uses an etcd that already runs instead.
    """
    external = os.environ.get("SUTRADHAR_TEST_ETCD")
    if external:
        yield external
        return
    from sutradhar.services.common.etcd_server import LocalEtcd, free_port

    root = Path(tempfile.mkdtemp(prefix="sutradhar-test-etcd-"))
    server = LocalEtcd(root / "data", client_port=free_port(), log_path=root / "etcd.log")
    server.start()
    try:
        yield server.endpoint
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def secure_etcd() -> Iterator[object]:
    """A real etcd with TLS and client-certificate auth for this session, and its CA
    (`tests.secure_support.SecureEtcd`): secured meshes issue their certificates from it."""
    from tests.secure_support import start_secure_etcd

    root = Path(tempfile.mkdtemp(prefix="sutradhar-test-secure-etcd-"))
    server, secured = start_secure_etcd(root)
    try:
        yield secured
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def store(etcd: str) -> AsyncIterator[object]:
    """A Store connected to the session etcd."""
    from sutradhar.services.common.store import EtcdEndpoint, Store

    s = Store(EtcdEndpoint.parse(etcd))
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def unique() -> str:
    """A short unique DNS-1123 label for namespaces and ids in this test."""
    return f"t{next(_counter)}-{uuid.uuid4().hex[:6]}"
