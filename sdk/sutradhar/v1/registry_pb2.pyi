import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sutradhar.v1 import probe_pb2 as _probe_pb2
from sutradhar.v1 import ratelimit_pb2 as _ratelimit_pb2
from sutradhar.v1 import routing_pb2 as _routing_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InstanceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_STATE_UNSPECIFIED: _ClassVar[InstanceState]
    INSTANCE_STATE_STARTING: _ClassVar[InstanceState]
    INSTANCE_STATE_SERVING: _ClassVar[InstanceState]
    INSTANCE_STATE_NOT_SERVING: _ClassVar[InstanceState]
    INSTANCE_STATE_DRAINING: _ClassVar[InstanceState]

class ProbeResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROBE_RESULT_UNSPECIFIED: _ClassVar[ProbeResult]
    PROBE_RESULT_SUCCESS: _ClassVar[ProbeResult]
    PROBE_RESULT_FAILURE: _ClassVar[ProbeResult]

class ResourceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOURCE_KIND_UNSPECIFIED: _ClassVar[ResourceKind]
    RESOURCE_KIND_AGENT: _ClassVar[ResourceKind]
    RESOURCE_KIND_INSTANCE: _ClassVar[ResourceKind]
    RESOURCE_KIND_RATE_LIMIT: _ClassVar[ResourceKind]

class WatchEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_EVENT_TYPE_UNSPECIFIED: _ClassVar[WatchEventType]
    WATCH_EVENT_TYPE_PUT: _ClassVar[WatchEventType]
    WATCH_EVENT_TYPE_DELETE: _ClassVar[WatchEventType]
    WATCH_EVENT_TYPE_SYNCED: _ClassVar[WatchEventType]
INSTANCE_STATE_UNSPECIFIED: InstanceState
INSTANCE_STATE_STARTING: InstanceState
INSTANCE_STATE_SERVING: InstanceState
INSTANCE_STATE_NOT_SERVING: InstanceState
INSTANCE_STATE_DRAINING: InstanceState
PROBE_RESULT_UNSPECIFIED: ProbeResult
PROBE_RESULT_SUCCESS: ProbeResult
PROBE_RESULT_FAILURE: ProbeResult
RESOURCE_KIND_UNSPECIFIED: ResourceKind
RESOURCE_KIND_AGENT: ResourceKind
RESOURCE_KIND_INSTANCE: ResourceKind
RESOURCE_KIND_RATE_LIMIT: ResourceKind
WATCH_EVENT_TYPE_UNSPECIFIED: WatchEventType
WATCH_EVENT_TYPE_PUT: WatchEventType
WATCH_EVENT_TYPE_DELETE: WatchEventType
WATCH_EVENT_TYPE_SYNCED: WatchEventType

class Agent(_message.Message):
    __slots__ = ("id", "namespace", "type", "version", "capabilities", "runtime", "config", "resources", "labels", "description", "probes", "routing", "create_time", "update_time", "resource_version")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    namespace: str
    type: str
    version: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    runtime: str
    config: _struct_pb2.Struct
    resources: Resources
    labels: _containers.ScalarMap[str, str]
    description: str
    probes: _probe_pb2.Probes
    routing: _routing_pb2.RoutingPolicy
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    resource_version: int
    def __init__(self, id: _Optional[str] = ..., namespace: _Optional[str] = ..., type: _Optional[str] = ..., version: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., runtime: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., description: _Optional[str] = ..., probes: _Optional[_Union[_probe_pb2.Probes, _Mapping]] = ..., routing: _Optional[_Union[_routing_pb2.RoutingPolicy, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resource_version: _Optional[int] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("cpu", "memory")
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    cpu: str
    memory: str
    def __init__(self, cpu: _Optional[str] = ..., memory: _Optional[str] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("id", "namespace", "agent_id", "endpoint", "runtime", "state", "drained", "labels", "lease_id", "lease_ttl", "register_time", "health", "resource_version", "version", "identity")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DRAINED_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    REGISTER_TIME_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    namespace: str
    agent_id: str
    endpoint: str
    runtime: str
    state: InstanceState
    drained: bool
    labels: _containers.ScalarMap[str, str]
    lease_id: int
    lease_ttl: _duration_pb2.Duration
    register_time: _timestamp_pb2.Timestamp
    health: InstanceHealth
    resource_version: int
    version: str
    identity: str
    def __init__(self, id: _Optional[str] = ..., namespace: _Optional[str] = ..., agent_id: _Optional[str] = ..., endpoint: _Optional[str] = ..., runtime: _Optional[str] = ..., state: _Optional[_Union[InstanceState, str]] = ..., drained: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., lease_id: _Optional[int] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., register_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., health: _Optional[_Union[InstanceHealth, _Mapping]] = ..., resource_version: _Optional[int] = ..., version: _Optional[str] = ..., identity: _Optional[str] = ...) -> None: ...

class ProbeStatus(_message.Message):
    __slots__ = ("result", "last_result", "last_message", "last_probe_time", "consecutive_successes", "consecutive_failures", "last_latency")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    LAST_RESULT_FIELD_NUMBER: _ClassVar[int]
    LAST_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_PROBE_TIME_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    LAST_LATENCY_FIELD_NUMBER: _ClassVar[int]
    result: ProbeResult
    last_result: ProbeResult
    last_message: str
    last_probe_time: _timestamp_pb2.Timestamp
    consecutive_successes: int
    consecutive_failures: int
    last_latency: _duration_pb2.Duration
    def __init__(self, result: _Optional[_Union[ProbeResult, str]] = ..., last_result: _Optional[_Union[ProbeResult, str]] = ..., last_message: _Optional[str] = ..., last_probe_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., consecutive_successes: _Optional[int] = ..., consecutive_failures: _Optional[int] = ..., last_latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class InstanceHealth(_message.Message):
    __slots__ = ("readiness", "liveness", "restart_requested", "prober")
    READINESS_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    RESTART_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    PROBER_FIELD_NUMBER: _ClassVar[int]
    readiness: ProbeStatus
    liveness: ProbeStatus
    restart_requested: bool
    prober: str
    def __init__(self, readiness: _Optional[_Union[ProbeStatus, _Mapping]] = ..., liveness: _Optional[_Union[ProbeStatus, _Mapping]] = ..., restart_requested: _Optional[bool] = ..., prober: _Optional[str] = ...) -> None: ...

class RegisterAgentRequest(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: Agent
    def __init__(self, agent: _Optional[_Union[Agent, _Mapping]] = ...) -> None: ...

class RegisterAgentResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: Agent
    def __init__(self, agent: _Optional[_Union[Agent, _Mapping]] = ...) -> None: ...

class UpdateAgentRequest(_message.Message):
    __slots__ = ("agent", "allow_missing")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MISSING_FIELD_NUMBER: _ClassVar[int]
    agent: Agent
    allow_missing: bool
    def __init__(self, agent: _Optional[_Union[Agent, _Mapping]] = ..., allow_missing: _Optional[bool] = ...) -> None: ...

class UpdateAgentResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: Agent
    def __init__(self, agent: _Optional[_Union[Agent, _Mapping]] = ...) -> None: ...

class GetAgentRequest(_message.Message):
    __slots__ = ("namespace", "id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class GetAgentResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: Agent
    def __init__(self, agent: _Optional[_Union[Agent, _Mapping]] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("namespace", "type", "capabilities", "label_selector", "version_range", "runtime")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    VERSION_RANGE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    type: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    label_selector: str
    version_range: str
    runtime: str
    def __init__(self, namespace: _Optional[str] = ..., type: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., label_selector: _Optional[str] = ..., version_range: _Optional[str] = ..., runtime: _Optional[str] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents", "revision")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[Agent]
    revision: int
    def __init__(self, agents: _Optional[_Iterable[_Union[Agent, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class DeregisterAgentRequest(_message.Message):
    __slots__ = ("namespace", "id", "force")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    force: bool
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DeregisterAgentResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: Agent
    def __init__(self, agent: _Optional[_Union[Agent, _Mapping]] = ...) -> None: ...

class RegisterInstanceRequest(_message.Message):
    __slots__ = ("instance", "ttl", "replace")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    ttl: _duration_pb2.Duration
    replace: bool
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., replace: _Optional[bool] = ...) -> None: ...

class RegisterInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class KeepAliveInstanceRequest(_message.Message):
    __slots__ = ("namespace", "id", "lease_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    lease_id: int
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ..., lease_id: _Optional[int] = ...) -> None: ...

class KeepAliveInstanceResponse(_message.Message):
    __slots__ = ("ttl",)
    TTL_FIELD_NUMBER: _ClassVar[int]
    ttl: _duration_pb2.Duration
    def __init__(self, ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class UpdateInstanceStateRequest(_message.Message):
    __slots__ = ("namespace", "id", "state")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    state: InstanceState
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ..., state: _Optional[_Union[InstanceState, str]] = ...) -> None: ...

class UpdateInstanceStateResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class GetInstanceRequest(_message.Message):
    __slots__ = ("namespace", "id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class GetInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class ListInstancesRequest(_message.Message):
    __slots__ = ("namespace", "agent_id", "state", "label_selector")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    agent_id: str
    state: InstanceState
    label_selector: str
    def __init__(self, namespace: _Optional[str] = ..., agent_id: _Optional[str] = ..., state: _Optional[_Union[InstanceState, str]] = ..., label_selector: _Optional[str] = ...) -> None: ...

class ListInstancesResponse(_message.Message):
    __slots__ = ("instances", "revision")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    revision: int
    def __init__(self, instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class DeregisterInstanceRequest(_message.Message):
    __slots__ = ("namespace", "id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class DeregisterInstanceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReportLoadRequest(_message.Message):
    __slots__ = ("namespace", "reporter_id", "loads")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    REPORTER_ID_FIELD_NUMBER: _ClassVar[int]
    LOADS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    reporter_id: str
    loads: _containers.RepeatedCompositeFieldContainer[InstanceLoad]
    def __init__(self, namespace: _Optional[str] = ..., reporter_id: _Optional[str] = ..., loads: _Optional[_Iterable[_Union[InstanceLoad, _Mapping]]] = ...) -> None: ...

class InstanceLoad(_message.Message):
    __slots__ = ("instance_id", "agent_id", "in_flight", "rps", "latency_p50", "latency_p99", "breaker_open", "ejected")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    RPS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_FIELD_NUMBER: _ClassVar[int]
    BREAKER_OPEN_FIELD_NUMBER: _ClassVar[int]
    EJECTED_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    agent_id: str
    in_flight: float
    rps: float
    latency_p50: _duration_pb2.Duration
    latency_p99: _duration_pb2.Duration
    breaker_open: bool
    ejected: bool
    def __init__(self, instance_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., in_flight: _Optional[float] = ..., rps: _Optional[float] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., breaker_open: _Optional[bool] = ..., ejected: _Optional[bool] = ...) -> None: ...

class ReportLoadResponse(_message.Message):
    __slots__ = ("ttl",)
    TTL_FIELD_NUMBER: _ClassVar[int]
    ttl: _duration_pb2.Duration
    def __init__(self, ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("namespace", "kinds", "start_revision", "include_initial")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    START_REVISION_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INITIAL_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    kinds: _containers.RepeatedScalarFieldContainer[ResourceKind]
    start_revision: int
    include_initial: bool
    def __init__(self, namespace: _Optional[str] = ..., kinds: _Optional[_Iterable[_Union[ResourceKind, str]]] = ..., start_revision: _Optional[int] = ..., include_initial: _Optional[bool] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("type", "kind", "agent", "instance", "revision", "namespace", "id", "rate_limit")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    type: WatchEventType
    kind: ResourceKind
    agent: Agent
    instance: Instance
    revision: int
    namespace: str
    id: str
    rate_limit: _ratelimit_pb2.RateLimit
    def __init__(self, type: _Optional[_Union[WatchEventType, str]] = ..., kind: _Optional[_Union[ResourceKind, str]] = ..., agent: _Optional[_Union[Agent, _Mapping]] = ..., instance: _Optional[_Union[Instance, _Mapping]] = ..., revision: _Optional[int] = ..., namespace: _Optional[str] = ..., id: _Optional[str] = ..., rate_limit: _Optional[_Union[_ratelimit_pb2.RateLimit, _Mapping]] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("events", "revision")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[WatchEvent]
    revision: int
    def __init__(self, events: _Optional[_Iterable[_Union[WatchEvent, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...
