import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProbeSpec(_message.Message):
    __slots__ = ("kind", "grpc_service", "http_path", "initial_delay", "period", "timeout", "failure_threshold", "success_threshold", "disabled")
    KIND_FIELD_NUMBER: _ClassVar[int]
    GRPC_SERVICE_FIELD_NUMBER: _ClassVar[int]
    HTTP_PATH_FIELD_NUMBER: _ClassVar[int]
    INITIAL_DELAY_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    kind: str
    grpc_service: str
    http_path: str
    initial_delay: _duration_pb2.Duration
    period: _duration_pb2.Duration
    timeout: _duration_pb2.Duration
    failure_threshold: int
    success_threshold: int
    disabled: bool
    def __init__(self, kind: _Optional[str] = ..., grpc_service: _Optional[str] = ..., http_path: _Optional[str] = ..., initial_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., failure_threshold: _Optional[int] = ..., success_threshold: _Optional[int] = ..., disabled: _Optional[bool] = ...) -> None: ...

class Probes(_message.Message):
    __slots__ = ("readiness", "liveness")
    READINESS_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    readiness: ProbeSpec
    liveness: ProbeSpec
    def __init__(self, readiness: _Optional[_Union[ProbeSpec, _Mapping]] = ..., liveness: _Optional[_Union[ProbeSpec, _Mapping]] = ...) -> None: ...
