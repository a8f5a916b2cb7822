"""Bearer tokens (services/common/tokens.py) with real keys and real JWTs: the
issuer key file, minting, and every refusal the verifier owes; the verdict cache."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from sutradhar._errors import FailedPrecondition, InvalidArgument, Unauthenticated
from sutradhar._identity import SpiffeId
from sutradhar.services.common.principal import Grant
from sutradhar.services.common.tokens import (
    ES256,
    IssuerKey,
    TokenIssuer,
    TokenVerifier,
    load_public_keys,
    mesh_audience,
    mesh_issuer,
    public_keys_pem,
)

TD = "sutradhar.local"
T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
ALICE = SpiffeId.user(TD, "team-a", "alice")


class Clock:
    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class CountingDecode:
    """jwt.decode, counted."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        return jwt.decode(*args, **kwargs)


@pytest.fixture(scope="module")
def key() -> IssuerKey:
    return IssuerKey.generate()


def issuer(key: IssuerKey, clock: Clock) -> TokenIssuer:
    return TokenIssuer.for_mesh(key, TD, clock)


def verifier(key: IssuerKey, clock: Clock, revoked: set[str] | None = None, **kw: Any) -> TokenVerifier:
    revoked = revoked if revoked is not None else set()
    return TokenVerifier([key.public_key()], mesh_issuer(TD), mesh_audience(TD), clock,
                         is_revoked=revoked.__contains__, **kw)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**over: Any) -> dict[str, Any]:
    now = int(T0.timestamp())
    out = {"iss": mesh_issuer(TD), "aud": mesh_audience(TD), "sub": str(ALICE), "iat": now, "nbf": now,
           "exp": now + 3600, "jti": "j" * 32, "sutradhar": {"ns": "team-a", "role": "viewer"}}
    out.update(over)
    return {k: v for k, v in out.items() if v is not None}


def signed(key: IssuerKey, **over: Any) -> str:
    return jwt.encode(claims(**over), key.private_key, algorithm=key.algorithm, headers={"kid": key.key_id})


def refusal(v: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as info:
        v.verify(token)
    message = info.value.message
    # never the token or a piece of it (its signature part is the secret-looking bit)
    for part in token.split("."):
        if len(part) >= 8:
            assert part not in message
    assert token not in message
    assert "sutradhar token create" in message
    return message


# -- minting and verifying -----------------------------------------------------


def test_a_minted_token_verifies_with_its_claims(key: IssuerKey) -> None:
    clock = Clock()
    minted = issuer(key, clock).mint(ALICE, "team-a", "viewer", timedelta(hours=1), "ci job")
    assert minted.token not in repr(minted)
    header = jwt.get_unverified_header(minted.token)
    assert header["alg"] == "EdDSA" and header["kid"] == key.key_id
    body = jwt.decode(minted.token, key.public_key(), algorithms=["EdDSA"], audience=mesh_audience(TD),
                      options={"verify_exp": False, "verify_nbf": False, "verify_iat": False})
    assert body["iss"] == "spiffe://sutradhar.local" and body["sub"] == str(ALICE)
    assert body["exp"] - body["iat"] == 3600 and body["nbf"] == body["iat"] == int(T0.timestamp())
    assert body["sutradhar"] == {"ns": "team-a", "role": "viewer"} and len(body["jti"]) == 32
    got = verifier(key, clock).verify(minted.token)
    assert got.subject == ALICE and got.jti == minted.record.id == body["jti"]
    assert got.grants == (Grant("team-a", "viewer"),)
    assert got.expires_at == T0 + timedelta(hours=1) == minted.record.expire_time
    assert minted.record.description == "ci job" and minted.record.role == "viewer"


def test_es256_keys_sign_and_verify_too() -> None:
    clock = Clock()
    es = IssuerKey.generate(ES256)
    minted = issuer(es, clock).mint(ALICE, "team-a", "viewer", timedelta(minutes=5))
    assert jwt.get_unverified_header(minted.token)["alg"] == "ES256"
    assert verifier(es, clock).verify(minted.token).subject == ALICE


def test_during_a_rotation_old_and_new_keys_verify(key: IssuerKey) -> None:
    clock = Clock()
    new = IssuerKey.generate()
    both = TokenVerifier.for_mesh(load_public_keys(public_keys_pem([key.public_key(), new.public_key()])), TD, clock)
    assert both.verify(issuer(key, clock).mint(ALICE, "team-a", "viewer", timedelta(hours=1)).token)
    assert both.verify(issuer(new, clock).mint(ALICE, "team-a", "viewer", timedelta(hours=1)).token)
    # without a kid every key of the algorithm is tried
    no_kid = jwt.encode(claims(), new.private_key, algorithm="EdDSA")
    assert both.verify(no_kid).subject == ALICE


def test_mint_refuses_subjects_of_another_trust_domain_or_kind(key: IssuerKey) -> None:
    iss = issuer(key, Clock())
    with pytest.raises(InvalidArgument, match="trust domain"):
        iss.mint(SpiffeId.user("other.example", "a", "x"), "a", "viewer", timedelta(hours=1))
    with pytest.raises(InvalidArgument, match="users and agents"):
        iss.mint(SpiffeId.service(TD, "registry"), "a", "viewer", timedelta(hours=1))
    with pytest.raises(InvalidArgument, match="role"):
        iss.mint(ALICE, "team-a", "Not A Role", timedelta(hours=1))


# -- refusals ------------------------------------------------------------------


def test_an_expired_token_is_refused_after_the_leeway(key: IssuerKey) -> None:
    clock = Clock()
    token = issuer(key, clock).mint(ALICE, "team-a", "viewer", timedelta(minutes=10)).token
    clock.at = T0 + timedelta(minutes=10, seconds=29)
    assert verifier(key, clock).verify(token)  # within the 30 s leeway
    clock.at = T0 + timedelta(minutes=10, seconds=31)
    assert "expired at 2030-01-02T03:14:05" in refusal(verifier(key, clock), token)


def test_a_not_yet_valid_token_is_refused(key: IssuerKey) -> None:
    later = int(T0.timestamp()) + 600
    token = signed(key, nbf=later, iat=later, exp=later + 600)
    assert "not valid before" in refusal(verifier(key, Clock()), token)
    token = signed(key, iat=later)  # nbf now, but issued in the future
    assert "(iat" in refusal(verifier(key, Clock()), token)


def test_wrong_audience_and_wrong_issuer_are_refused(key: IssuerKey) -> None:
    assert "wrong aud" in refusal(verifier(key, Clock()), signed(key, aud="sutradhar:other.example"))
    assert "wrong aud" in refusal(verifier(key, Clock()), signed(key, aud=[mesh_audience(TD), "x"]))
    assert "wrong iss" in refusal(verifier(key, Clock()), signed(key, iss="spiffe://other.example"))


def test_a_token_signed_by_another_key_is_refused(key: IssuerKey) -> None:
    other = IssuerKey.generate()
    forged = jwt.encode(claims(), other.private_key, algorithm="EdDSA", headers={"kid": key.key_id})
    assert "signature does not verify" in refusal(verifier(key, Clock()), forged)
    # a tampered payload with the real signature
    token = signed(key)
    head, _, sig = token.split(".")
    payload = b64(json.dumps(claims(sutradhar={"ns": "*", "role": "admin"})).encode())
    assert "signature does not verify" in refusal(verifier(key, Clock()), f"{head}.{payload}.{sig}")


def test_alg_none_is_refused_before_any_key_is_used(key: IssuerKey) -> None:
    decode = CountingDecode()
    v = verifier(key, Clock(), decode=decode)
    for alg in ("none", "None", "NONE"):
        token = f"{b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims()).encode())}."
        assert "is not allowed" in refusal(v, token)
    assert decode.calls == 0


def test_hs256_with_the_public_key_as_secret_is_refused(key: IssuerKey) -> None:
    """The classic confusion attack: HMAC keyed with the verifier's public key bytes."""
    decode = CountingDecode()
    v = verifier(key, Clock(), decode=decode)
    secret = key.public_pem()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.key_id}).encode())
    body = b64(json.dumps(claims(sutradhar={"ns": "*", "role": "admin"})).encode())
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    assert "'HS256' is not allowed" in refusal(v, f"{head}.{body}.{sig}")
    for alg in ("HS512", "RS256", "PS256", "ES384"):
        other = f"{b64(json.dumps({'alg': alg}).encode())}.{body}.{sig}"
        assert "is not allowed" in refusal(v, other)
    assert decode.calls == 0


def test_a_token_of_another_trust_domain_is_refused(key: IssuerKey) -> None:
    message = refusal(verifier(key, Clock()), signed(key, sub="spiffe://other.example/ns/team-a/user/alice"))
    assert "not of this mesh's trust domain sutradhar.local" in message


def test_subjects_must_be_users_or_agents_and_grants_well_formed(key: IssuerKey) -> None:
    v = verifier(key, Clock())
    assert "users and agents only" in refusal(v, signed(key, sub=str(SpiffeId.service(TD, "registry"))))
    assert "not a Sutradhar identity" in refusal(v, signed(key, sub="alice"))
    assert "lacks its" in refusal(v, signed(key, sutradhar=None))
    assert "role" in refusal(v, signed(key, sutradhar={"ns": "team-a", "role": ""}))


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"])
def test_every_required_claim_must_be_there(key: IssuerKey, claim: str) -> None:
    assert f"required claim '{claim}'" in refusal(verifier(key, Clock()), signed(key, **{claim: None}))


def test_garbage_is_refused_without_echoing_it(key: IssuerKey) -> None:
    v = verifier(key, Clock())
    for junk in ("not-a-jwt-at-all-secretive", "a.b.c", "eyJhbGciOiJFZERTQSJ9.!!!.xyz12345678"):
        assert "refused" in refusal(v, junk)


def test_a_revoked_token_is_refused_also_from_the_cache(key: IssuerKey) -> None:
    clock = Clock()
    revoked: set[str] = set()
    decode = CountingDecode()
    v = verifier(key, clock, revoked, decode=decode)
    minted = issuer(key, clock).mint(ALICE, "team-a", "viewer", timedelta(hours=1))
    assert v.verify(minted.token) and v.cached == 1
    revoked.add(minted.record.id)
    assert f"token {minted.record.id} was revoked" in refusal(v, minted.token)
    assert v.cached == 0
    assert "was revoked" in refusal(v, minted.token)  # verified again (not cached), refused again
    revoked_first = issuer(key, clock).mint(ALICE, "team-a", "viewer", timedelta(hours=1))
    revoked.add(revoked_first.record.id)
    assert "was revoked" in refusal(v, revoked_first.token)


# -- the verdict cache ---------------------------------------------------------


def test_a_verified_token_is_served_from_the_cache_until_it_expires(key: IssuerKey) -> None:
    clock = Clock()
    decode = CountingDecode()
    v = verifier(key, clock, decode=decode)
    token = issuer(key, clock).mint(ALICE, "team-a", "viewer", timedelta(minutes=5)).token
    first = v.verify(token)
    for _ in range(100):
        assert v.verify(token) is first
    assert decode.calls == 1
    clock.at = T0 + timedelta(minutes=5, seconds=31)
    assert "expired" in refusal(v, token)
    assert decode.calls == 2 and v.cached == 0


def test_refusals_are_not_cached_and_the_cache_is_bounded(key: IssuerKey) -> None:
    clock = Clock()
    decode = CountingDecode()
    v = verifier(key, clock, decode=decode, cache_size=3)
    iss = issuer(key, clock)
    tokens = [iss.mint(ALICE, "team-a", "viewer", timedelta(minutes=5 + i)).token for i in range(5)]
    for t in tokens:
        v.verify(t)
    assert v.cached == 3 and decode.calls == 5
    v.verify(tokens[-1])  # the newest is kept
    assert decode.calls == 5
    v.verify(tokens[0])  # the oldest went
    assert decode.calls == 6
    bad = signed(key, aud="elsewhere")
    for _ in range(3):
        refusal(v, bad)
    assert decode.calls == 9


# -- the issuer key file -------------------------------------------------------


def test_load_or_create_writes_0600_and_loads_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "state" / "issuer.pem"
    key = IssuerKey.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert IssuerKey.load_or_create(path).key_id == key.key_id
    assert [p.name for p in path.parent.iterdir()] == ["issuer.pem"]  # no temporary file left
    assert load_public_keys(key.public_pem())[0] == key.public_key()
    assert b"PRIVATE" not in key.public_pem()
    assert repr(key) == "IssuerKey()"


def test_es256_key_files_work_and_loose_modes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "es.pem"
    key = IssuerKey.load_or_create(path, algorithm=ES256)
    assert IssuerKey.load(path).algorithm == ES256 == key.algorithm
    path.chmod(0o644)
    with pytest.raises(FailedPrecondition, match="chmod 600"):
        IssuerKey.load(path)


def test_keys_that_cannot_sign_tokens_are_refused_without_quoting_them(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(InvalidArgument, match="P-256"):
        IssuerKey.from_pem(p384)
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(InvalidArgument) as info:
        IssuerKey.from_pem(rsa_pem)
    assert "BEGIN" not in info.value.message
    with pytest.raises(InvalidArgument, match="not a PEM private key"):
        IssuerKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n")
    with pytest.raises(InvalidArgument, match="no PEM public key"):
        load_public_keys(b"")
