"""Kubernetes-style YAML manifests: parse, check, and convert to protobuf.

A file holds one or more documents separated by ``---``::

    apiVersion: sutradhar/v1
    kind: Agent                     # or Deployment
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

Structural problems (not YAML, wrong apiVersion or kind, unknown fields, a
duration that is not one) are refused here with the document and field named;
semantic checks (a version that is not semver, an unknown runtime) are the
registry's, which names the field in its INVALID_ARGUMENT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from sutradhar._errors import InvalidArgument
from sutradhar.v1 import registry_pb2

API_VERSION = "sutradhar/v1"
KINDS = ("Agent", "Deployment")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_FIELDS = {
    "initial_delay", "initialDelay", "period", "timeout", "default_timeout", "defaultTimeout",
    "base_ejection_time", "baseEjectionTime", "max_ejection_time", "maxEjectionTime",
    "initial_backoff", "initialBackoff", "max_backoff", "maxBackoff", "delay",
}


@dataclass(frozen=True)
class Manifest:
    """One document of a manifest file."""

    kind: str
    name: str
    namespace: str
    body: dict[str, Any]
    source: str  # "file.yaml#2" for error messages


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
        where = f"{source}#{i}" if len(docs) > 1 else source
        if not isinstance(doc, dict):
            raise InvalidArgument(f"{where}: a manifest must be a mapping with apiVersion, kind, metadata, spec")
        if doc.get("apiVersion") != API_VERSION:
            raise InvalidArgument(
                f"{where}: apiVersion must be {API_VERSION!r}, got {doc.get('apiVersion')!r}", field="apiVersion"
            )
        kind = doc.get("kind")
        if kind not in KINDS:
            raise InvalidArgument(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}", field="kind")
        metadata = doc.get("metadata") or {}
        if not isinstance(metadata, dict) or not metadata.get("name"):
            raise InvalidArgument(f"{where}: metadata.name is required", field="metadata.name")
        unknown = set(doc) - {"apiVersion", "kind", "metadata", "spec"}
        if unknown:
            raise InvalidArgument(f"{where}: unknown top-level field(s) {', '.join(sorted(unknown))}")
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
    allowed = {"type", "version", "runtime", "capabilities", "config", "resources", "labels", "description",
               "probes", "routing"}
    unknown = set(spec) - allowed
    if unknown:
        raise InvalidArgument(
            f"{manifest.source}: unknown field(s) in spec: {', '.join(sorted(unknown))} "
            f"(valid: {', '.join(sorted(allowed))})",
            field=f"spec.{sorted(unknown)[0]}",
        )
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
