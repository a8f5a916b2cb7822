"""`sutradhar stats`: what the router observes of every instance, and its rate-limit buckets.

The second table has one row per bucket of the router answering (limits are per router
replica unless shared): its level (agent, namespace, caller), what it belongs to, the
tokens in it now of its burst, its fill, and the calls it let through and refused.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sutradhar._clients import RouterClient
from sutradhar.cli._output import add_output_flag, print_table
from sutradhar.cli._rpc import connect
from sutradhar.cli.ratelimits import bucket_text
from sutradhar.v1 import ratelimit_pb2, router_pb2

TIMEOUT = 10.0


def register(sub: Any) -> None:
    p = sub.add_parser("stats", help="per-instance router statistics (in-flight, latency, breakers, ejections) "
                                     "and rate-limit buckets (fill, refusals)")
    p.add_argument("-n", "--namespace", default="", help="only this namespace (default: all)")
    p.add_argument("--type", default="", help="only this agent type")
    add_output_flag(p)
    p.set_defaults(func=run)


def _ms(duration: Any) -> float:
    return round(duration.seconds * 1000 + duration.nanos / 1e6, 3)


def stats_rows(response: router_pb2.GetStatsResponse) -> list[dict[str, Any]]:
    """One plain dict per instance."""
    return [
        {
            "namespace": s.namespace,
            "instance_id": s.instance_id,
            "agent_id": s.agent_id,
            "agent_type": s.agent_type,
            "version": s.version,
            "endpoint": s.endpoint,
            "state": s.state,
            "in_flight": s.in_flight,
            "requests": s.requests,
            "errors": s.errors,
            "p50_ms": _ms(s.latency_p50),
            "p99_ms": _ms(s.latency_p99),
            "breaker": router_pb2.BreakerState.Name(s.breaker).removeprefix("BREAKER_STATE_"),
            "ejected": s.ejected,
            "ejections": s.ejections,
        }
        for s in response.instances
    ]


def bucket_rows(response: router_pb2.GetStatsResponse) -> list[dict[str, Any]]:
    """One plain dict per rate-limit bucket."""
    return [
        {
            "level": ratelimit_pb2.RateLimitLevel.Name(b.level).removeprefix("RATE_LIMIT_LEVEL_").lower(),
            "namespace": b.namespace,
            "name": b.name,
            "caller": b.caller,
            "tokens": b.tokens,
            "max_tokens": b.bucket.max_tokens,
            "fill": bucket_text(b.bucket),
            "allowed": b.allowed,
            "refused": b.refused,
            "shared": b.shared,
            "routers": b.routers,
        }
        for b in response.buckets
    ]


async def run(args: argparse.Namespace) -> int:
    async with connect(RouterClient, args.router) as router:
        response = await router.get_stats(namespace=args.namespace, agent_type=args.type, timeout=TIMEOUT)
    rows = stats_rows(response)
    if args.output == "json":
        print(json.dumps({"router_id": response.router_id, "instances": rows, "buckets": bucket_rows(response)},
                         indent=2, sort_keys=True))
        return 0
    print(f"router {response.router_id}")
    print_table(
        rows,
        ["namespace", "instance_id", "agent_type", "version", "endpoint", "state", "in_flight", "requests",
         "errors", "p50_ms", "p99_ms", "breaker", "ejected", "ejections"],
        empty="no instances known to this router",
    )
    buckets = bucket_rows(response)
    if buckets:
        print()
        for row in buckets:
            row["tokens"] = f"{row['tokens']}/{row['max_tokens']}"
            row["fill"] += f" shared by {row['routers']} routers" if row["shared"] else ""
        print_table(buckets, ["level", "namespace", "name", "caller", "tokens", "fill", "allowed", "refused"])
    return 0
