import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sutradhar.v1 import registry_pb2 as _registry_pb2
from sutradhar.v1 import secrets_pb2 as _secrets_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConditionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONDITION_STATUS_UNSPECIFIED: _ClassVar[ConditionStatus]
    CONDITION_STATUS_TRUE: _ClassVar[ConditionStatus]
    CONDITION_STATUS_FALSE: _ClassVar[ConditionStatus]

class ReplicaPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPLICA_PHASE_UNSPECIFIED: _ClassVar[ReplicaPhase]
    REPLICA_PHASE_STARTING: _ClassVar[ReplicaPhase]
    REPLICA_PHASE_RUNNING: _ClassVar[ReplicaPhase]
    REPLICA_PHASE_BACK_OFF: _ClassVar[ReplicaPhase]
    REPLICA_PHASE_FAILED: _ClassVar[ReplicaPhase]
    REPLICA_PHASE_TERMINATING: _ClassVar[ReplicaPhase]

class DeploymentEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPLOYMENT_EVENT_TYPE_UNSPECIFIED: _ClassVar[DeploymentEventType]
    DEPLOYMENT_EVENT_TYPE_PUT: _ClassVar[DeploymentEventType]
    DEPLOYMENT_EVENT_TYPE_DELETE: _ClassVar[DeploymentEventType]
CONDITION_STATUS_UNSPECIFIED: ConditionStatus
CONDITION_STATUS_TRUE: ConditionStatus
CONDITION_STATUS_FALSE: ConditionStatus
REPLICA_PHASE_UNSPECIFIED: ReplicaPhase
REPLICA_PHASE_STARTING: ReplicaPhase
REPLICA_PHASE_RUNNING: ReplicaPhase
REPLICA_PHASE_BACK_OFF: ReplicaPhase
REPLICA_PHASE_FAILED: ReplicaPhase
REPLICA_PHASE_TERMINATING: ReplicaPhase
DEPLOYMENT_EVENT_TYPE_UNSPECIFIED: DeploymentEventType
DEPLOYMENT_EVENT_TYPE_PUT: DeploymentEventType
DEPLOYMENT_EVENT_TYPE_DELETE: DeploymentEventType

class Deployment(_message.Message):
    __slots__ = ("name", "namespace", "spec", "status", "create_time", "update_time", "resource_version", "generation", "delete_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    DELETE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    spec: DeploymentSpec
    status: DeploymentStatus
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    resource_version: int
    generation: int
    delete_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ..., spec: _Optional[_Union[DeploymentSpec, _Mapping]] = ..., status: _Optional[_Union[DeploymentStatus, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resource_version: _Optional[int] = ..., generation: _Optional[int] = ..., delete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeploymentSpec(_message.Message):
    __slots__ = ("agent_id", "replicas", "resources", "autoscale", "strategy", "paused", "env", "labels", "env_vars", "files")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    AUTOSCALE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ENV_VARS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    replicas: int
    resources: _registry_pb2.Resources
    autoscale: AutoscalePolicy
    strategy: DeploymentStrategy
    paused: bool
    env: _containers.ScalarMap[str, str]
    labels: _containers.ScalarMap[str, str]
    env_vars: _containers.RepeatedCompositeFieldContainer[_secrets_pb2.EnvVar]
    files: _containers.RepeatedCompositeFieldContainer[_secrets_pb2.FileMount]
    def __init__(self, agent_id: _Optional[str] = ..., replicas: _Optional[int] = ..., resources: _Optional[_Union[_registry_pb2.Resources, _Mapping]] = ..., autoscale: _Optional[_Union[AutoscalePolicy, _Mapping]] = ..., strategy: _Optional[_Union[DeploymentStrategy, _Mapping]] = ..., paused: _Optional[bool] = ..., env: _Optional[_Mapping[str, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., env_vars: _Optional[_Iterable[_Union[_secrets_pb2.EnvVar, _Mapping]]] = ..., files: _Optional[_Iterable[_Union[_secrets_pb2.FileMount, _Mapping]]] = ...) -> None: ...

class AutoscalePolicy(_message.Message):
    __slots__ = ("min_replicas", "max_replicas", "target_in_flight", "scale_up_window", "scale_down_window", "tolerance")
    MIN_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    TARGET_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    SCALE_UP_WINDOW_FIELD_NUMBER: _ClassVar[int]
    SCALE_DOWN_WINDOW_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    min_replicas: int
    max_replicas: int
    target_in_flight: float
    scale_up_window: _duration_pb2.Duration
    scale_down_window: _duration_pb2.Duration
    tolerance: float
    def __init__(self, min_replicas: _Optional[int] = ..., max_replicas: _Optional[int] = ..., target_in_flight: _Optional[float] = ..., scale_up_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., scale_down_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., tolerance: _Optional[float] = ...) -> None: ...

class DeploymentStrategy(_message.Message):
    __slots__ = ("max_surge", "max_unavailable")
    MAX_SURGE_FIELD_NUMBER: _ClassVar[int]
    MAX_UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    max_surge: str
    max_unavailable: str
    def __init__(self, max_surge: _Optional[str] = ..., max_unavailable: _Optional[str] = ...) -> None: ...

class DeploymentStatus(_message.Message):
    __slots__ = ("observed_generation", "desired_replicas", "replicas", "ready_replicas", "updated_replicas", "available_replicas", "current_revision", "current_version", "conditions", "events", "replica_statuses", "revisions", "autoscale")
    OBSERVED_GENERATION_FIELD_NUMBER: _ClassVar[int]
    DESIRED_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    READY_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_REVISION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_STATUSES_FIELD_NUMBER: _ClassVar[int]
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    AUTOSCALE_FIELD_NUMBER: _ClassVar[int]
    observed_generation: int
    desired_replicas: int
    replicas: int
    ready_replicas: int
    updated_replicas: int
    available_replicas: int
    current_revision: str
    current_version: str
    conditions: _containers.RepeatedCompositeFieldContainer[DeploymentCondition]
    events: _containers.RepeatedCompositeFieldContainer[DeploymentEvent]
    replica_statuses: _containers.RepeatedCompositeFieldContainer[ReplicaStatus]
    revisions: _containers.RepeatedCompositeFieldContainer[RevisionRecord]
    autoscale: AutoscaleStatus
    def __init__(self, observed_generation: _Optional[int] = ..., desired_replicas: _Optional[int] = ..., replicas: _Optional[int] = ..., ready_replicas: _Optional[int] = ..., updated_replicas: _Optional[int] = ..., available_replicas: _Optional[int] = ..., current_revision: _Optional[str] = ..., current_version: _Optional[str] = ..., conditions: _Optional[_Iterable[_Union[DeploymentCondition, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[DeploymentEvent, _Mapping]]] = ..., replica_statuses: _Optional[_Iterable[_Union[ReplicaStatus, _Mapping]]] = ..., revisions: _Optional[_Iterable[_Union[RevisionRecord, _Mapping]]] = ..., autoscale: _Optional[_Union[AutoscaleStatus, _Mapping]] = ...) -> None: ...

class DeploymentCondition(_message.Message):
    __slots__ = ("type", "status", "reason", "message", "last_transition_time")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    type: str
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: _timestamp_pb2.Timestamp
    def __init__(self, type: _Optional[str] = ..., status: _Optional[_Union[ConditionStatus, str]] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., last_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeploymentEvent(_message.Message):
    __slots__ = ("time", "reason", "message", "replica")
    TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    reason: str
    message: str
    replica: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., replica: _Optional[str] = ...) -> None: ...

class ReplicaStatus(_message.Message):
    __slots__ = ("id", "revision", "phase", "endpoint", "native_id", "restarts", "message", "start_time", "back_off_until", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    NATIVE_ID_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    BACK_OFF_UNTIL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    revision: str
    phase: ReplicaPhase
    endpoint: str
    native_id: str
    restarts: int
    message: str
    start_time: _timestamp_pb2.Timestamp
    back_off_until: _timestamp_pb2.Timestamp
    version: str
    def __init__(self, id: _Optional[str] = ..., revision: _Optional[str] = ..., phase: _Optional[_Union[ReplicaPhase, str]] = ..., endpoint: _Optional[str] = ..., native_id: _Optional[str] = ..., restarts: _Optional[int] = ..., message: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., back_off_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[str] = ...) -> None: ...

class RevisionRecord(_message.Message):
    __slots__ = ("revision", "version", "agent", "create_time")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    revision: str
    version: str
    agent: _registry_pb2.Agent
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, revision: _Optional[str] = ..., version: _Optional[str] = ..., agent: _Optional[_Union[_registry_pb2.Agent, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AutoscaleStatus(_message.Message):
    __slots__ = ("current_in_flight", "recommended_replicas", "last_scale_time")
    CURRENT_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    LAST_SCALE_TIME_FIELD_NUMBER: _ClassVar[int]
    current_in_flight: float
    recommended_replicas: int
    last_scale_time: _timestamp_pb2.Timestamp
    def __init__(self, current_in_flight: _Optional[float] = ..., recommended_replicas: _Optional[int] = ..., last_scale_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateDeploymentRequest(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class CreateDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class ApplyDeploymentRequest(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class ApplyDeploymentResponse(_message.Message):
    __slots__ = ("deployment", "created")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    created: bool
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetDeploymentRequest(_message.Message):
    __slots__ = ("namespace", "name")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("deployments", "revision")
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[Deployment]
    revision: int
    def __init__(self, deployments: _Optional[_Iterable[_Union[Deployment, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class UpdateDeploymentRequest(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class UpdateDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class ScaleDeploymentRequest(_message.Message):
    __slots__ = ("namespace", "name", "replicas")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    replicas: int
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., replicas: _Optional[int] = ...) -> None: ...

class ScaleDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class DeleteDeploymentRequest(_message.Message):
    __slots__ = ("namespace", "name", "wait")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    wait: bool
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class DeleteDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class WatchDeploymentsRequest(_message.Message):
    __slots__ = ("namespace", "name", "include_initial")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INITIAL_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    include_initial: bool
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., include_initial: _Optional[bool] = ...) -> None: ...

class WatchDeploymentsResponse(_message.Message):
    __slots__ = ("type", "deployment", "revision")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    type: DeploymentEventType
    deployment: Deployment
    revision: int
    def __init__(self, type: _Optional[_Union[DeploymentEventType, str]] = ..., deployment: _Optional[_Union[Deployment, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class PauseRolloutRequest(_message.Message):
    __slots__ = ("namespace", "name")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class PauseRolloutResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class ResumeRolloutRequest(_message.Message):
    __slots__ = ("namespace", "name")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ResumeRolloutResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class UndoRolloutRequest(_message.Message):
    __slots__ = ("namespace", "name", "to_revision")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TO_REVISION_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    to_revision: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., to_revision: _Optional[str] = ...) -> None: ...

class UndoRolloutResponse(_message.Message):
    __slots__ = ("deployment", "agent")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    agent: _registry_pb2.Agent
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ..., agent: _Optional[_Union[_registry_pb2.Agent, _Mapping]] = ...) -> None: ...

class GetLogsRequest(_message.Message):
    __slots__ = ("namespace", "name", "replica", "tail", "follow")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    replica: str
    tail: int
    follow: bool
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., replica: _Optional[str] = ..., tail: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class GetLogsResponse(_message.Message):
    __slots__ = ("replica", "line")
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    replica: str
    line: str
    def __init__(self, replica: _Optional[str] = ..., line: _Optional[str] = ...) -> None: ...
