"""Workload and user identities: SPIFFE IDs, and the DNS names that stand for them.

Every party of a mesh has one identity, a SPIFFE ID in the URI SAN of its
certificate (or the subject of its bearer token)::

    spiffe://<trust-domain>/ns/<namespace>/<kind>/<name>

    spiffe://sutradhar.local/ns/sutradhar-system/service/registry   a mesh service
    spiffe://sutradhar.local/ns/team-a/agent/echo/echo-7f3a          a replica of agent echo
    spiffe://sutradhar.local/ns/team-a/agent/echo                    an agent outside the scheduler
    spiffe://sutradhar.local/ns/sutradhar-system/user/admin          a person or a CI job

gRPC Python cannot check a server's URI SAN on the client side, only its host
name, so every certificate also carries the DNS name `SpiffeId.dns_name`
(``registry.service.sutradhar-system.sutradhar.local``), and a client that
dials a peer it expects names that DNS name as the TLS target
(``grpc.ssl_target_name_override``): the handshake fails unless the peer holds
a certificate of the mesh's CA for exactly that identity.

    >>> SpiffeId.parse("spiffe://sutradhar.local/ns/a/agent/echo/echo-1").dns_name()
    'echo-1.echo.agent.a.sutradhar.local'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sutradhar._errors import InvalidArgument
from sutradhar._names import MAX_DNS_SUBDOMAIN, is_dns_label

__all__ = [
    "AGENT",
    "DEFAULT_TRUST_DOMAIN",
    "KINDS",
    "SERVICE",
    "SYSTEM_NAMESPACE",
    "USER",
    "SpiffeId",
    "validate_trust_domain",
]

#: The trust domain a mesh uses unless told otherwise.
DEFAULT_TRUST_DOMAIN: Final = "sutradhar.local"
#: The namespace of the mesh's own services and of its cluster-wide principals.
SYSTEM_NAMESPACE: Final = "sutradhar-system"

SERVICE: Final = "service"
"""A mesh service: registry, router, scheduler, health."""
AGENT: Final = "agent"
"""An agent (name: the agent id) or one replica of it (name: agent id / instance id)."""
USER: Final = "user"
"""A person, a CI job, a client program: whoever holds a user certificate or token."""
KINDS: Final = (SERVICE, AGENT, USER)

_SCHEME: Final = "spiffe://"
_TRUST_DOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_MAX_TRUST_DOMAIN: Final = 200


def validate_trust_domain(text: str, *, field: str = "trust_domain") -> None:
    """Check a trust domain: lowercase DNS-style labels joined by '.', e.g. sutradhar.local."""
    if not text or len(text) > _MAX_TRUST_DOMAIN or not _TRUST_DOMAIN_RE.fullmatch(text):
        raise InvalidArgument(
            f"trust domain {text!r} is not valid: use lowercase letters, digits, '-' and '.', "
            f"at most {_MAX_TRUST_DOMAIN} characters (e.g. {DEFAULT_TRUST_DOMAIN})",
            field=field,
        )


@dataclass(frozen=True, order=True)
class SpiffeId:
    """``spiffe://<trust_domain>/ns/<namespace>/<kind>/<name>``; `name` may hold one
    '/' (an agent replica: ``<agent-id>/<instance-id>``)."""

    trust_domain: str
    namespace: str
    kind: str
    name: str

    def __post_init__(self) -> None:
        validate_trust_domain(self.trust_domain)
        if not is_dns_label(self.namespace):
            raise InvalidArgument(f"identity namespace {self.namespace!r} is not a DNS-1123 label", field="namespace")
        if self.kind not in KINDS:
            raise InvalidArgument(
                f"identity kind {self.kind!r} is not one of {', '.join(KINDS)}", field="kind"
            )
        parts = self.name.split("/")
        limit = 2 if self.kind == AGENT else 1
        valid = 0 < len(parts) <= limit and is_dns_label(parts[0]) and all(_is_subdomain(p) for p in parts[1:])
        if not valid:
            shape = "<agent-id> or <agent-id>/<instance-id>" if self.kind == AGENT else "a DNS-1123 label"
            raise InvalidArgument(f"identity name {self.name!r} of kind {self.kind} must be {shape}", field="name")
        if len(self.dns_name()) > MAX_DNS_SUBDOMAIN:
            raise InvalidArgument(
                f"identity {self} is too long: its DNS name would pass {MAX_DNS_SUBDOMAIN} characters; "
                "use a shorter instance id, agent id, namespace or trust domain",
                field="name",
            )

    @classmethod
    def parse(cls, text: str) -> SpiffeId:
        """Parse a SPIFFE ID of this shape; InvalidArgument saying what is wrong."""
        if not text.startswith(_SCHEME):
            raise InvalidArgument(f"{text!r} is not a SPIFFE ID (spiffe://<trust-domain>/ns/<namespace>/<kind>/<name>)")
        domain, _, path = text[len(_SCHEME):].partition("/")
        parts = path.split("/")
        if len(parts) not in (4, 5) or parts[0] != "ns":
            raise InvalidArgument(
                f"{text!r} is not a Sutradhar identity (spiffe://<trust-domain>/ns/<namespace>/<kind>/<name>)"
            )
        return cls(domain, parts[1], parts[2], "/".join(parts[3:]))

    @classmethod
    def service(cls, trust_domain: str, name: str) -> SpiffeId:
        """A mesh service's identity (in the system namespace)."""
        return cls(trust_domain, SYSTEM_NAMESPACE, SERVICE, name)

    @classmethod
    def agent(cls, trust_domain: str, namespace: str, agent_id: str, instance_id: str = "") -> SpiffeId:
        """An agent's identity, or one replica's when `instance_id` is given."""
        return cls(trust_domain, namespace, AGENT, f"{agent_id}/{instance_id}" if instance_id else agent_id)

    @classmethod
    def user(cls, trust_domain: str, namespace: str, name: str) -> SpiffeId:
        return cls(trust_domain, namespace, USER, name)

    @property
    def agent_id(self) -> str:
        """The agent id of an agent identity ("" for other kinds)."""
        return self.name.split("/", 1)[0] if self.kind == AGENT else ""

    @property
    def instance_id(self) -> str:
        """The instance id of a replica identity ("" otherwise)."""
        return self.name.split("/", 1)[1] if self.kind == AGENT and "/" in self.name else ""

    def dns_name(self) -> str:
        """The DNS name in this identity's certificate, which clients verify as the TLS
        target name: ``[<instance>.]<name>.<kind>.<namespace>.<trust-domain>``."""
        labels = list(reversed(self.name.split("/")))  # an instance id's own dots stay
        return ".".join([*labels, self.kind, self.namespace, self.trust_domain])

    def __str__(self) -> str:
        return f"{_SCHEME}{self.trust_domain}/ns/{self.namespace}/{self.kind}/{self.name}"


def _is_subdomain(text: str) -> bool:
    """An instance id: DNS-1123 labels joined by '.' (they become labels of the DNS name)."""
    return all(is_dns_label(label) for label in text.split("."))
