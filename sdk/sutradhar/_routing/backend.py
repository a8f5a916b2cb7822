"""One routable instance as a router (or a caller routing itself) sees it: identity from
the registry, plus what this router observed (in-flight, counters, latency, peak-EWMA,
circuit breaker, ejection record, load window).

A Backend outlives view updates: the watch refreshes its identity fields and
policy in place, so breaker and counters survive an instance's state changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from sutradhar._routing.breaker import BreakerState, CircuitBreaker
from sutradhar._routing.outlier import OutlierDetector
from sutradhar._routing.policy import DEFAULT_POLICY, Policy

#: The endpoint of an instance that runs inside the routers (the "in-process" runtime's, whose
#: name it is too): it has no peer, so nothing dials or probes it.
IN_PROCESS_ENDPOINT: Final = "in-process"
#: Latency samples kept per instance for p50/p99.
LATENCY_SAMPLES = 1024
#: Decay time of the latency EWMA, in seconds (Finagle's peak-EWMA default).
EWMA_DECAY_S = 10.0


class Outcome(Enum):
    """What one attempt tells about the instance."""

    SUCCESS = "success"
    FAILURE = "failure"  # counts against the instance (breaker, ejection)
    NEUTRAL = "neutral"  # cancelled, or the task itself was bad


@dataclass
class LoadSample:
    """What one load window observed of one instance."""

    in_flight: float
    rps: float
    breaker_open: bool = False
    """The breaker is open or half-open at the window's end."""
    ejected: bool = False
    """The instance is ejected at the window's end."""


def is_in_process(backend: Backend) -> bool:
    """Whether `backend` runs inside the routers (its runtime, or its endpoint, says so)."""
    return backend.runtime == IN_PROCESS_ENDPOINT or backend.endpoint == IN_PROCESS_ENDPOINT


class Backend:
    """A routable instance with this router's observations of it."""

    __slots__ = (
        "_lat", "_lat_i", "_was_busy", "_was_unhealthy", "_window_area", "_window_at", "_window_requests",
        "_window_start",
        "agent_id", "agent_type", "breaker", "endpoint", "errors", "ewma", "ewma_at", "identity", "in_flight",
        "instance_id", "labels", "namespace", "outlier", "policy", "probe_time", "requests",
        "result_metadata", "runtime", "state", "transport", "version", "weight",
    )

    def __init__(self, namespace: str, instance_id: str, *, policy: Policy = DEFAULT_POLICY) -> None:
        self.namespace = namespace
        self.instance_id = instance_id
        self.agent_id = ""
        self.agent_type = ""
        self.version = ""
        self.endpoint = ""
        self.identity = ""  # the SPIFFE ID its endpoint must present (Instance.identity)
        self.runtime = ""
        self.state = "INSTANCE_STATE_UNSPECIFIED"
        self.labels: dict[str, str] = {}
        self.weight = policy.weight
        self.policy = policy
        self.breaker = CircuitBreaker(policy.breaker)
        self.outlier = OutlierDetector(policy.outlier)
        self.transport: Any = None
        self.result_metadata = b""  # the ResultMetadata fields set on a first-attempt answer (router wire.py)
        self.probe_time = 0.0
        self.in_flight = 0
        self.requests = 0
        self.errors = 0
        self.ewma = 0.0
        self.ewma_at = 0.0
        self._lat: list[float] = []
        self._lat_i = 0
        self._window_start = -1.0  # set by the first call
        self._window_at = 0.0
        self._window_area = 0.0
        self._window_requests = 0
        self._was_busy = False
        self._was_unhealthy = False

    def __repr__(self) -> str:
        return f"Backend({self.namespace}/{self.instance_id} {self.endpoint})"

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.instance_id)

    def set_policy(self, policy: Policy) -> None:
        """Apply a changed routing policy (state machines keep their state)."""
        if policy is self.policy:
            return
        self.policy = policy
        self.weight = policy.weight
        self.breaker.settings = policy.breaker
        self.outlier.settings = policy.outlier

    def available(self, now: float) -> bool:
        """Neither ejected nor refused by its breaker right now."""
        return self.breaker.selectable(now) and not self.outlier.ejected(now)

    # -- one call ---------------------------------------------------------

    def begin(self, now: float) -> None:
        """A call is sent to this instance."""
        if self._window_start < 0:
            self._window_start = self._window_at = now
        self._window_area += self.in_flight * (now - self._window_at)
        self._window_at = now
        self.in_flight += 1
        self.requests += 1
        self._window_requests += 1
        self.breaker.start()

    def end(self, now: float, latency: float, outcome: Outcome, *, may_eject: bool = True) -> bool:
        """The call ended. Returns True when this ended in an ejection."""
        self._window_area += self.in_flight * (now - self._window_at)
        self._window_at = now
        self.in_flight -= 1
        ejected = False
        if outcome is Outcome.SUCCESS:
            self.breaker.success()
            self.outlier.success()
            self._observe(now, latency)
        elif outcome is Outcome.FAILURE:
            self.errors += 1
            self.breaker.failure(now)
            ejected = self.outlier.failure(now, may_eject=may_eject)
            self._observe(now, latency)
        else:
            self.breaker.release()
        return ejected

    def app_error(self) -> None:
        """The agent answered, but with a failed result: counted, not held against it."""
        self.errors += 1

    def _observe(self, now: float, latency: float) -> None:
        if len(self._lat) < LATENCY_SAMPLES:
            self._lat.append(latency)
        else:
            self._lat[self._lat_i] = latency
            self._lat_i = (self._lat_i + 1) % LATENCY_SAMPLES
        # Peak-EWMA: jump up to a worse observation at once, decay towards better ones.
        if latency > self.ewma:
            self.ewma = latency
        else:
            w = math.exp(-(now - self.ewma_at) / EWMA_DECAY_S)
            self.ewma = self.ewma * w + latency * (1.0 - w)
        self.ewma_at = now

    def cost(self) -> float:
        """Peak-EWMA load estimate: expected latency x (in-flight + 1)."""
        return self.ewma * (self.in_flight + 1)

    # -- reports ----------------------------------------------------------

    def percentiles(self) -> tuple[float, float]:
        """(p50, p99) of the recent latency samples, in seconds (0 when none)."""
        if not self._lat:
            return 0.0, 0.0
        ordered = sorted(self._lat)
        n = len(ordered)
        return ordered[min(n - 1, int(n * 0.5))], ordered[min(n - 1, math.ceil(n * 0.99) - 1)]

    def breaker_state(self, now: float) -> BreakerState:
        """The breaker state, with an elapsed open timeout shown as half-open."""
        if self.breaker.state is BreakerState.OPEN and self.breaker.open_for(now) == 0.0:
            return BreakerState.HALF_OPEN
        return self.breaker.state

    def take_load(self, now: float) -> LoadSample | None:
        """Close the load window: average in-flight and requests per second
        since the last call, and whether the breaker is open or the instance
        ejected now; None when neither this window nor the one before saw
        traffic or either of those (the first idle or healthy window reports
        once more, so readers do not keep the last busy or unhealthy figures).
        An open breaker or an ejection is reported even without traffic: that
        is when they hold the instance's calls back."""
        start = self._window_start if self._window_start >= 0 else now
        self._window_area += self.in_flight * (now - self._window_at)
        span = now - start
        busy = self._window_requests > 0 or self._window_area > 0 or self.in_flight > 0
        breaker_open = self.breaker_state(now) is not BreakerState.CLOSED
        ejected = self.outlier.ejected(now)
        unhealthy = breaker_open or ejected
        sample = None
        if busy and span > 0:
            sample = LoadSample(self._window_area / span, self._window_requests / span, breaker_open, ejected)
        elif self._was_busy or unhealthy or self._was_unhealthy:
            sample = LoadSample(0.0, 0.0, breaker_open, ejected)
        self._was_busy = busy
        self._was_unhealthy = unhealthy
        self._window_start = now
        self._window_at = now
        self._window_area = 0.0
        self._window_requests = 0
        return sample
