"""`python -m sutradhar.services.registry`: run the registry until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from sutradhar._errors import SutradharError
from sutradhar._hosting import install_signal_handlers
from sutradhar.services.common.logs import configure_logging
from sutradhar.services.registry.server import DEFAULT_PORT, RegistryConfig, RegistryServer


def parse_args(argv: Sequence[str] | None = None) -> RegistryConfig:
    """Flags first, then SUTRADHAR_* environment variables, then defaults."""
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m sutradhar.services.registry", description=__doc__)
    parser.add_argument("--host", default=env.get("SUTRADHAR_REGISTRY_HOST", "127.0.0.1"), help="listen address")
    parser.add_argument(
        "--port", type=int, default=int(env.get("SUTRADHAR_REGISTRY_PORT", DEFAULT_PORT)), help="port (0: any free)"
    )
    parser.add_argument("--etcd", default=env.get("SUTRADHAR_ETCD", "127.0.0.1:2379"), help="etcd host:port")
    parser.add_argument("--log-level", default=env.get("SUTRADHAR_LOG_LEVEL", "INFO"), help="logging level")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    return RegistryConfig(host=args.host, port=args.port, etcd=args.etcd)


async def serve(config: RegistryConfig) -> None:
    """Run the registry until a stop signal."""
    stop = asyncio.Event()
    install_signal_handlers(stop)
    server = RegistryServer(config)
    await server.start()
    print(f"registry listening on {server.address}", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    try:
        config = parse_args(argv)
        asyncio.run(serve(config))
    except SutradharError as err:
        print(f"registry: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
