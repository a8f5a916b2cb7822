"""Which asyncio event loop a server runs on: the router's ``--event-loop`` and an agent's
(``python -m sutradhar.serve --event-loop``, SUTRADHAR_EVENT_LOOP, `serve()`).

Most of a Python gRPC server's CPU per call goes to grpc.aio and the event loop
(docs/router.md, "What limits it"). uvloop takes about 8 % off the router's CPU per
call and 5 to 7 % off an SDK echo agent's (bench/agent_event_loop.py), so both run
on it when it is installed (`auto`, the default; the `uvloop` extra and the `mesh`
extra pin it). `asyncio` forces the standard loop, for a platform without uvloop or
to rule it out when chasing a problem.
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
                "event loop 'uvloop' is not installed; pip install 'sutradhar[uvloop]' "
                "or choose the event loop asyncio (--event-loop asyncio)"
            ) from None
        return asyncio.new_event_loop, "asyncio"
    factory: LoopFactory = uvloop.new_event_loop
    return factory, "uvloop"

