"""Which asyncio event loop a service runs on.

The router is the data plane: every task crosses it, and most of its CPU goes
to grpc.aio and the event loop (README, "Router performance"). uvloop takes
about 8 % off its CPU per call, so the router runs on it when it is installed
(the `mesh` extra pins it). `asyncio` forces the standard loop, for a platform
without uvloop or to rule it out when chasing a problem.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable

from sutradhar._errors import InvalidArgument

#: Accepted values of ``--event-loop``.
CHOICES = ("auto", "uvloop", "asyncio")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: str) -> tuple[LoopFactory, str]:
    """Return (a new-loop factory, the loop's name) for `choice`.

    `auto` is uvloop when importable, else asyncio; `uvloop` insists on it.
    """
    if choice not in CHOICES:
        raise InvalidArgument(f"event loop {choice!r} is not one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return asyncio.new_event_loop, "asyncio"
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise InvalidArgument(
                "event loop 'uvloop' is not installed; pip install 'sutradhar[mesh]' "
                "or choose --event-loop asyncio"
            ) from None
        return asyncio.new_event_loop, "asyncio"
    factory: LoopFactory = uvloop.new_event_loop
    return factory, "uvloop"

