"""Kubernetes-style YAML manifests: parse, check, and convert to protobuf.

A file holds one or more documents separated by ``---``::

    apiVersion: sutradhar/v1
    kind: Agent                     # or Deployment, RoleBinding, ResourceQuota
    metadata:
      name: echo                    # the agent id
      namespace: default
      labels: {tier: gold}
    spec:
      type: echo
      version: 1.0.0
      runtime: process              # in-process | process | container | http
      capabilities: [echo]
      config: {command: [python3, -m, sutradhar.serve, "examples.echo_agent:EchoAgent"]}
      resources: {cpu: 500m, memory: 256Mi}
      probes: {readiness: {kind: grpc, period: 2s}}
      routing: {strategy: least-loaded}

A rate limit (cluster-admin only) limits the calls routed into its namespace, all of them
and each caller's (token buckets, Envoy semantics; docs/ratelimits.md)::

    apiVersion: sutradhar/v1
    kind: RateLimit
    metadata: {name: team-a, namespace: team-a}
    spec:
      namespaceLimit: {maxTokens: 200, tokensPerFill: 100, fillInterval: 1s}
      perCaller: {maxTokens: 20, tokensPerFill: 10, fillInterval: 1s}
      shared: false                 # true: the rates are mesh-wide, split among the live routers

A role binding gives a role to principals (SPIFFE IDs) in its namespace::

    apiVersion: sutradhar/v1
    kind: RoleBinding
    metadata: {name: ci-deployers, namespace: team-a}
    spec:
      role: operator
      subjects: [spiffe://sutradhar.local/ns/team-a/user/ci]

A resource quota bounds a namespace (docs/quotas.md; only a cluster-admin writes one)::

    apiVersion: sutradhar/v1
    kind: ResourceQuota
    metadata: {name: compute, namespace: team-a}
    spec:
      hard: {agents: 20, deployments: 10, replicas: 10, cpu: "4", memory: 8Gi}

A secret (values base64 in `data`, or text in `stringData`) and a config map
(see docs/secrets.md; nothing here or in any error quotes a value)::

    apiVersion: sutradhar/v1
    kind: Secret
    metadata: {name: llm-keys, namespace: team-a}
    stringData: {openai: sk-...}
    data: {cert: LS0tLS1CRUdJTi...}
    ---
    apiVersion: sutradhar/v1
    kind: ConfigMap
    metadata: {name: llm-settings, namespace: team-a}
    data: {model: gpt-4o, temperature: "0.2"}

Structural problems (not YAML, wrong apiVersion or kind, unknown fields, a
duration that is not one) are refused here with the document ("document 2 of
FILE" in a file of several) and the field named, an unknown field with the
nearest valid one ("unknown field 'metdata' (did you mean 'metadata'?)");
semantic checks (a version that is not semver, an unknown runtime) are the
registry's, which names the field in its INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.message import Message

from sutradhar._errors import InvalidArgument
from sutradhar.v1 import quota_pb2, ratelimit_pb2, rbac_pb2, registry_pb2, secrets_pb2

API_VERSION = "sutradhar/v1"
KINDS = ("Agent", "Deployment", "RoleBinding", "ResourceQuota", "RateLimit", "Secret", "ConfigMap")
TOP_LEVEL_FIELDS = ("apiVersion", "kind", "metadata", "spec")
#: Top-level fields of the kinds that hold data instead of a spec (as in Kubernetes).
DATA_KIND_FIELDS = {"Secret": ("apiVersion", "kind", "metadata", "data", "stringData"),
                    "ConfigMap": ("apiVersion", "kind", "metadata", "data")}
METADATA_FIELDS = ("name", "namespace", "labels")
AGENT_SPEC_FIELDS = ("type", "version", "runtime", "capabilities", "config", "resources", "labels", "description",
                     "probes", "routing")
ROLEBINDING_SPEC_FIELDS = ("role", "subjects")
RESOURCEQUOTA_SPEC_FIELDS = ("hard",)
RATELIMIT_SPEC_FIELDS = ("namespaceLimit", "namespace_limit", "perCaller", "per_caller", "shared")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_FIELDS = {
    "initial_delay", "initialDelay", "period", "timeout", "default_timeout", "defaultTimeout",
    "base_ejection_time", "baseEjectionTime", "max_ejection_time", "maxEjectionTime",
    "initial_backoff", "initialBackoff", "max_backoff", "maxBackoff", "delay", "fill_interval", "fillInterval",
}


@dataclass(frozen=True)
class Manifest:
    """One document of a manifest file."""

    kind: str
    name: str
    namespace: str
    body: dict[str, Any]
    source: str  # "document 2 of file.yaml" (or "file.yaml" when it holds one document), for error messages


def unknown_fields(where: str, given: Iterable[str], valid: Iterable[str], path: str = "") -> None:
    """InvalidArgument naming the first of `given` not in `valid` (under `path`),
    with the nearest valid name when one is close ("did you mean ...?")."""
    allowed = sorted(set(valid))
    unknown = sorted(set(given) - set(allowed))
    if not unknown:
        return
    first = unknown[0]
    full = f"{path}.{first}" if path else first
    close = difflib.get_close_matches(first, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    more = f"; also unknown: {', '.join(unknown[1:])}" if len(unknown) > 1 else ""
    where_in = f" in {path}" if path else ""
    raise InvalidArgument(
        f"{where}: unknown field {full!r}{hint}{more}; valid fields{where_in}: {', '.join(allowed)}", field=full
    )


@contextmanager
def before_applying() -> Iterator[None]:
    """Say "nothing was applied" on an InvalidArgument raised while a file is
    read and checked, before any document of it reaches the mesh."""
    try:
        yield
    except InvalidArgument as err:
        if "nothing was applied" in err.message:
            raise
        raise InvalidArgument(f"{err.message}; nothing was applied", field=err.field) from None


#: Message types the manifest gives as free-form values (checked by protobuf's
#: own JSON parser), not as mappings of named fields.
_OPAQUE_TYPES = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.Duration",
                           "google.protobuf.Timestamp", "google.protobuf.ListValue"})


def check_message_fields(where: str, data: Any, message: Message, path: str) -> None:
    """Refuse keys of `data` that are no field of `message`'s type (proto or JSON
    name), recursively into nested messages: the error names the field and the
    nearest valid one, where protobuf's parser would only say "no field named".
    `message` is a scratch instance (nested ones are created in it)."""
    if not isinstance(data, dict):
        return
    by_name = {}
    for f in message.DESCRIPTOR.fields:
        by_name[f.name] = f
        by_name[f.json_name] = f
    unknown_fields(where, (str(k) for k in data), by_name, path)
    for key, value in data.items():
        f = by_name[str(key)]
        nested = f.message_type
        if nested is None or nested.full_name in _OPAQUE_TYPES or nested.GetOptions().map_entry:
            continue
        if f.is_repeated:
            for i, item in enumerate(value if isinstance(value, list) else []):
                check_message_fields(where, item, getattr(message, f.name).add(), f"{path}.{key}[{i}]")
        else:
            check_message_fields(where, value, getattr(message, f.name), f"{path}.{key}")


def parse_duration(value: Any, *, field: str) -> str:
    """Normalize "500ms", "10s", "1m", "2h" or a number of seconds to protobuf JSON ("0.5s")."""
    if isinstance(value, bool):
        raise InvalidArgument(f"{field}: {value!r} is not a duration (e.g. 500ms, 10s, 1m)", field=field)
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise InvalidArgument(f"{field}: {value!r} is not a duration (e.g. 500ms, 10s, 1m)", field=field)
        number, unit = float(match.group(1)), match.group(2) or "s"
        seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def _normalize_durations(node: Any, path: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            sub = f"{path}.{key}"
            if key in _DURATION_FIELDS and not isinstance(value, (dict, list)):
                out[key] = parse_duration(value, field=sub)
            elif key in ("config", "labels", "env", "kwargs"):
                out[key] = value  # free-form maps are left alone
            else:
                out[key] = _normalize_durations(value, sub)
        return out
    if isinstance(node, list):
        return [_normalize_durations(v, f"{path}[{i}]") for i, v in enumerate(node)]
    return node


def load_manifests(path: str | Path) -> list[Manifest]:
    """Read every document of a manifest file (``-`` is not supported; pass a path)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidArgument(f"cannot read manifest {p}: {err.strerror}", field="file") from err
    except UnicodeDecodeError as err:
        raise InvalidArgument(f"cannot read manifest {p}: it is not UTF-8 text ({err.reason} at byte {err.start})",
                              field="file") from err
    return parse_manifests(text, source=str(p))


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line error as one line: "line L column C: problem"."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is None:
        return " ".join(str(problem).split())
    return f"line {mark.line + 1} column {mark.column + 1}: {' '.join(str(problem).split())}"


def parse_manifests(text: str, *, source: str = "<manifest>") -> list[Manifest]:
    """Parse manifest text into documents, checking their envelope."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise InvalidArgument(f"{source} is not valid YAML: {_yaml_problem(err)}", field="file") from err
    if not docs:
        raise InvalidArgument(f"{source} holds no manifest", field="file")
    out = []
    for i, doc in enumerate(docs, start=1):
        where = f"document {i} of {source}" if len(docs) > 1 else source
        if not isinstance(doc, dict):
            raise InvalidArgument(f"{where}: a manifest must be a mapping with apiVersion, kind, metadata, spec")
        unknown_fields(where, (str(k) for k in doc), DATA_KIND_FIELDS.get(str(doc.get("kind")), TOP_LEVEL_FIELDS))
        if doc.get("apiVersion") != API_VERSION:
            raise InvalidArgument(
                f"{where}: apiVersion must be {API_VERSION!r}, got {doc.get('apiVersion')!r}", field="apiVersion"
            )
        kind = doc.get("kind")
        if kind not in KINDS:
            raise InvalidArgument(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}", field="kind")
        metadata = doc.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidArgument(f"{where}: metadata must be a mapping with name (and namespace, labels)",
                                  field="metadata")
        if not metadata.get("name"):
            typo = difflib.get_close_matches("name", [str(k) for k in metadata if k not in METADATA_FIELDS], n=1)
            hint = f" (is {typo[0]!r} a misspelling of it?)" if typo else ""
            raise InvalidArgument(f"{where}: metadata.name is required{hint}", field="metadata.name")
        unknown_fields(where, (str(k) for k in metadata), METADATA_FIELDS, "metadata")
        spec = doc.get("spec") or {}
        if not isinstance(spec, dict):
            raise InvalidArgument(f"{where}: spec must be a mapping", field="spec")
        namespace = str(metadata.get("namespace") or "default")
        out.append(Manifest(kind=kind, name=str(metadata["name"]), namespace=namespace, body=doc, source=where))
    return out


def agent_from_manifest(manifest: Manifest) -> registry_pb2.Agent:
    """Convert a `kind: Agent` manifest into the registry's Agent message."""
    if manifest.kind != "Agent":
        raise InvalidArgument(f"{manifest.source}: expected kind Agent, got {manifest.kind}", field="kind")
    metadata = manifest.body.get("metadata") or {}
    spec = _normalize_durations(dict(manifest.body.get("spec") or {}), "spec")
    unknown_fields(manifest.source, spec, AGENT_SPEC_FIELDS, "spec")
    scratch = registry_pb2.Agent()
    for key in ("resources", "probes", "routing"):  # the nested messages, checked against their schema
        check_message_fields(manifest.source, spec.get(key), getattr(scratch, key), f"spec.{key}")
    spec_labels, meta_labels = spec.pop("labels", None) or {}, metadata.get("labels") or {}
    for field, raw in (("spec.labels", spec_labels), ("metadata.labels", meta_labels)):
        if not isinstance(raw, dict):
            raise InvalidArgument(
                f"{manifest.source}: {field} must be a mapping of label keys to values, not {type(raw).__name__}",
                field=field,
            )
    labels = {**spec_labels, **meta_labels}
    data = {**spec, "id": manifest.name, "namespace": manifest.namespace,
            "labels": {str(k): str(v) for k, v in labels.items()}}
    if "version" in data:
        data["version"] = str(data["version"])
    agent = registry_pb2.Agent()
    try:
        json_format.ParseDict(data, agent)
    except json_format.ParseError as err:
        raise InvalidArgument(f"{manifest.source}: {err}", field="spec") from err
    return agent


def rolebinding_from_manifest(manifest: Manifest) -> rbac_pb2.RoleBinding:
    """Convert a `kind: RoleBinding` manifest into the RbacService's RoleBinding message
    (the role and the subjects' form are checked by `rolebindings.validate_binding`)."""
    if manifest.kind != "RoleBinding":
        raise InvalidArgument(f"{manifest.source}: expected kind RoleBinding, got {manifest.kind}", field="kind")
    spec = dict(manifest.body.get("spec") or {})
    unknown_fields(manifest.source, spec, ROLEBINDING_SPEC_FIELDS, "spec")
    role = spec.get("role")
    if not isinstance(role, str) or not role:
        raise InvalidArgument(f"{manifest.source}: spec.role is required (a role name, e.g. operator)",
                              field="spec.role")
    subjects = spec.get("subjects")
    if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
        raise InvalidArgument(
            f"{manifest.source}: spec.subjects must be a list of SPIFFE IDs "
            "(e.g. [spiffe://sutradhar.local/ns/team-a/user/ci])",
            field="spec.subjects",
        )
    return rbac_pb2.RoleBinding(namespace=manifest.namespace, name=manifest.name, role=role, subjects=subjects)


def resourcequota_from_manifest(manifest: Manifest) -> quota_pb2.ResourceQuota:
    """Convert a `kind: ResourceQuota` manifest into the QuotaService's ResourceQuota message
    (resource names and quantities are checked by `quota.validate_quota`). Numbers may be
    written bare (`replicas: 10`, `cpu: 4`)."""
    if manifest.kind != "ResourceQuota":
        raise InvalidArgument(f"{manifest.source}: expected kind ResourceQuota, got {manifest.kind}", field="kind")
    spec = dict(manifest.body.get("spec") or {})
    unknown_fields(manifest.source, spec, RESOURCEQUOTA_SPEC_FIELDS, "spec")
    hard = spec.get("hard")
    if not isinstance(hard, dict) or not hard:
        raise InvalidArgument(
            f"{manifest.source}: spec.hard must be a mapping of resources to limits "
            "(e.g. {replicas: 10, cpu: \"4\", memory: 8Gi})",
            field="spec.hard",
        )
    limits: dict[str, str] = {}
    for resource, value in hard.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidArgument(
                f"{manifest.source}: spec.hard.{resource} must be a number or a quantity such as \"500m\" or "
                f"\"8Gi\", not {type(value).__name__}",
                field=f"spec.hard.{resource}",
            )
        limits[str(resource)] = str(value)
    return quota_pb2.ResourceQuota(namespace=manifest.namespace, name=manifest.name,
                                   spec=quota_pb2.ResourceQuotaSpec(hard=limits))


def _data_map(manifest: Manifest, name: str) -> dict[str, Any]:
    raw = manifest.body.get(name)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{manifest.source}: {name} must be a mapping of keys to values", field=name)
    for key, value in raw.items():
        if not isinstance(value, str):
            # the value itself is never quoted: it may be a secret
            raise InvalidArgument(f"{manifest.source}: {name}.{key} must be a string (quote numbers and booleans), "
                                  f"not {type(value).__name__}", field=f"{name}.{key}")
    return {str(k): v for k, v in raw.items()}


def _labels(manifest: Manifest) -> dict[str, str]:
    labels = (manifest.body.get("metadata") or {}).get("labels") or {}
    if not isinstance(labels, dict):
        raise InvalidArgument(f"{manifest.source}: metadata.labels must be a mapping", field="metadata.labels")
    return {str(k): str(v) for k, v in labels.items()}


def secret_from_manifest(manifest: Manifest) -> tuple[secrets_pb2.Secret, dict[str, bytes]]:
    """A `kind: Secret` manifest as the secret's metadata and its values (`data` is base64,
    `stringData` text and wins on a key in both, as in Kubernetes). Errors never quote a value."""
    if manifest.kind != "Secret":
        raise InvalidArgument(f"{manifest.source}: expected kind Secret, got {manifest.kind}", field="kind")
    values: dict[str, bytes] = {}
    for key, text in _data_map(manifest, "data").items():
        try:
            values[key] = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument(f"{manifest.source}: data.{key} is not base64 (put text in stringData instead)",
                                  field=f"data.{key}") from None
    values.update({key: text.encode() for key, text in _data_map(manifest, "stringData").items()})
    if not values:
        raise InvalidArgument(f"{manifest.source}: a Secret needs data or stringData (at least one key)",
                              field="data")
    secret = secrets_pb2.Secret(namespace=manifest.namespace, name=manifest.name, labels=_labels(manifest))
    return secret, values


def configmap_from_manifest(manifest: Manifest) -> secrets_pb2.ConfigMap:
    """A `kind: ConfigMap` manifest as the ConfigMap message."""
    if manifest.kind != "ConfigMap":
        raise InvalidArgument(f"{manifest.source}: expected kind ConfigMap, got {manifest.kind}", field="kind")
    return secrets_pb2.ConfigMap(namespace=manifest.namespace, name=manifest.name,
                                 data=_data_map(manifest, "data"), labels=_labels(manifest))


def ratelimit_from_manifest(manifest: Manifest) -> ratelimit_pb2.RateLimit:
    """Convert a `kind: RateLimit` manifest into the RateLimitService's RateLimit message
    (its buckets are checked by `ratelimit_spec.validate_rate_limit`)."""
    if manifest.kind != "RateLimit":
        raise InvalidArgument(f"{manifest.source}: expected kind RateLimit, got {manifest.kind}", field="kind")
    spec = _normalize_durations(dict(manifest.body.get("spec") or {}), "spec")
    unknown_fields(manifest.source, spec, RATELIMIT_SPEC_FIELDS, "spec")
    scratch = ratelimit_pb2.RateLimit()
    for key in ("namespaceLimit", "namespace_limit", "perCaller", "per_caller"):
        if key in spec:
            check_message_fields(manifest.source, spec[key], scratch.namespace_limit, f"spec.{key}")
    limit = ratelimit_pb2.RateLimit()
    try:
        json_format.ParseDict({**spec, "name": manifest.name, "namespace": manifest.namespace}, limit)
    except json_format.ParseError as err:
        raise InvalidArgument(f"{manifest.source}: {err}", field="spec") from err
    return limit
