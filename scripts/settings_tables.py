"""Rewrite the flag / environment tables in docs/ from the config dataclasses.

Usage: python scripts/settings_tables.py [--check]

Each table sits between ``<!-- settings: NAME -->`` and ``<!-- /settings -->``
in the page that describes running that server; its rows come from
`sutradhar._settings.Settings.table()`, so the docs cannot drift from the
flags. With --check nothing is written and the exit status is 1 when a table
is stale (the unit test does the same).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: Table name -> (page, the module holding its Settings, the attribute).
TABLES: dict[str, tuple[str, str, str]] = {
    "agent": ("docs/writing-an-agent.md", "sutradhar._serve_settings", "SERVE_SETTINGS"),
    "registry": ("docs/configuration.md", "sutradhar.services.registry.config", "SETTINGS"),
    "router": ("docs/router.md", "sutradhar.services.router.config", "SETTINGS"),
    "scheduler": ("docs/scheduler.md", "sutradhar.services.scheduler.config", "SETTINGS"),
    "health": ("docs/health.md", "sutradhar.services.health.config", "SETTINGS"),
}


def _settings(module: str, attribute: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module), attribute)


def block(name: str) -> re.Pattern[str]:
    """The marked block of table `name`, the table itself as group 1."""
    return re.compile(rf"(?s)<!-- settings: {name} -->\n(.*?)<!-- /settings -->")


def render(text: str, name: str, table: str) -> str:
    """`text` with table `name` replaced by `table`; ValueError when the page has no such block."""
    pattern = block(name)
    if not pattern.search(text):
        raise ValueError(f"no <!-- settings: {name} --> block")
    return pattern.sub(lambda _: f"<!-- settings: {name} -->\n{table}<!-- /settings -->", text, count=1)


def stale() -> list[str]:
    """Rewrite every stale page (or, under --check, only list them): "page (table)"."""
    found = []
    for name, (page, module, attribute) in TABLES.items():
        path = ROOT / page
        text = path.read_text()
        fresh = render(text, name, _settings(module, attribute).table())
        if fresh != text:
            found.append(f"{page} ({name})")
            if "--check" not in sys.argv:
                path.write_text(fresh)
    return found


if __name__ == "__main__":
    changed = stale()
    for item in changed:
        print(("stale: " if "--check" in sys.argv else "rewrote: ") + item)
    sys.exit(1 if changed and "--check" in sys.argv else 0)
