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


ACCESS: dict[str, MethodAccess] = {}
"""Full method name -> its access; filled by `services/common/rbac_methods.py`."""


def access_for(method: str, table: Mapping[str, MethodAccess] = ACCESS) -> MethodAccess | None:
    """The access entry of `method` ("/pkg.Service/Method"), None if the method has none."""
    return table.get(method)
