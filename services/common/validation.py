"""Pure validation of what callers send the registry.

Every check raises `InvalidArgument` whose `field` is the dotted path of the
offending input (``agent.version``, ``agent.config.command``,
``agent.probes.readiness.period``) and whose message names that field and
says what is valid, e.g.::

    agent.version: "banana" is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. 1.4.0)

Nothing here touches etcd or the network, so the CLI (manifests) and the
services share one definition of "valid". The resolved-defaults helpers
(`resolve_ttl`, `parse_cpu`, `parse_memory`) give the numbers other services
act on; a probe's defaults are resolved by `services.common.probing`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import urlsplit

import grpc
from google.protobuf import duration_pb2, json_format

from sutradhar._errors import InvalidArgument
from sutradhar.services.common import semver
from sutradhar.services.common.labelselector import validate_label_name, validate_labels
from sutradhar.v1 import probe_pb2, registry_pb2, routing_pb2

__all__ = [
    "ALL_NAMESPACES",
    "DEFAULT_TTL",
    "MAX_CAPABILITIES",
    "MAX_CONFIG_BYTES",
    "MAX_DESCRIPTION_BYTES",
    "MAX_TTL",
    "MIN_TTL",
    "PROBE_KINDS",
    "RUNTIMES",
    "STRATEGIES",
    "check_process_limit",
    "is_dns_label",
    "parse_cpu",
    "parse_memory",
    "resolve_ttl",
    "validate_agent",
    "validate_dns_label",
    "validate_instance",
    "validate_instance_id",
    "validate_namespace",
    "validate_runtime_config",
    "validate_state",
]

RUNTIMES: Final = ("in-process", "process", "container", "http")
STRATEGIES: Final = ("round-robin", "random", "least-loaded", "latency", "weighted")
PROBE_KINDS: Final = ("grpc", "http", "tcp")
ALL_NAMESPACES: Final = "*"

MAX_DESCRIPTION_BYTES: Final = 4 * 1024
MAX_CONFIG_BYTES: Final = 64 * 1024
MAX_CAPABILITIES: Final = 64
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

_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PY_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
_CLASS_RE = re.compile(rf"^{_PY_DOTTED}:{_PY_DOTTED}$")
_CPU_RE = re.compile(r"^(?P<num>[0-9]+(\.[0-9]+)?|\.[0-9]+)(?P<unit>m?)$")
_MEMORY_RE = re.compile(r"^(?P<num>[0-9]+(\.[0-9]+)?)(?P<unit>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_MEMORY_UNITS: Final = {
    "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_GRPC_CODES: Final = frozenset(code.name for code in grpc.StatusCode if code is not grpc.StatusCode.OK)


def _bad(field: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {message}", field=field)


def _quote(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _one_of(values: tuple[str, ...]) -> str:
    return ", ".join(f'"{v}"' for v in values)


# -- names --------------------------------------------------------------------


def is_dns_label(text: str) -> bool:
    """True for a DNS-1123 label: lowercase letters, digits and '-', at most 63."""
    return isinstance(text, str) and 0 < len(text) <= 63 and bool(_DNS_LABEL_RE.match(text))


def validate_dns_label(text: str, *, field: str, what: str = "name") -> None:
    """Check a required DNS-1123 label."""
    if not text:
        raise _bad(field, f"{what} is required (a DNS-1123 label, e.g. my-agent)")
    if not is_dns_label(text):
        raise _bad(
            field,
            f"{_quote(text)} is not a valid {what} (a DNS-1123 label: at most 63 lowercase letters, "
            "digits and '-', starting and ending with a letter or digit)",
        )


def validate_namespace(namespace: str, *, field: str = "namespace", allow_all: bool = False) -> None:
    """Check a namespace: empty (meaning "default"), a DNS-1123 label, or "*" when `allow_all`."""
    if not namespace:
        return
    if allow_all and namespace == ALL_NAMESPACES:
        return
    if namespace == ALL_NAMESPACES:
        raise _bad(field, '"*" (all namespaces) is only allowed when listing or watching')
    validate_dns_label(namespace, field=field, what="namespace")


def validate_instance_id(text: str, *, field: str = "instance.id") -> None:
    """Check an instance id: a DNS-1123 subdomain (labels joined by '.'), at most 253."""
    if not text:
        raise _bad(field, "instance id is required")
    if len(text) > 253 or not _DNS_SUBDOMAIN_RE.match(text):
        raise _bad(
            field,
            f"{_quote(text)} is not a valid instance id (a DNS-1123 subdomain: lowercase letters, "
            "digits, '-' and '.', at most 253 characters)",
        )


# -- durations and quantities -------------------------------------------------


def _duration(d: duration_pb2.Duration, field: str, *, maximum: timedelta = _MAX_DURATION) -> timedelta:
    if d.seconds < 0 or d.nanos < 0:
        raise _bad(field, "must not be negative")
    if d.nanos >= 1_000_000_000:
        raise _bad(field, "nanos must be below 1e9")
    if d.seconds > maximum.total_seconds():  # before timedelta(), which overflows past ~2.7e8 years
        raise _bad(field, f"{d.seconds}s is too long (at most {maximum.total_seconds():g}s)")
    value = timedelta(seconds=d.seconds, microseconds=d.nanos // 1000)
    if value > maximum:
        raise _bad(field, f"{value.total_seconds():g}s is too long (at most {maximum.total_seconds():g}s)")
    return value


def parse_cpu(text: str, *, field: str = "resources.cpu") -> Decimal:
    """Cores in a Kubernetes CPU quantity ("500m" -> 0.5, "2" -> 2); 0 < cpu <= 64."""
    m = _CPU_RE.match(text or "")
    if m is None:
        raise _bad(field, f"{_quote(text)} is not a CPU quantity (e.g. \"500m\", \"0.5\" or \"2\")")
    try:
        cores = Decimal(m.group("num"))
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        raise _bad(field, f"{_quote(text)} is not a CPU quantity") from None
    if m.group("unit") == "m":
        cores /= 1000
    if cores < MIN_CPU:
        raise _bad(field, f"{_quote(text)} must be more than 0 (at least \"1m\")")
    if cores > MAX_CPU:
        raise _bad(field, f"{_quote(text)} is more than {MAX_CPU} cores")
    return cores


def parse_memory(text: str, *, field: str = "resources.memory") -> int:
    """Bytes in a Kubernetes memory quantity ("256Mi", "1Gi", "1000000"); 4Mi <= memory <= 1Ti."""
    m = _MEMORY_RE.match(text or "")
    if m is None:
        raise _bad(field, f"{_quote(text)} is not a memory quantity (e.g. \"256Mi\", \"1Gi\" or \"1000000\")")
    size = int(Decimal(m.group("num")) * _MEMORY_UNITS[m.group("unit") or ""])
    if size < MIN_MEMORY:
        raise _bad(field, f"{_quote(text)} is less than the minimum 4Mi")
    if size > MAX_MEMORY:
        raise _bad(field, f"{_quote(text)} is more than the maximum 1Ti")
    return size


# -- runtime config -----------------------------------------------------------


def _string(value: Any, field: str, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise _bad(field, f"must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise _bad(field, "must not be empty")
    return value


def _string_list(value: Any, field: str, *, non_empty: bool) -> list[str]:
    if not isinstance(value, list):
        raise _bad(field, f"must be a list of strings, not {type(value).__name__}")
    if non_empty and not value:
        raise _bad(field, "must not be empty")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _bad(f"{field}[{i}]", f"must be a string, not {type(item).__name__}")
    return value


def _command(value: Any, field: str) -> None:
    if isinstance(value, str):
        _string(value, field)
        return
    if not isinstance(value, list):
        raise _bad(field, "must be a non-empty string or a non-empty list of strings")
    items = _string_list(value, field, non_empty=True)
    if not items[0].strip():
        raise _bad(f"{field}[0]", "the program must not be empty")


def _env(value: Any, field: str) -> None:
    if not isinstance(value, dict):
        raise _bad(field, f"must be a map of environment variable names to strings, not {type(value).__name__}")
    for name, item in value.items():
        if not _ENV_NAME_RE.match(name):
            raise _bad(field, f"{_quote(name)} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
        if not isinstance(item, str):
            raise _bad(f"{field}.{name}", f"must be a string, not {type(item).__name__} (quote numbers)")


def _port(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise _bad(field, f"{_quote(value)} is not a port number (an integer 1-65535)")
    if not 1 <= int(value) <= 65535:
        raise _bad(field, f"{int(value)} is not a port number (an integer 1-65535)")


def _env_name(value: Any, field: str) -> None:
    _string(value, field)
    if not _ENV_NAME_RE.match(value):
        raise _bad(field, f"{_quote(value)} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")


def _http_url(value: Any, field: str) -> None:
    _string(value, field)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad(field, f"{_quote(value)} is not an http(s) URL (e.g. http://127.0.0.1:8080)")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _bad(field, f"{_quote(value)} has an invalid port") from None


def _process_config(cfg: dict[str, Any], field: str) -> None:
    if "command" in cfg:
        _command(cfg["command"], f"{field}.command")
    if "args" in cfg:
        _string_list(cfg["args"], f"{field}.args", non_empty=False)
    if "env" in cfg:
        _env(cfg["env"], f"{field}.env")
    if "workdir" in cfg:
        _string(cfg["workdir"], f"{field}.workdir")
    if "port_env" in cfg:
        _env_name(cfg["port_env"], f"{field}.port_env")
    if "port" in cfg:
        _port(cfg["port"], f"{field}.port")
    if "limits" in cfg:
        _process_limits(cfg["limits"], f"{field}.limits")


#: Process rlimits a process agent may set, with their allowed ranges.
PROCESS_LIMITS: Final = {"cpu_seconds": (1, 10_000_000), "open_files": (16, 1 << 20)}


def _process_limits(limits: Any, field: str) -> None:
    if not isinstance(limits, dict):
        raise _bad(field, f"must be a mapping with {', '.join(PROCESS_LIMITS)}")
    for key, value in limits.items():
        if key not in PROCESS_LIMITS:
            raise _bad(f"{field}.{key}", f"is not a process limit (valid: {', '.join(PROCESS_LIMITS)})")
        check_process_limit(key, value, field=f"{field}.{key}")


def check_process_limit(key: str, value: Any, *, field: str, high: int | None = None) -> int:
    """One process limit as a whole number within its range (`high` lowers the
    maximum, e.g. to the host's hard limit); what the process runtime applies."""
    low, most = PROCESS_LIMITS[key]
    high = most if high is None else min(high, most)
    unit = " of seconds" if key == "cpu_seconds" else ""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        raise _bad(field, f"{_quote(value)} must be a whole number{unit} ({low} to {high})")
    if not low <= value <= high:
        raise _bad(field, f"{int(value)} is out of range ({low} to {high})")
    return int(value)


def _container_config(cfg: dict[str, Any], field: str) -> None:
    if "image" not in cfg:
        raise _bad(f"{field}.image", 'is required for runtime "container" (e.g. "my-agent:1.0")')
    _string(cfg["image"], f"{field}.image")
    if any(ch.isspace() for ch in cfg["image"]):
        raise _bad(f"{field}.image", f"{_quote(cfg['image'])} is not an image reference (no spaces allowed)")
    if "env" in cfg:
        _env(cfg["env"], f"{field}.env")
    if "port" in cfg:
        _port(cfg["port"], f"{field}.port")
    if "command" in cfg:
        _command(cfg["command"], f"{field}.command")


def _http_config(cfg: dict[str, Any], field: str) -> None:
    if "urls" in cfg and "url" in cfg:
        raise _bad(f"{field}.url", 'give either "url" or "urls", not both')
    if "url" in cfg:
        _http_url(cfg["url"], f"{field}.url")
        return
    if "urls" not in cfg:
        raise _bad(f"{field}.urls", 'is required for runtime "http" (a list of http(s) URLs; or give "url")')
    urls = _string_list(cfg["urls"], f"{field}.urls", non_empty=True)
    for i, url in enumerate(urls):
        _http_url(url, f"{field}.urls[{i}]")


def _in_process_config(cfg: dict[str, Any], field: str) -> None:
    if "class" not in cfg:
        raise _bad(f"{field}.class", 'is required for runtime "in-process" (e.g. "my_pkg.agents:EchoAgent")')
    value = _string(cfg["class"], f"{field}.class")
    if not _CLASS_RE.match(value):
        raise _bad(f"{field}.class", f'{_quote(value)} is not "module.path:ClassName"')
    if "kwargs" in cfg and not isinstance(cfg["kwargs"], dict):
        raise _bad(f"{field}.kwargs", f"must be an object, not {type(cfg['kwargs']).__name__}")


_CONFIG_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "process": ("command", "args", "env", "workdir", "port_env", "port", "limits"),
    "container": ("image", "env", "port", "command"),
    "http": ("urls", "url"),
    "in-process": ("class", "kwargs"),
}
_CONFIG_CHECKS = {
    "process": _process_config,
    "container": _container_config,
    "http": _http_config,
    "in-process": _in_process_config,
}


def validate_runtime_config(runtime: str, config: Mapping[str, Any], *, field: str = "agent.config") -> None:
    """Check a runtime's config dict: known keys only, each of the right shape.

    For "process" the command is optional: an agent without one is started
    outside the mesh and registers its instances itself (SDK `serve()`).
    """
    cfg = dict(config)
    allowed = _CONFIG_KEYS[runtime]
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise _bad(
            f"{field}.{unknown[0]}",
            f"unknown key(s) {', '.join(_quote(k) for k in unknown)} for runtime {_quote(runtime)} "
            f"(valid: {', '.join(allowed)})",
        )
    _CONFIG_CHECKS[runtime](cfg, field)


# -- probes and routing -------------------------------------------------------


def _threshold(value: int, field: str) -> None:
    if not 0 <= value <= _MAX_THRESHOLD:
        raise _bad(field, f"{value} is out of range (0-{_MAX_THRESHOLD}; 0 means the default)")


def _probe(spec: probe_pb2.ProbeSpec, field: str, *, liveness: bool) -> None:
    if spec.kind and spec.kind not in PROBE_KINDS:
        raise _bad(f"{field}.kind", f"{_quote(spec.kind)} is not a probe kind (valid: {_one_of(PROBE_KINDS)} or empty)")
    if len(spec.grpc_service) > 256:
        raise _bad(f"{field}.grpc_service", "is longer than 256 characters")
    if spec.http_path and (not spec.http_path.startswith("/") or len(spec.http_path) > 1024
                           or any(ch.isspace() for ch in spec.http_path)):
        raise _bad(f"{field}.http_path", f"{_quote(spec.http_path)} is not an absolute path (e.g. /health)")
    _duration(spec.initial_delay, f"{field}.initial_delay")
    period = _duration(spec.period, f"{field}.period")
    if period and period < _MIN_PERIOD:
        raise _bad(f"{field}.period", f"{period.total_seconds():g}s is too short (at least 0.1s; 0 means 10s)")
    _duration(spec.timeout, f"{field}.timeout", maximum=_MAX_PROBE_TIMEOUT)
    _threshold(spec.failure_threshold, f"{field}.failure_threshold")
    _threshold(spec.success_threshold, f"{field}.success_threshold")
    if liveness and spec.success_threshold not in (0, 1):
        raise _bad(
            f"{field}.success_threshold",
            f"{spec.success_threshold} is not allowed: a liveness probe's success_threshold must be 1 (or 0)",
        )


def _routing(policy: routing_pb2.RoutingPolicy, field: str) -> None:
    if policy.strategy and policy.strategy not in STRATEGIES:
        raise _bad(
            f"{field}.strategy",
            f"{_quote(policy.strategy)} is not a routing strategy (valid: {_one_of(STRATEGIES)})",
        )
    if not 0 <= policy.weight <= _MAX_WEIGHT:
        raise _bad(f"{field}.weight", f"{policy.weight} is out of range (0-{_MAX_WEIGHT}; 0 means 100)")
    _duration(policy.default_timeout, f"{field}.default_timeout")

    cb = policy.circuit_breaker
    _threshold(cb.consecutive_failures, f"{field}.circuit_breaker.consecutive_failures")
    _duration(cb.timeout, f"{field}.circuit_breaker.timeout")
    _threshold(cb.max_requests, f"{field}.circuit_breaker.max_requests")

    od = policy.outlier_detection
    _threshold(od.consecutive_failures, f"{field}.outlier_detection.consecutive_failures")
    base = _duration(od.base_ejection_time, f"{field}.outlier_detection.base_ejection_time")
    cap = _duration(od.max_ejection_time, f"{field}.outlier_detection.max_ejection_time")
    if base and cap and cap < base:
        raise _bad(f"{field}.outlier_detection.max_ejection_time", "must not be shorter than base_ejection_time")
    if not 0 <= od.max_ejection_percent <= 100:
        raise _bad(
            f"{field}.outlier_detection.max_ejection_percent", f"{od.max_ejection_percent} is not a percentage (0-100)"
        )

    retry = policy.retry
    if not 0 <= retry.max_attempts <= _MAX_ATTEMPTS:
        raise _bad(f"{field}.retry.max_attempts", f"{retry.max_attempts} is out of range (0-{_MAX_ATTEMPTS})")
    initial = _duration(retry.initial_backoff, f"{field}.retry.initial_backoff")
    maximum = _duration(retry.max_backoff, f"{field}.retry.max_backoff")
    if initial and maximum and maximum < initial:
        raise _bad(f"{field}.retry.max_backoff", "must not be shorter than initial_backoff")
    if retry.backoff_multiplier != 0 and not 1 <= retry.backoff_multiplier <= 100:
        raise _bad(
            f"{field}.retry.backoff_multiplier", f"{retry.backoff_multiplier:g} is out of range (1-100; 0 means 2)"
        )
    for i, code in enumerate(retry.retryable_status_codes):
        if code not in _GRPC_CODES:
            raise _bad(
                f"{field}.retry.retryable_status_codes[{i}]",
                f"{_quote(code)} is not a gRPC status code name (e.g. UNAVAILABLE, RESOURCE_EXHAUSTED)",
            )
    if not 0 <= retry.budget_percent <= 100:
        raise _bad(f"{field}.retry.budget_percent", f"{retry.budget_percent:g} is not a percentage (0-100)")
    if not 0 <= retry.min_retries_per_second <= 10_000:
        raise _bad(f"{field}.retry.min_retries_per_second", f"{retry.min_retries_per_second} is out of range (0-10000)")

    hedging = policy.hedging
    for i, task_type in enumerate(hedging.task_types):
        validate_label_name(task_type, field=f"{field}.hedging.task_types[{i}]", what="task type")
    _duration(hedging.delay, f"{field}.hedging.delay")
    if not 0 <= hedging.max_attempts <= _MAX_ATTEMPTS:
        raise _bad(f"{field}.hedging.max_attempts", f"{hedging.max_attempts} is out of range (0-{_MAX_ATTEMPTS})")


# -- whole objects ------------------------------------------------------------


def validate_agent(agent: registry_pb2.Agent, *, field: str = "agent") -> None:
    """Check a whole agent definition; output-only fields are not looked at."""
    validate_dns_label(agent.id, field=f"{field}.id", what="agent id")
    validate_namespace(agent.namespace, field=f"{field}.namespace")
    validate_dns_label(agent.type, field=f"{field}.type", what="agent type")
    semver.parse_version(agent.version, field=f"{field}.version")

    if not agent.runtime:
        raise _bad(f"{field}.runtime", f"runtime is required (valid: {_one_of(RUNTIMES)})")
    if agent.runtime not in RUNTIMES:
        raise _bad(f"{field}.runtime", f"{_quote(agent.runtime)} is not a runtime (valid: {_one_of(RUNTIMES)})")

    if len(agent.capabilities) > MAX_CAPABILITIES:
        raise _bad(
            f"{field}.capabilities", f"{len(agent.capabilities)} capabilities given, at most {MAX_CAPABILITIES} allowed"
        )
    seen: set[str] = set()
    for i, cap in enumerate(agent.capabilities):
        validate_label_name(cap, field=f"{field}.capabilities[{i}]", what="capability")
        if cap in seen:
            raise _bad(f"{field}.capabilities[{i}]", f"{_quote(cap)} is listed twice")
        seen.add(cap)

    validate_labels(dict(agent.labels), field=f"{field}.labels")

    if len(agent.description.encode()) > MAX_DESCRIPTION_BYTES:
        raise _bad(
            f"{field}.description",
            f"is {len(agent.description.encode())} bytes, at most {MAX_DESCRIPTION_BYTES} (4 KiB) allowed",
        )

    try:
        config_json = json_format.MessageToJson(agent.config, indent=None) if agent.HasField("config") else ""
    except ValueError as err:  # NaN or Infinity: JSON (and so etcd's stored form) has no such numbers
        raise _bad(f"{field}.config", f"holds a number JSON cannot represent (NaN or Infinity): {err}") from None
    config_bytes = len(config_json.encode())
    if config_bytes > MAX_CONFIG_BYTES:
        raise _bad(
            f"{field}.config", f"is {config_bytes} bytes serialized, at most {MAX_CONFIG_BYTES} (64 KiB) allowed"
        )
    config = json_format.MessageToDict(agent.config) if agent.HasField("config") else {}
    validate_runtime_config(agent.runtime, config, field=f"{field}.config")

    if agent.resources.cpu:
        parse_cpu(agent.resources.cpu, field=f"{field}.resources.cpu")
    if agent.resources.memory:
        parse_memory(agent.resources.memory, field=f"{field}.resources.memory")

    _probe(agent.probes.readiness, f"{field}.probes.readiness", liveness=False)
    _probe(agent.probes.liveness, f"{field}.probes.liveness", liveness=True)
    _routing(agent.routing, f"{field}.routing")


def resolve_ttl(ttl: duration_pb2.Duration | None, *, field: str = "ttl") -> timedelta:
    """The lease TTL a RegisterInstance request asks for: default 10s, 2s..300s."""
    if ttl is None or (ttl.seconds == 0 and ttl.nanos == 0):
        return DEFAULT_TTL
    value = _duration(ttl, field, maximum=timedelta(days=1))
    if not MIN_TTL <= value <= MAX_TTL:
        raise _bad(field, f"{value.total_seconds():g}s is out of range (2s-300s; unset means 10s)")
    return value


def _endpoint(endpoint: str, runtime: str, field: str) -> None:
    if not endpoint:
        raise _bad(field, 'endpoint is required ("host:port", an http(s) URL, or "in-process")')
    if len(endpoint) > MAX_ENDPOINT_CHARS:
        raise _bad(field, f"is longer than {MAX_ENDPOINT_CHARS} characters")
    if endpoint == "in-process":
        return
    if "://" in endpoint:
        _http_url(endpoint, field)
        return
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535 or any(c.isspace() for c in host):
        raise _bad(
            field,
            f'{_quote(endpoint)} is not an endpoint (expected "host:port" e.g. 127.0.0.1:50060, '
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
        semver.parse_version(instance.version, field=f"{field}.version")
    if instance.state not in registry_pb2.InstanceState.values():
        raise _bad(f"{field}.state", f"{instance.state} is not an InstanceState")
    validate_labels(dict(instance.labels), field=f"{field}.labels")


def validate_state(state: int, *, field: str = "state") -> None:
    """Check an InstanceState a caller sets (UNSPECIFIED is refused)."""
    if state not in registry_pb2.InstanceState.values() or state == registry_pb2.INSTANCE_STATE_UNSPECIFIED:
        names = ", ".join(n for n in registry_pb2.InstanceState.keys() if not n.endswith("UNSPECIFIED"))  # noqa: SIM118
        raise _bad(field, f"{state} is not a settable instance state (valid: {names})")
