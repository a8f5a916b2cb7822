"""Pure validation of what callers send the registry: durations, resource
quantities, probes, routing policies, instances and lease TTLs.

Every check raises `InvalidArgument` whose `field` is the dotted path of the
offending input (``instance.endpoint``, ``agent.resources.cpu``,
``agent.probes.readiness.period``) and whose message names that field and
says what is valid, e.g.::

    agent.resources.cpu: "lots" is not a CPU quantity (e.g. "500m", "0.5" or "2")

Nothing here touches etcd or the network, so the CLI (manifests) and the
services share one definition of "valid". Names, labels and versions are the
SDK's rules (`sutradhar._names`, `sutradhar._labels`, `sutradhar._semver`);
a whole agent is checked by `services.registry.agent_validation`, its
runtime's config by the runtime's schema
(`services.scheduler.runtimes.config_schemas`). The resolved-defaults helpers
(`resolve_ttl`, `parse_cpu`, `parse_memory`) give the numbers other services
act on; a probe's defaults are resolved by `services.common.probing`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Final

import grpc
from google.protobuf import duration_pb2

from sutradhar._fields import field_error, one_of, quote
from sutradhar._labels import validate_label_name, validate_labels
from sutradhar._names import validate_dns_label, validate_instance_id, validate_namespace
from sutradhar._ratelimit_spec import bucket_numbers
from sutradhar._routing.backend import IN_PROCESS_ENDPOINT
from sutradhar._semver import parse_version
from sutradhar._strategy_names import STRATEGIES
from sutradhar.services.common.config_fields import check_http_url
from sutradhar.v1 import probe_pb2, registry_pb2, routing_pb2

__all__ = [
    "DEFAULT_TTL",
    "MAX_TTL",
    "MIN_TTL",
    "PROBE_KINDS",
    "cpu_quantity",
    "memory_quantity",
    "parse_cpu",
    "parse_memory",
    "resolve_ttl",
    "validate_instance",
    "validate_probe",
    "validate_routing",
    "validate_state",
]

PROBE_KINDS: Final = ("grpc", "http", "tcp")

MAX_ENDPOINT_CHARS: Final = 2048

DEFAULT_TTL: Final = timedelta(seconds=10)
MIN_TTL: Final = timedelta(seconds=2)
MAX_TTL: Final = timedelta(seconds=300)

MIN_CPU: Final = Decimal("0.001")
MAX_CPU: Final = Decimal(64)
MIN_MEMORY: Final = 4 * 1024**2
MAX_MEMORY: Final = 1024**4

_MAX_DURATION = timedelta(hours=1)
_MIN_PERIOD = timedelta(milliseconds=100)
_MAX_PROBE_TIMEOUT = timedelta(seconds=60)
_MAX_THRESHOLD = 1000
_MAX_ATTEMPTS = 10
_MAX_WEIGHT = 1000

_CPU_RE = re.compile(r"^(?P<num>[0-9]+(\.[0-9]+)?|\.[0-9]+)(?P<unit>m?)$")
_MEMORY_RE = re.compile(r"^(?P<num>[0-9]+(\.[0-9]+)?)(?P<unit>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_MEMORY_UNITS: Final = {
    "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_GRPC_CODES: Final = frozenset(code.name for code in grpc.StatusCode if code is not grpc.StatusCode.OK)


# -- durations and quantities -------------------------------------------------


def _duration(d: duration_pb2.Duration, field: str, *, maximum: timedelta = _MAX_DURATION) -> timedelta:
    if d.seconds < 0 or d.nanos < 0:
        raise field_error(field, "must not be negative")
    if d.nanos >= 1_000_000_000:
        raise field_error(field, "nanos must be below 1e9")
    if d.seconds > maximum.total_seconds():  # before timedelta(), which overflows past ~2.7e8 years
        raise field_error(field, f"{d.seconds}s is too long (at most {maximum.total_seconds():g}s)")
    value = timedelta(seconds=d.seconds, microseconds=d.nanos // 1000)
    if value > maximum:
        raise field_error(field, f"{value.total_seconds():g}s is too long (at most {maximum.total_seconds():g}s)")
    return value


def cpu_quantity(text: str, *, field: str = "resources.cpu") -> Decimal:
    """Cores in a Kubernetes CPU quantity ("500m" -> 0.5, "2" -> 2, "0" -> 0), unbounded."""
    m = _CPU_RE.fullmatch(text or "")
    if m is None:
        raise field_error(field, f"{quote(text)} is not a CPU quantity (e.g. \"500m\", \"0.5\" or \"2\")")
    try:
        cores = Decimal(m.group("num"))
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        raise field_error(field, f"{quote(text)} is not a CPU quantity") from None
    if m.group("unit") == "m":
        cores /= 1000
    return cores


def parse_cpu(text: str, *, field: str = "resources.cpu") -> Decimal:
    """Cores in a Kubernetes CPU quantity ("500m" -> 0.5, "2" -> 2); 0 < cpu <= 64."""
    cores = cpu_quantity(text, field=field)
    if cores < MIN_CPU:
        raise field_error(field, f"{quote(text)} must be more than 0 (at least \"1m\")")
    if cores > MAX_CPU:
        raise field_error(field, f"{quote(text)} is more than {MAX_CPU} cores")
    return cores


def memory_quantity(text: str, *, field: str = "resources.memory") -> int:
    """Bytes in a Kubernetes memory quantity ("256Mi", "1Gi", "1000000", "0"), unbounded."""
    m = _MEMORY_RE.fullmatch(text or "")
    if m is None:
        raise field_error(field, f"{quote(text)} is not a memory quantity (e.g. \"256Mi\", \"1Gi\" or \"1000000\")")
    return int(Decimal(m.group("num")) * _MEMORY_UNITS[m.group("unit") or ""])


def parse_memory(text: str, *, field: str = "resources.memory") -> int:
    """Bytes in a Kubernetes memory quantity ("256Mi", "1Gi", "1000000"); 4Mi <= memory <= 1Ti."""
    size = memory_quantity(text, field=field)
    if size < MIN_MEMORY:
        raise field_error(field, f"{quote(text)} is less than the minimum 4Mi")
    if size > MAX_MEMORY:
        raise field_error(field, f"{quote(text)} is more than the maximum 1Ti")
    return size


# -- probes and routing -------------------------------------------------------


def _threshold(value: int, field: str) -> None:
    if not 0 <= value <= _MAX_THRESHOLD:
        raise field_error(field, f"{value} is out of range (0-{_MAX_THRESHOLD}; 0 means the default)")


def validate_probe(spec: probe_pb2.ProbeSpec, field: str, *, liveness: bool) -> None:
    """Check a readiness or liveness probe spec; unset fields mean the defaults."""
    if spec.kind and spec.kind not in PROBE_KINDS:
        raise field_error(
            f"{field}.kind", f"{quote(spec.kind)} is not a probe kind (valid: {one_of(PROBE_KINDS)} or empty)"
        )
    if len(spec.grpc_service) > 256:
        raise field_error(f"{field}.grpc_service", "is longer than 256 characters")
    if spec.http_path and (not spec.http_path.startswith("/") or len(spec.http_path) > 1024
                           or any(ch.isspace() for ch in spec.http_path)):
        raise field_error(f"{field}.http_path", f"{quote(spec.http_path)} is not an absolute path (e.g. /health)")
    _duration(spec.initial_delay, f"{field}.initial_delay")
    period = _duration(spec.period, f"{field}.period")
    if period and period < _MIN_PERIOD:
        raise field_error(f"{field}.period", f"{period.total_seconds():g}s is too short (at least 0.1s; 0 means 10s)")
    _duration(spec.timeout, f"{field}.timeout", maximum=_MAX_PROBE_TIMEOUT)
    _threshold(spec.failure_threshold, f"{field}.failure_threshold")
    _threshold(spec.success_threshold, f"{field}.success_threshold")
    if liveness and spec.success_threshold not in (0, 1):
        raise field_error(
            f"{field}.success_threshold",
            f"{spec.success_threshold} is not allowed: a liveness probe's success_threshold must be 1 (or 0)",
        )


def validate_routing(policy: routing_pb2.RoutingPolicy, field: str) -> None:
    """Check an agent's routing policy; unset fields mean the defaults."""
    if policy.strategy and policy.strategy not in STRATEGIES:
        raise field_error(
            f"{field}.strategy",
            f"{quote(policy.strategy)} is not a routing strategy (valid: {one_of(STRATEGIES)})",
        )
    if not 0 <= policy.weight <= _MAX_WEIGHT:
        raise field_error(f"{field}.weight", f"{policy.weight} is out of range (0-{_MAX_WEIGHT}; 0 means 100)")
    _duration(policy.default_timeout, f"{field}.default_timeout")
    if policy.HasField("rate_limit"):
        bucket_numbers(policy.rate_limit, field=f"{field}.rate_limit")

    cb = policy.circuit_breaker
    _threshold(cb.consecutive_failures, f"{field}.circuit_breaker.consecutive_failures")
    _duration(cb.timeout, f"{field}.circuit_breaker.timeout")
    _threshold(cb.max_requests, f"{field}.circuit_breaker.max_requests")

    od = policy.outlier_detection
    _threshold(od.consecutive_failures, f"{field}.outlier_detection.consecutive_failures")
    base = _duration(od.base_ejection_time, f"{field}.outlier_detection.base_ejection_time")
    cap = _duration(od.max_ejection_time, f"{field}.outlier_detection.max_ejection_time")
    if base and cap and cap < base:
        raise field_error(f"{field}.outlier_detection.max_ejection_time", "must not be shorter than base_ejection_time")
    if not 0 <= od.max_ejection_percent <= 100:
        raise field_error(
            f"{field}.outlier_detection.max_ejection_percent", f"{od.max_ejection_percent} is not a percentage (0-100)"
        )

    retry = policy.retry
    if not 0 <= retry.max_attempts <= _MAX_ATTEMPTS:
        raise field_error(f"{field}.retry.max_attempts", f"{retry.max_attempts} is out of range (0-{_MAX_ATTEMPTS})")
    initial = _duration(retry.initial_backoff, f"{field}.retry.initial_backoff")
    maximum = _duration(retry.max_backoff, f"{field}.retry.max_backoff")
    if initial and maximum and maximum < initial:
        raise field_error(f"{field}.retry.max_backoff", "must not be shorter than initial_backoff")
    if retry.backoff_multiplier != 0 and not 1 <= retry.backoff_multiplier <= 100:
        raise field_error(
            f"{field}.retry.backoff_multiplier", f"{retry.backoff_multiplier:g} is out of range (1-100; 0 means 2)"
        )
    for i, code in enumerate(retry.retryable_status_codes):
        if code not in _GRPC_CODES:
            raise field_error(
                f"{field}.retry.retryable_status_codes[{i}]",
                f"{quote(code)} is not a gRPC status code name (e.g. UNAVAILABLE, RESOURCE_EXHAUSTED)",
            )
    if not 0 <= retry.budget_percent <= 100:
        raise field_error(f"{field}.retry.budget_percent", f"{retry.budget_percent:g} is not a percentage (0-100)")
    if not 0 <= retry.min_retries_per_second <= 10_000:
        raise field_error(
            f"{field}.retry.min_retries_per_second", f"{retry.min_retries_per_second} is out of range (0-10000)"
        )

    hedging = policy.hedging
    for i, task_type in enumerate(hedging.task_types):
        validate_label_name(task_type, field=f"{field}.hedging.task_types[{i}]", what="task type")
    _duration(hedging.delay, f"{field}.hedging.delay")
    if not 0 <= hedging.max_attempts <= _MAX_ATTEMPTS:
        raise field_error(
            f"{field}.hedging.max_attempts", f"{hedging.max_attempts} is out of range (0-{_MAX_ATTEMPTS})"
        )


# -- whole objects ------------------------------------------------------------


def resolve_ttl(ttl: duration_pb2.Duration | None, *, field: str = "ttl") -> timedelta:
    """The lease TTL a RegisterInstance request asks for: default 10s, 2s..300s."""
    if ttl is None or (ttl.seconds == 0 and ttl.nanos == 0):
        return DEFAULT_TTL
    value = _duration(ttl, field, maximum=timedelta(days=1))
    if not MIN_TTL <= value <= MAX_TTL:
        raise field_error(field, f"{value.total_seconds():g}s is out of range (2s-300s; unset means 10s)")
    return value


def _endpoint(endpoint: str, runtime: str, field: str) -> None:
    if not endpoint:
        raise field_error(field, 'endpoint is required ("host:port", an http(s) URL, or "in-process")')
    if len(endpoint) > MAX_ENDPOINT_CHARS:
        raise field_error(field, f"is longer than {MAX_ENDPOINT_CHARS} characters")
    if endpoint == IN_PROCESS_ENDPOINT:
        return
    if "://" in endpoint:
        check_http_url(endpoint, field)
        return
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535 or any(c.isspace() for c in host):
        raise field_error(
            field,
            f'{quote(endpoint)} is not an endpoint (expected "host:port" e.g. 127.0.0.1:50060, '
            'an http(s) URL, or "in-process")',
        )


def validate_instance(instance: registry_pb2.Instance, *, field: str = "instance") -> None:
    """Check RegisterInstance input. An empty id is allowed (one is generated);
    runtime, lease and output-only fields are set by the registry."""
    if instance.id:
        validate_instance_id(instance.id, field=f"{field}.id")
    validate_namespace(instance.namespace, field=f"{field}.namespace")
    validate_dns_label(instance.agent_id, field=f"{field}.agent_id", what="agent id")
    _endpoint(instance.endpoint, instance.runtime, f"{field}.endpoint")
    if instance.version:
        parse_version(instance.version, field=f"{field}.version")
    if instance.state not in registry_pb2.InstanceState.values():
        raise field_error(f"{field}.state", f"{instance.state} is not an InstanceState")
    validate_labels(dict(instance.labels), field=f"{field}.labels")


def validate_state(state: int, *, field: str = "state") -> None:
    """Check an InstanceState a caller sets (UNSPECIFIED is refused)."""
    if state not in registry_pb2.InstanceState.values() or state == registry_pb2.INSTANCE_STATE_UNSPECIFIED:
        names = ", ".join(n for n in registry_pb2.InstanceState.keys() if not n.endswith("UNSPECIFIED"))  # noqa: SIM118
        raise field_error(field, f"{state} is not a settable instance state (valid: {names})")
