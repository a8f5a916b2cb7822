"""The router: Sutradhar's data plane.

Every task goes through here. The router keeps an in-memory view of agents
and instances fed by the registry's ``Watch`` (no etcd read per request),
selects an instance by constraints and strategy, guards each instance with a
circuit breaker and passive outlier ejection, retries on another instance
within a budget and the caller's deadline, and forwards the task over the
instance's transport (gRPC, HTTP or in-process).

Modules, from pure to wired:

- ``policy``      RoutingPolicy proto -> frozen settings with the documented defaults
- ``breaker``     per-instance circuit breaker (Dapr semantics)
- ``outlier``     passive outlier ejection (Envoy semantics)
- ``retry``       back-off and the retry budget (gRPC A6 semantics)
- ``strategies``  round-robin, random, least-loaded, latency, weighted
- ``backend``     one routable instance: counters, breaker, ejection, EWMA
- ``selection``   candidates by constraints, with the constraint that removed them
- ``view``        agents + instances joined, fed by watch events
- ``wire``        fast-path protobuf splicing (no payload decode)
- ``transports``  gRPC (raw bytes), HTTP (JSON) and in-process agents
- ``engine``      one routed call: select, attempt, retry, hedge, deadline
- ``watcher``     registry Watch client with resume / re-list
- ``load``        load publishing to etcd for the autoscaler
- ``config``      RouterConfig, its flags and SUTRADHAR_ROUTER_* variables
- ``server``      RouterServer (the gRPC surface)
"""
