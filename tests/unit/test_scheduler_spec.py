"""Deployment validation (the field is named) and the revision hash."""

from __future__ import annotations

from datetime import timedelta

import pytest

import sutradhar.services.scheduler as scheduler
from sutradhar._errors import InvalidArgument
from sutradhar._values import to_struct
from sutradhar.services.scheduler.spec import autoscale_params, check_deployable, revision_of, validate_deployment
from sutradhar.v1 import registry_pb2
from sutradhar.v1 import scheduler_pb2 as P


def dep(**spec) -> P.Deployment:
    spec.setdefault("agent_id", "echo")
    return P.Deployment(name="web", spec=P.DeploymentSpec(**spec))


def agent(**fields) -> registry_pb2.Agent:
    config = fields.pop("config", {"command": ["python3", "-m", "echo"]})
    return registry_pb2.Agent(id="echo", type="echo", version=fields.pop("version", "1.0.0"),
                              runtime=fields.pop("runtime", "process"), config=to_struct(config), **fields)


def test_exports():
    assert scheduler.__all__ == ["SchedulerConfig", "SchedulerServer"]


@pytest.mark.parametrize(("d", "field"), [
    (dep(replicas=1001), "spec.replicas"),
    (dep(replicas=-1), "spec.replicas"),
    (dep(agent_id=""), "spec.agent_id"),
    (dep(resources={"cpu": "lots"}), "spec.resources.cpu"),
    (dep(strategy={"max_unavailable": "150%"}), "spec.strategy.max_unavailable"),
    (dep(autoscale={"max_replicas": 3, "target_in_flight": 0}), "spec.autoscale.target_in_flight"),
    (dep(autoscale={"max_replicas": 2000, "target_in_flight": 1}), "spec.autoscale.max_replicas"),
    (dep(autoscale={"max_replicas": 3, "target_in_flight": 1, "scale_down_window": {"seconds": 7200}}),
     "spec.autoscale.scale_down_window"),
    (dep(env={"1BAD": "x"}), "spec.env"),
])
def test_bad_deployments_name_the_field(d, field):
    with pytest.raises(InvalidArgument) as err:
        validate_deployment(d)
    assert err.value.field == field
    assert field in err.value.message


def test_autoscale_defaults():
    params = autoscale_params(P.AutoscalePolicy(max_replicas=5, target_in_flight=2))
    assert (params.min_replicas, params.max_replicas, params.tolerance) == (1, 5, 0.1)
    assert params.scale_down_window == timedelta(seconds=300)
    assert params.scale_up_window == timedelta(0)


def test_deployable_needs_a_command_or_image():
    check_deployable(agent())
    with pytest.raises(InvalidArgument) as err:
        check_deployable(agent(config={}))
    assert err.value.field == "agent.config.command"
    with pytest.raises(InvalidArgument) as err:
        check_deployable(agent(runtime="container", config={}))
    assert err.value.field == "agent.config.image"
    with pytest.raises(InvalidArgument) as err:
        check_deployable(agent(runtime="vm"))
    assert err.value.field == "agent.runtime"


def test_revision_changes_with_what_runs_only():
    spec = P.DeploymentSpec(agent_id="echo", replicas=2)
    base = revision_of(agent(), spec)
    assert base == revision_of(agent(), spec)  # stable
    assert revision_of(agent(version="1.1.0"), spec) != base
    assert revision_of(agent(config={"command": ["other"]}), spec) != base
    assert revision_of(agent(), P.DeploymentSpec(agent_id="echo", replicas=2, env={"A": "1"})) != base
    # scaling and descriptions do not start a rollout
    assert revision_of(agent(description="new words"), P.DeploymentSpec(agent_id="echo", replicas=9)) == base
