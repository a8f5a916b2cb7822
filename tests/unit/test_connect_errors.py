"""`from_rpc_error`: a client that could not connect for a reason of security is told which
first; every other failure keeps gRPC's own words. (The real handshakes are in
tests/integration/test_mtls.py.)"""

from __future__ import annotations

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from sutradhar._errors import CERTIFICATE_REFUSED, PLAINTEXT_PEER, TLS_SERVICE, Unavailable, from_rpc_error

CLOSED = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:7001: Socket closed"
REFUSED = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7001: "
           "Failed to connect to remote host: Connection refused")
NOT_TLS = ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:7001: Ssl handshake failed "
           "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER")


def failure(details: str, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> AioRpcError:
    return AioRpcError(code, Metadata(), Metadata(), details=details)


@pytest.mark.parametrize(("details", "tls", "first"), [
    (CLOSED, False, TLS_SERVICE),
    (CLOSED, True, CERTIFICATE_REFUSED),
    (NOT_TLS, True, PLAINTEXT_PEER),
    (NOT_TLS, None, PLAINTEXT_PEER),  # only a TLS client hears a non-TLS answer
])
def test_a_connection_refused_for_security_says_why_first(details: str, tls: bool | None, first: str) -> None:
    err = from_rpc_error(failure(details), tls=tls)
    assert isinstance(err, Unavailable) and err.message == f"{first} ({details})"


@pytest.mark.parametrize(("details", "tls", "code"), [
    (CLOSED, None, grpc.StatusCode.UNAVAILABLE),  # who knows what the client spoke: gRPC's words alone
    (REFUSED, False, grpc.StatusCode.UNAVAILABLE),  # nothing listens: not a question of security
    (REFUSED, True, grpc.StatusCode.UNAVAILABLE),
    # a router relaying an instance it could not reach: the caller's own connection is fine
    (f"instance echo-1 (127.0.0.1:7001): UNAVAILABLE: {CLOSED} (after 3 attempts)", False, grpc.StatusCode.UNAVAILABLE),
    (CLOSED, False, grpc.StatusCode.INTERNAL),
])
def test_every_other_failure_keeps_grpcs_words(details: str, tls: bool | None, code: grpc.StatusCode) -> None:
    err = from_rpc_error(failure(details, code), tls=tls)
    assert err.code is code and err.message == details
