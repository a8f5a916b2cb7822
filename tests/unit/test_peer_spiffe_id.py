"""The caller's SPIFFE ID read from its certificate's SANs: exactly one spiffe:// URI counts."""

from __future__ import annotations

from typing import Any

from sutradhar._tls import peer_spiffe_id


class Context:
    def __init__(self, identities: list[bytes] | None) -> None:
        self.identities = identities

    def peer_identities(self) -> list[bytes] | None:
        return self.identities


def read(identities: list[bytes] | None) -> bytes | None:
    context: Any = Context(identities)
    return peer_spiffe_id(context)


def test_the_one_spiffe_uri_among_the_sans_is_the_identity() -> None:
    sans = [b"spiffe://td/ns/a/user/x", b"x.user.a.td", b"127.0.0.1"]
    assert read(sans) == b"spiffe://td/ns/a/user/x"


def test_no_certificate_no_spiffe_uri_or_two_of_them_is_no_identity() -> None:
    assert read(None) is None
    assert read([]) is None
    assert read([b"x.user.a.td"]) is None
    assert read([b"spiffe://td/ns/a/user/x", b"spiffe://td/ns/a/user/y"]) is None
