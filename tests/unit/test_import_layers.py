"""Which package may import which, read from the source with `ast` (no imports run).

The layers, lowest first:

1. the SDK, in three tiers:
   a. its pure rules (`SDK_RULES`: errors, names, labels, versions, strategy names, values,
      back-off, token buckets, rate-limit specs) and the generated `sutradhar.v1`: only each other;
   b. the routing core (`sutradhar._routing`), which the router service and the SDK's callers
      both route with: the rules and itself, so it never reaches the SDK's I/O (clients,
      hosting, TLS) and stays free of everything the base install lacks;
   c. the rest of the SDK (`sutradhar`, `sutradhar._*`, `sutradhar.testing`,
      `sutradhar.conformance`, `sutradhar.serve`): the whole SDK;
2. `sutradhar.services.common`: the SDK and common;
3. the runtimes' config schemas (`sutradhar.services.scheduler.runtimes.config_schemas`
   and one pure `<runtime>_config` module per runtime): the SDK, common and each other.
   They sit with their runtimes, but the registry validates an agent's `config` against
   them at RegisterAgent, so they are a layer of their own beneath every service;
4. each service (`sutradhar.services.<registry|router|scheduler|health>`): the SDK,
   common, the runtime config schemas and itself, never another service;
5. `sutradhar.cli`: anything.

Every import counts, at module level or inside a function, `TYPE_CHECKING` or not.
To change the rules, edit `MAY_IMPORT` (and `LAYER_OF` for a new package).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Source directory -> the package it installs as (pyproject's [tool.setuptools.package-dir]).
SOURCES: dict[str, str] = {
    "sdk/sutradhar": "sutradhar",
    "services": "sutradhar.services",
    "cli": "sutradhar.cli",
}
GENERATED = "sutradhar.v1"  # not scanned (generated), but a layer others import

# The SDK's pure rules: no I/O, nothing beyond grpcio, protobuf and semantic-version.
SDK_RULES = ("_backoff", "_errors", "_fields", "_labels", "_names", "_ratelimit_spec", "_semver",
             "_strategy_names", "_token_bucket", "_values")

# Module prefix -> layer; the longest matching prefix wins.
LAYER_OF: dict[str, str] = {
    "sutradhar": "sdk",
    **{f"sutradhar.{name}": "sdk-rules" for name in SDK_RULES},
    GENERATED: "sdk-rules",
    "sutradhar._routing": "routing",
    "sutradhar.services": "common",  # the services' namespace package (a docstring only)
    "sutradhar.services.common": "common",
    "sutradhar.services.registry": "registry",
    "sutradhar.services.router": "router",
    "sutradhar.services.scheduler": "scheduler",
    "sutradhar.services.health": "health",
    # the runtimes' config schemas: config_schemas.py and every <runtime>_config.py beside it
    **{f"sutradhar.services.scheduler.runtimes.{path.stem}": "runtime-config"
       for path in sorted((ROOT / "services/scheduler/runtimes").glob("*.py"))
       if path.stem == "config_schemas" or path.stem.endswith("_config")},
    "sutradhar.cli": "cli",
}

SERVICES = ("registry", "router", "scheduler", "health")

# Layer -> the layers it may import. THE rule table.
SDK = ("sdk-rules", "routing", "sdk")  # the SDK's tiers: a layer that may import the SDK may import all three
MAY_IMPORT: dict[str, frozenset[str]] = {
    "sdk-rules": frozenset({"sdk-rules"}),
    "routing": frozenset({"sdk-rules", "routing"}),
    "sdk": frozenset(SDK),
    "common": frozenset({*SDK, "common"}),
    "runtime-config": frozenset({*SDK, "common", "runtime-config"}),
    **{service: frozenset({*SDK, "common", "runtime-config", service}) for service in SERVICES},
    "cli": frozenset({*SDK, "common", "runtime-config", *SERVICES, "cli"}),
}

# Known violations being removed on other branches of issue 8 (importer module,
# imported module) -> why it is still here. Empty this as they are fixed;
# test_the_allow_list_names_only_live_violations fails on an entry that no longer occurs.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    """One import statement's edge: `module` (in `path` at `line`) imports `target`."""

    module: str
    path: str
    line: int
    target: str

    @property
    def rule(self) -> str:
        return f"layer {layer_of(self.module)} may not import layer {layer_of(self.target)}"

    def __str__(self) -> str:
        return f"{self.module} ({self.path}:{self.line}) imports {self.target}: {self.rule}"


def layer_of(module: str) -> str:
    """The layer of a `sutradhar` module (AssertionError naming LAYER_OF for an unknown package)."""
    prefixes = [p for p in LAYER_OF if module == p or module.startswith(p + ".")]
    assert prefixes, f"{module} is in no layer: add its package to LAYER_OF in {Path(__file__).name}"
    if max(prefixes, key=len) == "sutradhar.services" and module != "sutradhar.services":
        raise AssertionError(f"{module}: a new service? add it to LAYER_OF and SERVICES in {Path(__file__).name}")
    return LAYER_OF[max(prefixes, key=len)]


def _sources() -> dict[str, Path]:
    """Every scanned module's dotted name -> its file."""
    modules: dict[str, Path] = {}
    for directory, package in SOURCES.items():
        base = ROOT / directory
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([package, *parts])
            if name == GENERATED or name.startswith(GENERATED + "."):
                continue
            modules[name] = path
    return modules


def _imports(module: str, path: Path, known: set[str]) -> list[Import]:
    """The `sutradhar` modules that `module` imports, relative imports resolved."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    where = str(path.relative_to(ROOT))
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=where)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            # `from pkg import sub` imports the module pkg.sub when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found += [Import(module, where, node.lineno, t) for t in dict.fromkeys(targets)
                  if t == "sutradhar" or t.startswith("sutradhar.")]
    return found


def _violations() -> list[Import]:
    modules = _sources()
    known = set(modules)
    return [edge for module, path in modules.items() for edge in _imports(module, path, known)
            if layer_of(edge.target) not in MAY_IMPORT[layer_of(module)]]


def test_every_package_imports_only_the_layers_beneath_it() -> None:
    unexpected = [edge for edge in _violations() if (edge.module, edge.target) not in ALLOWED]
    assert not unexpected, "imports against the layering (see MAY_IMPORT):\n" + "\n".join(map(str, unexpected))


def test_the_allow_list_names_only_live_violations() -> None:
    live = {(edge.module, edge.target) for edge in _violations()}
    stale = [f"{module} -> {target} ({why})" for (module, target), why in ALLOWED.items()
             if (module, target) not in live]
    assert not stale, "fixed: remove from ALLOWED:\n" + "\n".join(stale)


def test_the_scan_sees_every_package_and_resolves_relative_imports() -> None:
    modules = _sources()
    assert {"sutradhar", "sutradhar._hosting", "sutradhar.cli.main", "sutradhar.services.router.server",
            "sutradhar.services.health.manager"} <= set(modules)
    assert not any(m.startswith(GENERATED) for m in modules)
    health = _imports("sutradhar.services.health.manager", modules["sutradhar.services.health.manager"], set(modules))
    assert {"sutradhar.services.common.keys", "sutradhar.services.health.events"} <= {e.target for e in health}
    for module in modules:
        assert layer_of(module) in MAY_IMPORT


def test_a_violation_names_the_file_line_and_the_rule() -> None:
    edge = Import("sutradhar._clients", "sdk/sutradhar/_clients.py", 7, "sutradhar.services.router.engine")
    assert str(edge) == ("sutradhar._clients (sdk/sutradhar/_clients.py:7) imports sutradhar.services.router.engine: "
                         "layer sdk may not import layer router")


def test_the_sdk_tiers_keep_the_routing_core_off_the_sdks_io() -> None:
    modules = _sources()
    missing = [name for name in SDK_RULES if f"sutradhar.{name}" not in modules]
    assert not missing, f"SDK_RULES names modules that do not exist: {missing}"
    assert {m for m in modules if m.startswith("sutradhar._routing.")} >= {
        "sutradhar._routing.policy", "sutradhar._routing.selection", "sutradhar._routing.view"}
    assert layer_of("sutradhar._routing.view") == "routing"
    assert layer_of("sutradhar._semver") == layer_of("sutradhar.v1.routing_pb2") == "sdk-rules"
    assert layer_of("sutradhar._clients") == "sdk"
    edge = Import("sutradhar._routing.view", "sdk/sutradhar/_routing/view.py", 3, "sutradhar._clients")
    assert layer_of(edge.target) not in MAY_IMPORT[layer_of(edge.module)]
    assert edge.rule == "layer routing may not import layer sdk"
    rules = Import("sutradhar._semver", "sdk/sutradhar/_semver.py", 3, "sutradhar._routing.policy")
    assert layer_of(rules.target) not in MAY_IMPORT[layer_of(rules.module)]
    for user in ("sdk", "common", "router", "cli"):
        assert {"sdk-rules", "routing", "sdk"} <= MAY_IMPORT[user]
