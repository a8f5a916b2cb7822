"""The certificates `sutradhar up` keeps: issued once, reused while fresh, renewed at 70 %,
keys 0600, services (not etcd, not the admin) able to reach etcd."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from sutradhar._identity import SpiffeId
from sutradhar.cli._pki import MeshPki
from sutradhar.services.common.etcd_server import etcd_client_name


def dns_names(path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_certificates_are_issued_once_and_reused(tmp_path: Path) -> None:
    pki = MeshPki(tmp_path / "pki", "sutradhar.local")
    files = pki.ensure("registry")
    first = files.certificate.read_bytes()
    again = MeshPki(tmp_path / "pki", "sutradhar.local")  # a second `up` on the same state
    assert again.ensure("registry").certificate.read_bytes() == first
    assert files.load().identity == SpiffeId.service("sutradhar.local", "registry")
    assert stat.S_IMODE(files.private_key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pki" / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700


def test_only_services_carry_the_etcd_client_name(tmp_path: Path) -> None:
    pki = MeshPki(tmp_path / "pki", "sutradhar.local")
    name = etcd_client_name("sutradhar.local")
    assert name in dns_names(pki.ensure("router").certificate)
    assert name not in dns_names(pki.ensure("etcd").certificate)
    assert name not in dns_names(pki.ensure("admin").certificate)
    assert pki.ensure("admin").load().identity == SpiffeId.user("sutradhar.local", "sutradhar-system", "admin")


def test_a_certificate_past_seventy_percent_is_renewed(tmp_path: Path) -> None:
    pki = MeshPki(tmp_path / "pki", "sutradhar.local", lifetime=timedelta(seconds=400))
    files = pki.ensure("health")
    first = files.certificate.read_bytes()
    assert pki.renew_due() == []
    renewal = pki._renewals["health"]
    assert renewal.next_renewal is not None
    renewal.next_renewal -= timedelta(seconds=400)  # as if 70 % of its life had passed
    assert pki.renew_due() == ["health"]
    assert files.certificate.read_bytes() != first
