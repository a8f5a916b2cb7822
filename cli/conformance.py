"""`sutradhar conformance HOST:PORT`: check a running agent, in any language, against the Agent contract.

::

    sutradhar conformance 127.0.0.1:7000 --insecure          a plaintext agent
    sutradhar conformance 10.0.0.5:7000 --identity spiffe://sutradhar.local/ns/default/agent/echo/echo-1 \\
        --tls-cert-file pki/health.pem --tls-key-file pki/health-key.pem --tls-ca-file pki/bundle.pem
    sutradhar conformance 127.0.0.1:7000 --insecure --drain-pid 4242   also SIGTERM it and check the drain

One row per check (PASS, FAIL or SKIP with what to fix), ``-o json`` for the
report as JSON; exit 0 only when no check fails. The checks and their options
are `sutradhar.conformance`'s (also ``python -m sutradhar.conformance``, which
checks plaintext agents only).

Credentials: ``--insecure`` speaks plaintext. Otherwise the suite presents the
credential context's certificate (``--context``, as every command), or the
three ``--tls-*`` files given, and verifies that the agent presents
``--identity`` (the SPIFFE ID it registered). A secured agent takes
AgentService calls from the mesh's router, health and scheduler only, so to
check one present one of their certificates (``sutradhar up`` keeps them in
its ``pki/`` directory); with the admin context's the AgentService rows fail
PERMISSION_DENIED, saying so.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sutradhar._credentials import Credentials
from sutradhar._errors import FailedPrecondition, InvalidArgument
from sutradhar._identity import SpiffeId
from sutradhar._security_settings import SecuritySettings
from sutradhar._tls import TlsSource
from sutradhar.conformance import (
    TABLE_COLUMNS,
    add_suite_arguments,
    all_passed,
    report,
    run_conformance,
    suite_arguments,
    summary,
    table_rows,
)

from ._output import add_output_flag, print_json, print_table
from ._rpc import check_address, credentials


def register(sub: Any) -> None:
    """Add the conformance command."""
    p = sub.add_parser("conformance", help="check a running agent (any language) against the Agent contract")
    add_suite_arguments(p)
    p.add_argument("--insecure", action="store_true", help="the agent serves plaintext (development)")
    p.add_argument("--identity", default=None,
                   help="over TLS: the SPIFFE ID the agent must present (the identity its instance registered)")
    p.add_argument("--tls-cert-file", type=Path, default=None,
                   help="present this certificate instead of the context's (e.g. a mesh service's)")
    p.add_argument("--tls-key-file", type=Path, default=None, help="the key of --tls-cert-file")
    p.add_argument("--tls-ca-file", type=Path, default=None, help="the trust bundle that verifies the agent")
    add_output_flag(p)
    p.set_defaults(func=conformance_command)


def _credentials(args: argparse.Namespace) -> tuple[Credentials, SpiffeId | None]:
    """What the suite presents and the identity it expects of the agent."""
    files = SecuritySettings(tls_cert_file=args.tls_cert_file, tls_key_file=args.tls_key_file,
                             tls_ca_file=args.tls_ca_file).tls_files()
    if args.insecure:
        if files is not None or args.identity:
            raise InvalidArgument("--insecure and --tls-*/--identity contradict each other; drop one")
        return Credentials.insecure(), None
    chosen = Credentials(tls=TlsSource(files)) if files is not None else credentials()
    if chosen.is_insecure:
        return chosen, None
    if chosen.tls is None:
        raise FailedPrecondition(
            "the credential context holds a token only; agents take certificates: pass --tls-cert-file, "
            "--tls-key-file and --tls-ca-file (a mesh service's), or --insecure for a plaintext agent"
        )
    if not args.identity:
        raise InvalidArgument(
            "checking an agent over TLS needs the identity it must present: pass --identity "
            "spiffe://<trust-domain>/ns/<namespace>/agent/<agent>[/<instance>] (the one its instance registered), "
            "or --insecure for a plaintext agent",
            field="identity",
        )
    return chosen, SpiffeId.parse(args.identity)


async def conformance_command(args: argparse.Namespace) -> int:
    """`sutradhar conformance`."""
    try:
        check_address(args.address)
    except InvalidArgument:
        raise InvalidArgument(f"{args.address!r} is not a host:port address of an agent", field="address") from None
    presented, expected = _credentials(args)
    results = await run_conformance(args.address, credentials=presented, expected=expected, **suite_arguments(args))
    if args.output == "json":
        print_json(report(args.address, results))
    else:
        print_table(table_rows(results), TABLE_COLUMNS)
        print(summary(results))
    return 0 if all_passed(results) else 1
