"""The flag / environment tables in docs/ are the config dataclasses' own
(scripts/settings_tables.py writes them), so the docs cannot drift."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():  # scripts/ is not a package
    spec = importlib.util.spec_from_file_location("settings_tables", ROOT / "scripts" / "settings_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_servers_table_is_in_its_page_and_fresh() -> None:
    script = _script()
    assert set(script.TABLES) == {"agent", "registry", "router", "scheduler", "health"}
    for name, (page, module, attribute) in script.TABLES.items():
        text = (ROOT / page).read_text()
        found = script.block(name).search(text)
        assert found, f"{page} has no <!-- settings: {name} --> block"
        table = getattr(importlib.import_module(module), attribute).table()
        assert found.group(1) == table, f"{page}'s {name} table is stale: run python scripts/settings_tables.py"


def test_the_configuration_page_names_every_historical_variable() -> None:
    text = "".join((ROOT / page).read_text() for page, _, _ in _script().TABLES.values())
    for env in ("SUTRADHAR_ROUTER_PORT", "SUTRADHAR_REGISTRY", "SUTRADHAR_ETCD", "SUTRADHAR_PORT",
                "SUTRADHAR_LOG_LEVEL", "SUTRADHAR_ROUTER_EVENT_LOOP", "SUTRADHAR_SCHEDULER_STATE_DIR",
                "SUTRADHAR_HEALTH_MEMBER_TTL", "SUTRADHAR_REGISTRY_PORT", "SUTRADHAR_SCHEDULER_BACKOFF_BASE"):
        assert f"`{env}`" in text, env
