"""Channels for CLI commands: one short-lived grpc.aio channel per command."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from sutradhar._errors import InvalidArgument, from_rpc_error


def check_address(address: str) -> None:
    """InvalidArgument unless `address` is host:port (or a gRPC target URI such
    as dns:///host:port or unix:path): a typo is not "is the mesh running?"."""
    if "://" in address or address.startswith("unix:"):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or (":" in host and "]" not in host):
        raise InvalidArgument(
            f"{address!r} is not a host:port address; check the --registry/--router/--scheduler/--health flag "
            "or the SUTRADHAR_* variable that set it",
            field="address",
        )


@asynccontextmanager
async def channel(address: str) -> AsyncIterator[grpc.aio.Channel]:
    """An insecure channel to `address`; failed calls raise the project's errors."""
    check_address(address)
    ch = grpc.aio.insecure_channel(address)
    try:
        yield ch
    except grpc.RpcError as err:
        raise from_rpc_error(err) from err
    finally:
        await ch.close()
