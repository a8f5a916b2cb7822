"""Registering managed replicas as instances, and keeping their leases alive.

The scheduler registers a replica through the registry once it is ready
(`Registrar.register`, repeated through etcd outages: RegisterInstance with
``replace`` is safe to repeat), deregisters it when it exits or stops (and
removes the key itself when the registry is down, so routers stop sending),
and renews every ready replica's lease at a third of the instance TTL
(`Registrar.keep_alive_loop`). What to do when the registry refuses a replica
for good is the supervisor's call; this module only talks to the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from sutradhar._clients import RegistryClient
from sutradhar._errors import AlreadyExists, DeadlineExceeded, InvalidArgument, NotFound, SutradharError, Unavailable
from sutradhar._labels import validate_label_key, validate_label_value
from sutradhar.services.common import keys
from sutradhar.services.common.store import Store
from sutradhar.services.scheduler.clock import SYSTEM_CLOCK, Clock
from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.slots import Slot
from sutradhar.v1 import registry_pb2

log = logging.getLogger(__name__)

#: Between attempts to register while the registry or etcd is unavailable.
REGISTER_RETRY = timedelta(milliseconds=500)


def instance_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The replica labels an instance carries: valid Kubernetes labels only (a
    container image may add digests longer than a label value may be)."""
    out = {}
    for key, value in labels.items():
        if key == "sutradhar.managed":
            continue
        try:
            validate_label_key(key)
            validate_label_value(value)
        except InvalidArgument:
            continue
        out[key] = value
    return out


class Registrar:
    """The scheduler's side of the registry: register, deregister, keep alive."""

    def __init__(
        self, registry: RegistryClient, store: Store, config: SchedulerConfig, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.registry = registry
        self.store = store
        self.config = config
        self.clock = clock

    async def register(self, slot: Slot, labels: Mapping[str, str] | None = None) -> registry_pb2.Instance:
        """Register the ready replica of `slot` as a SERVING instance, with the replica's labels and
        `labels`, retrying while the registry is unavailable (the reason goes in `slot.message`).
        Raises the registry's error when it refuses the instance for good."""
        assert slot.replica is not None
        replica = slot.replica
        instance = registry_pb2.Instance(
            id=slot.id, namespace=slot.namespace, agent_id=replica.agent_id, endpoint=replica.endpoint,
            runtime=slot.runtime, state=registry_pb2.INSTANCE_STATE_SERVING, version=slot.version,
            labels={**instance_labels(replica.labels), **(labels or {})}, identity=slot.identity,
        )
        while True:
            try:
                return await self.registry.register_instance(
                    instance, ttl=self.config.instance_ttl, replace=True, timeout=timedelta(seconds=5)
                )
            except (Unavailable, AlreadyExists, DeadlineExceeded) as err:
                # an etcd outage or a timed-out write: RegisterInstance with replace is safe to repeat
                slot.message = f"registering instance: {err}"
                await self.clock.sleep(REGISTER_RETRY.total_seconds())

    async def deregister(self, namespace: str, instance_id: str) -> None:
        """Remove the instance (nothing when it is gone already)."""
        with contextlib.suppress(NotFound):
            try:
                await self.registry.deregister_instance(
                    instance_id, namespace=namespace, timeout=timedelta(seconds=5)
                )
            except Unavailable:
                # the registry is down: remove the key ourselves so routers stop sending
                await self.store.delete(keys.instance_key(namespace, instance_id))

    async def drain(self, slot: Slot) -> None:
        """Mark the instance of `slot` DRAINING so routers stop picking it."""
        with contextlib.suppress(NotFound, Unavailable):
            await self.registry.update_instance_state(
                slot.id, registry_pb2.INSTANCE_STATE_DRAINING, namespace=slot.namespace,
                timeout=timedelta(seconds=5),
            )

    async def keep_alive(self, slot: Slot) -> bool:
        """Renew the lease of `slot`'s instance; False when it lapsed (NotFound)."""
        try:
            await self.registry.keep_alive_instance(
                slot.id, slot.lease_id, namespace=slot.namespace, timeout=timedelta(seconds=2)
            )
        except NotFound:
            return False
        except SutradharError as err:
            log.warning("keep-alive of %s: %s", slot.id, err)
        return True

    @property
    def keep_alive_period(self) -> float:
        """Seconds between renewals: a third of the instance TTL (at least 0.2 s)."""
        return max(0.2, self.config.instance_ttl.total_seconds() / 3)

    async def keep_alive_loop(
        self, ready: Callable[[], list[Slot]], lapsed: Callable[[Slot], Awaitable[object]]
    ) -> None:
        """Every period, renew the leases of the `ready()` slots; a slot whose
        lease lapsed while its replica still runs is handed to `lapsed`."""
        while True:
            await self.clock.sleep(self.keep_alive_period)
            await asyncio.gather(*(self._renew(s, lapsed) for s in ready()), return_exceptions=True)

    async def _renew(self, slot: Slot, lapsed: Callable[[Slot], Awaitable[object]]) -> None:
        if not await self.keep_alive(slot) and slot.ready and slot.replica is not None:
            log.warning("lease of instance %s lapsed; registering again", slot.id)
            slot.ready = False
            await lapsed(slot)
