"""`python -m sutradhar.serve module:Class`: serve an Agent class from the command line.

Flags fall back to environment variables (SUTRADHAR_HOST, SUTRADHAR_PORT,
SUTRADHAR_REGISTRY, SUTRADHAR_NAMESPACE, SUTRADHAR_INSTANCE_ID,
SUTRADHAR_ADVERTISE, SUTRADHAR_AGENT_ID, SUTRADHAR_AGENT_VERSION), then to
defaults; `serve()` does the falling back (`serve_settings`), so a script
that calls ``serve(MyAgent())`` reads the same variables. The scheduler sets
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
from datetime import timedelta
from typing import Any

from sutradhar._agent import Agent
from sutradhar._errors import SutradharError
from sutradhar._hosting import LOG_FORMAT
from sutradhar._registration import parse_labels
from sutradhar._serve import env_setting, serve


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
    """The command's argument parser. Serving flags default to None: `serve()`
    fills them from SUTRADHAR_* (see `serve_settings`), then from defaults."""
    p = argparse.ArgumentParser(prog="python -m sutradhar.serve", description="Serve a Sutradhar agent.")
    p.add_argument("agent", help="the Agent class, as module:Class (e.g. examples.echo_agent:EchoAgent)")
    p.add_argument("--host", help="listen address (env SUTRADHAR_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port, 0 = any (env SUTRADHAR_PORT, default 0)")
    p.add_argument("--registry", help="registry host:port to register with (env SUTRADHAR_REGISTRY)")
    p.add_argument("--namespace", help="namespace (env SUTRADHAR_NAMESPACE, default default)")
    p.add_argument("--instance-id", help="instance id (env SUTRADHAR_INSTANCE_ID)")
    p.add_argument("--advertise", help="endpoint to register (env SUTRADHAR_ADVERTISE)")
    p.add_argument("--agent-id", help="agent id to report instead of the class's (env SUTRADHAR_AGENT_ID)")
    p.add_argument(
        "--agent-version", help="semantic version to report instead of the class's (env SUTRADHAR_AGENT_VERSION)"
    )
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="instance label (repeatable)")
    p.add_argument("--ttl", type=float, default=10.0, help="registration lease TTL in seconds (default 10)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds in-flight tasks get on shutdown (default 10)")
    p.add_argument("--no-register-agent", action="store_true", help="do not create the agent definition when missing")
    p.add_argument(
        "--log-level",
        default=env_setting("LOG_LEVEL", "WARNING"),
        help="logging level (env SUTRADHAR_LOG_LEVEL, default WARNING)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, serve until SIGTERM/SIGINT, return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr
    )
    try:
        labels = parse_labels(args.label)
        agent = load_agent_class(args.agent)()
        serve(
            agent,
            host=args.host,
            port=args.port,
            registry=args.registry,
            namespace=args.namespace,
            instance_id=args.instance_id,
            advertise=args.advertise,
            agent_id=args.agent_id,
            agent_version=args.agent_version,
            labels=labels,
            ttl=timedelta(seconds=args.ttl),
            grace=timedelta(seconds=args.grace),
            register_agent=not args.no_register_agent,
        )
    except (SutradharError, ValueError, ImportError, AttributeError) as err:
        print(f"error: {err}", file=sys.stderr)
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
