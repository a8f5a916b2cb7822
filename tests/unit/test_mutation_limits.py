"""MutationLimits (services/common/mutation_limits.py): which methods, whom, the refusal and its trailer."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from sutradhar._identity import SpiffeId
from sutradhar._middleware import Method
from sutradhar._token_bucket import PUSHBACK_TRAILER, RateLimited
from sutradhar.services.common import principal
from sutradhar.services.common.access import ACCESS
from sutradhar.services.common.mutation_limits import MutationLimits, is_mutation
from sutradhar.services.common.principal import CERTIFICATE, Principal
from sutradhar.services.common.security import SecurityStack
from sutradhar.services.common.security_config import ServiceSecurity

TD = "sutradhar.local"
REGISTRY = "sutradhar.v1.RegistryService"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Context:
    def __init__(self) -> None:
        self.trailers: tuple[tuple[str, str], ...] = ()

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.trailers = metadata


async def handler(request: Any, context: Any) -> str:
    return "done"


def call(behaviour: Any, identity: SpiffeId) -> tuple[str | RateLimited, Context]:
    context = Context()

    async def go() -> str | RateLimited:
        token = principal.CURRENT.set(Principal(identity=identity, via=CERTIFICATE))
        try:
            return str(await behaviour(None, context))
        except RateLimited as err:
            return err
        finally:
            principal.CURRENT.reset(token)

    return asyncio.run(go()), context


def test_mutations_are_non_read_verbs_that_change_state() -> None:
    assert is_mutation(ACCESS[f"/{REGISTRY}/RegisterAgent"])
    assert is_mutation(ACCESS["/sutradhar.v1.SchedulerService/ScaleDeployment"])
    assert is_mutation(ACCESS["/sutradhar.v1.HealthService/DrainInstance"])
    assert is_mutation(ACCESS["/sutradhar.v1.RateLimitService/ApplyRateLimit"])
    assert not is_mutation(ACCESS[f"/{REGISTRY}/GetAgent"])
    assert not is_mutation(ACCESS[f"/{REGISTRY}/Watch"])
    assert not is_mutation(ACCESS["/sutradhar.v1.AuditService/ListAuditEvents"])   # verb read
    assert not is_mutation(ACCESS["/sutradhar.v1.SchedulerService/GetLogs"])       # verb logs
    assert not is_mutation(ACCESS[f"/{REGISTRY}/KeepAliveInstance"])               # a heartbeat
    assert not is_mutation(None)


def test_reads_are_left_out_of_the_chain() -> None:
    limits = MutationLimits(rate=1, burst=1, service="registry")
    assert limits.unary(Method(REGISTRY, "GetAgent"), handler) is handler
    assert limits.unary(Method("grpc.health.v1.Health", "Check"), handler) is handler
    assert limits.unary(Method(REGISTRY, "RegisterAgent"), handler) is not handler


def test_the_call_past_the_burst_is_refused_with_the_pushback_trailer_and_refills() -> None:
    clock = Clock()
    limits = MutationLimits(rate=2, burst=3, service="registry", clock=clock)
    behaviour = limits.unary(Method(REGISTRY, "RegisterAgent"), handler)
    alice = SpiffeId.user(TD, "team-a", "alice")
    assert [call(behaviour, alice)[0] for _ in range(3)] == ["done"] * 3
    clock.now += 0.1
    refused, context = call(behaviour, alice)
    assert isinstance(refused, RateLimited)
    assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(alice) in refused.message and "2 per second" in refused.message and "burst 3" in refused.message
    assert "retry in 400ms" in refused.message and "SUTRADHAR_REGISTRY_MUTATION_RATE" in refused.message
    assert context.trailers == ((PUSHBACK_TRAILER, "400"),)
    assert call(behaviour, SpiffeId.user(TD, "team-a", "bob"))[0] == "done"   # another principal: its own
    clock.now += 0.4
    assert call(behaviour, alice)[0] == "done"


def test_mesh_services_are_not_limited() -> None:
    limits = MutationLimits(rate=1, burst=1, service="registry", clock=Clock())
    behaviour = limits.unary(Method(REGISTRY, "RegisterInstance"), handler)
    scheduler = SpiffeId.service(TD, "scheduler")
    assert [call(behaviour, scheduler)[0] for _ in range(5)] == ["done"] * 5


def test_rejects_a_zero_rate() -> None:
    with pytest.raises(ValueError):
        MutationLimits(rate=0, burst=1, service="registry")


def test_security_stack_adds_the_stage_unless_off_insecure_or_the_router(tmp_path: Any) -> None:
    assert SecurityStack(ServiceSecurity(insecure=True), None, service="registry").mutation_limits is None
    # Secured stacks need a store object only to build their caches; nothing is started here.
    store: Any = object()
    on = SecurityStack(ServiceSecurity(), store, service="registry")
    assert on.mutation_limits is not None and on.mutation_limits in on.middleware
    assert (on.mutation_limits.rate, on.mutation_limits.burst) == (50.0, 100)
    assert SecurityStack(ServiceSecurity(mutation_rate=0), store, service="registry").mutation_limits is None
    assert SecurityStack(ServiceSecurity(), store, service="router", mutation_limits=False).mutation_limits is None
