"""Clients of SecretService and ConfigMapService (secrets.proto, served by the registry).

`SecretClient` never holds a value it did not ask for: `get_secret`/`list_secrets`
answer metadata (key names and sizes); `reveal_secret` is the one call that returns
values, and needs the `read-value` verb on secrets.
"""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline of one call, passed to grpc, not an asyncio timeout
from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping

from sutradhar._clients import Timeout, _Client, _seconds
from sutradhar.v1 import secrets_pb2, secrets_pb2_grpc

__all__ = ["ConfigMapClient", "SecretClient"]


class SecretClient(_Client):
    """Secrets (SecretService, served by the registry)."""

    _STUB = secrets_pb2_grpc.SecretServiceStub
    _SERVICE = "registry"

    async def apply_secret(
        self, name: str, data: Mapping[str, bytes], *, namespace: str = "", labels: Mapping[str, str] | None = None,
        resource_version: int = 0, timeout: Timeout = None,
    ) -> secrets_pb2.ApplySecretResponse:
        """Create the secret or replace its data; the response holds metadata only."""
        secret = secrets_pb2.Secret(namespace=namespace, name=name, labels=dict(labels or {}),
                                    resource_version=resource_version)
        return await self._call(self._stub.ApplySecret(
            secrets_pb2.ApplySecretRequest(secret=secret, data=dict(data)), timeout=_seconds(timeout)))

    async def get_secret(self, name: str, *, namespace: str = "", timeout: Timeout = None) -> secrets_pb2.Secret:
        """One secret's metadata (key names and sizes); `NotFound` when missing."""
        response = await self._call(self._stub.GetSecret(
            secrets_pb2.GetSecretRequest(namespace=namespace, name=name), timeout=_seconds(timeout)))
        return response.secret

    async def list_secrets(self, *, namespace: str = "", timeout: Timeout = None) -> secrets_pb2.ListSecretsResponse:
        """Metadata of the secrets of `namespace` ("*" for all)."""
        return await self._call(self._stub.ListSecrets(
            secrets_pb2.ListSecretsRequest(namespace=namespace), timeout=_seconds(timeout)))

    async def reveal_secret(
        self, name: str, *, namespace: str = "", timeout: Timeout = None
    ) -> secrets_pb2.RevealSecretResponse:
        """The secret with its values (verb `read-value`)."""
        return await self._call(self._stub.RevealSecret(
            secrets_pb2.RevealSecretRequest(namespace=namespace, name=name), timeout=_seconds(timeout)))

    async def delete_secret(self, name: str, *, namespace: str = "", timeout: Timeout = None) -> secrets_pb2.Secret:
        """Delete a secret and return its metadata; `NotFound` when missing."""
        response = await self._call(self._stub.DeleteSecret(
            secrets_pb2.DeleteSecretRequest(namespace=namespace, name=name), timeout=_seconds(timeout)))
        return response.secret

    async def reencrypt_secrets(
        self, *, namespace: str = ""
    ) -> AsyncGenerator[secrets_pb2.ReencryptSecretsResponse, None]:
        """Rewrite every secret (of `namespace`, "" all) with the current key; yields progress,
        the last response with `done`."""
        call = self._stub.ReencryptSecrets(secrets_pb2.ReencryptSecretsRequest(namespace=namespace))
        async for response in self._iterate(call):
            yield response


class ConfigMapClient(_Client):
    """ConfigMaps (ConfigMapService, served by the registry)."""

    _STUB = secrets_pb2_grpc.ConfigMapServiceStub
    _SERVICE = "registry"

    async def apply_config_map(
        self, name: str, data: Mapping[str, str], *, namespace: str = "", labels: Mapping[str, str] | None = None,
        resource_version: int = 0, timeout: Timeout = None,
    ) -> secrets_pb2.ApplyConfigMapResponse:
        """Create the config map or replace its data."""
        config_map = secrets_pb2.ConfigMap(namespace=namespace, name=name, data=dict(data), labels=dict(labels or {}),
                                           resource_version=resource_version)
        return await self._call(self._stub.ApplyConfigMap(
            secrets_pb2.ApplyConfigMapRequest(config_map=config_map), timeout=_seconds(timeout)))

    async def get_config_map(
        self, name: str, *, namespace: str = "", timeout: Timeout = None
    ) -> secrets_pb2.ConfigMap:
        """One config map; `NotFound` when missing."""
        response = await self._call(self._stub.GetConfigMap(
            secrets_pb2.GetConfigMapRequest(namespace=namespace, name=name), timeout=_seconds(timeout)))
        return response.config_map

    async def list_config_maps(
        self, *, namespace: str = "", timeout: Timeout = None
    ) -> secrets_pb2.ListConfigMapsResponse:
        """The config maps of `namespace` ("*" for all)."""
        return await self._call(self._stub.ListConfigMaps(
            secrets_pb2.ListConfigMapsRequest(namespace=namespace), timeout=_seconds(timeout)))

    async def delete_config_map(
        self, name: str, *, namespace: str = "", timeout: Timeout = None
    ) -> secrets_pb2.ConfigMap:
        """Delete a config map and return it; `NotFound` when missing."""
        response = await self._call(self._stub.DeleteConfigMap(
            secrets_pb2.DeleteConfigMapRequest(namespace=namespace, name=name), timeout=_seconds(timeout)))
        return response.config_map
