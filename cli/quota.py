"""`sutradhar quota`: what each ResourceQuota of a namespace allows and what is used (QuotaService).

Quotas are written with `sutradhar apply -f` (`kind: ResourceQuota` documents, cluster-admin
only; see cli/manifests.py and docs/quotas.md) and shown here::

    sutradhar quota -n team-a            # NAMESPACE NAME RESOURCE USED HARD, one row per limit
    sutradhar quota -n '*' -o json
    sutradhar quota delete compute -n team-a
"""

from __future__ import annotations

import argparse
from typing import Any

from sutradhar._clients import QuotaClient
from sutradhar.cli._output import add_output_flag, print_json, print_table
from sutradhar.cli._rpc import connect
from sutradhar.services.common.quota import RESOURCES
from sutradhar.v1 import quota_pb2

TIMEOUT = 15.0


def register(sub: Any) -> None:
    p = sub.add_parser("quota", help="show the resource quotas of a namespace: used and hard per resource")
    p.add_argument("-n", "--namespace", default="default", help='namespace ("*" for all)')
    add_output_flag(p)
    p.set_defaults(func=show_quotas)
    actions = p.add_subparsers(dest="quota_command", metavar="ACTION")
    d = actions.add_parser("delete", help="delete a resource quota (cluster-admin)")
    d.add_argument("name")
    # SUPPRESS: given before ACTION (`quota -n team-a delete compute`), the parent's value stays
    d.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="namespace of the quota")
    d.add_argument("-o", "--output", choices=["table", "json"], default=argparse.SUPPRESS, help="output format")
    d.set_defaults(func=delete_quota)


def rows(quotas: list[quota_pb2.ResourceQuota]) -> list[dict[str, str]]:
    """One row per quota and resource it bounds, resources in their usual order."""
    order = {r: i for i, r in enumerate(RESOURCES)}
    out = []
    for q in quotas:
        for resource in sorted(q.status.hard, key=lambda r: (order.get(r, len(order)), r)):
            out.append({"namespace": q.namespace, "name": q.name, "resource": resource,
                        "used": q.status.used.get(resource, ""), "hard": q.status.hard[resource]})
    return out


async def show_quotas(args: argparse.Namespace) -> int:
    async with connect(QuotaClient, args.registry) as client:
        resp = await client.list_quotas(namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(list(resp.quotas))
        return 0
    where = "any namespace" if args.namespace == "*" else f"namespace {args.namespace}"
    print_table(rows(list(resp.quotas)), ["namespace", "name", "resource", "used", "hard"],
                empty=f"no resource quotas in {where}")
    return 0


async def delete_quota(args: argparse.Namespace) -> int:
    async with connect(QuotaClient, args.registry) as client:
        deleted = await client.delete_quota(args.name, namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(deleted)
    else:
        print(f"resourcequota/{deleted.name} deleted from namespace {deleted.namespace}")
    return 0
