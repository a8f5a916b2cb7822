"""Process identity from /proc: a pid alone can be reused by an unrelated process."""

from __future__ import annotations

from pathlib import Path


def proc_start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses
    rest = raw[raw.rindex(")") + 2:].split()
    state, ticks = rest[0], rest[19]
    if state in ("Z", "X"):
        return None
    return int(ticks)


def same_process(pid: int, ticks: int) -> bool:
    """Whether `pid` is still the process that had start time `ticks` (not a reused pid)."""
    return pid > 0 and ticks > 0 and proc_start_ticks(pid) == ticks
