"""Config dataclasses as command-line flags and ``SUTRADHAR_*`` environment variables.

Every server (the SDK's agent server and the four services) has one frozen
config dataclass: a default and a docstring per field, durations as
`timedelta`. `Settings` derives the rest from it, so no option is written out
twice::

    field ``max_message_bytes`` of a config whose env prefix is ``"ROUTER_"``
        flag  --max-message-bytes
        env   SUTRADHAR_ROUTER_MAX_MESSAGE_BYTES   (``setting(shared=True)``: SUTRADHAR_MAX_MESSAGE_BYTES)
        help  the field's docstring, then "(env ...; default ...)"
        kind  from the annotation: str, int, float, bool, timedelta, Path, X | None,
              Mapping[str, str] (repeatable ``--flag k=v``; env ``k=v,k2=v2``)

A field declares what cannot be derived with `setting(...)` (a shared or
historical env name, a stricter kind such as `PORT`, choices). A value is
taken in the order explicit (a flag, or a keyword argument) > environment >
default; an empty variable counts as unset. A bad value is one line naming
where it came from, the flag and the variable, and what is expected
(`SettingError`), e.g. ``SUTRADHAR_PORT='http' is not a port number (0-65535);
set --port or SUTRADHAR_PORT``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import os
import re
import textwrap
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

#: Prefix of every environment variable a setting reads.
ENV_PREFIX = "SUTRADHAR_"

#: Logging levels, as `logging` names them.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: Log line formats (`sutradhar._logs`): text as it always was, or one JSON object per line.
LOG_FORMATS = ("text", "json")

_METADATA_KEY = "sutradhar.setting"

C = TypeVar("C")


class SettingError(ValueError):
    """A setting's value is not what it must be; the message is one line that
    names where the value came from, the flag and the variable, and what is expected."""


@dataclass(frozen=True)
class Kind:
    """How the text of a flag or variable becomes a value."""

    expected: str
    """What the text must be, after "is not": "an integer", "a port number (0-65535)"."""
    parse: Callable[[str], Any]
    """Text to value; raises ValueError when the text is not `expected`."""
    metavar: str = "VALUE"
    """Placeholder in --help."""
    repeated: bool = False
    """The flag may be given several times and the variable holds a comma-separated list."""
    combine: Callable[[list[Any]], Any] = list
    """Values of a repeated setting to one value."""


def _integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.strip())
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(text)
        return value

    return parse


def _float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(text)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, *, positive: bool = False) -> timedelta:
    """``"10"`` (seconds), ``"0.5s"``, ``"250ms"``, ``"5m"``, ``"1h"`` as a timedelta;
    ValueError for anything else, a negative duration, or zero when `positive`."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(text)
    value = timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if positive and value <= timedelta(0):
        raise ValueError(text)
    return value


def format_duration(value: timedelta) -> str:
    """A duration as `parse_duration` reads it back: "10s", "250ms", "0.05s"."""
    seconds = value.total_seconds()
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    millis = seconds * 1000
    if millis == int(millis):
        return f"{int(millis)}ms"
    return f"{seconds:g}s"


def parse_pairs(items: Iterable[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict (keys and values stripped); ValueError naming a malformed item."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


_DURATION_HELP = "seconds, or a number with a unit: 250ms, 10s, 5m, 1h"

TEXT = Kind("text", str, "TEXT")
INTEGER = Kind("an integer", _integer(), "N")
COUNT = Kind("a positive integer", _integer(1), "N")
NATURAL = Kind("an integer that is not negative", _integer(0), "N")
NUMBER = Kind("a number", _float, "X")
BOOLEAN = Kind(f"a boolean ({', '.join(_TRUE)} or {', '.join(_FALSE)})", _boolean, "BOOL")
PORT = Kind("a port number (0-65535)", _integer(0, 65535), "PORT")
DURATION = Kind(f"a duration of zero or more ({_DURATION_HELP})", parse_duration, "DURATION")
POSITIVE_DURATION = Kind(
    f"a duration above zero ({_DURATION_HELP})", lambda text: parse_duration(text, positive=True), "DURATION"
)
PATH = Kind("a path", Path, "PATH")
PAIRS = Kind("key=value", lambda text: parse_pairs([text]), "K=V", repeated=True,
             combine=lambda parts: {k: v for part in parts for k, v in part.items()})


def choice(*values: str, fold: Callable[[str], str] = str) -> Kind:
    """A kind that accepts one of `values` (after `fold`, e.g. `str.upper`)."""

    def parse(text: str) -> str:
        value = fold(text.strip())
        if value not in values:
            raise ValueError(text)
        return value

    return Kind(f"one of {', '.join(values)}", parse, "{" + ",".join(values) + "}")


LOG_LEVEL = dataclasses.replace(choice(*LOG_LEVELS, fold=str.upper), metavar="LEVEL")
LOG_FORMAT_KIND = dataclasses.replace(choice(*LOG_FORMATS, fold=str.lower), metavar="FORMAT")


@dataclass(frozen=True)
class _Declared:
    """What a field says about itself in `setting(...)`."""

    kind: Kind | None = None
    flag: str | None = None
    env: str | None = None
    shared: bool = False
    shown_default: str | None = None


def setting(
    default: Any = MISSING,
    *,
    default_factory: Callable[[], Any] | Any = MISSING,
    kind: Kind | None = None,
    flag: str | None = None,
    env: str | None = None,
    shared: bool = False,
    shown_default: str | None = None,
) -> Any:
    """A dataclass field with what `Settings` cannot derive from its name and type.

    `kind`: how its text is read (default: from the annotation). `flag`: the
    flag, when not ``--field-name``. `env`: the full variable name, when not
    derived. `shared`: the variable is ``SUTRADHAR_<NAME>`` without the
    config's prefix (SUTRADHAR_ETCD, SUTRADHAR_LOG_LEVEL, ...), meaning the
    same for every server. `shown_default`: the default as --help shows it,
    for a computed one.
    """
    metadata = {_METADATA_KEY: _Declared(kind, flag, env, shared, shown_default)}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def log_level_setting(default: str) -> Any:
    """The ``log_level`` field every server has: SUTRADHAR_LOG_LEVEL, one of `LOG_LEVELS`."""
    return setting(default, kind=LOG_LEVEL, shared=True)


def log_format_setting() -> Any:
    """The ``log_format`` field every server has: text (default) or json, one of `LOG_FORMATS`.
    Not shared: a service reads SUTRADHAR_<SVC>_LOG_FORMAT, an SDK agent SUTRADHAR_LOG_FORMAT,
    so a mesh can log JSON from its services while `up`'s own agents stay in text, or the reverse."""
    return setting("text", kind=LOG_FORMAT_KIND)


@dataclass(frozen=True)
class Option:
    """One field of a config dataclass as a flag and an environment variable."""

    name: str
    """The field."""
    flag: str
    """``--field-name``."""
    env: str
    """``SUTRADHAR_...``."""
    kind: Kind
    """How text becomes the value."""
    help: str
    """The field's docstring."""
    shown_default: str
    """The default as --help shows it."""

    def parse(self, text: str | Sequence[str], origin: str) -> Any:
        """The value of `text` (a list for a repeated flag) read from `origin`
        ("--flag" or the variable); SettingError naming both and what is expected."""
        parts = [text] if isinstance(text, str) else list(text)
        if self.kind.repeated and origin == self.env:
            parts = [p for item in parts for p in item.split(",") if p.strip()]
        values = []
        for part in parts:
            try:
                values.append(self.kind.parse(part))
            except ValueError:
                raise SettingError(
                    f"{origin}={part!r} is not {self.kind.expected}; set {self.flag} or {self.env}"
                ) from None
        if self.kind.repeated:
            return self.kind.combine(values)
        return values[-1]


def _field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string after each field), its
    bases' included, whitespace-folded; empty when its source is not available."""
    import ast  # here, not at the top: `import sutradhar` need not pay for ast and inspect
    import inspect

    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if base is object or not dataclasses.is_dataclass(base):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(base)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        docs.update(_docs_of_body(body))
    return docs


def _docs_of_body(body: list[Any]) -> dict[str, str]:
    import ast

    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.replace("`", "").split())
    return docs


_BY_TYPE: dict[Any, Kind] = {
    str: TEXT, int: INTEGER, float: NUMBER, bool: BOOLEAN, timedelta: DURATION, Path: PATH,
}


def _kind_of(annotation: Any, name: str) -> Kind:
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return _kind_of(inner[0], name)
    if origin in (Mapping, dict, typing.Mapping) and typing.get_args(annotation) == (str, str):
        return PAIRS
    if annotation in _BY_TYPE:
        return _BY_TYPE[annotation]
    raise TypeError(f"setting {name!r}: no kind for {annotation!r}; declare one with setting(kind=...)")


def _show(value: Any) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    if value is None:
        return "none"
    if value == "":
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


class Settings(Generic[C]):
    """The flags and environment variables of one config dataclass `config`.

    `env_prefix` goes between ``SUTRADHAR_`` and the field's name
    (``"ROUTER_"``: SUTRADHAR_ROUTER_PORT); the SDK's agent server has none
    (SUTRADHAR_PORT).
    """

    def __init__(self, config: type[C], *, env_prefix: str = "") -> None:
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"{config!r} is not a dataclass")
        self.config = config
        self.env_prefix = env_prefix

    @functools.cached_property
    def options(self) -> tuple[Option, ...]:
        """One per init field of `config`, in field order (derived on first use:
        importing a config costs nothing)."""
        hints = typing.get_type_hints(self.config)
        docs = _field_docs(self.config)
        options = []
        for f in dataclasses.fields(self.config):  # type: ignore[arg-type]  # checked in __init__
            if not f.init:
                continue
            declared: _Declared = f.metadata.get(_METADATA_KEY, _Declared())
            if declared.shown_default is not None:
                shown = declared.shown_default
            elif f.default is not MISSING:
                shown = _show(f.default)
            elif f.default_factory is not MISSING:
                shown = _show(f.default_factory())
            else:
                shown = "required"
            prefix = "" if declared.shared else self.env_prefix
            options.append(Option(
                name=f.name,
                flag=declared.flag or "--" + f.name.replace("_", "-"),
                env=declared.env or ENV_PREFIX + prefix + f.name.upper(),
                kind=declared.kind or _kind_of(hints[f.name], f.name),
                help=docs.get(f.name, ""),
                shown_default=shown,
            ))
        return tuple(options)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add one flag per option. Flags default to None (not given): `resolve`
        falls back to the environment, then to the field's default."""
        for option in self.options:
            repeatable = "repeatable; in the variable, separated by commas; " if option.kind.repeated else ""
            text = f"{option.help} ({repeatable}env {option.env}; default {option.shown_default})".replace("%", "%%")
            if option.kind is BOOLEAN:
                parser.add_argument(option.flag, dest=option.name, action=argparse.BooleanOptionalAction,
                                    default=None, help=text)
            elif option.kind.repeated:
                parser.add_argument(option.flag, dest=option.name, action="append", default=None,
                                    metavar=option.kind.metavar, help=text)
            else:
                metavar = option.name.upper() if option.kind is TEXT else option.kind.metavar
                parser.add_argument(option.flag, dest=option.name, default=None, metavar=metavar, help=text)

    def parser(self, prog: str, description: str | None = None) -> argparse.ArgumentParser:
        """An argument parser with every option's flag."""
        parser = argparse.ArgumentParser(prog=prog, description=description)
        self.add_arguments(parser)
        return parser

    def resolve(
        self,
        flags: argparse.Namespace | Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **explicit: Any,
    ) -> C:
        """The config: per field, a keyword in `explicit` that is not None, else
        the flag's text in `flags` (an argparse Namespace from `add_arguments`),
        else the variable in `environ` (default `os.environ`) when non-empty,
        else the field's default. SettingError for a bad flag or variable;
        TypeError for a keyword that is not a field."""
        environ = os.environ if environ is None else environ
        given = vars(flags) if isinstance(flags, argparse.Namespace) else dict(flags or {})
        unknown = set(explicit) - {o.name for o in self.options}
        if unknown:
            raise TypeError(f"{self.config.__name__} has no setting {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for option in self.options:
            if explicit.get(option.name) is not None:
                values[option.name] = explicit[option.name]
                continue
            flagged = given.get(option.name)
            if flagged is not None:
                values[option.name] = flagged if isinstance(flagged, bool) else option.parse(flagged, option.flag)
                continue
            text = environ.get(option.env)
            if text:
                values[option.name] = option.parse(text, option.env)
        return self.config(**values)

    def parse(
        self, parser: argparse.ArgumentParser, argv: Sequence[str] | None, *,
        environ: Mapping[str, str] | None = None,
    ) -> tuple[C, argparse.Namespace]:
        """Parse `argv` (default sys.argv[1:]) with `parser` (which has this
        config's flags, see `add_arguments`, and may have more) and `resolve`;
        a bad value exits like argparse does (status 2), with the one-line
        SettingError. Returns the config and the parsed flags."""
        args = parser.parse_args(argv)
        try:
            return self.resolve(args, environ=environ), args
        except SettingError as err:
            parser.exit(2, f"{parser.prog}: error: {err}\n")

    def load(
        self, argv: Sequence[str] | None, *, prog: str, description: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> C:
        """The config from `argv` and the environment (see `parse`)."""
        return self.parse(self.parser(prog, description), argv, environ=environ)[0]

    def table(self) -> str:
        """The options as a Markdown table (flag, variable, default, meaning), for the docs."""
        rows = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
        for option in self.options:
            flag, env = f"`{option.flag}`", f"`{option.env}`"
            if option.kind is BOOLEAN:
                flag += f" / `--no-{option.flag[2:]}`"
            elif option.kind.repeated:
                flag, env = flag + " (repeatable)", env + " (comma-separated)"
            rows.append(f"| {flag} | {env} | `{option.shown_default}` | {option.help} |")
        return "\n".join(rows) + "\n"
