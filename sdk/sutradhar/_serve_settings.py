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
from typing import Any

from sutradhar._hosting import DEFAULT_MAX_MESSAGE_BYTES
from sutradhar._security_settings import SecuritySettings
from sutradhar._settings import COUNT, PORT, POSITIVE_DURATION, Settings, log_level_setting, setting


@dataclass(frozen=True)
class ServeSettings(SecuritySettings):
    """Where and as what an agent is served, and with which certificate (`SecuritySettings`:
    the scheduler passes its replicas SUTRADHAR_TLS_* or SUTRADHAR_INSECURE=1)."""

    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0: every interface)."""
    port: int = setting(0, kind=PORT)
    """Port to listen on; 0 picks a free one."""
    registry: str | None = None
    """Registry host:port to register with; none: only serve (so the scheduler runs its replicas:
    it registers them itself)."""
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
    log_level: str = log_level_setting("WARNING")
    """Logging level of ``python -m sutradhar.serve`` and of `serve()` when logging is not set up yet."""
    published_on_loopback: bool = False
    """Set by the scheduler's container runtime: the agent listens on 0.0.0.0 inside a container whose
    port is published on the host's loopback only, so --insecure is allowed there."""


#: The flags and SUTRADHAR_* variables of `ServeSettings` (no service prefix: SUTRADHAR_PORT).
SERVE_SETTINGS = Settings(ServeSettings)


def serve_settings(**explicit: Any) -> ServeSettings:
    """The settings: each is the keyword argument when not None, else
    ``SUTRADHAR_<NAME>`` when set and non-empty, else the default.
    `sutradhar._settings.SettingError` (a ValueError) names a bad variable,
    e.g. a SUTRADHAR_PORT that is not a port number; TypeError names an
    unknown keyword."""
    return SERVE_SETTINGS.resolve(**explicit)
