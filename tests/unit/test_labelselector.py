"""sutradhar._labels: Kubernetes labels and selectors."""

from __future__ import annotations

import dataclasses

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar._labels import (
    Operator,
    Selector,
    parse_selector,
    validate_label_key,
    validate_label_value,
    validate_labels,
)

FULL = "a=b,c!=d,e in (x,y),f notin (z),g,!h"


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {}, True),
        ("  ", {"a": "b"}, True),
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a=b", {}, False),
        ("a!=b", {}, True),
        ("a!=b", {"a": "c"}, True),
        ("a!=b", {"a": "b"}, False),
        ("e in (x,y)", {"e": "y"}, True),
        ("e in (x, y)", {"e": "z"}, False),
        ("e in (x,y)", {}, False),
        ("f notin (z)", {}, True),
        ("f notin (z)", {"f": "z"}, False),
        ("f notin (z)", {"f": "q"}, True),
        ("g", {"g": ""}, True),
        ("g", {}, False),
        ("!h", {}, True),
        ("!h", {"h": "x"}, False),
        ("a=", {"a": ""}, True),
        ("a=", {"a": "x"}, False),
        ("sutradhar.io/tier=gold", {"sutradhar.io/tier": "gold"}, True),
        (FULL, {"a": "b", "e": "x", "g": "1"}, True),
        (FULL, {"a": "b", "e": "x", "g": "1", "h": "1"}, False),
        (FULL, {"a": "b", "c": "d", "e": "x", "g": "1"}, False),
        (FULL, {"a": "b", "e": "x", "g": "1", "f": "z"}, False),
        (" a = b , g ", {"a": "b", "g": "x"}, True),
    ],
)
def test_matches(selector, labels, expected):
    assert parse_selector(selector).matches(labels) is expected


@pytest.mark.parametrize(
    "selector",
    [
        "a in x", "a=b,", ",a", "=b", "a in ()", "a b", "a=b=c", "-a=b", "a in (x,", "a==(", "a notin",
        "!", "!a=b", "a=b c", "a=b,,c", "a in (x) y", "a=-bad-", "Ex.com/a=b", "a/b/c=d", "x" * 64,
        "a=" + "v" * 64, "a in (ok, -no)", "a > 3",
    ],
)
def test_bad_selectors_name_the_field(selector):
    with pytest.raises(InvalidArgument) as info:
        parse_selector(selector, field="label_selector")
    assert info.value.field == "label_selector"
    assert str(info.value).startswith("label_selector: ")


def test_parsed_selector_is_immutable_and_canonical():
    sel = parse_selector(FULL)
    assert isinstance(sel, Selector)
    assert [r.operator for r in sel.requirements] == [
        Operator.EQUALS, Operator.NOT_EQUALS, Operator.IN, Operator.NOT_IN, Operator.EXISTS, Operator.DOES_NOT_EXIST,
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sel.requirements = ()  # type: ignore[misc]
    assert str(sel) == FULL
    assert parse_selector(str(sel)) == sel
    assert hash(sel) == hash(parse_selector(FULL))
    assert parse_selector("").empty


@pytest.mark.parametrize(
    "key", ["a", "tier", "A.b_c-D", "sutradhar.io/deployment", "x" * 63, "a.b.c/" + "y" * 63, "k8s.io/a"]
)
def test_good_keys(key):
    validate_label_key(key)


@pytest.mark.parametrize(
    "key", ["", "-a", "a-", "x" * 64, "/a", "a/", "Upper.com/a", "a b", "a/b/c", "é", ("p" * 64) + ".io/a"]
)
def test_bad_keys(key):
    with pytest.raises(InvalidArgument) as info:
        validate_label_key(key, field="agent.labels")
    assert info.value.field == "agent.labels"


@pytest.mark.parametrize("value", ["", "gold", "v1.2.3", "a_b-c.d", "x" * 63])
def test_good_values(value):
    validate_label_value(value)


@pytest.mark.parametrize("value", ["-x", "x-", "a b", "x" * 64, "a/b"])
def test_bad_values(value):
    with pytest.raises(InvalidArgument):
        validate_label_value(value)


def test_validate_labels_names_the_entry_and_counts():
    validate_labels({"tier": "gold", "env": ""})
    with pytest.raises(InvalidArgument) as info:
        validate_labels({"tier": "-bad"}, field="agent.labels")
    assert info.value.field == 'agent.labels["tier"]'
    with pytest.raises(InvalidArgument) as info:
        validate_labels({f"k{i}": "v" for i in range(65)}, field="agent.labels")
    assert "at most 64" in str(info.value)


@pytest.mark.parametrize(("key", "value"), [("tier\n", "gold"), ("tier", "gold\n"), ("example.com\n/tier", "gold")])
def test_a_trailing_newline_is_not_part_of_a_label(key, value):
    with pytest.raises(InvalidArgument):
        validate_labels({key: value})
