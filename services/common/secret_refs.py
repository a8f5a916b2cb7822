"""References to Secrets and ConfigMaps, and their resolution (pure).

A deployment (`DeploymentSpec.env_vars`, `DeploymentSpec.files`) and an agent's
process or container config (`config.env` as a list, `config.files`) reference
keys of Secrets and ConfigMaps in their own namespace::

    env:
      - {name: LOG_LEVEL, value: info}
      - name: OPENAI_API_KEY
        valueFrom: {secretKeyRef: {name: llm-keys, key: openai}}
      - name: MODEL
        valueFrom: {configMapKeyRef: {name: llm-settings, key: model}}
    files:
      - {secret: tls-client, mountPath: /etc/agent/tls, items: [{key: cert, path: client.pem}]}
      - {configMap: prompts, mountPath: /etc/agent/prompts}

This module parses and checks them (InvalidArgument naming the field, never a
value), lists what a set of references needs (`References`), and, given the
fetched objects, resolves them into an environment and files (`resolve`). A
missing object or key is `MissingReference` (FAILED_PRECONDITION) naming the
object and key only. It also holds the rules for objects' own names, keys and
sizes, shared by the registry and the CLI.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from google.protobuf import json_format

from sutradhar._errors import FailedPrecondition
from sutradhar._fields import field_error
from sutradhar.v1 import secrets_pb2

__all__ = [
    "CONFIGMAP",
    "FILES_DIR_ENV",
    "MAX_DATA_BYTES",
    "SECRET",
    "MissingReference",
    "ObjectRef",
    "References",
    "Resolution",
    "ResolvedFile",
    "check_data",
    "check_data_key",
    "env_vars_from_config",
    "files_from_config",
    "references",
    "resolve",
    "validate_env_vars",
    "validate_files",
]

SECRET: Final = "secret"
CONFIGMAP: Final = "configmap"
#: The variable that names a process replica's private files directory.
FILES_DIR_ENV: Final = "SUTRADHAR_FILES_DIR"
#: Most bytes of data one Secret or ConfigMap holds (Kubernetes: 1 MiB).
MAX_DATA_BYTES: Final = 1024 * 1024
#: Most references of one kind (env vars, file mounts) in one spec.
MAX_REFERENCES: Final = 256
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class MissingReference(FailedPrecondition):
    """A referenced Secret or ConfigMap, or a key of one, does not exist. The message
    names the objects and keys (never a value); `missing` lists them."""

    def __init__(self, message: str, missing: Sequence[str]) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


@dataclass(frozen=True, order=True)
class ObjectRef:
    """One referenced object: (kind, name), kind `SECRET` or `CONFIGMAP`."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}"


@dataclass(frozen=True)
class References:
    """What a spec references: its env vars and file mounts, and the objects they need."""

    env: tuple[secrets_pb2.EnvVar, ...] = ()
    files: tuple[secrets_pb2.FileMount, ...] = ()

    @property
    def objects(self) -> tuple[ObjectRef, ...]:
        """Every referenced object once, sorted."""
        found: set[ObjectRef] = set()
        for var in self.env:
            source = var.value_from
            if source.HasField("secret_key_ref"):
                found.add(ObjectRef(SECRET, source.secret_key_ref.name))
            elif source.HasField("config_map_key_ref"):
                found.add(ObjectRef(CONFIGMAP, source.config_map_key_ref.name))
        for mount in self.files:
            found.add(ObjectRef(SECRET, mount.secret) if mount.secret else ObjectRef(CONFIGMAP, mount.config_map))
        return tuple(sorted(found))

    def __bool__(self) -> bool:
        return bool(self.env or self.files)


@dataclass(frozen=True)
class ResolvedFile:
    """One file a replica gets: under mount `mount_path`, at relative `path`."""

    mount_path: str
    path: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class Resolution:
    """What the references resolve to. Holds values: never log or print it (its repr does not
    show them)."""

    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    files: tuple[ResolvedFile, ...] = ()
    mount_paths: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Resolution(env={sorted(self.env)}, files={len(self.files)}, mounts={list(self.mount_paths)})"


# -- objects' own rules ------------------------------------------------------------------


def check_data_key(key: str, *, field: str) -> None:
    """A data key: [-._a-zA-Z0-9]+ (not "." or ".."), as Kubernetes."""
    if not isinstance(key, str) or not _DATA_KEY.fullmatch(key) or key in (".", ".."):
        raise field_error(field, f"{key!r} is not a valid key (letters, digits, '-', '_', '.'; not '.' or '..')")


def check_data(data: Mapping[str, bytes | str], *, field: str, what: str) -> None:
    """Keys valid, at least one, and at most `MAX_DATA_BYTES` in all (the message gives sizes only)."""
    total = 0
    for key, value in data.items():
        check_data_key(key, field=f"{field}[{key!r}]" if isinstance(key, str) else field)
        total += len(value.encode() if isinstance(value, str) else value)
    if total > MAX_DATA_BYTES:
        raise field_error(field, f"{what} holds {total} bytes of data; at most {MAX_DATA_BYTES} (1 MiB) are allowed")


# -- parsing and checking references -------------------------------------------------------


def _check_ref(ref: secrets_pb2.KeyReference, field: str) -> None:
    if not _DNS_LABEL.fullmatch(ref.name):
        raise field_error(f"{field}.name", f"{ref.name!r} is not an object name (a DNS-1123 label)")
    check_data_key(ref.key, field=f"{field}.key")


def validate_env_vars(env: Sequence[secrets_pb2.EnvVar], *, field: str) -> None:
    """Names valid and unique; each a value or exactly one reference."""
    if len(env) > MAX_REFERENCES:
        raise field_error(field, f"{len(env)} variables; at most {MAX_REFERENCES}")
    seen: set[str] = set()
    for i, var in enumerate(env):
        where = f"{field}[{i}]"
        if not _ENV_NAME.fullmatch(var.name):
            raise field_error(f"{where}.name", f"{var.name!r} is not an environment variable name "
                                               "([A-Za-z_][A-Za-z0-9_]*)")
        if var.name in seen:
            raise field_error(f"{where}.name", f"{var.name!r} is given twice")
        seen.add(var.name)
        source = var.value_from
        refs = [name for name in ("secret_key_ref", "config_map_key_ref") if source.HasField(name)]
        if var.HasField("value_from") and len(refs) != 1:
            raise field_error(f"{where}.valueFrom", "must hold exactly one of secretKeyRef, configMapKeyRef")
        if refs and var.value:
            raise field_error(where, f"{var.name!r} has both a value and valueFrom; give one")
        if refs:
            _check_ref(getattr(source, refs[0]), f"{where}.valueFrom.{_json_name(refs[0])}")


def _json_name(name: str) -> str:
    return {"secret_key_ref": "secretKeyRef", "config_map_key_ref": "configMapKeyRef"}[name]


def _check_relative(path: str, field: str) -> None:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise field_error(field, f"{path!r} must be a relative path without '..', '.' or empty parts")


def validate_files(files: Sequence[secrets_pb2.FileMount], *, field: str) -> None:
    """Each mount names one object, an absolute mount path (no two alike), and items with valid
    keys and relative paths (no '..')."""
    if len(files) > MAX_REFERENCES:
        raise field_error(field, f"{len(files)} mounts; at most {MAX_REFERENCES}")
    seen: set[str] = set()
    for i, mount in enumerate(files):
        where = f"{field}[{i}]"
        if bool(mount.secret) == bool(mount.config_map):
            raise field_error(where, "must name exactly one of secret, configMap")
        name = mount.secret or mount.config_map
        if not _DNS_LABEL.fullmatch(name):
            raise field_error(f"{where}.{'secret' if mount.secret else 'configMap'}",
                              f"{name!r} is not an object name (a DNS-1123 label)")
        path = mount.mount_path
        if not path.startswith("/") or posixpath.normpath(path) != path or path == "/":
            raise field_error(f"{where}.mountPath", f"{path!r} must be an absolute, normalized directory "
                                                    "other than / (e.g. /etc/agent/keys)")
        if path in seen:
            raise field_error(f"{where}.mountPath", f"{path!r} is mounted twice")
        seen.add(path)
        targets: set[str] = set()
        for j, item in enumerate(mount.items):
            check_data_key(item.key, field=f"{where}.items[{j}].key")
            _check_relative(item.path, f"{where}.items[{j}].path")
            if item.path in targets:
                raise field_error(f"{where}.items[{j}].path", f"{item.path!r} is given twice")
            targets.add(item.path)


def _parse_list(value: Any, message_type: type[Any], field: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise field_error(field, f"must be a list of {what}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise field_error(f"{field}[{i}]", f"must be a mapping ({what})")
        message = message_type()
        try:
            json_format.ParseDict(item, message)
        except json_format.ParseError as err:
            # protobuf's message names the field, not the value
            raise field_error(f"{field}[{i}]", str(err).split(":", 1)[0]) from None
        out.append(message)
    return out


def env_vars_from_config(value: Any, *, field: str) -> list[secrets_pb2.EnvVar]:
    """An agent config's `env`: a mapping of names to strings (literal values) or a list of
    {name, value | valueFrom}; checked."""
    if isinstance(value, dict):
        env = []
        for name, item in value.items():
            if not isinstance(item, str):
                raise field_error(f"{field}.{name}", f"must be a string, not {type(item).__name__} (quote numbers)")
            env.append(secrets_pb2.EnvVar(name=str(name), value=item))
    else:
        env = _parse_list(value, secrets_pb2.EnvVar, field,
                          "{name, value} or {name, valueFrom: {secretKeyRef|configMapKeyRef: {name, key}}}, "
                          "or a mapping of names to strings")
    validate_env_vars(env, field=field)
    return env


def files_from_config(value: Any, *, field: str) -> list[secrets_pb2.FileMount]:
    """An agent config's `files`: a list of {secret|configMap, mountPath, items?}; checked."""
    files = _parse_list(value, secrets_pb2.FileMount, field, "{secret|configMap: NAME, mountPath, items?}")
    validate_files(files, field=field)
    return files


def references(
    config_env: Any = None,
    config_files: Any = None,
    env_vars: Iterable[secrets_pb2.EnvVar] = (),
    files: Iterable[secrets_pb2.FileMount] = (),
) -> References:
    """The references of an agent config's `env`/`files` plus a deployment's `env_vars`/`files`
    (the deployment's later: its variables win). Literal mapping entries of the config's env are
    left to the runtime, which applies them already."""
    env: list[secrets_pb2.EnvVar] = []
    if isinstance(config_env, list):
        env += env_vars_from_config(config_env, field="agent.config.env")
    env += list(env_vars)
    mounts: list[secrets_pb2.FileMount] = []
    if config_files:
        mounts += files_from_config(config_files, field="agent.config.files")
    mounts += list(files)
    return References(tuple(env), tuple(mounts))


# -- resolution -----------------------------------------------------------------------


def resolve(refs: References, objects: Mapping[ObjectRef, Mapping[str, bytes] | None]) -> Resolution:
    """The environment and files `refs` resolve to, given each referenced object's data
    (None: the object does not exist). MissingReference names every missing object and key."""
    missing: list[str] = []

    def lookup(ref: ObjectRef, key: str) -> bytes | None:
        data = objects.get(ref)
        if data is None:
            entry = f"{ref} does not exist"
            if entry not in missing:
                missing.append(entry)
            return None
        if key not in data:
            missing.append(f"{ref} has no key {key!r}")
            return None
        return data[key]

    env: dict[str, str] = {}
    for var in refs.env:
        source = var.value_from
        if source.HasField("secret_key_ref"):
            found = lookup(ObjectRef(SECRET, source.secret_key_ref.name), source.secret_key_ref.key)
        elif source.HasField("config_map_key_ref"):
            found = lookup(ObjectRef(CONFIGMAP, source.config_map_key_ref.name), source.config_map_key_ref.key)
        else:
            env[var.name] = var.value
            continue
        if found is not None:
            try:
                env[var.name] = found.decode()
            except UnicodeDecodeError:
                missing.append(f"{var.name}: the value of its key is not UTF-8 text, so it cannot be an environment "
                               "variable (mount it as a file instead)")
    files: list[ResolvedFile] = []
    for mount in refs.files:
        ref = ObjectRef(SECRET, mount.secret) if mount.secret else ObjectRef(CONFIGMAP, mount.config_map)
        if mount.items:
            for item in mount.items:
                content = lookup(ref, item.key)
                if content is not None:
                    files.append(ResolvedFile(mount.mount_path, item.path, content))
        else:
            data = objects.get(ref)
            if data is None:
                lookup(ref, "")
                continue
            files += [ResolvedFile(mount.mount_path, key, value) for key, value in sorted(data.items())]
    if missing:
        raise MissingReference("missing: " + "; ".join(missing), missing)
    return Resolution(env, tuple(files), tuple(m.mount_path for m in refs.files))


def object_versions(refs: References, versions: Mapping[ObjectRef, str | None]) -> dict[str, str]:
    """`{"secret/NAME": version}` of every referenced object, for a revision hash (names and
    versions, never values); MissingReference naming the objects that do not exist."""
    missing = [str(ref) + " does not exist" for ref in refs.objects if versions.get(ref) is None]
    if missing:
        raise MissingReference("missing: " + "; ".join(missing), missing)
    return {f"{ref.kind}/{ref.name}": str(versions[ref]) for ref in refs.objects}
