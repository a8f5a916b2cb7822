"""The HTTP JSON form's pure parts: reading an agent's answer and filling
the metadata a gRPC SDK agent would fill itself."""

from __future__ import annotations

import pytest

from sutradhar._route_transports import AttemptError, fill_metadata, load_agent_class, result_from_json


def test_what_an_http_agent_reports_is_kept_and_the_rest_filled():
    answer = {"success": True, "data": 1, "metadata": {
        "agent_id": "own", "agent_version": "0.1.0", "task_id": "t-own", "latency_ms": 1234.5}}
    result = fill_metadata(result_from_json(answer, source="agent"), task_id="t", agent_id="def",
                           agent_version="2.0.0", latency_s=0.001)
    meta = result.metadata
    assert (meta.agent_id, meta.agent_version, meta.task_id) == ("own", "0.1.0", "t-own")
    assert meta.latency.ToMicroseconds() == 1_234_500
    camel = result_from_json({"success": True, "metadata": {"agentId": "c", "taskId": "t-c", "latency": "0.25s"}},
                             source="agent")
    assert (camel.metadata.agent_id, camel.metadata.task_id, camel.metadata.latency.ToMilliseconds()) == (
        "c", "t-c", 250)
    bare = fill_metadata(result_from_json({"success": False, "metadata": {"latency_ms": "soon"}}, source="agent"),
                         task_id="t", agent_id="def", agent_version="2.0.0", latency_s=0.5)
    meta = bare.metadata
    assert (meta.agent_id, meta.agent_version, meta.task_id, meta.latency.ToMilliseconds()) == (
        "def", "2.0.0", "t", 500)


def test_json_without_a_boolean_success_points_at_the_router_docs():
    for body in ({"ok": True}, {"success": "yes"}, [1], None):
        with pytest.raises(AttemptError, match=r"JSON without a boolean 'success' field.*docs/router\.md"):
            result_from_json(body, source="agent")


def test_an_unimportable_in_process_class_says_how_to_make_it_importable():
    with pytest.raises(AttemptError) as caught:
        load_agent_class("no_such_module_here:Agent")
    assert "ModuleNotFoundError" in caught.value.message
    assert "mesh's Python environment" in caught.value.message
    assert "PYTHONPATH before `sutradhar up`" in caught.value.message
