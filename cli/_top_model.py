"""What `sutradhar top` shows, computed from two samples of the mesh (no I/O here).

A `Sample` is one read of the router's per-instance counters (`GetStats`) and
of the scheduler's deployments (`ListDeployments`), taken at a monotonic time.
`snapshot(before, after)` turns two samples into rows:

- per instance: rps = requests counted between the samples / seconds between
  them; errors likewise, and error % = errors / requests of that interval;
  in-flight, p50 / p99 (the router's), breaker, ejected, ejections as the
  later sample has them;
- per agent (namespace, agent id): the sums of its instances' rps, errors and
  in-flight; p50 and p99 are the highest of its instances' (the router keeps
  percentiles per instance, and the worst instance is what an operator looks
  for); replicas ready / desired are its deployments' (none: not deployed by
  the scheduler); the instances whose breaker is not closed and those ejected.

The mesh-wide columns add what the other reporters recorded in etcd over their
last window (about 1 s; `GetStats`' `routers` and `direct`): per instance,
mesh rps = this router's rps (of the interval; on the first frame, of its own
last recorded window) + the other routers' + the direct callers' (the SDK's
`DirectClient`, whose calls bypass the router); mesh in-flight likewise (this
router's now, the others' window averages); direct rps / in-flight the direct
callers' part; mesh p50 the rps-weighted mean of the medians, mesh p99 the
highest. Per agent the mesh and direct numbers add up, the mesh p99 is the
highest of its instances'.

A counter lower in the later sample (the router restarted, or another router
answered) and an instance the earlier sample lacks count from zero: their
whole later value fell in the interval. Without an earlier sample, rates are
None (shown as "-"), as on the first frame of the live view.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class InstanceSample:
    """One instance as the router counts it at one moment."""

    namespace: str
    instance_id: str
    agent_id: str
    agent_type: str = ""
    version: str = ""
    endpoint: str = ""
    state: str = ""
    in_flight: int = 0
    requests: int = 0
    errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    breaker: str = "CLOSED"
    ejected: bool = False
    ejections: int = 0
    window_rps: float = 0.0
    """This router's rps over its last recorded load window."""
    others_rps: float = 0.0
    """The other routers' and direct callers' recorded rps."""
    others_in_flight: float = 0.0
    direct_rps: float = 0.0
    """The direct callers' part of `others_rps`."""
    direct_in_flight: float = 0.0
    mesh_p50_ms: float = 0.0
    mesh_p99_ms: float = 0.0
    others_breakers_open: int = 0
    """Other routers and direct callers whose breaker for the instance is open or half-open."""
    others_ejecting: int = 0
    """Other routers and direct callers that eject the instance."""


@dataclass(frozen=True)
class Replicas:
    """Replicas of the deployments that run one agent."""

    ready: int
    desired: int
    deployments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sample:
    """One read of the mesh."""

    at: float
    """Monotonic time of the read, in seconds."""
    router_id: str
    instances: tuple[InstanceSample, ...]
    replicas: Mapping[tuple[str, str], Replicas] = field(default_factory=dict)
    """By (namespace, agent id); empty when the scheduler was not read."""
    scheduler_error: str = ""
    """Why the scheduler's deployments are missing ("" when they were read)."""
    reported_load_error: str = ""
    """Why the other reporters' load is missing ("" when the router read it)."""


@dataclass(frozen=True)
class InstanceRow:
    """One instance in the view."""

    namespace: str
    agent_id: str
    instance_id: str
    endpoint: str
    state: str
    rps: float | None
    requests: int | None
    errors: int | None
    error_pct: float | None
    in_flight: int
    p50_ms: float
    p99_ms: float
    breaker: str
    ejected: bool
    ejections: int
    mesh_rps: float
    mesh_in_flight: float
    direct_rps: float
    direct_in_flight: float
    mesh_p50_ms: float
    mesh_p99_ms: float
    others_breakers_open: int = 0
    others_ejecting: int = 0


@dataclass(frozen=True)
class AgentRow:
    """One agent (namespace and agent id) in the view."""

    namespace: str
    agent_id: str
    agent_type: str
    instances: int
    rps: float | None
    requests: int | None
    errors: int | None
    error_pct: float | None
    in_flight: int
    p50_ms: float
    p99_ms: float
    ready: int | None
    desired: int | None
    breakers_open: int
    """Instances whose breaker is OPEN or HALF_OPEN."""
    ejected: int
    """Instances ejected now."""
    held_elsewhere: int = 0
    """Instances this router sends to that other routers or direct callers hold back (breaker open or ejected)."""
    mesh_rps: float = 0.0
    mesh_in_flight: float = 0.0
    direct_rps: float = 0.0
    direct_in_flight: float = 0.0
    mesh_p99_ms: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    """The view at one refresh."""

    router_id: str
    interval: float | None
    """Seconds between the two samples (None: only one sample so far)."""
    agents: tuple[AgentRow, ...]
    instances: tuple[InstanceRow, ...]
    scheduler_error: str = ""
    reported_load_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (`-o json`)."""
        return {
            "router_id": self.router_id,
            "interval_s": self.interval,
            "agents": [asdict(a) for a in self.agents],
            "instances": [asdict(i) for i in self.instances],
            "scheduler_error": self.scheduler_error,
            "reported_load_error": self.reported_load_error,
        }


def _key(s: InstanceSample) -> tuple[str, str]:
    return s.namespace, s.instance_id


def _delta(now: int, then: int | None) -> int:
    """Counted between two reads of a counter (from zero when it went down or was not there)."""
    return now if then is None or now < then else now - then


def _pct(errors: int | None, requests: int | None) -> float | None:
    if errors is None or requests is None:
        return None
    return round(100.0 * errors / requests, 2) if requests else 0.0


def _rate(count: int | None, seconds: float | None) -> float | None:
    if count is None or not seconds:
        return None
    return round(count / seconds, 2)


def instance_rows(after: Sample, before: Sample | None = None) -> list[InstanceRow]:
    """One row per instance of `after`, rates over the time since `before`, sorted by namespace, agent, instance."""
    seconds = after.at - before.at if before is not None else None
    if seconds is not None and seconds <= 0:
        raise ValueError(f"samples must be taken in order (got {seconds:.3f}s between them)")
    previous = {_key(s): s for s in before.instances} if before is not None else {}
    restarted = before is not None and before.router_id != after.router_id
    rows = []
    for s in after.instances:
        requests = errors = None
        if before is not None:
            old = None if restarted else previous.get(_key(s))
            requests = _delta(s.requests, old.requests if old else None)
            errors = _delta(s.errors, old.errors if old else None)
            if old is not None and s.requests < old.requests:  # reset: both counters start again
                errors = s.errors
        rps = _rate(requests, seconds)
        rows.append(InstanceRow(
            namespace=s.namespace, agent_id=s.agent_id, instance_id=s.instance_id, endpoint=s.endpoint,
            state=s.state, rps=rps, requests=requests, errors=errors,
            error_pct=_pct(errors, requests), in_flight=s.in_flight, p50_ms=s.p50_ms, p99_ms=s.p99_ms,
            breaker=s.breaker, ejected=s.ejected, ejections=s.ejections,
            mesh_rps=round((s.window_rps if rps is None else rps) + s.others_rps, 2),
            mesh_in_flight=round(s.in_flight + s.others_in_flight, 2), direct_rps=s.direct_rps,
            direct_in_flight=s.direct_in_flight, mesh_p50_ms=s.mesh_p50_ms, mesh_p99_ms=s.mesh_p99_ms,
            others_breakers_open=s.others_breakers_open, others_ejecting=s.others_ejecting,
        ))
    return sorted(rows, key=lambda r: (r.namespace, r.agent_id, r.instance_id))


def agent_rows(instances: Sequence[InstanceRow], samples: Iterable[InstanceSample],
               replicas: Mapping[tuple[str, str], Replicas], seconds: float | None) -> list[AgentRow]:
    """One row per (namespace, agent id) of `instances` or of `replicas` (a deployment with no instance
    known to the router shows with zero instances), sorted."""
    types = {(s.namespace, s.agent_id): s.agent_type for s in samples}
    groups: dict[tuple[str, str], list[InstanceRow]] = {}
    for row in instances:
        groups.setdefault((row.namespace, row.agent_id), []).append(row)
    for key in replicas:
        groups.setdefault(key, [])
    out = []
    for (namespace, agent_id), rows in sorted(groups.items()):
        counted = [r for r in rows if r.requests is not None]
        requests = sum(r.requests or 0 for r in counted) if seconds is not None else None
        errors = sum(r.errors or 0 for r in counted) if seconds is not None else None
        deployed = replicas.get((namespace, agent_id))
        out.append(AgentRow(
            namespace=namespace, agent_id=agent_id, agent_type=types.get((namespace, agent_id), ""),
            instances=len(rows), rps=_rate(requests, seconds) if requests is not None else None,
            requests=requests, errors=errors, error_pct=_pct(errors, requests),
            in_flight=sum(r.in_flight for r in rows),
            p50_ms=max((r.p50_ms for r in rows), default=0.0), p99_ms=max((r.p99_ms for r in rows), default=0.0),
            ready=deployed.ready if deployed else None, desired=deployed.desired if deployed else None,
            breakers_open=sum(1 for r in rows if r.breaker != "CLOSED"),
            ejected=sum(1 for r in rows if r.ejected),
            held_elsewhere=sum(1 for r in rows if _held_elsewhere(r)),
            mesh_rps=round(sum(r.mesh_rps for r in rows), 2),
            mesh_in_flight=round(sum(r.mesh_in_flight for r in rows), 2),
            direct_rps=round(sum(r.direct_rps for r in rows), 2),
            direct_in_flight=round(sum(r.direct_in_flight for r in rows), 2),
            mesh_p99_ms=max((r.mesh_p99_ms for r in rows), default=0.0),
        ))
    return out


def snapshot(after: Sample, before: Sample | None = None) -> Snapshot:
    """The view of `after`, with rates over the time since `before` (None: no rates yet)."""
    seconds = after.at - before.at if before is not None else None
    instances = instance_rows(after, before)
    return Snapshot(
        router_id=after.router_id,
        interval=round(seconds, 3) if seconds is not None else None,
        agents=tuple(agent_rows(instances, after.instances, after.replicas, seconds)),
        instances=tuple(instances),
        scheduler_error=after.scheduler_error,
        reported_load_error=after.reported_load_error,
    )


def replicas_by_agent(deployments: Iterable[tuple[str, str, str, int, int]]) -> dict[tuple[str, str], Replicas]:
    """(namespace, name, agent id, ready, desired) per deployment, summed per (namespace, agent id)."""
    out: dict[tuple[str, str], Replicas] = {}
    for namespace, name, agent_id, ready, desired in deployments:
        key = (namespace or "default", agent_id)
        old = out.get(key, Replicas(0, 0))
        out[key] = Replicas(old.ready + ready, old.desired + desired, (*old.deployments, name))
    return out


def fmt_rate(value: float | None) -> str:
    """An rps or percentage cell: "-" when unknown."""
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def fmt_ms(value: float) -> str:
    """A latency cell in milliseconds."""
    if value <= 0:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def fmt_replicas(row: AgentRow) -> str:
    """ready/desired, or "-" for an agent no deployment runs."""
    return "-" if row.desired is None else f"{row.ready}/{row.desired}"


def fmt_count(value: int | None) -> str:
    """A count of the interval: "-" when unknown."""
    return "-" if value is None else str(value)


def mesh_cells(row: AgentRow | InstanceRow) -> list[str]:
    """The mesh-wide cells of an agent or instance row (MESH RPS .. MESH P99 ms)."""
    in_flight = f"{row.mesh_in_flight:.1f}" if row.mesh_in_flight else "0"
    return [fmt_rate(row.mesh_rps), fmt_rate(row.direct_rps), in_flight, fmt_ms(row.mesh_p99_ms)]


def _held_elsewhere(row: InstanceRow) -> bool:
    """Held back by other routers or direct callers while this router has it in rotation."""
    return (row.others_breakers_open > 0 or row.others_ejecting > 0) and row.breaker == "CLOSED" and not row.ejected


def agent_cells(row: AgentRow) -> list[str]:
    """The agent table's cells for `row` (see `AGENT_COLUMNS`)."""
    state = []
    if row.breakers_open:
        state.append(f"{row.breakers_open} breaker{'s' if row.breakers_open > 1 else ''} open")
    if row.ejected:
        state.append(f"{row.ejected} ejected")
    if row.held_elsewhere:
        state.append(f"{row.held_elsewhere} held back elsewhere")
    return [row.namespace, row.agent_id, str(row.instances), fmt_replicas(row), fmt_rate(row.rps),
            fmt_count(row.errors), fmt_rate(row.error_pct), str(row.in_flight), fmt_ms(row.p50_ms),
            fmt_ms(row.p99_ms), *mesh_cells(row), ", ".join(state) or "ok"]


def instance_cells(row: InstanceRow) -> list[str]:
    """The instance table's cells for `row` (see `INSTANCE_COLUMNS`)."""
    ejected = f"{'ejected' if row.ejected else '-'} ({row.ejections})"
    elsewhere = [f"{n} {what}" for n, what in ((row.others_breakers_open, "open"), (row.others_ejecting, "ejecting"))
                 if n]
    if elsewhere:
        ejected += f"; elsewhere {', '.join(elsewhere)}"
    return [row.namespace, row.agent_id, row.instance_id, row.endpoint, row.state, fmt_rate(row.rps),
            fmt_count(row.errors), fmt_rate(row.error_pct), str(row.in_flight), fmt_ms(row.p50_ms),
            fmt_ms(row.p99_ms), *mesh_cells(row), row.breaker.lower().replace("_", "-"), ejected]


MESH_COLUMNS = ("MESH RPS", "DIRECT RPS", "MESH INFL", "MESH P99 ms")
AGENT_COLUMNS = ("NAMESPACE", "AGENT", "INST", "READY", "RPS", "ERR", "ERR%", "INFL", "P50 ms", "P99 ms",
                 *MESH_COLUMNS, "STATE")
INSTANCE_COLUMNS = ("NAMESPACE", "AGENT", "INSTANCE", "ENDPOINT", "STATE", "RPS", "ERR", "ERR%", "INFL", "P50 ms",
                    "P99 ms", *MESH_COLUMNS, "BREAKER", "EJECTED (TIMES)")
#: Under the tables: which columns are whose.
MESH_NOTE = ("RPS .. P99: this router's calls; MESH: every router's and direct caller's, from the load they "
             "recorded in etcd (last ~1s); DIRECT RPS: callers that bypass the router (DirectClient); "
             "elsewhere: other routers and direct callers holding the instance back (breaker open, ejecting)")
