"""How a secured router dials instances: `MeshDialer`, which lives in the SDK
(`sutradhar._mesh_dialer`) since a `DirectClient` with a certificate dials the same way."""

from __future__ import annotations

from sutradhar._mesh_dialer import MeshDialer

__all__ = ["MeshDialer"]
