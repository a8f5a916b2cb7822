"""Service members: who is alive, and (for health) which of them probes which instance.

Each member keeps a key ``/sutradhar/v1/members/<service>/<member-id>`` under an
etcd lease it renews every third of the TTL. Every member watches the member
set; an instance belongs to the live member with the highest rendezvous
(highest-random-weight) score for the instance's key, so every member computes
the same split without talking to the others, and when a member joins or
leaves only the instances it wins or loses move. A member whose lease lapses
disappears from the set at most one TTL after it died, and the survivors take
its instances over. Routers are members too (``service="router"``): shared rate limits
are split among the live ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from sutradhar._errors import NotFound, Unavailable
from sutradhar.services.common import keys
from sutradhar.services.common.follow import follow_prefix
from sutradhar.services.common.store import Event, EventType, KeyValue, Store

log = logging.getLogger(__name__)

SERVICE = "health"


def members_prefix(service: str = SERVICE) -> str:
    """The etcd prefix of the live members of `service` (health members by default)."""
    return f"{keys.ROOT}{keys.MEMBERS}/{service}/"


def member_key(member_id: str, service: str = SERVICE) -> str:
    """The etcd key of one member of `service`."""
    return members_prefix(service) + member_id


def score(member_id: str, key: str) -> int:
    """The rendezvous weight of `member_id` for `key` (64 bits of BLAKE2b)."""
    digest = hashlib.blake2b(f"{member_id}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(members: Iterable[str], key: str) -> str | None:
    """The member that probes `key`: the highest score (ties by id); None without members."""
    best: tuple[int, str] | None = None
    for member in members:
        candidate = (score(member, key), member)
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[1]


class Membership:
    """This member's lease and key, and a live view of every member of `service` (routers use it
    too: shared rate limits are split among the live routers)."""

    def __init__(
        self,
        store: Store,
        member_id: str,
        *,
        address: str = "",
        ttl: timedelta = timedelta(seconds=5),
        on_change: Callable[[], None] | None = None,
        service: str = SERVICE,
    ) -> None:
        self.store = store
        self.service = service
        self.member_id = member_id
        self.address = address
        self.ttl = ttl
        self.members: dict[str, dict[str, str]] = {}
        self.lease_id = 0
        self.ready = asyncio.Event()
        self.on_change: Callable[[], None] = on_change or (lambda: None)
        """Called whenever a member joins or leaves."""
        self._join_time = datetime.now(UTC)

    def live(self) -> list[str]:
        """Ids of the members currently seen alive, sorted."""
        return sorted(self.members)

    def owns(self, key: str) -> bool:
        """Whether this member probes `key` under the current member set."""
        return self.member_id in self.members and owner(self.members, key) == self.member_id

    async def join(self) -> None:
        """Take a lease and write this member's key under it."""
        self.lease_id = await self.store.grant_lease(self.ttl)
        value = json.dumps(
            {"id": self.member_id, "address": self.address, "join_time": self._join_time.isoformat()}
        ).encode()
        await self.store.put(member_key(self.member_id, self.service), value, lease=self.lease_id)

    async def leave(self) -> None:
        """Revoke the lease: the others take this member's instances at once."""
        if self.lease_id:
            try:
                await self.store.revoke_lease(self.lease_id)
            except Unavailable as err:
                log.warning("could not revoke member lease: %s", err)
            self.lease_id = 0

    async def keep_alive(self) -> None:
        """Renew the lease every TTL/3 forever; join again if it lapsed."""
        interval = max(0.2, self.ttl.total_seconds() / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.store.keep_alive(self.lease_id)
            except NotFound:
                log.warning("%s member %s lost its lease; joining again", self.service, self.member_id)
                try:
                    await self.join()
                except Unavailable as err:
                    log.warning("cannot rejoin: %s", err)
            except Unavailable as err:
                log.warning("cannot renew member lease: %s", err)

    async def watch(self) -> None:
        """Keep `members` current (list, then watch with resume) forever."""

        def reset(kvs: list[KeyValue]) -> None:
            self.members = {kv.key.rsplit("/", 1)[-1]: _parse(kv.value) for kv in kvs}
            self.ready.set()
            self.on_change()

        def event(ev: Event) -> None:
            name = ev.kv.key.rsplit("/", 1)[-1]
            if ev.type is EventType.PUT:
                known = name in self.members
                self.members[name] = _parse(ev.kv.value)
                if known:
                    return
            elif self.members.pop(name, None) is None:
                return
            self.on_change()

        await follow_prefix(self.store, members_prefix(self.service), reset=reset, event=event)


def _parse(raw: bytes) -> dict[str, str]:
    try:
        value = json.loads(raw)
        return {k: str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    except ValueError:
        return {}
