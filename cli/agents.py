"""`sutradhar agents ...` and `sutradhar instances ...`: the registry from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sutradhar._clients import RegistryClient
from sutradhar._errors import FailedPrecondition
from sutradhar.cli._output import add_output_flag, print_json, print_table
from sutradhar.cli._rpc import connect
from sutradhar.cli.manifests import agent_from_manifest, before_applying, load_manifests
from sutradhar.v1 import registry_pb2

TIMEOUT = 10.0


def register(sub: Any) -> None:
    agents = sub.add_parser("agents", help="list, inspect, register and delete agent definitions")
    asub = agents.add_subparsers(dest="agents_command", metavar="ACTION")
    asub.required = True

    p = asub.add_parser("list", help="list agents")
    p.add_argument("-n", "--namespace", default="default", help='namespace ("*" for all)')
    p.add_argument("--type", default="", help="only this agent type")
    p.add_argument("--capability", action="append", default=[], help="required capability (repeatable)")
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. tier=gold")
    p.add_argument("--version", default="", help="semver range, e.g. ^1.4")
    add_output_flag(p)
    p.set_defaults(func=list_agents)

    p = asub.add_parser("get", help="show one agent")
    p.add_argument("id")
    p.add_argument("-n", "--namespace", default="default")
    add_output_flag(p)
    p.set_defaults(func=get_agent)

    p = asub.add_parser("register", help="register or update agents from a manifest (kind: Agent)")
    p.add_argument("-f", "--file", required=True, help="YAML manifest")
    add_output_flag(p)
    p.set_defaults(func=register_agents)

    p = asub.add_parser("delete", help="deregister an agent")
    p.add_argument("id")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--force", action="store_true", help="also delete its live instances")
    p.set_defaults(func=delete_agent)

    inst = sub.add_parser("instances", help="list live agent instances")
    isub = inst.add_subparsers(dest="instances_command", metavar="ACTION")
    isub.required = True
    p = isub.add_parser("list", help="list instances")
    p.add_argument("-n", "--namespace", default="default", help='namespace ("*" for all)')
    p.add_argument("--agent", default="", help="only instances of this agent id")
    add_output_flag(p)
    p.set_defaults(func=list_instances)


def _agent_row(agent: registry_pb2.Agent) -> dict[str, Any]:
    return {
        "namespace": agent.namespace,
        "id": agent.id,
        "type": agent.type,
        "version": agent.version,
        "runtime": agent.runtime,
        "capabilities": list(agent.capabilities),
        "labels": dict(agent.labels),
    }


AGENT_COLUMNS = ["namespace", "id", "type", "version", "runtime", "capabilities", "labels"]


async def list_agents(args: argparse.Namespace) -> int:
    async with connect(RegistryClient, args.registry) as registry:
        resp = await registry.list_agents(
            namespace=args.namespace, type=args.type, capabilities=args.capability, labels=args.selector,
            version_range=args.version, timeout=TIMEOUT,
        )
    if args.output == "json":
        print_json(list(resp.agents))
    else:
        print_table((_agent_row(a) for a in resp.agents), AGENT_COLUMNS, empty="no agents")
    return 0


async def get_agent(args: argparse.Namespace) -> int:
    async with connect(RegistryClient, args.registry) as registry:
        agent = await registry.get_agent(args.id, namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(agent)
    else:
        print_table([_agent_row(agent)], AGENT_COLUMNS)
    return 0


async def register_agents(args: argparse.Namespace) -> int:
    with before_applying():  # every document is read and checked before the first is registered
        manifests = [m for m in load_manifests(args.file) if m.kind == "Agent"]
        if not manifests:
            print(f"{args.file} holds no `kind: Agent` document; deployments go through `sutradhar deploy -f`")
            return 1
        agents = [agent_from_manifest(m) for m in manifests]
    stored = []
    async with connect(RegistryClient, args.registry) as registry:
        for agent in agents:
            stored.append(await registry.update_agent(agent, allow_missing=True, timeout=TIMEOUT))
    if args.output == "json":
        print_json(stored)
    else:
        for agent in stored:
            print(f"agent/{agent.id} registered in namespace {agent.namespace} (version {agent.version})")
    return 0


#: Labels the scheduler puts on the replicas it runs (services/scheduler/runtimes/base.py).
_MANAGED_LABELS = ("sutradhar.managed", "sutradhar.deployment")


def self_registered(inst: registry_pb2.Instance) -> bool:
    """Whether an SDK agent registered this instance itself (runtime "process",
    not a scheduler replica): such an agent keeps re-registering, and re-creates
    its agent definition when it is missing."""
    return inst.runtime == "process" and not any(label in inst.labels for label in _MANAGED_LABELS)


async def delete_agent(args: argparse.Namespace) -> int:
    async with connect(RegistryClient, args.registry) as registry:
        live: list[registry_pb2.Instance] = []
        if args.force:
            listed = await registry.list_instances(namespace=args.namespace, agent_id=args.id, timeout=TIMEOUT)
            live = [i for i in listed.instances if self_registered(i)]
        try:
            await registry.deregister_agent(args.id, namespace=args.namespace, force=args.force, timeout=TIMEOUT)
        except FailedPrecondition as err:
            if "deregister with force" in err.message:
                # The registry words it for any API caller; on the command line it is a flag.
                raise FailedPrecondition(err.message.replace(
                    "deregister with force", f"pass --force (`sutradhar agents delete {args.id} --force`)"
                )) from err
            raise
    print(f"agent/{args.id} deleted from namespace {args.namespace}")
    if live:
        names = ", ".join(i.id for i in live[:5]) + (f" and {len(live) - 5} more" if len(live) > 5 else "")
        print(f"warning: {len(live)} deleted instance(s) ({names}) belong to running SDK agents; they register "
              f"again and re-create agent/{args.id} with the defaults from their code until they are stopped",
              file=sys.stderr)
    return 0


async def list_instances(args: argparse.Namespace) -> int:
    async with connect(RegistryClient, args.registry) as registry:
        resp = await registry.list_instances(namespace=args.namespace, agent_id=args.agent, timeout=TIMEOUT)
    if args.output == "json":
        print_json(list(resp.instances))
        return 0
    rows = [
        {
            "namespace": i.namespace,
            "id": i.id,
            "agent": i.agent_id,
            "version": i.version,
            "endpoint": i.endpoint,
            "state": registry_pb2.InstanceState.Name(i.state).removeprefix("INSTANCE_STATE_"),
            "runtime": i.runtime,
        }
        for i in resp.instances
    ]
    print_table(rows, ["namespace", "id", "agent", "version", "endpoint", "state", "runtime"], empty="no instances")
    return 0
