"""sutradhar._semver: versions and npm-style ranges."""

from __future__ import annotations

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar._semver import is_valid_version, matches, parse_range, parse_version


@pytest.mark.parametrize("text", ["1.4.0", "0.0.1", "10.20.30", "1.0.0-rc.1", "1.0.0-alpha+build.5", "2.0.0+meta"])
def test_valid_versions(text):
    assert str(parse_version(text)) == text
    assert is_valid_version(text)


@pytest.mark.parametrize("text", ["banana", "1.4", "v1.4.0", "01.2.3", "1.2.3.4", "", " 1.2.3", "1.2.-3", "x" * 300])
def test_invalid_versions_name_the_field(text):
    with pytest.raises(InvalidArgument) as info:
        parse_version(text, field="agent.version")
    assert info.value.field == "agent.version"
    assert str(info.value).startswith("agent.version: ")
    assert not is_valid_version(text)


def test_banana_message_is_exact():
    with pytest.raises(InvalidArgument) as info:
        parse_version("banana", field="agent.version")
    assert str(info.value) == (
        'agent.version: "banana" is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. 1.4.0)'
    )


@pytest.mark.parametrize(
    ("version", "rng", "expected"),
    [
        ("2.0.0", ">=2.0.0", True),
        ("1.9.9", ">=2.0.0", False),
        ("1.4.0", "^1.4", True),
        ("1.9.3", "^1.4", True),
        ("2.0.0", "^1.4", False),
        ("1.3.9", "^1.4", False),
        ("0.2.5", "^0.2", True),
        ("0.3.0", "^0.2", False),
        ("1.2.0", ">=1.2 <2", True),
        ("1.99.0", ">=1.2 <2", True),
        ("2.0.0", ">=1.2 <2", False),
        ("1.2.9", "~1.2", True),
        ("1.3.0", "~1.2", False),
        ("1.0.0", "1.x", True),
        ("2.0.0", "1.x", False),
        ("7.3.1", "*", True),
        ("1.4.0", "1.2 - 1.4", True),
        ("1.5.0", "1.2 - 1.4", False),
        ("0.4.0", ">=1.2.0 || <0.5", True),
        ("1.5.0-rc.1", "^1.4", False),  # pre-releases need an explicit pre-release range
        ("1.5.0-rc.2", ">=1.5.0-rc.1", True),
        ("1.4.0", "", True),
        ("banana", "*", False),
        ("banana", "", False),
    ],
)
def test_matches(version, rng, expected):
    assert matches(version, rng) is expected


@pytest.mark.parametrize("rng", ["banana", ">>1", "^^1", "1.2.3.4", ">=1.2 <", "~", "   "])
def test_bad_ranges(rng):
    with pytest.raises(InvalidArgument) as info:
        parse_range(rng, field="version_range")
    assert info.value.field == "version_range"
    assert "version_range" in str(info.value)


def test_matches_raises_on_bad_range():
    with pytest.raises(InvalidArgument) as info:
        matches("1.0.0", ">>1")
    assert info.value.field == "version_range"


def test_parse_range_is_cached_and_reusable():
    assert parse_range("^1.4") is parse_range("^1.4")


def test_a_trailing_newline_is_not_part_of_a_version():
    with pytest.raises(InvalidArgument, match="is not a semantic version"):
        parse_version("1.2.3\n")
    assert not is_valid_version("1.2.3\n")
    assert not matches("1.2.3\n", "^1")
