"""SPIFFE identities: parsing, the shapes each kind allows, and their DNS names."""

from __future__ import annotations

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar._identity import SYSTEM_NAMESPACE, SpiffeId


def test_an_identity_round_trips_through_its_text() -> None:
    for text in (
        "spiffe://sutradhar.local/ns/sutradhar-system/service/registry",
        "spiffe://sutradhar.local/ns/team-a/agent/echo",
        "spiffe://sutradhar.local/ns/team-a/agent/echo/echo-7f3a.r1",
        "spiffe://example.org/ns/default/user/ci",
    ):
        assert str(SpiffeId.parse(text)) == text


def test_a_replica_identity_names_its_agent_and_instance() -> None:
    replica = SpiffeId.agent("sutradhar.local", "team-a", "echo", "echo-1")
    assert (replica.agent_id, replica.instance_id) == ("echo", "echo-1")
    assert replica.dns_name() == "echo-1.echo.agent.team-a.sutradhar.local"
    assert SpiffeId.agent("sutradhar.local", "team-a", "echo").instance_id == ""
    service = SpiffeId.service("sutradhar.local", "router")
    assert service.namespace == SYSTEM_NAMESPACE and service.agent_id == ""


def test_distinct_identities_have_distinct_dns_names() -> None:
    names = {
        SpiffeId.service("td.local", "registry").dns_name(),
        SpiffeId.agent("td.local", "registry", "service", "x").dns_name(),
        SpiffeId.agent("td.local", "a", "b").dns_name(),
        SpiffeId.user("td.local", "a", "b").dns_name(),
    }
    assert len(names) == 4


@pytest.mark.parametrize("text", [
    "https://sutradhar.local/ns/a/user/x",            # not spiffe
    "spiffe://sutradhar.local/a/user/x",              # no ns
    "spiffe://sutradhar.local/ns/a/robot/x",          # unknown kind
    "spiffe://sutradhar.local/ns/a/user/x/y",         # only agents have two parts
    "spiffe://sutradhar.local/ns/a/agent/x/y/z",      # three parts
    "spiffe://Sutradhar.Local/ns/a/user/x",           # uppercase trust domain
    "spiffe://sutradhar.local/ns/A/user/x",           # namespace not a label
    "spiffe://sutradhar.local/ns/a/agent/x/" + "y" * 250,  # DNS name too long
])
def test_malformed_identities_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        SpiffeId.parse(text)
