"""`SecurityStack`: what one mesh service needs to authenticate, audit and authorize calls.

Every service (registry, router, scheduler, health) builds one from its config
(`ServiceSecurity`) and its etcd `Store`, starts it before serving, and gives
`middleware` to its `GrpcHost`::

    AUTHENTICATION  Authentication: the bearer token (verified once, cached until
                    it expires, revocations followed) or else the peer certificate
    AUDIT           AuditMiddleware: one record per mutation and per denied call
    AUTHORIZATION   Authorization: RBAC over the role bindings (in memory, followed)
    RATE_LIMIT      MutationLimits: mutations per principal (registry, scheduler, health;
                    not the router, whose calls RateLimit objects limit)
    AUDIT_GATE      AuditGate: a mutation's record is written before its handler runs

The caches (`RevocationCache`, `RoleBindingCache`) are loaded before `start`
returns, so the first call is decided on the current bindings; they follow etcd
while the service runs.

With ``--insecure`` the stack is one stage, `Authentication.insecure`: every call
runs as the anonymous principal, nothing is authorized, audited or mutation-limited
(development).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from sutradhar._aio import wait_set
from sutradhar._errors import FailedPrecondition, Unavailable
from sutradhar._middleware import Middleware
from sutradhar.services.common import rbac_methods
from sutradhar.services.common.audit import AuditLog
from sutradhar.services.common.audit_middleware import audit_stages
from sutradhar.services.common.authentication import Authentication
from sutradhar.services.common.authorization import Authorization
from sutradhar.services.common.mutation_limits import MutationLimits
from sutradhar.services.common.rbac import Authorizer
from sutradhar.services.common.rolebindings import RoleBindingCache
from sutradhar.services.common.security_config import ServiceSecurity
from sutradhar.services.common.store import Store
from sutradhar.services.common.token_records import RevocationCache
from sutradhar.services.common.tokens import PublicKey, TokenVerifier, load_public_keys

log = logging.getLogger(__name__)

#: How long `start` waits for the caches' first load before the service refuses to start.
READY_WITHIN = timedelta(seconds=15)


def load_token_keys(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise FailedPrecondition(
            f"cannot read the token public key file {path} ({err.strerror}); `sutradhar up` writes it to "
            "<state>/pki/token-issuer.pub.pem, or leave --token-public-key-file unset to accept certificates only"
        ) from None


class SecurityStack:
    """The security middleware of one service and the caches it reads."""

    def __init__(
        self,
        config: ServiceSecurity,
        store: Store | None,
        *,
        service: str,
        audit_log: AuditLog | None = None,
        token_keys: Sequence[PublicKey] = (),
        mutation_limits: bool = True,
    ) -> None:
        """`token_keys`: public keys bearer tokens may be signed with besides those of
        `config.token_public_key_file` (the registry passes its own issuer's). `mutation_limits`:
        add the per-principal mutation limit (`config.mutation_rate`/`mutation_burst`; the router
        passes False)."""
        self.service = service
        self.trust_domain = config.trust_domain
        self.insecure = config.insecure
        self._tasks: list[asyncio.Task[None]] = []
        self.revocations: RevocationCache | None = None
        self.bindings: RoleBindingCache | None = None
        self.audit_log: AuditLog | None = None
        self.authorizer: Authorizer | None = None
        self.verifier: TokenVerifier | None = None
        self.mutation_limits: MutationLimits | None = None
        if config.insecure:
            self.middleware: list[Middleware] = [Authentication.insecure(config.trust_domain)]
            return
        if store is None:
            raise FailedPrecondition(
                f"the {service} needs etcd (--etcd) in a secured mesh: role bindings, token revocations and the "
                "audit log live there"
            )
        rbac_methods.install()
        verifier = None
        keys = list(token_keys)
        if config.token_public_key_file is not None:
            keys += load_public_keys(load_token_keys(config.token_public_key_file),
                                     source=str(config.token_public_key_file))
        if keys:
            self.revocations = RevocationCache(store)
            verifier = TokenVerifier.for_mesh(keys, config.trust_domain, is_revoked=self.revocations.is_revoked)
        self.verifier = verifier
        self.bindings = RoleBindingCache(store)
        self.authorizer = Authorizer(self.bindings, trust_domain=config.trust_domain)
        self.audit_log = audit_log or AuditLog(store)
        if mutation_limits and config.mutation_rate > 0 and config.mutation_burst > 0:
            self.mutation_limits = MutationLimits(rate=config.mutation_rate, burst=config.mutation_burst,
                                                  service=service)
        self.middleware = [
            Authentication(config.trust_domain, verifier),
            *audit_stages(self.audit_log),
            Authorization(self.authorizer),
            *([self.mutation_limits] if self.mutation_limits is not None else []),
        ]

    def tokens_only_middleware(self) -> list[Middleware]:
        """The stack of a port where a bearer token is the only credential (the registry's
        bootstrap port): authentication by token alone, the same audit log and authorization."""
        if self.verifier is None or self.audit_log is None or self.authorizer is None:
            raise FailedPrecondition(
                f"the {self.service}'s bootstrap port takes bearer tokens, so it needs a token key: pass "
                "--token-issuer-key-file or --token-public-key-file (and no --insecure)"
            )
        return [
            Authentication(self.trust_domain, self.verifier, tokens_only=True),
            *audit_stages(self.audit_log),
            Authorization(self.authorizer),
            *([self.mutation_limits] if self.mutation_limits is not None else []),
        ]

    async def start(self) -> None:
        """Start following etcd and wait for the first load (FailedPrecondition when etcd
        does not answer within READY_WITHIN: no call is decided on empty bindings)."""
        if self.insecure:
            return
        assert self.bindings is not None
        self._tasks.append(asyncio.create_task(self.bindings.run(), name=f"{self.service}-rolebindings"))
        if self.revocations is not None:
            self._tasks.append(asyncio.create_task(self.revocations.run(), name=f"{self.service}-revocations"))
        try:
            await self.bindings.wait_ready(READY_WITHIN)
            if self.revocations is not None and not await wait_set(self.revocations.synced, READY_WITHIN):
                raise Unavailable(
                    f"the {self.service} could not load token revocations from etcd within "
                    f"{READY_WITHIN.total_seconds():g}s; is etcd running?"
                )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
