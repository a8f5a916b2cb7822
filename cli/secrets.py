"""`sutradhar secrets` and `sutradhar configmaps`: configuration for agents (on the registry).

::

    sutradhar secrets create llm-keys -n team-a --from-file openai=./openai.key
    printf %s "$TOKEN" | sutradhar secrets create gh -n team-a --from-stdin token
    sutradhar secrets list -n team-a            # NAMESPACE NAME KEYS VERSION ENCRYPTION-KEY UPDATED
    sutradhar secrets get llm-keys -n team-a    # key names and sizes, never values
    sutradhar secrets reveal llm-keys -n team-a --key openai   # the value (verb read-value)
    sutradhar secrets delete llm-keys -n team-a
    sutradhar secrets add-key                   # rotate: a new first key in up's encryption config
    sutradhar secrets reencrypt                 # rewrite every secret with the current key
    sutradhar configmaps create llm-settings -n team-a --from-file model=./model.txt
    sutradhar configmaps list|get|delete ...

Secrets and config maps are also applied from manifests (`sutradhar deploy -f`, `kind:
Secret` / `kind: ConfigMap`). There is no ``--from-literal``: a value on a command line
is seen by every user of the host in the process list and stays in the shell's history.
No output of these commands but `reveal` holds a value (`-o json` neither); `reveal`
prints exactly what was asked, to stdout.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import sys
from pathlib import Path
from typing import Any

from sutradhar._errors import InvalidArgument
from sutradhar._secret_clients import ConfigMapClient, SecretClient
from sutradhar.cli._output import add_output_flag, message_to_dict, print_json, print_table
from sutradhar.cli._rpc import connect
from sutradhar.cli.manifests import before_applying, configmap_from_manifest, load_manifests, secret_from_manifest
from sutradhar.services.common.encryption import add_key, check_key_name
from sutradhar.services.common.secret_refs import check_data
from sutradhar.v1 import secrets_pb2

TIMEOUT = 15.0
_NO_LITERAL = ("there is no --from-literal: a value on a command line is visible to every user of the host in the "
               "process list and stays in shell history; use --from-file or --from-stdin")


def register(sub: Any) -> None:
    secrets = sub.add_parser("secrets", help="create, list, show, reveal, delete or re-encrypt secrets",
                             description=f"Secrets, encrypted at rest by the registry. Note: {_NO_LITERAL}.")
    ssub = secrets.add_subparsers(dest="secrets_command", metavar="ACTION")
    ssub.required = True
    _add_common(ssub.add_parser("list", help="list secrets (names, key names, sizes; never values)"), name=False,
                all_namespaces=True, func=list_secrets)
    _add_common(ssub.add_parser("get", help="show one secret's keys and sizes (never values)"), func=get_secret)
    p = _add_common(ssub.add_parser("reveal", help="print a secret's values (needs the read-value verb)"),
                    func=reveal_secret)
    p.add_argument("--key", default="", help="print only this key's value, as it is (no newline added)")
    p = _add_common(ssub.add_parser("create", help="create or replace a secret from files or stdin",
                                    description=f"Create or replace a secret. {_NO_LITERAL}."), func=create_secret)
    _add_sources(p)
    _add_common(ssub.add_parser("delete", help="delete a secret"), output=False, func=delete_secret)
    p = ssub.add_parser("add-key", help="rotate: put a new random key first in an encryption config file",
                        description="Put a new random AES-256 key first in the encryption config (the old keys stay "
                                    "and still decrypt). Then restart the registry and run `sutradhar secrets "
                                    "reencrypt`. Edits the file locally; no call to the mesh.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--encryption-config", type=Path, default=None, metavar="FILE",
                       help="the config file (default: the one in the state directory of `sutradhar up`)")
    where.add_argument("--state-dir", type=Path, default=None,
                       help="the state directory `sutradhar up` uses (env SUTRADHAR_STATE_DIR)")
    p.add_argument("--name", default="", help="the new key's name (default: key-<date>-<random>)")
    p.set_defaults(func=add_encryption_key)
    p = ssub.add_parser("reencrypt", help="rewrite every secret with the registry's current encryption key")
    p.add_argument("-n", "--namespace", default="", help="only this namespace (default: every namespace)")
    add_output_flag(p)
    p.set_defaults(func=reencrypt_secrets)

    maps = sub.add_parser("configmaps", help="create, list, show or delete config maps (plain configuration)")
    msub = maps.add_subparsers(dest="configmaps_command", metavar="ACTION")
    msub.required = True
    _add_common(msub.add_parser("list", help="list config maps"), name=False, all_namespaces=True,
                func=list_config_maps)
    _add_common(msub.add_parser("get", help="show one config map with its data"), func=get_config_map)
    p = _add_common(msub.add_parser("create", help="create or replace a config map from files or stdin"),
                    func=create_config_map)
    _add_sources(p)
    _add_common(msub.add_parser("delete", help="delete a config map"), output=False, func=delete_config_map)


def _add_common(p: argparse.ArgumentParser, *, name: bool = True, all_namespaces: bool = False,
                output: bool = True, func: Any) -> argparse.ArgumentParser:
    if name:
        p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default", help='namespace ("*" for all)' if all_namespaces else
                   "namespace")
    if output:
        add_output_flag(p)
    p.set_defaults(func=func)
    return p


def _add_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-file", action="append", default=[], metavar="[KEY=]PATH",
                   help="a key from a file (KEY defaults to the file's name); repeat for more keys")
    p.add_argument("--from-stdin", default="", metavar="KEY",
                   help="a key whose value is read from standard input (typed without echo on a terminal)")


def _read_sources(args: argparse.Namespace) -> dict[str, bytes]:
    """The values of --from-file and --from-stdin (errors name the key or file, never a value)."""
    data: dict[str, bytes] = {}
    for item in args.from_file:
        key, sep, path = item.partition("=")
        if not sep:
            key, path = Path(item).name, item
        if key in data:
            raise InvalidArgument(f"--from-file: key {key!r} is given twice", field="from_file")
        try:
            data[key] = Path(path).read_bytes()
        except OSError as err:
            raise InvalidArgument(f"--from-file: cannot read {path}: {err.strerror}", field="from_file") from None
    if args.from_stdin:
        if args.from_stdin in data:
            raise InvalidArgument(f"--from-stdin: key {args.from_stdin!r} is also given by --from-file",
                                  field="from_stdin")
        if sys.stdin.isatty():  # typed by a person: not echoed to the terminal
            data[args.from_stdin] = getpass.getpass(f"value of {args.from_stdin!r} (not echoed): ").encode()
        else:
            data[args.from_stdin] = sys.stdin.buffer.read()
    if not data:
        raise InvalidArgument(f"give at least one --from-file or --from-stdin ({_NO_LITERAL})", field="from_file")
    check_data(data, field="data", what=f"{args.name!r}")
    return data


def _time(ts: Any) -> str:
    return ts.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if ts.seconds else ""


def _keys(secret: secrets_pb2.Secret) -> str:
    return ", ".join(f"{k.name} ({k.size}B)" for k in secret.keys)


# -- secrets ---------------------------------------------------------------------------


def secret_row(s: secrets_pb2.Secret) -> dict[str, Any]:
    """A secret's table row: names, sizes, versions (never a value: a Secret holds none)."""
    return {"namespace": s.namespace, "name": s.name, "keys": _keys(s), "version": s.version,
            "encryption-key": s.encryption_key, "updated": _time(s.update_time)}


async def list_secrets(args: argparse.Namespace) -> int:
    async with connect(SecretClient, args.registry) as client:
        resp = await client.list_secrets(namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(list(resp.secrets))
        return 0
    print_table((secret_row(s) for s in resp.secrets),
                ["namespace", "name", "keys", "version", "encryption-key", "updated"], empty="no secrets")
    return 0


async def get_secret(args: argparse.Namespace) -> int:
    async with connect(SecretClient, args.registry) as client:
        secret = await client.get_secret(args.name, namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(secret)
        return 0
    print(f"secret/{secret.name} in namespace {secret.namespace}: version {secret.version}, encrypted with key "
          f"{secret.encryption_key}, updated {_time(secret.update_time)} by {secret.updated_by or '-'}")
    print_table(({"key": k.name, "bytes": k.size} for k in secret.keys), ["key", "bytes"], empty="no keys")
    return 0


async def reveal_secret(args: argparse.Namespace) -> int:
    async with connect(SecretClient, args.registry) as client:
        resp = await client.reveal_secret(args.name, namespace=args.namespace, timeout=TIMEOUT)
    if args.key:
        if args.key not in resp.data:
            raise InvalidArgument(f"secret {args.name!r} has no key {args.key!r} (keys: "
                                  f"{', '.join(sorted(resp.data)) or 'none'})", field="key")
        sys.stdout.flush()
        sys.stdout.buffer.write(resp.data[args.key])
        sys.stdout.buffer.flush()
        return 0
    if args.output == "json":
        print_json({"secret": message_to_dict(resp.secret),
                    "data": {k: base64.b64encode(v).decode() for k, v in sorted(resp.data.items())}})
        return 0
    for key, value in sorted(resp.data.items()):
        try:
            text = value.decode()
        except UnicodeDecodeError:
            text = "base64:" + base64.b64encode(value).decode()
        print(f"{key}: {text}")
    return 0


async def create_secret(args: argparse.Namespace) -> int:
    data = _read_sources(args)
    async with connect(SecretClient, args.registry) as client:
        resp = await client.apply_secret(args.name, data, namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(resp.secret)
    else:
        print(f"secret/{args.name} {_verb(resp.created, resp.changed)} in namespace {resp.secret.namespace} "
              f"(keys: {_keys(resp.secret)}; version {resp.secret.version})")
    return 0


async def delete_secret(args: argparse.Namespace) -> int:
    async with connect(SecretClient, args.registry) as client:
        secret = await client.delete_secret(args.name, namespace=args.namespace, timeout=TIMEOUT)
    print(f"secret/{secret.name} deleted from namespace {secret.namespace}")
    return 0


async def reencrypt_secrets(args: argparse.Namespace) -> int:
    last = None
    async with connect(SecretClient, args.registry) as client:
        async for step in client.reencrypt_secrets(namespace=args.namespace):
            last = step
            if args.output == "json":
                continue
            if step.done:
                print(f"re-encrypted {step.rewritten} of {step.total} secrets with key {step.key} "
                      f"({step.unchanged} already were)")
                if step.failed:
                    print(f"{step.failed} secrets are sealed with a key the registry's encryption config no longer "
                          "holds: add that key back (after the current one), restart the registry and run again")
            else:
                print(f"[{step.examined}/{step.total}] {step.secret}", flush=True)
    if args.output == "json" and last is not None:
        print_json(last)
    return 1 if last is not None and last.failed else 0


async def add_encryption_key(args: argparse.Namespace) -> int:
    from sutradhar.cli._launcher import ENCRYPTION_CONFIG, default_state_dir

    path = args.encryption_config or (args.state_dir or default_state_dir()) / ENCRYPTION_CONFIG
    if args.name:
        check_key_name(args.name, field="--name")
    rotated = add_key(path, args.name or None)
    print(f"{path}: key {rotated.current.name} added first (it encrypts; {', '.join(rotated.names[1:])} still "
          "decrypt). Restart the registry (`sutradhar down` and `sutradhar up` for a local mesh), then run "
          "`sutradhar secrets reencrypt`.")
    return 0


def _verb(created: bool, changed: bool) -> str:
    return "created" if created else ("configured" if changed else "unchanged")


# -- config maps -----------------------------------------------------------------------


async def list_config_maps(args: argparse.Namespace) -> int:
    async with connect(ConfigMapClient, args.registry) as client:
        resp = await client.list_config_maps(namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(list(resp.config_maps))
        return 0
    rows = ({"namespace": c.namespace, "name": c.name, "keys": ", ".join(sorted(c.data)), "version": c.version,
             "updated": _time(c.update_time)} for c in resp.config_maps)
    print_table(rows, ["namespace", "name", "keys", "version", "updated"], empty="no config maps")
    return 0


async def get_config_map(args: argparse.Namespace) -> int:
    async with connect(ConfigMapClient, args.registry) as client:
        config_map = await client.get_config_map(args.name, namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(config_map)
        return 0
    print(f"configmap/{config_map.name} in namespace {config_map.namespace}: version {config_map.version}, "
          f"updated {_time(config_map.update_time)} by {config_map.updated_by or '-'}")
    print_table(({"key": k, "value": v} for k, v in sorted(config_map.data.items())), ["key", "value"],
                empty="no keys")
    return 0


async def create_config_map(args: argparse.Namespace) -> int:
    raw = _read_sources(args)
    data = {}
    for key, value in raw.items():
        try:
            data[key] = value.decode()
        except UnicodeDecodeError:
            raise InvalidArgument(f"{key}: a config map holds text; this file is not UTF-8 (use a secret)",
                                  field="from_file") from None
    async with connect(ConfigMapClient, args.registry) as client:
        resp = await client.apply_config_map(args.name, data, namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(resp.config_map)
    else:
        print(f"configmap/{args.name} {_verb(resp.created, resp.changed)} in namespace {resp.config_map.namespace} "
              f"(keys: {', '.join(sorted(resp.config_map.data))}; version {resp.config_map.version})")
    return 0


async def delete_config_map(args: argparse.Namespace) -> int:
    async with connect(ConfigMapClient, args.registry) as client:
        config_map = await client.delete_config_map(args.name, namespace=args.namespace, timeout=TIMEOUT)
    print(f"configmap/{config_map.name} deleted from namespace {config_map.namespace}")
    return 0


# -- manifests (`sutradhar deploy -f`) ---------------------------------------------------


def read_config_objects(
    path: str,
) -> tuple[list[tuple[secrets_pb2.Secret, dict[str, bytes]]], list[secrets_pb2.ConfigMap]]:
    """The Secret and ConfigMap documents of a manifest file, checked before anything is applied."""
    with before_applying():
        manifests = load_manifests(path)
        secrets = [secret_from_manifest(m) for m in manifests if m.kind == "Secret"]
        config_maps = [configmap_from_manifest(m) for m in manifests if m.kind == "ConfigMap"]
        for secret, data in secrets:
            check_data(data, field="data", what=f"secret/{secret.name}")
        for config_map in config_maps:
            check_data(dict(config_map.data), field="data", what=f"configmap/{config_map.name}")
    return secrets, config_maps


async def apply_config_objects(
    args: argparse.Namespace, secrets: list[tuple[secrets_pb2.Secret, dict[str, bytes]]],
    config_maps: list[secrets_pb2.ConfigMap],
) -> list[Any]:
    """Apply them (before agents and deployments) and say so, naming keys, never values."""
    applied: list[Any] = []
    quiet = getattr(args, "output", "table") == "json"
    if secrets:
        async with connect(SecretClient, args.registry) as client:
            for secret, data in secrets:
                resp = await client.apply_secret(secret.name, data, namespace=secret.namespace,
                                                 labels=dict(secret.labels), timeout=TIMEOUT)
                applied.append(resp.secret)
                if not quiet:
                    print(f"secret/{secret.name} {_verb(resp.created, resp.changed)} in namespace "
                          f"{resp.secret.namespace} ({len(resp.secret.keys)} keys, version {resp.secret.version})")
    if config_maps:
        async with connect(ConfigMapClient, args.registry) as client:
            for config_map in config_maps:
                resp_cm = await client.apply_config_map(config_map.name, dict(config_map.data),
                                                        namespace=config_map.namespace,
                                                        labels=dict(config_map.labels), timeout=TIMEOUT)
                applied.append(resp_cm.config_map)
                if not quiet:
                    print(f"configmap/{config_map.name} {_verb(resp_cm.created, resp_cm.changed)} in namespace "
                          f"{resp_cm.config_map.namespace} ({len(resp_cm.config_map.data)} keys, "
                          f"version {resp_cm.config_map.version})")
    return applied
