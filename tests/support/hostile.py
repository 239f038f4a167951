"""A hostile registry on loopback: every endpoint pkgloader reads, each with a chosen answer.

    with HostileRegistry(token_auth=True) as reg:       # http://127.0.0.1:<free port>
        reg.answers["tags"] = "oversized"              # the tag list is over 16 MiB
        reg.answers["blob"] = "endless"                # the content never ends
        ...                                            # every other endpoint answers well

It serves one OCI package, ``test/pkg`` (tag ``1.0.0``: an OCI manifest, or with
``index=True`` an image index pointing at it by digest, a wasm config and a tiny component;
with ``big_blob=N`` the component is N bytes, generated as it is sent),
and one warg package, ``acme:pkg`` 1.0.0 (a real signed :class:`FakeWargRegistry` answers
the good warg calls, so a hostile answer can sit behind a valid checkpoint). Endpoints
(:data:`ENDPOINTS`; ``reg.hits[endpoint]`` counts the requests each got; the PUTs of a publish, which are
always answered well, count as ``put-blob`` and ``put-manifest``):

    v2               GET /v2/
    tags             GET /v2/test/pkg/tags/list
    manifest         GET /v2/test/pkg/manifests/1.0.0          (by tag)
    manifest-digest  GET /v2/test/pkg/manifests/sha256:...     (by digest)
    blob             GET /v2/test/pkg/blobs/sha256:...
    head-manifest    HEAD /v2/test/pkg/manifests/...           (publish; good: 404)
    head-blob        HEAD /v2/test/pkg/blobs/...               (publish; good: 404)
    upload           POST /v2/test/pkg/blobs/uploads/          (publish; PUTs are always good)
    token            GET /token (the realm of ``WWW-Authenticate: Bearer`` with token_auth)
    registry.json    GET /.well-known/wasm-pkg/registry.json   (good: OCI at this host)
    warg-checkpoint  GET /v1/fetch/checkpoint
    warg-logs        POST /v1/fetch/logs
    warg-inclusion   POST /v1/proof/inclusion
    warg-content     GET /v1/content/sha256:...                (the content sources)
    warg-download    GET /content/sha256-...                   (the content source itself)

Answers (:data:`ANSWERS`; the good body of an endpoint is what the hostile ones distort):

    good               the right answer
    oversized          LIMITS[endpoint] + 1 bytes, announced by Content-Length (a blob:
                       1 GiB where the manifest says a few bytes)
    oversized-chunked  the same without Content-Length (chunked): read to find out
    deep               100,000 ``[`` (fewer where the limit is smaller)
    malformed          the good body cut in half (not JSON; a blob: the wrong bytes)
    binary             bytes that are not UTF-8 text
    wrong-types        JSON of the wrong shape (tags = 5, manifest layers = "x", ...)
    cl-more            Content-Length announces more than is sent, then the connection ends
    cl-less            Content-Length announces less than is sent (the rest is junk on the wire)
    endless            a body that never ends (chunked, 4 KiB pieces as fast as they go)
    trickle            a body that never ends, one byte every 20 ms
    stall              the head and half of the body, then nothing (connection kept open; a
                       HEAD: half of the head)
    silent             nothing at all, not even a status line
    escape             HTTP 500 whose body is terminal escape sequences, line breaks and a bidi
                       override (what a message quotes of it must be printable)
    bad-url            a URL that does not parse (``http://[::1/x``) where the answer gives one:
                       the tag list's ``Link``, the upload's ``Location``, a warg content source,
                       the token realm in the registry's challenge
    link-bomb          a tag list whose ``Link`` header is 60,000 ``<``
    bomb               valid JSON under the limit (at most 16 MiB) that parses into millions of
                       objects: ``{"pad":[[],[],...]}`` (16 MiB of it is ~450 MiB of Python lists)

Bodies are generated as they are sent: the server holds no more than a chunk of any answer in
memory, whatever its size, and stops as soon as the client hangs up. ``silent`` and ``stall``
answers wait for the client to hang up (or the server to stop), never longer.
"""

from __future__ import annotations

import hashlib
import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

from support.wargfactory import FakeWargRegistry, SigningKey

__all__ = [
    "ANSWERS",
    "BAD_URL",
    "ESCAPES",
    "ENDPOINTS",
    "HostileRegistry",
    "JSON_ENDPOINTS",
    "LIMITS",
    "OCI_REPO",
    "OCI_TAG",
    "WARG_NAME",
    "WARG_PACKAGE",
    "WARG_WASM",
    "WASM",
]

MiB = 1 << 20
KiB = 1 << 10

ENDPOINTS = (
    "v2", "tags", "manifest", "manifest-digest", "blob", "head-manifest", "head-blob", "upload", "token",
    "registry.json", "warg-checkpoint", "warg-logs", "warg-inclusion", "warg-content", "warg-download",
)
ANSWERS = (
    "good", "oversized", "oversized-chunked", "deep", "malformed", "binary", "wrong-types", "cl-more", "cl-less",
    "endless", "trickle", "stall", "silent", "escape", "bad-url", "link-bomb", "bomb",
)
#: the size limit pkgloader puts on each answer it reads into memory (bytes)
LIMITS = {
    "tags": 16 * MiB,
    "manifest": 4 * MiB,
    "manifest-digest": 4 * MiB,
    "token": 1 * MiB,
    "registry.json": 64 * KiB,
    "warg-checkpoint": 64 * MiB,
    "warg-logs": 64 * MiB,
    "warg-inclusion": 64 * MiB,
    "warg-content": 64 * MiB,
    "upload": 16 * MiB,
}
#: the endpoints whose (good) answer is JSON
JSON_ENDPOINTS = tuple(LIMITS)

OCI_REPO = "test/pkg"
OCI_TAG = "1.0.0"
WARG_NAME = "warg.hostile.test"
WARG_PACKAGE = "acme:pkg"
#: the package's content: an empty component (``\0asm``, component version, layer 1)
WASM = b"\0asm\x0d\0\x01\0"
#: the warg package's content: the same with a custom section (another digest than WASM)
WARG_WASM = WASM + b"\x00\x05\x04warg"
TOKEN = "good-token"
#: a URL that does not parse (urllib: "Invalid IPv6 URL")
BAD_URL = "http://[::1/x"
#: an error body a terminal would obey: clear screen, colour, a fake second error line, bidi
ESCAPES = b"\x1b[2J\x1b[31mnot found\r\nerror[fake]: \xe2\x80\xae injected\x07"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DEEP = 100_000
CHUNK = 4 * KiB
#: a streamed answer is cut off here whatever it announced (a client that reads on is broken)
STREAM_CAP = 2 << 30


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class _Hangup(Exception):
    """The client went away (or the server is stopping): stop answering."""


class HostileRegistry:
    """See the module docstring. ``answers[endpoint]`` (default ``"good"``) may be changed at
    any time; ``token_auth=True`` makes every ``/v2/`` request without the token a 401 with a
    ``Bearer`` challenge pointing at ``/token`` on this server; ``size_hints=True`` makes warg
    content sources announce the content's ``size``."""

    def __init__(self, *, token_auth: bool = False, index: bool = False, size_hints: bool = False,
                 big_blob: int | None = None) -> None:
        self.answers: dict[str, str] = dict.fromkeys(ENDPOINTS, "good")
        self.token_auth = token_auth
        self.index = index
        #: warg content sources announce the content's ``size`` (warg API v1, optional)
        self.size_hints = size_hints
        self.hits: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self.requests: list[tuple[str, str]] = []
        #: the good body of the last request to each endpoint (what a hostile answer distorted)
        self.last_good: dict[str, bytes] = {}
        #: bytes of body written, per endpoint (what a hostile stream cost the server)
        self.sent: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                outer._serve(self, "GET")

            def do_HEAD(self) -> None:  # noqa: N802
                outer._serve(self, "HEAD")

            def do_POST(self) -> None:  # noqa: N802
                outer._serve(self, "POST")

            def do_PUT(self) -> None:  # noqa: N802
                outer._serve(self, "PUT")

            def log_message(self, *args: object) -> None:
                pass

        class _Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients hang up on hostile answers all the time: not worth a traceback

        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

        # the OCI package
        self.big_blob = big_blob
        layer_digest, layer_size = _digest(WASM), len(WASM)
        if big_blob is not None:
            h = hashlib.sha256()
            for piece in _big_content(big_blob):
                h.update(piece)
            layer_digest, layer_size = "sha256:" + h.hexdigest(), big_blob
        self.config_blob = _dumps({"architecture": "wasm", "os": "wasip2", "layerDigests": [_digest(WASM)]})
        self.manifest = _dumps({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": _digest(self.config_blob),
                       "size": len(self.config_blob)},
            "layers": [{"mediaType": "application/wasm", "digest": layer_digest, "size": layer_size}],
        })
        self.manifest_digest = _digest(self.manifest)
        self.index_body = _dumps({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": self.manifest_digest, "size": len(self.manifest),
                           "platform": {"architecture": "wasm", "os": "wasip2"}}],
        })
        self.blobs = {layer_digest: WASM, _digest(self.config_blob): self.config_blob}  # big: WASM is its head
        self.layer_digest = layer_digest

        # the warg package, in a real (signed) registry
        self.warg = FakeWargRegistry(namespaces=("acme",), content_base_url=self.url)
        owner = SigningKey.generate()
        self.warg.create_package(WARG_PACKAGE, owner)
        self.warg_digest = self.warg.release(WARG_PACKAGE, "1.0.0", WARG_WASM, owner)
        self.warg.publish_checkpoint()

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> HostileRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def set(self, endpoint: str, answer: str) -> HostileRegistry:
        if endpoint not in ENDPOINTS or answer not in ANSWERS:
            raise ValueError(f"unknown endpoint {endpoint!r} or answer {answer!r}")
        self.answers[endpoint] = answer
        return self

    def good_body(self, endpoint: str) -> bytes:
        """The body of the right answer of ``endpoint`` (what the hostile answers distort)."""
        paths = {"tags": f"/v2/{OCI_REPO}/tags/list", "manifest": f"/v2/{OCI_REPO}/manifests/{OCI_TAG}",
                 "manifest-digest": f"/v2/{OCI_REPO}/manifests/{self.manifest_digest}",
                 "blob": f"/v2/{OCI_REPO}/blobs/{self.layer_digest}",
                 "warg-checkpoint": "/v1/fetch/checkpoint", "warg-content": f"/v1/content/{self.warg_digest}",
                 "warg-download": f"/content/{self.warg_digest.replace(':', '-')}"}
        if endpoint not in paths and endpoint not in ("token", "registry.json", "v2", "upload"):
            if endpoint in self.last_good:  # a POST: the answer depends on the request
                return self.last_good[endpoint]
            raise ValueError(f"no good body for {endpoint!r} yet (it depends on the request)")
        return self._good(endpoint, "GET", paths.get(endpoint, ""), None)[2]

    # -- routing -----------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> str | None:
        base = f"/v2/{OCI_REPO}/"
        if path == "/v2/" and method in ("GET", "HEAD"):
            return "v2"
        if path == "/token":
            return "token"
        if path == "/.well-known/wasm-pkg/registry.json":
            return "registry.json"
        if path.startswith(base):
            rest = path[len(base):]
            if rest == "tags/list" and method == "GET":
                return "tags"
            if rest.startswith("manifests/"):
                if method == "HEAD":
                    return "head-manifest"
                if method == "GET":
                    return "manifest-digest" if rest.startswith("manifests/sha256:") else "manifest"
                return "put-manifest"
            if rest.startswith("blobs/uploads/"):
                return "upload" if method == "POST" else "put-blob"
            if rest.startswith("blobs/"):
                return "head-blob" if method == "HEAD" else "blob"
        if method == "GET" and path == "/v1/fetch/checkpoint":
            return "warg-checkpoint"
        if method == "POST" and path == "/v1/fetch/logs":
            return "warg-logs"
        if method == "POST" and path == "/v1/proof/inclusion":
            return "warg-inclusion"
        if method == "POST" and path == "/v1/proof/consistency":
            return "warg-consistency"
        if method == "GET" and path.startswith("/v1/content/"):
            return "warg-content"
        if method == "GET" and path.startswith("/content/"):
            return "warg-download"
        return None

    def _good(self, endpoint: str, method: str, path: str, body: Any) -> tuple[int, dict[str, str], bytes]:
        """The right answer: (status, headers, body)."""
        js = {"Content-Type": "application/json"}
        if endpoint == "v2":
            return 200, js, b"{}"
        if endpoint == "token":
            return 200, js, _dumps({"token": TOKEN, "expires_in": 300})
        if endpoint == "registry.json":
            return 200, js, _dumps({"preferredProtocol": "oci", "oci": {"registry": self.host}})
        if endpoint == "tags":
            return 200, js, _dumps({"name": OCI_REPO, "tags": [OCI_TAG, "latest"]})
        if endpoint in ("manifest", "manifest-digest"):
            ref = path.rsplit("/", 1)[-1]
            if ref == self.manifest_digest or (ref == OCI_TAG and not self.index):
                return 200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": self.manifest_digest}, self.manifest
            if ref == OCI_TAG:
                return 200, {"Content-Type": OCI_INDEX}, self.index_body
            return 404, js, _dumps({"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        if endpoint == "blob":
            data = self.blobs.get(path.rsplit("/", 1)[-1])
            if data is None:
                return 404, js, _dumps({"errors": [{"code": "BLOB_UNKNOWN"}]})
            return 200, {"Content-Type": "application/octet-stream"}, data
        if endpoint in ("head-manifest", "head-blob"):
            return 404, js, b""
        if endpoint == "upload":
            return 202, {"Location": f"/v2/{OCI_REPO}/blobs/uploads/u-{time.monotonic_ns()}"}, b""
        if endpoint in ("put-blob", "put-manifest"):
            return 201, {}, b""
        if endpoint.startswith("warg-"):
            status, out = self.warg.handle(method, path, body)
            if endpoint == "warg-content" and status == 200 and self.size_hints:
                for src in out["contentSources"][self.warg_digest]:
                    src["size"] = len(WARG_WASM)
            if isinstance(out, (bytes, bytearray)):
                return status, {"Content-Type": "application/octet-stream"}, bytes(out)
            return status, js, _dumps(out)
        raise AssertionError(endpoint)

    def _wrong_types(self, endpoint: str) -> bytes:
        shapes: dict[str, Any] = {
            "v2": [],
            "tags": {"name": OCI_REPO, "tags": 5},
            "manifest": {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": 5, "layers": "x"},
            "manifest-digest": {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": [], "layers": "x"},
            "token": {"token": 5, "expires_in": "soon"},
            "registry.json": {"preferredProtocol": "oci", "oci": "x"},
            "warg-checkpoint": {"contents": 5, "keyId": [], "signature": {}},
            "warg-logs": {"operator": 5, "packages": "x", "more": "yes"},
            "warg-inclusion": {"log": 5, "map": []},
            "warg-content": {"contentSources": {self.warg_digest: "x"}},
            "upload": [5],
        }
        return _dumps(shapes.get(endpoint, 5))

    # -- serving -----------------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        raw = _read_request_body(h)
        endpoint = self._route(method, path)
        with self._lock:
            self.requests.append((method, h.path))
            if endpoint is not None:
                self.hits[endpoint] = self.hits.get(endpoint, 0) + 1
        if endpoint is None:
            return _send(h, 404, {"Content-Type": "text/plain"}, b"no such route")
        if (self.token_auth and path.startswith("/v2/")
                and h.headers.get("Authorization") != f"Bearer {TOKEN}"):
            realm = f"{self.url}/token" if self.answers["token"] != "bad-url" else BAD_URL
            challenge = f'Bearer realm="{realm}",service="hostile",scope="repository:{OCI_REPO}:pull"'
            return _send(h, 401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"},
                         _dumps({"errors": [{"code": "UNAUTHORIZED"}]}))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        answer = self.answers.get(endpoint, "good")
        try:
            status, headers, good = self._good(endpoint, method, path, body)
            with self._lock:
                self.last_good[endpoint] = good
            if answer == "good" and endpoint == "blob" and self.big_blob is not None and status == 200:
                _head(h, status, headers, length=self.big_blob)
                return self._stream(h, _big_content(self.big_blob), self._counter(endpoint), chunked=False)
            if answer == "good":
                return _send(h, status, headers, good, head=method == "HEAD")
            self._hostile(h, endpoint, answer, method, status, headers, good)
        except _Hangup:
            h.close_connection = True

    def _hostile(self, h: BaseHTTPRequestHandler, endpoint: str, answer: str, method: str, good_status: int,
                 headers: dict[str, str], good: bytes) -> None:
        h.close_connection = True  # whatever was sent, the connection is not reusable after it
        # the status of the good answer where it means something (a HEAD's 404: not published)
        status = good_status if method == "HEAD" or endpoint == "upload" else 200
        headers = {k: v for k, v in headers.items() if k.lower() != "docker-content-digest"}
        count = self._counter(endpoint)
        is_blob = endpoint in ("blob", "warg-download")
        limit = LIMITS.get(endpoint, 1 << 30)
        if endpoint in ("head-manifest", "head-blob"):
            good = b""
        if answer == "silent":
            return self._hold(h)
        if answer == "stall" and method == "HEAD":  # no body to stall in: stall in the head
            self._write(h, b"HTTP/1.1 %d Not Found\r\nContent-Type: application/json\r\n" % status, count)
            return self._hold(h)
        if answer == "stall":
            announced = max(len(good), 64)
            _head(h, status, headers, length=announced)
            self._write(h, good[: len(good) // 2], count)
            return self._hold(h)
        if answer in ("oversized", "oversized-chunked"):
            size = limit + 1
            prefix = _open_json(good) if not is_blob else good
            _head(h, status, headers, length=size if answer == "oversized" else None)
            stream = _padded(prefix, size)
            return self._stream(h, stream, count, chunked=answer == "oversized-chunked")
        if answer == "endless":
            _head(h, status, headers, length=None)
            prefix = good if is_blob else _open_json(good)
            return self._stream(h, _endless(prefix), count, chunked=True)
        if answer == "trickle":
            _head(h, status, headers, length=None)
            return self._stream(h, _trickle(good or b"{"), count, chunked=True)
        if answer == "cl-more":
            _head(h, status, headers, length=len(good) + 1000)
            self._write(h, good, count)
            return  # close_connection: the body ends 1000 bytes early
        if answer == "cl-less":
            _head(h, status, headers, length=max(len(good) - 10, 0))
            self._write(h, good + b"junk after the announced end", count)
            return
        if answer == "deep":
            depth = min(DEEP, limit - 1)
            return _send(h, status, headers, b"[" * depth, counter=count)
        if answer == "malformed":
            # JSON cut in half; a blob: the right size, the wrong bytes
            body = b"X" * len(good) if is_blob else good[: len(good) // 2]
            return _send(h, status, headers, body, counter=count)
        if answer == "binary":
            return _send(h, status, headers, b"\xff\xfe\xfd\x00\x80" * 8, counter=count)
        if answer == "escape":  # (a HEAD gets the head alone: a body after it would be a framing fault)
            return _send(h, 500, {"Content-Type": "text/plain"}, ESCAPES, head=method == "HEAD", counter=count)
        if answer == "bad-url":
            if endpoint == "upload":
                return _send(h, 202, {"Location": BAD_URL}, b"", counter=count)
            if endpoint == "warg-content":
                body = _dumps({"contentSources": {self.warg_digest: [{"type": "httpGet", "url": BAD_URL}]}})
                return _send(h, 200, headers, body, counter=count)
            return _send(h, status, {**headers, "Link": f'<{BAD_URL}>; rel="next"'}, good, counter=count)
        if answer == "bomb":
            size = min(limit, 16 * MiB) - 64
            _head(h, status, headers, length=size)
            return self._stream(h, _bomb(size), count, chunked=False)
        if answer == "link-bomb":
            return _send(h, status, {**headers, "Link": "<" * 60_000}, good, counter=count)
        if answer == "wrong-types":
            body = self._wrong_types(endpoint) if not is_blob else b"not wasm" + b"\0" * max(len(good) - 8, 0)
            return _send(h, status, headers, body, counter=count)
        raise AssertionError(answer)

    # -- helpers -----------------------------------------------------------------------------

    def _counter(self, endpoint: str) -> Callable[[int], None]:
        def count(n: int) -> None:
            with self._lock:
                self.sent[endpoint] = self.sent.get(endpoint, 0) + n
        return count

    def _write(self, h: BaseHTTPRequestHandler, data: bytes, count: Callable[[int], None]) -> None:
        if self._stopping.is_set():
            raise _Hangup
        try:
            h.wfile.write(data)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            raise _Hangup from None
        count(len(data))

    def _stream(self, h: BaseHTTPRequestHandler, pieces: Iterator[bytes], count: Callable[[int], None], *,
                chunked: bool) -> None:
        sent = 0
        for piece in pieces:
            if sent > STREAM_CAP:
                raise _Hangup
            if chunked:
                self._write(h, b"%x\r\n%s\r\n" % (len(piece), piece), count)
            else:
                self._write(h, piece, count)
            sent += len(piece)
        if chunked:
            self._write(h, b"0\r\n\r\n", count)

    def _hold(self, h: BaseHTTPRequestHandler) -> None:
        """Send nothing more; return when the client hangs up or the server stops."""
        h.close_connection = True
        sock: socket.socket = h.connection
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], 0.05)
                if ready and not sock.recv(4096):
                    return
            except OSError:
                return


def _read_request_body(h: BaseHTTPRequestHandler) -> bytes:
    length = int(h.headers.get("Content-Length") or 0)
    if length:
        out = bytearray()
        while len(out) < length:
            piece = h.rfile.read(min(1 << 20, length - len(out)))
            if not piece:
                break
            out += piece
        return bytes(out) if length <= 1 << 20 else b""
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
            h.rfile.read(size + 2) if size else h.rfile.readline()
            if not size:
                return b""
    return b""


def _head(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], *, length: int | None) -> None:
    h.send_response(status)
    for k, v in headers.items():
        h.send_header(k, v)
    if length is None:
        h.send_header("Transfer-Encoding", "chunked")
    else:
        h.send_header("Content-Length", str(length))
    h.end_headers()
    try:
        h.wfile.flush()
    except OSError:
        raise _Hangup from None


def _send(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes, *, head: bool = False,
          counter: Callable[[int], None] | None = None) -> None:
    try:
        _head(h, status, headers, length=len(body))
        if not head:
            h.wfile.write(body)
            h.wfile.flush()
            if counter is not None:
                counter(len(body))
    except OSError:
        raise _Hangup from None


def _open_json(good: bytes) -> bytes:
    """The good JSON object with its closing brace cut off, ready for a padding member."""
    text = good.rstrip()
    if text.endswith(b"}") and len(text) > 2:
        return text[:-1] + b',"pad":"'
    return b'{"pad":"'


def _padded(prefix: bytes, size: int) -> Iterator[bytes]:
    """``size`` bytes: ``prefix``, padding, and ``"}`` at the end (valid JSON for a JSON prefix)."""
    yield prefix
    left = size - len(prefix) - 2
    piece = b"a" * (64 * KiB)
    while left > 0:
        n = min(left, len(piece))
        yield piece[:n]
        left -= n
    yield b'"}'


def _bomb(size: int) -> Iterator[bytes]:
    """``size`` bytes of ``{"pad":[[],[],...,[]]}``."""
    yield b'{"pad":['
    left = size - len(b'{"pad":[') - len(b"[]]}")
    piece = b"[]," * (20 * KiB)
    while left >= 3:
        n = min(left // 3, len(piece) // 3) * 3
        yield piece[:n]
        left -= n
    yield b" " * left + b"[]]}"


def _big_content(size: int) -> Iterator[bytes]:
    """A component of ``size`` bytes: the preamble, then zeros (a custom-section-free tail
    is not a valid component, which does not matter: it is never parsed)."""
    yield WASM
    left = size - len(WASM)
    piece = bytes(MiB)
    while left > 0:
        n = min(left, len(piece))
        yield piece[:n]
        left -= n


def _endless(prefix: bytes) -> Iterator[bytes]:
    yield prefix
    piece = b"a" * CHUNK
    while True:
        yield piece


def _trickle(prefix: bytes) -> Iterator[bytes]:
    for i in range(len(prefix)):
        yield prefix[i : i + 1]
        time.sleep(0.02)
    while True:
        yield b" "
        time.sleep(0.02)
