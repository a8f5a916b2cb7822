"""`sutradhar rolebindings` and `sutradhar roles`: who may do what (RbacService, on the registry).

Bindings are written with `sutradhar deploy -f` (`kind: RoleBinding` documents; see
cli/manifests.py) and listed here::

    sutradhar rolebindings -n team-a          # NAMESPACE NAME ROLE SUBJECTS CREATED-BY
    sutradhar rolebindings -n '*' -o json
    sutradhar roles                           # every built-in role and its rules
"""

from __future__ import annotations

import argparse
from typing import Any

from sutradhar._clients import RbacClient
from sutradhar.cli._output import add_output_flag, print_json, print_table
from sutradhar.cli._rpc import connect
from sutradhar.v1 import rbac_pb2

TIMEOUT = 15.0


def register(sub: Any) -> None:
    p = sub.add_parser("rolebindings", help="list the role bindings of a namespace")
    p.add_argument("-n", "--namespace", default="default", help='namespace ("*" for all)')
    add_output_flag(p)
    p.set_defaults(func=list_rolebindings)

    p = sub.add_parser("roles", help="list the built-in roles and what they allow")
    p.add_argument("-n", "--namespace", default="default", help="namespace to ask in (roles are the same in all)")
    add_output_flag(p)
    p.set_defaults(func=list_roles)


def _rule(rule: rbac_pb2.Rule) -> str:
    """ "get,list,watch agents,instances" (+ " [echo]" when limited to names)."""
    names = f" [{','.join(rule.resource_names)}]" if rule.resource_names else ""
    return f"{','.join(rule.verbs)} {','.join(rule.resources)}{names}"


async def list_rolebindings(args: argparse.Namespace) -> int:
    async with connect(RbacClient, args.registry) as client:
        resp = await client.list_role_bindings(namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(list(resp.bindings))
        return 0
    rows = ({"namespace": b.namespace, "name": b.name, "role": b.role, "subjects": ", ".join(b.subjects),
             "created-by": b.created_by} for b in resp.bindings)
    print_table(rows, ["namespace", "name", "role", "subjects", "created-by"], empty="no role bindings")
    return 0


async def list_roles(args: argparse.Namespace) -> int:
    async with connect(RbacClient, args.registry) as client:
        roles = await client.list_roles(namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(roles)
        return 0
    rows = ({"role": r.name, "scope": "cluster" if r.cluster_scoped else "namespace",
             "bindable": "implicit" if r.implicit_only else "yes", "rules": "; ".join(_rule(x) for x in r.rules),
             "description": r.description} for r in roles)
    print_table(rows, ["role", "scope", "bindable", "rules", "description"])
    return 0
