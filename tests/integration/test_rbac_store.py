"""RoleBindings in a real etcd: guarded writes, listing, deletion, and the cache that
follows them so the Authorizer sees a change without reading etcd per call."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from sutradhar._errors import Conflict, InvalidArgument, NotFound
from sutradhar._identity import SpiffeId
from sutradhar.services.common.principal import CERTIFICATE, Principal
from sutradhar.services.common.rbac import Authorizer
from sutradhar.services.common.rolebindings import RoleBindingCache, RoleBindingStore
from sutradhar.services.common.store import Store
from sutradhar.v1 import rbac_pb2
from tests.support import eventually

TD = "sutradhar.local"


def binding(namespace: str, name: str, role: str, *subjects: SpiffeId) -> rbac_pb2.RoleBinding:
    return rbac_pb2.RoleBinding(namespace=namespace, name=name, role=role, subjects=[str(s) for s in subjects])


@pytest.fixture
async def cache(store: Store) -> AsyncIterator[RoleBindingCache]:
    c = RoleBindingCache(store)
    task = asyncio.create_task(c.run())
    try:
        await c.wait_ready()
        yield c
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_apply_get_list_delete(store: Store, unique: str) -> None:
    bindings = RoleBindingStore(store)
    ci = SpiffeId.user(TD, unique, "ci")
    stored, created = await bindings.apply(binding(unique, "ci", "viewer", ci), created_by="tester")
    assert created and stored.resource_version > 0 and stored.created_by == "tester"
    assert stored.HasField("create_time")
    again, created = await bindings.apply(binding(unique, "ci", "operator", ci), created_by="tester2")
    assert not created and again.role == "operator" and again.create_time == stored.create_time
    assert (await bindings.get(unique, "ci")).role == "operator"
    with pytest.raises(Conflict, match="changed since resource_version"):
        stale = binding(unique, "ci", "admin", ci)
        stale.resource_version = stored.resource_version
        await bindings.apply(stale, created_by="x")
    assert (await bindings.get(unique, "ci")).role == "operator"  # the stale write changed nothing
    await bindings.apply(binding(unique, "another", "viewer", ci), created_by="tester")
    found, revision = await bindings.list(unique)
    assert [b.name for b in found] == ["another", "ci"] and revision > 0
    everywhere, _ = await bindings.list("*")
    assert {"another", "ci"} <= {b.name for b in everywhere if b.namespace == unique}
    deleted = await bindings.delete(unique, "ci")
    assert deleted.role == "operator"
    with pytest.raises(NotFound):
        await bindings.get(unique, "ci")
    with pytest.raises(NotFound):
        await bindings.delete(unique, "ci")


async def test_invalid_bindings_name_the_field(store: Store, unique: str) -> None:
    bindings = RoleBindingStore(store)
    ci = SpiffeId.user(TD, unique, "ci")
    cases = {
        "binding.name": binding(unique, "Not_A_Label", "viewer", ci),
        "binding.role": binding(unique, "x", "superuser", ci),
        "binding.subjects": binding(unique, "x", "viewer"),
        "binding.subjects[0]": rbac_pb2.RoleBinding(namespace=unique, name="x", role="viewer", subjects=["bob"]),
        "binding.namespace": binding("*", "x", "viewer", ci),
    }
    for field, bad in cases.items():
        with pytest.raises(InvalidArgument) as err:
            await bindings.apply(bad, created_by="t")
        assert err.value.field == field, (field, err.value.message)
    with pytest.raises(InvalidArgument, match="roles: viewer, invoker, operator, admin, cluster-admin"):
        await bindings.apply(binding(unique, "x", "superuser", ci), created_by="t")
    with pytest.raises(InvalidArgument, match="implicitly"):
        await bindings.apply(binding(unique, "x", "agent", ci), created_by="t")
    assert (await bindings.list(unique))[0] == []


async def test_the_cache_follows_bindings_and_the_authorizer_sees_them(
    store: Store, cache: RoleBindingCache, unique: str
) -> None:
    bindings = RoleBindingStore(store)
    ci = SpiffeId.user(TD, unique, "ci")
    caller = Principal(ci, CERTIFICATE)
    authorizer = Authorizer(cache, trust_domain=TD)
    assert not authorizer.check(caller, "scale", "deployments", unique).allowed
    await bindings.apply(binding(unique, "ops", "operator", ci), created_by="t")
    await eventually(lambda: authorizer.check(caller, "scale", "deployments", unique).allowed, within=10,
                     what="the new binding to reach the cache")
    await bindings.apply(binding(unique, "ops", "viewer", ci), created_by="t")
    await eventually(lambda: not authorizer.check(caller, "scale", "deployments", unique).allowed, within=10,
                     what="the changed binding to reach the cache")
    assert authorizer.check(caller, "get", "deployments", unique).allowed
    await bindings.delete(unique, "ops")
    await eventually(lambda: not authorizer.check(caller, "get", "deployments", unique).allowed, within=10,
                     what="the deleted binding to leave the cache")


async def test_a_new_cache_loads_existing_bindings_before_it_is_ready(store: Store, unique: str) -> None:
    bindings = RoleBindingStore(store)
    ci = SpiffeId.user(TD, unique, "ci")
    await bindings.apply(binding(unique, "pre", "viewer", ci), created_by="t")
    fresh = RoleBindingCache(store)
    assert not fresh.ready
    task = asyncio.create_task(fresh.run())
    try:
        await fresh.wait_ready()
        assert [b.name for b in fresh.index().for_subject(str(ci))] == ["pre"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
