"""Deployment validation (the field is named) and the revision hash."""

from __future__ import annotations

from datetime import timedelta

import pytest

import sutradhar.services.scheduler as scheduler
from sutradhar._errors import InvalidArgument
from sutradhar._values import to_struct
from sutradhar.services.registry.agent_validation import validate_agent
from sutradhar.services.scheduler.runtimes.process_config import check_process_limit
from sutradhar.services.scheduler.spec import (
    autoscale_params,
    check_deployable,
    check_fixed_port,
    check_resources,
    revision_of,
    validate_deployment,
)
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


@pytest.mark.parametrize(("surge", "unavailable"), [("0", "0"), ("0%", "0"), ("0", "0%"), ("0%", "0%")])
def test_strategy_that_could_not_roll_is_refused(surge, unavailable):
    with pytest.raises(InvalidArgument) as err:
        validate_deployment(dep(strategy={"max_surge": surge, "max_unavailable": unavailable}))
    assert err.value.field == "spec.strategy.max_unavailable"
    assert "may not be 0 when spec.strategy.max_surge is 0" in err.value.message
    validate_deployment(dep(strategy={"max_surge": surge, "max_unavailable": "1"}))
    validate_deployment(dep(strategy={"max_surge": "1", "max_unavailable": unavailable}))
    validate_deployment(dep(strategy={"max_surge": surge}))  # max_unavailable defaults to 25%


def test_fixed_port_allows_one_replica_that_does_not_surge():
    fixed = agent(config={"command": ["python3", "-m", "echo"], "port": 8080})
    no_surge = {"max_surge": "0", "max_unavailable": "1"}
    check_fixed_port(fixed, P.DeploymentSpec(agent_id="echo", replicas=1, strategy=no_surge))
    check_fixed_port(fixed, P.DeploymentSpec(agent_id="echo", replicas=0, strategy={"max_surge": "0"}))
    cases = [
        (P.DeploymentSpec(agent_id="echo", replicas=2, strategy=no_surge), "replicas is 2"),
        (P.DeploymentSpec(agent_id="echo", replicas=1, strategy=no_surge,
                          autoscale={"max_replicas": 3, "target_in_flight": 1}), "autoscale.max_replicas is 3"),
        (P.DeploymentSpec(agent_id="echo", replicas=1), "max_surge: 0 and max_unavailable: 1"),
        (P.DeploymentSpec(agent_id="echo", replicas=1, strategy={"max_surge": "10%", "max_unavailable": "1"}),
         "max_surge: 0 and max_unavailable: 1"),
    ]
    for spec, text in cases:
        with pytest.raises(InvalidArgument) as err:
            check_fixed_port(fixed, spec)
        assert err.value.field == "agent.config.port"
        assert "port 8080" in err.value.message and text in err.value.message
    # no fixed port, or a container's port (inside the container): any count and strategy
    check_fixed_port(agent(), P.DeploymentSpec(agent_id="echo", replicas=5))
    check_fixed_port(agent(runtime="container", config={"image": "a:1", "port": 8080}),
                     P.DeploymentSpec(agent_id="echo", replicas=5))


def test_container_memory_below_dockers_minimum_is_refused():
    container = agent(runtime="container", config={"image": "a:1"})
    check_resources(container, P.DeploymentSpec(agent_id="echo", resources={"memory": "6Mi"}))
    with pytest.raises(InvalidArgument) as err:
        check_resources(container, P.DeploymentSpec(agent_id="echo", resources={"memory": "5Mi"}))
    assert err.value.field == "spec.resources.memory" and "6Mi" in err.value.message
    small = agent(runtime="container", config={"image": "a:1"}, resources={"memory": "4Mi"})
    with pytest.raises(InvalidArgument) as err:
        check_resources(small, P.DeploymentSpec(agent_id="echo"))
    assert err.value.field == "agent.resources.memory"
    check_resources(small, P.DeploymentSpec(agent_id="echo", resources={"memory": "64Mi"}))  # overridden
    check_resources(agent(resources={"memory": "4Mi"}), P.DeploymentSpec(agent_id="echo"))  # process: fine


@pytest.mark.parametrize(("key", "value", "text"), [
    ("cpu_seconds", -5.0, "-5 is out of range (1 to 10000000)"),
    ("cpu_seconds", 20_000_000, "20000000 is out of range"),
    ("cpu_seconds", "many", '"many" must be a whole number of seconds'),
    ("cpu_seconds", True, "True must be a whole number of seconds"),
    ("cpu_seconds", 1.5, "1.5 must be a whole number of seconds"),
    ("open_files", "lots", '"lots" must be a whole number (16'),
    ("open_files", False, "False must be a whole number (16"),
    ("open_files", 64.5, "64.5 must be a whole number (16"),
    ("open_files", 8, "8 is out of range (16 to"),
])
def test_process_limits_are_whole_numbers_in_range(key, value, text):
    """The registry (agent validation) and the process runtime share one check."""
    bad = agent(config={"command": ["python3"], "limits": {key: value}})
    with pytest.raises(InvalidArgument) as err:
        validate_agent(bad)
    assert err.value.field == f"agent.config.limits.{key}"
    assert f"agent.config.limits.{key}: {text}" in err.value.message
    with pytest.raises(InvalidArgument) as err:
        check_process_limit(key, value, field=f"agent.config.limits.{key}")
    assert text in err.value.message
    assert check_process_limit(key, 100.0, field="x") == 100
