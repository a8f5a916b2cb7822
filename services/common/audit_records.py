"""The audit log's pure rules: record ids, filters, page tokens, retention arithmetic, status summaries.

No I/O here (`services/common/audit.py` keeps records in etcd); every time is
passed in, so tests drive it.

An audit id is its record's time in UTC, to the microsecond, then random
hex: ``20260510T142233.123456Z-9f3c0a1b2c3d``. Fixed width, so ids (and the
etcd keys made of them) sort by time, and the records older than a moment
are one key range, found without reading a value.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import grpc

from sutradhar._errors import InvalidArgument, SutradharError
from sutradhar._names import ALL_NAMESPACES
from sutradhar.services.common.keys import DEFAULT_NAMESPACE
from sutradhar.v1 import audit_pb2 as pb

_STAMP: Final = "%Y%m%dT%H%M%S.%fZ"
_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{1,32}$")

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000

MAX_REASON_BYTES: Final = 512
"""Longest reason or status message a record keeps (UTF-8 bytes)."""
MAX_REQUEST_ID_CHARS: Final = 128
"""Longest caller-supplied x-request-id a record keeps."""


def stamp(at: datetime) -> str:
    """`at` as the fixed-width UTC text an audit id starts with."""
    return at.astimezone(UTC).strftime(_STAMP)


def new_audit_id(at: datetime, random_hex: str) -> str:
    """The id of a record received at `at`; `random_hex` keeps two ids of one microsecond apart."""
    return f"{stamp(at)}-{random_hex}"


def is_audit_id(text: str) -> bool:
    """True when `text` has the shape `new_audit_id` gives."""
    return bool(_ID.match(text))


def time_of(audit_id: str) -> datetime:
    """The time an audit id was made for."""
    return datetime.strptime(audit_id.split("-", 1)[0], _STAMP).replace(tzinfo=UTC)


def first_id_at(at: datetime) -> str:
    """A string that sorts before every id made at or after `at` and after every id made before it."""
    return stamp(at).removesuffix("Z")


def cut(text: str, limit: int = MAX_REASON_BYTES) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, saying so."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 24].decode(errors="ignore") + f"... ({len(raw)} bytes)"


def request_id_from(value: str) -> str:
    """A caller's x-request-id as a record keeps it: printable ASCII, cut to MAX_REQUEST_ID_CHARS."""
    kept = "".join(c for c in value if " " < c <= "~")
    return kept[:MAX_REQUEST_ID_CHARS]


def status_of(err: BaseException | None) -> tuple[str, str]:
    """(status code name, status message) for a call that ended with `err` (None: OK).

    Only a refusal's message is kept (authentication and authorization write
    those to name principal, verb, resource and namespace, never a secret);
    any other error may quote the request, so the record keeps its kind and
    the field it names, not its message.
    """
    if err is None:
        return "OK", ""
    if isinstance(err, SutradharError):
        if is_refusal(err):
            return err.code.name, cut(err.message)
        return err.code.name, type(err).__name__ + (f" (field {err.field})" if err.field else "")
    return "INTERNAL", type(err).__name__


def is_refusal(err: BaseException) -> bool:
    """True for UNAUTHENTICATED and PERMISSION_DENIED: the call was denied."""
    return isinstance(err, SutradharError) and err.code in (
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    )


@dataclass(frozen=True)
class AuditFilter:
    """Which records to list or follow; every field given must match."""

    namespace: str = ""
    """Empty means "default"; "*" every namespace."""
    principal: str = ""
    """A full accessor id, or a SPIFFE ID alone (then every token of that identity matches)."""
    verb: str = ""
    resource: str = ""
    decision: int = pb.AUDIT_DECISION_UNSPECIFIED
    """`pb.AUDIT_DECISION_ALLOW` or `..._DENY`; unspecified matches both."""
    since: datetime | None = None
    """Only calls received at or after this time."""

    @classmethod
    def from_proto(cls, message: pb.AuditEventFilter) -> AuditFilter:
        """The filter a request carries."""
        since = message.since.ToDatetime(tzinfo=UTC) if message.HasField("since") else None
        if message.decision not in pb.AuditDecision.values():
            raise InvalidArgument(
                f"filter.decision: {message.decision} is not an AuditDecision", field="filter.decision"
            )
        return cls(
            namespace=message.namespace,
            principal=message.principal,
            verb=message.verb,
            resource=message.resource,
            decision=message.decision,
            since=since,
        )

    def matches(self, event: pb.AuditEvent) -> bool:
        """True when `event` passes every field of the filter."""
        namespace = self.namespace or DEFAULT_NAMESPACE
        if namespace != ALL_NAMESPACES and event.namespace != namespace:
            return False
        if self.principal and not principal_matches(self.principal, event.principal):
            return False
        if self.verb and event.verb != self.verb:
            return False
        if self.resource and event.resource != self.resource:
            return False
        if self.decision and event.decision != self.decision:
            return False
        return not (self.since is not None and event.request_received_time.ToDatetime(tzinfo=UTC) < self.since)


def principal_matches(wanted: str, recorded: str) -> bool:
    """True when `recorded` (``<spiffe-id>`` or ``<spiffe-id> (token <jti>)``) is `wanted`
    or is a token of identity `wanted`."""
    return recorded == wanted or recorded.startswith(f"{wanted} (token ")


def page_size_of(requested: int) -> int:
    """The records per page a request means: 0 is DEFAULT_PAGE_SIZE, at most MAX_PAGE_SIZE."""
    if requested < 0:
        raise InvalidArgument(f"page_size: {requested} is negative; give 0 (the default, 100) to 1000",
                              field="page_size")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def page_token_for(audit_id: str) -> str:
    """The token of the page after the record `audit_id`."""
    return base64.urlsafe_b64encode(audit_id.encode()).decode().rstrip("=")


def after_page_token(token: str) -> str:
    """The audit id a page token continues after; InvalidArgument for a token no server gave."""
    try:
        audit_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        audit_id = ""
    if not is_audit_id(audit_id):
        raise InvalidArgument(
            "page_token: not a token from ListAuditEvents; pass next_page_token of the previous page, "
            "or leave it empty for the first page",
            field="page_token",
        )
    return audit_id


def age_cutoff(now: datetime, retention_age: timedelta) -> str:
    """Records whose ids sort before this are older than `retention_age` at `now`."""
    return first_id_at(now - retention_age)


def over_count(total: int, retention_count: int) -> int:
    """How many of the oldest records go when `total` are kept and `retention_count` may be."""
    return max(0, total - retention_count)


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "MAX_REASON_BYTES",
    "MAX_REQUEST_ID_CHARS",
    "AuditFilter",
    "after_page_token",
    "age_cutoff",
    "cut",
    "first_id_at",
    "is_audit_id",
    "is_refusal",
    "new_audit_id",
    "over_count",
    "page_size_of",
    "page_token_for",
    "principal_matches",
    "request_id_from",
    "stamp",
    "status_of",
    "time_of",
]
