"""The routing core: how a call chooses an instance and what it does when one fails, with no I/O.

The router service and the SDK's `DirectClient` route with it (issue 12; both through the one
engine, `sutradhar._route_engine`), so both apply one selector, one per-agent policy and one set
of state machines.
It needs only the SDK's base install (grpcio, protobuf, PyYAML, semantic-version): no etcd,
Docker, HTTP client or event loop, and every clock is passed in (monotonic seconds).

Modules, from the settings up:

- ``policy``      RoutingPolicy proto -> frozen settings with the documented defaults
- ``breaker``     per-instance circuit breaker (Dapr semantics)
- ``outlier``     passive outlier ejection (Envoy semantics)
- ``retry``       back-off and the retry budget (gRPC A6 semantics)
- ``backend``     one routable instance: counters, breaker, ejection, EWMA
- ``strategies``  round-robin, random, least-loaded, latency, weighted
- ``view``        agents + instances joined, fed by watch events
- ``selection``   candidates by constraints, with the constraint that removed them
- ``wire``        the fast path's protobuf splicing (the payload is never decoded)
- ``attempts``    one call's decisions: its timeout, each attempt's time, the next
                  instance, whether and when to retry, when to hedge again

Not public API yet: import the submodules (``from sutradhar._routing.view import View``).
"""
