import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from sutradhar.v1 import agent_pb2 as _agent_pb2
from sutradhar.v1 import ratelimit_pb2 as _ratelimit_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_STATE_UNSPECIFIED: _ClassVar[BreakerState]
    BREAKER_STATE_CLOSED: _ClassVar[BreakerState]
    BREAKER_STATE_OPEN: _ClassVar[BreakerState]
    BREAKER_STATE_HALF_OPEN: _ClassVar[BreakerState]
BREAKER_STATE_UNSPECIFIED: BreakerState
BREAKER_STATE_CLOSED: BreakerState
BREAKER_STATE_OPEN: BreakerState
BREAKER_STATE_HALF_OPEN: BreakerState

class Selector(_message.Message):
    __slots__ = ("namespace", "agent_type", "version_range", "capabilities", "label_selector", "agent_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AGENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_RANGE_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    agent_type: str
    version_range: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    label_selector: str
    agent_id: str
    def __init__(self, namespace: _Optional[str] = ..., agent_type: _Optional[str] = ..., version_range: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., label_selector: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class RouteOptions(_message.Message):
    __slots__ = ("strategy", "max_attempts", "timeout")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    max_attempts: int
    timeout: _duration_pb2.Duration
    def __init__(self, strategy: _Optional[str] = ..., max_attempts: _Optional[int] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RouterServiceExecuteRequest(_message.Message):
    __slots__ = ("task", "selector", "options")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    task: _agent_pb2.Task
    selector: Selector
    options: RouteOptions
    def __init__(self, task: _Optional[_Union[_agent_pb2.Task, _Mapping]] = ..., selector: _Optional[_Union[Selector, _Mapping]] = ..., options: _Optional[_Union[RouteOptions, _Mapping]] = ...) -> None: ...

class RouterServiceExecuteResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: _agent_pb2.Result
    def __init__(self, result: _Optional[_Union[_agent_pb2.Result, _Mapping]] = ...) -> None: ...

class RouterServiceExecuteStreamRequest(_message.Message):
    __slots__ = ("task", "selector", "options")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    task: _agent_pb2.Task
    selector: Selector
    options: RouteOptions
    def __init__(self, task: _Optional[_Union[_agent_pb2.Task, _Mapping]] = ..., selector: _Optional[_Union[Selector, _Mapping]] = ..., options: _Optional[_Union[RouteOptions, _Mapping]] = ...) -> None: ...

class RouterServiceExecuteStreamResponse(_message.Message):
    __slots__ = ("progress", "partial", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _agent_pb2.Progress
    partial: _struct_pb2.Value
    result: _agent_pb2.Result
    def __init__(self, progress: _Optional[_Union[_agent_pb2.Progress, _Mapping]] = ..., partial: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., result: _Optional[_Union[_agent_pb2.Result, _Mapping]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("namespace", "agent_type")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AGENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    agent_type: str
    def __init__(self, namespace: _Optional[str] = ..., agent_type: _Optional[str] = ...) -> None: ...

class InstanceStats(_message.Message):
    __slots__ = ("namespace", "instance_id", "agent_id", "agent_type", "version", "endpoint", "in_flight", "requests", "errors", "latency_p50", "latency_p99", "breaker", "ejected", "ejections", "state", "rps", "routers", "direct")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_FIELD_NUMBER: _ClassVar[int]
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    EJECTED_FIELD_NUMBER: _ClassVar[int]
    EJECTIONS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RPS_FIELD_NUMBER: _ClassVar[int]
    ROUTERS_FIELD_NUMBER: _ClassVar[int]
    DIRECT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    instance_id: str
    agent_id: str
    agent_type: str
    version: str
    endpoint: str
    in_flight: int
    requests: int
    errors: int
    latency_p50: _duration_pb2.Duration
    latency_p99: _duration_pb2.Duration
    breaker: BreakerState
    ejected: bool
    ejections: int
    state: str
    rps: float
    routers: ReportedLoad
    direct: ReportedLoad
    def __init__(self, namespace: _Optional[str] = ..., instance_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., agent_type: _Optional[str] = ..., version: _Optional[str] = ..., endpoint: _Optional[str] = ..., in_flight: _Optional[int] = ..., requests: _Optional[int] = ..., errors: _Optional[int] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., breaker: _Optional[_Union[BreakerState, str]] = ..., ejected: _Optional[bool] = ..., ejections: _Optional[int] = ..., state: _Optional[str] = ..., rps: _Optional[float] = ..., routers: _Optional[_Union[ReportedLoad, _Mapping]] = ..., direct: _Optional[_Union[ReportedLoad, _Mapping]] = ...) -> None: ...

class ReportedLoad(_message.Message):
    __slots__ = ("reporters", "in_flight", "rps", "latency_p50", "latency_p99", "breakers_open", "ejecting")
    REPORTERS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    RPS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_FIELD_NUMBER: _ClassVar[int]
    BREAKERS_OPEN_FIELD_NUMBER: _ClassVar[int]
    EJECTING_FIELD_NUMBER: _ClassVar[int]
    reporters: int
    in_flight: float
    rps: float
    latency_p50: _duration_pb2.Duration
    latency_p99: _duration_pb2.Duration
    breakers_open: int
    ejecting: int
    def __init__(self, reporters: _Optional[int] = ..., in_flight: _Optional[float] = ..., rps: _Optional[float] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., breakers_open: _Optional[int] = ..., ejecting: _Optional[int] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("instances", "router_id", "buckets", "reported_load_error")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    ROUTER_ID_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    REPORTED_LOAD_ERROR_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[InstanceStats]
    router_id: str
    buckets: _containers.RepeatedCompositeFieldContainer[BucketStats]
    reported_load_error: str
    def __init__(self, instances: _Optional[_Iterable[_Union[InstanceStats, _Mapping]]] = ..., router_id: _Optional[str] = ..., buckets: _Optional[_Iterable[_Union[BucketStats, _Mapping]]] = ..., reported_load_error: _Optional[str] = ...) -> None: ...

class BucketStats(_message.Message):
    __slots__ = ("level", "namespace", "name", "caller", "tokens", "bucket", "allowed", "refused", "shared", "routers")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    ROUTERS_FIELD_NUMBER: _ClassVar[int]
    level: _ratelimit_pb2.RateLimitLevel
    namespace: str
    name: str
    caller: str
    tokens: int
    bucket: _ratelimit_pb2.TokenBucket
    allowed: int
    refused: int
    shared: bool
    routers: int
    def __init__(self, level: _Optional[_Union[_ratelimit_pb2.RateLimitLevel, str]] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., caller: _Optional[str] = ..., tokens: _Optional[int] = ..., bucket: _Optional[_Union[_ratelimit_pb2.TokenBucket, _Mapping]] = ..., allowed: _Optional[int] = ..., refused: _Optional[int] = ..., shared: _Optional[bool] = ..., routers: _Optional[int] = ...) -> None: ...
