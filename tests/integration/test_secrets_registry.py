"""Secrets and ConfigMaps through a real registry on the shared etcd: values sealed in etcd's
raw bytes, metadata-only reads, reveal, key rotation across a registry restart, re-encryption."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
from test_secrets_support import raw_etcd_values, registry

from sutradhar._errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from sutradhar._secret_clients import ConfigMapClient, SecretClient
from sutradhar.services.common import keys
from sutradhar.services.common.encryption import PREFIX, add_key, ensure_config_file
from sutradhar.services.registry.config import RegistryConfig
from sutradhar.services.registry.server import RegistryServer

__all__ = ["registry"]  # fixture

VALUE = b"sk-test-5f2c8e1d9a7b"


async def raw_etcd_bytes(etcd: str, prefix: str) -> bytes:
    """Every value under `prefix`, one a line."""
    return b"\n".join(value for _, value in await raw_etcd_values(etcd, prefix))


def sealed_envelopes(raw: bytes) -> list[bytes]:
    """The `sealed` envelopes of the StoredSecret values in `raw` (one a line)."""
    return [base64.b64decode(json.loads(line)["sealed"]) for line in raw.splitlines()]


async def test_values_are_sealed_in_etcd_and_never_in_metadata(registry: RegistryServer, etcd: str,
                                                               unique: str) -> None:
    async with SecretClient(registry.address) as client:
        applied = await client.apply_secret("llm", {"openai": VALUE, "other": b"x"}, namespace=unique)
        assert applied.created and applied.changed
        assert [(k.name, k.size) for k in applied.secret.keys] == [("openai", len(VALUE)), ("other", 1)]
        assert applied.secret.version == 1
        got = await client.get_secret("llm", namespace=unique)
        listed = (await client.list_secrets(namespace=unique)).secrets
        for message in (applied, got, *listed):
            assert VALUE not in message.SerializeToString()
        assert got.encryption_key and got.version == 1
        revealed = await client.reveal_secret("llm", namespace=unique)
        assert revealed.data["openai"] == VALUE
    raw = await raw_etcd_bytes(etcd, keys.kind_prefix(keys.SECRETS, unique))
    assert raw, "the secret is in etcd"
    for form in (VALUE, base64.b64encode(VALUE), b"openai"):
        assert form not in raw
    assert sealed_envelopes(raw)[0].startswith(PREFIX)


async def test_apply_unchanged_keeps_version_changed_bumps_it(registry: RegistryServer, unique: str) -> None:
    async with SecretClient(registry.address) as client:
        await client.apply_secret("s", {"k": b"1"}, namespace=unique)
        again = await client.apply_secret("s", {"k": b"1"}, namespace=unique)
        assert not again.created and not again.changed and again.secret.version == 1
        changed = await client.apply_secret("s", {"k": b"2"}, namespace=unique)
        assert changed.changed and changed.secret.version == 2
        with pytest.raises(Conflict):
            await client.apply_secret("s", {"k": b"3"}, namespace=unique, resource_version=1)
        deleted = await client.delete_secret("s", namespace=unique)
        assert deleted.name == "s"
        with pytest.raises(NotFound):
            await client.get_secret("s", namespace=unique)


async def test_bad_input_names_the_field_never_the_value(registry: RegistryServer, unique: str) -> None:
    async with SecretClient(registry.address) as client:
        with pytest.raises(InvalidArgument, match="not a valid key") as err:
            await client.apply_secret("s", {"bad key!": VALUE}, namespace=unique)
        assert VALUE.decode() not in str(err.value)
        with pytest.raises(InvalidArgument, match="1 MiB"):
            await client.apply_secret("s", {"big": b"x" * (1024 * 1024 + 1)}, namespace=unique)


async def test_configmaps_are_plain(registry: RegistryServer, unique: str) -> None:
    async with ConfigMapClient(registry.address) as client:
        applied = await client.apply_config_map("settings", {"model": "gpt-x"}, namespace=unique)
        assert applied.created and applied.config_map.version == 1
        got = await client.get_config_map("settings", namespace=unique)
        assert dict(got.data) == {"model": "gpt-x"}
        assert [c.name for c in (await client.list_config_maps(namespace=unique)).config_maps] == ["settings"]
        assert not (await client.apply_config_map("settings", {"model": "gpt-x"}, namespace=unique)).changed
        assert (await client.apply_config_map("settings", {"model": "y"}, namespace=unique)).config_map.version == 2
        await client.delete_config_map("settings", namespace=unique)


async def test_rotation_keeps_old_secrets_readable_and_reencrypt_rewrites(etcd: str, tmp_path: Path,
                                                                          unique: str) -> None:
    path = tmp_path / "encryption.yaml"
    first = ensure_config_file(path)
    settings = dict(port=0, etcd=etcd, insecure=True, encryption_config=path)
    server = RegistryServer(RegistryConfig(**settings))
    await server.start()
    try:
        async with SecretClient(server.address) as client:
            for name in ("a", "b"):
                await client.apply_secret(name, {"v": VALUE + name.encode()}, namespace=unique)
    finally:
        await server.stop(timedelta(seconds=1))
    rotated = add_key(path, "key-rotated")
    server = RegistryServer(RegistryConfig(**settings))
    await server.start()
    try:
        async with SecretClient(server.address) as client:
            before = await client.get_secret("a", namespace=unique)
            assert before.encryption_key == first.current.name
            assert (await client.reveal_secret("a", namespace=unique)).data["v"] == VALUE + b"a"
            steps = [s async for s in client.reencrypt_secrets(namespace=unique)]
            assert steps[-1].done and steps[-1].total == 2 and steps[-1].rewritten == 2
            assert [s.examined for s in steps[:-1]] == [1, 2]
            after = await client.get_secret("a", namespace=unique)
            assert after.encryption_key == rotated.current.name
            assert after.version == before.version, "re-encryption does not change the data version"
            again = [s async for s in client.reencrypt_secrets(namespace=unique)]
            assert again[-1].rewritten == 0 and again[-1].unchanged == 2
    finally:
        await server.stop(timedelta(seconds=1))
    raw = await raw_etcd_bytes(etcd, keys.kind_prefix(keys.SECRETS, unique))
    assert all(e.startswith(PREFIX + b"key-rotated:") for e in sealed_envelopes(raw))


async def test_a_registry_without_encryption_config_refuses_secrets(etcd: str, unique: str) -> None:
    server = RegistryServer(RegistryConfig(port=0, etcd=etcd, insecure=True))
    await server.start()
    try:
        async with SecretClient(server.address) as client:
            with pytest.raises(FailedPrecondition, match="--encryption-config"):
                await client.apply_secret("s", {"k": VALUE}, namespace=unique)
        async with ConfigMapClient(server.address) as client:
            assert (await client.apply_config_map("c", {"k": "v"}, namespace=unique)).created
    finally:
        await server.stop(timedelta(seconds=1))


async def test_a_secret_whose_key_was_dropped_is_listed_replaceable_and_deletable(
    etcd: str, tmp_path: Path, unique: str
) -> None:
    path = tmp_path / "encryption.yaml"
    old = ensure_config_file(path)
    settings = dict(port=0, etcd=etcd, insecure=True, encryption_config=path)
    server = RegistryServer(RegistryConfig(**settings))
    await server.start()
    try:
        async with SecretClient(server.address) as client:
            await client.apply_secret("lost", {"v": VALUE}, namespace=unique)
            await client.apply_secret("kept", {"v": VALUE}, namespace=unique)
    finally:
        await server.stop(timedelta(seconds=1))
    add_key(path, "key-only", keep=[])  # the old key is gone: its secrets cannot be opened
    server = RegistryServer(RegistryConfig(**settings))
    await server.start()
    try:
        async with SecretClient(server.address) as client:
            listed = {s.name: s for s in (await client.list_secrets(namespace=unique)).secrets}
            assert listed["lost"].encryption_key == old.current.name and not listed["lost"].keys
            with pytest.raises(FailedPrecondition, match=old.current.name) as err:
                await client.reveal_secret("lost", namespace=unique)
            assert VALUE.decode() not in str(err.value)
            steps = [s async for s in client.reencrypt_secrets(namespace=unique)]
            assert steps[-1].failed == 2 and steps[-1].rewritten == 0
            replaced = await client.apply_secret("kept", {"v": b"new"}, namespace=unique)
            assert not replaced.created and replaced.secret.version == 2
            assert (await client.reveal_secret("kept", namespace=unique)).data["v"] == b"new"
            assert (await client.delete_secret("lost", namespace=unique)).name == "lost"
    finally:
        await server.stop(timedelta(seconds=1))
