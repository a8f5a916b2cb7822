"""Channels for CLI commands: one short-lived grpc.aio channel per command."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from sutradhar._errors import from_rpc_error


@asynccontextmanager
async def channel(address: str) -> AsyncIterator[grpc.aio.Channel]:
    """An insecure channel to `address`; failed calls raise the project's errors."""
    ch = grpc.aio.insecure_channel(address)
    try:
        yield ch
    except grpc.RpcError as err:
        raise from_rpc_error(err) from err
    finally:
        await ch.close()
