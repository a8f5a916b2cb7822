"""The encryption config and the AES-GCM envelope: round trips, refusals, rotation."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from sutradhar._errors import FailedPrecondition, InvalidArgument
from sutradhar.services.common.encryption import (
    PREFIX,
    DecryptionFailed,
    EncryptionConfig,
    EncryptionKey,
    add_key,
    ensure_config_file,
    envelope_key_name,
)

AAD = b"/sutradhar/v1/secrets/team-a/api"
VALUE = b"sk-live-0123456789abcdef"


def config(*names: str) -> EncryptionConfig:
    return EncryptionConfig(tuple(EncryptionKey.generate(n) for n in names))


def text(*keys: tuple[str, bytes]) -> str:
    lines = ["apiVersion: sutradhar/v1", "kind: EncryptionConfiguration", "keys:"]
    for name, secret in keys:
        lines += [f"  - name: {name}", f"    secret: {base64.b64encode(secret).decode()}"]
    return "\n".join(lines) + "\n"


def test_round_trip_and_envelope_shape() -> None:
    c = config("key1")
    sealed = c.encrypt(VALUE, associated=AAD)
    assert sealed.startswith(PREFIX + b"key1:")
    assert VALUE not in sealed
    assert envelope_key_name(sealed) == "key1"
    assert c.decrypt(sealed, associated=AAD) == VALUE


def test_nonces_differ() -> None:
    c = config("key1")
    assert c.encrypt(VALUE, associated=AAD) != c.encrypt(VALUE, associated=AAD)


def test_unknown_key_id_is_refused_naming_the_key_only() -> None:
    sealed = config("old").encrypt(VALUE, associated=AAD)
    with pytest.raises(DecryptionFailed, match="'old'") as err:
        config("new").decrypt(sealed, associated=AAD)
    assert VALUE.decode() not in str(err.value)


def test_same_name_other_key_material_is_refused() -> None:
    sealed = config("key1").encrypt(VALUE, associated=AAD)
    with pytest.raises(DecryptionFailed, match="altered"):
        config("key1").decrypt(sealed, associated=AAD)


def test_tampered_ciphertext_is_refused() -> None:
    c = config("key1")
    sealed = bytearray(c.encrypt(VALUE, associated=AAD))
    sealed[-1] ^= 0x01
    with pytest.raises(DecryptionFailed, match="altered"):
        c.decrypt(bytes(sealed), associated=AAD)


def test_truncated_and_foreign_values_are_refused() -> None:
    c = config("key1")
    with pytest.raises(DecryptionFailed, match="truncated"):
        c.decrypt(PREFIX + b"key1:" + b"short", associated=AAD)
    with pytest.raises(DecryptionFailed, match="not an encrypted envelope"):
        c.decrypt(b'{"plain": "json"}', associated=AAD)


def test_ciphertext_moved_to_another_key_does_not_decrypt() -> None:
    c = config("key1")
    sealed = c.encrypt(VALUE, associated=AAD)
    with pytest.raises(DecryptionFailed, match="copied from another"):
        c.decrypt(sealed, associated=b"/sutradhar/v1/secrets/team-b/api")


def test_rotation_new_first_key_encrypts_old_still_decrypts(tmp_path: Path) -> None:
    path = tmp_path / "enc.yaml"
    before = ensure_config_file(path)
    old = before.encrypt(VALUE, associated=AAD)
    after = add_key(path, "key-new")
    assert after.current.name == "key-new"
    assert after.names[1] == before.current.name
    reloaded = EncryptionConfig.load(path)
    assert reloaded.decrypt(old, associated=AAD) == VALUE
    assert reloaded.needs_rewrite(old)
    fresh = reloaded.encrypt(VALUE, associated=AAD)
    assert envelope_key_name(fresh) == "key-new" and not reloaded.needs_rewrite(fresh)
    dropped = add_key(path, "key-newest", keep=["key-new"])
    with pytest.raises(DecryptionFailed, match=before.current.name):
        dropped.decrypt(old, associated=AAD)


def test_ensure_config_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "state" / "enc.yaml"
    first = ensure_config_file(path)
    assert (os.stat(path).st_mode & 0o777) == 0o600
    assert ensure_config_file(path).keys == first.keys


def test_repr_never_shows_key_material() -> None:
    key = EncryptionKey.generate("key1")
    assert base64.b64encode(key.secret).decode() not in repr(EncryptionConfig((key,)))
    assert repr(key.secret) not in repr(key)


def test_parse_accepts_the_documented_shape() -> None:
    secret = os.urandom(32)
    parsed = EncryptionConfig.parse(text(("key2", secret), ("key1", os.urandom(32))))
    assert parsed.names == ("key2", "key1") and parsed.current.secret == secret


@pytest.mark.parametrize(("body", "match"), [
    ("[not, a, mapping]", "must be a mapping"),
    ("apiVersion: v2\nkind: EncryptionConfiguration\nkeys: []\n", "apiVersion"),
    ("apiVersion: sutradhar/v1\nkind: Secret\nkeys: []\n", "kind must be"),
    ("apiVersion: sutradhar/v1\nkind: EncryptionConfiguration\nkeys: []\n", "non-empty list"),
    ("apiVersion: sutradhar/v1\nkind: EncryptionConfiguration\nkyes: []\n", "unknown field 'kyes'"),
    ("apiVersion: sutradhar/v1\nkind: EncryptionConfiguration\nkeys: [{name: k1}]\n", "secret is required"),
    ("apiVersion: sutradhar/v1\nkind: EncryptionConfiguration\nkeys: [{name: k1, secret: '!!!'}]\n", "not base64"),
    ("apiVersion: sutradhar/v1\nkind: EncryptionConfiguration\nkeys: [{name: 'Bad:Name', secret: x}]\n",
     "not a key name"),
    ("apiVersion: sutradhar/v1\nkind: EncryptionConfiguration\nkeys: [{name: k1, secret: a, extra: 1}]\n",
     "unknown field 'extra'"),
    ("keys: [: :", "not valid YAML"),
])
def test_parse_errors_name_the_problem(body: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        EncryptionConfig.parse(body)


def test_wrong_key_length_and_duplicates() -> None:
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(InvalidArgument, match="16 bytes"):
        EncryptionConfig.parse(f"apiVersion: sutradhar/v1\nkind: EncryptionConfiguration\n"
                               f"keys: [{{name: k1, secret: '{short}'}}]\n")
    secret = os.urandom(32)
    with pytest.raises(InvalidArgument, match="listed twice"):
        EncryptionConfig.parse(text(("k1", secret), ("k1", os.urandom(32))))


def test_error_messages_never_quote_key_material() -> None:
    short = base64.b64encode(b"supersecretmaterial!").decode()
    with pytest.raises(InvalidArgument) as err:
        EncryptionConfig.parse(f"apiVersion: sutradhar/v1\nkind: EncryptionConfiguration\n"
                               f"keys: [{{name: k1, secret: '{short}'}}]\n")
    assert short not in str(err.value)


def test_load_refuses_missing_and_world_readable_files(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="does not exist"):
        EncryptionConfig.load(tmp_path / "missing.yaml")
    path = tmp_path / "enc.yaml"
    path.write_text(text(("k1", os.urandom(32))))
    path.chmod(0o644)
    with pytest.raises(FailedPrecondition, match="chmod 600"):
        EncryptionConfig.load(path)
    path.chmod(0o600)
    assert EncryptionConfig.load(path).names == ("k1",)
