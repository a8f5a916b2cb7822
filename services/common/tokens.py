"""Bearer tokens: the mesh's issuer key, minting, and verification with a verdict cache.

A token is a JWT signed by the mesh's issuer key (Ed25519, algorithm
``EdDSA``, by default; ECDSA P-256, ``ES256``, accepted)::

    header   {"alg": "EdDSA", "typ": "JWT", "kid": "<key id>"}
    claims   iss  the issuer: the trust domain's SPIFFE ID, spiffe://<trust-domain>
             aud  the mesh: sutradhar:<trust-domain>
             sub  the SPIFFE ID the token stands for (kind user or agent)
             iat, nbf, exp   seconds since the epoch
             jti  a random id: the token's record and its revocation handle
             sutradhar  {"ns": <namespace or "*">, "role": <role>}

`TokenVerifier.verify` refuses every token that is not exactly that: an
algorithm other than EdDSA and ES256 (``none``, HS256 and the rest) is refused
from the header before any key is touched; the signature must verify with one
of the given public keys (several during a key rotation); every claim above
is required; exp, nbf and iat are checked against the injected clock with a
leeway; the subject must be of the issuer's trust domain. Each refusal is an
`Unauthenticated` that says what is wrong and how to get a valid token, and
never quotes the token.

A verified token's verdict is cached (keyed by the SHA-256 of the token,
bounded) until it expires, so a call presenting the same token again costs
one hash and one dict lookup; the revocation check (`is_revoked`, fed by
`token_records.RevocationCache` without an etcd read) runs on every call.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sutradhar._errors import FailedPrecondition, InvalidArgument, Unauthenticated
from sutradhar._identity import AGENT, USER, SpiffeId, validate_trust_domain
from sutradhar._names import ALL_NAMESPACES, is_dns_label
from sutradhar.services.common.principal import Grant

__all__ = [
    "ALGORITHMS",
    "DEFAULT_LEEWAY",
    "EDDSA",
    "ES256",
    "IssuerKey",
    "MintedToken",
    "PublicKey",
    "TokenIssuer",
    "TokenRecord",
    "TokenVerifier",
    "VerifiedToken",
    "load_public_keys",
    "mesh_audience",
    "mesh_issuer",
    "new_token_id",
    "public_key_id",
    "public_keys_pem",
    "utc_now",
]

EDDSA: Final = "EdDSA"
ES256: Final = "ES256"
#: The only algorithms a token may be signed with. Fixed: never read from the token.
ALGORITHMS: Final = (EDDSA, ES256)
#: Claims every token must carry.
REQUIRED_CLAIMS: Final = ("exp", "nbf", "iat", "iss", "aud", "sub", "jti")
#: The private claim with the namespace and role a token grants.
CLAIM: Final = "sutradhar"
#: Clock skew allowed on exp, nbf and iat.
DEFAULT_LEEWAY: Final = timedelta(seconds=30)
#: Verified tokens kept in a verifier's cache at most.
DEFAULT_CACHE_SIZE: Final = 10_000

#: How a refusal tells the caller to get a token (every refusal ends with it).
HOW_TO_GET_ONE: Final = (
    "get a valid token with `sutradhar token create --namespace NS --role ROLE --ttl 1h` "
    "and send it as `authorization: Bearer <token>`"
)

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
Clock = Callable[[], datetime]
"""The current wall-clock time (UTC); injected so tests drive time."""


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


def new_token_id() -> str:
    """A random token id (``jti``): 32 hex digits, 128 bits."""
    return secrets.token_hex(16)


def mesh_issuer(trust_domain: str) -> str:
    """The ``iss`` of a mesh's tokens: the trust domain's SPIFFE ID, ``spiffe://<trust-domain>``."""
    validate_trust_domain(trust_domain)
    return f"spiffe://{trust_domain}"


def mesh_audience(trust_domain: str) -> str:
    """The ``aud`` of a mesh's tokens: ``sutradhar:<trust-domain>``."""
    validate_trust_domain(trust_domain)
    return f"sutradhar:{trust_domain}"


def _trust_domain_of(issuer: str) -> str:
    if not issuer.startswith("spiffe://") or "/" in issuer[len("spiffe://"):]:
        raise InvalidArgument(
            f"token issuer {issuer!r} is not a trust domain's SPIFFE ID (spiffe://<trust-domain>); "
            "pass trust_domain explicitly", field="issuer"
        )
    domain = issuer[len("spiffe://"):]
    validate_trust_domain(domain)
    return domain


def _algorithm_of(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return EDDSA
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return ES256
    raise InvalidArgument(
        f"a {type(key).__name__} cannot sign or verify mesh tokens: use an Ed25519 key (EdDSA) "
        "or an ECDSA P-256 key (ES256)", field="key"
    )


def public_key_id(key: PublicKey) -> str:
    """A key's id (the JWT ``kid``): the first 16 base64url characters of the
    SHA-256 of its SubjectPublicKeyInfo. Names a public key, reveals nothing."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return base64.urlsafe_b64encode(digest.finalize()).decode()[:16]


def public_keys_pem(keys: Sequence[PublicKey]) -> bytes:
    """Several public keys as one PEM bundle (what verifiers are given during a rotation)."""
    return b"".join(
        k.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) for k in keys
    )


def load_public_keys(pem: bytes, *, source: str = "public key bundle") -> list[PublicKey]:
    """Every public key of a PEM bundle (one or more ``PUBLIC KEY`` blocks);
    InvalidArgument naming `source` when one is not an Ed25519 or P-256 key."""
    marker = b"-----END PUBLIC KEY-----"
    blocks = [part + marker for part in pem.split(marker) if part.strip()]
    if not blocks:
        raise InvalidArgument(f"{source} holds no PEM public key (-----BEGIN PUBLIC KEY-----)", field="public_keys")
    out: list[PublicKey] = []
    for block in blocks:
        try:
            key = serialization.load_pem_public_key(block.strip() + b"\n")
        except ValueError as err:
            raise InvalidArgument(f"{source} holds a block that is not a PEM public key ({err})",
                                  field="public_keys") from None
        if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
            raise InvalidArgument(f"{source}: a {type(key).__name__} cannot verify mesh tokens "
                                  "(use Ed25519 or ECDSA P-256)", field="public_keys")
        _algorithm_of(key)
        out.append(key)
    return out


@dataclass(frozen=True)
class IssuerKey:
    """The mesh's token-signing key. Its private half stays in the process
    that mints (the registry); verifiers get `public_pem()` only."""

    private_key: PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        _algorithm_of(self.private_key)

    @property
    def algorithm(self) -> str:
        """``EdDSA`` for an Ed25519 key, ``ES256`` for a P-256 key."""
        return _algorithm_of(self.private_key)

    @property
    def key_id(self) -> str:
        """The ``kid`` tokens signed with this key carry (`public_key_id`)."""
        return public_key_id(self.public_key())

    def public_key(self) -> PublicKey:
        """The public half, for verifiers."""
        return self.private_key.public_key()

    def public_pem(self) -> bytes:
        """The public key as PEM (SubjectPublicKeyInfo)."""
        return public_keys_pem([self.public_key()])

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (for the 0600 key file only)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @classmethod
    def generate(cls, algorithm: str = EDDSA) -> IssuerKey:
        """A new key: Ed25519 for ``EdDSA`` (the default), P-256 for ``ES256``."""
        if algorithm == EDDSA:
            return cls(ed25519.Ed25519PrivateKey.generate())
        if algorithm == ES256:
            return cls(ec.generate_private_key(ec.SECP256R1()))
        raise InvalidArgument(f"token algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}",
                              field="algorithm")

    @classmethod
    def from_pem(cls, pem: bytes, *, source: str = "issuer key") -> IssuerKey:
        """A key from PKCS#8 (or traditional) PEM; InvalidArgument naming `source`
        (never quoting the key) when it is not an Ed25519 or P-256 private key."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as err:
            reason = "it is encrypted" if isinstance(err, TypeError) else "it is not a PEM private key"
            raise InvalidArgument(f"{source} cannot be loaded: {reason}; use an unencrypted Ed25519 or "
                                  "ECDSA P-256 key in PEM", field="key") from None
        if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise InvalidArgument(f"{source}: a {type(key).__name__} cannot sign mesh tokens "
                                  "(use Ed25519 or ECDSA P-256)", field="key")
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> IssuerKey:
        """The key in the PEM file at `path`. FailedPrecondition when the file
        is readable or writable by anyone but its owner (``chmod 600`` it)."""
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            raise FailedPrecondition(
                f"issuer key file {path} has mode {mode:o}: others can read or change it; "
                f"run `chmod 600 {path}` (and replace the key if others may have read it)"
            )
        return cls.from_pem(path.read_bytes(), source=f"issuer key file {path}")

    @classmethod
    def load_or_create(cls, path: Path, *, algorithm: str = EDDSA) -> IssuerKey:
        """The key at `path`, or a new one written there (mode 0600, parent
        directories 0700). Creation is atomic and exclusive: two processes
        starting together end up with the same key."""
        path = Path(path)
        if path.exists():
            return cls.load(path)
        key = cls.generate(algorithm)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates it 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(key.private_pem())
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # fails if another process created it first
            except FileExistsError:
                return cls.load(path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return key


@dataclass(frozen=True)
class TokenRecord:
    """What the mesh keeps about a token it issued: never the token itself."""

    id: str
    """The token's ``jti``."""
    namespace: str
    """The namespace the token grants its role in ("*": every namespace)."""
    subject: SpiffeId
    role: str
    create_time: datetime
    expire_time: datetime
    description: str = ""
    created_by: str = ""
    """The principal that asked for it (its name, e.g. ``spiffe://.../user/admin``)."""
    revoke_time: datetime | None = None


@dataclass(frozen=True)
class MintedToken:
    """A new token and its record. Hand `token` to its holder once; keep only `record`."""

    token: str = field(repr=False)
    record: TokenRecord


@dataclass(frozen=True)
class VerifiedToken:
    """What a verified token says: who, which token, which roles, until when."""

    subject: SpiffeId
    jti: str
    grants: tuple[Grant, ...]
    expires_at: datetime


def _validate_grant(namespace: str, role: str) -> None:
    if namespace != ALL_NAMESPACES and not is_dns_label(namespace):
        raise InvalidArgument(f"namespace {namespace!r} is not a DNS-1123 label or \"*\"", field="namespace")
    if not is_dns_label(role):
        raise InvalidArgument(f"role {role!r} is not a role name (a DNS-1123 label, e.g. viewer)", field="role")


class TokenIssuer:
    """Mints tokens signed with `key` for `issuer` and `audience`."""

    def __init__(self, key: IssuerKey, issuer: str, audience: str, now: Clock = utc_now, *,
                 trust_domain: str | None = None) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.trust_domain = trust_domain or _trust_domain_of(issuer)
        self._now = now
        self._kid = key.key_id

    @classmethod
    def for_mesh(cls, key: IssuerKey, trust_domain: str, now: Clock = utc_now) -> TokenIssuer:
        """The issuer of a mesh: `mesh_issuer` and `mesh_audience` of `trust_domain`."""
        return cls(key, mesh_issuer(trust_domain), mesh_audience(trust_domain), now, trust_domain=trust_domain)

    def mint(self, subject: SpiffeId, namespace: str, role: str, ttl: timedelta, description: str = "", *,
             jti: str | None = None) -> MintedToken:
        """A new token for `subject` granting `role` in `namespace`, valid from now for `ttl`.
        `jti` (default: `new_token_id()`) lets a caller name the subject after the id."""
        if subject.trust_domain != self.trust_domain:
            raise InvalidArgument(f"subject {subject} is not of trust domain {self.trust_domain}", field="subject")
        if subject.kind not in (USER, AGENT):
            raise InvalidArgument(f"subject {subject} is a {subject.kind}; tokens stand for users and agents",
                                  field="subject")
        _validate_grant(namespace, role)
        if ttl <= timedelta(0):
            raise InvalidArgument(f"ttl {ttl} must be positive", field="ttl")
        now = self._now().replace(microsecond=0)
        expires = now + ttl
        jti = jti or new_token_id()
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(subject),
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": jti,
            CLAIM: {"ns": namespace, "role": role},
        }
        token = jwt.encode(claims, self.key.private_key, algorithm=self.key.algorithm,
                           headers={"kid": self._kid, "typ": "JWT"})
        record = TokenRecord(id=jti, namespace=namespace, subject=subject, role=role, create_time=now,
                             expire_time=expires, description=description)
        return MintedToken(token=token, record=record)


def _refuse(what: str) -> Unauthenticated:
    return Unauthenticated(f"bearer token refused: {what}; {HOW_TO_GET_ONE}")


#: PyJWT's exceptions -> what the refusal says (their own messages are not passed on).
_REASONS: Final[tuple[tuple[type[Exception], str], ...]] = (
    (jwt.InvalidSignatureError, "its signature does not verify with the mesh's issuer key (it was signed by "
                                "another key, or changed)"),
    (jwt.InvalidAudienceError, "it is not meant for this mesh (wrong aud)"),
    (jwt.InvalidIssuerError, "it was not issued by this mesh (wrong iss)"),
    (jwt.InvalidAlgorithmError, "its algorithm is not allowed"),
    (jwt.InvalidKeyError, "no issuer key fits its algorithm"),
    (jwt.exceptions.InvalidSubjectError, "its sub is not a string"),
    (jwt.exceptions.InvalidJTIError, "its jti is not a string"),
    (jwt.DecodeError, "it is not a well-formed JWT"),
)


@dataclass
class _Verdict:
    verified: VerifiedToken
    until: float
    """When the cached verdict ends (exp + leeway), in epoch seconds."""


class TokenVerifier:
    """Verifies bearer tokens against the mesh's public keys, caching verdicts.

    `public_keys` may hold several keys during a rotation (old and new); a
    token's ``kid`` picks one, else every key of its algorithm is tried.
    `is_revoked(jti)` is asked on every call, cached or not; it must not do
    I/O (`token_records.RevocationCache.is_revoked`). `decode` is
    `jwt.decode`, injectable so tests can count signature checks.
    """

    def __init__(
        self,
        public_keys: Sequence[PublicKey],
        issuer: str,
        audience: str,
        now: Clock = utc_now,
        leeway: timedelta = DEFAULT_LEEWAY,
        is_revoked: Callable[[str], bool] = lambda _jti: False,
        *,
        trust_domain: str | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        decode: Callable[..., dict[str, Any]] = jwt.decode,
    ) -> None:
        if not public_keys:
            raise InvalidArgument("a token verifier needs at least one public key", field="public_keys")
        self._keys: dict[str, list[PublicKey]] = {alg: [] for alg in ALGORITHMS}
        self._by_kid: dict[str, PublicKey] = {}
        for key in public_keys:
            self._keys[_algorithm_of(key)].append(key)
            self._by_kid[public_key_id(key)] = key
        self.issuer = issuer
        self.audience = audience
        self.trust_domain = trust_domain or _trust_domain_of(issuer)
        self._now = now
        self._leeway = leeway.total_seconds()
        self._is_revoked = is_revoked
        self._cache: dict[bytes, _Verdict] = {}
        self._cache_size = cache_size
        self._decode = decode

    @classmethod
    def for_mesh(cls, public_keys: Sequence[PublicKey], trust_domain: str, now: Clock = utc_now,
                 leeway: timedelta = DEFAULT_LEEWAY,
                 is_revoked: Callable[[str], bool] = lambda _jti: False) -> TokenVerifier:
        """The verifier of a mesh: `mesh_issuer` and `mesh_audience` of `trust_domain`."""
        return cls(public_keys, mesh_issuer(trust_domain), mesh_audience(trust_domain), now, leeway, is_revoked,
                   trust_domain=trust_domain)

    @property
    def cached(self) -> int:
        """How many verdicts the cache holds."""
        return len(self._cache)

    def verify(self, token: str) -> VerifiedToken:
        """What `token` says, or `Unauthenticated` saying why it is refused."""
        digest = hashlib.sha256(token.encode()).digest()
        verdict = self._cache.get(digest)
        if verdict is not None:
            if self._now().timestamp() < verdict.until:
                if self._is_revoked(verdict.verified.jti):
                    del self._cache[digest]
                    raise _refuse(f"token {verdict.verified.jti} was revoked")
                return verdict.verified
            del self._cache[digest]
        verified = self._verify(token)
        self._remember(digest, _Verdict(verified, verified.expires_at.timestamp() + self._leeway))
        return verified

    def _remember(self, digest: bytes, verdict: _Verdict) -> None:
        cache = self._cache
        if len(cache) >= self._cache_size:
            now = self._now().timestamp()
            for key in [k for k, v in cache.items() if v.until <= now]:
                del cache[key]
            while len(cache) >= self._cache_size:
                del cache[next(iter(cache))]  # the oldest entry
        cache[digest] = verdict

    def _keys_for(self, token: str) -> list[PublicKey]:
        """The keys that may check `token`, from its header alone; refuses a
        disallowed algorithm before any key is used."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise _refuse("it is not a well-formed JWT (header.payload.signature, base64url)") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            shown = alg if isinstance(alg, str) and len(alg) <= 16 and alg.isalnum() else "an unknown algorithm"
            raise _refuse(f"its algorithm {shown!r} is not allowed (only {', '.join(ALGORITHMS)}; "
                          "none and HMAC are always refused)")
        kid = header.get("kid")
        if isinstance(kid, str) and kid in self._by_kid:
            key = self._by_kid[kid]
            if _algorithm_of(key) == alg:
                return [key]
        keys = self._keys[alg]
        if not keys:
            raise _refuse(f"it is signed with {alg}, but no issuer key of this mesh uses {alg}")
        return keys

    def _verify(self, token: str) -> VerifiedToken:
        keys = self._keys_for(token)
        claims: dict[str, Any] | None = None
        failure: Exception | None = None
        for key in keys:
            try:
                claims = self._decode(
                    token,
                    key,
                    algorithms=list(ALGORITHMS),
                    audience=self.audience,
                    issuer=self.issuer,
                    options={
                        "require": list(REQUIRED_CLAIMS),
                        # Times are checked below against the injected clock.
                        "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                        "strict_aud": True,
                    },
                )
                break
            except jwt.InvalidSignatureError as err:
                failure = err  # try the next key of a rotation
            except jwt.MissingRequiredClaimError as err:
                raise _refuse(f"it lacks the required claim {err.claim!r}") from None
            except jwt.PyJWTError as err:
                raise _refuse(_reason(err)) from None
        if claims is None:
            raise _refuse(_reason(failure or jwt.InvalidSignatureError()))
        return self._check_claims(claims)

    def _check_claims(self, claims: dict[str, Any]) -> VerifiedToken:
        jti = claims["jti"]
        times: dict[str, int] = {}
        for name in ("iat", "nbf", "exp"):
            value = claims[name]
            if not isinstance(value, int) or isinstance(value, bool):
                raise _refuse(f"its {name} is not a number of seconds")
            times[name] = value
        now = self._now().timestamp()
        expires = datetime.fromtimestamp(times["exp"], UTC)
        if times["exp"] <= now - self._leeway:
            raise _refuse(f"token {jti} expired at {expires.isoformat()}")
        for name in ("nbf", "iat"):
            if times[name] > now + self._leeway:
                start = datetime.fromtimestamp(times[name], UTC).isoformat()
                raise _refuse(f"token {jti} is not valid before {start} ({name}; check this host's clock)")
        try:
            subject = SpiffeId.parse(claims["sub"])
        except InvalidArgument:
            raise _refuse(f"token {jti}: its sub is not a Sutradhar identity (spiffe://<td>/ns/<ns>/<kind>/<name>)") \
                from None
        if subject.trust_domain != self.trust_domain:
            raise _refuse(f"token {jti} stands for {subject}, which is not of this mesh's trust domain "
                          f"{self.trust_domain}")
        if subject.kind not in (USER, AGENT):
            raise _refuse(f"token {jti} stands for a {subject.kind}; tokens stand for users and agents only")
        grant = claims.get(CLAIM)
        ns = grant.get("ns") if isinstance(grant, dict) else None
        role = grant.get("role") if isinstance(grant, dict) else None
        if not isinstance(ns, str) or not isinstance(role, str):
            raise _refuse(f'token {jti} lacks its "{CLAIM}" claim {{"ns": ..., "role": ...}}')
        try:
            _validate_grant(ns, role)
        except InvalidArgument as err:
            raise _refuse(f"token {jti}: {err.message}") from None
        if self._is_revoked(jti):
            raise _refuse(f"token {jti} was revoked")
        return VerifiedToken(subject=subject, jti=jti, grants=(Grant(ns, role),), expires_at=expires)


def _reason(err: Exception) -> str:
    for cls, text in _REASONS:
        if isinstance(err, cls):
            return text
    return "it is not a valid mesh token"
