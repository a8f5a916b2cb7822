"""Kubernetes labels and label selectors, for the SDK and the services.

Label syntax (as in Kubernetes): a key is an optional DNS-subdomain prefix and
a slash, then a name of at most 63 characters from ``[A-Za-z0-9._-]`` that
starts and ends with an alphanumeric character (``tier``,
``sutradhar.io/deployment``); a value is empty or follows the name rule.

Selector syntax (as in ``kubectl -l``), requirements separated by commas,
all of which must hold::

    tier=gold            tier==gold      the label equals the value
    env!=dev                             absent, or a different value
    team in (a,b)                        present with one of the values
    zone notin (z)                       absent, or none of the values
    canary                               present (any value)
    !legacy                              absent

Parse once with `parse_selector` (cached) and call `Selector.matches(labels)`
per object; the parsed selector is immutable and hashable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from sutradhar._errors import InvalidArgument
from sutradhar._names import MAX_DNS_SUBDOMAIN, is_dns_label

__all__ = [
    "DEPLOYMENT_LABEL",
    "MAX_LABELS",
    "METRICS_PORT_LABEL",
    "Operator",
    "Requirement",
    "Selector",
    "parse_selector",
    "validate_label_key",
    "validate_label_name",
    "validate_label_value",
    "validate_labels",
]

#: Largest number of labels one object may carry.
MAX_LABELS = 64
#: Instance label with the port of the instance's Prometheus /metrics, on its endpoint's host: set by the
#: scheduler for replicas whose metrics endpoint answered, and by an SDK agent that registers itself with a
#: metrics port. The registry's scrape-target discovery reads it (docs/observability.md, "Discovery").
METRICS_PORT_LABEL = "sutradhar.metrics-port"
#: Label of a replica (and of the instance it registers) naming its deployment, set by the scheduler.
DEPLOYMENT_LABEL = "sutradhar.deployment"
_MAX_NAME = 63  # a label name, like a DNS label, has at most 63 characters
_MAX_PREFIX = MAX_DNS_SUBDOMAIN
_MAX_SELECTOR = 4096

_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_NAME_HINT = "at most 63 characters from [A-Za-z0-9._-], starting and ending with a letter or digit"


def _check_name(text: str, field: str, what: str) -> None:
    if not text:
        raise InvalidArgument(f"{field}: {what} must not be empty", field=field)
    if len(text) > _MAX_NAME or not _NAME_RE.fullmatch(text):
        raise InvalidArgument(f'{field}: {what} "{text}" is not valid ({_NAME_HINT})', field=field)


def _check_prefix(prefix: str, key: str, field: str) -> None:
    if not prefix or len(prefix) > _MAX_PREFIX or not all(is_dns_label(part) for part in prefix.split(".")):
        raise InvalidArgument(
            f'{field}: label key "{key}" has an invalid prefix "{prefix}" '
            "(expected a lowercase DNS subdomain such as example.com, at most 253 characters)",
            field=field,
        )


def validate_label_name(text: str, *, field: str, what: str = "name") -> None:
    """Check a label-like name (at most 63 of ``[A-Za-z0-9._-]``, alphanumeric at both ends)."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{field}: {what} must be a string", field=field)
    _check_name(text, field, what)


def validate_label_key(key: str, *, field: str = "labels") -> None:
    """Check a label key (``[prefix/]name``); InvalidArgument naming `field` if bad."""
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"{field}: label key must not be empty", field=field)
    prefix, slash, name = key.rpartition("/")
    if slash:
        _check_prefix(prefix, key, field)
    _check_name(name, field, "label key name" if slash else "label key")


def validate_label_value(value: str, *, field: str = "labels") -> None:
    """Check a label value (empty, or a name); InvalidArgument naming `field` if bad."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{field}: label value must be a string", field=field)
    if value:
        _check_name(value, field, "label value")


def validate_labels(labels: Mapping[str, str], *, field: str = "labels", max_labels: int = MAX_LABELS) -> None:
    """Check a whole label map: count, every key and every value.

    Errors name the offending entry, e.g. ``agent.labels["tier"]``.
    """
    if len(labels) > max_labels:
        raise InvalidArgument(f"{field}: {len(labels)} labels given, at most {max_labels} allowed", field=field)
    for key in sorted(labels):
        validate_label_key(key, field=field)
        validate_label_value(labels[key], field=f'{field}["{key}"]')


class Operator(Enum):
    """A requirement's operator."""

    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


@dataclass(frozen=True)
class Requirement:
    """One condition on one label key."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when `labels` satisfy this requirement."""
        op = self.operator
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        value = labels.get(self.key)
        if op is Operator.EQUALS or op is Operator.IN:
            return value is not None and value in self.values
        return value is None or value not in self.values

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        if op in (Operator.EQUALS, Operator.NOT_EQUALS):
            return f"{self.key}{op.value}{next(iter(self.values))}"
        return f"{self.key} {op.value} ({','.join(sorted(self.values))})"


@dataclass(frozen=True)
class Selector:
    """A parsed label selector: every requirement must hold. Empty matches all."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when `labels` satisfy every requirement."""
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True when the selector selects everything."""
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


# -- parsing ------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\s*(?:(?P<op>==|!=|=|!|\(|\)|,)|(?P<word>[^\s,()=!]+))")


def _tokens(text: str, field: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:  # pragma: no cover - the regex accepts any non-space
            raise InvalidArgument(f'{field}: cannot parse "{text}" at position {pos}', field=field)
        out.append(m.group("op") or m.group("word"))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, field: str) -> None:
        self.text = text
        self.field = field
        self.toks = _tokens(text, field)
        self.i = 0

    def fail(self, why: str) -> InvalidArgument:
        return InvalidArgument(
            f'{self.field}: invalid label selector "{self.text}": {why} '
            "(expected e.g. tier=gold,env!=dev,team in (a,b),zone notin (z),canary,!legacy)",
            field=self.field,
        )

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str | None:
        tok = self.peek()
        self.i += 1
        return tok

    def key(self) -> str:
        tok = self.take()
        if tok is None or tok in ("==", "!=", "=", "!", "(", ")", ","):
            raise self.fail(f"expected a label key, found {tok or 'the end'!s}")
        validate_label_key(tok, field=self.field)
        return tok

    def value(self) -> str:
        tok = self.peek()
        if tok is None or tok in (",", ")"):
            return ""  # "a=" selects an empty value, as in Kubernetes
        if tok in ("==", "!=", "=", "!", "("):
            raise self.fail(f"expected a label value, found {tok}")
        self.i += 1
        validate_label_value(tok, field=self.field)
        return tok

    def value_set(self) -> frozenset[str]:
        if self.take() != "(":
            raise self.fail("expected ( after in/notin")
        values: list[str] = []
        while True:
            values.append(self.value())
            tok = self.take()
            if tok == ")":
                break
            if tok != ",":
                raise self.fail("expected , or ) in a value set")
        if values == [""]:
            raise self.fail("in/notin need at least one value")
        return frozenset(values)

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.i += 1
            return Requirement(self.key(), Operator.DOES_NOT_EXIST)
        key = self.key()
        tok = self.peek()
        if tok is None or tok == ",":
            return Requirement(key, Operator.EXISTS)
        self.i += 1
        if tok in ("=", "=="):
            return Requirement(key, Operator.EQUALS, frozenset([self.value()]))
        if tok == "!=":
            return Requirement(key, Operator.NOT_EQUALS, frozenset([self.value()]))
        if tok == "in":
            return Requirement(key, Operator.IN, self.value_set())
        if tok == "notin":
            return Requirement(key, Operator.NOT_IN, self.value_set())
        raise self.fail(f'unknown operator "{tok}" after key "{key}"')

    def parse(self) -> Selector:
        reqs: list[Requirement] = []
        if not self.toks:
            return Selector()
        while True:
            reqs.append(self.requirement())
            tok = self.take()
            if tok is None:
                break
            if tok != ",":
                raise self.fail(f'expected "," between requirements, found "{tok}"')
            if self.peek() is None:
                raise self.fail("trailing comma")
        return Selector(tuple(reqs))


@lru_cache(maxsize=1024)
def _parse_cached(text: str, field: str) -> Selector:
    return _Parser(text, field).parse()


def parse_selector(text: str, *, field: str = "label_selector") -> Selector:
    """Parse a Kubernetes label selector; InvalidArgument naming `field` if bad.

    An empty or blank selector selects everything.
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"{field}: label selector must be a string", field=field)
    if len(text) > _MAX_SELECTOR:
        raise InvalidArgument(f"{field}: label selector is longer than {_MAX_SELECTOR} characters", field=field)
    return _parse_cached(text, field)
