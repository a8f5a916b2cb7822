"""`sutradhar token create|revoke|list`: bearer tokens (TokenService on the registry).

`create` prints the token alone on stdout, once (so ``TOKEN=$(sutradhar token
create ...)`` captures it) and the record on stderr; the token is stored
nowhere. `list` and `revoke` show records, never tokens.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta
from typing import Any

from sutradhar._clients import TokenClient
from sutradhar._errors import InvalidArgument
from sutradhar._settings import parse_duration
from sutradhar.cli._output import add_output_flag, message_to_dict, print_json, print_table
from sutradhar.cli._rpc import connect
from sutradhar.v1 import tokens_pb2

TIMEOUT = 10.0
_DAYS = re.compile(r"^\s*(\d+)\s*d\s*$")


def parse_ttl(text: str) -> timedelta:
    """``"1h"``, ``"30m"``, ``"7d"``, ``"90s"`` as a timedelta; InvalidArgument naming --ttl otherwise."""
    days = _DAYS.match(text)
    if days:
        return timedelta(days=int(days.group(1)))
    try:
        return parse_duration(text, positive=True)
    except ValueError:
        raise InvalidArgument(f"--ttl {text!r} is not a duration (e.g. 90s, 30m, 1h, 7d; at most 30d)",
                              field="ttl") from None


def register(sub: Any) -> None:
    p = sub.add_parser("token", help="mint, revoke and list bearer tokens")
    commands = p.add_subparsers(dest="token_command", metavar="SUBCOMMAND")
    commands.required = True

    c = commands.add_parser("create", help="mint a token (printed once on stdout)")
    c.add_argument("-n", "--namespace", default="", help='namespace the role is granted in (default "default"; '
                   '"*": every namespace)')
    c.add_argument("--role", default="", help="role to grant (viewer, invoker, operator, admin, ...); "
                   "with --agent: agent")
    c.add_argument("--ttl", default="1h", help="lifetime (e.g. 30m, 1h, 7d; at most 30d; default %(default)s)")
    c.add_argument("--agent", default="", metavar="AGENT_ID",
                   help="a bootstrap token for this agent id (subject .../agent/AGENT_ID, role agent)")
    c.add_argument("--subject", default="", metavar="NAME", help="user name of the token's subject "
                   "(default token-<id prefix>)")
    c.add_argument("--description", default="", help="what the token is for (kept in its record)")
    add_output_flag(c)
    c.set_defaults(func=create)

    r = commands.add_parser("revoke", help="revoke a token by id: every service refuses it from then on")
    r.add_argument("id", help="the token's id (its jti, as `sutradhar token list` shows)")
    r.add_argument("-n", "--namespace", default="", help='namespace of its record (default "default")')
    add_output_flag(r)
    r.set_defaults(func=revoke)

    ls = commands.add_parser("list", help="token records (never the tokens)")
    ls.add_argument("-n", "--namespace", default="*", help="only this namespace (default: all)")
    add_output_flag(ls)
    ls.set_defaults(func=list_)


def record_row(record: tokens_pb2.TokenRecord) -> dict[str, Any]:
    """One record as a plain dict (times in RFC 3339)."""
    def when(field: str) -> str:
        return getattr(record, field).ToJsonString() if record.HasField(field) else ""

    return {
        "id": record.id, "namespace": record.namespace, "subject": record.subject, "role": record.role,
        "created_by": record.created_by, "create_time": when("create_time"), "expire_time": when("expire_time"),
        "revoke_time": when("revoke_time"), "description": record.description,
    }


async def create(args: argparse.Namespace) -> int:
    ttl = parse_ttl(args.ttl)
    async with connect(TokenClient, args.registry) as tokens:
        response = await tokens.create_token(
            namespace=args.namespace, role=args.role, ttl=ttl, agent_id=args.agent, subject_name=args.subject,
            description=args.description, timeout=TIMEOUT,
        )
    if args.output == "json":
        print_json({"token": response.token, "record": message_to_dict(response.record)})
        return 0
    print(response.token)
    r = response.record
    print(f"token {r.id}: {r.subject} as {r.role} in namespace {r.namespace}, expires "
          f"{r.expire_time.ToJsonString()}\nkeep it now: it is shown once and stored nowhere; "
          f"revoke it with `sutradhar token revoke {r.id} -n {args.namespace or 'default'}`", file=sys.stderr)
    return 0


async def revoke(args: argparse.Namespace) -> int:
    async with connect(TokenClient, args.registry) as tokens:
        record = await tokens.revoke_token(args.id, namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(record)
    else:
        print(f"token {record.id} revoked at {record.revoke_time.ToJsonString()}")
    return 0


async def list_(args: argparse.Namespace) -> int:
    async with connect(TokenClient, args.registry) as tokens:
        response = await tokens.list_tokens(namespace=args.namespace, timeout=TIMEOUT)
    rows = [record_row(r) for r in response.records]
    if args.output == "json":
        print_json(rows)
        return 0
    print_table(rows, ["namespace", "id", "subject", "role", "expire_time", "revoke_time", "created_by",
                       "description"], empty="no tokens")
    return 0
