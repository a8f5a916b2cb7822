"""The reconciler with Secret/ConfigMap references, over fakes and virtual time: values reach
the replica's spec (environment, files), a changed secret rolls, a missing one is a condition
and nothing starts, and no value is in the stored deployment or its events."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from google.protobuf import json_format
from scheduler_fakes import Harness

from sutradhar._errors import NotFound
from sutradhar._values import to_struct
from sutradhar.services.common import keys
from sutradhar.services.scheduler.reconciler import Reconciler
from sutradhar.services.scheduler.secret_resolution import SecretResolver
from sutradhar.v1 import registry_pb2, secrets_pb2
from sutradhar.v1 import scheduler_pb2 as P

KEY = ("ns", "web")
VALUE = b"sk-reconcile-1f2e3d"


class Secrets:
    """What RevealSecret answers (the registry's side), and how often it was asked."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, bytes]] = {}
        self.reveals = 0

    async def reveal(self, namespace: str, name: str) -> Mapping[str, bytes]:
        self.reveals += 1
        if name not in self.data:
            raise NotFound(f"secret {name!r} not found")
        return self.data[name]


async def put_secret(h: Harness, secrets: Secrets, name: str, data: dict[str, bytes], version: int) -> None:
    secrets.data[name] = data
    stored = secrets_pb2.StoredSecret(namespace="ns", name=name, version=version, sealed=b"sutradhar:enc:...")
    await h.store.put(keys.secret_key("ns", name), keys.encode(stored))


async def setup(tmp_path: Path, *, resolver: bool = True) -> tuple[Harness, Reconciler, Secrets]:
    h = Harness(state_dir=tmp_path)
    agent = registry_pb2.Agent(id="echo", namespace="ns", type="echo", version="1.0.0", runtime="process",
                               config=to_struct({"command": ["echo-agent"]}))
    await h.store.put(keys.agent_key("ns", "echo"), keys.encode(agent))
    d = P.Deployment(name="web", namespace="ns", generation=1, spec=P.DeploymentSpec(agent_id="echo", replicas=1))
    json_format.ParseDict({
        "env_vars": [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm", "key": "openai"}}}],
        "files": [{"secret": "llm", "mountPath": "/etc/keys"}],
    }, d.spec)
    await h.store.put(keys.deployment_key("ns", "web"), keys.encode(d))
    secrets = Secrets()
    r = Reconciler(h.store, h.supervisor,  # type: ignore[arg-type]
                   resolver=SecretResolver(h.store, secrets.reveal) if resolver else None)  # type: ignore[arg-type]
    return h, r, secrets


async def stored(h: Harness) -> P.Deployment:
    kv = await h.store.get(keys.deployment_key("ns", "web"))
    assert kv is not None
    return keys.decode(kv.value, P.Deployment)


def failure(d: P.Deployment) -> P.DeploymentCondition | None:
    return next((c for c in d.status.conditions if c.type == "ReplicaFailure"), None)


async def test_values_reach_the_replica_and_a_changed_secret_rolls(tmp_path: Path) -> None:
    h, r, secrets = await setup(tmp_path)
    await put_secret(h, secrets, "llm", {"openai": VALUE}, version=1)
    await r.reconcile(KEY)
    [spec] = h.runtime.started
    assert spec.env["API_KEY"] == VALUE.decode()
    assert spec.files_dir is not None and (spec.files_dir / "etc/keys/openai").read_bytes() == VALUE
    first = (await stored(h)).status.current_revision
    slots = h.supervisor.slots[KEY]
    await h.clock.run_until(lambda: all(s.ready for s in slots.values()))
    await r.reconcile(KEY)
    assert secrets.reveals == 1, "values are read to start a replica, not on every reconcile"

    await put_secret(h, secrets, "llm", {"openai": b"rotated"}, version=2)
    await r.reconcile(KEY)
    d = await stored(h)
    assert d.status.current_revision != first
    assert h.runtime.started[-1].env["API_KEY"] == "rotated" and h.runtime.started[-1].revision != first
    assert VALUE not in keys.encode(d) and b"rotated" not in keys.encode(d)
    await h.close()


async def test_a_missing_secret_or_key_starts_nothing_and_names_it(tmp_path: Path) -> None:
    h, r, secrets = await setup(tmp_path)
    await r.reconcile(KEY)
    assert h.runtime.started == []
    c = failure(await stored(h))
    assert c is not None and c.reason == "MissingReference" and "secret 'llm' does not exist" in c.message

    await put_secret(h, secrets, "llm", {"other": VALUE}, version=1)
    await r.reconcile(KEY)
    assert h.runtime.started == []
    d = await stored(h)
    c = failure(d)
    assert c is not None and c.reason == "MissingReference" and "secret 'llm' has no key 'openai'" in c.message
    assert VALUE not in keys.encode(d)

    await put_secret(h, secrets, "llm", {"openai": VALUE}, version=2)
    await r.reconcile(KEY)
    assert len(h.runtime.started) == 1
    await h.close()


async def test_without_a_resolver_references_are_a_condition(tmp_path: Path) -> None:
    h, r, _ = await setup(tmp_path, resolver=False)
    await r.reconcile(KEY)
    assert h.runtime.started == []
    c = failure(await stored(h))
    assert c is not None and "cannot resolve" in c.message
    await h.close()
