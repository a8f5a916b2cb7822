"""The audit log's pure rules without a network: ids sort by time, filters,
page sizes and tokens, retention arithmetic with a fixed clock, what a record
keeps of an error, that the audit stage cannot be wired without its gate, and that it
records a mutation before it runs and completes the record with its status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from sutradhar._errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from sutradhar._middleware import Chain, Method
from sutradhar.cli.audit import parse_since
from sutradhar.services.common import audit_records as records
from sutradhar.services.common.access import MethodAccess
from sutradhar.services.common.audit import Appended, AuditLog
from sutradhar.services.common.audit_middleware import AuditMiddleware
from sutradhar.services.common.audit_records import AuditFilter
from sutradhar.v1 import audit_pb2 as pb

T0 = datetime(2026, 5, 10, 14, 22, 33, 123456, tzinfo=UTC)


def event(**fields: Any) -> pb.AuditEvent:
    e = pb.AuditEvent(namespace="default", verb="create", resource="agents", decision=pb.AUDIT_DECISION_ALLOW,
                      principal="spiffe://sutradhar.local/ns/default/user/alice")
    for name, value in fields.items():
        setattr(e, name, value)
    e.request_received_time.FromDatetime(T0)
    return e


def test_ids_are_fixed_width_and_sort_by_time() -> None:
    audit_id = records.new_audit_id(T0, "9f3c0a1b2c3d")
    assert audit_id == "20260510T142233.123456Z-9f3c0a1b2c3d"
    assert records.is_audit_id(audit_id) and records.time_of(audit_id) == T0
    later = [records.new_audit_id(T0 + timedelta(microseconds=n), "000000000000") for n in (1, 10**6, 10**9)]
    assert sorted([*later, audit_id]) == [audit_id, *later]
    # The range boundary at a time: before every id made then, after every earlier one.
    assert records.new_audit_id(T0 - timedelta(microseconds=1), "ffff") < records.first_id_at(T0) < audit_id


def test_a_filter_matches_every_field_given() -> None:
    assert AuditFilter().matches(event())  # empty namespace means "default"
    assert not AuditFilter().matches(event(namespace="team-a"))
    assert AuditFilter(namespace="*").matches(event(namespace="team-a"))
    assert not AuditFilter(namespace="*", verb="delete").matches(event())
    assert AuditFilter(resource="agents", decision=pb.AUDIT_DECISION_ALLOW).matches(event())
    assert not AuditFilter(decision=pb.AUDIT_DECISION_DENY).matches(event())
    assert AuditFilter(since=T0).matches(event()) and not AuditFilter(since=T0 + timedelta(1)).matches(event())


def test_a_spiffe_id_matches_every_token_of_it_and_nothing_else() -> None:
    alice = "spiffe://sutradhar.local/ns/default/user/alice"
    assert records.principal_matches(alice, alice)
    assert records.principal_matches(alice, f"{alice} (token jti-1)")
    assert records.principal_matches(f"{alice} (token jti-1)", f"{alice} (token jti-1)")
    assert not records.principal_matches(f"{alice} (token jti-1)", f"{alice} (token jti-2)")
    assert not records.principal_matches(alice, f"{alice}ce")


def test_a_filter_from_its_message() -> None:
    message = pb.AuditEventFilter(namespace="*", verb="delete", decision=pb.AUDIT_DECISION_DENY)
    message.since.FromDatetime(T0)
    assert AuditFilter.from_proto(message) == AuditFilter(namespace="*", verb="delete",
                                                          decision=pb.AUDIT_DECISION_DENY, since=T0)
    with pytest.raises(InvalidArgument, match=r"filter\.decision"):
        AuditFilter.from_proto(pb.AuditEventFilter(decision=7))  # type: ignore[arg-type]


def test_page_sizes_and_tokens() -> None:
    assert [records.page_size_of(n) for n in (0, 1, 100, 1000, 5000)] == [100, 1, 100, 1000, 1000]
    with pytest.raises(InvalidArgument, match="page_size"):
        records.page_size_of(-1)
    audit_id = records.new_audit_id(T0, "abc123")
    assert records.after_page_token(records.page_token_for(audit_id)) == audit_id
    for bad in ("x", records.page_token_for("../../agents/default/x"), "!!!"):
        with pytest.raises(InvalidArgument, match="page_token"):
            records.after_page_token(bad)


def test_retention_arithmetic_with_a_fixed_clock() -> None:
    now = T0
    cutoff = records.age_cutoff(now, timedelta(days=30))
    assert records.new_audit_id(now - timedelta(days=30, microseconds=1), "f") < cutoff
    assert records.new_audit_id(now - timedelta(days=30), "0") > cutoff  # exactly the age: kept
    assert [records.over_count(total, 5) for total in (0, 5, 6, 100)] == [0, 0, 1, 95]


def test_a_record_keeps_a_refusals_message_and_only_the_kind_of_any_other_error() -> None:
    assert records.status_of(None) == ("OK", "")
    assert records.status_of(PermissionDenied("alice may not delete agents in namespace a")) == (
        "PERMISSION_DENIED", "alice may not delete agents in namespace a")
    assert records.status_of(InvalidArgument('version "x-hunter2" is not semver', field="agent.version")) == (
        "INVALID_ARGUMENT", "InvalidArgument (field agent.version)")
    assert records.status_of(NotFound('agent "secret-name" not found')) == ("NOT_FOUND", "NotFound")
    assert records.status_of(KeyError("hunter2")) == ("INTERNAL", "KeyError")
    code, message = records.status_of(Unauthenticated("x" * 5000))
    assert code == "UNAUTHENTICATED" and len(message.encode()) <= records.MAX_REASON_BYTES


def test_a_callers_request_id_is_kept_printable_and_short() -> None:
    assert records.request_id_from("req-42") == "req-42"
    assert records.request_id_from("a\nb\x00c d") == "abcd"
    assert len(records.request_id_from("r" * 1000)) == records.MAX_REQUEST_ID_CHARS


def test_since_is_a_duration_back_or_a_time() -> None:
    assert parse_since("") is None
    assert parse_since("10m", now=lambda: T0) == T0 - timedelta(minutes=10)
    assert parse_since("2026-05-10T14:00:00Z") == datetime(2026, 5, 10, 14, tzinfo=UTC)
    with pytest.raises(InvalidArgument, match="--since"):
        parse_since("yesterday")


def test_the_audit_stage_refuses_to_compose_without_its_gate() -> None:
    audit = AuditMiddleware(AuditLog(store=None, now=lambda: T0))  # type: ignore[arg-type]  # never reached

    async def handle(request: Any, context: Any) -> Any:
        return None

    with pytest.raises(RuntimeError, match="without its AuditGate"):
        audit.unary(Method("sutradhar.v1.RegistryService", "RegisterAgent"), handle)
    # With both, the chain composes (gate inside, stage outside), in whatever order they are given.
    chain = Chain([audit.gate, audit])
    chain.unary(Method("sutradhar.v1.RegistryService", "RegisterAgent"), handle)
    assert [type(m).__name__ for m in chain.middleware] == ["Errors", "AuditMiddleware", "AuditGate"]


class MemoryAuditLog(AuditLog):
    """An AuditLog that keeps its records in a list instead of etcd."""

    def __init__(self) -> None:
        super().__init__(store=None, now=lambda: T0)  # type: ignore[arg-type]  # never reached
        self.written: list[tuple[str, str, str]] = []

    async def append(self, event: pb.AuditEvent) -> Appended:
        event.audit_id = event.audit_id or self.new_id()
        self.written.append(("append", pb.AuditStage.Name(event.stage), event.status_code))
        return Appended(event.audit_id, len(self.written))

    async def complete(self, appended: Appended, event: pb.AuditEvent) -> None:
        self.written.append(("complete", pb.AuditStage.Name(event.stage), event.status_code))


def test_a_mutation_is_recorded_before_it_runs_and_completed_with_its_status_unary_and_streaming() -> None:
    log = MemoryAuditLog()
    table = {f"/x.v1.S/{name}": MethodAccess("create", "agents", lambda request: "ns", mutation=True)
             for name in ("Make", "Fail", "MakeMany")}
    audit = AuditMiddleware(log, table=table)
    chain = Chain(audit.stages)

    class Context:
        def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
            return (("x-request-id", "r1"),)

        def peer(self) -> str:
            return "ipv4:127.0.0.1:5000"

        async def abort(self, code: Any, details: str) -> None:
            raise grpc.aio.AbortError()

    async def make(request: Any, context: Any) -> str:
        return "made"

    async def fail(request: Any, context: Any) -> str:
        raise NotFound("no such agent")

    async def make_many(request: Any, context: Any) -> AsyncIterator[int]:
        yield 1
        yield 2

    async def run() -> list[int]:
        assert await chain.unary(Method("x.v1.S", "Make"), make)(None, Context()) == "made"
        with pytest.raises(grpc.aio.AbortError):
            await chain.unary(Method("x.v1.S", "Fail"), fail)(None, Context())
        stream = chain.stream(Method("x.v1.S", "MakeMany", server_streaming=True), make_many)
        return [item async for item in stream(None, Context())]

    assert asyncio.run(run()) == [1, 2]
    received, complete = "AUDIT_STAGE_REQUEST_RECEIVED", "AUDIT_STAGE_RESPONSE_COMPLETE"
    assert log.written == [("append", received, ""), ("complete", complete, "OK"),
                           ("append", received, ""), ("complete", complete, "NOT_FOUND"),
                           ("append", received, ""), ("complete", complete, "OK")]
