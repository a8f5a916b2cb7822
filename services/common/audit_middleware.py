"""The AUDIT stage of the middleware chain: one audit record per mutation and per denied call.

It comes as two middleware made together, `AuditMiddleware.stages`:

- `AuditMiddleware` (``Stage.AUDIT``: inside AUTHENTICATION, outside
  AUTHORIZATION) sees every call end. A call refused by authentication
  (`principal.REFUSAL`) or authorization (UNAUTHENTICATED / PERMISSION_DENIED
  raised inside it) gets one record: RESPONSE_COMPLETE, decision DENY, the
  reason. A mutation whose record was written before its handler is
  completed here with its status.
- `AuditGate` (``Stage.AUDIT_GATE``, so inside AUTHORIZATION and RATE_LIMIT: only calls it
  allowed get there) writes a mutation's record, REQUEST_RECEIVED with
  decision ALLOW, *before* the handler runs. When that write fails the call
  fails UNAVAILABLE and the handler never runs (Nomad's "enforced"
  delivery): a change is never made without its record. So a
  REQUEST_RECEIVED record proves the call was allowed, whether or not its
  completion could be written afterwards (a failed completion is logged
  as an error; the change has happened).

Why two: AUDIT sits outside AUTHORIZATION (it must see denials), so on its
own it could only write before authorization has decided, and a record
reading "allowed" might then belong to a denied call. Every call therefore
leaves exactly one record (a mutation's is written once and completed once,
in place), and allowed reads leave none. `AuditMiddleware` refuses to
compose without its gate, so the pair cannot be half-wired.

What goes in a record: the principal's accessor id (`Principal.name`, never
a token), the peer certificate when it differs, the address, the method's
verb, resource, namespace and name (from the authorization `access.DECISION`
when one was made, else from the `access.ACCESS` table), the decision and
reason, the status code and, for a refusal, its message; for any other
error only its kind and field (messages may quote the request). Never the
request, the metadata, a token or a key. The request id is the caller's
``x-request-id`` metadata, else a generated one.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc

from sutradhar._errors import SutradharError, Unavailable
from sutradhar._middleware import Method, Stage, Streaming, Unary, status_of
from sutradhar.services.common import access, principal
from sutradhar.services.common import audit_records as records
from sutradhar.services.common.access import ACCESS, MethodAccess
from sutradhar.services.common.audit import Appended, AuditLog, timestamp
from sutradhar.services.common.keys import namespace_or_default
from sutradhar.v1 import audit_pb2 as pb

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"


@dataclass
class _Call:
    """One audited mutation in flight: set by `AuditMiddleware`, filled by `AuditGate`."""

    received: datetime
    appended: Appended | None = None
    event: pb.AuditEvent | None = None
    gate_failed: bool = False


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("sutradhar_audit_call", default=None)


def request_id_of(context: grpc.aio.ServicerContext) -> str:
    """The call's request id for its audit record: the caller's ``x-request-id``, else a new one."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str):
            kept = records.request_id_from(value)
            if kept:
                return kept
    return uuid.uuid4().hex


def _read(reader: Callable[[Any], str], request: Any) -> str:
    """A field read by an access entry; "" when the request does not have it."""
    try:
        return str(reader(request))
    except Exception:  # an undecodable or unexpected request still gets a record
        return ""


class AuditMiddleware:
    """``Stage.AUDIT``: records denials and completes mutations (see the module docstring).

    Give the chain both `stages`. `table` is the method access table
    (`access.ACCESS` unless a test passes its own); `now` the clock of the
    records' times (default: the log's).
    """

    stage = Stage.AUDIT

    def __init__(
        self,
        audit_log: AuditLog,
        *,
        table: Mapping[str, MethodAccess] = ACCESS,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.log = audit_log
        self.table = table
        self.now = now or audit_log.now
        self.gate = AuditGate(self)

    @property
    def stages(self) -> tuple[AuditMiddleware, AuditGate]:
        """Both halves, for ``GrpcHost(middleware=[..., *audit.stages, ...])``."""
        return (self, self.gate)

    def _entry(self, method: Method) -> MethodAccess | None:
        return access.access_for(method.full_name, self.table)

    def _is_mutation(self, method: Method, entry: MethodAccess | None) -> bool:
        return not method.infrastructure and entry is not None and entry.mutation

    def _check_gate(self, method: Method) -> None:
        # The chain composes inner stages first, so the gate has seen the method by now.
        if method.full_name not in self.gate.composed:
            raise RuntimeError(
                f"{method.full_name}: AuditMiddleware is in the chain without its AuditGate; "
                "pass both (`*audit_middleware.stages`), or a mutation could run before its record is written"
            )

    # -- composition ----------------------------------------------------------

    def unary(self, method: Method, call_next: Unary) -> Unary:
        """Mutations: complete their record; every method: record a denial."""
        self._check_gate(method)
        entry = self._entry(method)
        if self._is_mutation(method, entry):

            async def audited_mutation(request: Any, context: grpc.aio.ServicerContext) -> Any:
                return await self._mutation(method, entry, call_next, request, context)

            return audited_mutation

        async def audited(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await call_next(request, context)
            except SutradharError as err:
                if records.is_refusal(err):
                    await self._deny(method, entry, request, context, self.now(), err)
                raise

        if entry is None and not method.infrastructure:
            # Not in the table when composed: look again per call, so a table filled
            # after the servers registered their handlers never lets a mutation pass unrecorded.
            async def audited_late(request: Any, context: grpc.aio.ServicerContext) -> Any:
                late = self._entry(method)
                if self._is_mutation(method, late):
                    return await self._mutation(method, late, call_next, request, context)
                return await audited(request, context)

            return audited_late
        return audited

    async def _mutation(
        self, method: Method, entry: MethodAccess | None, call_next: Unary, request: Any,
        context: grpc.aio.ServicerContext,
    ) -> Any:
        async with self._audited_mutation(method, entry, request, context):
            return await call_next(request, context)

    @contextlib.asynccontextmanager
    async def _audited_mutation(
        self, method: Method, entry: MethodAccess | None, request: Any, context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[None]:
        """A mutation's call inside the block, with its `_Call` for the gate; its audit finished when
        the block is left, however (`_finish`, awaited: it writes to etcd, so not `Outcome`)."""
        call = _Call(self.now())
        token = _CALL.set(call)
        try:
            yield
        except BaseException as err:
            _CALL.reset(token)
            await self._finish(method, entry, request, context, call, err)
            raise
        _CALL.reset(token)
        await self._finish(method, entry, request, context, call, None)

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        """As `unary`, for a streaming response (the record completes when the stream ends)."""
        self._check_gate(method)
        entry = self._entry(method)

        async def audited_mutation(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with self._audited_mutation(method, entry, request, context):
                async for item in call_next(request, context):
                    yield item

        async def audited(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in call_next(request, context):
                    yield item
            except SutradharError as err:
                if records.is_refusal(err):
                    await self._deny(method, self._entry(method), request, context, self.now(), err)
                raise

        # No Sutradhar API streams a mutation today; one without an entry when composed is
        # treated as a read (authorization refuses a method without an entry: default deny).
        return audited_mutation if self._is_mutation(method, entry) else audited

    # -- records --------------------------------------------------------------

    def event(
        self,
        method: Method,
        entry: MethodAccess | None,
        request: Any,
        context: grpc.aio.ServicerContext,
        received: datetime,
    ) -> pb.AuditEvent:
        """A record of this call so far: who, from where, what, when; no decision or status yet."""
        caller = principal.current_or_none()
        decision = access.DECISION.get()
        event = pb.AuditEvent(
            audit_id=self.log.new_id(received),
            request_received_time=timestamp(received),
            method=method.full_name,
            request_id=request_id_of(context),
            source=(caller.source if caller is not None and caller.source else "") or str(context.peer() or ""),
        )
        if caller is not None:
            event.principal = caller.name
            if caller.peer is not None and caller.peer != caller.identity:
                event.peer = str(caller.peer)
        cluster = entry is not None and entry.cluster
        if entry is not None:
            event.verb, event.resource, event.name = entry.verb, entry.resource, _read(entry.name, request)
            event.namespace = "" if cluster else namespace_or_default(_read(entry.namespace, request))
        if decision is not None and decision.verb:  # what was decided (an extra check's verb, say)
            event.verb, event.resource, event.name = decision.verb, decision.resource, decision.name
            event.namespace = decision.namespace if cluster else namespace_or_default(decision.namespace)
        return event

    async def _deny(
        self,
        method: Method,
        entry: MethodAccess | None,
        request: Any,
        context: grpc.aio.ServicerContext,
        received: datetime,
        err: SutradharError,
    ) -> None:
        """One RESPONSE_COMPLETE record for a refused call. A failed write is
        logged: the call fails anyway, with its refusal."""
        event = self.event(method, entry, request, context, received)
        self._denied(event, err)
        try:
            await self.log.append(event)
        except SutradharError as write_err:
            log.error(
                "AUDIT RECORD LOST: the denial of %s to %r (audit id %s, request id %s) could not be written: %s",
                method.full_name, event.principal, event.audit_id, event.request_id, write_err,
            )

    @staticmethod
    def _denied(event: pb.AuditEvent, err: SutradharError) -> None:
        decision = access.DECISION.get()
        refusal = principal.REFUSAL.get()
        event.stage = pb.AUDIT_STAGE_RESPONSE_COMPLETE
        event.decision = pb.AUDIT_DECISION_DENY
        event.status_code, event.status_message = records.status_of(err)
        if decision is not None and not decision.allowed and decision.reason:
            event.reason = records.cut(decision.reason)
        elif refusal is not None and event.status_code == grpc.StatusCode.UNAUTHENTICATED.name:
            event.reason = records.cut(refusal.message)
        else:
            event.reason = records.cut(err.message)

    async def _finish(
        self,
        method: Method,
        entry: MethodAccess | None,
        request: Any,
        context: grpc.aio.ServicerContext,
        call: _Call,
        err: BaseException | None,
    ) -> None:
        """End a mutation's audit: complete its record, or write its one record
        when the gate never wrote one."""
        if call.gate_failed:
            return  # the log could not be written; the call fails UNAVAILABLE and changed nothing
        if call.appended is None or call.event is None:
            if isinstance(err, SutradharError) and records.is_refusal(err):
                await self._deny(method, entry, request, context, call.received, err)
                return
            # Stopped between authorization and the gate (a rate limit, a failed check):
            # the handler did not run; the call still leaves its one record.
            event = self.event(method, entry, request, context, call.received)
            decision = access.DECISION.get()
            event.stage = pb.AUDIT_STAGE_RESPONSE_COMPLETE
            if decision is not None:
                event.decision = pb.AUDIT_DECISION_ALLOW if decision.allowed else pb.AUDIT_DECISION_DENY
                event.reason = records.cut(decision.reason)
            event.status_code, event.status_message = _status(err, context)
            try:
                await self.log.append(event)
            except SutradharError as write_err:
                log.error("AUDIT RECORD LOST: %s by %r (audit id %s, request id %s) ended %s unrecorded: %s",
                          method.full_name, event.principal, event.audit_id, event.request_id,
                          event.status_code, write_err)
            return
        event = call.event
        event.stage = pb.AUDIT_STAGE_RESPONSE_COMPLETE
        if isinstance(err, SutradharError) and records.is_refusal(err):
            self._denied(event, err)  # the handler itself refused (e.g. an agent acting for another)
        else:
            event.status_code, event.status_message = _status(err, context)
        try:
            await self.log.complete(call.appended, event)
        except SutradharError as write_err:
            log.error(
                "AUDIT RECORD INCOMPLETE: %s by %r ran (audit id %s, request id %s, status %s) but its completion "
                "could not be written; the record stays at REQUEST_RECEIVED (the call was allowed): %s",
                method.full_name, event.principal, event.audit_id, event.request_id, event.status_code, write_err,
            )


def _status(err: BaseException | None, context: grpc.aio.ServicerContext) -> tuple[str, str]:
    """(code name, message) of a call's end: the code the tracing, metrics and log stages give it
    (`status_of`), the message the audit log keeps of it (`records.status_of`)."""
    if isinstance(err, grpc.aio.AbortError):
        return status_of(err, context), "aborted by the handler"
    if err is not None and not isinstance(err, Exception):
        return status_of(err, context), type(err).__name__
    return records.status_of(err)


class AuditGate:
    """``Stage.AUDIT_GATE``: writes an allowed mutation's record before its handler runs.

    Made by `AuditMiddleware` (use its `stages`); on its own it does nothing.
    """

    stage = Stage.AUDIT_GATE

    def __init__(self, outer: AuditMiddleware) -> None:
        self._outer = outer
        self.composed: set[str] = set()

    async def _write(self, method: Method, request: Any, context: grpc.aio.ServicerContext) -> None:
        call = _CALL.get()
        if call is None:
            return  # not a mutation as the outer stage composed it
        outer = self._outer
        event = outer.event(method, outer._entry(method), request, context, call.received)
        decision = access.DECISION.get()
        event.stage = pb.AUDIT_STAGE_REQUEST_RECEIVED
        event.decision = pb.AUDIT_DECISION_ALLOW
        event.reason = records.cut(decision.reason) if decision is not None else ""
        try:
            call.appended = await outer.log.append(event)
        except SutradharError as err:
            call.gate_failed = True
            raise Unavailable(
                f"the audit log could not be written; nothing was changed ({method.full_name} did not run): "
                f"{err}; retry when the audit log's etcd is reachable"
            ) from err
        call.event = event

    def _skips(self, method: Method) -> bool:
        entry = self._outer._entry(method)
        return method.infrastructure or (entry is not None and not entry.mutation)

    def unary(self, method: Method, call_next: Unary) -> Unary:
        """Mutations: their record first, then the handler."""
        self.composed.add(method.full_name)
        if self._skips(method):
            return call_next

        async def gated(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._write(method, request, context)
            return await call_next(request, context)

        return gated

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        """As `unary`, for a streaming response."""
        self.composed.add(method.full_name)
        if self._skips(method):
            return call_next

        async def gated(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await self._write(method, request, context)
            async for item in call_next(request, context):
                yield item

        return gated


def audit_stages(audit_log: AuditLog, **options: Any) -> tuple[AuditMiddleware, AuditGate]:
    """Both audit middleware for `audit_log` (options as `AuditMiddleware`)."""
    return AuditMiddleware(audit_log, **options).stages


__all__ = ["REQUEST_ID_HEADER", "AuditGate", "AuditMiddleware", "audit_stages", "request_id_of"]
