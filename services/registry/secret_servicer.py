"""The gRPC surface of Secrets (sutradhar.v1.SecretService), hosted by the registry.

Thin: decode, call `SecretStore`, encode. GetSecret, ListSecrets, ApplySecret and
DeleteSecret answer metadata only (key names and sizes, never values); RevealSecret,
authorized as the separate verb `read-value` on `secrets`, is the one answer with
values. Whether a caller may call each is the AUTHORIZATION stage's decision
(services/common/rbac_methods.py). The registry holds the encryption config; without
one every call is FAILED_PRECONDITION saying how to give it one.

Wiring (in `RegistryServer`, secured or not)::

    add_secret_service(host, SecretStore(store, encryption))   # and SECRET_SERVICE_NAME in service_names
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from sutradhar._errors import InvalidArgument
from sutradhar._hosting import GrpcHost
from sutradhar.services.common import principal
from sutradhar.services.registry.secrets import SecretStore
from sutradhar.v1 import secrets_pb2 as pb
from sutradhar.v1 import secrets_pb2_grpc

__all__ = ["SECRET_SERVICE_NAME", "SecretServicer", "add_secret_service", "writer_name"]

SECRET_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SecretService"].full_name


def writer_name() -> str:
    """Who is writing: the caller's principal, or "anonymous" in an insecure mesh."""
    caller = principal.current_or_none()
    return caller.name if caller is not None else "anonymous"


class SecretServicer(secrets_pb2_grpc.SecretServiceServicer):
    """sutradhar.v1.SecretService over a `SecretStore`."""

    def __init__(self, secrets: SecretStore) -> None:
        self._secrets = secrets

    async def ApplySecret(
        self, request: pb.ApplySecretRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplySecretResponse:
        if not request.HasField("secret"):
            raise InvalidArgument("secret: is required (namespace and name)", field="secret")
        stored, created, changed = await self._secrets.apply(request.secret, dict(request.data),
                                                             updated_by=writer_name())
        return pb.ApplySecretResponse(secret=stored, created=created, changed=changed)

    async def GetSecret(self, request: pb.GetSecretRequest, context: grpc.aio.ServicerContext) -> pb.GetSecretResponse:
        return pb.GetSecretResponse(secret=await self._secrets.get(request.namespace, request.name))

    async def ListSecrets(
        self, request: pb.ListSecretsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSecretsResponse:
        found, revision = await self._secrets.list(request.namespace)
        return pb.ListSecretsResponse(secrets=found, revision=revision)

    async def RevealSecret(
        self, request: pb.RevealSecretRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevealSecretResponse:
        record = await self._secrets.reveal(request.namespace, request.name)
        return pb.RevealSecretResponse(secret=record.secret, data=dict(record.data))

    async def DeleteSecret(
        self, request: pb.DeleteSecretRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteSecretResponse:
        return pb.DeleteSecretResponse(secret=await self._secrets.delete(request.namespace, request.name))

    async def ReencryptSecrets(
        self, request: pb.ReencryptSecretsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ReencryptSecretsResponse]:
        last = pb.ReencryptSecretsResponse(key=self._secrets.encryption.current.name)
        async for step in self._secrets.reencrypt(request.namespace):
            last = pb.ReencryptSecretsResponse(examined=step.examined, total=step.total, rewritten=step.rewritten,
                                               unchanged=step.unchanged, secret=step.secret, key=step.key,
                                               failed=step.failed)
            yield last
        last.secret = ""
        last.done = True
        yield last


def add_secret_service(host: GrpcHost, secrets: SecretStore) -> SecretServicer:
    """Register SecretService on `host` (through its middleware chain) and return the servicer."""
    servicer = SecretServicer(secrets)
    host.add_servicer(secrets_pb2_grpc.add_SecretServiceServicer_to_server, servicer)
    return servicer
