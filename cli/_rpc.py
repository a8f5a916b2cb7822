"""Clients for CLI commands: one short-lived typed SDK client per command, presenting the
credentials of the chosen context of the credential file (`use_context`, called by
`main` with --context / $SUTRADHAR_CONTEXT, else the file's current context)."""

from __future__ import annotations

import argparse
import os
from typing import TypeVar

from sutradhar._clients import (
    AuditClient,
    HealthClient,
    QuotaClient,
    RateLimitClient,
    RbacClient,
    RegistryClient,
    RouterClient,
    SchedulerClient,
    TokenClient,
)
from sutradhar._credentials import Context, CredentialFile, Credentials
from sutradhar._errors import InvalidArgument
from sutradhar._secret_clients import ConfigMapClient, SecretClient

C = TypeVar("C", RegistryClient, RouterClient, SchedulerClient, HealthClient, RbacClient, TokenClient, AuditClient,
            QuotaClient, RateLimitClient, SecretClient, ConfigMapClient)


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


#: Where each service listens when neither a flag, a variable nor the context says.
DEFAULT_ADDRESSES = {
    "registry": "127.0.0.1:50051",
    "router": "127.0.0.1:50052",
    "scheduler": "127.0.0.1:50053",
    "health": "127.0.0.1:50054",
}

_context: Context | None = None


def use_context(args: argparse.Namespace) -> Context | None:
    """Pick the context of this command (--context, $SUTRADHAR_CONTEXT, the current one; none
    when there is no credential file) and fill the address flags left unset: flag > variable >
    the context's endpoint > the default."""
    global _context
    _context = CredentialFile.load().context(getattr(args, "context", None) or None)
    for service, default in DEFAULT_ADDRESSES.items():
        if getattr(args, service, None):
            continue
        from_env = os.environ.get(f"SUTRADHAR_{service.upper()}")
        endpoint = _context.endpoints.get(service) if _context is not None else None
        setattr(args, service, from_env or endpoint or default)
    return _context


def credentials() -> Credentials:
    """What CLI clients present: the chosen context's credentials, or nothing (plaintext)."""
    return Credentials.insecure() if _context is None else _context.credentials()


def connect(client: type[C], address: str) -> C:
    """A `client` of the service at `address` (checked first), presenting the context's
    credentials; use it as ``async with``. Failed calls raise the SDK's errors (`SutradharError`)."""
    check_address(address)
    return client(address, credentials=credentials())
