"""`python -m sutradhar.serve module:Class`: serve an Agent class from the command line.

The flags are `sutradhar._serve_settings.ServeSettings`' fields (``--port``,
``--registry``, ``--label k=v``, ``--ttl 5s``, ...), each falling back to its
environment variable (SUTRADHAR_PORT, SUTRADHAR_REGISTRY, SUTRADHAR_LABELS,
SUTRADHAR_TTL, ...; ``--help`` lists them with their defaults), then to its
default; `serve()` reads the same variables, so a script that calls
``serve(MyAgent())`` is configured the same way. The scheduler sets
SUTRADHAR_AGENT_ID and SUTRADHAR_AGENT_VERSION to the deployed agent
definition's, so a replica reports (in Describe and in every result's
metadata) the definition it was deployed as, not the class's defaults; the
definition it registers still names the class's own command. Without a
registry (no --registry, no SUTRADHAR_REGISTRY) the agent only serves (this
is how the scheduler runs managed replicas: it registers them itself). Once
serving, one line goes to stderr:
``agent <id> listening on 127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import types
from collections.abc import Sequence
from typing import Any

from sutradhar._agent import Agent
from sutradhar._errors import SutradharError
from sutradhar._logs import announce, configure_logging
from sutradhar._serve import serve
from sutradhar._serve_settings import SERVE_SETTINGS


def load_agent_class(spec: str) -> type[Agent]:
    """The Agent subclass named by "package.module:Class"."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{spec!r} is not module:Class")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    obj: object = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Agent)):
        raise ValueError(f"{spec!r} is not a subclass of sutradhar.Agent")
    return obj


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser: the agent class, then one flag per
    `ServeSettings` field. Flags default to None (not given): `main` fills
    them from SUTRADHAR_* variables, then from the defaults."""
    p = argparse.ArgumentParser(prog="python -m sutradhar.serve", description="Serve a Sutradhar agent.")
    p.add_argument("agent", help="the Agent class, as module:Class (e.g. examples.echo_agent:EchoAgent)")
    SERVE_SETTINGS.add_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, serve until SIGTERM/SIGINT, return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = SERVE_SETTINGS.resolve(args)
        agent_class = load_agent_class(args.agent)
        configure_logging(settings.log_level, settings.log_format, service=settings.agent_id or agent_class.id,
                          quiet_libraries=False)
        serve(agent_class(), settings=settings)
    except (SutradharError, ValueError, ImportError, AttributeError) as err:
        announce(__name__, f"error: {err}", level=logging.ERROR)
        return 1
    return 0


class _CallableModule(types.ModuleType):
    """`sutradhar.serve` names both this module and the `serve()` function the
    package re-exports. Importing this module rebinds the package attribute to
    the module, so the module forwards calls to the function: `sutradhar.serve(agent)`
    works whichever of the two the attribute holds."""

    def __call__(self, agent: Agent, **options: Any) -> None:
        serve(agent, **options)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
