"""`sutradhar login --token-file F`: trade a user token for a certificate and a context.

The main ports of a secured mesh require a client certificate, which a person handed only
a token (`sutradhar token create --namespace NS --role viewer --subject ci`) lacks (a token
alone reaches only the token ports). `login` exchanges the token at the registry's token
port (or its narrower bootstrap port; `sutradhar._bootstrap`) for a
certificate of the token's identity, lasting no longer than the token, and writes::

    <config>/sutradhar/<context>/cert.pem     the certificate (0644)
                                 key.pem      its private key (0600; made here, never sent)
                                 bundle.pem   the mesh's trust bundle (0644)

and a context in the credential file (`sutradhar._credentials`) with the endpoints, that
bundle, the certificate and the token file, made current: calls then present the
certificate and carry the token, whose role decides what they may do. The token itself
is read from the file only, and is never printed or written anywhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

from sutradhar._bootstrap import bootstrap_certificate, read_token_file
from sutradhar._credentials import SERVICES, Context, default_path, locked
from sutradhar._errors import FailedPrecondition, InvalidArgument
from sutradhar._identity import DEFAULT_TRUST_DOMAIN, SYSTEM_NAMESPACE
from sutradhar._tls import TlsFiles
from sutradhar.cli._rpc import check_address
from sutradhar.services.common.authority import IssuedCertificate, ca_trust_domain

_CONTEXT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


def register(sub: Any) -> None:
    p = sub.add_parser("login", help="exchange a token for a certificate and a credential context")
    p.add_argument("--token-file", required=True, type=Path,
                   help="file holding your token (from `sutradhar token create`); kept as the context's token-file")
    p.add_argument("--bootstrap", default="", metavar="HOST:PORT",
                   help="the registry's token port or bootstrap port (default: the current context's bootstrap)")
    p.add_argument("--ca-file", default=None, type=Path, metavar="CA",
                   help="the mesh CA bundle that verifies the registry (default: the current context's)")
    p.add_argument("--context", dest="login_context", default="", metavar="NAME",
                   help="name of the context to write (default: <user>@<base context>, or <user>); the base "
                        "context, whose mesh this is, is the global --context or the current one")
    p.set_defaults(func=login)


def _trust_domain_of_bundle(bundle: bytes) -> str | None:
    """The trust domain the bundle's first CA certificate names, if any."""
    try:
        first = x509.load_pem_x509_certificates(bundle)[0]
    except (ValueError, IndexError):
        return None
    return ca_trust_domain(first)


def login(args: argparse.Namespace) -> int:
    path = default_path()
    with locked(path) as credentials:
        base = credentials.context(args.context or None)
        bootstrap = args.bootstrap or (base.bootstrap if base is not None else "")
        if not bootstrap:
            raise FailedPrecondition("no bootstrap address: pass --bootstrap HOST:PORT, the registry's token port "
                                     "(50061 under `sutradhar up`) or its --bootstrap-port")
        check_address(bootstrap)
        ca_file = args.ca_file or (base.certificate_authority if base is not None else None)
        if ca_file is None:
            raise FailedPrecondition("no mesh CA to verify the registry with: pass --ca-file, the mesh's bundle.pem "
                                     "(in the state directory's pki/ of `sutradhar up`)")
        try:
            ca = Path(ca_file).read_bytes()
        except OSError as err:
            raise FailedPrecondition(f"cannot read the CA file {ca_file} ({err.strerror})") from None
        trust_domain = (base.trust_domain if base is not None else None) or _trust_domain_of_bundle(ca) \
            or DEFAULT_TRUST_DOMAIN
        token_file = args.token_file.expanduser().resolve()
        token = read_token_file(token_file)
        material = asyncio.run(bootstrap_certificate(bootstrap, token, ca, trust_domain))
        identity = material.identity
        name = args.login_context or (f"{identity.name}@{base.name}" if base is not None else identity.name)
        if not _CONTEXT_NAME.fullmatch(name):
            raise InvalidArgument(f"--context {name!r}: use letters, digits, '.', '_', '@' and '-' "
                                  "(at most 128, starting with a letter or digit)", field="context")
        directory = path.parent / name
        files = TlsFiles(directory / "cert.pem", directory / "key.pem", directory / "bundle.pem")
        IssuedCertificate(material.certificate_chain, material.private_key, material.trust_bundle).write(files)
        context = Context(
            name=name,
            # main resolved each address: flag > SUTRADHAR_<SERVICE> > the base context's > the default
            endpoints={service: getattr(args, service) for service in SERVICES if getattr(args, service, None)},
            trust_domain=identity.trust_domain,
            certificate_authority=files.trust_bundle,
            client_certificate=files.certificate,
            client_key=files.private_key,
            token_file=token_file,
            namespace=identity.namespace if identity.namespace != SYSTEM_NAMESPACE else "",
            bootstrap=bootstrap,
        )
        credentials.with_context(context).save()
    print(f"logged in as {identity} (context {name}); the certificate expires at "
          f"{material.not_after.isoformat()}, with the token: run `sutradhar login` again then")
    print(f"credentials: {path}", file=sys.stderr)
    return 0
