"""The router: Sutradhar's data plane.

Every task goes through here. The router keeps an in-memory view of agents
and instances fed by the registry's ``Watch`` (no etcd read per request),
selects an instance by constraints and strategy, guards each instance with a
circuit breaker and passive outlier ejection, retries on another instance
within a budget and the caller's deadline, and forwards the task over the
instance's transport (gRPC, HTTP or in-process).

The pure routing code (policy, breaker, outlier, retry, strategies, backend,
view, selection) is the SDK's routing core, ``sutradhar._routing``, shared
with the SDK's callers. This package wires it up:

- ``wire``        fast-path protobuf splicing (no payload decode)
- ``ratelimits``  the data plane's rate limits (agent, namespace, caller)
- ``transports``  gRPC (raw bytes), HTTP (JSON) and in-process agents
- ``engine``      one routed call: select, attempt, retry, hedge, deadline
- ``watcher``     registry Watch client with resume / re-list
- ``load``        load publishing to etcd for the autoscaler
- ``config``      RouterConfig, its flags and SUTRADHAR_ROUTER_* variables
- ``server``      RouterServer (the gRPC surface)
"""
