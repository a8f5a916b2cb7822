"""Semantic versions (semver 2.0.0) and npm-style version ranges.

One thin, cached layer over the pinned `semantic_version` library (a base
dependency of the SDK: docs/decisions/) so the SDK and every service read
versions and ranges the same way::

    >>> matches("1.4.2", "^1.4")
    True
    >>> matches("2.0.0", ">=1.2 <2")
    False

Ranges use npm syntax: comparators (``>=2.0.0``, ``<2``), caret (``^1.4``),
tilde (``~1.2``), x-ranges (``1.x``, ``*``), hyphen ranges (``1.2 - 1.4``),
space for AND and ``||`` for OR. As in npm, a pre-release version only
matches a range that names a pre-release of the same MAJOR.MINOR.PATCH.
Malformed input raises `InvalidArgument` whose `field` is the caller's
field name, so the message a user sees names what they typed wrong.
"""

from __future__ import annotations

from functools import lru_cache

import semantic_version

from sutradhar._errors import InvalidArgument

__all__ = [
    "is_valid_version",
    "matches",
    "parse_range",
    "parse_version",
]

Version = semantic_version.Version
Range = semantic_version.NpmSpec

_MAX_LEN = 256


@lru_cache(maxsize=4096)
def _version(text: str) -> semantic_version.Version:
    if text.endswith("\n"):  # the library's pattern ends in `$`, which also matches before a final newline
        raise ValueError(f"invalid version string: {text!r}")
    return semantic_version.Version(text)


@lru_cache(maxsize=1024)
def _range(text: str) -> semantic_version.NpmSpec:
    return semantic_version.NpmSpec(text)


def parse_version(text: str, *, field: str = "version") -> semantic_version.Version:
    """Parse a semver 2.0.0 version (``MAJOR.MINOR.PATCH[-pre][+build]``).

    Raises InvalidArgument naming `field` when `text` is not one.
    """
    if not isinstance(text, str) or not text:
        raise InvalidArgument(
            f"{field}: a semantic version is required (expected MAJOR.MINOR.PATCH, e.g. 1.4.0)", field=field
        )
    if len(text) > _MAX_LEN:
        raise InvalidArgument(f"{field}: version is longer than {_MAX_LEN} characters", field=field)
    try:
        return _version(text)
    except ValueError:
        raise InvalidArgument(
            f'{field}: "{text}" is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. 1.4.0)',
            field=field,
        ) from None


def is_valid_version(text: str) -> bool:
    """True when `text` is a semver 2.0.0 version."""
    try:
        parse_version(text)
    except InvalidArgument:
        return False
    return True


def parse_range(text: str, *, field: str = "version_range") -> semantic_version.NpmSpec:
    """Parse an npm-style range such as ``>=1.2 <2``, ``^1.4``, ``~1.2``, ``1.x`` or ``*``.

    Raises InvalidArgument naming `field` when `text` is malformed. An empty
    range is refused: callers treat "no range" as "no filter" before calling.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"{field}: a version range is required (e.g. >=1.2 <2, ^1.4 or *)", field=field)
    if len(text) > _MAX_LEN:
        raise InvalidArgument(f"{field}: version range is longer than {_MAX_LEN} characters", field=field)
    try:
        return _range(text.strip())
    except ValueError:
        raise InvalidArgument(
            f'{field}: "{text}" is not a valid npm-style version range '
            "(e.g. >=2.0.0, ^1.4, >=1.2 <2, ~1.2, 1.x or *)",
            field=field,
        ) from None


@lru_cache(maxsize=16384)
def _matches(version: str, range_text: str) -> bool:
    try:
        v = _version(version)
    except ValueError:
        return False
    return _range(range_text).match(v)


def matches(version: str, range_text: str) -> bool:
    """True when `version` satisfies the npm-style range `range_text`.

    An empty range matches every valid version; an invalid version matches
    nothing. Raises InvalidArgument (field "version_range") when the range is
    malformed. Results are cached, so calling it per request is cheap.
    """
    if not range_text or not range_text.strip():
        return is_valid_version(version)
    parse_range(range_text)
    return _matches(version, range_text.strip())
