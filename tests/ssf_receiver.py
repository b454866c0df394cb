"""A real SSF push receiver on loopback, for the push-delivery tests.

Why a real HTTP server: push delivery is about what goes over the wire
(method, media types, Authorization, status codes, retries), which a mocked
transport would take on trust. The receiver does what RFC 8935 asks of one:
it verifies each SET (jwcrypto, against the transmitter's JWKS), answers
202, or 400 with an `err` code; `respond` scripts failures.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.caep import verify

Reply = tuple[int, dict[str, Any] | None, dict[str, str]]


@dataclass
class Received:
    jti: str | None
    claims: dict[str, Any] | None
    headers: dict[str, str]
    status: int


@dataclass
class Receiver:
    """Collects pushed SETs; `respond(n, jti)` decides each answer (default 202)."""

    jwks: dict[str, Any]
    respond: Callable[[int, str | None], Reply | None] = lambda n, jti: None
    requests: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, body: bytes, headers: dict[str, str]) -> Reply:
        try:
            _, claims = verify(body.decode(), self.jwks)
        except Exception as exc:  # a SET that does not verify is an invalid_key error
            with self._lock:
                self.requests.append(Received(None, None, headers, 400))
            return 400, {"err": "invalid_key", "description": str(exc)[:100]}, {}
        jti = claims.get("jti")
        with self._lock:
            n = len(self.requests)
        reply = self.respond(n, jti) or (202, None, {})
        with self._lock:
            self.requests.append(Received(jti, claims, headers, reply[0]))
        return reply

    def accepted(self) -> list[str]:
        with self._lock:
            return [r.jti for r in self.requests if r.status == 202 and r.jti]

    @contextlib.contextmanager
    def running(self) -> Iterator[Receiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                status, payload, extra = receiver.handle(
                    body, {k.lower(): v for k, v in self.headers.items()})
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}/events"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
