"""A loopback front for a real registry that adds the OCI 1.1 referrers API.

Debian's docker-registry 2.8 has no ``/v2/<name>/referrers/<digest>`` route. ``ReferrersFront``
listens on 127.0.0.1 (a free port), forwards every request to the registry behind it, and:

* remembers each manifest PUT that carries a ``subject`` and answers it with the
  ``OCI-Subject`` header, as registries with the API do;
* serves ``GET /v2/<name>/referrers/<digest>`` as an OCI image index of those manifests
  (``artifactType`` of each entry from the manifest, or ``entry_artifact_type`` to lie),
  ``page_size`` entries per page with a ``Link: <...>; rel="next"`` header;
* with ``referrers=False`` it answers that route 404 (a registry without the API);
* with ``tag_is_digest=True`` it answers ``GET /v2/<name>/manifests/sha256-<hex>`` with the
  manifest of digest ``sha256:<hex>`` (GitLab's behaviour), never the fallback index.

``requests`` lists (method, path) of everything it received.

    with ReferrersFront(registry) as front:
        ...  # point pkgloader at front.host
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

__all__ = ["ReferrersFront"]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_REFERRERS_RE = re.compile(r"^/v2/(.+)/referrers/(sha256:[0-9a-f]{64})$")
_MANIFEST_RE = re.compile(r"^/v2/(.+)/manifests/([^/]+)$")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class ReferrersFront:
    def __init__(self, upstream: Any, *, page_size: int = 0, referrers: bool = True, tag_is_digest: bool = False,
                 entry_artifact_type: str | None = None) -> None:
        self.upstream = upstream.url.rstrip("/")
        self.page_size = page_size
        self.referrers_enabled = referrers
        self.tag_is_digest = tag_is_digest
        self.entry_artifact_type = entry_artifact_type
        self.referrers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self.http = httpx.Client(timeout=30.0, trust_env=False, verify=upstream.verify())
        outer = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                outer.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, out = outer.handle(self.command, self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.scheme = "http"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ReferrersFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()

    def verify(self) -> bool:
        return True

    # --- behaviour -----------------------------------------------------------------

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        fwd = {k: v for k, v in headers.items() if k.lower() not in _HOP}
        return self.http.request(method, self.upstream + path, headers=fwd, content=body or None)

    def _reply(self, resp: httpx.Response) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
        if "location" in headers and headers["location"].startswith(self.upstream):
            headers["location"] = self.url + headers["location"][len(self.upstream):]
        return resp.status_code, headers, resp.content

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(path)
        m = _REFERRERS_RE.match(split.path)
        if m and method == "GET":
            if not self.referrers_enabled:
                return 404, {"Content-Type": "text/plain"}, b"404 page not found\n"
            return self._referrers(m.group(1), m.group(2), parse_qs(split.query), split.path)
        m = _MANIFEST_RE.match(split.path)
        if m and method in ("GET", "HEAD") and self.tag_is_digest and re.fullmatch(r"sha256-[0-9a-f]{64}", m.group(2)):
            return self._reply(self._forward(method, f"/v2/{m.group(1)}/manifests/{m.group(2).replace('-', ':', 1)}",
                                             headers, b""))
        resp = self._forward(method, path, headers, body)
        status, out_headers, out = self._reply(resp)
        if m and method == "PUT" and status == 201:
            try:
                manifest = json.loads(body)
            except ValueError:
                manifest = None
            subject = manifest.get("subject") if isinstance(manifest, dict) else None
            if isinstance(subject, dict) and self.referrers_enabled:
                entry = {"mediaType": manifest.get("mediaType"), "digest": resp.headers.get("docker-content-digest"),
                         "size": len(body)}
                art = manifest.get("artifactType") or (manifest.get("config") or {}).get("mediaType")
                if art:
                    entry["artifactType"] = art
                if manifest.get("annotations"):
                    entry["annotations"] = manifest["annotations"]
                self.referrers.setdefault((m.group(1), subject["digest"]), []).append(entry)
                out_headers["OCI-Subject"] = subject["digest"]
        return status, out_headers, out

    def _referrers(self, repo: str, digest: str, query: dict[str, list[str]], path: str) -> tuple[int, dict[str, str], bytes]:
        entries = [dict(e) for e in self.referrers.get((repo, digest), [])]
        if self.entry_artifact_type is not None:
            for e in entries:
                e["artifactType"] = self.entry_artifact_type
        start = int(query.get("last", ["0"])[0])
        headers = {"Content-Type": OCI_INDEX}
        if self.page_size:
            page = entries[start:start + self.page_size]
            if start + self.page_size < len(entries):
                headers["Link"] = f'<{path}?last={start + self.page_size}>; rel="next"'
        else:
            page = entries
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": page}).encode()
        return 200, headers, body
