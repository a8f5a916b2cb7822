"""`sutradhar health`, `sutradhar drain`, `sutradhar enable`.

::

    sutradhar health                     every agent's aggregate health (namespace default), one row each
    sutradhar health --instances         every agent's instances with their probe records, one row each
    sutradhar health AGENT               one agent: its aggregate, then its instances with probe records
    sutradhar health [AGENT] --watch     the table, then health events as they happen
    sutradhar health --members           the live health members and their shares
    sutradhar drain INSTANCE             no new tasks to INSTANCE; in-flight ones finish
    sutradhar enable INSTANCE            take INSTANCE back (state follows readiness)

All take ``-n/--namespace``; ``-o json`` prints JSON. With ``--watch`` it
is JSON Lines: the snapshot's objects (one AgentHealth per line), then one
HealthEvent per line.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from sutradhar._clients import HealthClient
from sutradhar.v1 import health_pb2, registry_pb2

from ._output import add_output_flag, message_to_dict, print_json, print_json_line, print_table
from ._rpc import connect

TIMEOUT = 10.0

AGENT_COLUMNS = ["namespace", "agent", "status", "total", "serving", "not_serving", "draining", "unknown",
                 "restart"]
INSTANCE_COLUMNS = ["instance", "state", "drained", "readiness", "liveness", "fails", "last_probe", "latency",
                    "restart", "prober", "message"]
#: `--instances`: every agent's instances in one table, the agent first.
ALL_INSTANCE_COLUMNS = ["namespace", "agent", *INSTANCE_COLUMNS]


def register(sub: Any) -> None:
    """Add the health, drain and enable commands."""
    p = sub.add_parser("health", help="show instance health (probes, states) and follow health events")
    p.add_argument("agent", nargs="?", default="", help="agent id (default: every agent)")
    p.add_argument("-n", "--namespace", default="default", help='namespace ("*" for all)')
    p.add_argument("-w", "--watch", action="store_true", help="then follow health events (Ctrl-C stops)")
    p.add_argument("-i", "--instances", action="store_true",
                   help="without AGENT: one row per instance (probe results, states) instead of one per agent")
    p.add_argument("--members", action="store_true", help="list the live health members instead")
    add_output_flag(p)
    p.set_defaults(func=health_command)

    p = sub.add_parser("drain", help="drain an instance: no new tasks, in-flight ones finish")
    p.add_argument("instance", help="instance id")
    p.add_argument("-n", "--namespace", default="default")
    add_output_flag(p)
    p.set_defaults(func=drain_command)

    p = sub.add_parser("enable", help="enable a drained instance again")
    p.add_argument("instance", help="instance id")
    p.add_argument("-n", "--namespace", default="default")
    add_output_flag(p)
    p.set_defaults(func=enable_command)


def _state(value: int) -> str:
    return registry_pb2.InstanceState.Name(value).removeprefix("INSTANCE_STATE_")  # type: ignore[arg-type]


def _result(value: int) -> str:
    name = registry_pb2.ProbeResult.Name(value).removeprefix("PROBE_RESULT_")  # type: ignore[arg-type]
    return "-" if name == "UNSPECIFIED" else name.lower()


def _status(value: int) -> str:
    name = health_pb2.AgentHealthStatus.Name(value).removeprefix("AGENT_HEALTH_STATUS_")  # type: ignore[arg-type]
    return "NO INSTANCES" if name == "UNSPECIFIED" else name


def agent_json(h: health_pb2.AgentHealth) -> dict[str, Any]:
    """An AgentHealth as JSON with every top-level field, zeros included.

    Protobuf's JSON drops fields at their zero value, so an agent without
    instances would print no ``status`` at all (its status is the enum's zero,
    ``AGENT_HEALTH_STATUS_UNSPECIFIED``, shown as NO INSTANCES in the table)
    and no counts. Scripts reading ``status`` or ``total`` always find them.
    """
    data = message_to_dict(h)
    for field in h.DESCRIPTOR.fields:
        if field.name in data or field.message_type is not None or field.is_repeated:
            continue
        value = getattr(h, field.name)
        data[field.name] = field.enum_type.values_by_number[value].name if field.enum_type is not None else value
    return data


def _ago(ts: Any) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    seconds = (datetime.now(UTC) - ts.ToDatetime(tzinfo=UTC)).total_seconds()
    return f"{max(0.0, seconds):.1f}s ago"


def _agent_row(h: health_pb2.AgentHealth) -> dict[str, Any]:
    return {"namespace": h.namespace, "agent": h.agent_id, "status": _status(h.status), "total": h.total,
            "serving": h.serving, "not_serving": h.not_serving, "draining": h.draining, "unknown": h.unknown,
            "restart": h.restart_requested}


def _instance_row(inst: registry_pb2.Instance) -> dict[str, Any]:
    r, lv = inst.health.readiness, inst.health.liveness
    latency = r.last_latency.ToTimedelta().total_seconds() * 1000 if r.HasField("last_latency") else None
    return {
        "instance": inst.id, "state": _state(inst.state), "drained": "yes" if inst.drained else "",
        "readiness": _result(r.result), "liveness": _result(lv.result),
        "fails": r.consecutive_failures, "last_probe": _ago(r.last_probe_time),
        "latency": "-" if latency is None else f"{latency:.1f}ms",
        "restart": "requested" if inst.health.restart_requested else "",
        "prober": inst.health.prober or "-", "message": _short(r.last_message or lv.last_message),
    }


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _print_agent(h: health_pb2.AgentHealth) -> None:
    print(f"agent {h.agent_id} (namespace {h.namespace}): {_status(h.status)} - {h.serving}/{h.total} serving"
          + (f", {h.not_serving} not serving" if h.not_serving else "")
          + (f", {h.draining} draining" if h.draining else "")
          + (f", {h.restart_requested} restart requested" if h.restart_requested else ""))
    print_table((_instance_row(i) for i in h.instances), INSTANCE_COLUMNS, empty="no instances")


def _event_line(ev: health_pb2.HealthEvent) -> str:
    kind = health_pb2.HealthEventType.Name(ev.type).removeprefix("HEALTH_EVENT_TYPE_")  # type: ignore[arg-type]
    when = ev.time.ToDatetime(tzinfo=UTC).strftime("%H:%M:%S.%f")[:-3] if ev.time.seconds else "-"
    what = f"{ev.namespace}/{ev.instance_id}"
    if ev.type == health_pb2.HEALTH_EVENT_TYPE_STATE_CHANGED:
        detail = f"{_state(ev.previous_state)} -> {_state(ev.state)}"
    else:
        detail = _state(ev.state)
    if ev.probe:
        detail += f" [{ev.probe}]"
    if ev.message:
        detail += f" {ev.message}"
    return f"{when}  {kind:<17} {what} (agent {ev.agent_id}) {detail}"


async def health_command(args: argparse.Namespace) -> int:
    """`sutradhar health`."""
    async with connect(HealthClient, args.health) as health:
        if args.members:
            members = await health.list_members(timeout=TIMEOUT)
            if args.output == "json":
                print_json(members)
            else:
                print_table(({"member": m.id, "address": m.address, "instances": m.instances}
                             for m in members.members), ["member", "address", "instances"], empty="no members")
            return 0
        if args.agent:
            agent = await health.get_agent_health(args.agent, namespace=args.namespace, timeout=TIMEOUT)
            if args.output == "json" and args.watch:
                print_json_line(agent_json(agent))  # --watch: JSON Lines throughout, one object per line
            elif args.output == "json":
                print_json(agent_json(agent))
            else:
                _print_agent(agent)
        else:
            listed = await health.list_agent_health(namespace=args.namespace, include_instances=args.instances,
                                                    timeout=TIMEOUT)
            if args.output == "json" and args.watch:
                for a in listed.agents:  # --watch: JSON Lines throughout, one object per line
                    print_json_line(agent_json(a))
            elif args.output == "json":
                print_json([agent_json(a) for a in listed.agents])
            elif args.instances:
                print_table(({"namespace": a.namespace, "agent": a.agent_id, **_instance_row(i)}
                             for a in listed.agents for i in a.instances), ALL_INSTANCE_COLUMNS, empty="no instances")
            else:
                print_table((_agent_row(a) for a in listed.agents), AGENT_COLUMNS, empty="no agents")
        if not args.watch:
            return 0
        if args.output != "json":
            print("\nwatching health events (Ctrl-C stops)", flush=True)
        async for event in health.watch_health(namespace=args.namespace, agent_id=args.agent):
            if args.output == "json":
                print_json_line(event)
            else:
                print(_event_line(event), flush=True)
    return 0


async def _set_drained(args: argparse.Namespace, drained: bool) -> int:
    async with connect(HealthClient, args.health) as health:
        if drained:
            inst = await health.drain_instance(args.instance, namespace=args.namespace, timeout=TIMEOUT)
        else:
            inst = await health.enable_instance(args.instance, namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(inst)
    else:
        verb = "drained: no new tasks, in-flight tasks finish" if drained else "enabled"
        print(f"instance/{inst.id} {verb} (state {_state(inst.state)})")
    return 0


async def drain_command(args: argparse.Namespace) -> int:
    """`sutradhar drain INSTANCE`."""
    return await _set_drained(args, True)


async def enable_command(args: argparse.Namespace) -> int:
    """`sutradhar enable INSTANCE`."""
    return await _set_drained(args, False)
