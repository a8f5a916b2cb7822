"""An external HTTP agent with no dependencies: the JSON form of the Agent contract.

Run it with ``python examples/http_echo_agent.py --port N`` (0 picks a free
port); once serving it prints ``http agent listening on 127.0.0.1:N`` to
stderr. It answers:

``POST /execute``  body ``{"type": str, "payload": any, "context": {...}}`` ->
    200 ``{"success": bool, "data": any, "error": {"code", "message",
    "retryable"} | null, "metadata": {"agent_id", "agent_version",
    "instance_id", "latency_ms", "task_id"}}``; a body that is not a JSON
    object gets 400 with ``success: false`` and error code ``INVALID_INPUT``.
    The payload options of the gRPC echo agent work here too: ``sleep``
    (seconds), ``fail`` (error code), ``crash`` (answers 500).
``GET /health``    200 ``{"status": "SERVING"}`` or 503 ``{"status": "NOT_SERVING"}``.
``POST /admin/health`` body ``{"healthy": false}`` flips /health (for tests);
    the environment variable ``HTTP_AGENT_UNHEALTHY=1`` starts it unhealthy.

SIGTERM or SIGINT stops it (exit 0).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

AGENT_ID = "http-echo"
AGENT_VERSION = "1.0.0"


class _State:
    """Mutable server state shared by handler threads."""

    def __init__(self, *, healthy: bool, instance_id: str) -> None:
        self.healthy = healthy
        self.instance_id = instance_id
        self.lock = threading.Lock()
        self.requests = 0


class Handler(BaseHTTPRequestHandler):
    """Serves /execute, /health and /admin/health."""

    server: AgentHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no access log on stderr."""

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw or b"null")

    def do_GET(self) -> None:
        """GET /health."""
        if self.path.split("?")[0] != "/health":
            self._send(404, {"error": f"no route {self.path}"})
            return
        if self.server.state.healthy:
            self._send(200, {"status": "SERVING"})
        else:
            self._send(503, {"status": "NOT_SERVING"})

    def do_POST(self) -> None:
        """POST /execute and /admin/health."""
        path = self.path.split("?")[0]
        try:
            body = self._body()
        except ValueError as err:
            self._send(400, _failure("INVALID_INPUT", f"body is not JSON: {err}", self.server.state))
            return
        if path == "/admin/health":
            self.server.state.healthy = bool(isinstance(body, dict) and body.get("healthy", True))
            self._send(200, {"healthy": self.server.state.healthy})
        elif path == "/execute":
            self._execute(body)
        else:
            self._send(404, {"error": f"no route {self.path}"})

    def _execute(self, body: Any) -> None:
        state = self.server.state
        started = time.perf_counter()
        with state.lock:
            state.requests += 1
        if not isinstance(body, dict):
            self._send(400, _failure("INVALID_INPUT", "body must be a JSON object {type, payload, context}", state))
            return
        payload = body.get("payload")
        options = payload if isinstance(payload, dict) else {}
        sleep = options.get("sleep")
        if isinstance(sleep, int | float) and sleep > 0:
            time.sleep(float(sleep))
        context = body.get("context")
        context = context if isinstance(context, dict) else {}
        task_id = str(body.get("id") or context.get("requestId") or uuid.uuid4().hex)
        if options.get("crash"):
            self._send(500, _failure("AGENT_ERROR", "crashed on request", state, started, task_id))
            return
        if options.get("fail"):
            out = _failure(str(options["fail"]), "failed on request", state, started, task_id)
            out["error"]["retryable"] = bool(options.get("retryable", False))
            self._send(200, out)
            return
        self._send(
            200,
            {
                "success": True,
                "data": {"echo": payload, "task_type": body.get("type", ""), "pid": os.getpid()},
                "error": None,
                "metadata": _metadata(state, started, task_id),
            },
        )


def _metadata(state: _State, started: float, task_id: str) -> dict[str, Any]:
    return {
        "agent_id": AGENT_ID,
        "agent_version": AGENT_VERSION,
        "instance_id": state.instance_id,
        "latency_ms": (time.perf_counter() - started) * 1000,
        "task_id": task_id,
    }


def _failure(
    code: str, message: str, state: _State, started: float | None = None, task_id: str = ""
) -> dict[str, Any]:
    return {
        "success": False,
        "data": None,
        "error": {"code": code, "message": message, "retryable": False},
        "metadata": _metadata(state, started or time.perf_counter(), task_id),
    }


class AgentHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server carrying the agent state."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        super().__init__(address, Handler)
        self.state = state


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; returns 0."""
    parser = argparse.ArgumentParser(description="A dependency-free HTTP echo agent.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SUTRADHAR_PORT") or 0))
    parser.add_argument("--instance-id", default=os.environ.get("SUTRADHAR_INSTANCE_ID") or f"http-echo-{os.getpid()}")
    args = parser.parse_args(argv)
    state = _State(healthy=os.environ.get("HTTP_AGENT_UNHEALTHY") != "1", instance_id=args.instance_id)
    server = AgentHTTPServer((args.host, args.port), state)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"http agent listening on {args.host}:{server.server_port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
