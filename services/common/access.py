"""What each RPC does, in the words of authorization and audit.

`MethodAccess` says, for one gRPC method, which verb on which resource it is,
where the namespace and the object's name are in its request, and whether it
changes state (a mutation is audited whether allowed or not; a read only when
denied). `ACCESS` maps every method of every Sutradhar service
(``/sutradhar.v1.RegistryService/RegisterAgent``) to its entry; a method with no
entry is refused (default deny). `services/common/rbac.py` owns the verbs,
resources and roles; this module is the one table both AUTHORIZATION and AUDIT read.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

NamespaceOf = Callable[[Any], str]
"""Reads the namespace a request names ("" means default, "*" every namespace)."""
NameOf = Callable[[Any], str]
"""Reads the name of the object a request is about ("" when it names none, e.g. a list)."""
ExtraChecks = Callable[[Any], tuple[tuple[str, str], ...]]
"""More (verb, resource) pairs a request needs, from its content (e.g. an agent whose
runtime runs a command needs the admin-only verb on agents)."""


def _no_name(_request: Any) -> str:
    return ""


def _no_extra(_request: Any) -> tuple[tuple[str, str], ...]:
    return ()


@dataclass(frozen=True)
class MethodAccess:
    """One method's verb, resource, where its namespace and name are, and whether it mutates."""

    verb: str
    resource: str
    namespace: NamespaceOf
    name: NameOf = _no_name
    mutation: bool = False
    extra: ExtraChecks = _no_extra
    cluster: bool = field(default=False)
    """The method acts on the whole mesh, not one namespace (e.g. ListMembers)."""
    instance_owner: bool = False
    """The request names an instance by id only, not its agent: a grant limited to one
    agent's name (the `agent` role) allows the call only if the instance belongs to that
    agent, which the servicer checks after reading it (`Decision.owner`)."""


@dataclass(frozen=True)
class Decision:
    """What authorization decided for one call, for the audit record and the servicer.

    `reason` says which binding allowed it or why it was denied (a denial's reason is
    the PERMISSION_DENIED message). `owner` is set when the call is allowed only if the
    object it names belongs to that agent (see `MethodAccess.instance_owner`).
    """

    allowed: bool
    reason: str
    verb: str = ""
    resource: str = ""
    namespace: str = ""
    name: str = ""
    owner: str = ""


DECISION: contextvars.ContextVar[Decision | None] = contextvars.ContextVar("sutradhar_decision", default=None)
"""The AUTHORIZATION stage's decision for the call being served (None before it ran or
when the method is infrastructure); AUDIT, which wraps it, reads it after the call."""


ACCESS: dict[str, MethodAccess] = {}
"""Full method name -> its access; filled by `services/common/rbac_methods.py`."""


def access_for(method: str, table: Mapping[str, MethodAccess] = ACCESS) -> MethodAccess | None:
    """The access entry of `method` ("/pkg.Service/Method"), None if the method has none."""
    return table.get(method)
