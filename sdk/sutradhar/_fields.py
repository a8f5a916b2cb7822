"""Errors that name the offending field, written one way.

Every rule module raises `InvalidArgument` whose `field` is the dotted path of
the bad input and whose message starts with that path::

    agent.version: "banana" is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. 1.4.0)
"""

from __future__ import annotations

import json
from typing import Any

from sutradhar._errors import InvalidArgument

__all__ = ["field_error", "one_of", "quote"]


def field_error(field: str, message: str) -> InvalidArgument:
    """An InvalidArgument for `field`, its message prefixed with the field's path."""
    return InvalidArgument(f"{field}: {message}", field=field)


def quote(value: Any) -> str:
    """A value as a message shows it: strings JSON-quoted, anything else as its repr."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def one_of(values: tuple[str, ...]) -> str:
    """The valid values of a field, quoted and comma-separated: '"a", "b"'."""
    return ", ".join(f'"{v}"' for v in values)
