"""An application that set up OpenTelemetry itself (its own global tracer provider, no OTEL_*
variables) gets Sutradhar's spans in its own traces, exported by its own provider: a
`DirectClient`'s call and attempt spans under the application's span, and an SDK agent served
in the application's process. `setup_tracing` keeps the application's provider and
`_tracing.shutdown` leaves it running; one installed after the clients were made is taken at
their next look. Each program is a child (app_traced.py): a process has one
global provider. Real processes: a registry, a traced SDK agent exporting by OTLP, the programs,
and a real OTLP receiver in the test."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from obs_support import children, exporting_to, receiving, start, traced_echo_beside_a_dead_instance
from otlp_receiver import Span

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = Path(__file__).with_name("app_traced.py")


async def _run(*argv: str) -> dict[str, Any]:
    """Run app_traced.py with `argv` (no OTEL_* variables), in a thread: the receiver answers in this loop;
    what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(PROGRAM), *argv], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)

    done = await asyncio.to_thread(run)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _one(spans: list[Span], **match: object) -> Span:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, spans)
    return found[0]


async def test_a_direct_call_joins_the_applications_own_trace_and_provider(
        etcd: str, unique: str, tmp_path: Path) -> None:
    async with receiving() as (receiver, endpoint):
        env = exporting_to(endpoint)
        with children() as started:
            started.append(registry := start(
                "registry", ["-m", "sutradhar.services.registry", "--insecure", "--port", "0", "--etcd", etcd],
                tmp_path))
            started.append(router := start(
                "router", ["-m", "sutradhar.services.router", "--insecure", "--port", "0", "--registry",
                           registry.address], tmp_path, env=env))
            agent, _dead = await traced_echo_beside_a_dead_instance(started, registry.address, unique, tmp_path, env)
            out = await _run("caller", endpoint, registry.address, router.address, agent.address, unique)
            late = await _run("late", endpoint, registry.address, agent.address, unique)
            for child in reversed(started):  # in a thread: they flush their spans at stop, to this loop's receiver
                assert await asyncio.to_thread(child.stop) == 0, child.lines()
    assert out["success"] is True and out["routed"] == 0, out

    # A DirectClient's spans are in the application's provider (its service.name), under its span.
    spans = receiver.of_trace(out["checkout"]["trace_id"])
    checkout = _one(spans, name="checkout")
    assert checkout.service == "shop" and checkout.span_id == out["checkout"]["span_id"]
    call = _one(spans, name="sutradhar.v1.RouterService/Execute")
    assert call.service == "shop" and call.kind == "INTERNAL" and call.parent_span_id == checkout.span_id
    assert call.attributes["rpc.response.status_code"] == "OK"
    attempts = [s for s in spans if s.name == "sutradhar.v1.AgentService/Execute" and s.kind == "CLIENT"]
    assert len(attempts) == out["attempts"] and all(a.service == "shop" for a in attempts)
    assert all(a.parent_span_id == call.span_id for a in attempts)
    # The attempt's context reached the agent: its SERVER span is the last attempt's child.
    served = _one(spans, name="sutradhar.v1.AgentService/Execute", kind="SERVER")
    assert served.service == "echo" and served.parent_span_id == attempts[-1].span_id

    # An AgentClient's task carries the current span: the agent's span is its child.
    spans = receiver.of_trace(out["to the agent"]["trace_id"])
    served = _one(spans, name="sutradhar.v1.AgentService/Execute", kind="SERVER")
    assert served.service == "echo" and served.parent_span_id == out["to the agent"]["span_id"]

    # A RouterClient's too: the router's span is its child, the agent's under the router's attempt.
    spans = receiver.of_trace(out["through the router"]["trace_id"])
    routed = _one(spans, name="sutradhar.v1.RouterService/Execute", kind="SERVER")
    assert routed.service == "router" and routed.parent_span_id == out["through the router"]["span_id"]
    served = _one(spans, name="sutradhar.v1.AgentService/Execute", kind="SERVER")
    router_attempts = {s.span_id for s in spans if s.service == "router" and s.kind == "CLIENT"}
    assert served.parent_span_id in router_attempts

    # setup_tracing kept the application's provider, and Sutradhar's shutdown left it exporting.
    assert out["setup_tracing"] is True and out["provider_kept"] is True
    assert [s.name for s in receiver.of_trace(out["after shutdown"]["trace_id"])] == ["after shutdown"]

    # A provider the program installed after making its clients is taken at their next look.
    assert late["before"] is False and late["success"] is True, late
    spans = receiver.of_trace(late["late direct"]["trace_id"])
    call = _one(spans, name="sutradhar.v1.RouterService/Execute")
    assert call.service == "shop" and call.parent_span_id == late["late direct"]["span_id"]
    served = _one(spans, name="sutradhar.v1.AgentService/Execute", kind="SERVER")
    assert served.service == "echo" and served.parent_span_id in {
        s.span_id for s in spans if s.kind == "CLIENT" and s.parent_span_id == call.span_id}
    spans = receiver.of_trace(late["late agent"]["trace_id"])
    served = _one(spans, name="sutradhar.v1.AgentService/Execute", kind="SERVER")
    assert served.service == "echo" and served.parent_span_id == late["late agent"]["span_id"]

async def test_an_agent_served_in_an_application_traces_with_its_provider() -> None:
    async with receiving() as (receiver, endpoint):
        out = await _run("agent", endpoint)
    assert out["success"] is True
    spans = receiver.of_trace(str(out["trace_id"]))
    served = _one(spans, name="sutradhar.v1.AgentService/Execute")
    assert served.service == "shop" and served.kind == "SERVER" and served.parent_span_id == "00f067aa0ba902b7"
    work = _one(spans, name="echo work")  # the agent code's own span, under the task's
    assert work.service == "shop" and work.parent_span_id == served.span_id


def test_the_provider_setup_installed_is_never_taken_for_the_applications() -> None:
    """After `shutdown`, the provider `setup` made global is shut down: a later `adopt` (a new
    DirectClient) must not trace into it. An application's provider is taken once, and stays."""
    program = (
        "from sutradhar import _tracing\n"
        "assert _tracing.adopt() is False  # nothing installed, nothing imported\n"
        "assert _tracing.setup('x', {'OTEL_TRACES_EXPORTER': 'console'}) is True\n"
        "assert _tracing.active().owned\n"
        "_tracing.shutdown()\n"
        "assert _tracing.adopt() is False and _tracing.active() is None\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
