"""Type-check the distribution as the one package it installs as: `sutradhar`.

pyproject's `package-dir` maps three source folders onto one package: sdk/sutradhar is
`sutradhar`, services/ is `sutradhar.services`, cli/ is `sutradhar.cli`. mypy given the
folders (``mypy sdk/sutradhar cli services``) names the files by their folders (``services.router``)
while the code imports ``sutradhar.services.router``: every import across the three resolves to
nothing and is silently `Any` (ignore_missing_imports), so a wrong type passed from the router to
the SDK, or from the CLI to a client, is never seen. This builds the installed layout out of
symbolic links in `.typecheck/` (recreated each run, ignored by git) and runs ``mypy -p sutradhar``
there with the project's configuration, printing paths as they are in the work tree.

    .venv/bin/python scripts/typecheck.py      (what `make lint` runs)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".typecheck"
#: Where each part of the installed package comes from (pyproject.toml's package-dir).
PARTS = {"services": ROOT / "services", "cli": ROOT / "cli"}


def build_tree() -> Path:
    """`.typecheck/sutradhar`: sdk/sutradhar's entries, with services/ and cli/ beside them."""
    shutil.rmtree(TREE, ignore_errors=True)
    package = TREE / "sutradhar"
    package.mkdir(parents=True)
    for entry in (ROOT / "sdk" / "sutradhar").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, source in PARTS.items():
        (package / name).symlink_to(source)
    return package


def work_tree_path(line: str) -> str:
    """A mypy line with its `sutradhar/...` path turned back into the work tree's."""
    for name in PARTS:
        prefix = f"sutradhar/{name}/"
        if line.startswith(prefix):
            return f"{name}/" + line[len(prefix):]
    return "sdk/" + line if line.startswith("sutradhar/") else line


def main() -> int:
    build_tree()
    mypy = Path(sys.executable).with_name("mypy")
    done = subprocess.run(
        [str(mypy) if mypy.exists() else "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(ROOT / ".mypy_cache"), "-p", "sutradhar"],
        cwd=TREE, capture_output=True, text=True, check=False, env={**os.environ, "MYPYPATH": ""},
    )
    for line in done.stdout.splitlines():
        print(work_tree_path(line))
    if done.stderr:
        print(done.stderr, end="", file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
