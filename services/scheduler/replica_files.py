"""The files a replica gets from Secrets and ConfigMaps: written before it starts, removed after.

Each replica that mounts files has a private directory on the scheduler's host::

    <state_dir>/files/<namespace>/<replica-id>/                 0700, the replica's user
    <state_dir>/files/<namespace>/<replica-id>/<mount path>/<path>   0400 each

A mount's files sit under the directory at the mount's path (``/etc/agent/keys`` ->
``<dir>/etc/agent/keys/``). A process replica is told the directory in
``SUTRADHAR_FILES_DIR`` (so ``$SUTRADHAR_FILES_DIR/etc/agent/keys/api-key``); a
container replica gets each mount's directory bound read-only at its mount path.
Files and directories are owned by the user the replica runs as (a container of a
root scheduler runs as the image's unprivileged user, as its certificate files are,
services/scheduler/identities.py), so nobody else on the host reads them. The
directory goes when the replica stops or exits (a restart writes it afresh).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sutradhar.services.common.secret_refs import Resolution

__all__ = ["ReplicaFiles", "WrittenFiles"]


@dataclass(frozen=True)
class WrittenFiles:
    """Where a replica's files are: the directory and (host directory, mount path) per mount."""

    directory: Path
    mounts: tuple[tuple[str, str], ...]


class ReplicaFiles:
    """Writes and removes the Secret/ConfigMap files of the replicas this scheduler runs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def directory(self, namespace: str, replica_id: str) -> Path:
        return self.root / namespace / replica_id

    def write(
        self, namespace: str, replica_id: str, resolution: Resolution, *, owner: tuple[int, int] | None = None
    ) -> WrittenFiles | None:
        """Write `resolution`'s files (None when it has none), owned by `owner` (uid, gid) when given."""
        if not resolution.mount_paths:
            return None
        base = self.directory(namespace, replica_id)
        self.remove(namespace, replica_id)
        base.mkdir(parents=True, mode=0o700)
        os.chmod(base, 0o700)
        made: list[Path] = [base]
        mounts: list[tuple[str, str]] = []
        for mount_path in resolution.mount_paths:
            host = base / mount_path.lstrip("/")
            made += _make_dirs(base, host)
            mounts.append((str(host), mount_path))
        for item in resolution.files:
            target = base / item.mount_path.lstrip("/") / item.path
            made += _make_dirs(base, target.parent)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
            try:
                os.write(fd, item.content)
            finally:
                os.close(fd)
            os.chmod(target, 0o400)
            made.append(target)
        if owner is not None:
            for path in made:
                os.chown(path, *owner, follow_symlinks=False)
        return WrittenFiles(base, tuple(mounts))

    def remove(self, namespace: str, replica_id: str) -> None:
        """Delete the replica's files (nothing when it has none)."""
        shutil.rmtree(self.directory(namespace, replica_id), ignore_errors=True)


def _make_dirs(base: Path, directory: Path) -> list[Path]:
    """Create `directory` (under `base`) and its missing parents, 0700; the ones created."""
    made = []
    for parent in reversed([directory, *directory.parents]):
        if parent == base or base not in parent.parents:
            continue
        if not parent.exists():
            parent.mkdir(mode=0o700)
            made.append(parent)
    return made
