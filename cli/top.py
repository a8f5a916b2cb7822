"""`sutradhar top`: a live view of the mesh, per agent and per instance.

Every ``--interval`` it reads the router's counters (`GetStats`) and the
scheduler's deployments (`ListDeployments`) and redraws, in place, with rich's
`Live`: rps and errors from the counters' change since the previous read,
error %, in-flight, p50 / p99, replicas ready / desired, breakers and
ejections, and the mesh-wide rps / in-flight / p99 with the direct callers'
part (the load every router and DirectClient recorded in etcd, which the
router's `GetStats` adds; `cli._top_model` computes the rows). Ctrl-C (SIGINT) or SIGTERM
ends it with exit code 0, leaving the last frame on the screen. ``-o json``
takes two reads ``--interval`` apart and prints that one snapshot.

The clients, credentials and context are those of `sutradhar stats`. The
router is needed: when it cannot be reached at start, top exits 1 with how to
point it at one; later failures show in the view until the router answers
again. The scheduler is optional: without it the READY column shows "-" and
the view says why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sutradhar._aio import wait_set
from sutradhar._clients import RouterClient, SchedulerClient
from sutradhar._errors import InvalidArgument, SutradharError, Unavailable
from sutradhar._settings import parse_duration
from sutradhar.cli._output import add_output_flag
from sutradhar.cli._rpc import connect
from sutradhar.cli._top_model import (
    AGENT_COLUMNS,
    INSTANCE_COLUMNS,
    MESH_NOTE,
    InstanceSample,
    Replicas,
    Sample,
    Snapshot,
    agent_cells,
    instance_cells,
    replicas_by_agent,
    snapshot,
)
from sutradhar.cli.stats import stats_rows
from sutradhar.v1 import router_pb2, scheduler_pb2

#: Longest wait for one read of a service.
TIMEOUT = 5.0
#: Shortest --interval.
MIN_INTERVAL = timedelta(milliseconds=100)


def _interval(text: str) -> timedelta:
    try:
        value = parse_duration(text, positive=True)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration above zero (seconds, or 250ms, 2s, 1m)") from None
    if value < MIN_INTERVAL:
        raise argparse.ArgumentTypeError(f"{text!r} is below the shortest interval, 100ms")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser(
        "top", help="live view of the mesh: rps, errors, latency, in-flight, replicas, breakers per agent and instance",
        description="A live view of the mesh, refreshed in place until Ctrl-C (exit 0). -o json prints one "
                    "snapshot of two reads --interval apart and exits.")
    p.add_argument("-n", "--namespace", default="", help="only this namespace (default: all)")
    p.add_argument("--interval", type=_interval, default=timedelta(seconds=2),
                   help="time between refreshes, and between the two reads of -o json (default 2s)")
    p.add_argument("--no-instances", dest="instances", action="store_false",
                   help="show the agent table only")
    add_output_flag(p)
    p.set_defaults(func=run)


def instance_samples(response: router_pb2.GetStatsResponse) -> tuple[InstanceSample, ...]:
    """The router's answer as samples (the same fields `sutradhar stats` prints)."""
    return tuple(
        InstanceSample(
            namespace=row["namespace"], instance_id=row["instance_id"], agent_id=row["agent_id"],
            agent_type=row["agent_type"], version=row["version"], endpoint=row["endpoint"], state=row["state"],
            in_flight=row["in_flight"], requests=row["requests"], errors=row["errors"], p50_ms=row["p50_ms"],
            p99_ms=row["p99_ms"], breaker=row["breaker"], ejected=row["ejected"], ejections=row["ejections"],
            window_rps=row["rps"], others_rps=row["routers_rps"] + row["direct_rps"],
            others_in_flight=row["routers_in_flight"] + row["direct_in_flight"], direct_rps=row["direct_rps"],
            direct_in_flight=row["direct_in_flight"], mesh_p50_ms=row["mesh_p50_ms"], mesh_p99_ms=row["mesh_p99_ms"],
            others_breakers_open=row["others_breakers_open"], others_ejecting=row["others_ejecting"],
        )
        for row in stats_rows(response)
    )


def deployment_replicas(response: scheduler_pb2.ListDeploymentsResponse) -> dict[tuple[str, str], Replicas]:
    """Ready and desired replicas per (namespace, agent id) of the scheduler's answer."""
    return replicas_by_agent(
        (d.namespace, d.name, d.spec.agent_id, d.status.ready_replicas, d.status.desired_replicas)
        for d in response.deployments
    )


def unreachable_router(address: str, err: SutradharError) -> Unavailable:
    """The error `top` exits with when its first read of the router fails, saying how to fix it."""
    return Unavailable(
        f"cannot read the router at {address}: {err.message} ({err.code.name}); sutradhar top needs a running "
        "router: start a mesh with `sutradhar up`, or point --router (env SUTRADHAR_ROUTER) or the credential "
        "context (--context) at one; `sutradhar stats` reads the same router"
    )


class Reader:
    """Reads one `Sample` of the mesh at a time through a router and a scheduler client."""

    def __init__(self, router: RouterClient, scheduler: SchedulerClient, namespace: str) -> None:
        self.router = router
        self.scheduler = scheduler
        self.namespace = namespace

    async def sample(self) -> Sample:
        """Read both services at once; a scheduler failure is kept in the sample, a router failure raises."""
        stats, deployments = await asyncio.gather(
            self.router.get_stats(namespace=self.namespace, timeout=TIMEOUT),
            self.scheduler.list_deployments(namespace=self.namespace or "*", timeout=TIMEOUT),
            return_exceptions=True,
        )
        at = time.monotonic()
        if isinstance(stats, BaseException):
            raise stats
        replicas: dict[tuple[str, str], Replicas] = {}
        scheduler_error = ""
        if isinstance(deployments, SutradharError):
            scheduler_error = f"scheduler: {deployments.message} ({deployments.code.name})"
        elif isinstance(deployments, BaseException):
            raise deployments
        else:
            replicas = deployment_replicas(deployments)
        return Sample(at=at, router_id=stats.router_id, instances=instance_samples(stats), replicas=replicas,
                      scheduler_error=scheduler_error, reported_load_error=stats.reported_load_error)


def render(view: Snapshot, *, namespace: str, interval: timedelta, instances: bool = True,
           error: str = "") -> Any:
    """The live view of `view` as a rich renderable."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    scope = f"namespace {namespace}" if namespace else "all namespaces"
    rates = f"rates over {view.interval:.1f}s" if view.interval is not None else "rates after the next refresh"
    header = Text.assemble(
        ("sutradhar top", "bold"), f"  router {view.router_id or '?'}  ·  {scope}  ·  every "
        f"{interval.total_seconds():g}s  ·  {rates}  ·  {time.strftime('%H:%M:%S')}  ·  Ctrl-C quits")
    parts: list[Any] = [header]
    if error:
        parts.append(Text(f"router: {error} (showing the last read; retrying)", style="bold red"))
    if view.scheduler_error:
        parts.append(Text(f"{view.scheduler_error}: READY shows -", style="yellow"))

    agents = Table(title="agents", title_justify="left", expand=False, header_style="bold")
    for i, column in enumerate(AGENT_COLUMNS):
        agents.add_column(column, justify="right" if 2 <= i < len(AGENT_COLUMNS) - 1 else "left", no_wrap=i < 2)
    for row in view.agents:
        cells = agent_cells(row)
        style = "red" if (row.error_pct or 0) >= 5 or row.breakers_open or (
            row.desired is not None and row.ready is not None and row.ready < row.desired) else None
        agents.add_row(*cells, style=style)
    if not view.agents:
        parts.append(Text("no agents known to this router" + (f" in namespace {namespace}" if namespace else "")))
    else:
        parts.append(agents)
    if instances and view.instances:
        table = Table(title="instances", title_justify="left", expand=False, header_style="bold")
        for i, column in enumerate(INSTANCE_COLUMNS):
            table.add_column(column, justify="right" if 5 <= i < len(INSTANCE_COLUMNS) - 2 else "left", no_wrap=i < 3)
        for instance in view.instances:
            style = "red" if instance.ejected or instance.breaker != "CLOSED" else None
            table.add_row(*instance_cells(instance), style=style)
        parts.append(table)
    if view.agents:
        parts.append(Text(f"MESH, DIRECT: {view.reported_load_error}" if view.reported_load_error else MESH_NOTE,
                          style="yellow" if view.reported_load_error else "dim"))
    return Group(*parts)


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set `stop` on SIGINT and SIGTERM inside the block (the defaults come back after)."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    await wait_set(stop, seconds)


async def snapshot_json(reader: Reader, interval: timedelta, address: str) -> dict[str, Any]:
    """Two reads `interval` apart as one snapshot (a dict for `-o json`)."""
    try:
        first = await reader.sample()
    except SutradharError as err:
        raise unreachable_router(address, err) from None
    await asyncio.sleep(interval.total_seconds())
    return snapshot(await reader.sample(), first).to_dict()


async def live(reader: Reader, args: argparse.Namespace) -> int:
    """Redraw the view every interval until SIGINT/SIGTERM; 0."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if not console.is_terminal:
        raise InvalidArgument("sutradhar top draws a live view on a terminal; use -o json for one snapshot "
                              "(or `sutradhar stats` for a table)", field="output")
    try:
        previous = await reader.sample()
    except SutradharError as err:
        raise unreachable_router(args.router, err) from None
    stop = asyncio.Event()
    seconds = args.interval.total_seconds()
    options = {"namespace": args.namespace, "interval": args.interval, "instances": args.instances}
    view = snapshot(previous)
    with _stop_on_signals(stop), Live(render(view, **options), console=console, auto_refresh=False,
                                      redirect_stderr=False) as screen:
        while not stop.is_set():
            await _wait(stop, seconds)
            if stop.is_set():
                break
            try:
                current = await reader.sample()
            except SutradharError as err:
                screen.update(render(view, error=err.message, **options), refresh=True)
                continue
            view = snapshot(current, previous)
            previous = current
            screen.update(render(view, **options), refresh=True)
    return 0


async def run(args: argparse.Namespace) -> int:
    async with connect(RouterClient, args.router) as router, connect(SchedulerClient, args.scheduler) as scheduler:
        reader = Reader(router, scheduler, args.namespace)
        if args.output == "json":
            print(json.dumps(await snapshot_json(reader, args.interval, args.router), indent=2, sort_keys=True))
            return 0
        return await live(reader, args)


__all__ = ["Reader", "deployment_replicas", "instance_samples", "register", "render", "run", "unreachable_router"]
