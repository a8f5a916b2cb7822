"""The etcd key layout: the one place that knows where things live.

Every key starts with ``/sutradhar/v1/`` and then names the kind, so that a
watch of one kind across all namespaces is one prefix, and then the namespace
(default ``default``), so that a namespace's objects of one kind are one
prefix too::

    /sutradhar/v1/agents/<namespace>/<agent-id>          Agent (JSON)
    /sutradhar/v1/instances/<namespace>/<instance-id>    Instance (JSON, leased)
    /sutradhar/v1/deployments/<namespace>/<name>         Deployment (JSON)
    /sutradhar/v1/members/<service>/<member-id>          live service replicas (leased)
    /sutradhar/v1/elections/<name>/<lease-id>            leader-election candidates (leased)
    /sutradhar/v1/load/<namespace>/<instance-id>/<router-id>   observed load (leased; router or client-<id>)
    /sutradhar/v1/tokens/<namespace>/<jti>               TokenRecord (JSON, leased until after expiry)
    /sutradhar/v1/rolebindings/<namespace>/<name>        RoleBinding (JSON)
    /sutradhar/v1/audit/<audit-id>                       AuditEvent (JSON; append-only, ids sort by time)
    /sutradhar/v1/resourcequotas/<namespace>/<name>      ResourceQuota (JSON)
    /sutradhar/v1/quotaguards/<namespace>                quota admission guard (its mod revision is compared
                                                         and bumped by every quota-checked write)
    /sutradhar/v1/secrets/<namespace>/<name>             StoredSecret (JSON; data AES-GCM sealed, docs/secrets.md)
    /sutradhar/v1/configmaps/<namespace>/<name>          ConfigMap (JSON)
    /sutradhar/v1/ratelimits/<namespace>/<name>          RateLimit (JSON; routers watch them)

Values are protobuf messages in their canonical JSON form, so `etcdctl get
--prefix /sutradhar/v1/` is readable by an operator. docs/etcd-keys.md is
generated from this docstring's table.
"""

from __future__ import annotations

import json
from typing import Final, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from sutradhar._names import ALL_NAMESPACES

M = TypeVar("M", bound=Message)

ROOT: Final = "/sutradhar/v1/"
DEFAULT_NAMESPACE: Final = "default"

AGENTS: Final = "agents"
INSTANCES: Final = "instances"
DEPLOYMENTS: Final = "deployments"
MEMBERS: Final = "members"
ELECTIONS: Final = "elections"
LOAD: Final = "load"
TOKENS: Final = "tokens"
ROLEBINDINGS: Final = "rolebindings"
AUDIT: Final = "audit"
SECRETS: Final = "secrets"
CONFIGMAPS: Final = "configmaps"
RESOURCEQUOTAS: Final = "resourcequotas"
RATELIMITS: Final = "ratelimits"
QUOTA_GUARDS: Final = "quotaguards"


def namespace_or_default(namespace: str) -> str:
    """The namespace a request means: empty is "default"."""
    return namespace or DEFAULT_NAMESPACE


def kind_prefix(kind: str, namespace: str = ALL_NAMESPACES) -> str:
    """Prefix of every object of `kind` in `namespace` ("*": all namespaces)."""
    if namespace == ALL_NAMESPACES:
        return f"{ROOT}{kind}/"
    return f"{ROOT}{kind}/{namespace_or_default(namespace)}/"


def object_key(kind: str, namespace: str, name: str) -> str:
    """Key of one object."""
    return f"{ROOT}{kind}/{namespace_or_default(namespace)}/{name}"


def agent_key(namespace: str, agent_id: str) -> str:
    return object_key(AGENTS, namespace, agent_id)


def instance_key(namespace: str, instance_id: str) -> str:
    return object_key(INSTANCES, namespace, instance_id)


def deployment_key(namespace: str, name: str) -> str:
    return object_key(DEPLOYMENTS, namespace, name)


def rolebinding_key(namespace: str, name: str) -> str:
    return object_key(ROLEBINDINGS, namespace, name)


def resourcequota_key(namespace: str, name: str) -> str:
    """Key of one ResourceQuota."""
    return object_key(RESOURCEQUOTAS, namespace, name)


def quota_guard_key(namespace: str) -> str:
    """Key every quota-checked admission in `namespace` compares and bumps in its
    write's transaction, so two admissions that read the same usage cannot both pass."""
    return f"{ROOT}{QUOTA_GUARDS}/{namespace_or_default(namespace)}"


def secret_key(namespace: str, name: str) -> str:
    """Key of one secret (its data sealed with the registry's encryption key)."""
    return object_key(SECRETS, namespace, name)


def configmap_key(namespace: str, name: str) -> str:
    return object_key(CONFIGMAPS, namespace, name)


def ratelimit_key(namespace: str, name: str) -> str:
    return object_key(RATELIMITS, namespace, name)


def load_key(namespace: str, instance_id: str, router_id: str) -> str:
    """Key of one router's load report for one instance (leased by the router); a caller
    routing itself (`ReportLoad`) is named ``client-<reporter id>`` here."""
    return f"{object_key(LOAD, namespace, instance_id)}/{router_id}"


def load_value(agent_id: str, in_flight: float, rps: float, updated: float, *, p50: float = 0.0,
               p99: float = 0.0, breaker_open: bool = False, ejected: bool = False) -> bytes:
    """The JSON value of one load key; `p50` and `p99` (seconds, recent latency) are
    written as ``p50_ms`` / ``p99_ms`` only when measured, `breaker_open` and `ejected` (the
    reporter's breaker for the instance is open or half-open; it ejects the instance) only
    when true (readers take missing ones as 0 and false)."""
    value: dict[str, object] = {"agent_id": agent_id, "in_flight": round(in_flight, 4), "rps": round(rps, 4),
                                "updated": updated}
    if p50 > 0 or p99 > 0:
        value.update(p50_ms=round(p50 * 1000, 3), p99_ms=round(p99 * 1000, 3))
    if breaker_open:
        value["breaker_open"] = True
    if ejected:
        value["ejected"] = True
    return json.dumps(value, separators=(",", ":")).encode()


def token_key(namespace: str, token_id: str) -> str:
    """Key of one token's record (never the token itself)."""
    return object_key(TOKENS, namespace, token_id)


def audit_key(audit_id: str) -> str:
    """Key of one audit record. Not per namespace: the log is one time-ordered
    range (`audit_id` sorts by time), filtered by the record's namespace."""
    return f"{ROOT}{AUDIT}/{audit_id}"


def parse_key(key: str) -> tuple[str, str, str]:
    """Split an object key into (kind, namespace, name)."""
    if not key.startswith(ROOT):
        raise ValueError(f"{key!r} is not a Sutradhar key")
    kind, namespace, name = key[len(ROOT):].split("/", 2)
    return kind, namespace, name


def encode(message: Message) -> bytes:
    """Serialize a stored message (canonical protobuf JSON)."""
    return json_format.MessageToJson(message, indent=None, sort_keys=True).encode()


def decode(raw: bytes, message_type: type[M]) -> M:
    """Parse a stored message; unknown fields from newer writers are kept out."""
    message = message_type()
    json_format.Parse(raw, message, ignore_unknown_fields=True)
    return message
