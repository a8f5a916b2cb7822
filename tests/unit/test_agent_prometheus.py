"""AgentPrometheus without a network: bounded task-type labels, outcomes, scrape-time in-flight."""

from __future__ import annotations

from sutradhar._prometheus import MAX_TASK_TYPES, OTHER, AgentPrometheus


def value(p: AgentPrometheus, name: str, **labels: str) -> float | None:
    return p.registry.get_sample_value(name, {"namespace": "ns", "agent": "echo", **labels})


def test_declared_task_types_are_labels_and_others_count_as_other() -> None:
    p = AgentPrometheus(agent="echo", namespace="ns", task_types=["greet"], in_flight=lambda: 3)
    p.task_done("greet", True, 0.0002)
    p.task_done("greet", False, 0.002)
    p.task_done("made-up", True, 0.002)
    assert value(p, "sutradhar_agent_tasks_total", task_type="greet", outcome="success") == 1
    assert value(p, "sutradhar_agent_tasks_total", task_type="greet", outcome="failure") == 1
    assert value(p, "sutradhar_agent_tasks_total", task_type=OTHER, outcome="success") == 1
    assert value(p, "sutradhar_agent_tasks_total", task_type="made-up", outcome="success") is None
    assert value(p, "sutradhar_agent_task_duration_seconds_bucket", task_type="greet", le="0.00025") == 1
    assert value(p, "sutradhar_agent_in_flight") == 3


def test_without_declared_types_at_most_max_task_types_labels() -> None:
    p = AgentPrometheus(agent="echo", namespace="ns", task_types=[], in_flight=lambda: 0)
    for i in range(MAX_TASK_TYPES + 10):
        p.task_done(f"t{i}", True, 0.001)
    # "" is bound up front (tasks without a type), so MAX_TASK_TYPES - 1 others keep their names.
    assert value(p, "sutradhar_agent_tasks_total", task_type=f"t{MAX_TASK_TYPES - 2}", outcome="success") == 1
    assert value(p, "sutradhar_agent_tasks_total", task_type=f"t{MAX_TASK_TYPES - 1}", outcome="success") is None
    assert value(p, "sutradhar_agent_tasks_total", task_type=OTHER, outcome="success") == 11
