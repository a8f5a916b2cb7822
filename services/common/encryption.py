"""Secrets encrypted at rest: the encryption config and the AES-GCM envelope (pure).

The registry encrypts every Secret before it reaches etcd, with a key from an
*encryption config* file modelled on Kubernetes' EncryptionConfiguration: a list
of named 32-byte keys; the first encrypts, every one decrypts::

    apiVersion: sutradhar/v1
    kind: EncryptionConfiguration
    keys:                       # the first encrypts; all decrypt
      - name: key-20260101      # [a-z0-9-], at most 63 characters, unique
        secret: 3q2+7w...=      # base64 of exactly 32 random bytes (AES-256)

The file must be readable by its owner only (0600): the registry refuses one that
the group or others can read, as ssh refuses such a private key. `sutradhar up`
writes one into its state directory (`ensure_config_file`).

A stored ciphertext is an *envelope*::

    sutradhar:enc:aesgcm:v1:<key-name>:<12-byte nonce><ciphertext and 16-byte tag>

The key name says which key decrypts it (so keys rotate: add a new first key,
restart the registry, and old secrets stay readable; `ReencryptSecrets` rewrites
them with the new one). The etcd key the value is stored under is the associated
data: a ciphertext copied to another key (another secret, another namespace) does
not decrypt. Nonces are random (96 bits); NIST SP 800-38D bounds one key to 2^32
random-nonce encryptions, far beyond what a registry writes between rotations.

Nothing here logs, and no error message holds a key or a plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets as _random
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sutradhar._errors import FailedPrecondition, InvalidArgument

__all__ = [
    "API_VERSION",
    "KEY_BYTES",
    "KIND",
    "PREFIX",
    "DecryptionFailed",
    "EncryptionConfig",
    "EncryptionKey",
    "add_key",
    "ensure_config_file",
    "envelope_key_name",
    "is_envelope",
]

API_VERSION: Final = "sutradhar/v1"
KIND: Final = "EncryptionConfiguration"
#: Every envelope starts with this, then the key name and ":".
PREFIX: Final = b"sutradhar:enc:aesgcm:v1:"
#: AES-256.
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_FIELDS: Final = ("apiVersion", "kind", "keys")
_KEY_FIELDS: Final = ("name", "secret")


class DecryptionFailed(FailedPrecondition):
    """A stored ciphertext could not be decrypted: its key is not in the config, or it
    was altered or moved to another key. The message names the key, never a value."""


@dataclass(frozen=True)
class EncryptionKey:
    """One named AES-256 key. Its secret never appears in a repr."""

    name: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_key_name(self.name, field="keys[].name")
        if len(self.secret) != KEY_BYTES:
            raise InvalidArgument(
                f"encryption key {self.name!r} is {len(self.secret)} bytes; it must be exactly {KEY_BYTES} "
                "(generate one with: head -c 32 /dev/urandom | base64)", field="keys[].secret")

    @classmethod
    def generate(cls, name: str) -> EncryptionKey:
        """A new random key."""
        return cls(name, _random.token_bytes(KEY_BYTES))


def check_key_name(name: object, *, field: str = "name") -> None:
    """A key name: a DNS label ([a-z0-9-], at most 63), so it fits the envelope's prefix."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"{field}: {name!r} is not a key name (lower-case letters, digits and '-', at most 63, "
            "starting and ending with a letter or digit)", field=field)


def is_envelope(data: bytes) -> bool:
    """Whether `data` is an envelope of this module (any key)."""
    return data.startswith(PREFIX)


def envelope_key_name(data: bytes) -> str:
    """The name of the key that encrypted `data`; DecryptionFailed when it is no envelope."""
    if not is_envelope(data):
        raise DecryptionFailed("the stored value is not an encrypted envelope (sutradhar:enc:aesgcm:v1:...)")
    name, sep, _ = data[len(PREFIX):].partition(b":")
    if not sep or not name:
        raise DecryptionFailed("the stored envelope names no key")
    return name.decode("ascii", errors="replace")


@dataclass(frozen=True)
class EncryptionConfig:
    """The keys a registry holds: the first encrypts, every one decrypts."""

    keys: tuple[EncryptionKey, ...]
    source: str = "<encryption config>"
    """Where it was read from, for messages."""

    def __post_init__(self) -> None:
        if not self.keys:
            raise InvalidArgument(f"{self.source}: keys: at least one key is required", field="keys")
        seen: set[str] = set()
        for key in self.keys:
            if key.name in seen:
                raise InvalidArgument(f"{self.source}: keys: {key.name!r} is listed twice (names must be unique)",
                                      field="keys")
            seen.add(key.name)

    # -- reading ----------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> EncryptionConfig:
        """Read and check a config file (owner-only permissions required)."""
        p = Path(path)
        try:
            info = p.stat()
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FailedPrecondition(
                f"encryption config {p} does not exist; `sutradhar up` writes one into its state directory, or "
                "write one yourself (docs/secrets.md)") from None
        except OSError as err:
            raise FailedPrecondition(f"cannot read encryption config {p}: {err.strerror}") from None
        except UnicodeDecodeError:
            raise InvalidArgument(f"encryption config {p} is not UTF-8 text", field="encryption_config") from None
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise FailedPrecondition(
                f"encryption config {p} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); it holds "
                f"the keys of every secret: chmod 600 {p}")
        return cls.parse(text, source=str(p))

    @classmethod
    def parse(cls, text: str, *, source: str = "<encryption config>") -> EncryptionConfig:
        """Parse config text; InvalidArgument naming the field (never quoting a key)."""
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            raise InvalidArgument(f"{source} is not valid YAML", field="encryption_config") from None
        if not isinstance(doc, dict):
            raise InvalidArgument(f"{source}: must be a mapping with apiVersion, kind and keys",
                                  field="encryption_config")
        unknown = sorted(set(map(str, doc)) - set(_FIELDS))
        if unknown:
            raise InvalidArgument(f"{source}: unknown field {unknown[0]!r} (valid: {', '.join(_FIELDS)})",
                                  field=unknown[0])
        if doc.get("apiVersion") != API_VERSION:
            raise InvalidArgument(f"{source}: apiVersion must be {API_VERSION!r}", field="apiVersion")
        if doc.get("kind") != KIND:
            raise InvalidArgument(f"{source}: kind must be {KIND!r}", field="kind")
        raw_keys = doc.get("keys")
        if not isinstance(raw_keys, list) or not raw_keys:
            raise InvalidArgument(f"{source}: keys must be a non-empty list of {{name, secret}}", field="keys")
        keys = [_parse_key(item, i, source) for i, item in enumerate(raw_keys)]
        return cls(tuple(keys), source=source)

    def dump(self) -> str:
        """The config as file text (holds the keys: write it 0600)."""
        doc: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "keys": [{"name": k.name, "secret": base64.b64encode(k.secret).decode()} for k in self.keys],
        }
        return "# Sutradhar encryption config: the first key encrypts, every key decrypts. Keep it 0600.\n" + \
            yaml.safe_dump(doc, sort_keys=False)

    # -- using ------------------------------------------------------------------

    @property
    def current(self) -> EncryptionKey:
        """The key new ciphertexts are made with."""
        return self.keys[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Every key's name, the encrypting one first."""
        return tuple(k.name for k in self.keys)

    def _by_name(self) -> Mapping[str, EncryptionKey]:
        return {k.name: k for k in self.keys}

    def encrypt(self, plaintext: bytes, *, associated: bytes) -> bytes:
        """An envelope of `plaintext` under the current key, bound to `associated` (the etcd key)."""
        key = self.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key.secret).encrypt(nonce, plaintext, associated)
        return PREFIX + key.name.encode() + b":" + nonce + sealed

    def decrypt(self, envelope: bytes, *, associated: bytes) -> bytes:
        """The plaintext of an envelope made for `associated`; DecryptionFailed naming the key
        when it is unknown, or when the envelope was altered or made for another etcd key."""
        name = envelope_key_name(envelope)
        key = self._by_name().get(name)
        if key is None:
            raise DecryptionFailed(
                f"the value is encrypted with key {name!r}, which the registry's encryption config "
                f"({self.source}: {', '.join(self.names)}) does not hold; add that key back (after the current "
                "one) and restart the registry")
        body = envelope[len(PREFIX) + len(name.encode()) + 1:]
        if len(body) < NONCE_BYTES + _TAG_BYTES:
            raise DecryptionFailed(f"the envelope under key {name!r} is truncated")
        try:
            return AESGCM(key.secret).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], associated)
        except InvalidTag:
            raise DecryptionFailed(
                f"the value under key {name!r} does not decrypt: it was altered, or copied from another "
                "object's key in etcd") from None

    def needs_rewrite(self, envelope: bytes) -> bool:
        """Whether an envelope was made with another key than the current one."""
        return envelope_key_name(envelope) != self.current.name


def _parse_key(item: Any, index: int, source: str) -> EncryptionKey:
    where = f"keys[{index}]"
    if not isinstance(item, dict):
        raise InvalidArgument(f"{source}: {where} must be a mapping with name and secret", field=where)
    unknown = sorted(set(map(str, item)) - set(_KEY_FIELDS))
    if unknown:
        raise InvalidArgument(f"{source}: {where}: unknown field {unknown[0]!r} (valid: name, secret)",
                              field=f"{where}.{unknown[0]}")
    name = item.get("name")
    if not isinstance(name, str):
        raise InvalidArgument(f"{source}: {where}.name is required (a key name, e.g. key-20260101)",
                              field=f"{where}.name")
    check_key_name(name, field=f"{source}: {where}.name")
    raw = item.get("secret")
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidArgument(f"{source}: {where}.secret is required (base64 of 32 random bytes)",
                              field=f"{where}.secret")
    try:
        secret = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{source}: {where}.secret (key {name!r}) is not base64", field=f"{where}.secret") \
            from None
    if len(secret) != KEY_BYTES:
        raise InvalidArgument(
            f"{source}: {where}.secret (key {name!r}) is {len(secret)} bytes; it must be exactly {KEY_BYTES} "
            "(head -c 32 /dev/urandom | base64)", field=f"{where}.secret")
    return EncryptionKey(name, secret)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def default_key_name(now: datetime | None = None) -> str:
    """A key name from the date and a random suffix ("key-20260102-3f9a")."""
    when = (now or datetime.now(UTC)).strftime("%Y%m%d")
    return f"key-{when}-{_random.token_hex(2)}"


def ensure_config_file(path: str | Path) -> EncryptionConfig:
    """The config at `path`, created (one new key, 0600) when it does not exist yet."""
    p = Path(path)
    if not p.exists():
        _write_private(p, EncryptionConfig((EncryptionKey.generate(default_key_name()),), source=str(p)).dump())
    return EncryptionConfig.load(p)


def add_key(path: str | Path, name: str | None = None, *, keep: Iterable[str] | None = None) -> EncryptionConfig:
    """Rotate: put a new random key first in the config at `path` (the old ones still decrypt);
    `keep` limits the old keys kept to those names. The registry uses it after a restart."""
    p = Path(path)
    config = EncryptionConfig.load(p)
    new = EncryptionKey.generate(name or default_key_name())
    kept = tuple(k for k in config.keys if keep is None or k.name in set(keep))
    rotated = EncryptionConfig((new, *kept), source=str(p))
    _write_private(p, rotated.dump())
    return rotated
