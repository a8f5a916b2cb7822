"""services/scheduler/runtimes/config_schemas: one table of the runtimes'
config schemas, each a pure module beside its runtime."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar.services.scheduler.runtimes import config_schemas
from sutradhar.services.scheduler.runtimes.config_schemas import RUNTIMES, SCHEMAS, validate_runtime_config

RUNTIMES_DIR = Path(config_schemas.__file__).parent
SCHEMA_MODULES = sorted(RUNTIMES_DIR.glob("*_config.py"))
#: What a schema module may import: the SDK's private rule modules, services.common, other schemas, stdlib.
ALLOWED_PREFIXES = ("sutradhar._", "sutradhar.services.common", "sutradhar.services.scheduler.runtimes")


def test_runtimes_are_the_table_keys_in_message_order() -> None:
    assert RUNTIMES == ("in-process", "process", "container", "http")
    for name, schema in SCHEMAS.items():
        assert schema.runtime == name
        assert schema.keys and len(set(schema.keys)) == len(schema.keys)


def test_every_schema_module_is_in_the_table() -> None:
    names = {path.stem.removesuffix("_config").replace("_", "-") for path in SCHEMA_MODULES}
    assert names == set(RUNTIMES)


@pytest.mark.parametrize("path", [*SCHEMA_MODULES, RUNTIMES_DIR / "config_schemas.py"], ids=lambda p: p.name)
def test_schema_modules_import_no_runtime_implementation(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            if module == "__future__" or module.split(".")[0] in sys.stdlib_module_names:
                assert module.split(".")[0] not in {"subprocess", "asyncio", "resource"}, (path.name, module)
                continue
            assert module.startswith(ALLOWED_PREFIXES), (path.name, module)
            if module.startswith("sutradhar.services.scheduler.runtimes"):
                imported = [alias.name for alias in node.names] if isinstance(node, ast.ImportFrom) else []
                assert all(name.endswith("_config") for name in imported), (path.name, imported)


def test_unknown_keys_are_named_with_the_valid_ones() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_runtime_config("container", {"image": "x:1", "imgae": "y", "zzz": 1})
    assert err.value.field == "agent.config.imgae"
    assert str(err.value) == (
        'agent.config.imgae: unknown key(s) "imgae", "zzz" for runtime "container" '
        '(valid: image, env, port, metrics, command, files)'
    )


@pytest.mark.parametrize(
    ("runtime", "config", "field", "message"),
    [
        ("process", {"command": []}, "agent.config.command", "must not be empty"),
        ("process", {"limits": {"open_files": 8}}, "agent.config.limits.open_files", "8 is out of range (16 to"),
        ("container", {}, "agent.config.image", 'is required for runtime "container"'),
        ("process", {"metrics": "no"}, "agent.config.metrics", '"no" must be true or false'),
        ("container", {"image": "x:1", "metrics": 0}, "agent.config.metrics", "0 must be true or false"),
        ("http", {"url": "ftp://x"}, "agent.config.url", '"ftp://x" is not an http(s) URL'),
        ("http", {}, "agent.config.urls", 'is required for runtime "http"'),
        ("in-process", {"class": "nocolon"}, "agent.config.class", '"nocolon" is not "module.path:ClassName"'),
    ],
)
def test_each_runtime_checks_its_own_fields(runtime: str, config: dict, field: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_runtime_config(runtime, config)
    assert err.value.field == field
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("runtime", "config"),
    [
        ("process", {}),  # no command: an agent that registers its instances itself
        ("process", {"command": ["python", "-m", "x"], "env": {"A": "1"}, "port": 8080.0,
                     "limits": {"cpu_seconds": 5}}),
        ("container", {"image": "my-agent:1.0", "port": 50051}),
        ("container", {"image": "my-agent:1.0", "metrics": False}),
        ("process", {"command": ["python"], "metrics": True}),
        ("http", {"urls": ["http://127.0.0.1:8080", "https://example.com"]}),
        ("in-process", {"class": "pkg.mod:Echo", "kwargs": {}}),
    ],
)
def test_valid_configs_pass(runtime: str, config: dict) -> None:
    validate_runtime_config(runtime, config)


@pytest.mark.parametrize(
    ("runtime", "config", "field"),
    [
        ("process", {"env": {"PORT\n": "1"}}, "agent.config.env"),
        ("process", {"port_env": "PORT\n"}, "agent.config.port_env"),
        ("in-process", {"class": "pkg.mod:Echo\n"}, "agent.config.class"),
    ],
)
def test_a_trailing_newline_is_not_part_of_a_name(runtime: str, config: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_runtime_config(runtime, config)
    assert err.value.field == field


def test_the_schemas_load_without_the_scheduler_or_its_dependencies():
    # The registry validates agents against these schemas: importing them must not
    # start loading the scheduler's server, controller, etcd client or Docker.
    import subprocess
    import sys

    heavy = ["sutradhar.services.scheduler.server", "sutradhar.services.scheduler.controller",
             "aetcd", "docker", "httpx"]
    code = ("import sys, sutradhar.services.scheduler.runtimes.config_schemas; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
