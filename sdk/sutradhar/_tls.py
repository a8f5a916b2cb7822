"""Mutual TLS for every Sutradhar connection: certificates from files, reloaded as they rotate.

A party's TLS material is three PEM files: its certificate (chain), its private
key, and the trust bundle (the mesh CA, or several CAs during a CA rotation).
Whoever issues them — `sutradhar up`'s built-in CA, the scheduler for the
replicas it starts, or an operator's SPIRE, cert-manager or Vault — writes new
files before the old certificate expires; `TlsSource` notices (it looks at the
files at most every `check_interval`) and everything built on it follows:

- servers (`server_credentials`) hand the new certificate to every new
  connection (gRPC's dynamic server credentials); connections already open, and
  the calls on them, go on undisturbed;
- clients (`secure_channel`) get a `RotatingChannel`: a channel that opens a
  fresh gRPC channel with the new material on the first call after a change
  and closes the old one only after its calls in flight have had `grace` to
  finish (gRPC client channels cannot reload credentials).

Every server requires a client certificate chaining to its bundle (gRPC Python
can only require one or not ask). A client that dials a peer it expects names
the peer's identity: `expected=SpiffeId(...)` makes the handshake verify that
the server's certificate holds that identity's DNS name
(`SpiffeId.dns_name`, see `sutradhar._identity`), so an address that answers
with another identity gets no call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sutradhar._errors import FailedPrecondition, InvalidArgument
from sutradhar._identity import SpiffeId

log = logging.getLogger(__name__)

__all__ = [
    "RotatingChannel",
    "TlsFiles",
    "TlsMaterial",
    "TlsSource",
    "identity_of_certificate",
    "peer_spiffe_id",
    "renew_at",
    "secure_channel",
    "server_credentials",
]

#: Fraction of a certificate's lifetime after which it is renewed (Dapr, SPIRE: about 70 %).
RENEW_FRACTION = 0.7
#: How often a `TlsSource` looks at its files for new material.
DEFAULT_CHECK_INTERVAL = timedelta(seconds=5)
#: How long an old client channel keeps serving its calls in flight after a rotation.
DEFAULT_ROTATION_GRACE = timedelta(seconds=60)


def renew_at(not_before: datetime, not_after: datetime, fraction: float = RENEW_FRACTION) -> datetime:
    """When a certificate valid from `not_before` to `not_after` should be renewed."""
    return not_before + (not_after - not_before) * fraction


def identity_of_certificate(certificate: x509.Certificate) -> SpiffeId:
    """The one SPIFFE ID in a certificate's URI SAN; InvalidArgument when there is none or several."""
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise InvalidArgument("the certificate has no subject alternative names, so no SPIFFE ID") from None
    uris = [uri for uri in sans.get_values_for_type(x509.UniformResourceIdentifier) if uri.startswith("spiffe://")]
    if len(uris) != 1:
        raise InvalidArgument(f"the certificate holds {len(uris)} SPIFFE IDs in its URI SAN; it must hold exactly one")
    return SpiffeId.parse(uris[0])


@dataclass(frozen=True)
class TlsMaterial:
    """One party's certificate chain, private key and trust bundle (PEM), checked to fit together."""

    certificate_chain: bytes
    private_key: bytes
    trust_bundle: bytes
    identity: SpiffeId
    not_before: datetime
    not_after: datetime

    @classmethod
    def from_pem(cls, certificate_chain: bytes, private_key: bytes, trust_bundle: bytes) -> TlsMaterial:
        """Parse and check: the chain's first certificate carries one SPIFFE ID and matches the key;
        the bundle holds at least one CA certificate. InvalidArgument saying what does not fit."""
        try:
            chain = x509.load_pem_x509_certificates(certificate_chain)
        except ValueError as err:
            raise InvalidArgument(f"the certificate is not PEM ({err})") from None
        try:
            key = serialization.load_pem_private_key(private_key, password=None)
        except (ValueError, TypeError) as err:
            raise InvalidArgument(f"the private key is not an unencrypted PEM key ({err})") from None
        try:
            bundle = x509.load_pem_x509_certificates(trust_bundle)
        except ValueError as err:
            raise InvalidArgument(f"the trust bundle is not PEM ({err})") from None
        leaf = chain[0]
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidArgument(
                "the private key is not an ECDSA key; gRPC's TLS needs ECDSA (P-256) or RSA keys, "
                "and Sutradhar issues P-256"
            )
        if key.public_key().public_numbers() != leaf.public_key().public_numbers():  # type: ignore[union-attr]
            raise InvalidArgument("the private key does not belong to the certificate")
        if not bundle:
            raise InvalidArgument("the trust bundle holds no certificate")
        return cls(
            certificate_chain=certificate_chain,
            private_key=private_key,
            trust_bundle=trust_bundle,
            identity=identity_of_certificate(leaf),
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
        )

    def renew_at(self) -> datetime:
        return renew_at(self.not_before, self.not_after)

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.not_after


@dataclass(frozen=True)
class TlsFiles:
    """Where a party's certificate, key and trust bundle are."""

    certificate: Path
    private_key: Path
    trust_bundle: Path

    def load(self) -> TlsMaterial:
        """Read and check the three files; FailedPrecondition naming the file and the fix."""
        raw: list[bytes] = []
        for path in (self.certificate, self.private_key, self.trust_bundle):
            try:
                raw.append(path.read_bytes())
            except OSError as err:
                raise FailedPrecondition(
                    f"cannot read {path} ({err.strerror}); `sutradhar up` issues the mesh's certificates, "
                    "or pass --tls-cert-file, --tls-key-file and --tls-ca-file of your own CA"
                ) from None
        try:
            return TlsMaterial.from_pem(*raw)
        except InvalidArgument as err:
            raise FailedPrecondition(f"{self.certificate} / {self.private_key} / {self.trust_bundle}: {err}") from None

    def stamp(self) -> tuple[tuple[int, int, int], ...]:
        """What changes when any file is rewritten (inode, size, mtime)."""
        stamps = []
        for path in (self.certificate, self.private_key, self.trust_bundle):
            try:
                st = os.stat(path)
            except OSError:
                stamps.append((0, 0, 0))
            else:
                stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(stamps)


class TlsSource:
    """The current TLS material of one party, from files (reloaded when they change) or fixed.

    `current()` is cheap enough for every call: it looks at the files at most
    every `check_interval`. `generation` counts the loads, so holders of
    something built from the material (a channel) know when to rebuild it.
    A rewrite that does not parse (a half-written file) keeps the old material
    and is tried again at the next check.
    """

    def __init__(
        self,
        files: TlsFiles | None = None,
        *,
        material: TlsMaterial | None = None,
        check_interval: timedelta = DEFAULT_CHECK_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if (files is None) == (material is None):
            raise ValueError("give TlsSource either files or material")
        self.files = files
        self._interval = check_interval.total_seconds()
        self._monotonic = monotonic
        self._stamp = files.stamp() if files is not None else ()
        self._material = files.load() if files is not None else material
        assert self._material is not None
        self.generation = 1
        self._next_check = monotonic() + self._interval

    @property
    def identity(self) -> SpiffeId:
        return self.current().identity

    def current(self) -> TlsMaterial:
        """The material now; reloads it when the files changed since the last look."""
        if self.files is not None and self._monotonic() >= self._next_check:
            self.reload()
        assert self._material is not None
        return self._material

    def reload(self) -> bool:
        """Look at the files now; True when new material was loaded."""
        if self.files is None:
            return False
        self._next_check = self._monotonic() + self._interval
        stamp = self.files.stamp()
        if stamp == self._stamp:
            return False
        try:
            material = self.files.load()
        except FailedPrecondition as err:
            log.warning("keeping the current certificate: the new files do not load yet: %s", err)
            return False
        self._stamp = stamp
        if material == self._material:
            return False
        self._material = material
        self.generation += 1
        log.info("loaded a new certificate for %s, valid until %s", material.identity, material.not_after.isoformat())
        return True


def server_credentials(source: TlsSource, *, require_client_auth: bool = True) -> grpc.ServerCredentials:
    """Server credentials that pick up rotated material for every new connection and
    require a client certificate chaining to the trust bundle — or, with
    `require_client_auth=False` (a token port), ask for none: the server is
    authenticated to the client, and the caller must bring a bearer token."""

    def configuration(material: TlsMaterial) -> Any:
        return grpc.ssl_server_certificate_configuration(
            [(material.private_key, material.certificate_chain)], root_certificates=material.trust_bundle
        )

    served = [source.generation]

    def fetch() -> Any:
        material = source.current()
        if source.generation == served[0]:
            return None
        served[0] = source.generation
        return configuration(material)

    return grpc.dynamic_ssl_server_credentials(
        configuration(source.current()), fetch, require_client_authentication=require_client_auth
    )


def peer_spiffe_id(context: grpc.aio.ServicerContext) -> bytes | None:
    """The SPIFFE ID of the calling peer's certificate (raw bytes), None when it presented none
    or more than one (as gRPC's own ``peer_spiffe_id``). Read from `peer_identities()` (the
    certificate's SANs, about 1.5 µs a call) rather than `auth_context()`, which rebuilds a
    dictionary holding the whole PEM certificate on every call (about 12 µs)."""
    identities = context.peer_identities()
    if not identities:
        return None
    found = [value for value in identities if value.startswith(b"spiffe://")]
    return found[0] if len(found) == 1 else None


def channel_credentials(material: TlsMaterial) -> grpc.ChannelCredentials:
    """Client credentials: present our certificate, trust the bundle."""
    return grpc.ssl_channel_credentials(
        root_certificates=material.trust_bundle,
        private_key=material.private_key,
        certificate_chain=material.certificate_chain,
    )


def expected_peer_options(expected: SpiffeId | None) -> list[tuple[str, str]]:
    """Channel options that make the handshake verify the server is `expected`."""
    return [] if expected is None else [("grpc.ssl_target_name_override", expected.dns_name())]


class _RotatingMultiCallable:
    """A method of a `RotatingChannel`: each call goes to the channel of the current material."""

    __slots__ = ("_args", "_callable", "_generation", "_kind", "_owner")

    def __init__(self, owner: RotatingChannel, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._owner = owner
        self._kind = kind
        self._args = (args, kwargs)
        self._generation = -1
        self._callable: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        channel, generation = self._owner._current()
        if generation != self._generation:
            positional, named = self._args
            self._callable = getattr(channel, self._kind)(*positional, **named)
            self._generation = generation
        return self._callable(*args, **kwargs)


class RotatingChannel:
    """A client channel over mTLS that follows its `TlsSource`: a new gRPC channel after each
    rotation, the old one closed once its calls in flight had `grace` to finish.

    It offers what generated stubs and hand-made callers use of a `grpc.aio.Channel`
    (`unary_unary`, `unary_stream`, `stream_unary`, `stream_stream`, `close`,
    `channel_ready`, `get_state`) and can be passed wherever a channel is expected.
    """

    def __init__(
        self,
        target: str,
        source: TlsSource,
        *,
        options: Sequence[tuple[str, Any]] = (),
        expected: SpiffeId | None = None,
        grace: timedelta = DEFAULT_ROTATION_GRACE,
        call_credentials: grpc.CallCredentials | None = None,
    ) -> None:
        self.target = target
        self.source = source
        self.expected = expected
        self._calls = call_credentials
        self._options = [*options, *expected_peer_options(expected)]
        self._grace = grace.total_seconds()
        self._generation = source.generation
        self._channel = self._open(source.current())
        self._retiring: set[asyncio.Task[None]] = set()

    def _open(self, material: TlsMaterial) -> grpc.aio.Channel:
        credentials = channel_credentials(material)
        if self._calls is not None:
            credentials = grpc.composite_channel_credentials(credentials, self._calls)
        return grpc.aio.secure_channel(self.target, credentials, options=self._options)

    def _current(self) -> tuple[grpc.aio.Channel, int]:
        material = self.source.current()
        if self.source.generation != self._generation:
            old = self._channel
            self._channel = self._open(material)
            self._generation = self.source.generation
            task = asyncio.get_running_loop().create_task(old.close(self._grace))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        return self._channel, self._generation

    @property
    def channel(self) -> grpc.aio.Channel:
        """The gRPC channel of the current material."""
        return self._current()[0]

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _RotatingMultiCallable(self, "unary_unary", args, kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _RotatingMultiCallable(self, "unary_stream", args, kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _RotatingMultiCallable(self, "stream_unary", args, kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _RotatingMultiCallable(self, "stream_stream", args, kwargs)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.channel.get_state(try_to_connect)

    async def channel_ready(self) -> None:
        await self.channel.channel_ready()

    async def close(self, grace: float | None = None) -> None:
        """Close the current channel (and any still retiring)."""
        await self._channel.close(grace)
        for task in list(self._retiring):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def __aenter__(self) -> RotatingChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def secure_channel(
    target: str,
    source: TlsSource,
    *,
    options: Sequence[tuple[str, Any]] = (),
    expected: SpiffeId | None = None,
    call_credentials: grpc.CallCredentials | None = None,
) -> RotatingChannel:
    """An mTLS channel to `target` presenting `source`'s certificate; with `expected`, the
    handshake fails unless the server holds that identity; `call_credentials` (a bearer
    token) go with every call."""
    return RotatingChannel(target, source, options=options, expected=expected, call_credentials=call_credentials)
