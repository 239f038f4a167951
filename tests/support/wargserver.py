"""A real loopback HTTP server speaking the warg API (spec §8) in front of FakeWargRegistry.

    with WargServer() as server:                  # http://127.0.0.1:<free port>
        server.registry.create_package("acme:pkg", alice)
        server.registry.release("acme:pkg", "1.0.0", WASM, alice)
        server.registry.publish_checkpoint()

* ``/v1/...`` is answered by ``server.registry`` (a :class:`FakeWargRegistry`, whose tampering
  hooks stay reachable), or, with a ``Warg-Registry: D`` header, by ``server.federated[D]``
  (the home registry acting as a proxy, spec §8.4). ``federation=False`` answers such requests
  with 501 and a plain-text body, as the reference server does.
* ``server.add_hint("other:pkg", "other.example")`` makes a 404 ``log`` answer for that
  package carry ``Warg-Registry-Hint: other=other.example``.
* ``/content/<algo>-<hex>`` serves content of any of the registries (their
  ``content_base_url`` is set to this server), so ``registry.content[digest] = b"..."``
  tampers with what is downloaded.
* ``server.metadata`` / ``server.legacy_metadata``: JSON served at
  ``/.well-known/wasm-pkg/registry.json`` / ``/.well-known/warg/registry.json`` (else 404).
* ``server.auth_token``: when set, API calls without ``Authorization: Bearer <it>`` get 401.
* ``server.page_limit``: cap the ``limit`` of ``fetch/logs`` (a server with smaller pages).
* ``server.gate``: a callable ``(method, path) -> None`` called before answering (tests use
  it to hold requests, e.g. to make two clients race).

Every request is recorded in ``server.requests`` as :class:`Seen` (method, path, JSON body,
lower-case headers); ``server.routes(since)`` gives ``"METHOD path"`` strings.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from pkgloader.backends.warg import package_log_id
from support.wargfactory import FakeWargRegistry

__all__ = ["WargServer", "Seen", "WARG_NAME"]

#: the registry name test configs map namespace ``acme`` to (``[registry."warg.acme.test".warg]``)
WARG_NAME = "warg.acme.test"


@dataclass
class Seen:
    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


class WargServer:
    """See the module docstring."""

    def __init__(
        self,
        registry: FakeWargRegistry | None = None,
        *,
        federated: dict[str, FakeWargRegistry] | None = None,
        federation: bool = True,
        namespaces: tuple[str, ...] = ("acme",),
    ) -> None:
        self.registry = registry if registry is not None else FakeWargRegistry(namespaces=namespaces)
        self.federated: dict[str, FakeWargRegistry] = dict(federated or {})
        self.federation = federation
        self.hints: dict[str, str] = {}  # package log id -> hint header value
        self.metadata: Any = None
        self.legacy_metadata: Any = None
        self.auth_token: str | None = None
        self.page_limit: int | None = None
        self.gate: Callable[[str, str], None] | None = None
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                outer._serve(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                outer._serve(self, "POST")

            def log_message(self, *args: object) -> None:
                pass

        class _Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client hanging up mid-answer (tests provoke it) is not worth a traceback

        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.registry.content_base_url = self.url
        for reg in self.federated.values():
            reg.content_base_url = self.url
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- set-up helpers --

    def add_federated(self, domain: str, registry: FakeWargRegistry) -> FakeWargRegistry:
        registry.content_base_url = self.url
        self.federated[domain] = registry
        return registry

    def add_hint(self, package: str, domain: str) -> None:
        """404 ``log`` answers for ``package`` carry ``Warg-Registry-Hint: <ns>=<domain>``."""
        self.hints[package_log_id(package)] = f"{package.split(':', 1)[0]}={domain}"

    # -- inspection --

    def routes(self, since: int = 0) -> list[str]:
        return [s.route for s in self.requests[since:]]

    def bodies(self, route: str, since: int = 0) -> list[Any]:
        return [s.body for s in self.requests[since:] if s.route == route]

    def mark(self) -> int:
        return len(self.requests)

    # -- lifecycle --

    def __enter__(self) -> WargServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- serving --

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        path = h.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in h.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        with self._lock:
            self.requests.append(Seen(method, path, body, headers))
        if self.gate is not None:
            self.gate(method, path)
        status, extra, out = self._answer(method, path, body, headers)
        if isinstance(out, (bytes, bytearray)):
            data, ctype = bytes(out), "application/octet-stream"
        elif isinstance(out, str):
            data, ctype = out.encode(), "text/plain"
        else:
            data, ctype = json.dumps(out).encode(), "application/json"
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        for k, v in extra.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _answer(self, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if path == "/.well-known/wasm-pkg/registry.json" and method == "GET":
            return (200, {}, self.metadata) if self.metadata is not None else (404, {}, {"status": 404, "message": "no metadata"})
        if path == "/.well-known/warg/registry.json" and method == "GET":
            if self.legacy_metadata is not None:
                return 200, {}, self.legacy_metadata
            return 404, {}, {"status": 404, "message": "no metadata"}
        if path.startswith("/content/") and method == "GET":
            rel = path.lstrip("/")
            for holder in [self.registry, *self.federated.values()]:
                with self._lock:
                    status, out = holder.handle(method, rel)
                if status == 200:
                    return status, {}, out
            return 404, {}, {"status": 404, "message": "not found"}
        if not path.startswith("/v1/"):
            return 404, {}, {"status": 404, "message": f"no route {method} {path}"}
        if self.auth_token is not None and headers.get("authorization") != f"Bearer {self.auth_token}":
            return 401, {}, {"status": 401, "message": "unauthorized"}
        if method == "POST" and path == "/v1/fetch/logs" and self.page_limit is not None and isinstance(body, dict):
            body = dict(body, limit=min(body.get("limit", 100), self.page_limit))
        domain = headers.get("warg-registry")
        reg = self.registry if domain is None else None
        if domain is not None:
            if not self.federation:
                return 501, {}, "Warg-Registry header is not supported"
            reg = self.federated.get(domain)
        if reg is None:
            return 404, {}, {"status": 404, "message": f"unknown registry {domain}"}
        with self._lock:
            status, out = reg.handle(method, path, body)
        extra: dict[str, str] = {}
        if (domain is None and status == 404 and isinstance(out, dict) and out.get("type") == "log"
                and out.get("id") in self.hints):
            extra["Warg-Registry-Hint"] = self.hints[out["id"]]
        return status, extra, out
