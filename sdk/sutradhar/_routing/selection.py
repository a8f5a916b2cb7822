"""Candidate selection: from a Selector to the pool of routable instances,
with an error that names the constraint that removed the last candidate.

Constraints apply in this order, and the first that leaves nothing decides
the error:

1. agent id or agent type in the namespace      FAILED_PRECONDITION
2. version range (npm-style semver)             FAILED_PRECONDITION
3. capabilities (all of them)                   FAILED_PRECONDITION
4. live instances of the remaining agents       UNAVAILABLE
5. label selector (agent + instance labels)     FAILED_PRECONDITION
6. routable state (SERVING, not drained)        UNAVAILABLE (drained ones: `sutradhar enable`)

Malformed constraints (a bad range or label selector, neither type nor id)
are INVALID_ARGUMENT naming the field. What is left after breakers and
ejection is decided per call by the engine (`available`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sutradhar import _semver as semver
from sutradhar._errors import FailedPrecondition, InvalidArgument, Unavailable
from sutradhar._labels import parse_selector, validate_label_name
from sutradhar._names import validate_dns_label, validate_namespace
from sutradhar._routing.backend import Backend
from sutradhar._routing.policy import DEFAULT_POLICY, Policy
from sutradhar._routing.view import AgentEntry, View
from sutradhar._token_bucket import TokenBucket
from sutradhar.v1 import router_pb2


@dataclass
class Pool:
    """The routable instances one selector names, and the policy to use."""

    namespace: str
    what: str
    """Human description of what was asked for, e.g. "agent type 'echo'"."""
    backends: list[Backend]
    policy: Policy = DEFAULT_POLICY
    strategies: dict[str, object] = field(default_factory=dict)
    limit_agent: str = ""
    """The agent whose policy the pool uses: its routing.rate_limit is the pool's agent-level limit."""
    agent_bucket: TokenBucket | None = None
    """That limit's bucket (set by the engine when the pool is resolved; None: no agent-level limit)."""


def _quote_list(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(x) for x in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _version_key(entry: AgentEntry) -> tuple[object, str]:
    try:
        return (semver.parse_version(entry.agent.version), entry.agent.id)
    except Exception:
        return (semver.parse_version("0.0.0"), entry.agent.id)


def validate(selector: router_pb2.Selector) -> None:
    """INVALID_ARGUMENT naming the field for a malformed selector."""
    if not selector.agent_type and not selector.agent_id:
        raise InvalidArgument(
            "selector.agent_type: an agent type (or selector.agent_id) is required", field="selector.agent_type"
        )
    # Names the registry would refuse can match nothing: say so (INVALID_ARGUMENT),
    # not "none registered" (FAILED_PRECONDITION). Pools are cached, so this
    # runs once per selector and view generation, not per call.
    validate_namespace(selector.namespace, field="selector.namespace")
    if selector.agent_type:
        validate_dns_label(selector.agent_type, field="selector.agent_type", what="agent type")
    if selector.agent_id:
        validate_dns_label(selector.agent_id, field="selector.agent_id", what="agent id")
    if selector.version_range.strip():
        semver.parse_range(selector.version_range, field="selector.version_range")
    if selector.label_selector.strip():
        parse_selector(selector.label_selector, field="selector.label_selector")
    for cap in selector.capabilities:
        validate_label_name(cap, field="selector.capabilities", what="capability")


def resolve(view: View, selector: router_pb2.Selector) -> Pool:
    """The pool of routable instances for `selector`, or the error that says why there is none."""
    validate(selector)
    ns = selector.namespace or "default"
    entries = view.agents_in(ns)
    if selector.agent_id:
        what = f"agent {selector.agent_id!r}"
        entries = [e for e in entries if e.agent.id == selector.agent_id]
        if not entries:
            raise FailedPrecondition(
                f"no agent {selector.agent_id!r} is registered in namespace {ns!r}; "
                f"list them with `sutradhar agents list -n {ns}`"
            )
        if selector.agent_type and entries[0].agent.type != selector.agent_type:
            raise FailedPrecondition(
                f"agent {selector.agent_id!r} in namespace {ns!r} has type {entries[0].agent.type!r}, "
                f"not {selector.agent_type!r}"
            )
    else:
        what = f"agent type {selector.agent_type!r}"
        typed = [e for e in entries if e.agent.type == selector.agent_type]
        if not typed:
            known = sorted({e.agent.type for e in entries})
            hint = f" (types there: {_quote_list(known)})" if known else " (it has no agents)"
            raise FailedPrecondition(
                f"agent type: no agent of type {selector.agent_type!r} is registered in namespace {ns!r}{hint}"
            )
        entries = typed
    if selector.version_range.strip():
        rng = selector.version_range.strip()
        matching = [e for e in entries if semver.matches(e.agent.version, rng)]
        if not matching:
            versions = sorted({e.agent.version for e in entries})
            raise FailedPrecondition(
                f"version range: {what} has versions {_quote_list(versions)} in namespace {ns!r}; "
                f"none satisfies {rng!r}"
            )
        entries = matching
    if selector.capabilities:
        wanted = list(dict.fromkeys(selector.capabilities))
        matching = [e for e in entries if set(wanted) <= set(e.agent.capabilities)]
        if not matching:
            raise FailedPrecondition(_capabilities_message(entries, wanted, what, ns))
        entries = matching
    agent_ids = {e.agent.id for e in entries}
    backends = view.backends_of(ns, agent_ids)
    if not backends:
        raise Unavailable(
            f"{what} in namespace {ns!r} has no live instance (agents {_quote_list(sorted(agent_ids))}); "
            "start one (e.g. `sutradhar deploy` or `python -m sutradhar.serve ...`)"
        )
    if selector.label_selector.strip():
        sel = parse_selector(selector.label_selector, field="selector.label_selector")
        matching_b = [b for b in backends if sel.matches(b.labels)]
        if not matching_b:
            raise FailedPrecondition(
                f"label selector: {selector.label_selector.strip()!r} matches none of the "
                f"{len(backends)} instance(s) of {what} in namespace {ns!r}"
            )
        backends = matching_b
    routable = [b for b in backends if view.routable(b)]
    if not routable:
        raise Unavailable(_not_serving_message(backends, what, ns))
    owner = entries[0] if selector.agent_id else max(entries, key=_version_key)
    return Pool(namespace=ns, what=what, backends=routable, policy=owner.policy, limit_agent=owner.agent.id)


#: States of a drained instance (`DRAINED`: drained while its state still says SERVING).
_DRAINED_STATES = ("DRAINING", "DRAINED")


def _not_serving_message(backends: list[Backend], what: str, ns: str) -> str:
    """Why none of the instances is routable, with the fix for each kind:
    drained ones come back with `sutradhar enable`, the others by passing
    their readiness probes."""
    states = Counter(b.state.removeprefix("INSTANCE_STATE_") for b in backends)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    drained = [b.instance_id for b in backends if b.state.removeprefix("INSTANCE_STATE_") in _DRAINED_STATES]
    advice = []
    if drained:
        shown = _quote_list(drained, limit=3)
        flag = "" if ns == "default" else f" -n {ns}"
        advice.append(
            f"the drained instance(s) ({shown}) get no new tasks until they are enabled again: run "
            f"`sutradhar enable INSTANCE{flag}` (or the health API's EnableInstance) for each; one that is "
            "shutting down by itself will leave instead"
        )
    if len(drained) < len(backends):
        advice.append("wait for the others to pass their readiness probes (`sutradhar health` shows why they fail)")
    return (
        f"none of the {len(backends)} instance(s) of {what} in namespace {ns!r} is SERVING "
        f"({summary}); {'; '.join(advice)}"
    )


def _capabilities_message(entries: list[AgentEntry], wanted: list[str], what: str, ns: str) -> str:
    """Why no candidate offers every wanted capability: the ones no candidate
    offers at all, or - when each is offered somewhere - who offers which."""
    offered = {c for e in entries for c in e.agent.capabilities}
    missing = [c for c in wanted if c not in offered]
    if missing:
        them = "it" if len(missing) == 1 else "them"
        return (
            f"capabilities: no agent of {what} in namespace {ns!r} offers {_quote_list(missing)} "
            f"(asked for {_quote_list(wanted)}); drop {them} from selector.capabilities or register an agent "
            f"that offers {them}"
        )
    shown = sorted(entries, key=lambda e: e.agent.id)
    offers = "; ".join(
        f"{e.agent.id!r} offers {_quote_list([c for c in wanted if c in e.agent.capabilities]) or 'none of them'}"
        for e in shown[:5]
    )
    more = f"; and {len(shown) - 5} more agents" if len(shown) > 5 else ""
    return (
        f"capabilities: each of {_quote_list(wanted)} is offered by some agent of {what} in namespace {ns!r}, "
        f"but no single instance offers all of them ({offers}{more}); ask for capabilities one agent offers"
    )


def unavailable_message(pool: Pool, now: float) -> str:
    """Why none of a pool's routable instances can take a call right now."""
    parts = []
    for b in pool.backends[:5]:
        if b.outlier.ejected_until and b.outlier.remaining(now) > 0:
            parts.append(f"{b.instance_id}: ejected for {b.outlier.remaining(now):.1f}s more")
        elif b.breaker.open_for(now) > 0:
            parts.append(f"{b.instance_id}: circuit breaker open for {b.breaker.open_for(now):.1f}s more")
        else:
            parts.append(f"{b.instance_id}: circuit breaker half-open, trial call in flight")
    more = f", and {len(pool.backends) - 5} more" if len(pool.backends) > 5 else ""
    return (
        f"all {len(pool.backends)} serving instance(s) of {pool.what} in namespace {pool.namespace!r} "
        f"are ejected as outliers or have open circuit breakers ({'; '.join(parts)}{more}); "
        "check the agents' logs; calls resume when an ejection ends or a trial call succeeds"
    )
