"""`sutradhar top`'s pure part: rates from two samples, agent and instance rows, cells, rendering."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from rich.console import Console

from sutradhar.cli._top_model import (
    AGENT_COLUMNS,
    INSTANCE_COLUMNS,
    InstanceSample,
    Replicas,
    Sample,
    agent_cells,
    instance_cells,
    replicas_by_agent,
    snapshot,
)
from sutradhar.cli.main import build_parser
from sutradhar.cli.top import deployment_replicas, instance_samples, render
from sutradhar.v1 import router_pb2, scheduler_pb2


def inst(instance: str, requests: int, errors: int = 0, *, agent: str = "echo", namespace: str = "ns",
         **more: object) -> InstanceSample:
    return InstanceSample(namespace=namespace, instance_id=instance, agent_id=agent, agent_type="echo",
                          requests=requests, errors=errors, **more)  # type: ignore[arg-type]


def sample(at: float, *instances: InstanceSample, router: str = "r1",
           replicas: dict[tuple[str, str], Replicas] | None = None) -> Sample:
    return Sample(at=at, router_id=router, instances=instances, replicas=replicas or {})


def test_rates_are_the_counters_change_over_the_seconds_between_samples() -> None:
    before = sample(10.0, inst("a", 100, 5), inst("b", 40, 0))
    after = sample(12.0, inst("a", 300, 15, in_flight=3, p50_ms=1.5, p99_ms=9.0),
                   inst("b", 80, 10, in_flight=1, p50_ms=2.5, p99_ms=4.0))
    view = snapshot(after, before)
    a, b = view.instances
    assert (a.rps, a.requests, a.errors, a.error_pct) == (100.0, 200, 10, 5.0)
    assert (b.rps, b.requests, b.errors, b.error_pct) == (20.0, 40, 10, 25.0)
    (agent,) = view.agents
    assert (agent.rps, agent.requests, agent.errors, agent.error_pct) == (120.0, 240, 20, 8.33)
    assert (agent.in_flight, agent.p50_ms, agent.p99_ms, agent.instances) == (4, 2.5, 9.0, 2)
    assert view.interval == 2.0


def test_one_sample_has_no_rates_yet() -> None:
    view = snapshot(sample(1.0, inst("a", 100, 5, in_flight=2)))
    assert view.interval is None
    (row,) = view.instances
    assert row.rps is None and row.requests is None and row.error_pct is None and row.in_flight == 2
    (agent,) = view.agents
    assert agent.rps is None and agent.errors is None
    assert agent_cells(agent)[4:7] == ["-", "-", "-"]


def test_a_new_instance_and_a_reset_counter_count_from_zero() -> None:
    before = sample(0.0, inst("a", 500, 50))
    after = sample(1.0, inst("a", 20, 2), inst("new", 7, 1))
    a, new = snapshot(after, before).instances
    assert (a.requests, a.errors) == (20, 2)  # the router restarted: its counters began again
    assert (new.requests, new.errors) == (7, 1)


def test_another_router_counts_everything_from_zero() -> None:
    view = snapshot(sample(1.0, inst("a", 30, 3), router="r2"), sample(0.0, inst("a", 10, 1), router="r1"))
    assert view.instances[0].requests == 30 and view.router_id == "r2"


def test_no_traffic_is_zero_errors_percent_not_a_division_by_zero() -> None:
    view = snapshot(sample(1.0, inst("a", 10, 1)), sample(0.0, inst("a", 10, 1)))
    assert view.instances[0].error_pct == 0.0 and view.agents[0].rps == 0.0


def test_samples_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match="in order"):
        snapshot(sample(1.0, inst("a", 1)), sample(1.0, inst("a", 1)))


def test_agents_group_by_namespace_and_agent_with_replicas_breakers_and_ejections() -> None:
    replicas = replicas_by_agent([("ns", "echo-blue", "echo", 2, 3), ("ns", "echo-green", "echo", 1, 1),
                                  ("", "idle", "sleeper", 0, 2)])
    assert replicas[("ns", "echo")] == Replicas(3, 4, ("echo-blue", "echo-green"))
    after = sample(1.0, inst("a", 10, breaker="OPEN"), inst("b", 10, ejected=True, ejections=2),
                   inst("c", 5, agent="tutor"), inst("d", 1, namespace="other"), replicas=replicas)
    before = sample(0.0)
    agents = {(a.namespace, a.agent_id): a for a in snapshot(after, before).agents}
    assert list(agents) == [("default", "sleeper"), ("ns", "echo"), ("ns", "tutor"), ("other", "echo")]
    echo = agents[("ns", "echo")]
    assert (echo.ready, echo.desired, echo.breakers_open, echo.ejected, echo.instances) == (3, 4, 1, 1, 2)
    assert agent_cells(echo)[3] == "3/4" and agent_cells(echo)[-1] == "1 breaker open, 1 ejected"
    assert agents[("ns", "tutor")].desired is None and agent_cells(agents[("ns", "tutor")])[3] == "-"
    sleeper = agents[("default", "sleeper")]  # deployed, but no instance known to the router
    assert (sleeper.instances, sleeper.ready, sleeper.desired, sleeper.rps) == (0, 0, 2, 0.0)


def test_an_instance_other_callers_hold_back_shows_while_this_router_still_sends_to_it() -> None:
    after = sample(1.0, inst("a", 10, others_ejecting=1), inst("b", 10, others_breakers_open=2, others_ejecting=1),
                   inst("c", 10, ejected=True, others_ejecting=1), inst("d", 10))
    view = snapshot(after, sample(0.0))
    (echo,) = view.agents
    assert echo.held_elsewhere == 2  # a and b; c is ejected here too, d is held back by no one
    assert agent_cells(echo)[-1] == "1 ejected, 2 held back elsewhere"
    cells = {row.instance_id: instance_cells(row)[-1] for row in view.instances}
    assert cells == {"a": "- (0); elsewhere 1 ejecting", "b": "- (0); elsewhere 2 open, 1 ejecting",
                     "c": "ejected (0); elsewhere 1 ejecting", "d": "- (0)"}


def test_cells_line_up_with_their_columns() -> None:
    view = snapshot(sample(2.0, inst("a", 2500, 1, endpoint="127.0.0.1:1", state="SERVING", p50_ms=0.42,
                                     p99_ms=1234.5, breaker="HALF_OPEN", ejections=1)),
                    sample(0.0, inst("a", 0)))
    agent_row, instance_row = agent_cells(view.agents[0]), instance_cells(view.instances[0])
    assert len(agent_row) == len(AGENT_COLUMNS) and len(instance_row) == len(INSTANCE_COLUMNS)
    assert instance_row[5:] == ["1,250", "1", "0.0", "0", "0.42", "1,234", "1,250", "0.0", "0", "-", "half-open",
                                "- (1)"]


def test_mesh_columns_add_the_other_reporters_load_to_the_routers_own() -> None:
    """Most calls bypass the router: mesh rps is its own rate plus what the other routers and the
    direct callers recorded; the direct part shows on its own."""
    before = sample(0.0, inst("a", 0), inst("b", 0))
    after = sample(2.0, inst("a", 20, in_flight=1, window_rps=9.0, others_rps=90.0, others_in_flight=4.5,
                             direct_rps=80.0, direct_in_flight=4.0, mesh_p50_ms=1.5, mesh_p99_ms=7.0),
                   inst("b", 0, others_rps=50.0, others_in_flight=2.0, direct_rps=50.0, direct_in_flight=2.0,
                        mesh_p50_ms=2.0, mesh_p99_ms=3.0))
    a, b = snapshot(after, before).instances
    assert (a.rps, a.mesh_rps, a.direct_rps, a.mesh_in_flight, a.direct_in_flight) == (10.0, 100.0, 80.0, 5.5, 4.0)
    assert (b.rps, b.mesh_rps, b.mesh_in_flight) == (0.0, 50.0, 2.0)  # the router saw none of b's calls
    (agent,) = snapshot(after, before).agents
    assert (agent.rps, agent.mesh_rps, agent.direct_rps, agent.mesh_in_flight, agent.mesh_p99_ms) == (
        10.0, 150.0, 130.0, 7.5, 7.0)
    assert agent_cells(agent)[10:14] == ["150.0", "130.0", "7.5", "7.00"]
    # the first frame has no rate of the router's own yet: its last recorded window stands in
    (first,) = snapshot(sample(1.0, inst("a", 20, window_rps=9.0, others_rps=90.0))).instances
    assert first.rps is None and first.mesh_rps == 99.0


def test_grpc_answers_become_samples_and_replicas() -> None:
    stats = router_pb2.GetStatsResponse(router_id="r", instances=[router_pb2.InstanceStats(
        namespace="ns", instance_id="echo-1", agent_id="echo", agent_type="echo", requests=9, errors=2, in_flight=1,
        breaker=router_pb2.BREAKER_STATE_OPEN, ejected=True, ejections=3, state="SERVING")])
    (s,) = instance_samples(stats)
    assert (s.requests, s.errors, s.in_flight, s.breaker, s.ejected, s.ejections) == (9, 2, 1, "OPEN", True, 3)
    assert (s.window_rps, s.others_rps, s.direct_rps) == (0.0, 0.0, 0.0)
    ms = Duration(nanos=1_000_000)
    stats.instances[0].rps = 4.0
    stats.instances[0].latency_p50.CopyFrom(ms)
    stats.instances[0].routers.CopyFrom(router_pb2.ReportedLoad(reporters=1, rps=6.0, in_flight=0.5))
    stats.instances[0].direct.CopyFrom(router_pb2.ReportedLoad(
        reporters=2, rps=30.0, in_flight=2.0, latency_p50=Duration(nanos=3_000_000), latency_p99=Duration(seconds=1)))
    (s,) = instance_samples(stats)
    assert (s.window_rps, s.others_rps, s.others_in_flight, s.direct_rps, s.direct_in_flight) == (
        4.0, 36.0, 2.5, 30.0, 2.0)
    # p50: the rps-weighted mean of the medians reported (the other routers reported none); p99: the highest
    assert (s.mesh_p50_ms, s.mesh_p99_ms) == (round((4 * 1 + 30 * 3) / 34, 3), 1000.0)
    deployments = scheduler_pb2.ListDeploymentsResponse(deployments=[scheduler_pb2.Deployment(
        name="echo", namespace="ns", spec=scheduler_pb2.DeploymentSpec(agent_id="echo", replicas=3),
        status=scheduler_pb2.DeploymentStatus(ready_replicas=2, desired_replicas=3))])
    assert deployment_replicas(deployments) == {("ns", "echo"): Replicas(2, 3, ("echo",))}


def test_render_shows_both_tables_and_what_is_missing() -> None:
    view = snapshot(sample(1.0, inst("echo-1", 20, 2, endpoint="127.0.0.1:9", state="SERVING")),
                    sample(0.0, inst("echo-1", 10, 1)))
    view = type(view)(view.router_id, view.interval, view.agents, view.instances, scheduler_error="scheduler: down")
    console = Console(record=True, width=200, color_system=None)
    console.print(render(view, namespace="ns", interval=timedelta(seconds=1), error="connection refused"))
    text = console.export_text()
    assert "router r1" in text and "namespace ns" in text and "rates over 1.0s" in text
    assert "router: connection refused (showing the last read; retrying)" in text
    assert "scheduler: down: READY shows -" in text
    assert "echo-1" in text and "127.0.0.1:9" in text and "10.0" in text
    assert "DIRECT RPS: callers that bypass the router" in text
    missing = type(view)(view.router_id, view.interval, view.agents, view.instances,
                         reported_load_error="this router runs without etcd")
    console = Console(record=True, width=200, color_system=None)
    console.print(render(missing, namespace="ns", interval=timedelta(seconds=1)))
    assert "MESH, DIRECT: this router runs without etcd" in console.export_text()
    quiet = Console(record=True, width=200, color_system=None)
    quiet.print(render(snapshot(sample(0.0)), namespace="", interval=timedelta(seconds=2), instances=False))
    assert "no agents known to this router" in quiet.export_text()


def test_flags() -> None:
    args = build_parser().parse_args(["top", "--interval", "250ms", "-n", "ns", "-o", "json"])
    assert args.interval == timedelta(milliseconds=250) and args.namespace == "ns" and args.output == "json"
    assert build_parser().parse_args(["top"]).interval == timedelta(seconds=2)
    for bad in ("0", "50ms", "soon"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["top", "--interval", bad])
    assert isinstance(args, argparse.Namespace)


def test_without_rich_top_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from sutradhar.cli.main import main

    for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ModuleNotFoundError
    assert main(["--router", "127.0.0.1:1", "--scheduler", "127.0.0.1:1", "top"]) == 1
    err = capsys.readouterr().err
    assert "missing module 'rich" in err and "hint: pip install 'sutradhar[cli]'" in err
