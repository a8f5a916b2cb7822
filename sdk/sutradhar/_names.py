"""Names: agent ids and types, namespaces and instance ids (DNS-1123).

One definition for the SDK (which refuses a badly named agent before serving
it) and the services (which refuse it at the registry)::

    >>> is_dns_label("my-agent")
    True
    >>> is_dns_label("My_Agent")
    False

The `validate_*` functions raise `InvalidArgument` naming the caller's field.
"""

from __future__ import annotations

import re
from typing import Final

from sutradhar._fields import field_error, quote

__all__ = [
    "ALL_NAMESPACES",
    "MAX_DNS_LABEL",
    "MAX_DNS_SUBDOMAIN",
    "is_dns_label",
    "validate_dns_label",
    "validate_instance_id",
    "validate_namespace",
]

#: The namespace that stands for every namespace when listing or watching.
ALL_NAMESPACES: Final = "*"
#: Longest DNS-1123 label (an agent id, type or namespace).
MAX_DNS_LABEL: Final = 63
#: Longest DNS-1123 subdomain (an instance id).
MAX_DNS_SUBDOMAIN: Final = 253

_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def is_dns_label(text: str) -> bool:
    """True for a DNS-1123 label: lowercase letters, digits and '-', at most 63."""
    return isinstance(text, str) and 0 < len(text) <= MAX_DNS_LABEL and bool(_DNS_LABEL_RE.fullmatch(text))


def validate_dns_label(text: str, *, field: str, what: str = "name") -> None:
    """Check a required DNS-1123 label."""
    if not text:
        raise field_error(field, f"{what} is required (a DNS-1123 label, e.g. my-agent)")
    if not is_dns_label(text):
        raise field_error(
            field,
            f"{quote(text)} is not a valid {what} (a DNS-1123 label: at most 63 lowercase letters, "
            "digits and '-', starting and ending with a letter or digit)",
        )


def validate_namespace(namespace: str, *, field: str = "namespace", allow_all: bool = False) -> None:
    """Check a namespace: empty (meaning "default"), a DNS-1123 label, or "*" when `allow_all`."""
    if not namespace:
        return
    if allow_all and namespace == ALL_NAMESPACES:
        return
    if namespace == ALL_NAMESPACES:
        raise field_error(field, '"*" (all namespaces) is only allowed when listing or watching')
    validate_dns_label(namespace, field=field, what="namespace")


def validate_instance_id(text: str, *, field: str = "instance.id") -> None:
    """Check an instance id: a DNS-1123 subdomain (labels joined by '.'), at most 253."""
    if not text:
        raise field_error(field, "instance id is required")
    if len(text) > MAX_DNS_SUBDOMAIN or not _DNS_SUBDOMAIN_RE.fullmatch(text):
        raise field_error(
            field,
            f"{quote(text)} is not a valid instance id (a DNS-1123 subdomain: lowercase letters, "
            "digits, '-' and '.', at most 253 characters)",
        )
