"""`sutradhar deploy`, `scale`, `undeploy`, `rollout`, `deployments` and `logs`:
the scheduler from the command line.

A deployment manifest::

    apiVersion: sutradhar/v1
    kind: Deployment
    metadata: {name: echo, namespace: default}
    spec:
      agent: echo                   # an agent id, or an inline agent spec (a mapping)
      replicas: 3
      resources: {cpu: 500m, memory: 256Mi}
      autoscale: {min: 1, max: 10, target_in_flight: 4, scale_up_window: 0s, scale_down_window: 5m}
      strategy: {max_surge: 25%, max_unavailable: 25%}
      env: {LOG_LEVEL: info}        # or a list: [{name, value}, {name, valueFrom: {secretKeyRef: {name, key}}}]
      files: [{secret: llm-keys, mountPath: /etc/agent/keys}]   # Secret/ConfigMap keys as files

`deploy -f` applies `kind: RoleBinding` documents first (RbacService, on the
registry), then `kind: RateLimit` documents (RateLimitService, on the registry),
then `kind: Agent` documents through the registry, then the
deployments through the scheduler (create or update, like `kubectl apply`).
`kind: ResourceQuota` documents (QuotaService, on the registry) go before all of
them, so a quota is in force before what it bounds is written. `kind: Secret`
and `kind: ConfigMap` documents (on the registry; the output names keys and
sizes, never values) go after the RoleBindings, before the agents that reference
them. `sutradhar apply -f` is the same command.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf import json_format

from sutradhar._clients import QuotaClient, RateLimitClient, RbacClient, RegistryClient, SchedulerClient
from sutradhar._errors import InvalidArgument, NotFound
from sutradhar.cli._output import add_output_flag, print_json, print_table
from sutradhar.cli._rpc import connect
from sutradhar.cli.manifests import (
    Manifest,
    agent_from_manifest,
    before_applying,
    load_manifests,
    parse_duration,
    ratelimit_from_manifest,
    resourcequota_from_manifest,
    rolebinding_from_manifest,
    unknown_fields,
)
from sutradhar.cli.secrets import apply_config_objects, read_config_objects
from sutradhar.v1 import quota_pb2, ratelimit_pb2, rbac_pb2, registry_pb2
from sutradhar.v1 import scheduler_pb2 as P

M = TypeVar("M")

TIMEOUT = 15.0
_SPEC_FIELDS = {"agent", "replicas", "resources", "autoscale", "strategy", "env", "labels", "paused", "files"}
_AUTOSCALE_FIELDS = {
    "min": "min_replicas", "min_replicas": "min_replicas", "max": "max_replicas", "max_replicas": "max_replicas",
    "target_in_flight": "target_in_flight", "targetInFlight": "target_in_flight",
    "scale_up_window": "scale_up_window", "scaleUpWindow": "scale_up_window",
    "scale_down_window": "scale_down_window", "scaleDownWindow": "scale_down_window",
    "tolerance": "tolerance",
}
_STRATEGY_FIELDS = {"max_surge": "max_surge", "maxSurge": "max_surge",
                    "max_unavailable": "max_unavailable", "maxUnavailable": "max_unavailable"}


def deployment_from_manifest(m: Manifest) -> tuple[P.Deployment, registry_pb2.Agent | None]:
    """A `kind: Deployment` manifest as a Deployment, plus its inline agent (if any)."""
    spec = dict(m.body.get("spec") or {})
    unknown_fields(m.source, spec, _SPEC_FIELDS, "spec")
    d = P.Deployment(name=m.name, namespace=m.namespace)
    agent_ref = spec.get("agent")
    inline: registry_pb2.Agent | None = None
    if isinstance(agent_ref, dict):
        body = dict(agent_ref)
        agent_id = str(body.pop("id", None) or body.pop("name", None) or m.name)
        inline = agent_from_manifest(Manifest(
            kind="Agent", name=agent_id, namespace=m.namespace, source=f"{m.source} spec.agent",
            body={"apiVersion": "sutradhar/v1", "kind": "Agent", "metadata": {"name": agent_id}, "spec": body},
        ))
        d.spec.agent_id = agent_id
    elif isinstance(agent_ref, str) and agent_ref:
        d.spec.agent_id = agent_ref
    else:
        raise InvalidArgument(f"{m.source}: spec.agent is required (an agent id or an inline agent spec)",
                              field="spec.agent")
    replicas = spec.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise InvalidArgument(f"{m.source}: spec.replicas must be a whole number, got {replicas!r}",
                              field="spec.replicas")
    d.spec.replicas = replicas
    resources = dict(spec.get("resources") or {})
    unknown_fields(m.source, resources, {"cpu", "memory"}, "spec.resources")
    d.spec.resources.cpu = str(resources.get("cpu", ""))
    d.spec.resources.memory = str(resources.get("memory", ""))
    if spec.get("autoscale") is not None:
        auto = dict(spec["autoscale"])
        unknown_fields(m.source, auto, _AUTOSCALE_FIELDS, "spec.autoscale")
        data: dict[str, Any] = {}
        for key, value in auto.items():
            name = _AUTOSCALE_FIELDS[key]
            data[name] = parse_duration(value, field=f"spec.autoscale.{key}") if name.endswith("window") else value
        try:
            json_format.ParseDict(data, d.spec.autoscale)
        except json_format.ParseError as err:
            raise InvalidArgument(f"{m.source}: spec.autoscale: {err}", field="spec.autoscale") from err
    strategy = dict(spec.get("strategy") or {})
    unknown_fields(m.source, strategy, _STRATEGY_FIELDS, "spec.strategy")
    for key, value in strategy.items():
        setattr(d.spec.strategy, _STRATEGY_FIELDS[key], str(value))
    env = spec.get("env")
    if isinstance(env, list):  # the list form: literal values and Secret/ConfigMap references
        _parse_into(m, {"env_vars": env}, d.spec, "spec.env")
    else:
        for k, v in dict(env or {}).items():
            d.spec.env[str(k)] = str(v)
    if spec.get("files") is not None:
        _parse_into(m, {"files": spec["files"]}, d.spec, "spec.files")
    for k, v in dict(spec.get("labels") or {}).items():
        d.spec.labels[str(k)] = str(v)
    d.spec.paused = bool(spec.get("paused", False))
    return d, inline


def _parse_into(m: Manifest, data: dict[str, Any], spec: P.DeploymentSpec, field: str) -> None:
    """Parse the list form of env or files into `spec` (names the field, never a value)."""
    scratch = P.DeploymentSpec()
    try:
        json_format.ParseDict(data, scratch)
    except json_format.ParseError as err:
        raise InvalidArgument(f"{m.source}: {field}: {str(err).split(':', 1)[0]}", field=field) from None
    spec.MergeFrom(scratch)


def _replicas(n: int) -> str:
    return f"{n} replica" if n == 1 else f"{n} replicas"


def _tail(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return n


def register(sub: Any) -> None:
    p = sub.add_parser("deploy", aliases=["apply"], help="apply agents and deployments from a manifest")
    p.add_argument("-f", "--file", required=True,
                   help="YAML manifest (kind: Agent, Deployment, RoleBinding, ResourceQuota, Secret and/or "
                        "ConfigMap documents)")
    p.add_argument("--wait", action="store_true", help="wait until every deployment is rolled out")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait with --wait (default 120)")
    add_output_flag(p)
    p.set_defaults(func=deploy)

    p = sub.add_parser("scale", help="set a deployment's replica count")
    p.add_argument("name")
    p.add_argument("--replicas", type=int, required=True)
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--wait", action="store_true", help="wait until the replicas are ready")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait with --wait (default 120)")
    p.set_defaults(func=scale)

    p = sub.add_parser("undeploy", help="delete a deployment: stop its replicas and deregister them")
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--no-wait", action="store_true", help="return before the replicas have stopped")
    p.set_defaults(func=undeploy)

    rollout = sub.add_parser("rollout", help="status, pause, resume or undo a deployment's rollout")
    rsub = rollout.add_subparsers(dest="rollout_command", metavar="ACTION")
    rsub.required = True
    for action, help_text in (("status", "show (or with -w wait for) the rollout"),
                              ("pause", "pause the rollout"), ("resume", "resume the rollout"),
                              ("undo", "roll back to the previous (or a given) revision"),
                              ("history", "list the revisions undo can return to")):
        r = rsub.add_parser(action, help=help_text)
        r.add_argument("name")
        r.add_argument("-n", "--namespace", default="default")
        if action == "status":
            r.add_argument("-w", "--watch", action="store_true", help="wait until the rollout completes")
            r.add_argument("--timeout", type=float, default=120.0)
        if action == "undo":
            r.add_argument("--to-revision", default="", help="revision hash (prefix) to return to")
        if action == "history":
            add_output_flag(r)
        r.set_defaults(func=rollout_action)

    deps = sub.add_parser("deployments", help="list or show deployments")
    dsub = deps.add_subparsers(dest="deployments_command", metavar="ACTION")
    dsub.required = True
    p = dsub.add_parser("list", help="list deployments")
    p.add_argument("-n", "--namespace", default="default", help='namespace ("*" for all)')
    add_output_flag(p)
    p.set_defaults(func=list_deployments)
    p = dsub.add_parser("get", help="show one deployment: replicas, conditions, events")
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    add_output_flag(p)
    p.set_defaults(func=get_deployment)

    p = sub.add_parser("logs", help="print a deployment's replica logs")
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--replica", default="", help="only this replica")
    p.add_argument("--tail", type=_tail, default=100, help="last lines per replica (default 100)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.set_defaults(func=logs)


def _row(d: P.Deployment) -> dict[str, Any]:
    s = d.status
    return {
        "namespace": d.namespace, "name": d.name, "agent": d.spec.agent_id, "version": s.current_version,
        "desired": s.desired_replicas, "ready": s.ready_replicas, "updated": s.updated_replicas,
        "available": s.available_replicas, "revision": s.current_revision,
        "status": _summary(d),
    }


def _summary(d: P.Deployment) -> str:
    if d.HasField("delete_time"):
        return "Terminating"
    for ctype in ("ReplicaFailure", "FailedToStart", "CrashLoopBackOff", "Paused"):
        for c in d.status.conditions:
            if c.type == ctype and c.status == P.CONDITION_STATUS_TRUE:
                return ctype if ctype != "ReplicaFailure" else c.reason
    return "Available" if _complete(d) else "Progressing"


#: The condition the scheduler publishes on every status it writes: TRUE when it
#: observed the current generation, current_revision is set and updated == ready
#: == replicas == desired (reasons RolloutComplete, RolloutInProgress, RolloutPaused).
ROLLED_OUT = "RolledOut"


def _complete(d: P.Deployment) -> bool:
    """Whether `d` is rolled out: the scheduler's RolledOut condition, read from a
    status it wrote after seeing the current spec (observed_generation >=
    generation; an older status may still say TRUE of the previous spec)."""
    s = d.status
    if s.observed_generation < d.generation:
        return False
    return any(c.type == ROLLED_OUT and c.status == P.CONDITION_STATUS_TRUE for c in s.conditions)


COLUMNS = ["namespace", "name", "agent", "version", "desired", "ready", "updated", "available", "revision", "status"]


def _check_locally(agents: list[registry_pb2.Agent], deployments: list[P.Deployment]) -> None:
    """Run the registry's and the scheduler's own validation on every document
    before anything is applied: a file with one bad document changes nothing."""
    from sutradhar.services.registry.agent_validation import validate_agent
    from sutradhar.services.scheduler.spec import check_deployable, validate_deployment

    for agent in agents:
        try:
            validate_agent(agent)
        except InvalidArgument as err:
            raise InvalidArgument(f"agent/{agent.id}: {err}; nothing was applied", field=err.field) from None
    for d in deployments:
        try:
            validate_deployment(d)
            for agent in agents:
                if agent.id == d.spec.agent_id and agent.namespace == d.namespace:
                    check_deployable(agent)
        except InvalidArgument as err:
            raise InvalidArgument(f"deployment/{d.name}: {err}; nothing was applied", field=err.field) from None


async def _agents_not_in_file(registry: str, agents: list[registry_pb2.Agent],
                              deployments: list[P.Deployment]) -> dict[tuple[str, str], registry_pb2.Agent]:
    """Fetch the stored agents that deployments name but the file does not define
    (NOT_FOUND before anything is applied when one is missing)."""
    from sutradhar.services.scheduler.spec import check_deployable

    in_file = {(a.namespace or "default", a.id) for a in agents}
    wanted = {(d.namespace or "default", d.spec.agent_id) for d in deployments} - in_file
    found: dict[tuple[str, str], registry_pb2.Agent] = {}
    if not wanted:
        return found
    async with connect(RegistryClient, registry) as client:
        for namespace, agent_id in sorted(wanted):
            agent = await client.get_agent(agent_id, namespace=namespace, timeout=TIMEOUT)
            check_deployable(agent)
            found[(namespace, agent_id)] = agent
    return found


async def _keep_pause(scheduler: SchedulerClient, d: P.Deployment) -> None:
    """A manifest that does not say `paused` keeps the deployment's current pause
    (as `kubectl apply` does): applying it must not resume a paused rollout."""
    try:
        stored = await scheduler.get_deployment(d.name, namespace=d.namespace, timeout=TIMEOUT)
    except NotFound:
        return
    d.spec.paused = stored.spec.paused


def _read_checked(path: str, kind: str, convert: Callable[[Manifest], M], check: Callable[[M], None]) -> list[M]:
    """The documents of `kind` in a manifest file, converted and each checked as the registry will
    (InvalidArgument naming ``<kind>/<name>`` and that nothing was applied)."""
    found = [convert(m) for m in load_manifests(path) if m.kind == kind]
    for obj in found:
        try:
            check(obj)
        except InvalidArgument as err:
            name = getattr(obj, "name", "")
            raise InvalidArgument(f"{kind.lower()}/{name}: {err}; nothing was applied", field=err.field) from None
    return found


def _read_bindings(path: str) -> list[rbac_pb2.RoleBinding]:
    """The role bindings of a manifest file, each checked as the registry will."""
    from sutradhar.services.common.rolebindings import validate_binding

    return _read_checked(path, "RoleBinding", rolebinding_from_manifest, validate_binding)


def _read_rate_limits(path: str) -> list[ratelimit_pb2.RateLimit]:
    """The rate limits of a manifest file, each checked as the registry will."""
    from sutradhar._ratelimit_spec import validate_rate_limit

    return _read_checked(path, "RateLimit", ratelimit_from_manifest,
                         lambda limit: validate_rate_limit(limit, field="spec"))


async def _apply_rate_limits(args: argparse.Namespace, limits: list[ratelimit_pb2.RateLimit]) -> list[Any]:
    """Apply the rate limits and say so."""
    from sutradhar._ratelimit_spec import describe_limit

    applied: list[Any] = []
    async with connect(RateLimitClient, args.registry) as client:
        for limit in limits:
            resp = await client.apply_rate_limit(limit, timeout=TIMEOUT)
            applied.append(resp.rate_limit)
            if args.output != "json":
                verb = "created" if resp.created else "configured"
                print(f"ratelimit/{limit.name} {verb} in namespace {resp.rate_limit.namespace} "
                      f"({describe_limit(resp.rate_limit)})")
    return applied


async def _apply_bindings(args: argparse.Namespace, bindings: list[rbac_pb2.RoleBinding]) -> list[Any]:
    """Apply the role bindings (before agents and deployments) and say so."""
    applied: list[Any] = []
    async with connect(RbacClient, args.registry) as client:
        for b in bindings:
            resp = await client.apply_role_binding(b, timeout=TIMEOUT)
            applied.append(resp.binding)
            if args.output != "json":
                verb = "created" if resp.created else "configured"
                count = len(resp.binding.subjects)
                print(f"rolebinding/{b.name} {verb} in namespace {resp.binding.namespace} "
                      f"(role {resp.binding.role}, {count} subject{'' if count == 1 else 's'})")
    return applied


def _read_quotas(path: str) -> list[quota_pb2.ResourceQuota]:
    """The resource quotas of a manifest file, each checked as the registry will."""
    from sutradhar.services.common.quota import validate_quota

    return _read_checked(path, "ResourceQuota", resourcequota_from_manifest, validate_quota)


async def _apply_quotas(args: argparse.Namespace, quotas: list[quota_pb2.ResourceQuota]) -> list[Any]:
    """Apply the resource quotas (before everything they bound) and say so."""
    applied: list[Any] = []
    async with connect(QuotaClient, args.registry) as client:
        for q in quotas:
            resp = await client.apply_quota(q, timeout=TIMEOUT)
            applied.append(resp.quota)
            if args.output != "json":
                verb = "created" if resp.created else "configured"
                hard = ", ".join(f"{r} {v}" for r, v in sorted(resp.quota.status.hard.items()))
                print(f"resourcequota/{q.name} {verb} in namespace {resp.quota.namespace} ({hard})")
    return applied


def _read(path: str) -> tuple[list[registry_pb2.Agent], list[P.Deployment], set[tuple[str, str]]]:
    """The agents and deployments of a manifest file, and which deployments say `paused`."""
    manifests = load_manifests(path)
    agents = [agent_from_manifest(m) for m in manifests if m.kind == "Agent"]
    deployments = []
    says_paused: set[tuple[str, str]] = set()
    for m in manifests:
        if m.kind == "Deployment":
            d, inline = deployment_from_manifest(m)
            deployments.append(d)
            if "paused" in (m.body.get("spec") or {}):
                says_paused.add((d.namespace, d.name))
            if inline is not None:
                agents.append(inline)
    return agents, deployments, says_paused


async def deploy(args: argparse.Namespace) -> int:
    with before_applying():  # every document is read and checked before the first is applied
        quotas = _read_quotas(args.file)
        bindings = _read_bindings(args.file)
        secrets, config_maps = read_config_objects(args.file)
        rate_limits = _read_rate_limits(args.file)
        agents, deployments, says_paused = _read(args.file)
        _check_locally(agents, deployments)
        stored_agents = await _agents_not_in_file(args.registry, agents, deployments)
    results: list[Any] = await _apply_quotas(args, quotas) if quotas else []
    results += await _apply_bindings(args, bindings) if bindings else []
    if rate_limits:
        results += await _apply_rate_limits(args, rate_limits)
    if secrets or config_maps:
        results += await apply_config_objects(args, secrets, config_maps)
    if agents:
        async with connect(RegistryClient, args.registry) as registry:
            for agent in agents:
                stored = await registry.update_agent(agent, allow_missing=True, timeout=TIMEOUT)
                results.append(stored)
                stored_agents[(stored.namespace, stored.id)] = stored
                if args.output != "json":
                    print(f"agent/{agent.id} applied in namespace {stored.namespace} (version {stored.version})")
    expected: dict[tuple[str, str], str] = {}
    async with connect(SchedulerClient, args.scheduler) as scheduler:
        for d in deployments:
            if (d.namespace, d.name) not in says_paused:
                await _keep_pause(scheduler, d)
            resp = await scheduler.apply_deployment(d, timeout=TIMEOUT)
            stored_d = resp.deployment
            results.append(stored_d)
            deployed = stored_agents.get((stored_d.namespace, stored_d.spec.agent_id))
            if deployed is not None:
                expected[(stored_d.namespace, stored_d.name)] = _revision(deployed, stored_d)
            if args.output != "json":
                verb = "created" if resp.created else "configured"
                paused = " (paused: the rollout waits for `sutradhar rollout resume`)" if stored_d.spec.paused else ""
                print(f"deployment/{d.name} {verb} in namespace {stored_d.namespace} "
                      f"({_replicas(stored_d.spec.replicas)} of agent {d.spec.agent_id}){paused}")
        if args.wait:
            for d in results:
                if not isinstance(d, P.Deployment):
                    continue
                if not await _wait_rollout(scheduler, d.namespace, d.name, args.timeout, quiet=args.output == "json",
                                           revision=expected.get((d.namespace, d.name), "")):
                    return 1
    if args.output == "json":
        print_json(results)
    return 0


def _revision(agent: registry_pb2.Agent, d: P.Deployment) -> str:
    """The revision the scheduler will roll `d` out at (its own hash)."""
    from sutradhar.services.scheduler.spec import revision_of, spec_references

    if spec_references(agent, d.spec):
        return ""  # it hashes the versions of the referenced Secrets/ConfigMaps, which only the scheduler reads
    return revision_of(agent, d.spec)


async def _wait_rollout(scheduler: SchedulerClient, namespace: str, name: str, within: float,
                        *, quiet: bool = False, revision: str = "") -> bool:
    """Print progress until the deployment is rolled out (at `revision`, when
    given: a status complete at the previous revision does not count)."""
    deadline = time.monotonic() + within
    last = ""
    while True:
        d = await scheduler.get_deployment(name, namespace=namespace, timeout=TIMEOUT)
        s = d.status
        if s.observed_generation < d.generation:  # the scheduler has not acted on this spec yet
            line = f"deployment/{name}: waiting for the scheduler to pick up generation {d.generation}"
        elif revision and s.current_revision != revision:  # nor on the agent just applied
            line = f"deployment/{name}: waiting for the scheduler to pick up revision {revision}"
        else:
            summary = _summary(d)
            line = (f"deployment/{name}: {s.updated_replicas} of {s.desired_replicas} updated, "
                    f"{s.ready_replicas} ready ({summary})")
            why = "" if summary in ("Progressing", "Available", "Paused", "Terminating") else next(
                (c.message for c in s.conditions
                 if summary in (c.type, c.reason) and c.status == P.CONDITION_STATUS_TRUE and c.message), "")
            if why:  # a failing replica's reason, now rather than at the deadline (countdown left out)
                line += f"\n  {summary}: {re.sub(r'; next restart in [0-9]+s', '', why)}"
        if line != last and not quiet:
            print(line)
            last = line
        if _complete(d) and (not revision or s.current_revision == revision):
            if not quiet:
                print(f"deployment/{name} successfully rolled out (revision {s.current_revision}, "
                      f"version {s.current_version})")
            return True
        if time.monotonic() > deadline:
            for c in s.conditions:
                if c.status == P.CONDITION_STATUS_TRUE and c.type not in ("Available", "Progressing"):
                    print(f"  {c.type}: {c.message}")
            print(f"deployment/{name} not rolled out after {within:g}s")
            return False
        await asyncio.sleep(0.5)


async def scale(args: argparse.Namespace) -> int:
    async with connect(SchedulerClient, args.scheduler) as scheduler:
        scaled = await scheduler.scale_deployment(args.name, args.replicas, namespace=args.namespace, timeout=TIMEOUT)
        print(f"deployment/{args.name} scaled to {_replicas(scaled.spec.replicas)}")
        if args.wait:
            return 0 if await _wait_rollout(scheduler, args.namespace, args.name, args.timeout) else 1
    return 0


async def undeploy(args: argparse.Namespace) -> int:
    async with connect(SchedulerClient, args.scheduler) as scheduler:
        if args.no_wait:
            await scheduler.delete_deployment(args.name, namespace=args.namespace, timeout=TIMEOUT)
        else:
            delete = asyncio.ensure_future(scheduler.delete_deployment(args.name, namespace=args.namespace,
                                                                       wait=True))
            await _report_stopping(scheduler, args.namespace, args.name, delete)
            await delete
    print(f"deployment/{args.name} deleted from namespace {args.namespace}"
          + (" (replicas stopping)" if args.no_wait else "; every replica stopped"))
    return 0


async def _report_stopping(scheduler: SchedulerClient, namespace: str, name: str,
                           delete: asyncio.Future[Any]) -> None:
    """While `delete` waits for the replicas to stop, say how many are left."""
    last = -1
    while not delete.done():
        await asyncio.wait([delete], timeout=0.5)
        if delete.done():
            return
        try:
            d = await scheduler.get_deployment(name, namespace=namespace, timeout=TIMEOUT)
        except NotFound:
            return
        left = d.status.replicas
        if left != last:
            print(f"deployment/{name}: {_replicas(left)} stopping", flush=True)
            last = left


async def rollout_action(args: argparse.Namespace) -> int:
    async with connect(SchedulerClient, args.scheduler) as scheduler:
        action = args.rollout_command
        if action == "status":
            if args.watch:
                return 0 if await _wait_rollout(scheduler, args.namespace, args.name, args.timeout) else 1
            d = await scheduler.get_deployment(args.name, namespace=args.namespace, timeout=TIMEOUT)
            s = d.status
            print(f"deployment/{d.name}: revision {s.current_revision} (version {s.current_version}), "
                  f"{s.updated_replicas} of {s.desired_replicas} updated, {s.ready_replicas} ready: {_summary(d)}")
            return 0
        if action == "history":
            d = await scheduler.get_deployment(args.name, namespace=args.namespace, timeout=TIMEOUT)
            _print_history(d, args.output)
            return 0
        if action == "pause":
            await scheduler.pause_rollout(args.name, namespace=args.namespace, timeout=TIMEOUT)
            print(f"deployment/{args.name} paused")
        elif action == "resume":
            await scheduler.resume_rollout(args.name, namespace=args.namespace, timeout=TIMEOUT)
            print(f"deployment/{args.name} resumed")
        else:
            before = (await scheduler.get_deployment(args.name, namespace=args.namespace,
                                                     timeout=TIMEOUT)).status.current_revision
            resp = await scheduler.undo_rollout(args.name, namespace=args.namespace, to_revision=args.to_revision,
                                                timeout=TIMEOUT)
            target = next((r.revision for r in resp.deployment.status.revisions
                           if args.to_revision and r.revision.startswith(args.to_revision)), "")
            if args.to_revision and target == before:
                print(f"deployment/{args.name} already runs revision {before} (agent {resp.agent.id} version "
                      f"{resp.agent.version}); nothing to roll back")
            else:
                print(f"deployment/{args.name} rolled back to agent {resp.agent.id} version {resp.agent.version}"
                      + (f" (revision {target})" if target else ""))
    return 0


def _print_history(d: P.Deployment, output: str) -> None:
    """The deployment's revisions, oldest first, the current one marked."""
    current = d.status.current_revision
    if output == "json":
        print_json(list(d.status.revisions))
        return
    rows = [{"revision": r.revision, "version": r.version,
             "created": r.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if r.HasField("create_time") else "",
             "current": "*" if r.revision == current else ""}
            for r in d.status.revisions]
    print_table(rows, ["revision", "version", "created", "current"], empty="no revisions yet")


async def list_deployments(args: argparse.Namespace) -> int:
    async with connect(SchedulerClient, args.scheduler) as scheduler:
        resp = await scheduler.list_deployments(namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(list(resp.deployments))
    else:
        print_table((_row(d) for d in resp.deployments), COLUMNS, empty="no deployments")
    return 0


async def get_deployment(args: argparse.Namespace) -> int:
    async with connect(SchedulerClient, args.scheduler) as scheduler:
        d = await scheduler.get_deployment(args.name, namespace=args.namespace, timeout=TIMEOUT)
    if args.output == "json":
        print_json(d)
        return 0
    print_table([_row(d)], COLUMNS)
    print("\nreplicas:")
    print_table(
        ({"id": r.id, "phase": P.ReplicaPhase.Name(r.phase).removeprefix("REPLICA_PHASE_"), "version": r.version,
          "endpoint": r.endpoint, "pid/id": _short_id(r.native_id), "restarts": r.restarts, "message": r.message}
         for r in d.status.replica_statuses),
        ["id", "phase", "version", "endpoint", "pid/id", "restarts", "message"], empty="  none",
    )
    references = _references(d.spec)
    if references:
        print("\nfrom secrets and config maps (names only):")
        print_table(references, ["kind", "name", "key", "as"])
    print("\nconditions:")
    print_table(
        ({"type": c.type, "status": P.ConditionStatus.Name(c.status).removeprefix("CONDITION_STATUS_"),
          "reason": c.reason, "message": c.message} for c in d.status.conditions),
        ["type", "status", "reason", "message"], empty="  none",
    )
    print("\nevents:")
    print_table(
        ({"time": e.time.ToDatetime().strftime("%H:%M:%S"), "reason": e.reason, "message": e.message}
         for e in d.status.events[-15:]),
        ["time", "reason", "message"], empty="  none",
    )
    return 0


def _references(spec: P.DeploymentSpec) -> list[dict[str, str]]:
    """The deployment's Secret and ConfigMap references as rows: object, key and where it goes."""
    rows = []
    for var in spec.env_vars:
        source = var.value_from
        for kind, ref in (("secret", source.secret_key_ref), ("configmap", source.config_map_key_ref)):
            if ref.name:
                rows.append({"kind": kind, "name": ref.name, "key": ref.key, "as": f"env {var.name}"})
    for mount in spec.files:
        kind, name = ("secret", mount.secret) if mount.secret else ("configmap", mount.config_map)
        keys = ", ".join(f"{i.key}->{i.path}" for i in mount.items) or "(every key)"
        rows.append({"kind": kind, "name": name, "key": keys, "as": f"files in {mount.mount_path}"})
    return rows


def _short_id(native_id: str) -> str:
    """A container id as docker prints it (its first 12 hex digits); pids and URLs as they are.
    `-o json` keeps the full id."""
    return native_id[:12] if re.fullmatch(r"[0-9a-f]{64}", native_id) else native_id


async def logs(args: argparse.Namespace) -> int:
    async with connect(SchedulerClient, args.scheduler) as scheduler:
        prefix = not args.replica
        async for item in scheduler.get_logs(args.name, namespace=args.namespace, replica=args.replica,
                                             tail=args.tail, follow=args.follow):
            print(f"[{item.replica}] {item.line}" if prefix else item.line, flush=True)
    return 0
