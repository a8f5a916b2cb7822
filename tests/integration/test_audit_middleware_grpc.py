"""The AUDIT stage through a real GrpcHost over loopback, with the registry's servicer on real etcd.

Authentication and authorization here are TEST-ONLY STAND-INS for the stages
another helper builds (`StandInAuthentication`, `StandInAuthorization`): the
principal comes from a test header, admins may do anything and everyone else
may only read. What is tested is the audit stage between them: every allowed
and every denied mutation leaves exactly one record with no secret in it, an
allowed read leaves none, and with the audit log unwritable a mutation fails
UNAVAILABLE without its handler running.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from sutradhar._clients import AuditClient, RegistryClient
from sutradhar._errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from sutradhar._hosting import GrpcHost
from sutradhar._identity import SpiffeId
from sutradhar._middleware import Method, Stage, Streaming, Unary
from sutradhar.services.common import access, principal
from sutradhar.services.common.access import Decision, MethodAccess
from sutradhar.services.common.audit import AuditLog
from sutradhar.services.common.audit_middleware import audit_stages
from sutradhar.services.common.audit_records import AuditFilter
from sutradhar.services.common.etcd_server import LocalEtcd, free_port
from sutradhar.services.common.keys import encode
from sutradhar.services.common.store import EtcdEndpoint, Store
from sutradhar.services.registry import audit_servicer
from sutradhar.services.registry.agents import Agents
from sutradhar.services.registry.instances import Instances
from sutradhar.services.registry.load_reports import LoadReports
from sutradhar.services.registry.servicer import SERVICE_NAME, RegistryServicer
from sutradhar.services.registry.watch import Watcher
from sutradhar.v1 import audit_pb2 as pb
from sutradhar.v1 import audit_pb2_grpc, registry_pb2, registry_pb2_grpc
from tests.integration.test_registry_support import make_agent

PRINCIPAL_HEADER = "x-test-principal"
"""The stand-in authentication reads the caller's SPIFFE ID from here."""
TOKEN = "eyJhbGciOiJFZERTQSJ9.c2VjcmV0LWNsYWltcw.s3cr3t-signature"
SECRET = "hunter2-do-not-log"
ADMIN = "spiffe://sutradhar.local/ns/default/user/admin"
VIEWER = "spiffe://sutradhar.local/ns/default/user/viewer"

REGISTRY = "/sutradhar.v1.RegistryService/"
TABLE: dict[str, MethodAccess] = {
    f"{REGISTRY}RegisterAgent": MethodAccess(
        "create", "agents", namespace=lambda r: r.agent.namespace, name=lambda r: r.agent.id, mutation=True),
    f"{REGISTRY}DeregisterAgent": MethodAccess(
        "delete", "agents", namespace=lambda r: r.namespace, name=lambda r: r.id, mutation=True),
    f"{REGISTRY}GetAgent": MethodAccess("get", "agents", namespace=lambda r: r.namespace, name=lambda r: r.id),
    f"{REGISTRY}ListAgents": MethodAccess("list", "agents", namespace=lambda r: r.namespace),
    **{f"/sutradhar.v1.AuditService/{name}": MethodAccess("read", "audit", namespace=lambda r: r.filter.namespace)
       for name in ("ListAuditEvents", "WatchAuditEvents")},
}


class StandInAuthentication:
    """TEST-ONLY stand-in for the AUTHENTICATION stage: the principal is the
    SPIFFE ID in the x-test-principal header (a token id when an
    authorization header came too); no header: the REFUSAL slot is filled."""

    stage = Stage.AUTHENTICATION

    @staticmethod
    def _authenticate(context: grpc.aio.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata() or ())
        subject = metadata.get(PRINCIPAL_HEADER)
        if not subject:
            principal.REFUSAL.set(Unauthenticated("no credentials: send a client certificate or a bearer token"))
            return
        token = "authorization" in metadata
        principal.CURRENT.set(principal.Principal(
            identity=SpiffeId.parse(subject), via=principal.TOKEN if token else principal.CERTIFICATE,
            token_id="jti-7" if token else "",
            peer=SpiffeId.parse("spiffe://sutradhar.local/ns/sutradhar-system/service/router") if token else None,
            source=str(context.peer()),
        ))

    def unary(self, method: Method, call_next: Unary) -> Unary:
        if method.infrastructure:
            return call_next

        async def authenticate(request: Any, context: grpc.aio.ServicerContext) -> Any:
            self._authenticate(context)
            return await call_next(request, context)

        return authenticate

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        if method.infrastructure:
            return call_next

        async def authenticate(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            self._authenticate(context)
            async for item in call_next(request, context):
                yield item

        return authenticate


class StandInAuthorization:
    """TEST-ONLY stand-in for the AUTHORIZATION stage: admins may do anything,
    others only what does not mutate; it sets access.DECISION as the real one will."""

    stage = Stage.AUTHORIZATION

    def __init__(self, table: dict[str, MethodAccess]) -> None:
        self.table = table

    def _authorize(self, method: Method, request: Any) -> None:
        refusal = principal.REFUSAL.get()
        if refusal is not None:
            raise refusal
        caller = principal.current()
        entry = access.access_for(method.full_name, self.table)
        if entry is None:
            access.DECISION.set(Decision(False, "no access rule for this method", "", "", "", ""))
            raise PermissionDenied(f"{caller.name} may not call {method.full_name}")
        namespace = entry.namespace(request) or "default"
        allowed = caller.identity.name == "admin" or not entry.mutation
        reason = "stand-in: admin" if caller.identity.name == "admin" else "stand-in: reads only"
        access.DECISION.set(Decision(allowed, reason, entry.verb, entry.resource, namespace, entry.name(request)))
        if not allowed:
            raise PermissionDenied(f"{caller.name} may not {entry.verb} {entry.resource} in namespace {namespace}")

    def unary(self, method: Method, call_next: Unary) -> Unary:
        if method.infrastructure:
            return call_next

        async def authorize(request: Any, context: grpc.aio.ServicerContext) -> Any:
            self._authorize(method, request)
            return await call_next(request, context)

        return authorize

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        if method.infrastructure:
            return call_next

        async def authorize(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            self._authorize(method, request)
            async for item in call_next(request, context):
                yield item

        return authorize


async def serve(store: Store, audit_log: AuditLog) -> GrpcHost:
    """A host with the registry servicer (on `store`) and AuditService (on `audit_log`), audited."""
    host = GrpcHost(
        service_names=[SERVICE_NAME, audit_servicer.SERVICE_NAME],
        middleware=[StandInAuthentication(), *audit_stages(audit_log, table=TABLE), StandInAuthorization(TABLE)],
    )
    host.add_servicer(
        registry_pb2_grpc.add_RegistryServiceServicer_to_server,
        RegistryServicer(Agents(store), Instances(store), Watcher(store), LoadReports(store)),
    )
    audit_servicer.add_audit_service(host, audit_log)
    await host.start()
    return host


@pytest.fixture
async def mesh(store: Store) -> AsyncIterator[tuple[GrpcHost, AuditLog]]:
    audit_log = AuditLog(store)
    host = await serve(store, audit_log)
    try:
        yield host, audit_log
    finally:
        await host.stop(timedelta(0))


def as_(who: str | None, *, token: bool = False, request_id: str = "") -> tuple[tuple[str, str], ...]:
    metadata: list[tuple[str, str]] = []
    if who:
        metadata.append((PRINCIPAL_HEADER, who))
    if token:
        metadata.append(("authorization", f"Bearer {TOKEN}"))
    if request_id:
        metadata.append(("x-request-id", request_id))
    return tuple(metadata)


async def call(address: str, method: str, request: Any, metadata: tuple[tuple[str, str], ...]) -> Any:
    """One registry call with `metadata`; raises the SDK's errors."""
    async with RegistryClient(address) as client:
        stub = registry_pb2_grpc.RegistryServiceStub(client.channel)
        return await client._call(getattr(stub, method)(request, metadata=metadata, timeout=10))


async def records_of(audit_log: AuditLog, namespace: str) -> list[pb.AuditEvent]:
    page = await audit_log.list(AuditFilter(namespace=namespace), page_size=1000)
    return list(page.events)


def assert_no_secret(events: list[pb.AuditEvent]) -> None:
    text = json.dumps([encode(e).decode() for e in events])
    for secret in (TOKEN, "s3cr3t", SECRET, "Bearer"):
        assert secret not in text, f"{secret!r} leaked into an audit record: {text}"


def secret_agent(agent_id: str, namespace: str, **fields: Any) -> registry_pb2.Agent:
    return make_agent(agent_id, namespace, description=f"password {SECRET}",
                      config={"command": ["python", "-m", "echo"], "env": {"API_KEY": SECRET}}, **fields)


async def test_every_allowed_and_denied_mutation_leaves_one_record_and_allowed_reads_none(
    mesh: tuple[GrpcHost, AuditLog], store: Store, unique: str
) -> None:
    host, audit_log = mesh
    register = registry_pb2.RegisterAgentRequest(agent=secret_agent("echo", unique))

    # Allowed mutation, by a token over another identity's connection.
    await call(host.address, "RegisterAgent", register, as_(ADMIN, token=True, request_id="req-42"))
    [allowed] = await records_of(audit_log, unique)
    assert allowed.stage == pb.AUDIT_STAGE_RESPONSE_COMPLETE and allowed.decision == pb.AUDIT_DECISION_ALLOW
    assert (allowed.status_code, allowed.verb, allowed.resource, allowed.name) == ("OK", "create", "agents", "echo")
    assert allowed.principal == f"{ADMIN} (token jti-7)"
    assert allowed.peer == "spiffe://sutradhar.local/ns/sutradhar-system/service/router"
    assert allowed.method == f"{REGISTRY}RegisterAgent" and allowed.request_id == "req-42"
    assert allowed.source.startswith("ipv"), allowed.source
    assert allowed.reason == "stand-in: admin"
    assert allowed.stage_time.ToDatetime() >= allowed.request_received_time.ToDatetime()

    # Allowed reads leave nothing.
    await call(host.address, "GetAgent", registry_pb2.GetAgentRequest(namespace=unique, id="echo"), as_(VIEWER))
    await call(host.address, "ListAgents", registry_pb2.ListAgentsRequest(namespace=unique), as_(VIEWER))
    assert len(await records_of(audit_log, unique)) == 1

    # Denied mutation: one record, and the handler did not run.
    with pytest.raises(PermissionDenied):
        await call(host.address, "DeregisterAgent", registry_pb2.DeregisterAgentRequest(namespace=unique, id="echo"),
                   as_(VIEWER, token=True))
    # Unauthenticated mutation: one record.
    with pytest.raises(Unauthenticated):
        await call(host.address, "RegisterAgent",
                   registry_pb2.RegisterAgentRequest(agent=secret_agent("other", unique)), as_(None, token=True))
    # Allowed but failing mutations: one record each, with their status.
    with pytest.raises(AlreadyExists):
        await call(host.address, "RegisterAgent", register, as_(ADMIN))
    bad = secret_agent("bad", unique, version=f"not-a-version-{SECRET}")
    with pytest.raises(InvalidArgument):
        await call(host.address, "RegisterAgent", registry_pb2.RegisterAgentRequest(agent=bad), as_(ADMIN))
    # Denied read: one record.
    with pytest.raises(Unauthenticated):
        await call(host.address, "GetAgent", registry_pb2.GetAgentRequest(namespace=unique, id="echo"), as_(None))

    events = await records_of(audit_log, unique)
    assert len(events) == 6, [(e.method, e.status_code) for e in events]
    _, denied, unauthenticated, exists, invalid, read_refused = events
    assert (denied.decision, denied.status_code, denied.verb, denied.name) == (
        pb.AUDIT_DECISION_DENY, "PERMISSION_DENIED", "delete", "echo")
    assert denied.stage == pb.AUDIT_STAGE_RESPONSE_COMPLETE
    assert denied.reason == "stand-in: reads only" and "may not delete agents" in denied.status_message
    assert (unauthenticated.decision, unauthenticated.status_code, unauthenticated.principal) == (
        pb.AUDIT_DECISION_DENY, "UNAUTHENTICATED", "")
    assert unauthenticated.reason.startswith("no credentials") and unauthenticated.name == "other"
    assert (exists.decision, exists.status_code) == (pb.AUDIT_DECISION_ALLOW, "ALREADY_EXISTS")
    assert (invalid.status_code, invalid.name) == ("INVALID_ARGUMENT", "bad")
    assert invalid.status_message.startswith("InvalidArgument")  # its kind and field, never the quoted input
    assert (read_refused.verb, read_refused.status_code) == ("get", "UNAUTHENTICATED")
    assert len({e.audit_id for e in events}) == 6 and all(e.request_id for e in events)
    assert_no_secret(events)
    # The denied deregistration did not run.
    assert await Agents(store).get(unique, "echo")


async def test_an_unwritable_audit_log_fails_the_mutation_and_its_handler_never_runs(
    store: Store, unique: str
) -> None:
    root = Path(tempfile.mkdtemp(prefix="sutradhar-audit-down-"))
    audit_etcd = LocalEtcd(root / "data", client_port=free_port(), log_path=root / "etcd.log")
    audit_etcd.start()
    audit_store = Store(EtcdEndpoint.parse(audit_etcd.endpoint), timeout=timedelta(seconds=1))
    host = await serve(store, AuditLog(audit_store))
    try:
        await call(host.address, "RegisterAgent", registry_pb2.RegisterAgentRequest(agent=make_agent("up", unique)),
                   as_(ADMIN))  # written while the audit etcd runs
        audit_etcd.stop()
        with pytest.raises(Unavailable, match="the audit log could not be written; nothing was changed"):
            await call(host.address, "RegisterAgent",
                       registry_pb2.RegisterAgentRequest(agent=make_agent("down", unique)), as_(ADMIN))
        with pytest.raises(Unavailable, match="nothing was changed"):
            await call(host.address, "DeregisterAgent",
                       registry_pb2.DeregisterAgentRequest(namespace=unique, id="up"), as_(ADMIN))
        # Neither handler ran; reads still work (they write no record).
        with pytest.raises(NotFound):
            await Agents(store).get(unique, "down")
        assert await Agents(store).get(unique, "up")
        await call(host.address, "GetAgent", registry_pb2.GetAgentRequest(namespace=unique, id="up"), as_(VIEWER))
    finally:
        await host.stop(timedelta(0))
        await audit_store.close()
        audit_etcd.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_the_audit_service_lists_and_follows_records_and_reading_is_audited_when_denied(
    mesh: tuple[GrpcHost, AuditLog], unique: str
) -> None:
    host, audit_log = mesh
    register = registry_pb2.RegisterAgentRequest(agent=make_agent("echo", unique))
    await call(host.address, "RegisterAgent", register, as_(ADMIN))
    # AuditClient sends no credentials yet (the CLI credentials are another helper's): call its stub as admin.
    async with AuditClient(host.address) as audit:
        stub = audit_pb2_grpc.AuditServiceStub(audit.channel)
        listed = await stub.ListAuditEvents(
            pb.ListAuditEventsRequest(filter=pb.AuditEventFilter(namespace=unique)), metadata=as_(ADMIN), timeout=10)
        assert [e.name for e in listed.events] == ["echo"] and not listed.next_page_token

        followed: list[pb.AuditEvent] = []
        synced = asyncio.Event()

        async def follow() -> None:
            request = pb.WatchAuditEventsRequest(
                filter=pb.AuditEventFilter(namespace=unique, verb="delete"), include_initial=True)
            async for response in stub.WatchAuditEvents(request, metadata=as_(ADMIN)):
                followed.extend(response.events)
                if response.synced:
                    synced.set()
                if len(followed) >= 2:
                    return

        task = asyncio.create_task(follow())
        await asyncio.wait_for(synced.wait(), 10)
        await call(host.address, "DeregisterAgent", registry_pb2.DeregisterAgentRequest(namespace=unique, id="echo"),
                   as_(ADMIN))
        await asyncio.wait_for(task, 10)
        assert [e.stage for e in followed] == [pb.AUDIT_STAGE_REQUEST_RECEIVED, pb.AUDIT_STAGE_RESPONSE_COMPLETE]
        assert {e.audit_id for e in followed} == {followed[0].audit_id}

    # Reading the audit log without credentials is refused, and that refusal is recorded.
    async with AuditClient(host.address) as audit:
        with pytest.raises(Unauthenticated):
            await audit.list_audit_events(namespace=unique, timeout=10)
    events = [e for e in await records_of(audit_log, unique) if e.resource == "audit"]
    assert [(e.verb, e.decision) for e in events] == [("read", pb.AUDIT_DECISION_DENY)]


async def test_the_cli_lists_and_prints_json(mesh: tuple[GrpcHost, AuditLog], unique: str) -> None:
    host, audit_log = mesh
    await call(host.address, "RegisterAgent", registry_pb2.RegisterAgentRequest(agent=make_agent("echo", unique)),
               as_(ADMIN))
    with pytest.raises(PermissionDenied):
        await call(host.address, "RegisterAgent",
                   registry_pb2.RegisterAgentRequest(agent=make_agent("nope", unique)), as_(VIEWER))
    # The CLI sends no credentials: its reads are refused by the stand-in, so it reads through a host
    # without authorization: the AuditService alone over the same log.
    reader = GrpcHost(service_names=[audit_servicer.SERVICE_NAME])
    audit_servicer.add_audit_service(reader, audit_log)
    await reader.start()
    try:
        async def cli(*args: str) -> str:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sutradhar.cli.main", "--registry", reader.address, "audit", *args,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err.decode()
            return out.decode()

        table = await cli("-n", unique)
        assert "PRINCIPAL" in table and f"{ADMIN}" in table and "PERMISSION_DENIED" in table
        data = json.loads(await cli("-n", unique, "--decision", "deny", "--since", "10m", "-o", "json"))
        assert [(e["name"], e["decision"], e["status_code"]) for e in data] == [
            ("nope", "AUDIT_DECISION_DENY", "PERMISSION_DENIED")]
        assert json.loads(await cli("-n", unique, "--principal", VIEWER, "--verb", "delete", "-o", "json")) == []
    finally:
        await reader.stop(timedelta(0))

