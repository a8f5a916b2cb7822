"""The credential file: where a mesh is and how to prove who you are to it (kubeconfig-like).

`sutradhar up` writes (or updates) one context for the mesh it runs and makes it
the current one; the CLI and the SDK's clients read the current context by
default, so no command needs a flag after `up`::

    apiVersion: sutradhar.dev/v1
    kind: Credentials
    current-context: main-1a2b3c4d5e
    contexts:
    - name: main-1a2b3c4d5e
      registry: 127.0.0.1:50051
      router: 127.0.0.1:50052
      scheduler: 127.0.0.1:50053
      health: 127.0.0.1:50054
      bootstrap: 127.0.0.1:50061    # where `sutradhar login` trades a token for a certificate
      trust-domain: sutradhar.local
      certificate-authority: /home/me/.local/state/sutradhar/main-1a2b3c4d5e/pki/bundle.pem
      client-certificate: /home/me/.local/state/sutradhar/main-1a2b3c4d5e/pki/admin.pem
      client-key: /home/me/.local/state/sutradhar/main-1a2b3c4d5e/pki/admin-key.pem
      # token-file: a file holding a bearer token (sutradhar token create), sent on every call
      # insecure: true  (a mesh started with --insecure: plaintext, no credential)

The file lives at ``$SUTRADHAR_CREDENTIALS``, else
``$XDG_CONFIG_HOME/sutradhar/credentials.yaml`` (``~/.config/...``), and is
written 0600. It holds paths, never keys or tokens themselves, so it can be
shown without leaking a secret.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import yaml

from sutradhar._errors import FailedPrecondition, InvalidArgument
from sutradhar._files import write_atomically
from sutradhar._identity import DEFAULT_TRUST_DOMAIN, SpiffeId
from sutradhar._tls import TlsFiles, TlsSource, expected_peer_options, secure_channel

API_VERSION = "sutradhar.dev/v1"
KIND = "Credentials"
SERVICES = ("registry", "router", "scheduler", "health")
ENV = "SUTRADHAR_CREDENTIALS"
CONTEXT_ENV = "SUTRADHAR_CONTEXT"

_FIELDS = {
    "name", *SERVICES, "trust-domain", "certificate-authority", "client-certificate", "client-key",
    "token-file", "insecure", "namespace", "bootstrap",
}


def default_path() -> Path:
    """``$SUTRADHAR_CREDENTIALS``, else ``$XDG_CONFIG_HOME/sutradhar/credentials.yaml``."""
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "sutradhar" / "credentials.yaml"


@dataclass(frozen=True)
class Context:
    """One mesh and one credential for it."""

    name: str
    endpoints: Mapping[str, str] = field(default_factory=dict)
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    certificate_authority: Path | None = None
    client_certificate: Path | None = None
    client_key: Path | None = None
    token_file: Path | None = None
    insecure: bool = False
    namespace: str = ""
    bootstrap: str = ""
    """Where `sutradhar login` trades a token for a certificate (host:port): the registry's token
    port (`sutradhar up` writes it), or its narrower --bootstrap-port."""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str) -> Context:
        unknown = sorted(set(raw) - _FIELDS)
        if unknown:
            raise InvalidArgument(
                f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}"
            )
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"{where}: a context needs a name")

        def path(key: str) -> Path | None:
            value = raw.get(key)
            return Path(value).expanduser() if value else None

        return cls(
            name=name,
            endpoints={svc: str(raw[svc]) for svc in SERVICES if raw.get(svc)},
            trust_domain=str(raw.get("trust-domain") or DEFAULT_TRUST_DOMAIN),
            certificate_authority=path("certificate-authority"),
            client_certificate=path("client-certificate"),
            client_key=path("client-key"),
            token_file=path("token-file"),
            insecure=bool(raw.get("insecure", False)),
            namespace=str(raw.get("namespace") or ""),
            bootstrap=str(raw.get("bootstrap") or ""),
        )

    def to_mapping(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, **dict(self.endpoints), "trust-domain": self.trust_domain}
        if self.bootstrap:
            out["bootstrap"] = self.bootstrap
        for key, value in (
            ("certificate-authority", self.certificate_authority),
            ("client-certificate", self.client_certificate),
            ("client-key", self.client_key),
            ("token-file", self.token_file),
        ):
            if value is not None:
                out[key] = str(value)
        if self.insecure:
            out["insecure"] = True
        if self.namespace:
            out["namespace"] = self.namespace
        return out

    def credentials(self) -> Credentials:
        """What a client presents: TLS from the three files, a token from token-file."""
        if self.insecure:
            return Credentials.insecure()
        tls = None
        if self.client_certificate or self.client_key or self.certificate_authority:
            if not (self.client_certificate and self.client_key and self.certificate_authority):
                raise FailedPrecondition(
                    f"context {self.name!r} needs client-certificate, client-key and certificate-authority together"
                )
            tls = TlsSource(TlsFiles(self.client_certificate, self.client_key, self.certificate_authority))
        token = None
        if self.token_file is not None:
            try:
                token = self.token_file.read_text().strip()
            except OSError as err:
                raise FailedPrecondition(
                    f"context {self.name!r}: cannot read token-file {self.token_file} ({err.strerror})"
                ) from None
        return Credentials(tls=tls, token=token, trust_domain=self.trust_domain,
                           trust_bundle=self.certificate_authority)


@dataclass(frozen=True)
class Credentials:
    """What a client presents to the mesh: a certificate (`tls`), a bearer token (sent on
    every call; with no certificate, to a token port, verifying the server with
    `trust_bundle`), both, or nothing (an insecure, development mesh)."""

    tls: TlsSource | None = None
    token: str | None = field(default=None, repr=False)
    trust_domain: str = ""
    trust_bundle: Path | None = None

    def __post_init__(self) -> None:
        if not self.trust_domain:
            domain = self.tls.identity.trust_domain if self.tls is not None else DEFAULT_TRUST_DOMAIN
            object.__setattr__(self, "trust_domain", domain)

    @classmethod
    def insecure(cls) -> Credentials:
        return cls()

    @property
    def is_insecure(self) -> bool:
        return self.tls is None and self.token is None

    def expected(self, service: str) -> SpiffeId | None:
        """The identity a mesh service must present to these credentials."""
        return None if self.is_insecure else SpiffeId.service(self.trust_domain, service)

    def __repr__(self) -> str:  # never the token
        held = [name for name, value in (("certificate", self.tls), ("token", self.token)) if value] or ["nothing"]
        return f"Credentials({' + '.join(held)}, trust_domain={self.trust_domain!r})"


def open_channel(
    address: str, credentials: Credentials, *, options: Sequence[tuple[str, Any]] = (),
    expected: SpiffeId | None = None,
) -> Any:
    """A channel to `address` presenting `credentials`: mutual TLS (a `RotatingChannel`)
    when they hold a certificate, server-authenticated TLS to a token port when they hold
    only a token, plaintext when they hold nothing."""
    calls = None if credentials.token is None else grpc.access_token_call_credentials(credentials.token)
    if credentials.tls is not None:
        return secure_channel(address, credentials.tls, options=options, expected=expected, call_credentials=calls)
    if calls is not None:
        if credentials.trust_bundle is None:
            raise FailedPrecondition(
                "a token without a client certificate needs the mesh CA to verify the server: set "
                "certificate-authority in the credential file's context (or pass trust_bundle)"
            )
        try:
            bundle = credentials.trust_bundle.read_bytes()
        except OSError as err:
            raise FailedPrecondition(f"cannot read the mesh CA {credentials.trust_bundle} ({err.strerror})") from None
        channel_credentials = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(root_certificates=bundle), calls
        )
        all_options = [*options, *expected_peer_options(expected)]
        return grpc.aio.secure_channel(address, channel_credentials, options=all_options)
    if expected is not None:
        raise ValueError(f"expected={expected} needs tls: an identity is only checked over TLS")
    return grpc.aio.insecure_channel(address, options=list(options))


@dataclass(frozen=True)
class CredentialFile:
    """The parsed file: its contexts and which is current."""

    path: Path
    contexts: tuple[Context, ...] = ()
    current: str = ""

    @classmethod
    def load(cls, path: Path | None = None) -> CredentialFile:
        """Read the file (an absent file has no contexts); InvalidArgument naming what is wrong."""
        path = path or default_path()
        try:
            text = path.read_text()
        except FileNotFoundError:
            return cls(path)
        except OSError as err:
            raise FailedPrecondition(f"cannot read the credential file {path} ({err.strerror})") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise InvalidArgument(f"the credential file {path} is not YAML ({err})") from None
        if not isinstance(raw, dict) or raw.get("kind", KIND) != KIND:
            raise InvalidArgument(f"{path} is not a Sutradhar credential file (kind: {KIND})")
        contexts = tuple(
            Context.from_mapping(item, f"{path}: contexts[{i}]") for i, item in enumerate(raw.get("contexts") or [])
        )
        return cls(path, contexts, str(raw.get("current-context") or ""))

    def context(self, name: str | None = None) -> Context | None:
        """The context called `name` (default: $SUTRADHAR_CONTEXT, else the current one);
        None when the file has none. InvalidArgument for a name it does not hold."""
        wanted = name or os.environ.get(CONTEXT_ENV) or self.current
        if not wanted:
            return None
        for context in self.contexts:
            if context.name == wanted:
                return context
        known = ", ".join(c.name for c in self.contexts) or "none"
        raise InvalidArgument(f"the credential file {self.path} has no context {wanted!r} (it has: {known})")

    def with_context(self, context: Context, *, make_current: bool = True) -> CredentialFile:
        others = tuple(c for c in self.contexts if c.name != context.name)
        return replace(self, contexts=(*others, context), current=context.name if make_current else self.current)

    def save(self) -> None:
        """Write the file atomically, 0600."""
        data = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "current-context": self.current,
            "contexts": [c.to_mapping() for c in self.contexts],
        }
        write_atomically(self.path, yaml.safe_dump(data, sort_keys=False).encode())


@contextlib.contextmanager
def locked(path: Path | None = None) -> Iterator[CredentialFile]:
    """The file, read under an exclusive lock held until the block ends (two `up` at once
    must not lose each other's context); save inside the block."""
    path = path or default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield CredentialFile.load(path)


def default_credentials() -> Credentials:
    """The current context's credentials, or insecure when there is no credential file."""
    context = CredentialFile.load().context()
    return Credentials.insecure() if context is None else context.credentials()
