"""etcd with TLS and client-certificate auth: the store reaches it with a mesh service's
certificate, and nothing without one (plaintext, no certificate, an agent's certificate of
the same CA) reads or writes a key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sutradhar._errors import Unavailable
from sutradhar._identity import SpiffeId
from sutradhar._tls import TlsFiles, TlsSource
from sutradhar.services.common.authority import CertificateAuthority
from sutradhar.services.common.etcd_server import ETCD_SERVICE_NAME, EtcdTls, LocalEtcd, etcd_client_name, free_port
from sutradhar.services.common.store import EtcdEndpoint, Store

TD = "sutradhar.local"


def issue(ca: CertificateAuthority, root: Path, identity: SpiffeId, hosts: list[str]) -> TlsFiles:
    stem = identity.name.replace("/", "-")
    files = TlsFiles(root / f"{stem}.pem", root / f"{stem}-key.pem", root / "bundle.pem")
    ca.issue(identity, hosts=hosts).write(files)
    return files


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, CertificateAuthority, Path]]:
    root = tmp_path_factory.mktemp("etcd-tls")
    ca = CertificateAuthority.load_or_create(root / "pki", TD)
    server_files = issue(ca, root, SpiffeId.service(TD, ETCD_SERVICE_NAME), ["127.0.0.1", "localhost"])
    etcd = LocalEtcd(root / "data", client_port=free_port(), log_path=root / "etcd.log",
                     tls=EtcdTls(server_files, etcd_client_name(TD)))
    etcd.start()
    try:
        yield etcd.endpoint, ca, root
    finally:
        etcd.stop()


async def test_a_mesh_service_certificate_reads_and_writes(secured: tuple[str, CertificateAuthority, Path]) -> None:
    endpoint, ca, root = secured
    files = issue(ca, root, SpiffeId.service(TD, "registry"), [etcd_client_name(TD)])
    async with Store(EtcdEndpoint.parse(endpoint), tls=TlsSource(files)) as store:
        await store.put("/sutradhar/v1/test/a", b"1")
        kv = await store.get("/sutradhar/v1/test/a")
    assert kv is not None and kv.value == b"1"


async def test_plaintext_is_refused(secured: tuple[str, CertificateAuthority, Path]) -> None:
    endpoint, _, _ = secured
    async with Store(EtcdEndpoint.parse(endpoint), timeout=timedelta(seconds=2)) as store:
        with pytest.raises(Unavailable):
            await store.get("/sutradhar/v1/test/a")


async def test_an_agent_certificate_of_the_same_ca_is_refused(secured: tuple[str, CertificateAuthority, Path]) -> None:
    endpoint, ca, root = secured
    files = issue(ca, root, SpiffeId.agent(TD, "team-a", "echo", "echo-1"), [])
    async with Store(EtcdEndpoint.parse(endpoint), tls=TlsSource(files), timeout=timedelta(seconds=2)) as store:
        with pytest.raises(Unavailable):
            await store.put("/sutradhar/v1/test/b", b"stolen")
    service = issue(ca, root, SpiffeId.service(TD, "health"), [etcd_client_name(TD)])
    async with Store(EtcdEndpoint.parse(endpoint), tls=TlsSource(service)) as store:
        assert await store.get("/sutradhar/v1/test/b") is None


async def test_an_etcd_with_another_identity_is_refused(secured: tuple[str, CertificateAuthority, Path]) -> None:
    endpoint, ca, root = secured
    files = issue(ca, root, SpiffeId.service(TD, "router"), [etcd_client_name(TD)])
    wrong = SpiffeId.service(TD, "registry")
    async with Store(EtcdEndpoint.parse(endpoint), tls=TlsSource(files), etcd_identity=wrong,
                     timeout=timedelta(seconds=2)) as store:
        with pytest.raises(Unavailable):
            await store.get("/sutradhar/v1/test/a")
