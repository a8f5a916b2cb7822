"""The prober the health service runs: the shared one in `services.common.probing`
(the scheduler's readiness wait uses it too), re-exported under its old name."""

from __future__ import annotations

from ..common.probing import PROBER_HEADER, ProbeOutcome, Probers, http_url, split_host_port

__all__ = ["PROBER_HEADER", "ProbeOutcome", "Probers", "http_url", "split_host_port"]
