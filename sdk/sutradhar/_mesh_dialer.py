"""How a secured router, or a `DirectClient` with a certificate, dials instances
(docs/security.md): gRPC agents over mutual TLS, required to present the identity they
registered (`Instance.identity`); ``https://`` agents get the dialer's client certificate
(`MeshHttps`) and, when the instance registered an identity, must present it; ``http://``
URLs stay plaintext (an external agent an admin registered). An instance with no identity
is refused (`RefusedTransport`). Without TLS both dial with `PlainDialer`.
"""

from __future__ import annotations

from typing import Any

from sutradhar._peer_identity import MeshHttps, NoIdentity, expected_identity
from sutradhar._route_engine import PlainDialer
from sutradhar._route_transports import GrpcTransport, HttpTransport, RefusedTransport
from sutradhar._routing.backend import Backend
from sutradhar._routing.view import View
from sutradhar._tls import TlsSource


class MeshDialer(PlainDialer):
    """`PlainDialer` presenting the certificate `tls` (the router's, or a direct caller's) and checking
    each peer's identity."""

    def __init__(self, view: View, max_message_bytes: int, tls: TlsSource) -> None:
        super().__init__(view, max_message_bytes)
        self.tls = tls
        self._https = MeshHttps(tls)

    def grpc_transport(self, backend: Backend) -> Any:
        try:
            expected = expected_identity(backend.instance_id, backend.endpoint, backend.identity)
        except NoIdentity as err:
            return RefusedTransport(backend.endpoint, str(err))
        return GrpcTransport(
            backend.endpoint, max_message_bytes=self.max_message_bytes, tls=self.tls, expected=expected
        )

    def http_transport(self, backend: Backend) -> Any:
        if not backend.endpoint.startswith("https://"):
            return super().http_transport(backend)
        https = self._https
        extensions: dict[str, Any] = {}
        if backend.identity:
            try:
                extensions = https.extensions(expected_identity(backend.instance_id, backend.endpoint,
                                                                backend.identity))
            except NoIdentity as err:
                return RefusedTransport(backend.endpoint, str(err))
        return HttpTransport(
            backend.endpoint, self.http_client(), max_message_bytes=self.max_message_bytes, owner=backend,
            extensions=extensions, before=https.refresh,
        )

    def http_options(self) -> dict[str, Any]:
        return {"verify": self._https.context}
