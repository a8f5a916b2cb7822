"""The scheduler's runtimes by name, created on first use.

"container" is imported lazily: a host without a Docker engine (or without
the `docker` package) fails only container deployments, with a condition that
says how to fix it, never the scheduler.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from sutradhar._errors import InvalidArgument, SutradharError, Unavailable
from sutradhar.services.scheduler.runtimes.base import Runtime
from sutradhar.services.scheduler.runtimes.config_schemas import RUNTIMES
from sutradhar.services.scheduler.runtimes.process import ProcessRuntime
from sutradhar.services.scheduler.runtimes.virtual import HttpRuntime, InProcessRuntime


class RuntimeSet:
    """Runtimes by name; "process", "http" and "in-process" always, "container" on demand."""

    def __init__(self, state_dir: Path, *, log_max_bytes: int = 10 * 1024 * 1024, log_backups: int = 3) -> None:
        self.state_dir = Path(state_dir)
        self.process = ProcessRuntime(self.state_dir, log_max_bytes=log_max_bytes, log_backups=log_backups)
        self._runtimes: dict[str, Runtime] = {
            "process": self.process,
            "http": HttpRuntime(self.state_dir),
            "in-process": InProcessRuntime(self.state_dir),
        }
        self._container_error: str = ""

    def get(self, name: str) -> Runtime:
        """The runtime called `name`; InvalidArgument for an unknown one,
        Unavailable when the container runtime cannot be loaded."""
        runtime = self._runtimes.get(name)
        if runtime is not None:
            return runtime
        if name == "container":
            return self._container()
        raise InvalidArgument(
            f"agent.runtime: unknown runtime {name!r} (valid: {', '.join(RUNTIMES)})", field="agent.runtime"
        )

    def _container(self) -> Runtime:
        try:
            from sutradhar.services.scheduler.runtimes.container import ContainerRuntime

            runtime: Runtime = ContainerRuntime()  # type: ignore[assignment]
        except (ImportError, SutradharError, OSError) as err:
            raise Unavailable(
                f"the container runtime is unavailable ({type(err).__name__}: {err}); install the mesh extra "
                "(`pip install 'sutradhar[mesh]'`) and start a Docker engine (scripts/install-docker.sh)"
            ) from err
        self._runtimes["container"] = runtime
        return runtime

    def loaded(self) -> list[Runtime]:
        """Runtimes created so far."""
        return list(self._runtimes.values())

    def for_adoption(self, names: Iterable[str]) -> list[Runtime]:
        """The local runtimes plus the named ones that can be loaded (a missing
        Docker engine is not an error here: container deployments report it)."""
        for name in set(names) - set(self._runtimes):
            with contextlib.suppress(SutradharError):
                self.get(name)
        return self.loaded()

    def rotate_logs(self) -> int:
        """Rotate oversized process logs."""
        return self.process.rotate_logs()

    async def close(self) -> None:
        """Close every runtime."""
        for runtime in self._runtimes.values():
            await runtime.close()
