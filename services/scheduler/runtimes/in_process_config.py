"""The "in-process" runtime's config: the agent class to load, and its arguments.

Pure (imports nothing it names): the registry checks an agent against it at
RegisterAgent.
"""

from __future__ import annotations

import re
from typing import Any, Final

from sutradhar._fields import field_error, quote
from sutradhar.services.common.config_fields import ConfigSchema, check_string

__all__ = ["SCHEMA"]

_PY_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
_CLASS_RE = re.compile(rf"^{_PY_DOTTED}:{_PY_DOTTED}$")


def _class(cfg: dict[str, Any], field: str) -> None:
    if "class" not in cfg:
        raise field_error(f"{field}.class", 'is required for runtime "in-process" (e.g. "my_pkg.agents:EchoAgent")')
    value = check_string(cfg["class"], f"{field}.class")
    if not _CLASS_RE.fullmatch(value):
        raise field_error(f"{field}.class", f'{quote(value)} is not "module.path:ClassName"')


def _kwargs(value: Any, field: str) -> None:
    if not isinstance(value, dict):
        raise field_error(field, f"must be an object, not {type(value).__name__}")


SCHEMA: Final = ConfigSchema(runtime="in-process", fields={"class": None, "kwargs": _kwargs}, check=_class)
