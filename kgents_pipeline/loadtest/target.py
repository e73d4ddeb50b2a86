"""The bundled demo target: a local stand-in for the kgents SaaS `/health/saas` endpoint.

Latency and error rate are injectable (and changeable while it serves) so the pipeline and its
tests can rehearse a healthy, slow or failing service. A capacity limit makes it saturate where a
model says it does: `workers` requests are served at once, each taking `service_ms`, the rest
wait their turn, so it sustains `workers * 1000 / service_ms` requests per second and no more.
It binds to 127.0.0.1 by default.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMPONENTS = ("api", "nats", "redis", "agents")


class _Faults:
    """Current fault settings, shared by the handler threads."""

    def __init__(
        self,
        latency_ms: float,
        error_rate: float,
        seed: int | None,
        workers: int = 0,
        service_ms: float = 0.0,
    ) -> None:
        self.latency_ms = latency_ms
        self.error_rate = error_rate
        self.service_ms = service_ms
        # The capacity limit: `workers` at a time, the others queue (FIFO enough for a model).
        self.workers = threading.Semaphore(workers) if workers else None
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw_error(self) -> bool:
        with self._lock:
            return self._rng.random() < self.error_rate


def _validate_capacity(workers: int, service_ms: float) -> None:
    if workers < 0 or service_ms < 0:
        raise ValueError(f"workers and service_ms must be >= 0, got {workers}, {service_ms}")
    if bool(workers) != bool(service_ms):
        raise ValueError("a capacity limit needs both workers and service_ms (or neither)")


def _validate(latency_ms: float, error_rate: float) -> None:
    if latency_ms < 0:
        raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be within [0, 1], got {error_rate}")


class _Handler(BaseHTTPRequestHandler):
    # Without a write buffer every keep-alive response stalls ~40 ms (Nagle + delayed ACK).
    wbufsize = 1 << 16
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/health/saas", "/healthz"):
            self._send(404, {"error": f"no route {path}"})
            return
        faults = self.server.faults
        if faults.workers is not None:
            with faults.workers:  # wait for a free worker, then take the service time
                time.sleep(faults.service_ms / 1000.0)
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000.0)
        body: dict[str, object]
        if faults.draw_error():
            body = {
                "status": "unhealthy",
                "components": {c: ("down" if c == "nats" else "up") for c in COMPONENTS},
            }
            self._send(503, body)
            return
        body = {
            "status": "healthy",
            "components": {c: "up" for c in COMPONENTS},
            "demo": True,
        }
        self._send(200, body)

    def _send(self, code: int, body: Mapping[str, object]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass  # 100 req/s of access log helps nobody


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    faults: _Faults


class DemoTarget:
    """Serve `/health/saas` in a background thread; use as a context manager.

    >>> with DemoTarget(latency_ms=5) as target:
    ...     target.url  # 'http://127.0.0.1:<port>'
    """

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        error_rate: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = 0,
        workers: int = 0,
        service_ms: float = 0.0,
    ) -> None:
        _validate(latency_ms, error_rate)
        _validate_capacity(workers, service_ms)
        self._server = _Server((host, port), _Handler)
        self._server.faults = _Faults(latency_ms, error_rate, seed, workers, service_ms)
        self._capacity = workers * 1000.0 / service_ms if workers else None
        self._thread: threading.Thread | None = None

    @property
    def capacity_rps(self) -> float | None:
        """Requests per second the capacity limit sustains (None: no limit configured)."""
        return self._capacity

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def set_faults(self, latency_ms: float | None = None, error_rate: float | None = None) -> None:
        faults = self._server.faults
        _validate(
            faults.latency_ms if latency_ms is None else latency_ms,
            faults.error_rate if error_rate is None else error_rate,
        )
        if latency_ms is not None:
            faults.latency_ms = latency_ms
        if error_rate is not None:
            faults.error_rate = error_rate

    def start(self) -> DemoTarget:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kgents-demo-target", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (`target serve`)."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def __enter__(self) -> DemoTarget:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
