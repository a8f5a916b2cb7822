"""The health service: Kubernetes-style probes of every instance, drain and
enable, health events, and the work split across health members.

See docs/health.md.
"""

from .config import HealthConfig
from .server import HealthServer

__all__ = ["HealthConfig", "HealthServer"]
