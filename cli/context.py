"""`sutradhar context`: the contexts of the credential file, and grpcurl flags for one.

    sutradhar context                 every context; * marks the current one
    sutradhar context use NAME        make NAME the current context
    sutradhar context --grpcurl       the flags grpcurl needs for the current context:
                                      -cacert/-cert/-key (a certificate), or
                                      -plaintext (an insecure mesh)

The README's grpcurl session is ``grpcurl $(sutradhar context --grpcurl) ...``. The
flags hold file paths only; a context that authenticates with a token file is
refused here, because grpcurl would need the token itself on its command line.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from sutradhar._credentials import Context, CredentialFile, locked
from sutradhar._errors import FailedPrecondition, InvalidArgument
from sutradhar.cli._output import add_output_flag, print_json, print_table


def register(sub: Any) -> None:
    p = sub.add_parser("context", help="credential contexts (where a mesh is, who you are to it), grpcurl flags")
    p.add_argument("action", nargs="?", choices=["list", "use"], default="list")
    p.add_argument("name", nargs="?", help="the context to `use`")
    p.add_argument("--grpcurl", action="store_true",
                   help="print the flags grpcurl needs to reach the current (or --context) mesh")
    add_output_flag(p)
    p.set_defaults(func=run)


def grpcurl_flags(context: Context) -> list[str]:
    """grpcurl's flags for `context`."""
    if context.insecure:
        return ["-plaintext"]
    flags: list[str] = []
    if context.certificate_authority:
        flags += ["-cacert", str(context.certificate_authority)]
    if context.client_certificate and context.client_key:
        flags += ["-cert", str(context.client_certificate), "-key", str(context.client_key)]
    if context.token_file:
        raise FailedPrecondition(
            f"context {context.name!r} authenticates with a token file; grpcurl would need the token on its "
            "command line, which Sutradhar never puts there: use a context with a client certificate "
            "(`sutradhar up` writes one) or `sutradhar login`"
        )
    return flags


def run(args: argparse.Namespace) -> int:
    credentials = CredentialFile.load()
    if args.action == "use":
        if not args.name:
            raise InvalidArgument("`sutradhar context use` needs the name of a context (see `sutradhar context`)")
        with locked(credentials.path) as held:
            chosen = held.context(args.name)
            assert chosen is not None
            held.with_context(chosen).save()
        print(f"context {args.name!r} is now current in {credentials.path}")
        return 0
    if args.grpcurl:
        context = credentials.context(args.context)
        if context is None:
            raise FailedPrecondition(
                f"no credential context in {credentials.path}; `sutradhar up` writes one for the mesh it starts"
            )
        print(shlex.join(grpcurl_flags(context)))
        return 0
    current = credentials.context(args.context) if credentials.contexts else None
    rows = [
        {
            "current": "*" if current is not None and c.name == current.name else "",
            "name": c.name,
            "registry": c.endpoints.get("registry", ""),
            "router": c.endpoints.get("router", ""),
            "credential": "insecure" if c.insecure else ("certificate" if c.client_certificate else "token"),
            "identity_file": str(c.client_certificate or c.token_file or ""),
        }
        for c in credentials.contexts
    ]
    if args.output == "json":
        print_json(rows)
    else:
        print_table(rows, ["current", "name", "registry", "router", "credential", "identity_file"])
    return 0
