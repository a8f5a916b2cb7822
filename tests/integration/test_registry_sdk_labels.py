"""RegistryClient label mappings against a real registry: a value must not
change the selector ("gold,env=dev" used to select env=dev agents)."""

from __future__ import annotations

import pytest
from test_registry_support import make_agent, registry, stub

from sutradhar import RegistryClient
from sutradhar._errors import InvalidArgument
from sutradhar.v1 import registry_pb2 as pb

__all__ = ["registry", "stub"]  # fixtures imported for pytest


async def test_list_agents_label_mapping_is_validated_not_spliced(registry, stub, unique):
    ns = unique
    await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("gold", ns, labels={"tier": "gold"})))
    await stub.RegisterAgent(
        pb.RegisterAgentRequest(agent=make_agent("both", ns, labels={"tier": "gold", "env": "dev"}))
    )
    async with RegistryClient(registry.address) as client:
        found = await client.list_agents(namespace=ns, labels={"tier": "gold"})
        assert [a.id for a in found.agents] == ["both", "gold"]
        found = await client.list_agents(namespace=ns, labels={"tier": "gold", "env": "dev"})
        assert [a.id for a in found.agents] == ["both"]
        with pytest.raises(InvalidArgument, match=r"labels\['tier'\].*gold,env=dev") as err:
            await client.list_agents(namespace=ns, labels={"tier": "gold,env=dev"})
        assert err.value.field == "labels['tier']"
        with pytest.raises(InvalidArgument, match=r"labels\['bad key'\]"):
            await client.list_agents(namespace=ns, labels={"bad key": "x"})
        with pytest.raises(InvalidArgument, match=r"labels\['tier'\]"):
            await client.list_instances(namespace=ns, labels={"tier": "a in (b)"})
