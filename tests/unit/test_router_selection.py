"""Strategies' distributions, candidate selection with the constraint that
removed the candidates, and the view's join — pure, no network."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sutradhar._errors import FailedPrecondition, InvalidArgument, Unavailable
from sutradhar._routing.backend import Backend, Outcome
from sutradhar._routing.selection import resolve, unavailable_message
from sutradhar._routing.strategies import make_strategy
from sutradhar._routing.view import View
from sutradhar.v1 import registry_pb2, router_pb2, routing_pb2

SERVING = registry_pb2.INSTANCE_STATE_SERVING


def agent(aid, type_="echo", version="1.0.0", caps=(), labels=None, weight=0, ns="default"):
    a = registry_pb2.Agent(id=aid, namespace=ns, type=type_, version=version, capabilities=list(caps),
                           labels=labels or {})
    if weight:
        a.routing.CopyFrom(routing_pb2.RoutingPolicy(weight=weight))
    return a


def inst(iid, aid, state=SERVING, labels=None, drained=False, ns="default"):
    return registry_pb2.Instance(id=iid, namespace=ns, agent_id=aid, endpoint=f"127.0.0.1:{1000 + len(iid)}",
                                 state=state, labels=labels or {}, drained=drained)


def backends(n, agent_id="a"):
    out = []
    for i in range(n):
        b = Backend("default", f"i{i}")
        b.agent_id = agent_id
        out.append(b)
    return out


def test_round_robin_is_exact():
    bs = backends(3)
    s = make_strategy("round-robin")
    counts = Counter(s.pick(bs).instance_id for _ in range(300))
    assert counts == {"i0": 100, "i1": 100, "i2": 100}


def test_random_is_roughly_uniform():
    bs = backends(4)
    s = make_strategy("random", random.Random(7))
    counts = Counter(s.pick(bs).instance_id for _ in range(4000))
    assert all(850 < c < 1150 for c in counts.values()), counts


def test_least_loaded_prefers_idle_instances():
    bs = backends(4)
    bs[0].in_flight, bs[1].in_flight, bs[2].in_flight, bs[3].in_flight = 10, 10, 10, 0
    s = make_strategy("least-loaded", random.Random(1))
    counts = Counter(s.pick(bs).instance_id for _ in range(1000))
    # i3 wins every pair it is drawn in: P = 1 - (3/4 x 2/3) = 1/2
    assert 420 < counts["i3"] < 580, counts
    bs[3].in_flight = 20
    assert Counter(s.pick(bs).instance_id for _ in range(300))["i3"] == 0  # never the busiest of two


def test_latency_prefers_fast_instances_and_tries_new_ones():
    bs = backends(3)
    for t in range(5):
        bs[0].begin(t)
        bs[0].end(t, 0.100, Outcome.SUCCESS)
        bs[1].begin(t)
        bs[1].end(t, 0.001, Outcome.SUCCESS)
    s = make_strategy("latency", random.Random(3))
    counts = Counter(s.pick(bs).instance_id for _ in range(900))
    assert counts["i0"] == 0  # slowest never wins a pair
    assert counts["i2"] > counts["i1"]  # unmeasured costs 0: explored first
    # peak-EWMA: one slow observation makes a fast instance expensive at once
    bs[1].begin(6)
    bs[1].end(6, 0.5, Outcome.SUCCESS)
    assert bs[1].ewma == pytest.approx(0.5)


def test_weighted_split_90_10_across_agents():
    v1, v2 = backends(2, "echo-v1"), backends(1, "echo-v2")
    for b in v1:
        b.weight = 90
    v2[0].weight = 10
    v2[0].instance_id = "canary"
    s = make_strategy("weighted")
    counts = Counter(s.pick([*v1, *v2]).agent_id for _ in range(1000))
    assert counts == {"echo-v1": 900, "echo-v2": 100}


def make_view():
    v = View()
    v.replace(
        [agent("echo-v1", version="1.4.0", caps=["answer"], labels={"tier": "gold"}),
         agent("echo-v2", version="2.1.0", caps=["answer", "hint"], labels={"tier": "silver"}),
         agent("lonely", type_="solo", version="1.0.0"),
         agent("sleepy", type_="sleepy")],
         [inst("a1", "echo-v1"), inst("a2", "echo-v1", labels={"zone": "z1"}),
          inst("b1", "echo-v2"), inst("s1", "sleepy", state=registry_pb2.INSTANCE_STATE_NOT_SERVING),
          inst("s2", "sleepy", drained=True)],
    )
    return v


def sel(**kw):
    return router_pb2.Selector(**kw)


def ids(pool):
    return [b.instance_id for b in pool.backends]


def test_each_constraint_narrows():
    v = make_view()
    assert ids(resolve(v, sel(agent_type="echo"))) == ["a1", "a2", "b1"]
    assert ids(resolve(v, sel(agent_type="echo", version_range="^1.4"))) == ["a1", "a2"]
    assert ids(resolve(v, sel(agent_type="echo", version_range=">=2.0.0"))) == ["b1"]
    assert ids(resolve(v, sel(agent_type="echo", version_range=">=1.2 <2"))) == ["a1", "a2"]
    assert ids(resolve(v, sel(agent_type="echo", capabilities=["hint"]))) == ["b1"]
    assert ids(resolve(v, sel(agent_type="echo", label_selector="tier=gold"))) == ["a1", "a2"]
    assert ids(resolve(v, sel(agent_type="echo", label_selector="zone=z1"))) == ["a2"]  # instance label
    assert ids(resolve(v, sel(agent_type="echo", label_selector="tier in (gold,silver),!zone"))) == ["a1", "b1"]
    assert ids(resolve(v, sel(agent_id="echo-v2"))) == ["b1"]


@pytest.mark.parametrize(("selector", "error", "words"), [
    (sel(agent_type="nope"), FailedPrecondition, ["agent type", "'nope'", "echo"]),
    (sel(agent_type="echo", namespace="other"), FailedPrecondition, ["'other'", "no agents"]),
    (sel(agent_type="echo", version_range="^3"), FailedPrecondition, ["version range", "1.4.0", "2.1.0", "'^3'"]),
    (sel(agent_type="echo", capabilities=["fly"]), FailedPrecondition, ["capabilities", "'fly'"]),
    (sel(agent_type="echo", label_selector="tier=bronze"), FailedPrecondition, ["label selector", "3 instance"]),
    (sel(agent_id="ghost"), FailedPrecondition, ["'ghost'"]),
    (sel(agent_id="echo-v1", agent_type="solo"), FailedPrecondition, ["has type 'echo'"]),
    (sel(agent_type="solo"), Unavailable, ["no live instance"]),
    (sel(agent_type="sleepy"), Unavailable, ["SERVING", "1 NOT_SERVING", "1 DRAINED"]),
])
def test_the_error_names_the_constraint(selector, error, words):
    with pytest.raises(error) as info:
        resolve(make_view(), selector)
    for word in words:
        assert word in info.value.message, info.value.message


def test_capabilities_error_names_only_what_no_candidate_offers():
    v = make_view()
    with pytest.raises(FailedPrecondition) as info:  # 'hint' is offered (by echo-v2), 'fly' by nobody
        resolve(v, sel(agent_type="echo", capabilities=["hint", "fly"]))
    message = info.value.message
    assert "offers 'fly' (asked for 'hint', 'fly')" in message, message
    assert "offers 'hint'" not in message and "missing somewhere" not in message, message
    with pytest.raises(FailedPrecondition) as info:
        resolve(v, sel(agent_type="echo", capabilities=["shout", "nope"]))
    assert "offers 'shout', 'nope'" in info.value.message


def test_capabilities_split_across_agents_say_no_single_instance_offers_all():
    v = View()
    v.replace([agent("loud", caps=["shout"]), agent("quiet", caps=["whisper"]), agent("mute")],
              [inst("l1", "loud"), inst("q1", "quiet"), inst("m1", "mute")])
    with pytest.raises(FailedPrecondition) as info:
        resolve(v, sel(agent_type="echo", capabilities=["shout", "whisper"]))
    message = info.value.message
    assert "no single instance offers all of them" in message, message
    assert "'loud' offers 'shout'; 'mute' offers none of them; 'quiet' offers 'whisper'" in message, message
    assert "no agent of" not in message, message


@pytest.mark.parametrize(("selector", "field"), [
    (sel(), "selector.agent_type"),
    (sel(agent_type="echo", version_range="banana"), "selector.version_range"),
    (sel(agent_type="echo", label_selector="tier in (gold"), "selector.label_selector"),
    (sel(agent_type="echo", capabilities=[""]), "selector.capabilities"),
])
def test_malformed_constraints_are_invalid_argument(selector, field):
    with pytest.raises(InvalidArgument) as info:
        resolve(make_view(), selector)
    assert info.value.field == field
    assert field in info.value.message


def test_view_join_tracks_state_agent_and_policy():
    v = make_view()
    pool = resolve(v, sel(agent_type="echo"))
    a1 = pool.backends[0]
    v.put_instance(inst("a1", "echo-v1", state=registry_pb2.INSTANCE_STATE_DRAINING))
    assert ids(resolve(v, sel(agent_type="echo"))) == ["a2", "b1"]
    v.put_instance(inst("a1", "echo-v1"))
    assert resolve(v, sel(agent_type="echo")).backends[0] is a1  # same Backend, state kept
    v.delete_agent("default", "echo-v2")
    assert ids(resolve(v, sel(agent_type="echo"))) == ["a1", "a2"]
    v.put_agent(agent("echo-v1", version="1.4.0", weight=5))
    assert a1.weight == 5
    v.delete_instance("default", "a1")
    assert ids(resolve(v, sel(agent_type="echo"))) == ["a2"]
    gen = v.generation
    v.replace([agent("echo-v1", version="1.4.0")], [inst("a2", "echo-v1")])
    assert v.generation > gen and set(v.backends) == {("default", "a2")}


def test_namespaces_isolate():
    v = View()
    v.replace([agent("e", ns="team-a"), agent("e", ns="team-b")],
              [inst("x", "e", ns="team-a"), inst("y", "e", ns="team-b")])
    assert ids(resolve(v, sel(agent_type="echo", namespace="team-a"))) == ["x"]
    assert ids(resolve(v, sel(agent_type="echo", namespace="team-b"))) == ["y"]


def test_unavailable_message_names_ejections_and_breakers():
    v = make_view()
    pool = resolve(v, sel(agent_type="echo", version_range="^1"))
    a1, a2 = pool.backends
    a1.outlier.failure(0.0, may_eject=True)
    for _ in range(5):
        a1.outlier.failure(0.0, may_eject=True)
        a2.breaker.failure(0.0)
    assert not a1.available(1.0) and not a2.available(1.0)
    text = unavailable_message(pool, 1.0)
    assert "a1: ejected for" in text and "a2: circuit breaker open" in text


def test_drained_instances_are_named_with_the_enable_command():
    draining = registry_pb2.INSTANCE_STATE_DRAINING
    v = View()
    v.replace([agent("e", ns="team-a")],
              [inst("x", "e", state=draining, drained=True, ns="team-a"),
               inst("y", "e", drained=True, ns="team-a")])  # drained, state not updated yet
    with pytest.raises(Unavailable) as caught:
        resolve(v, sel(agent_type="echo", namespace="team-a"))
    text = str(caught.value)
    assert "1 DRAINED, 1 DRAINING" in text
    assert "sutradhar enable INSTANCE -n team-a" in text and "'x', 'y'" in text
    assert "readiness" not in text  # nothing here waits for a probe
    v.put_instance(inst("z", "e", state=registry_pb2.INSTANCE_STATE_NOT_SERVING, ns="team-a"))
    with pytest.raises(Unavailable) as caught:
        resolve(v, sel(agent_type="echo", namespace="team-a"))
    assert "sutradhar enable" in str(caught.value) and "readiness probes" in str(caught.value)


def test_not_serving_instances_wait_for_readiness_without_enable_advice():
    v = View()
    v.replace([agent("e")], [inst("x", "e", state=registry_pb2.INSTANCE_STATE_NOT_SERVING)])
    with pytest.raises(Unavailable, match="readiness probes") as caught:
        resolve(v, sel(agent_type="echo"))
    assert "enable" not in str(caught.value)
