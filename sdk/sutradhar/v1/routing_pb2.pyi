import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from sutradhar.v1 import ratelimit_pb2 as _ratelimit_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RoutingPolicy(_message.Message):
    __slots__ = ("strategy", "circuit_breaker", "outlier_detection", "retry", "default_timeout", "hedging", "weight", "rate_limit")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_BREAKER_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_DETECTION_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    HEDGING_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    circuit_breaker: CircuitBreakerPolicy
    outlier_detection: OutlierDetectionPolicy
    retry: RetryPolicy
    default_timeout: _duration_pb2.Duration
    hedging: HedgingPolicy
    weight: int
    rate_limit: _ratelimit_pb2.TokenBucket
    def __init__(self, strategy: _Optional[str] = ..., circuit_breaker: _Optional[_Union[CircuitBreakerPolicy, _Mapping]] = ..., outlier_detection: _Optional[_Union[OutlierDetectionPolicy, _Mapping]] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., default_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., hedging: _Optional[_Union[HedgingPolicy, _Mapping]] = ..., weight: _Optional[int] = ..., rate_limit: _Optional[_Union[_ratelimit_pb2.TokenBucket, _Mapping]] = ...) -> None: ...

class CircuitBreakerPolicy(_message.Message):
    __slots__ = ("consecutive_failures", "timeout", "max_requests", "disabled")
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    consecutive_failures: int
    timeout: _duration_pb2.Duration
    max_requests: int
    disabled: bool
    def __init__(self, consecutive_failures: _Optional[int] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_requests: _Optional[int] = ..., disabled: _Optional[bool] = ...) -> None: ...

class OutlierDetectionPolicy(_message.Message):
    __slots__ = ("consecutive_failures", "base_ejection_time", "max_ejection_time", "max_ejection_percent", "disabled")
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    BASE_EJECTION_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_EJECTION_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_EJECTION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    consecutive_failures: int
    base_ejection_time: _duration_pb2.Duration
    max_ejection_time: _duration_pb2.Duration
    max_ejection_percent: int
    disabled: bool
    def __init__(self, consecutive_failures: _Optional[int] = ..., base_ejection_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_ejection_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_ejection_percent: _Optional[int] = ..., disabled: _Optional[bool] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("max_attempts", "initial_backoff", "max_backoff", "backoff_multiplier", "retryable_status_codes", "budget_percent", "min_retries_per_second")
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_STATUS_CODES_FIELD_NUMBER: _ClassVar[int]
    BUDGET_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MIN_RETRIES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    initial_backoff: _duration_pb2.Duration
    max_backoff: _duration_pb2.Duration
    backoff_multiplier: float
    retryable_status_codes: _containers.RepeatedScalarFieldContainer[str]
    budget_percent: float
    min_retries_per_second: int
    def __init__(self, max_attempts: _Optional[int] = ..., initial_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., backoff_multiplier: _Optional[float] = ..., retryable_status_codes: _Optional[_Iterable[str]] = ..., budget_percent: _Optional[float] = ..., min_retries_per_second: _Optional[int] = ...) -> None: ...

class HedgingPolicy(_message.Message):
    __slots__ = ("task_types", "delay", "max_attempts")
    TASK_TYPES_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    task_types: _containers.RepeatedScalarFieldContainer[str]
    delay: _duration_pb2.Duration
    max_attempts: int
    def __init__(self, task_types: _Optional[_Iterable[str]] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_attempts: _Optional[int] = ...) -> None: ...
