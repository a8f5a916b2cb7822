"""sutradhar._names: DNS-1123 names, namespaces and instance ids, and the SDK
and the registry agreeing on them (one rule, one definition)."""

from __future__ import annotations

from typing import Any

import pytest

from sutradhar import Agent, Task
from sutradhar._agent import validate_agent as sdk_validate_agent
from sutradhar._errors import InvalidArgument
from sutradhar._names import (
    ALL_NAMESPACES,
    is_dns_label,
    validate_dns_label,
    validate_instance_id,
    validate_namespace,
)
from sutradhar.services.registry.agent_validation import validate_agent as registry_validate_agent
from sutradhar.v1 import registry_pb2

GOOD_LABELS = ["a", "echo", "my-agent", "a1", "1a", "x" * 63]
BAD_LABELS = ["", "A", "my_agent", "-a", "a-", "a.b", "x" * 64, "ä", " a", "a b"]


@pytest.mark.parametrize("text", GOOD_LABELS)
def test_dns_labels(text: str) -> None:
    assert is_dns_label(text)
    validate_dns_label(text, field="agent.id")


@pytest.mark.parametrize("text", BAD_LABELS)
def test_not_dns_labels(text: str) -> None:
    assert not is_dns_label(text)
    with pytest.raises(InvalidArgument) as err:
        validate_dns_label(text, field="agent.id", what="agent id")
    assert err.value.field == "agent.id"
    assert str(err.value).startswith("agent.id: ")


def test_non_strings_are_not_dns_labels() -> None:
    assert not is_dns_label(None)  # type: ignore[arg-type]
    assert not is_dns_label(7)  # type: ignore[arg-type]


def test_dns_label_messages_say_what_is_valid() -> None:
    with pytest.raises(InvalidArgument, match=r"^agent\.type: agent type is required \(a DNS-1123 label"):
        validate_dns_label("", field="agent.type", what="agent type")
    with pytest.raises(InvalidArgument, match=r'^agent\.type: "Echo" is not a valid agent type \(a DNS-1123 label'):
        validate_dns_label("Echo", field="agent.type", what="agent type")


def test_namespaces() -> None:
    validate_namespace("")  # empty means "default"
    validate_namespace("team-a")
    validate_namespace(ALL_NAMESPACES, allow_all=True)
    with pytest.raises(InvalidArgument, match=r"only allowed when listing or watching") as err:
        validate_namespace(ALL_NAMESPACES, field="agent.namespace")
    assert err.value.field == "agent.namespace"
    with pytest.raises(InvalidArgument, match=r'"Team" is not a valid namespace'):
        validate_namespace("Team")


@pytest.mark.parametrize("text", ["echo-1", "echo.default.1", "a", "a." * 126 + "a"])
def test_instance_ids(text: str) -> None:
    validate_instance_id(text)


@pytest.mark.parametrize("text", ["", "Echo", "a..b", ".a", "a.", "a_b", "a." * 126 + "ab"])
def test_not_instance_ids(text: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_instance_id(text, field="id")
    assert err.value.field == "id"


# -- the SDK and the registry agree --------------------------------------------


def _sdk_accepts(agent_id: str, version: str) -> bool:
    class Probe(Agent):
        id = type = agent_id

        async def execute(self, task: Task) -> Any:
            return None

    Probe.version = version
    try:
        sdk_validate_agent(Probe())
    except InvalidArgument:
        return False
    return True


def _registry_accepts(agent_id: str, version: str) -> bool:
    agent = registry_pb2.Agent(id=agent_id, type=agent_id, version=version, runtime="process")
    try:
        registry_validate_agent(agent)
    except InvalidArgument:
        return False
    return True


@pytest.mark.parametrize("agent_id", GOOD_LABELS + BAD_LABELS)
def test_sdk_and_registry_agree_on_agent_ids(agent_id: str) -> None:
    assert _sdk_accepts(agent_id, "1.0.0") == _registry_accepts(agent_id, "1.0.0") == is_dns_label(agent_id)


@pytest.mark.parametrize(
    "version",
    ["1.2.3", "0.0.0", "1.2.3-rc.1", "1.2.3-0a", "1.2.3+01", "1.2.3-alpha.1+b.2",
     "", "1.2", "v1.2.3", "01.2.3", "1.2.3-01", "1.2.3-", "1.2.3+", "1.2.3+a+b", "1.2.3-a..b",
     "1.0.0-" + "a" * 300],
)
def test_sdk_and_registry_agree_on_versions(version: str) -> None:
    assert _sdk_accepts("echo", version) == _registry_accepts("echo", version)


def test_the_sdk_keeps_its_own_messages() -> None:
    class Bad(Agent):
        id = type = "echo"
        version = "1.2"

        async def execute(self, task: Task) -> Any:
            return None

    with pytest.raises(InvalidArgument, match=r"^agent version '1.2' is not a semantic version$") as err:
        sdk_validate_agent(Bad())
    assert err.value.field == "version"


# -- a trailing newline is not part of a name (regex `$` matches before one) ----


@pytest.mark.parametrize("text", ["echo\n", "my-agent\n"])
def test_a_trailing_newline_is_not_a_dns_label(text: str) -> None:
    assert not is_dns_label(text)
    assert not _sdk_accepts(text, "1.0.0")
    assert not _registry_accepts(text, "1.0.0")


def test_a_trailing_newline_is_not_an_instance_id() -> None:
    with pytest.raises(InvalidArgument, match="is not a valid instance id"):
        validate_instance_id("echo.1\n")


def test_a_trailing_newline_is_not_a_version() -> None:
    assert not _sdk_accepts("echo", "1.2.3\n")
    assert not _registry_accepts("echo", "1.2.3\n")
