import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIT_STAGE_UNSPECIFIED: _ClassVar[AuditStage]
    AUDIT_STAGE_REQUEST_RECEIVED: _ClassVar[AuditStage]
    AUDIT_STAGE_RESPONSE_COMPLETE: _ClassVar[AuditStage]

class AuditDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIT_DECISION_UNSPECIFIED: _ClassVar[AuditDecision]
    AUDIT_DECISION_ALLOW: _ClassVar[AuditDecision]
    AUDIT_DECISION_DENY: _ClassVar[AuditDecision]
AUDIT_STAGE_UNSPECIFIED: AuditStage
AUDIT_STAGE_REQUEST_RECEIVED: AuditStage
AUDIT_STAGE_RESPONSE_COMPLETE: AuditStage
AUDIT_DECISION_UNSPECIFIED: AuditDecision
AUDIT_DECISION_ALLOW: AuditDecision
AUDIT_DECISION_DENY: AuditDecision

class AuditEvent(_message.Message):
    __slots__ = ("audit_id", "stage", "request_received_time", "stage_time", "principal", "peer", "source", "namespace", "verb", "resource", "name", "method", "decision", "reason", "status_code", "status_message", "request_id")
    AUDIT_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_RECEIVED_TIME_FIELD_NUMBER: _ClassVar[int]
    STAGE_TIME_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    VERB_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    audit_id: str
    stage: AuditStage
    request_received_time: _timestamp_pb2.Timestamp
    stage_time: _timestamp_pb2.Timestamp
    principal: str
    peer: str
    source: str
    namespace: str
    verb: str
    resource: str
    name: str
    method: str
    decision: AuditDecision
    reason: str
    status_code: str
    status_message: str
    request_id: str
    def __init__(self, audit_id: _Optional[str] = ..., stage: _Optional[_Union[AuditStage, str]] = ..., request_received_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stage_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., principal: _Optional[str] = ..., peer: _Optional[str] = ..., source: _Optional[str] = ..., namespace: _Optional[str] = ..., verb: _Optional[str] = ..., resource: _Optional[str] = ..., name: _Optional[str] = ..., method: _Optional[str] = ..., decision: _Optional[_Union[AuditDecision, str]] = ..., reason: _Optional[str] = ..., status_code: _Optional[str] = ..., status_message: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class AuditEventFilter(_message.Message):
    __slots__ = ("namespace", "principal", "verb", "resource", "decision", "since")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    VERB_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    principal: str
    verb: str
    resource: str
    decision: AuditDecision
    since: _timestamp_pb2.Timestamp
    def __init__(self, namespace: _Optional[str] = ..., principal: _Optional[str] = ..., verb: _Optional[str] = ..., resource: _Optional[str] = ..., decision: _Optional[_Union[AuditDecision, str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("filter", "page_size", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: AuditEventFilter
    page_size: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[AuditEventFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchAuditEventsRequest(_message.Message):
    __slots__ = ("filter", "include_initial")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INITIAL_FIELD_NUMBER: _ClassVar[int]
    filter: AuditEventFilter
    include_initial: bool
    def __init__(self, filter: _Optional[_Union[AuditEventFilter, _Mapping]] = ..., include_initial: _Optional[bool] = ...) -> None: ...

class WatchAuditEventsResponse(_message.Message):
    __slots__ = ("events", "synced")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    synced: bool
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., synced: _Optional[bool] = ...) -> None: ...
