"""Quota arithmetic (services/common/quota.py): amounts, usage, admission messages and room."""

from __future__ import annotations

import pytest

from sutradhar._errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from sutradhar.services.common import quota
from sutradhar.services.common.quota import AgentFootprint, DeploymentFootprint, Objects, Quota
from sutradhar.v1 import quota_pb2, scheduler_pb2


@pytest.mark.parametrize(("resource", "text", "amount"), [
    ("cpu", "2", 2000), ("cpu", "500m", 500), ("cpu", "0.5", 500), ("cpu", "0", 0), ("cpu", "100", 100_000),
    ("cpu", "0.0001", 1),  # rounded up to 1m, as Kubernetes does
    ("memory", "1Gi", 2**30), ("memory", "256Mi", 256 * 2**20), ("memory", "1G", 10**9), ("memory", "0", 0),
    ("memory", "2Ti", 2 * 2**40),
    ("replicas", "10", 10), ("agents", "0", 0), ("deployments", " 3 ", 3),
])
def test_amounts_parse_kubernetes_quantities(resource: str, text: str, amount: int) -> None:
    assert quota.parse_amount(resource, text, field="f") == amount


@pytest.mark.parametrize(("resource", "text", "says"), [
    ("cpu", "lots", "is not a CPU quantity"), ("memory", "1 GB", "is not a memory quantity"),
    ("replicas", "1.5", "is not a whole number of replicas"), ("replicas", "-1", "is not a whole number"),
    ("agents", "2000000", "is more than 1000000"), ("gpus", "1", "is not a quota resource"),
])
def test_bad_amounts_name_the_field(resource: str, text: str, says: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        quota.parse_amount(resource, text, field="quota.spec.hard.x")
    assert says in err.value.message and err.value.field == "quota.spec.hard.x"


@pytest.mark.parametrize(("resource", "amount", "text"), [
    ("cpu", 2000, "2"), ("cpu", 2500, "2500m"), ("cpu", 0, "0"), ("memory", 8 * 2**30, "8Gi"),
    ("memory", 3 * 2**20, "3Mi"), ("memory", 1536 * 2**20, "1536Mi"), ("memory", 10**9, "1000000000"),
    ("memory", 0, "0"), ("replicas", 7, "7"),
])
def test_amounts_format_as_quantities(resource: str, amount: int, text: str) -> None:
    assert quota.format_amount(resource, amount) == text
    assert quota.parse_amount(resource, text, field="f") == amount


def _quota(**hard: str) -> quota_pb2.ResourceQuota:
    return quota_pb2.ResourceQuota(namespace="team-a", name="compute", spec=quota_pb2.ResourceQuotaSpec(hard=hard))


def test_validate_quota_names_what_is_wrong() -> None:
    quota.validate_quota(_quota(replicas="10", cpu="4", memory="8Gi", agents="5", deployments="3"))
    with pytest.raises(InvalidArgument, match="at least one limit is required") as err:
        quota.validate_quota(_quota())
    assert err.value.field == "quota.spec.hard"
    with pytest.raises(InvalidArgument, match=r'"pods" is not a quota resource \(valid: agents, deployments') as err:
        quota.validate_quota(_quota(pods="10"))
    assert err.value.field == "quota.spec.hard.pods"
    with pytest.raises(InvalidArgument, match="is not a CPU quantity") as err:
        quota.validate_quota(_quota(cpu="four"))
    assert err.value.field == "quota.spec.hard.cpu"
    bad_name = _quota(replicas="1")
    bad_name.name = "Not_A_Label"
    with pytest.raises(InvalidArgument) as err:
        quota.validate_quota(bad_name)
    assert err.value.field == "quota.name"


def test_status_normalizes_hard_and_fills_used() -> None:
    q = quota.quota_from_proto(_quota(cpu="0.5", memory="1024Mi", replicas="4"))
    status = quota.status_of(q, {"cpu": 1500, "memory": 2**29, "replicas": 3, "agents": 9})
    assert dict(status.hard) == {"cpu": "500m", "memory": "1Gi", "replicas": "4"}
    assert dict(status.used) == {"cpu": "1500m", "memory": "512Mi", "replicas": "3"}  # only what it bounds


def _objects() -> Objects:
    return Objects(
        agents={"echo": AgentFootprint(cpu=500, memory=256 * 2**20), "bare": AgentFootprint()},
        deployments={
            "web": DeploymentFootprint("echo", replicas=3),                         # the agent's limits
            "big": DeploymentFootprint("echo", replicas=2, cpu=2000, memory=2**30),  # its own limits
        },
    )


def test_usage_sums_replicas_times_each_replicas_limit() -> None:
    used = quota.usage(_objects())
    assert used == {"agents": 2, "deployments": 2, "replicas": 5,
                    "cpu": 3 * 500 + 2 * 2000, "memory": 3 * 256 * 2**20 + 2 * 2**30}


def test_deployment_footprint_counts_the_autoscalers_floor_and_not_a_deleting_one() -> None:
    d = scheduler_pb2.Deployment(name="a", spec=scheduler_pb2.DeploymentSpec(
        agent_id="echo", replicas=1, resources={"cpu": "250m"},
        autoscale=scheduler_pb2.AutoscalePolicy(min_replicas=3, max_replicas=9, target_in_flight=1)))
    assert quota.deployment_footprint(d) == DeploymentFootprint("echo", replicas=3, cpu=250, memory=None)
    d.spec.replicas = 5
    assert quota.deployment_footprint(d).replicas == 5
    d.delete_time.GetCurrentTime()
    assert quota.deployment_footprint(d).replicas == 0


def test_admit_names_quota_resource_requested_used_and_hard() -> None:
    quotas = [Quota("team-a", "compute", {"replicas": 10})]
    before = _objects().with_replicas({"web": 6})  # 8 used
    quota.admit(quotas, before, before.with_replicas({"web": 8}), what="ok")  # exactly at hard: fits
    with pytest.raises(ResourceExhausted) as err:
        quota.admit(quotas, before, before.with_replicas({"web": 10}),
                    what='deployment "web" scaled (6 -> 10 replicas)')
    message = err.value.message
    assert message.startswith("exceeded quota team-a/compute: requested replicas=4, used 8, hard 10 "
                              '(deployment "web" scaled (6 -> 10 replicas))')
    assert "`sutradhar quota -n team-a`" in message and "raise the quota" in message


def test_admit_checks_every_quota_and_formats_quantities() -> None:
    quotas = [Quota("team-a", "a-counts", {"replicas": 100}), Quota("team-a", "b-compute", {"cpu": 6000})]
    before = _objects()  # cpu 5500m
    with pytest.raises(ResourceExhausted, match=r"exceeded quota team-a/b-compute: requested cpu=2, "
                                                r"used 5500m, hard 6 "):
        quota.admit(quotas, before, before.with_replicas({"big": 3}), what="x")


def test_admit_lets_an_over_quota_namespace_shrink_or_stay() -> None:
    quotas = [Quota("team-a", "compute", {"replicas": 2})]  # lowered below the 5 in use
    before = _objects()
    quota.admit(quotas, before, before.with_replicas({"web": 1}), what="down")  # shrinking
    quota.admit(quotas, before, before.with_agent("new", AgentFootprint()), what="unrelated")  # replicas unchanged
    with pytest.raises(ResourceExhausted, match="requested replicas=1, used 5, hard 2"):
        quota.admit(quotas, before, before.with_replicas({"web": 4}), what="up")


def test_admit_counts_agents_and_deployments() -> None:
    quotas = [Quota("team-a", "objects", {"agents": 2, "deployments": 3})]
    before = _objects()
    with pytest.raises(ResourceExhausted, match="requested agents=1, used 2, hard 2"):
        quota.admit(quotas, before, before.with_agent("third", AgentFootprint()), what='agent "third" registered')
    quota.admit(quotas, before, before.with_deployment("c", DeploymentFootprint("echo", 0)), what="third")


def test_admit_refuses_replicas_without_a_limit_the_quota_bounds() -> None:
    quotas = [Quota("team-a", "compute", {"memory": 64 * 2**30})]
    before = _objects()
    after = before.with_deployment("raw", DeploymentFootprint("bare", replicas=1))
    with pytest.raises(FailedPrecondition) as err:
        quota.admit(quotas, before, after, what='deployment "raw" created with 1 replica')
    assert err.value.message == (
        'deployment "raw" created with 1 replica: quota team-a/compute limits memory, so every replica needs a '
        "memory limit, and deployment 'raw' has none; set spec.resources.memory on the deployment "
        "(or resources.memory on agent 'bare')")
    # with no replicas, or with its own limit, it may be created
    quota.admit(quotas, before, before.with_deployment("raw", DeploymentFootprint("bare", 0)), what="x")
    quota.admit(quotas, before, before.with_deployment("raw", DeploymentFootprint("bare", 1, memory=2**20)), what="x")


def test_admit_leaves_unchanged_unlimited_deployments_alone() -> None:
    """One admitted before the quota existed keeps running; only what changes is checked."""
    before = Objects(agents={"bare": AgentFootprint()}, deployments={"old": DeploymentFootprint("bare", 2)})
    quotas = [Quota("team-a", "compute", {"cpu": 4000})]
    quota.admit(quotas, before, before.with_agent("other", AgentFootprint()), what="x")
    with pytest.raises(FailedPrecondition):
        quota.admit(quotas, before, before.with_replicas({"old": 3}), what="x")


def test_changing_an_agents_limits_changes_its_deployments_usage() -> None:
    quotas = [Quota("team-a", "compute", {"cpu": 6000})]
    before = _objects()  # web: 3 x 500m of agent echo, big: own 2 x 2
    with pytest.raises(ResourceExhausted, match="requested cpu=1500m, used 5500m, hard 6"):
        quota.admit(quotas, before, before.with_agent("echo", AgentFootprint(cpu=1000, memory=2**20)), what="x")


def test_room_is_the_tightest_limit_over_every_quota() -> None:
    objects = _objects()  # replicas 5, cpu 5500m, memory 2.75Gi
    assert quota.room([], objects, "web") == quota.Room(extra=None)
    quotas = [Quota("team-a", "counts", {"replicas": 20}), Quota("team-a", "compute", {"cpu": 7000})]
    got = quota.room(quotas, objects, "web")  # cpu: (7000 - 5500) // 500 = 3 beats replicas 15
    assert (got.extra, got.quota, got.resource) == (3, "team-a/compute", "cpu")
    assert got.describe() == "quota team-a/compute: cpu used 5500m, hard 7"
    assert quota.room(quotas, objects, "big").extra == 0  # 2 cores each: none fit
    over = quota.room([Quota("team-a", "tiny", {"replicas": 1})], objects, "web")
    assert over.extra == 0  # already over: no room, never negative


def test_room_is_zero_without_a_limit_on_a_bounded_resource() -> None:
    objects = Objects(agents={"bare": AgentFootprint()}, deployments={"raw": DeploymentFootprint("bare", 1)})
    got = quota.room([Quota("team-a", "mem", {"memory": 2**30})], objects, "raw")
    assert got.extra == 0 and got.missing_limit
    assert got.describe() == "quota team-a/mem limits memory and the replicas have no memory limit"


def test_docs_quote_the_real_messages() -> None:
    from pathlib import Path

    docs = " ".join((Path(__file__).resolve().parents[2] / "docs" / "quotas.md").read_text().split())
    objects = Objects(agents={"echo": AgentFootprint()},
                      deployments={"web": DeploymentFootprint("echo", 6), "b": DeploymentFootprint("echo", 2)})
    with pytest.raises(ResourceExhausted) as exhausted:
        quota.admit([Quota("team-a", "compute", {"replicas": 10})], objects, objects.with_replicas({"web": 10}),
                    what='deployment "web" scaled (6 -> 10 replicas)')
    assert exhausted.value.message in docs
    empty = Objects(agents={"echo": AgentFootprint()})
    with pytest.raises(FailedPrecondition) as unlimited:
        quota.admit([Quota("team-a", "compute", {"cpu": 4000})], empty,
                    empty.with_deployment("raw", DeploymentFootprint("echo", 1)),
                    what='deployment "raw" created with 1 replica')
    assert unlimited.value.message in docs


@pytest.mark.parametrize("spec", [
    scheduler_pb2.DeploymentSpec(agent_id="echo", replicas=3),
    scheduler_pb2.DeploymentSpec(agent_id="echo", replicas=2, resources={"cpu": "1500m", "memory": "1Gi"}),
    scheduler_pb2.DeploymentSpec(agent_id="echo", replicas=0, autoscale=scheduler_pb2.AutoscalePolicy()),
    scheduler_pb2.DeploymentSpec(agent_id="echo", replicas=1,
                                 autoscale=scheduler_pb2.AutoscalePolicy(min_replicas=4, max_replicas=8)),
    scheduler_pb2.DeploymentSpec(agent_id="echo"),
])
@pytest.mark.parametrize("deleting", [False, True])
def test_stored_json_counts_as_the_message_does(spec: scheduler_pb2.DeploymentSpec, deleting: bool) -> None:
    import json

    from sutradhar.services.common import keys
    from sutradhar.v1 import registry_pb2

    d = scheduler_pb2.Deployment(name="d", namespace="team-a", spec=spec)
    d.status.revisions.add(revision="abc", agent=registry_pb2.Agent(id="echo", resources={"cpu": "9"}))
    if deleting:
        d.delete_time.GetCurrentTime()
    assert quota.deployment_footprint_json(json.loads(keys.encode(d))) == quota.deployment_footprint(d)
    for resources in ({}, {"cpu": "250m"}, {"cpu": "2", "memory": "64Mi"}):
        agent = registry_pb2.Agent(id="echo", resources=resources)
        assert quota.agent_footprint_json(json.loads(keys.encode(agent))) == quota.agent_footprint(agent)
