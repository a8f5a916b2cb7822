import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sutradhar.v1 import registry_pb2 as _registry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentHealthStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_HEALTH_STATUS_UNSPECIFIED: _ClassVar[AgentHealthStatus]
    AGENT_HEALTH_STATUS_HEALTHY: _ClassVar[AgentHealthStatus]
    AGENT_HEALTH_STATUS_DEGRADED: _ClassVar[AgentHealthStatus]
    AGENT_HEALTH_STATUS_UNHEALTHY: _ClassVar[AgentHealthStatus]

class HealthEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_EVENT_TYPE_UNSPECIFIED: _ClassVar[HealthEventType]
    HEALTH_EVENT_TYPE_CURRENT: _ClassVar[HealthEventType]
    HEALTH_EVENT_TYPE_SYNCED: _ClassVar[HealthEventType]
    HEALTH_EVENT_TYPE_INSTANCE_ADDED: _ClassVar[HealthEventType]
    HEALTH_EVENT_TYPE_INSTANCE_REMOVED: _ClassVar[HealthEventType]
    HEALTH_EVENT_TYPE_STATE_CHANGED: _ClassVar[HealthEventType]
    HEALTH_EVENT_TYPE_PROBE_FAILED: _ClassVar[HealthEventType]
    HEALTH_EVENT_TYPE_PROBE_PASSED: _ClassVar[HealthEventType]
    HEALTH_EVENT_TYPE_RESTART_REQUESTED: _ClassVar[HealthEventType]
    HEALTH_EVENT_TYPE_DRAINED: _ClassVar[HealthEventType]
    HEALTH_EVENT_TYPE_ENABLED: _ClassVar[HealthEventType]
AGENT_HEALTH_STATUS_UNSPECIFIED: AgentHealthStatus
AGENT_HEALTH_STATUS_HEALTHY: AgentHealthStatus
AGENT_HEALTH_STATUS_DEGRADED: AgentHealthStatus
AGENT_HEALTH_STATUS_UNHEALTHY: AgentHealthStatus
HEALTH_EVENT_TYPE_UNSPECIFIED: HealthEventType
HEALTH_EVENT_TYPE_CURRENT: HealthEventType
HEALTH_EVENT_TYPE_SYNCED: HealthEventType
HEALTH_EVENT_TYPE_INSTANCE_ADDED: HealthEventType
HEALTH_EVENT_TYPE_INSTANCE_REMOVED: HealthEventType
HEALTH_EVENT_TYPE_STATE_CHANGED: HealthEventType
HEALTH_EVENT_TYPE_PROBE_FAILED: HealthEventType
HEALTH_EVENT_TYPE_PROBE_PASSED: HealthEventType
HEALTH_EVENT_TYPE_RESTART_REQUESTED: HealthEventType
HEALTH_EVENT_TYPE_DRAINED: HealthEventType
HEALTH_EVENT_TYPE_ENABLED: HealthEventType

class AgentHealth(_message.Message):
    __slots__ = ("namespace", "agent_id", "status", "total", "serving", "not_serving", "draining", "unknown", "restart_requested", "instances")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    NOT_SERVING_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    RESTART_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    agent_id: str
    status: AgentHealthStatus
    total: int
    serving: int
    not_serving: int
    draining: int
    unknown: int
    restart_requested: int
    instances: _containers.RepeatedCompositeFieldContainer[_registry_pb2.Instance]
    def __init__(self, namespace: _Optional[str] = ..., agent_id: _Optional[str] = ..., status: _Optional[_Union[AgentHealthStatus, str]] = ..., total: _Optional[int] = ..., serving: _Optional[int] = ..., not_serving: _Optional[int] = ..., draining: _Optional[int] = ..., unknown: _Optional[int] = ..., restart_requested: _Optional[int] = ..., instances: _Optional[_Iterable[_Union[_registry_pb2.Instance, _Mapping]]] = ...) -> None: ...

class GetAgentHealthRequest(_message.Message):
    __slots__ = ("namespace", "agent_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    agent_id: str
    def __init__(self, namespace: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class GetAgentHealthResponse(_message.Message):
    __slots__ = ("health",)
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    health: AgentHealth
    def __init__(self, health: _Optional[_Union[AgentHealth, _Mapping]] = ...) -> None: ...

class ListAgentHealthRequest(_message.Message):
    __slots__ = ("namespace", "include_instances")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    include_instances: bool
    def __init__(self, namespace: _Optional[str] = ..., include_instances: _Optional[bool] = ...) -> None: ...

class ListAgentHealthResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentHealth]
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentHealth, _Mapping]]] = ...) -> None: ...

class GetInstanceHealthRequest(_message.Message):
    __slots__ = ("namespace", "instance_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    instance_id: str
    def __init__(self, namespace: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class GetInstanceHealthResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: _registry_pb2.Instance
    def __init__(self, instance: _Optional[_Union[_registry_pb2.Instance, _Mapping]] = ...) -> None: ...

class DrainInstanceRequest(_message.Message):
    __slots__ = ("namespace", "instance_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    instance_id: str
    def __init__(self, namespace: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class DrainInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: _registry_pb2.Instance
    def __init__(self, instance: _Optional[_Union[_registry_pb2.Instance, _Mapping]] = ...) -> None: ...

class EnableInstanceRequest(_message.Message):
    __slots__ = ("namespace", "instance_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    instance_id: str
    def __init__(self, namespace: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class EnableInstanceResponse(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: _registry_pb2.Instance
    def __init__(self, instance: _Optional[_Union[_registry_pb2.Instance, _Mapping]] = ...) -> None: ...

class HealthEvent(_message.Message):
    __slots__ = ("type", "namespace", "agent_id", "instance_id", "previous_state", "state", "probe", "message", "time", "instance", "revision")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    type: HealthEventType
    namespace: str
    agent_id: str
    instance_id: str
    previous_state: _registry_pb2.InstanceState
    state: _registry_pb2.InstanceState
    probe: str
    message: str
    time: _timestamp_pb2.Timestamp
    instance: _registry_pb2.Instance
    revision: int
    def __init__(self, type: _Optional[_Union[HealthEventType, str]] = ..., namespace: _Optional[str] = ..., agent_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., previous_state: _Optional[_Union[_registry_pb2.InstanceState, str]] = ..., state: _Optional[_Union[_registry_pb2.InstanceState, str]] = ..., probe: _Optional[str] = ..., message: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., instance: _Optional[_Union[_registry_pb2.Instance, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class WatchHealthRequest(_message.Message):
    __slots__ = ("namespace", "agent_id", "include_current")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CURRENT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    agent_id: str
    include_current: bool
    def __init__(self, namespace: _Optional[str] = ..., agent_id: _Optional[str] = ..., include_current: _Optional[bool] = ...) -> None: ...

class WatchHealthResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: HealthEvent
    def __init__(self, event: _Optional[_Union[HealthEvent, _Mapping]] = ...) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthMember(_message.Message):
    __slots__ = ("id", "address", "join_time", "instances")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    JOIN_TIME_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    join_time: _timestamp_pb2.Timestamp
    instances: int
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., join_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., instances: _Optional[int] = ...) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("members", "answered_by")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_BY_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[HealthMember]
    answered_by: str
    def __init__(self, members: _Optional[_Iterable[_Union[HealthMember, _Mapping]]] = ..., answered_by: _Optional[str] = ...) -> None: ...
