"""Keeping an agent replica registered with the registry under a lease.

`Registration.start()` registers the agent definition when it is missing and
then the instance under a lease of `ttl`; `run()` renews the lease every
ttl/3, registers again when the lease lapsed (NOT_FOUND), and retries with
the shared back-off (`sutradhar._backoff.Backoff`, jittered; at most
`max_backoff` and never longer than ttl/3) while the registry is
unreachable — it logs and never raises. `drain()` and `deregister()` are the shutdown steps.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sutradhar._agent import Agent
from sutradhar._backoff import Backoff
from sutradhar._clients import RegistryClient
from sutradhar._errors import (
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    SutradharError,
    Unavailable,
)
from sutradhar._settings import parse_pairs
from sutradhar._values import to_struct
from sutradhar.v1 import registry_pb2

log = logging.getLogger(__name__)

#: First delay of the registration retry back-off.
RETRY_INITIAL = timedelta(milliseconds=200)


def process_command(agent: Agent) -> list[str]:
    """The command that starts another replica of `agent`'s class."""
    cls = type(agent)
    if cls.__module__ == "__main__":
        main = sys.modules["__main__"]
        path = getattr(main, "__file__", None)
        if path:
            return [sys.executable, os.path.abspath(path)]
    return [sys.executable, "-m", "sutradhar.serve", f"{cls.__module__}:{cls.__qualname__}"]


def agent_definition(agent: Agent, namespace: str) -> registry_pb2.Agent:
    """The registry definition of `agent`: runtime "process", config
    {command, workdir} to start more replicas like this one."""
    return registry_pb2.Agent(
        id=agent.id,
        namespace=namespace,
        type=agent.type,
        version=agent.version,
        capabilities=list(agent.capabilities),
        runtime="process",
        config=to_struct({"command": process_command(agent), "workdir": os.getcwd()}),
        description=agent.description,
    )


@dataclass
class Registration:
    """One instance's registration; see the module docstring."""

    client: RegistryClient
    agent: Agent
    instance_id: str
    endpoint: str
    namespace: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    ttl: timedelta = timedelta(seconds=10)
    register_agent: bool = True
    max_backoff: timedelta = timedelta(seconds=5)
    healthy: Callable[[], bool] = lambda: True
    """Whether the agent reports healthy now: it registers SERVING or NOT_SERVING."""
    identity: str = ""
    """The SPIFFE ID of the agent's certificate, bound to its endpoint (empty: insecure)."""
    lease_id: int = 0

    @property
    def _call_timeout(self) -> timedelta:
        return min(max(self.ttl / 3, timedelta(seconds=1)), timedelta(seconds=5))

    def _instance(self) -> registry_pb2.Instance:
        return registry_pb2.Instance(
            id=self.instance_id,
            namespace=self.namespace,
            agent_id=self.agent.id,
            endpoint=self.endpoint,
            runtime="process",
            state=registry_pb2.INSTANCE_STATE_SERVING if self.healthy() else registry_pb2.INSTANCE_STATE_NOT_SERVING,
            labels=dict(self.labels),
            version=self.agent.version,
            identity=self.identity,
        )

    async def _ensure_agent(self) -> None:
        if not self.register_agent:
            return
        try:
            await self.client.register_agent(
                agent_definition(self.agent, self.namespace), timeout=self._call_timeout
            )
            log.info("registered agent %s/%s", self.namespace, self.agent.id)
        except AlreadyExists:
            pass
        except PermissionDenied as denied:
            # A secured mesh: what code an agent runs is an admin's to define, not the agent's.
            try:
                await self.client.get_agent(self.agent.id, namespace=self.namespace, timeout=self._call_timeout)
            except NotFound:
                raise FailedPrecondition(
                    f"agent {self.namespace}/{self.agent.id} is not defined in the registry and this replica's "
                    f"identity may not define it ({denied.message}); ask an admin of {self.namespace} to register "
                    "it (`sutradhar deploy -f agent.yaml`), or serve with --no-register-agent once it exists"
                ) from None

    async def register(self) -> None:
        """Register the agent (when missing and allowed) and the instance."""
        await self._ensure_agent()
        try:
            stored = await self._register_instance()
        except (NotFound, FailedPrecondition, Conflict):
            # The definition vanished between the two calls (or was never
            # created; a Conflict when it went during the write): create it
            # and try once more.
            await self._ensure_agent()
            stored = await self._register_instance()
        self.lease_id = stored.lease_id
        log.info("registered instance %s/%s at %s", self.namespace, self.instance_id, self.endpoint)

    async def _register_instance(self) -> registry_pb2.Instance:
        return await self.client.register_instance(
            self._instance(), ttl=self.ttl, replace=True, timeout=self._call_timeout
        )

    async def start(self) -> None:
        """First registration. Configuration errors (a bad id, a missing agent
        with register_agent=False) raise; an unreachable registry is logged
        and left to `run()` to retry."""
        try:
            await self.register()
        except (Unavailable, DeadlineExceeded) as err:
            log.warning("registry %s unreachable, will keep trying: %s", self.client.address, err)

    def retry_delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds before the next try after `failures` failures in a row: the
        shared back-off (with its jitter) from 200 ms, never longer than
        `max_backoff` nor than the renewal period (ttl/3), so a lease is retried
        before it can lapse."""
        cap = min(self.max_backoff, self.ttl / 3)
        return Backoff(initial=min(RETRY_INITIAL, cap), maximum=cap).seconds(failures, rand)

    async def run(self) -> None:
        """Keep the lease alive until cancelled; never raises otherwise."""
        failures = 0
        period = self.ttl.total_seconds() / 3
        delay = period if self.lease_id else 0.0
        while True:
            await asyncio.sleep(delay)
            try:
                if not self.lease_id:
                    await self.register()
                else:
                    try:
                        await self.client.keep_alive_instance(
                            self.instance_id, self.lease_id, namespace=self.namespace, timeout=self._call_timeout
                        )
                    except NotFound:
                        log.warning("lease of instance %s lapsed; registering again", self.instance_id)
                        self.lease_id = 0
                        await self.register()
                failures = 0
                delay = period
            except SutradharError as err:
                failures += 1
                delay = self.retry_delay(failures)
                log.warning(
                    "registry %s: keep-alive of instance %s failed (%s: %s); retrying in %.1fs",
                    self.client.address, self.instance_id, type(err).__name__, err, delay,
                )

    async def drain(self) -> None:
        """Tell the registry this instance takes no new work (best effort)."""
        if not self.lease_id:
            return
        try:
            await self.client.update_instance_state(
                self.instance_id,
                registry_pb2.INSTANCE_STATE_DRAINING,
                namespace=self.namespace,
                timeout=self._call_timeout,
            )
        except SutradharError as err:
            log.warning("could not mark instance %s DRAINING: %s", self.instance_id, err)

    async def deregister(self) -> None:
        """Remove the instance (best effort: its lease lapses anyway)."""
        try:
            await self.client.deregister_instance(
                self.instance_id, namespace=self.namespace, timeout=self._call_timeout
            )
        except NotFound:
            pass
        except SutradharError as err:
            log.warning("could not deregister instance %s: %s", self.instance_id, err)
        self.lease_id = 0


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """`["k=v", ...]` as a dict; ValueError naming a malformed item."""
    try:
        return parse_pairs(items)
    except ValueError as err:
        raise ValueError(f"label {err}") from None
