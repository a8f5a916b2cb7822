"""The "container" runtime's config: what `config` of a container agent may hold.

Pure (imports no Docker SDK): the registry checks an agent against it at
RegisterAgent, and the container runtime again before it starts a replica.
"""

from __future__ import annotations

from typing import Any, Final

from sutradhar._fields import field_error, quote
from sutradhar.services.common.config_fields import (
    ConfigSchema,
    check_bool,
    check_command,
    check_env_or_references,
    check_file_mounts,
    check_port,
    check_string,
)

__all__ = ["SCHEMA"]


def _image(cfg: dict[str, Any], field: str) -> None:
    if "image" not in cfg:
        raise field_error(f"{field}.image", 'is required for runtime "container" (e.g. "my-agent:1.0")')
    check_string(cfg["image"], f"{field}.image")
    if any(ch.isspace() for ch in cfg["image"]):
        raise field_error(f"{field}.image", f"{quote(cfg['image'])} is not an image reference (no spaces allowed)")


SCHEMA: Final = ConfigSchema(
    runtime="container",
    fields={"image": None, "env": check_env_or_references, "port": check_port, "metrics": check_bool,
            "command": check_command,
            "files": check_file_mounts},
    check=_image,
)


#: The unprivileged uid:gid every container replica with a certificate runs as when the
#: scheduler is root (images/agent/Dockerfile's USER): its certificate files are handed to it.
CONTAINER_USER = (65534, 65534)
