"""Clients for CLI commands: one short-lived typed SDK client per command."""

from __future__ import annotations

from typing import TypeVar

from sutradhar._clients import (
    AuditClient,
    HealthClient,
    RbacClient,
    RegistryClient,
    RouterClient,
    SchedulerClient,
    TokenClient,
)
from sutradhar._errors import InvalidArgument

C = TypeVar("C", RegistryClient, RouterClient, SchedulerClient, HealthClient, RbacClient, TokenClient, AuditClient)


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


def connect(client: type[C], address: str) -> C:
    """A `client` of the service at `address` (checked first); use it as
    ``async with``. Failed calls raise the SDK's errors (`SutradharError`)."""
    check_address(address)
    return client(address)
