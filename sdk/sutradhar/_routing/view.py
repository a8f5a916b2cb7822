"""A router's in-memory view: agents and instances joined into Backends.

Fed only by registry watch events (`put_agent`, `put_instance`, deletes, and
`replace` after a (re-)list), never by a read per request. Every change bumps
`generation`, which invalidates the selection cache. An instance is routable
when its state is SERVING, it is not drained, and its agent exists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sutradhar._routing.backend import Backend
from sutradhar._routing.policy import Policy, policy_from_proto
from sutradhar.v1 import registry_pb2

log = logging.getLogger(__name__)

Key = tuple[str, str]

SERVING = registry_pb2.INSTANCE_STATE_SERVING


@dataclass
class AgentEntry:
    """One agent definition with its resolved routing policy."""

    agent: registry_pb2.Agent
    policy: Policy

    @property
    def namespace(self) -> str:
        return self.agent.namespace or "default"


def _ns(namespace: str) -> str:
    return namespace or "default"


class View:
    """Agents, instances and their Backends, as of the last watch event."""

    def __init__(self, *, on_removed: Callable[[Backend], None] | None = None) -> None:
        self.agents: dict[Key, AgentEntry] = {}
        self.instances: dict[Key, registry_pb2.Instance] = {}
        self.backends: dict[Key, Backend] = {}
        self.generation = 0
        self.synced = False
        self._on_removed = on_removed

    # -- updates ----------------------------------------------------------

    def put_agent(self, agent: registry_pb2.Agent) -> None:
        """An agent was created or changed."""
        key = (_ns(agent.namespace), agent.id)
        old = self.agents.get(key)
        if old is not None and old.agent == agent:
            return
        policy = policy_from_proto(agent.routing if agent.HasField("routing") else None)
        self.agents[key] = AgentEntry(agent=agent, policy=policy)
        for backend in self.backends.values():
            if backend.namespace == key[0] and self.instances[backend.key].agent_id == agent.id:
                self._join(backend)
        self.generation += 1

    def delete_agent(self, namespace: str, agent_id: str) -> None:
        """An agent was deleted; its instances stop being routable."""
        key = (_ns(namespace), agent_id)
        if self.agents.pop(key, None) is None:
            return
        for backend in self.backends.values():
            if backend.namespace == key[0] and self.instances[backend.key].agent_id == agent_id:
                self._join(backend)
        self.generation += 1

    def put_instance(self, instance: registry_pb2.Instance, *, probe_time: float | None = None) -> None:
        """An instance was created or changed. `probe_time` (router clock)
        is when its latest passing readiness probe ran, if known."""
        key = (_ns(instance.namespace), instance.id)
        self.instances[key] = instance
        backend = self.backends.get(key)
        if backend is None:
            backend = Backend(key[0], instance.id)
            self.backends[key] = backend
        elif backend.endpoint and (backend.endpoint, backend.identity) != (instance.endpoint, instance.identity) \
                and self._on_removed:
            self._on_removed(backend)  # endpoint moved or identity changed: drop the old transport
            backend.transport = None
        self._join(backend)
        if probe_time is not None:
            backend.outlier.probe_passed(probe_time)
        self.generation += 1

    def delete_instance(self, namespace: str, instance_id: str) -> None:
        """An instance was deleted or its lease lapsed."""
        key = (_ns(namespace), instance_id)
        self.instances.pop(key, None)
        backend = self.backends.pop(key, None)
        if backend is not None and self._on_removed:
            self._on_removed(backend)
        self.generation += 1

    def replace(self, agents: Iterable[registry_pb2.Agent], instances: Iterable[registry_pb2.Instance]) -> None:
        """Swap in a complete snapshot (after a list), keeping the Backends of
        instances that are still there."""
        new_agents = {(_ns(a.namespace), a.id): a for a in agents}
        new_instances = {(_ns(i.namespace), i.id): i for i in instances}
        for key in [k for k in self.backends if k not in new_instances]:
            self.delete_instance(*key)
        for key in [k for k in self.agents if k not in new_agents]:
            self.delete_agent(*key)
        for agent in new_agents.values():
            self.put_agent(agent)
        for instance in new_instances.values():
            self.put_instance(instance)
        self.synced = True
        self.generation += 1

    def _join(self, backend: Backend) -> None:
        instance = self.instances[backend.key]
        entry = self.agents.get((backend.namespace, instance.agent_id))
        backend.agent_id = instance.agent_id
        backend.endpoint = instance.endpoint
        backend.identity = instance.identity
        backend.runtime = instance.runtime
        backend.state = registry_pb2.InstanceState.Name(instance.state)
        if instance.drained and instance.state == SERVING:
            backend.state = "DRAINED"
        if entry is None:
            backend.agent_type = ""
            backend.version = instance.version
            backend.labels = dict(instance.labels)
            return
        agent = entry.agent
        backend.agent_type = agent.type
        backend.version = instance.version or agent.version
        backend.runtime = instance.runtime or agent.runtime
        labels = dict(agent.labels)
        labels.update(instance.labels)
        backend.labels = labels
        backend.set_policy(entry.policy)

    # -- queries ----------------------------------------------------------

    def routable(self, backend: Backend) -> bool:
        """SERVING, not drained, and its agent exists."""
        instance = self.instances.get(backend.key)
        return (
            instance is not None
            and instance.state == SERVING
            and not instance.drained
            and (backend.namespace, instance.agent_id) in self.agents
        )

    def agents_in(self, namespace: str) -> list[AgentEntry]:
        """Agent definitions of one namespace, sorted by id."""
        ns = _ns(namespace)
        return sorted((e for k, e in self.agents.items() if k[0] == ns), key=lambda e: e.agent.id)

    def backends_of(self, namespace: str, agent_ids: set[str]) -> list[Backend]:
        """Every known instance (routable or not) of the given agents, sorted by id."""
        ns = _ns(namespace)
        found = [
            b for k, b in self.backends.items()
            if k[0] == ns and self.instances[k].agent_id in agent_ids
        ]
        found.sort(key=lambda b: b.instance_id)
        return found
