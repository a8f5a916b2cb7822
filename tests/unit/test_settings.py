"""Config dataclasses as flags and SUTRADHAR_* variables (sutradhar._settings):
explicit > env > default for every kind of field, one-line errors, --help."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sutradhar._settings import (
    PORT,
    POSITIVE_DURATION,
    SettingError,
    Settings,
    choice,
    format_duration,
    log_level_setting,
    parse_duration,
    setting,
)


@dataclass(frozen=True)
class Toy:
    """One field of every kind."""

    name: str = "plain"
    """A text."""
    count: int = 3
    """An integer."""
    ratio: float = 0.5
    """A number."""
    enabled: bool = False
    """A switch."""
    wait: timedelta = timedelta(seconds=2)
    """A duration, 100% of it."""
    lease: timedelta = setting(timedelta(seconds=5), kind=POSITIVE_DURATION)
    """A duration above zero."""
    where: Path = setting(default_factory=lambda: Path("state/toy"))
    """A path."""
    maybe: str | None = None
    """Text or nothing."""
    tags: Mapping[str, str] = setting(default_factory=dict, flag="--tag")
    """Key=value pairs."""
    port: int = setting(80, kind=PORT)
    """A port."""
    etcd: str = setting("127.0.0.1:2379", shared=True)
    """A setting every server reads from the same variable."""
    legacy: str = setting("", env="SUTRADHAR_OLD_NAME")
    """A setting with a historical variable name."""
    mode: str = setting("fast", kind=choice("fast", "slow"))
    """One of two."""
    log_level: str = log_level_setting("INFO")
    """A logging level."""


TOY = Settings(Toy, env_prefix="TOY_")

#: field -> (flag arguments, variable, text, parsed value); none of them the default.
CASES: dict[str, tuple[list[str], str, str, Any]] = {
    "name": (["--name", "flagged"], "SUTRADHAR_TOY_NAME", "from-env", None),
    "count": (["--count", "7"], "SUTRADHAR_TOY_COUNT", "9", 9),
    "ratio": (["--ratio", "0.25"], "SUTRADHAR_TOY_RATIO", "1.5", 1.5),
    "enabled": (["--enabled"], "SUTRADHAR_TOY_ENABLED", "yes", True),
    "wait": (["--wait", "250ms"], "SUTRADHAR_TOY_WAIT", "1.5", timedelta(seconds=1.5)),
    "lease": (["--lease", "1m"], "SUTRADHAR_TOY_LEASE", "3s", timedelta(seconds=3)),
    "where": (["--where", "/tmp/a"], "SUTRADHAR_TOY_WHERE", "/tmp/b", Path("/tmp/b")),
    "maybe": (["--maybe", "x"], "SUTRADHAR_TOY_MAYBE", "y", "y"),
    "tags": (["--tag", "a=1", "--tag", "b=2"], "SUTRADHAR_TOY_TAGS", "c=3, d = 4", {"c": "3", "d": "4"}),
    "port": (["--port", "8080"], "SUTRADHAR_TOY_PORT", "9090", 9090),
    "etcd": (["--etcd", "e:1"], "SUTRADHAR_ETCD", "e:2", "e:2"),
    "legacy": (["--legacy", "f"], "SUTRADHAR_OLD_NAME", "e", "e"),
    "mode": (["--mode", "slow"], "SUTRADHAR_TOY_MODE", "slow", "slow"),
    "log_level": (["--log-level", "debug"], "SUTRADHAR_LOG_LEVEL", "warning", "WARNING"),
}
FLAG_VALUES: dict[str, Any] = {
    "name": "flagged", "count": 7, "ratio": 0.25, "enabled": True, "wait": timedelta(milliseconds=250),
    "lease": timedelta(minutes=1), "where": Path("/tmp/a"), "maybe": "x", "tags": {"a": "1", "b": "2"},
    "port": 8080, "etcd": "e:1", "legacy": "f", "mode": "slow", "log_level": "DEBUG",
}
EXPLICIT: dict[str, Any] = {
    "name": "kw", "count": 11, "ratio": 2.0, "enabled": False, "wait": timedelta(0), "lease": timedelta(hours=1),
    "where": Path("kw"), "maybe": "kw", "tags": {"k": "w"}, "port": 1, "etcd": "kw:1", "legacy": "kw",
    "mode": "fast", "log_level": "ERROR",
}


def _env_value(name: str) -> Any:
    _, _, text, value = CASES[name]
    return text if value is None else value


def test_every_field_of_the_toy_is_covered() -> None:
    assert set(CASES) == set(FLAG_VALUES) == set(EXPLICIT) == {o.name for o in TOY.options}


@pytest.mark.parametrize("name", sorted(CASES))
def test_default_without_flag_or_env(name: str) -> None:
    assert getattr(TOY.resolve(environ={}), name) == getattr(Toy(), name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_env_beats_the_default(name: str) -> None:
    _, env, text, _ = CASES[name]
    assert getattr(TOY.resolve(environ={env: text}), name) == _env_value(name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_empty_variable_counts_as_unset(name: str) -> None:
    _, env, _, _ = CASES[name]
    assert getattr(TOY.resolve(environ={env: ""}), name) == getattr(Toy(), name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_flag_beats_the_env(name: str) -> None:
    flags, env, text, _ = CASES[name]
    config, _ = TOY.parse(TOY.parser("toy"), flags, environ={env: text})
    assert getattr(config, name) == FLAG_VALUES[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_explicit_keyword_beats_flag_and_env(name: str) -> None:
    flags, env, text, _ = CASES[name]
    args = TOY.parser("toy").parse_args(flags)
    assert getattr(TOY.resolve(args, environ={env: text}, **{name: EXPLICIT[name]}), name) == EXPLICIT[name]


def test_a_keyword_left_none_falls_back_to_the_env() -> None:
    assert TOY.resolve(environ={"SUTRADHAR_TOY_COUNT": "9"}, count=None).count == 9


def test_a_false_boolean_flag_beats_a_true_env() -> None:
    config, _ = TOY.parse(TOY.parser("toy"), ["--no-enabled"], environ={"SUTRADHAR_TOY_ENABLED": "true"})
    assert config.enabled is False


def test_an_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="Toy has no setting colour"):
        TOY.resolve(environ={}, colour="red")


@pytest.mark.parametrize(
    ("env", "text", "message"),
    [
        ("SUTRADHAR_TOY_PORT", "http",
         "SUTRADHAR_TOY_PORT='http' is not a port number (0-65535); set --port or SUTRADHAR_TOY_PORT"),
        ("SUTRADHAR_TOY_PORT", "70000",
         "SUTRADHAR_TOY_PORT='70000' is not a port number (0-65535); set --port or SUTRADHAR_TOY_PORT"),
        ("SUTRADHAR_TOY_COUNT", "3.5",
         "SUTRADHAR_TOY_COUNT='3.5' is not an integer; set --count or SUTRADHAR_TOY_COUNT"),
        ("SUTRADHAR_TOY_RATIO", "nan",
         "SUTRADHAR_TOY_RATIO='nan' is not a number; set --ratio or SUTRADHAR_TOY_RATIO"),
        ("SUTRADHAR_TOY_ENABLED", "maybe",
         "SUTRADHAR_TOY_ENABLED='maybe' is not a boolean (1, true, yes, on or 0, false, no, off); "
         "set --enabled or SUTRADHAR_TOY_ENABLED"),
        ("SUTRADHAR_TOY_WAIT", "-1",
         "SUTRADHAR_TOY_WAIT='-1' is not a duration of zero or more (seconds, or a number with a unit: "
         "250ms, 10s, 5m, 1h); set --wait or SUTRADHAR_TOY_WAIT"),
        ("SUTRADHAR_TOY_LEASE", "0",
         "SUTRADHAR_TOY_LEASE='0' is not a duration above zero (seconds, or a number with a unit: "
         "250ms, 10s, 5m, 1h); set --lease or SUTRADHAR_TOY_LEASE"),
        ("SUTRADHAR_TOY_TAGS", "a=1,b",
         "SUTRADHAR_TOY_TAGS='b' is not key=value; set --tag or SUTRADHAR_TOY_TAGS"),
        ("SUTRADHAR_TOY_MODE", "medium",
         "SUTRADHAR_TOY_MODE='medium' is not one of fast, slow; set --mode or SUTRADHAR_TOY_MODE"),
        ("SUTRADHAR_LOG_LEVEL", "loud",
         "SUTRADHAR_LOG_LEVEL='loud' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL; "
         "set --log-level or SUTRADHAR_LOG_LEVEL"),
    ],
)
def test_a_bad_variable_is_one_line_naming_flag_variable_and_what_is_expected(
    env: str, text: str, message: str
) -> None:
    with pytest.raises(SettingError) as caught:
        TOY.resolve(environ={env: text})
    assert str(caught.value) == message


def test_a_bad_flag_names_the_flag_first() -> None:
    args = TOY.parser("toy").parse_args(["--port", "http"])
    with pytest.raises(SettingError) as caught:
        TOY.resolve(args, environ={"SUTRADHAR_TOY_PORT": "1"})
    assert str(caught.value) == "--port='http' is not a port number (0-65535); set --port or SUTRADHAR_TOY_PORT"


def test_a_bad_value_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        TOY.load(["--wait=-2s"], prog="toy", environ={})
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("toy: error: --wait='-2s' is not a duration of zero or more")
    assert err.rstrip().endswith("set --wait or SUTRADHAR_TOY_WAIT")


def test_help_shows_each_flag_with_its_variable_and_default() -> None:
    text = " ".join(TOY.parser("toy").format_help().split())
    expected = {
        "--name NAME A text. (env SUTRADHAR_TOY_NAME; default plain)",
        "--count N An integer. (env SUTRADHAR_TOY_COUNT; default 3)",
        "--enabled, --no-enabled A switch. (env SUTRADHAR_TOY_ENABLED; default false)",
        "--wait DURATION A duration, 100% of it. (env SUTRADHAR_TOY_WAIT; default 2s)",
        "--where PATH A path. (env SUTRADHAR_TOY_WHERE; default state/toy)",
        "--maybe MAYBE Text or nothing. (env SUTRADHAR_TOY_MAYBE; default none)",
        "--tag K=V Key=value pairs. (repeatable; in the variable, separated by commas; env SUTRADHAR_TOY_TAGS; "
        "default none)",
        "--etcd ETCD A setting every server reads from the same variable. (env SUTRADHAR_ETCD; default 127.0.0.1:2379)",
        '--legacy LEGACY A setting with a historical variable name. (env SUTRADHAR_OLD_NAME; default "")',
        "--mode {fast,slow} One of two. (env SUTRADHAR_TOY_MODE; default fast)",
        "--log-level LEVEL A logging level. (env SUTRADHAR_LOG_LEVEL; default INFO)",
    }
    for line in expected:
        assert line in text, line


def test_the_docs_table_lists_every_option() -> None:
    table = TOY.table().splitlines()
    assert table[0] == "| flag | environment | default | meaning |"
    assert "| `--port` | `SUTRADHAR_TOY_PORT` | `80` | A port. |" in table
    assert "| `--enabled` / `--no-enabled` | `SUTRADHAR_TOY_ENABLED` | `false` | A switch. |" in table
    assert (
        "| `--tag` (repeatable) | `SUTRADHAR_TOY_TAGS` (comma-separated) | `none` | Key=value pairs. |" in table
    )
    assert len(table) == 2 + len(TOY.options)


def test_durations_read_and_print_back() -> None:
    for text, value in {"10": 10, "0.5s": 0.5, "250ms": 0.25, "5m": 300, "1h": 3600, " 2 s ": 2}.items():
        assert parse_duration(text) == timedelta(seconds=value), text
    for value in (timedelta(seconds=10), timedelta(milliseconds=250), timedelta(seconds=0.0505), timedelta(0)):
        assert parse_duration(format_duration(value)) == value
    for bad in ("", "-1", "1d", "ten", "1e3", "inf"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_a_field_without_a_known_kind_must_declare_one() -> None:
    @dataclass(frozen=True)
    class Odd:
        things: list[int] | None = None

    with pytest.raises(TypeError, match="setting 'things': no kind for"):
        Settings(Odd).options  # noqa: B018 - derived on first use
