"""The credential file: contexts written and read back, the current one chosen, 0600, and
clear errors for a file that is wrong."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sutradhar._credentials import Context, CredentialFile, locked
from sutradhar._errors import FailedPrecondition, InvalidArgument


def test_contexts_round_trip_and_the_newest_is_current(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    first = Context("one", {"registry": "127.0.0.1:1"}, certificate_authority=tmp_path / "ca.pem",
                    client_certificate=tmp_path / "c.pem", client_key=tmp_path / "k.pem")
    second = Context("two", {"router": "127.0.0.1:2"}, insecure=True)
    with locked(path) as file:
        file.with_context(first).save()
    with locked(path) as file:
        file.with_context(second).save()
    loaded = CredentialFile.load(path)
    assert [c.name for c in loaded.contexts] == ["one", "two"]
    assert loaded.context() == second
    assert loaded.context("one") == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert loaded.context("two").credentials().is_insecure  # type: ignore[union-attr]


def test_the_context_variable_chooses_the_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "credentials.yaml"
    CredentialFile(path).with_context(Context("a")).with_context(Context("b")).save()
    monkeypatch.setenv("SUTRADHAR_CONTEXT", "a")
    assert CredentialFile.load(path).context().name == "a"  # type: ignore[union-attr]


def test_a_missing_file_has_no_context(tmp_path: Path) -> None:
    assert CredentialFile.load(tmp_path / "none.yaml").context() is None


def test_errors_name_the_file_and_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    path.write_text("kind: Credentials\ncontexts:\n- name: a\n  registy: x\n")
    with pytest.raises(InvalidArgument, match="registy"):
        CredentialFile.load(path)
    path.write_text("kind: Credentials\ncurrent-context: a\ncontexts: []\n")
    with pytest.raises(InvalidArgument, match="no context 'a'"):
        CredentialFile.load(path).context()
    half = Context("h", client_certificate=tmp_path / "c.pem")
    with pytest.raises(FailedPrecondition, match="together"):
        half.credentials()


def test_the_file_holds_paths_never_secrets(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJFZERTQSJ9.secret.sig\n")
    path = tmp_path / "credentials.yaml"
    CredentialFile(path).with_context(Context("t", token_file=token)).save()
    assert "secret" not in path.read_text()
    credentials = CredentialFile.load(path).context().credentials()  # type: ignore[union-attr]
    assert credentials.token == "eyJhbGciOiJFZERTQSJ9.secret.sig"
    assert "secret" not in repr(credentials)
