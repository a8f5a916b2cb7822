"""TLS bootstrapping without a network: what the CA signs (services/common/certificate_requests.py),
how an agent's bootstrap options are checked (ServeSettings.bootstrap_settings), the in-memory
source's renewal loop, and who may mint a bootstrap token (Authorizer.can_grant_agent)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sutradhar._bootstrap import IssuedTlsSource, new_certificate_request, read_token_file
from sutradhar._errors import FailedPrecondition, InvalidArgument, PermissionDenied, SutradharError, Unauthenticated
from sutradhar._identity import SpiffeId
from sutradhar._serve_settings import ServeSettings
from sutradhar._tls import TlsMaterial
from sutradhar.services.common.authority import CertificateAuthority
from sutradhar.services.common.certificate_requests import certificate_lifetime, requested_key
from sutradhar.services.common.principal import CERTIFICATE, TOKEN, Grant, Principal
from sutradhar.services.common.rbac import Authorizer, Binding, BindingIndex

TD = "sutradhar.local"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ECHO = SpiffeId.agent(TD, "team-a", "echo")
CI = SpiffeId.user(TD, "team-a", "ci")
DAY = timedelta(hours=24)


def csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
        names: list[x509.GeneralName] | None = None) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_the_sdks_request_is_accepted_and_names_nothing() -> None:
    key_pem, csr_pem = new_certificate_request()
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert requested_key(csr_pem, ECHO).public_numbers() == key.public_key().public_numbers()
    assert list(x509.load_pem_x509_csr(csr_pem).subject) == []


def test_a_request_may_repeat_the_callers_own_names_only() -> None:
    assert requested_key(csr(names=[x509.UniformResourceIdentifier(str(ECHO)), x509.DNSName(ECHO.dns_name())]),
                         ECHO)
    other = SpiffeId.agent(TD, "team-a", "other")
    for names in ([x509.UniformResourceIdentifier(str(other))], [x509.DNSName("evil.example")]):
        with pytest.raises(PermissionDenied) as refused:
            requested_key(csr(names=names), ECHO)
        assert str(ECHO) in str(refused.value) and "own identity" in str(refused.value)


def test_malformed_forged_and_foreign_key_requests_are_invalid() -> None:
    cases = {
        b"": "is required",
        b"not pem": "is not a PEM certificate signing request",
        b"x" * 20_000: "at most",
        csr(rsa.generate_private_key(public_exponent=65537, key_size=2048)): "ECDSA P-256 keys only",
        csr(ec.generate_private_key(ec.SECP384R1())): "ECDSA P-256 keys only",
    }
    for text, says in cases.items():
        with pytest.raises(InvalidArgument) as refused:
            requested_key(text, ECHO)
        assert says in str(refused.value)


def test_a_request_whose_signature_does_not_verify_is_invalid() -> None:
    import base64
    pem = csr()
    body = b"".join(pem.splitlines()[1:-1])
    der = bytearray(base64.b64decode(body))
    der[-5] ^= 0x01  # inside the signature
    broken = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der)) + \
        b"-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(InvalidArgument) as refused:
        requested_key(broken, ECHO)
    assert "signature does not verify" in str(refused.value)


def test_an_agents_certificate_lives_the_workload_lifetime() -> None:
    for via in (TOKEN, CERTIFICATE):
        caller = Principal(ECHO, via, token_id="j" if via == TOKEN else "", expires_at=NOW + timedelta(minutes=5))
        assert certificate_lifetime(caller, NOW, DAY) == DAY


def test_a_users_certificate_never_outlives_its_credential() -> None:
    token = Principal(CI, TOKEN, token_id="j", grants=(Grant("team-a", "viewer"),),
                      expires_at=NOW + timedelta(minutes=10))
    assert certificate_lifetime(token, NOW, DAY) == timedelta(minutes=10)
    assert certificate_lifetime(token, NOW, timedelta(minutes=1)) == timedelta(minutes=1)
    cert = Principal(CI, CERTIFICATE)
    assert certificate_lifetime(cert, NOW, DAY, peer_not_after=NOW + timedelta(hours=1)) == timedelta(hours=1)
    for caller, end in ((token, NOW + timedelta(seconds=5)), (cert, None)):
        with pytest.raises(Unauthenticated):
            certificate_lifetime(caller if end is None else Principal(CI, TOKEN, token_id="j", expires_at=end),
                                 NOW, DAY, peer_not_after=end)


def test_minting_a_bootstrap_token_needs_that_agents_rules() -> None:
    admin = Principal(SpiffeId.user(TD, "team-a", "adm"), CERTIFICATE)
    operator = Principal(SpiffeId.user(TD, "team-a", "op"), CERTIFICATE)
    authorizer = Authorizer(BindingIndex([Binding("team-a", "a", "admin", (str(admin.identity),)),
                                          Binding("team-a", "o", "operator", (str(operator.identity),))]),
                            trust_domain=TD)
    assert authorizer.can_grant_agent(admin, "echo", "team-a").allowed
    assert not authorizer.can_grant_agent(admin, "echo", "team-b").allowed
    denied = authorizer.can_grant_agent(operator, "echo", "team-a")
    assert not denied.allowed and "create instances 'echo'" in denied.reason
    assert not authorizer.can_grant(admin, "agent", "team-a").allowed  # no binding names role agent


def test_every_role_of_a_person_or_agent_may_get_its_own_certificate() -> None:
    authorizer = Authorizer(BindingIndex(), trust_domain=TD)
    for role in ("viewer", "invoker", "operator", "admin"):
        p = Principal(CI, TOKEN, token_id="j", grants=(Grant("team-a", role),))
        assert authorizer.check(p, "create", "certificates", "team-a", "ci").allowed, role
    agent = Principal(ECHO, CERTIFICATE)
    assert authorizer.check(agent, "create", "certificates", "team-a", "echo").allowed
    assert not authorizer.check(agent, "create", "certificates", "team-a", "other").allowed
    nobody = Principal(CI, CERTIFICATE)
    assert not authorizer.check(nobody, "create", "certificates", "team-a", "ci").allowed


def _settings(tmp_path: Path, **over: object) -> ServeSettings:
    values: dict[str, object] = {"bootstrap": "127.0.0.1:50055", "bootstrap_token_file": tmp_path / "t",
                                 "tls_ca_file": tmp_path / "ca.pem", "registry": "127.0.0.1:50051"}
    values.update(over)
    return ServeSettings(**values)  # type: ignore[arg-type]


def test_bootstrap_options_go_together(tmp_path: Path) -> None:
    bootstrap = _settings(tmp_path).bootstrap_settings("agent echo")
    assert bootstrap is not None and bootstrap.renew_address == "127.0.0.1:50051"
    assert ServeSettings(insecure=True).bootstrap_settings("agent echo") is None
    for over, says in (({"bootstrap_token_file": None}, "--bootstrap-token-file"),
                       ({"bootstrap": None}, "needs --bootstrap HOST:PORT"),
                       ({"insecure": True}, "contradict"),
                       ({"tls_cert_file": tmp_path / "c"}, "must not be given"),
                       ({"tls_ca_file": None}, "--tls-ca-file")):
        with pytest.raises(FailedPrecondition) as refused:
            _settings(tmp_path, **over).bootstrap_settings("agent echo")
        assert says in str(refused.value) and str(refused.value).startswith("agent echo: ")


def test_a_token_file_is_read_never_quoted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "token"
    with pytest.raises(FailedPrecondition) as missing:
        read_token_file(path)
    assert str(path) in str(missing.value)
    path.write_text("  secret-token\n")
    path.chmod(0o644)
    assert read_token_file(path) == "secret-token"
    assert "chmod 600" in caplog.text and "secret-token" not in caplog.text
    path.write_text("\n")
    with pytest.raises(FailedPrecondition, match="empty"):
        read_token_file(path)


def _material(ca: CertificateAuthority, start: datetime, lifetime: timedelta) -> TlsMaterial:
    return ca.issue(ECHO, now=lambda: start, lifetime=lifetime).material()


async def test_the_in_memory_source_renews_at_70_percent_and_retries() -> None:
    ca = CertificateAuthority.create(TD)
    start = datetime.now(UTC)
    first = _material(ca, start, timedelta(seconds=2))
    calls: list[datetime] = []

    async def renew(source: IssuedTlsSource) -> TlsMaterial:
        calls.append(datetime.now(UTC))
        if len(calls) == 1:
            raise SutradharError("registry unreachable")
        return _material(ca, datetime.now(UTC), timedelta(hours=1))

    source = IssuedTlsSource(first, renew=renew)
    task = asyncio.create_task(source.run(rand=lambda: 0.0))
    try:
        for _ in range(100):
            if source.generation == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert source.generation == 2 and len(calls) == 2
    assert calls[0] >= first.renew_at() - timedelta(milliseconds=50)
    assert source.current().not_after > first.not_after and source.identity == ECHO
