"""Routing policy: the agent's `RoutingPolicy` proto resolved to frozen
settings, every unset field replaced by its documented default
(protos/sutradhar/v1/routing.proto).

Durations are kept as `timedelta` for readers and mirrored as float seconds
(`*_s` properties) for the hot path and the pure state machines, which take
`now` in monotonic seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import grpc

from sutradhar._errors import InvalidArgument
from sutradhar._ratelimit_spec import Numbers, bucket_numbers
from sutradhar._strategy_names import ROUND_ROBIN, STRATEGIES
from sutradhar._values import from_duration
from sutradhar.v1 import routing_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreakerSettings:
    """Per-instance circuit breaker (Dapr)."""

    consecutive_failures: int = 5
    """Consecutive failures that open the breaker."""
    timeout: timedelta = timedelta(seconds=30)
    """Time the breaker stays open before it lets trial calls through."""
    max_requests: int = 1
    """Trial calls allowed at once while half-open; that many successes close it."""
    disabled: bool = False
    """True turns the breaker off."""

    @property
    def timeout_s(self) -> float:
        return self.timeout.total_seconds()


@dataclass(frozen=True)
class OutlierSettings:
    """Passive outlier ejection (Envoy)."""

    consecutive_failures: int = 5
    """Consecutive failures that eject an instance."""
    base_ejection_time: timedelta = timedelta(seconds=30)
    """Ejection time, multiplied by the number of times the instance was ejected."""
    max_ejection_time: timedelta = timedelta(seconds=300)
    """Cap of one ejection."""
    max_ejection_percent: int = 10
    """Never eject more than this percentage of a pool (but one of two or more always may be)."""
    disabled: bool = False
    """True turns ejection off."""

    @property
    def base_ejection_s(self) -> float:
        return self.base_ejection_time.total_seconds()

    @property
    def max_ejection_s(self) -> float:
        return self.max_ejection_time.total_seconds()


@dataclass(frozen=True)
class RetrySettings:
    """Retries on another instance (gRPC A6) within a budget (Finagle/Linkerd)."""

    max_attempts: int = 3
    """Attempts in all, including the first; 1 disables retries."""
    initial_backoff: timedelta = timedelta(milliseconds=10)
    """Back-off before the first retry (jittered: uniform in [0, backoff])."""
    max_backoff: timedelta = timedelta(seconds=1)
    """Back-off cap."""
    backoff_multiplier: float = 2.0
    """Growth of the back-off per retry."""
    retryable_codes: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})
    """Status codes that are retried."""
    budget_percent: float = 20.0
    """Retries allowed as a percentage of the requests of the last 10 s."""
    min_retries_per_second: int = 10
    """Retries always allowed per second regardless of the percentage."""


@dataclass(frozen=True)
class HedgingSettings:
    """Hedged copies for idempotent task types."""

    task_types: frozenset[str] = frozenset()
    """Task types safe to hedge; empty disables hedging."""
    delay: timedelta = timedelta(milliseconds=50)
    """Delay before each further copy is sent."""
    max_attempts: int = 2
    """Copies in all, including the first."""


@dataclass(frozen=True)
class Policy:
    """Everything a router needs to know about how to treat one agent's instances."""

    strategy: str = ROUND_ROBIN
    """Default strategy; a request may override it."""
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    """Circuit breaker settings."""
    outlier: OutlierSettings = field(default_factory=OutlierSettings)
    """Outlier ejection settings."""
    retry: RetrySettings = field(default_factory=RetrySettings)
    """Retry settings."""
    default_timeout: timedelta = timedelta(seconds=30)
    """Deadline when the caller sets none."""
    hedging: HedgingSettings = field(default_factory=HedgingSettings)
    """Hedging settings."""
    weight: int = 100
    """Traffic weight among agents of the same type for the weighted strategy."""
    rate_limit: Numbers | None = None
    """This agent's token bucket per router (max_tokens, tokens_per_fill, fill_interval seconds); None: no limit."""


DEFAULT_POLICY = Policy()

_STATUS_BY_NAME = {code.name: code for code in grpc.StatusCode}


def _codes(names: list[str]) -> frozenset[grpc.StatusCode]:
    codes = set()
    for name in names:
        code = _STATUS_BY_NAME.get(name.strip().upper())
        if code is None:
            log.warning("routing policy names unknown status code %r; ignored", name)
            continue
        codes.add(code)
    return frozenset(codes) if codes else RetrySettings.retryable_codes


def _positive(value: int, default: int) -> int:
    return value if value > 0 else default


def policy_from_proto(proto: routing_pb2.RoutingPolicy | None) -> Policy:
    """Resolve a RoutingPolicy: unset fields take the defaults. An unknown
    strategy in a stored agent falls back to round-robin (the registry
    validates on write; the router must never refuse to route over it)."""
    if proto is None:
        return DEFAULT_POLICY
    strategy = proto.strategy or ROUND_ROBIN
    if strategy not in STRATEGIES:
        log.warning("agent routing policy names unknown strategy %r; using round-robin", strategy)
        strategy = ROUND_ROBIN
    d = DEFAULT_POLICY
    cb, od, rt, hg = proto.circuit_breaker, proto.outlier_detection, proto.retry, proto.hedging
    breaker = BreakerSettings(
        consecutive_failures=_positive(cb.consecutive_failures, d.breaker.consecutive_failures),
        timeout=from_duration(cb.timeout, d.breaker.timeout) or d.breaker.timeout,
        max_requests=_positive(cb.max_requests, d.breaker.max_requests),
        disabled=cb.disabled,
    )
    outlier = OutlierSettings(
        consecutive_failures=_positive(od.consecutive_failures, d.outlier.consecutive_failures),
        base_ejection_time=from_duration(od.base_ejection_time, d.outlier.base_ejection_time)
        or d.outlier.base_ejection_time,
        max_ejection_time=from_duration(od.max_ejection_time, d.outlier.max_ejection_time)
        or d.outlier.max_ejection_time,
        max_ejection_percent=min(100, _positive(od.max_ejection_percent, d.outlier.max_ejection_percent)),
        disabled=od.disabled,
    )
    retry = RetrySettings(
        max_attempts=_positive(rt.max_attempts, d.retry.max_attempts),
        initial_backoff=from_duration(rt.initial_backoff, d.retry.initial_backoff) or d.retry.initial_backoff,
        max_backoff=from_duration(rt.max_backoff, d.retry.max_backoff) or d.retry.max_backoff,
        backoff_multiplier=rt.backoff_multiplier if rt.backoff_multiplier >= 1 else d.retry.backoff_multiplier,
        retryable_codes=_codes(list(rt.retryable_status_codes)) if rt.retryable_status_codes
        else d.retry.retryable_codes,
        budget_percent=rt.budget_percent if rt.budget_percent > 0 else d.retry.budget_percent,
        min_retries_per_second=_positive(rt.min_retries_per_second, d.retry.min_retries_per_second),
    )
    hedging = HedgingSettings(
        task_types=frozenset(hg.task_types),
        delay=from_duration(hg.delay, d.hedging.delay) or d.hedging.delay,
        max_attempts=_positive(hg.max_attempts, d.hedging.max_attempts),
    )
    return Policy(
        strategy=strategy,
        breaker=breaker,
        outlier=outlier,
        retry=retry,
        default_timeout=from_duration(proto.default_timeout, d.default_timeout) or d.default_timeout,
        hedging=hedging,
        weight=_positive(proto.weight, d.weight),
        rate_limit=_rate_limit(proto),
    )


def _rate_limit(proto: routing_pb2.RoutingPolicy) -> Numbers | None:
    """The agent's bucket; None when unset or (in a stored agent no registry validated) invalid."""
    if not proto.HasField("rate_limit"):
        return None
    try:
        return bucket_numbers(proto.rate_limit, field="routing.rate_limit")
    except InvalidArgument as err:
        log.warning("agent routing policy has an invalid rate_limit (%s); not limiting", err)
        return None
