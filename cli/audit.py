"""`sutradhar audit`: list and follow the audit log (served by the registry).

::

    sutradhar audit                      the kept records of namespace default, oldest first
    sutradhar audit -A                   of every namespace (and of mesh-wide calls)
    sutradhar audit --since 10m          received in the last ten minutes
    sutradhar audit --principal ID       of one principal (an accessor id, or a SPIFFE ID: all its tokens)
    sutradhar audit --verb delete --decision deny
    sutradhar audit --follow             the list, then records as they are written (Ctrl-C stops)

``-o json`` prints a JSON array; with ``--follow`` JSON Lines, one record per
line. A mutation's record shows at REQUEST_RECEIVED (status ``...``) until
its call ends; with ``--follow`` it comes again when it completes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sutradhar._clients import AuditClient
from sutradhar._errors import InvalidArgument
from sutradhar._settings import parse_duration
from sutradhar.v1 import audit_pb2

from ._output import add_output_flag, message_to_dict, print_json, print_json_line, print_table
from ._rpc import connect

TIMEOUT = 10.0

COLUMNS = ["time", "decision", "status", "principal", "verb", "resource", "namespace", "name", "source", "reason"]

DECISIONS = {"allow": audit_pb2.AUDIT_DECISION_ALLOW, "deny": audit_pb2.AUDIT_DECISION_DENY}


def register(sub: Any) -> None:
    """Add the audit command."""
    p = sub.add_parser("audit", help="list and follow the audit log (mutations and denied calls)")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", default="default", help="namespace (default %(default)s)")
    scope.add_argument("-A", "--all-namespaces", action="store_true",
                       help="every namespace, and calls on the whole mesh")
    p.add_argument("--principal", default="", help="an accessor id, or a SPIFFE ID (every token of it)")
    p.add_argument("--verb", default="", help="e.g. create, delete, drain")
    p.add_argument("--resource", default="", help="e.g. agents, deployments")
    p.add_argument("--decision", choices=sorted(DECISIONS), help="only allowed or only denied calls")
    p.add_argument("--since", default="", metavar="DURATION",
                   help="only calls of the last DURATION (10s, 5m, 2h) or since an RFC 3339 time")
    p.add_argument("-f", "--follow", action="store_true", help="then follow new records (Ctrl-C stops)")
    add_output_flag(p)
    p.set_defaults(func=audit_command)


def parse_since(text: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> datetime | None:
    """`--since`: a duration back from now, or an RFC 3339 time; None when empty."""
    if not text:
        return None
    try:
        return now() - parse_duration(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"--since {text!r} is neither a duration (10s, 5m, 2h) nor an RFC 3339 time (2026-05-10T14:00:00Z)",
            field="since",
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _stage_status(ev: audit_pb2.AuditEvent) -> str:
    if ev.stage == audit_pb2.AUDIT_STAGE_REQUEST_RECEIVED:
        return "..."
    return ev.status_code or "-"


def _decision(ev: audit_pb2.AuditEvent) -> str:
    name = audit_pb2.AuditDecision.Name(ev.decision).removeprefix("AUDIT_DECISION_")
    return "-" if name == "UNSPECIFIED" else name.lower()


def _time(ev: audit_pb2.AuditEvent) -> str:
    if not ev.request_received_time.seconds:
        return "-"
    return ev.request_received_time.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def event_row(ev: audit_pb2.AuditEvent) -> dict[str, Any]:
    """One record as a table row."""
    return {
        "time": _time(ev), "decision": _decision(ev), "status": _stage_status(ev),
        "principal": ev.principal or "(unauthenticated)", "verb": ev.verb or "-", "resource": ev.resource or "-",
        "namespace": ev.namespace or "-", "name": ev.name or "-", "source": ev.source or "-",
        "reason": _short(ev.reason) or "-",
    }


def event_json(ev: audit_pb2.AuditEvent) -> dict[str, Any]:
    """One record as JSON, with its stage and decision always present (protobuf JSON drops zeros)."""
    data = message_to_dict(ev)
    data.setdefault("stage", audit_pb2.AuditStage.Name(ev.stage))
    data.setdefault("decision", audit_pb2.AuditDecision.Name(ev.decision))
    return data


def event_line(ev: audit_pb2.AuditEvent) -> str:
    """One record as a line of `--follow`."""
    row = event_row(ev)
    what = f"{row['verb']} {row['resource']}" + (f" {ev.namespace}/{ev.name}" if ev.name else f" in {row['namespace']}")
    line = f"{row['time']}  {row['decision']:<5} {row['status']:<18} {row['principal']}  {what}  ({ev.method})"
    return line + (f"  reason: {ev.reason}" if ev.reason else "")


async def audit_command(args: argparse.Namespace) -> int:
    """`sutradhar audit`."""
    filters: dict[str, Any] = {
        "namespace": "*" if args.all_namespaces else args.namespace,
        "principal": args.principal,
        "verb": args.verb,
        "resource": args.resource,
        "decision": DECISIONS[args.decision] if args.decision else audit_pb2.AUDIT_DECISION_UNSPECIFIED,
        "since": parse_since(args.since),
    }
    as_json = args.output == "json"
    async with connect(AuditClient, args.registry) as audit:
        if args.follow:
            async for response in audit.watch_audit_events(**filters, include_initial=True):
                for ev in response.events:
                    if as_json:
                        print_json_line(event_json(ev))
                    else:
                        print(event_line(ev), flush=True)
                if response.synced and not as_json:
                    print("-- following new records (Ctrl-C stops)", flush=True)
            return 0
        events: list[audit_pb2.AuditEvent] = []
        token = ""
        while True:
            page = await audit.list_audit_events(**filters, page_size=1000, page_token=token, timeout=TIMEOUT)
            events.extend(page.events)
            token = page.next_page_token
            if not token:
                break
    if as_json:
        print_json([event_json(ev) for ev in events])
    else:
        print_table((event_row(ev) for ev in events), COLUMNS, empty="no audit records")
    return 0


__all__ = ["COLUMNS", "audit_command", "event_json", "event_line", "event_row", "parse_since", "register"]
