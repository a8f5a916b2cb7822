"""The identity an instance binds to its endpoint: its shape (every RegisterInstance) and who
may bind it (`check_instance_identity`, which the authorization wiring calls)."""

from __future__ import annotations

import pytest

from sutradhar._errors import InvalidArgument, PermissionDenied
from sutradhar._identity import SYSTEM_NAMESPACE, SpiffeId
from sutradhar.services.registry.instance_identity import check_instance_identity, validate_instance_identity
from sutradhar.v1 import registry_pb2

TD = "sutradhar.local"
REPLICA = SpiffeId.agent(TD, "team-a", "echo", "echo-1")


def instance(identity: SpiffeId | str | None = REPLICA, **fields: str) -> registry_pb2.Instance:
    values = {"id": "echo-1", "namespace": "team-a", "agent_id": "echo", "endpoint": "127.0.0.1:9", **fields}
    return registry_pb2.Instance(identity=str(identity) if identity else "", **values)


def test_an_agent_identity_of_the_instance_is_valid_and_none_is_allowed() -> None:
    assert validate_instance_identity(instance(), trust_domain=TD) == REPLICA
    assert validate_instance_identity(instance(SpiffeId.agent(TD, "team-a", "echo")), trust_domain=TD)
    assert validate_instance_identity(instance(None)) is None
    assert validate_instance_identity(instance(SpiffeId.agent(TD, "default", "echo", "echo-1"), namespace=""))


@pytest.mark.parametrize(("identity", "fields", "why"), [
    ("not-spiffe", {}, "is not a SPIFFE ID"),
    (SpiffeId.service(TD, "router"), {}, "of kind 'service', not agent"),
    (SpiffeId.agent("other.domain", "team-a", "echo", "echo-1"), {}, "trust domain is 'other.domain'"),
    (SpiffeId.agent(TD, "team-b", "echo", "echo-1"), {}, "namespace is 'team-b', not 'team-a'"),
    (SpiffeId.agent(TD, "team-a", "other", "echo-1"), {}, "names agent 'other', not 'echo'"),
    (SpiffeId.agent(TD, "team-a", "echo", "echo-2"), {}, "names instance 'echo-2', not 'echo-1'"),
    (REPLICA, {"id": ""}, "set instance.id to it"),
])
def test_an_identity_that_does_not_fit_the_instance_is_invalid_naming_the_field(
    identity: SpiffeId | str, fields: dict[str, str], why: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_instance_identity(instance(identity, **fields), trust_domain=TD)
    assert err.value.field == "instance.identity"
    assert why in str(err.value)


def test_the_scheduler_binds_any_agent_identity_and_an_agent_only_its_own() -> None:
    check_instance_identity(SpiffeId.service(TD, "scheduler"), instance())
    check_instance_identity(REPLICA, instance())
    check_instance_identity(SpiffeId.agent(TD, "team-a", "echo"), instance())  # an agent-level identity
    check_instance_identity(None, instance())  # an insecure mesh
    check_instance_identity(SpiffeId.user(TD, "team-a", "alice"), instance(None))  # binds nothing


@pytest.mark.parametrize(("principal", "why"), [
    (SpiffeId.agent(TD, "team-a", "echo", "echo-2"), "an agent registers its own identity only"),
    (SpiffeId.agent(TD, "team-a", "other"), "an agent registers its own identity only"),
    (SpiffeId.agent(TD, "team-b", "echo"), "an agent registers its own identity only"),
    (SpiffeId.service(TD, "router"), "only scheduler registers agent instances"),
    (SpiffeId.user(TD, SYSTEM_NAMESPACE, "admin"), "only the scheduler"),
    (SpiffeId.service("other.domain", "scheduler"), "another trust domain"),
])
def test_anyone_else_is_refused_naming_who_what_and_where(principal: SpiffeId, why: str) -> None:
    with pytest.raises(PermissionDenied) as err:
        check_instance_identity(principal, instance())
    message = str(err.value)
    assert why in message
    assert str(principal) in message and str(REPLICA) in message
    assert "instance 'echo-1' of agent 'echo' in namespace 'team-a'" in message
