"""Several health members as real child processes (`python -m
sutradhar.services.health`): the instances are split between them by
rendezvous hashing, no instance is probed by two members at steady state, and
when one member is killed (SIGKILL, mid-probing) the other takes its
instances over within one member TTL (plus etcd's lease-expiry tick and the
first probe period); a member that joins gets its share, and one that leaves
with SIGTERM hands its instances over at once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta

from test_health_support import PERIOD, HealthEndpoint, probe_spec, put_agent, put_instance, stored, wait_for

from sutradhar.services.common import keys
from sutradhar.services.common.membership import member_key, owner
from sutradhar.testing import spawn_agent
from tests.support import eventually

TTL = 2.0


def _pick_ids(members: list[str], ns: str, per_member: int, *, joiner: str) -> dict[str, list[str]]:
    """Instance ids such that each member owns `per_member` of them, and
    `joiner` wins some of them from the last member."""
    for start in range(0, 10_000, 100):
        chosen = _split(members, ns, per_member, start)
        every = [iid for ids in chosen.values() for iid in ids]
        if any(owner([members[-1], joiner], keys.instance_key(ns, iid)) == joiner for iid in every):
            return chosen
    raise AssertionError("no suitable ids")


def _split(members: list[str], ns: str, per_member: int, start: int) -> dict[str, list[str]]:
    chosen: dict[str, list[str]] = {m: [] for m in members}
    n = start
    while any(len(v) < per_member for v in chosen.values()):
        iid = f"i{n}"
        n += 1
        who = owner(members, keys.instance_key(ns, iid))
        if who is not None and len(chosen[who]) < per_member:
            chosen[who].append(iid)
    return chosen


def _spawn_member(etcd: str, member_id: str):
    return spawn_agent([
        sys.executable, "-m", "sutradhar.services.health", "--insecure", "--port", "0", "--etcd", etcd,
        "--member-id", member_id, "--member-ttl", str(TTL), "--flush-interval", "1", "--log-level", "WARNING",
    ])


async def test_members_split_instances_and_take_over_a_killed_member(etcd, store, unique):
    ns = unique
    a_id, b_id, c_id = f"{unique}-a", f"{unique}-b", f"{unique}-c"
    ids = _pick_ids([a_id, b_id], ns, 3, joiner=c_id)
    endpoints: dict[str, HealthEndpoint] = {}
    leases: list[int] = []
    a, b = await asyncio.gather(asyncio.to_thread(_spawn_member, etcd, a_id),
                                asyncio.to_thread(_spawn_member, etcd, b_id))
    procs = [a, b]
    try:
        await put_agent(store, ns, "echo", readiness=probe_spec("grpc"))
        for iid in ids[a_id] + ids[b_id]:
            ep = HealthEndpoint()
            await ep.start()
            endpoints[iid] = ep
            leases.append(await put_instance(store, ns, iid, "echo", ep.address))
        for who, owned in ids.items():
            for iid in owned:
                await wait_for(store, ns, iid, lambda i, who=who: i.health.prober == who, 5)

        # Steady state: each instance is probed by exactly its owner.
        for ep in endpoints.values():
            ep.servicer.probers.clear()
        await asyncio.sleep(PERIOD * 4)
        for who, owned in ids.items():
            for iid in owned:
                assert endpoints[iid].servicer.probers == {who}, (iid, endpoints[iid].servicer.probers)

        # Kill A while it probes; B takes A's instances over.
        a.proc.kill()
        a.wait()
        killed = time.monotonic()
        for iid in ids[a_id]:
            endpoints[iid].servicer.probers.clear()
        pending = set(ids[a_id])

        def taken_over() -> bool:
            nonlocal pending
            pending = {iid for iid in pending if b_id not in endpoints[iid].servicer.probers}
            return not pending

        await eventually(taken_over, within=TTL + 3, period=0.02, what=lambda: f"not taken over: {pending}")
        took = time.monotonic() - killed
        print(f"takeover of {len(ids[a_id])} instances took {took:.2f}s (member TTL {TTL}s)")
        assert not pending, f"not taken over: {pending}"
        # Within one lease TTL of the last keep-alive; etcd revokes expired
        # leases on a 0.5 s tick, and a taken-over instance is probed at once
        # (0.1 s jitter); 0.4 s more for a busy 2-core machine.
        assert took <= TTL + 0.5 + 0.1 + 0.4
        for iid in ids[a_id]:
            await wait_for(store, ns, iid, lambda i: i.health.prober == b_id, 2)
            assert (await stored(store, ns, iid)).state == 2
        # A's member key is gone with its lease.
        assert await store.get(member_key(a_id)) is None
        # B still probes only once per instance.
        for ep in endpoints.values():
            ep.servicer.probers.clear()
        await asyncio.sleep(PERIOD * 3)
        assert all(ep.servicer.probers == {b_id} for ep in endpoints.values())

        # A new member joins and gets its share; B leaves gracefully (SIGTERM):
        # its lease is revoked at once, so C takes everything well within a TTL.
        c = await asyncio.to_thread(_spawn_member, etcd, c_id)
        procs.append(c)
        c_share = [iid for iid in endpoints if owner([b_id, c_id], keys.instance_key(ns, iid)) == c_id]
        assert c_share
        for iid in c_share:
            await wait_for(store, ns, iid, lambda i: i.health.prober == c_id, 5)
        left = time.monotonic()
        assert await asyncio.to_thread(b.stop, timedelta(seconds=10)) == 0
        for iid in endpoints:
            await wait_for(store, ns, iid, lambda i: i.health.prober == c_id, TTL)
        print(f"graceful handover took {time.monotonic() - left:.2f}s including B's shutdown")
    finally:
        for proc in procs:
            proc.stop(timedelta(seconds=5))
        await store.delete(member_key(a_id))
        for lease in leases:
            await store.revoke_lease(lease)
        for ep in endpoints.values():
            await ep.stop()
