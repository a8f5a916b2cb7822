"""`sutradhar stats`: what the router observes of every instance, and its rate-limit buckets.

Besides the router's own counters, each instance row has the mesh-wide load: what every
reporter recorded in etcd over its last window (about 1 s) - this router, the other
routers and the direct callers (the SDK's `DirectClient`, whose calls bypass the
router) - as `mesh_rps` / `mesh_in_flight` / `mesh_p50_ms` / `mesh_p99_ms`, with the
direct callers' part in `direct_*` (and the other routers' in `routers_*`).

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
#: Printed under the instance table: where the mesh_* and direct_* columns come from.
MESH_NOTE = ("in_flight .. ejections: this router's own calls; others_*: how many other routers and direct "
             "callers hold the instance's calls back (breaker open, ejected); mesh_*: every router's and direct "
             "caller's load as recorded in etcd over the last ~1s (this router's included); direct_*: the part "
             "of it from callers that bypass the router (DirectClient)")


def register(sub: Any) -> None:
    p = sub.add_parser("stats", help="per-instance router statistics (in-flight, latency, breakers, ejections) "
                                     "and rate-limit buckets (fill, refusals)")
    p.add_argument("-n", "--namespace", default="", help="only this namespace (default: all)")
    p.add_argument("--type", default="", help="only this agent type")
    add_output_flag(p)
    p.set_defaults(func=run)


def _ms(duration: Any) -> float:
    return round(duration.seconds * 1000 + duration.nanos / 1e6, 3)


def _reported(prefix: str, load: router_pb2.ReportedLoad) -> dict[str, Any]:
    return {f"{prefix}_reporters": load.reporters, f"{prefix}_rps": round(load.rps, 2),
            f"{prefix}_in_flight": round(load.in_flight, 2), f"{prefix}_p50_ms": _ms(load.latency_p50),
            f"{prefix}_p99_ms": _ms(load.latency_p99), f"{prefix}_breakers_open": load.breakers_open,
            f"{prefix}_ejecting": load.ejecting}


def mesh_load(s: router_pb2.InstanceStats) -> dict[str, Any]:
    """The mesh-wide load of one instance: this router's and every other reporter's (rps and in-flight
    summed, p50 the rps-weighted mean of the medians, p99 the highest), and the parts."""
    parts = [(s.rps, _ms(s.latency_p50)), (s.routers.rps, _ms(s.routers.latency_p50)),
             (s.direct.rps, _ms(s.direct.latency_p50))]
    weight = sum(rps for rps, p50 in parts if p50 > 0)
    return {
        "mesh_rps": round(s.rps + s.routers.rps + s.direct.rps, 2),
        "mesh_in_flight": round(s.in_flight + s.routers.in_flight + s.direct.in_flight, 2),
        "mesh_p50_ms": round(sum(rps * p50 for rps, p50 in parts) / weight, 3) if weight else
        max(p50 for _, p50 in parts),
        "mesh_p99_ms": max(_ms(s.latency_p99), _ms(s.routers.latency_p99), _ms(s.direct.latency_p99)),
        # Other reporters whose breaker holds the instance's calls back, and that eject it.
        "others_breakers_open": s.routers.breakers_open + s.direct.breakers_open,
        "others_ejecting": s.routers.ejecting + s.direct.ejecting,
        "rps": round(s.rps, 2),
        **_reported("routers", s.routers),
        **_reported("direct", s.direct),
    }


def stats_rows(response: router_pb2.GetStatsResponse) -> list[dict[str, Any]]:
    """One plain dict per instance: the router's own counters and the mesh-wide load (`mesh_load`)."""
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
            **mesh_load(s),
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
        print(json.dumps({"router_id": response.router_id, "instances": rows, "buckets": bucket_rows(response),
                          "reported_load_error": response.reported_load_error}, indent=2, sort_keys=True))
        return 0
    print(f"router {response.router_id}")
    print_table(
        rows,
        ["namespace", "instance_id", "agent_type", "version", "endpoint", "state", "in_flight", "requests",
         "errors", "p50_ms", "p99_ms", "breaker", "ejected", "ejections", "others_breakers_open",
         "others_ejecting", "mesh_rps", "mesh_in_flight", "direct_rps", "direct_in_flight"],
        empty="no instances known to this router",
    )
    if rows:
        print(MESH_NOTE if not response.reported_load_error else f"mesh_*, direct_*: {response.reported_load_error}")
    buckets = bucket_rows(response)
    if buckets:
        print()
        for row in buckets:
            row["tokens"] = f"{row['tokens']}/{row['max_tokens']}"
            row["fill"] += f" shared by {row['routers']} routers" if row["shared"] else ""
        print_table(buckets, ["level", "namespace", "name", "caller", "tokens", "fill", "allowed", "refused"])
    return 0
