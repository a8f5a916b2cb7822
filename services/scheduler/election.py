"""Leader election through etcd (the etcd "election" recipe).

Each candidate holds a lease and creates ``/sutradhar/v1/elections/<name>/<lease-id>``
(create-if-absent) under it; the candidate whose key has the lowest create
revision leads. Candidates watch the prefix, so when the leader's lease lapses
(it died) or it resigns, the next one learns at once and leads within one TTL.
A leader that cannot renew its lease in time steps down before the lease can
lapse, so two leaders never act at once for longer than the clock skew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sutradhar._aio import wait_set
from sutradhar._errors import NotFound
from sutradhar.services.common import keys
from sutradhar.services.common.store import Guard, Op, Store

log = logging.getLogger(__name__)


def election_prefix(name: str) -> str:
    """Where candidates of election `name` live."""
    return f"{keys.ROOT}{keys.ELECTIONS}/{name}/"


class LeaderElection:
    """Campaign for leadership of `name`; call `run()` in a task.

    `on_change(is_leader)` is awaited whenever leadership is won or lost.
    """

    def __init__(
        self,
        store: Store,
        *,
        name: str,
        member_id: str,
        ttl: timedelta = timedelta(seconds=5),
        on_change: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.member_id = member_id
        self.ttl = ttl
        self.on_change = on_change
        self.is_leader = False
        self.leader_id = ""
        self._lease = 0
        self._key = ""
        self._wake = asyncio.Event()
        self._renewed_at = 0.0

    async def _set(self, leading: bool) -> None:
        if leading == self.is_leader:
            return
        if leading and self.on_change is not None:
            try:
                await self.on_change(True)
            except Exception:
                # the leader could not take over (e.g. adoption failed): resign so
                # another member, or this one on its next campaign, tries again
                log.exception("member %s could not take over %s; resigning", self.member_id, self.name)
                await self._drop_lease()
                raise
        self.is_leader = leading
        log.info("member %s %s leadership of %s", self.member_id, "won" if leading else "lost", self.name)
        if not leading and self.on_change is not None:
            await self.on_change(False)

    async def _drop_lease(self) -> None:
        if self._lease:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self.store.revoke_lease(self._lease)
            self._lease = 0

    async def _campaign(self) -> None:
        self._lease = await self.store.grant_lease(self.ttl)
        self._key = f"{election_prefix(self.name)}{self._lease:x}"
        await self.store.commit([Guard(self._key, 0)], [Op(self._key, self.member_id.encode(), self._lease)])
        self._renewed_at = time.monotonic()

    async def _check(self) -> None:
        kvs, _ = await self.store.list(election_prefix(self.name))
        if not kvs:
            self.leader_id = ""
            await self._set(False)
            return
        first = min(kvs, key=lambda kv: kv.create_revision)
        self.leader_id = first.value.decode()
        await self._set(first.key == self._key)

    async def _watch(self) -> None:
        while True:
            try:
                async for _ev in self.store.watch(election_prefix(self.name)):
                    self._wake.set()
            except Exception:  # a broken watch: poll until it works again
                await asyncio.sleep(0.2)
            self._wake.set()

    async def run(self) -> None:
        """Campaign, renew and watch until cancelled; then resign."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watch())
                await self._campaign_loop()
        finally:
            await self.resign()

    async def _campaign_loop(self) -> None:
        period = max(0.2, self.ttl.total_seconds() / 3)
        while True:
            try:
                if not self._lease:
                    await self._campaign()
                elif time.monotonic() - self._renewed_at >= period * 0.9:
                    await self.store.keep_alive(self._lease)
                    self._renewed_at = time.monotonic()
                await self._check()
            except NotFound:
                log.warning("election lease of %s lapsed; campaigning again", self.member_id)
                self._lease = 0
                await self._set(False)
                continue
            except Exception as err:  # etcd trouble: never let the campaign die
                log.warning("election of %s: %s", self.name, err)
                if time.monotonic() - self._renewed_at > self.ttl.total_seconds() * 0.8:
                    # cannot prove the lease is alive: stop acting before it may lapse
                    await self._set(False)
                    self._lease = 0
                await asyncio.sleep(0.2)
                continue
            self._wake.clear()
            await wait_set(self._wake, period)

    async def resign(self) -> None:
        """Give up leadership at once (revoke the lease) so a successor needs no TTL."""
        was = self.is_leader
        self.is_leader = False
        await self._drop_lease()
        if was and self.on_change is not None:
            with contextlib.suppress(Exception):
                await self.on_change(False)
