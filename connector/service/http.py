"""``run --http 127.0.0.1:9464``: liveness, readiness and Prometheus metrics over HTTP.

- ``GET /healthz``: 200 with a short JSON while the main loop turns (it ticked within the
  allowed time), 503 otherwise: what a wrapper or a load balancer restarts on.
- ``GET /readyz``: 200 when the journal is writable, every source's folders are reachable and
  at least one PAC's circuit is closed; 503 with the reasons otherwise. Warnings (credits
  running low) keep 200 and say ``degraded``.
- ``GET /metrics``: Prometheus's text format (``connector.service.metrics``).

A stdlib ``ThreadingHTTPServer`` on a daemon thread: a scrape never waits for the loop, and
``/healthz`` never touches the journal (a loop stuck on it must still be seen as stuck).
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = structlog.get_logger("connector.service")


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6); ValueError in Spanish when it is not one."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(
            f"La dirección {text!r} no es válida: se espera HOST:PUERTO, por ejemplo "
            "127.0.0.1:9464."
        )
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: HealthServer) -> None:
        import socket

        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # a scrape every 15 s is not an event

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        app = self.server.app
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                code, body, ctype = *app.health(), "application/json"
            elif path == "/readyz":
                code, body, ctype = *app.readiness(), "application/json"
            elif path == "/metrics":
                code, body, ctype = 200, generate_latest(app.metrics.registry), CONTENT_TYPE_LATEST
            else:
                code, body, ctype = 404, b'{"error": "no existe"}', "application/json"
        except Exception as exc:  # a broken figure must not take the endpoint down
            log.warning("http_endpoint_failed", path=path, error=str(exc))
            code, body, ctype = 500, json.dumps({"error": str(exc)}).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


class HealthServer:
    """The endpoints of one daemon. ``alive_within`` is how long the loop may go without a tick
    before ``/healthz`` says 503; ``warnings`` returns the degraded notes (credits low)."""

    def __init__(
        self,
        address: str,
        pipe: Any,
        metrics: Any,
        *,
        last_tick: Callable[[], float],
        alive_within: float,
        warnings: Callable[[], list[str]] = list,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.host, self.port = parse_address(address)
        self.pipe, self.metrics = pipe, metrics
        self.last_tick = last_tick
        self.alive_within = alive_within
        self.warnings = warnings
        self._clock = clock or time.monotonic
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not is_loopback(self.host):
            log.warning("http_not_loopback", address=f"{self.host}:{self.port}",
                        message="Las métricas y la salud del conector quedan expuestas fuera "
                        "de este equipo; limite el acceso con un firewall.")  # fmt: skip
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()
        log.info("http_listening", address=f"{self.host}:{self.port}")

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- the answers ------------------------------------------------------------------------

    def health(self) -> tuple[int, bytes]:
        age = max(0.0, self._clock() - self.last_tick())
        ok = age <= self.alive_within
        doc = {"status": "ok" if ok else "colgado", "last_tick_seconds": round(age, 3)}
        if not ok:
            doc["message"] = (
                f"El ciclo principal no avanza desde hace {age:.0f} s "
                f"(límite {self.alive_within:.0f} s)."
            )
        return (200 if ok else 503), _json(doc)

    def readiness(self) -> tuple[int, bytes]:
        pipe = self.pipe
        reasons: list[str] = []
        journal = pipe.cfg.daemon.journal
        membership = getattr(pipe, "membership", None)
        if pipe.journal is None:
            reasons.append("El diario no está abierto.")
        elif membership is not None:  # a shared journal on PostgreSQL
            if membership.down_since is not None:
                reasons.append(
                    "El diario compartido en PostgreSQL no responde (CONN-DIARIO-CAIDO)."
                )
        elif not os.access(journal, os.W_OK) or not os.access(journal.parent, os.W_OK):
            reasons.append(f"El diario {journal} no se puede escribir.")
        tables = getattr(pipe, "tables", None)
        for name, exc in tables.paused() if tables is not None else []:
            reasons.append(f"La base de datos de la fuente {name!r} no responde ({exc.code}).")
        for name, src in list(pipe.sources.items()):
            for what, folder in (("entrada", src.cfg.inbox), ("trabajo", src.cfg.work)):
                if folder is not None and not os.path.isdir(folder):
                    reasons.append(f"La carpeta de {what} de la fuente {name!r} ({folder}) no "
                                   "está disponible.")  # fmt: skip
        states = {name: rt.state() for name, rt in list(pipe.pacs.items())}
        if states and not any(s.get("state") == "closed" for s in states.values()):
            shown = ", ".join(f"{n}: {s.get('state')}" for n, s in sorted(states.items()))
            reasons.append(f"Ningún PAC tiene el circuito cerrado ({shown}).")
        warnings = self.warnings()
        doc: dict[str, Any] = {
            "status": "no_listo" if reasons else ("degradado" if warnings else "listo"),
            "pacs": {n: s.get("state") for n, s in states.items()},
        }
        if reasons:
            doc["reasons"] = reasons
        if warnings:
            doc["warnings"] = warnings
        return (503 if reasons else 200), _json(doc)
