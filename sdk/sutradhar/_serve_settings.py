"""`ServeSettings`: the one definition of how an agent is served.

`serve()`, `AgentServer` and ``python -m sutradhar.serve`` take their options
from this dataclass; its flags (``--port``) and environment variables
(``SUTRADHAR_PORT``) are derived from it by `sutradhar._settings`. An option
is the explicit argument (flag or keyword) when given, else
``SUTRADHAR_<NAME>`` when set and non-empty, else the default below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sutradhar._bootstrap import Bootstrap
from sutradhar._errors import FailedPrecondition
from sutradhar._event_loop import CHOICES as EVENT_LOOPS
from sutradhar._hosting import DEFAULT_MAX_MESSAGE_BYTES
from sutradhar._security_settings import SecuritySettings
from sutradhar._settings import (
    COUNT,
    PORT,
    POSITIVE_DURATION,
    Settings,
    choice,
    log_format_setting,
    log_level_setting,
    setting,
)


@dataclass(frozen=True)
class ServeSettings(SecuritySettings):
    """Where and as what an agent is served, and with which certificate (`SecuritySettings`:
    the scheduler passes its replicas SUTRADHAR_TLS_* or SUTRADHAR_INSECURE=1)."""

    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0: every interface)."""
    port: int = setting(0, kind=PORT)
    """Port to listen on; 0 picks a free one."""
    metrics_port: int | None = setting(None, kind=PORT)
    """HTTP port of the agent's Prometheus /metrics, on `host` (docs/observability.md, "Metrics"); 0 picks a free
    one; none: no endpoint. Needs prometheus-client (pip install 'sutradhar[metrics]')."""
    metrics_optional: bool = False
    """A metrics port that cannot be served (prometheus-client missing, the port taken) is a warning, not a
    start-up error: the agent serves without /metrics. The scheduler sets it for the replicas it gives a port."""
    registry: str | None = None
    """Registry host:port to register with; none: only serve (so the scheduler runs its replicas:
    it registers them itself)."""
    access_review: str | None = None
    """Registry host:port that decides callers which are not mesh services (a DirectClient's user): it answers
    whether they may execute this agent (RbacService/ReviewAccess, docs/security.md, "Who may call an agent").
    None: the registry this agent registers with, if any; with neither, only the mesh's router, health and
    scheduler may call it. The scheduler sets it for the replicas it runs, which do not register themselves."""
    namespace: str = "default"
    """Namespace of the agent and its instance."""
    instance_id: str | None = None
    """This instance's id; none: the agent id and 8 random hex digits."""
    advertise: str | None = None
    """Endpoint registered for this instance; none: the listen address (127.0.0.1 when listening on every interface)."""
    agent_id: str | None = None
    """Agent id to report instead of the class's (the scheduler sets the deployed definition's)."""
    agent_version: str | None = None
    """Semantic version to report instead of the class's (the scheduler sets the deployed definition's)."""
    labels: Mapping[str, str] = setting(default_factory=dict, flag="--label")
    """Labels of the registered instance, key=value."""
    ttl: timedelta = setting(timedelta(seconds=10), kind=POSITIVE_DURATION)
    """Registration lease TTL; the lease is renewed every ttl/3."""
    grace: timedelta = timedelta(seconds=10)
    """How long in-flight tasks get to finish on shutdown before they are cancelled."""
    register_agent: bool = True
    """Create the agent definition in the registry when it is missing."""
    health_period: timedelta = setting(timedelta(seconds=1), kind=POSITIVE_DURATION)
    """How often check_health() is polled, and how long one poll may take."""
    max_message_bytes: int = setting(DEFAULT_MAX_MESSAGE_BYTES, kind=COUNT)
    """Largest message accepted or sent."""
    event_loop: str = setting("auto", kind=choice(*EVENT_LOOPS))
    """Event loop of ``python -m sutradhar.serve`` and `serve()`: auto (uvloop when installed: 5 to 7% less CPU
    per task for an echo agent, pip install 'sutradhar[uvloop]'), uvloop or asyncio. `AgentServer` runs on the loop
    it is started in."""
    log_level: str = log_level_setting("WARNING")
    """Logging level of ``python -m sutradhar.serve`` and of `serve()` when logging is not set up yet."""
    log_format: str = log_format_setting()
    """Log line format: text, or json (one object per line with time, level, service, logger, message and the call's
    request_id, trace_id, namespace, agent, instance where known; docs/observability.md)."""
    published_on_loopback: bool = False
    """Set by the scheduler's container runtime: the agent listens on 0.0.0.0 inside a container whose
    port is published on the host's loopback only, so --insecure is allowed there."""
    bootstrap: str | None = None
    """The registry's bootstrap port, host:port: an agent without certificate files exchanges its bootstrap
    token (bootstrap_token_file) there for a certificate of its agent identity, kept in memory and renewed
    at 70 % over the registry's mTLS port. Needs tls_ca_file (to verify the registry) and no cert/key files."""
    bootstrap_token_file: Path | None = None
    """File holding the agent's bootstrap token (`sutradhar token create --agent ID`; keep it 0600).
    A file, never the token itself on a command line or in a variable."""

    def bootstrap_settings(self, what: str) -> Bootstrap | None:
        """How this agent obtains its certificate with a token (None: from files, or insecure);
        FailedPrecondition saying what is missing or contradictory."""
        if self.bootstrap is None and self.bootstrap_token_file is None:
            return None
        problem = ""
        if self.bootstrap is None:
            problem = "--bootstrap-token-file needs --bootstrap HOST:PORT (the registry's bootstrap port)"
        elif self.bootstrap_token_file is None:
            problem = ("--bootstrap needs --bootstrap-token-file, a file holding the agent's bootstrap token "
                       "(`sutradhar token create --agent AGENT_ID --namespace NS > FILE`)")
        elif self.insecure:
            problem = "--bootstrap and --insecure contradict each other; drop one"
        elif self.tls_cert_file is not None or self.tls_key_file is not None:
            problem = ("--bootstrap obtains the certificate, so --tls-cert-file and --tls-key-file must not be "
                       "given; drop one or the other")
        elif self.tls_ca_file is None:
            problem = ("--bootstrap needs --tls-ca-file, the mesh CA (pki/bundle.pem of `sutradhar up`) that "
                       "verifies the registry before the token is sent")
        if problem:
            raise FailedPrecondition(f"{what}: {problem}")
        assert self.bootstrap is not None and self.bootstrap_token_file is not None and self.tls_ca_file is not None
        return Bootstrap(self.bootstrap, self.bootstrap_token_file, self.tls_ca_file, self.trust_domain,
                         renew_address=self.registry)


#: The flags and SUTRADHAR_* variables of `ServeSettings` (no service prefix: SUTRADHAR_PORT).
SERVE_SETTINGS = Settings(ServeSettings)


def serve_settings(**explicit: Any) -> ServeSettings:
    """The settings: each is the keyword argument when not None, else
    ``SUTRADHAR_<NAME>`` when set and non-empty, else the default.
    `sutradhar._settings.SettingError` (a ValueError) names a bad variable,
    e.g. a SUTRADHAR_PORT that is not a port number; TypeError names an
    unknown keyword."""
    return SERVE_SETTINGS.resolve(**explicit)
