"""`sutradhar ratelimits`: the RateLimit objects of a namespace (RateLimitService, on the registry).

RateLimits are written with `sutradhar deploy -f` (`kind: RateLimit` documents, cluster-admin
only; see cli/manifests.py) and listed or deleted here::

    sutradhar ratelimits -n team-a            # NAMESPACE NAME NAMESPACE-LIMIT PER-CALLER SHARED CREATED-BY
    sutradhar ratelimits -n '*' -o json
    sutradhar ratelimits delete NAME -n team-a

What each router's buckets hold now (fill, refusals) is `sutradhar stats`.
"""

from __future__ import annotations

import argparse
from typing import Any

from sutradhar._clients import RateLimitClient
from sutradhar._token_bucket import describe_rate
from sutradhar.cli._output import add_output_flag, print_json, print_table
from sutradhar.cli._rpc import connect
from sutradhar.v1 import ratelimit_pb2

TIMEOUT = 15.0


def register(sub: Any) -> None:
    p = sub.add_parser("ratelimits", help="list the rate limits of a namespace (routers enforce them)")
    p.add_argument("-n", "--namespace", default="default", help='namespace ("*" for all)')
    add_output_flag(p)
    p.set_defaults(func=list_rate_limits)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    d = actions.add_parser("delete", help="delete a rate limit (cluster-admin)")
    d.add_argument("name", help="the RateLimit's name")
    d.add_argument("-n", "--namespace", default="default", help="its namespace")
    add_output_flag(d)
    d.set_defaults(func=delete_rate_limit)


def bucket_text(bucket: ratelimit_pb2.TokenBucket | None) -> str:
    """ "100 per 1s (burst 200)", or "-" without a bucket."""
    if bucket is None:
        return "-"
    interval = bucket.fill_interval.ToTimedelta().total_seconds()
    return describe_rate(bucket.max_tokens, bucket.tokens_per_fill or 1, interval)


def rate_limit_rows(limits: list[ratelimit_pb2.RateLimit]) -> list[dict[str, Any]]:
    """One plain dict per rate limit, for the table."""
    return [
        {"namespace": r.namespace, "name": r.name,
         "namespace-limit": bucket_text(r.namespace_limit if r.HasField("namespace_limit") else None),
         "per-caller": bucket_text(r.per_caller if r.HasField("per_caller") else None),
         "shared": "yes" if r.shared else "no (per router)", "created-by": r.created_by}
        for r in limits
    ]


async def list_rate_limits(args: argparse.Namespace) -> int:
    async with connect(RateLimitClient, args.registry) as client:
        resp = await client.list_rate_limits(namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(list(resp.rate_limits))
        return 0
    print_table(rate_limit_rows(list(resp.rate_limits)),
                ["namespace", "name", "namespace-limit", "per-caller", "shared", "created-by"],
                empty=f"no rate limits in namespace {args.namespace}")
    return 0


async def delete_rate_limit(args: argparse.Namespace) -> int:
    async with connect(RateLimitClient, args.registry) as client:
        deleted = await client.delete_rate_limit(args.name, namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(deleted)
    else:
        print(f"ratelimit/{deleted.name} deleted from namespace {deleted.namespace}")
    return 0
