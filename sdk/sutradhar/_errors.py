"""One error tree for the whole project, and one table to gRPC status codes.

::

    Exception
    └── SutradharError                  UNKNOWN (or the code it was built with)
        ├── InvalidArgument             INVALID_ARGUMENT   bad input; `field` names it
        ├── NotFound                    NOT_FOUND
        ├── AlreadyExists               ALREADY_EXISTS
        ├── FailedPrecondition          FAILED_PRECONDITION the system is not in a state to do it
        ├── Conflict                    ABORTED            stale resource_version, a lost race: read again, retry
        ├── Unavailable                 UNAVAILABLE        no healthy instance, store down
        ├── DeadlineExceeded            DEADLINE_EXCEEDED
        ├── Unauthenticated             UNAUTHENTICATED
        ├── PermissionDenied            PERMISSION_DENIED
        ├── ResourceExhausted           RESOURCE_EXHAUSTED rate limits, message size
        ├── OutOfRange                  OUT_OF_RANGE       e.g. a compacted watch revision
        ├── Cancelled                   CANCELLED
        └── Internal                    INTERNAL           a bug, never bad input

Each class's `code` is the table, read both ways: servers raise these from
domain code and the errors stage of the middleware chain
(`sutradhar._middleware.Errors`) sends `err.code` with the message; clients
turn any `grpc.RpcError` back into the class of that code with
`from_rpc_error` / `error_for_code`, so callers catch one tree whatever side
failed, and a `Conflict` raised by a server arrives as `Conflict`.
"""

from __future__ import annotations

import grpc


class SutradharError(Exception):
    """Root of every error Sutradhar raises; carries a gRPC status code."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class InvalidArgument(SutradharError):
    """The input is malformed; `field` names the offending field when known."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(SutradharError):
    """The named resource does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(SutradharError):
    """A resource with that name exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(SutradharError):
    """The system is not in a state where the operation can run."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Conflict(SutradharError):
    """An optimistic-concurrency check failed (stale resource_version, a lost
    race); read the resource again and retry. gRPC's ABORTED, as its status
    guide prescribes for read-modify-write conflicts."""

    code = grpc.StatusCode.ABORTED


class Unavailable(SutradharError):
    """A dependency (instance, etcd, a service) cannot be reached now; retryable."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(SutradharError):
    """The caller's deadline passed."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(SutradharError):
    """The call carries no valid credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(SutradharError):
    """The caller may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(SutradharError):
    """A rate limit or size limit was hit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class OutOfRange(SutradharError):
    """A position (e.g. a watch revision) is outside what is available."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Cancelled(SutradharError):
    """The operation was cancelled by the caller."""

    code = grpc.StatusCode.CANCELLED


class Internal(SutradharError):
    """A bug: an invariant broke, or a server answered bytes that do not parse as the method's
    response (gRPC's code for that). Never used for bad input."""

    code = grpc.StatusCode.INTERNAL


#: The class of each status code: every class of the tree but the root, one per code.
_BY_CODE: dict[grpc.StatusCode, type[SutradharError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Conflict,
        Unavailable,
        DeadlineExceeded,
        Unauthenticated,
        PermissionDenied,
        ResourceExhausted,
        OutOfRange,
        Cancelled,
        Internal,
    )
}


def error_for_code(code: grpc.StatusCode, message: str) -> SutradharError:
    """Build the error class that matches a gRPC status code."""
    cls = _BY_CODE.get(code, SutradharError)
    err = cls(message)
    if cls is SutradharError:
        err.code = code
    return err


#: What the TLS library says when the first bytes the peer sends are not a TLS record.
_NOT_TLS = "WRONG_VERSION_NUMBER"
#: How gRPC words a connection the service closed before a call could start (lowered): what a
#: secured service does to a plaintext client, or in the TLS handshake to a client whose
#: certificate it does not take.
_CLOSED = "socket closed"
#: How gRPC begins the message of a call whose own channel could not connect (a router
#: relaying its hop to an instance begins with the instance instead).
_OWN_CONNECTION = ("failed to connect to all addresses", "connections to all backends failing")

#: Said first when a TLS client reached a plaintext service (an "answered in plaintext" line).
PLAINTEXT_PEER = (
    "the service answered in plaintext, not TLS: it runs --insecure (or the address is not a "
    "Sutradhar service's) while this client speaks TLS; reach an insecure mesh with insecure "
    "credentials (its own context of the credential file, or Credentials.insecure()), or a secured "
    "mesh at its address"
)
#: Said first when a plaintext client's connection was closed by the service ("Socket closed").
TLS_SERVICE = (
    "the service closed the connection before any call, as a secured mesh's service does to a "
    "plaintext client, and this client presents no credentials; reach a secured mesh with its "
    "credentials (its context of the credential file, which `sutradhar up` writes, or a "
    "certificate of its CA), or an insecure mesh at its address"
)
#: Said first when a TLS client's connection was closed by the service in the handshake.
CERTIFICATE_REFUSED = (
    "the service closed the connection in the TLS handshake: it did not take this client's "
    "certificate (none, one of another CA, or an expired one); present a current certificate of "
    "the mesh's CA (the credential file's context, which `sutradhar up` writes), or a token at "
    "the mesh's token port"
)


def from_rpc_error(err: grpc.RpcError, *, tls: bool | None = None) -> SutradharError:
    """Translate a failed gRPC call into the matching SutradharError. A client that could not
    connect for a reason of security is told which first, then gRPC's own words: a TLS client
    that reached a plaintext service (gRPC says "Tls handshake failed ... WRONG_VERSION_NUMBER:
    Invalid certificate verification context: OK", which reads like a certificate problem), and,
    when the caller says whether it speaks TLS (`tls`), a service that closed the connection
    at once ("Socket closed", which reads like a service that is down): to a plaintext client,
    it wants TLS; to a TLS client, it did not take its certificate."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else str(err)) or ""
    if code is grpc.StatusCode.UNAVAILABLE and details.startswith(_OWN_CONNECTION):
        if _NOT_TLS in details:
            details = f"{PLAINTEXT_PEER} ({details})"
        elif tls is not None and details.lower().endswith(_CLOSED):
            details = f"{CERTIFICATE_REFUSED if tls else TLS_SERVICE} ({details})"
    return error_for_code(code, details or code.name)
