"""One error tree for the whole project, and one table to gRPC status codes.

::

    SutradharError                      (code: UNKNOWN)
    ├── InvalidArgument                 INVALID_ARGUMENT  bad input; `field` names it
    ├── NotFound                        NOT_FOUND
    ├── AlreadyExists                   ALREADY_EXISTS
    ├── FailedPrecondition              FAILED_PRECONDITION
    │   └── Conflict                    ... stale resource_version
    ├── Unavailable                     UNAVAILABLE       no healthy instance, store down
    ├── DeadlineExceeded                DEADLINE_EXCEEDED
    ├── Unauthenticated                 UNAUTHENTICATED
    ├── PermissionDenied                PERMISSION_DENIED
    ├── ResourceExhausted               RESOURCE_EXHAUSTED rate limits, message size
    ├── OutOfRange                      OUT_OF_RANGE      e.g. a compacted watch revision
    ├── Cancelled                       CANCELLED
    └── Internal                        INTERNAL          a bug, never bad input

Servers raise these from domain code; the server interceptor in
`sutradhar.services.common.server` turns them into a status with the
message. Clients turn any `grpc.RpcError` back into the matching class with
`from_rpc_error`, so callers catch one tree whatever side failed.
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


class Conflict(FailedPrecondition):
    """An optimistic-concurrency check failed (stale resource_version)."""


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
    """A bug: an invariant broke. Never used for bad input."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[SutradharError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
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


def from_rpc_error(err: grpc.RpcError) -> SutradharError:
    """Translate a failed gRPC call into the matching SutradharError."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    return error_for_code(code, details or code.name)
