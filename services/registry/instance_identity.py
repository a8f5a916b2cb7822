"""The identity an instance registers, bound to its endpoint: its shape, and who may bind it.

`Instance.identity` is the SPIFFE ID routers and health members require the
instance's endpoint to present on the mTLS handshake (`sutradhar._tls`
``expected=``): an address that answers with another identity gets no task.
Two rules, both pure:

- `validate_instance_identity` (every RegisterInstance): empty, or an agent
  identity of the mesh's trust domain for the instance's own namespace and
  agent id — ``.../ns/<namespace>/agent/<agent_id>`` (an agent outside the
  scheduler) or ``.../agent/<agent_id>/<instance id>`` (a replica, whose
  instance id must then be given). InvalidArgument naming ``instance.identity``.
- `check_instance_identity` (the authorization wiring calls it with the
  caller's principal): the scheduler (a mesh service) may bind any agent
  identity, since it issued the replica's certificate; an agent may bind only
  its own identity (its certificate's, or a replica of its own agent-level
  identity); nobody else may bind one. PermissionDenied naming who, what and
  where. An empty identity binds nothing and is allowed to whoever may register.
"""

from __future__ import annotations

from sutradhar._errors import InvalidArgument, PermissionDenied
from sutradhar._identity import AGENT, SERVICE, SpiffeId
from sutradhar.services.common import keys
from sutradhar.v1 import registry_pb2

FIELD = "instance.identity"
#: The mesh services that may register instances of any agent with any agent identity.
REGISTERING_SERVICES = frozenset({"scheduler"})


def _where(instance: registry_pb2.Instance) -> str:
    namespace = keys.namespace_or_default(instance.namespace)
    name = instance.id or "(id to be generated)"
    return f"instance {name!r} of agent {instance.agent_id!r} in namespace {namespace!r}"


def validate_instance_identity(
    instance: registry_pb2.Instance, *, trust_domain: str | None = None
) -> SpiffeId | None:
    """The instance's identity parsed (None when empty); InvalidArgument when it is not
    an agent identity of this instance's namespace and agent (and of `trust_domain` when given)."""
    text = instance.identity
    if not text:
        return None
    where = _where(instance)
    try:
        identity = SpiffeId.parse(text)
    except InvalidArgument as err:
        raise InvalidArgument(f"{FIELD} of {where}: {err}", field=FIELD) from None
    namespace = keys.namespace_or_default(instance.namespace)
    expected = f"spiffe://{trust_domain or '<trust-domain>'}/ns/{namespace}/agent/{instance.agent_id}" + (
        f"[/{instance.id}]" if instance.id else ""
    )
    problems = []
    if identity.kind != AGENT:
        problems.append(f"it is of kind {identity.kind!r}, not agent")
    if trust_domain is not None and identity.trust_domain != trust_domain:
        problems.append(f"its trust domain is {identity.trust_domain!r}, not the mesh's {trust_domain!r}")
    if identity.namespace != namespace:
        problems.append(f"its namespace is {identity.namespace!r}, not {namespace!r}")
    if identity.kind == AGENT and identity.agent_id != instance.agent_id:
        problems.append(f"it names agent {identity.agent_id!r}, not {instance.agent_id!r}")
    if identity.instance_id and identity.instance_id != instance.id:
        problems.append(
            f"it names instance {identity.instance_id!r}, not {instance.id!r}" if instance.id
            else f"it names instance {identity.instance_id!r}: set instance.id to it"
        )
    if problems:
        raise InvalidArgument(
            f"{FIELD} {text!r} of {where} does not fit: {'; '.join(problems)}; expected {expected}",
            field=FIELD,
        )
    return identity


def check_instance_identity(principal_identity: SpiffeId | None, instance: registry_pb2.Instance) -> None:
    """May `principal_identity` (the caller) bind `instance.identity` to the instance's
    endpoint? PermissionDenied naming who, what and where when not. None (an insecure
    mesh: no principal) and an empty identity pass; call it after `validate_instance_identity`."""
    if principal_identity is None or not instance.identity:
        return
    claimed = SpiffeId.parse(instance.identity)
    who = str(principal_identity)
    where = _where(instance)
    if principal_identity.trust_domain != claimed.trust_domain:
        raise PermissionDenied(
            f"{who} may not register identity {claimed} for {where}: it belongs to another trust domain",
            field=FIELD,
        )
    if principal_identity.kind == SERVICE:
        if principal_identity.name in REGISTERING_SERVICES:
            return
        raise PermissionDenied(
            f"{who} may not register identity {claimed} for {where}: of the mesh services only "
            f"{', '.join(sorted(REGISTERING_SERVICES))} registers agent instances",
            field=FIELD,
        )
    if principal_identity.kind == AGENT:
        own = claimed == principal_identity or (
            not principal_identity.instance_id
            and claimed.namespace == principal_identity.namespace
            and claimed.agent_id == principal_identity.agent_id
        )
        if own:
            return
        raise PermissionDenied(
            f"{who} may not register identity {claimed} for {where}: an agent registers its own identity only "
            "(the one in its certificate)",
            field=FIELD,
        )
    raise PermissionDenied(
        f"{who} may not register identity {claimed} for {where}: only the scheduler (for the replicas it "
        "starts) or the agent itself (with its certificate) binds an identity; register without identity, "
        "or let the agent register itself",
        field=FIELD,
    )
