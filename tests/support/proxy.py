"""A fault-injecting HTTP reverse proxy on loopback, to put in front of a RegistryServer.

    with FaultProxy(registry) as proxy:          # proxy.url -> http://127.0.0.1:PORT
        proxy.respond(r"/blobs/", 429, headers={"Retry-After": "1"}, times=1)
        proxy.corrupt(r"/blobs/sha256:", offset=10)
        proxy.paginate_tags(page_size=100)
        ...
        assert proxy.requests() == [("GET", "/v2/"), ...]

Requests are forwarded to the upstream registry over a small pool of keep-alive
connections (as a real front keeps its connections to the registry: a TLS handshake per
request would be server time no real registry spends; a connection goes back to the pool
only after its answer was read to the end; bodies of responses are streamed in chunks)
with the client's ``Host`` header kept, so
the registry's absolute ``Location`` headers point back at the proxy, and with
``X-Forwarded-Proto`` set to the proxy's scheme (so a plain-HTTP proxy can front a TLS
registry).

Faults are rules: a regex searched in the request *path* (no query), an optional method,
and an optional ``times`` budget (``None`` = forever). Every matching rule with budget left
applies (and spends one use), combined in this order:

1. ``delay`` - sleep before doing anything;
2. ``respond`` / ``drop`` - answer with a canned status (e.g. 429 + Retry-After, 503) or
   close the connection without answering; the upstream is not contacted;
3. otherwise forward (or paginate), then ``set_header`` (``value=None`` removes it),
   then body faults: ``corrupt`` (flip one byte at ``offset``, length unchanged),
   ``truncate`` (send ``after`` bytes of the body, then close: the client sees a short
   body against the upstream ``Content-Length``), ``stall`` (pause mid-body).

``paginate_tags(page_size, absolute=False)`` makes ``GET /v2/<name>/tags/list`` honour
``n`` and ``last`` (the distribution 2.8 registry ignores them): the proxy fetches the
full list upstream, sorts it, returns ``n`` (default ``page_size``) tags after ``last``
and, when more remain, ``Link: </v2/<name>/tags/list?n=N&last=X>; rel="next"`` (an
absolute URL with ``absolute=True``).

Every request is recorded *before* it is answered, so after a client call returns the
log is complete: ``requests()`` → ``[(method, path), ...]`` since ``mark()``,
``request_log()`` → ``ProxyRecord``s with query, status and the rules applied.
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import parse_qs, quote, urlsplit

if TYPE_CHECKING:
    from support.registry import RegistryServer

__all__ = ["FaultProxy", "ProxyRecord", "Rule"]

_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection",
}
_TAGS_RE = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
CHUNK = 64 * 1024
UPSTREAM_TIMEOUT = 30.0
UPSTREAM_IDLE = 8  # idle keep-alive connections kept to the upstream


@dataclass
class Rule:
    """One fault. ``hits`` counts how often it fired."""

    kind: str  # delay | respond | drop | set_header | corrupt | truncate | stall
    pattern: re.Pattern[str]
    method: str | None = None
    times: int | None = None
    status: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    offset: int = 0
    header_name: str = ""
    header_value: str | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return self.pattern.search(path) is not None

    def describe(self) -> str:
        return f"{self.kind}({self.pattern.pattern})"


@dataclass(frozen=True)
class ProxyRecord:
    method: str
    path: str
    query: str
    rules: tuple[str, ...]  # descriptions of the rules that fired
    status: int | None = None  # None when the connection was dropped before a status
    dropped: bool = False  # the connection ended abnormally (drop/truncate rule, client gone, upstream failed)


def no_delay(sock: Any) -> None:
    """TCP_NODELAY on a test server's connection. http.server writes an answer's headers and
    body separately: with Nagle on, the body waits for the client's delayed ACK (~40 ms per
    answer on Linux), a latency no real registry or CDN adds, which would swamp the
    benchmark's small requests and every client's fixed cost."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        no_delay(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        self.server.owner._handle(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    owner: "FaultProxy"


class _Dropped(Exception):
    pass


class FaultProxy:
    """Threaded reverse proxy on 127.0.0.1:free-port in front of ``upstream``.

    Args:
        upstream: a RegistryServer (its URL and TLS trust are used) or a base URL.
        tls: ``(cert_path, key_path)`` to serve HTTPS (e.g. the TLS registry's own
            ``server_cert_path``/``server_key_path``, valid for 127.0.0.1); default HTTP.
        upstream_verify: SSL context for a TLS upstream given as a URL.
    """

    def __init__(
        self,
        upstream: "RegistryServer | str",
        *,
        tls: tuple[str, str] | None = None,
        upstream_verify: ssl.SSLContext | None = None,
    ) -> None:
        if isinstance(upstream, str):
            self.upstream_url = upstream.rstrip("/")
            self._upstream_ctx = upstream_verify
        else:
            self.upstream_url = upstream.url
            self._upstream_ctx = upstream.ssl_context() if upstream.tls else None
        parts = urlsplit(self.upstream_url)
        self._upstream_tls = parts.scheme == "https"
        self._upstream_host = parts.hostname or "127.0.0.1"
        self._upstream_port = parts.port or (443 if self._upstream_tls else 80)
        self._tls = tls
        self._lock = threading.Lock()
        self.rules: list[Rule] = []
        self._log: list[ProxyRecord] = []
        self._mark = 0
        self.page_size: int | None = None
        self.absolute_links = False
        self._stopping = threading.Event()
        self._idle: list[http.client.HTTPConnection] = []  # keep-alive connections to the upstream
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- facts ---------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self._tls else "http"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "FaultProxy":
        httpd = _Server(("127.0.0.1", 0), _Handler, bind_and_activate=True)
        if self._tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self._tls)
            # handshake lazily in the handler thread, never in the accept loop
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        httpd.owner = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed/stalled handlers, which then drop their connection
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- configuration ---------------------------------------------------------------

    def _add(self, kind: str, pattern: str, method: str | None, times: int | None, **kw: Any) -> Rule:
        rule = Rule(kind, re.compile(pattern), method, times, **kw)
        with self._lock:
            self.rules.append(rule)
        return rule

    def respond(
        self,
        pattern: str,
        status: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | str = b"",
        method: str | None = None,
        times: int | None = None,
    ) -> Rule:
        """Answer matching requests with ``status`` (+headers/body) instead of forwarding."""
        if isinstance(body, str):
            body = body.encode()
        return self._add("respond", pattern, method, times, status=status, headers=dict(headers or {}), body=body)

    def drop(self, pattern: str, *, method: str | None = None, times: int | None = None) -> Rule:
        """Close the connection without any response."""
        return self._add("drop", pattern, method, times)

    def delay(self, pattern: str, seconds: float, *, method: str | None = None, times: int | None = None) -> Rule:
        """Sleep ``seconds`` before handling matching requests."""
        return self._add("delay", pattern, method, times, seconds=seconds)

    def set_header(
        self, pattern: str, name: str, value: str | None, *, method: str | None = None, times: int | None = None
    ) -> Rule:
        """Replace (or with ``value=None`` remove) a response header."""
        return self._add("set_header", pattern, method, times, header_name=name, header_value=value)

    def corrupt(self, pattern: str, *, offset: int = 0, method: str | None = "GET", times: int | None = None) -> Rule:
        """Flip all bits of body byte ``offset`` (clamped to the last byte)."""
        return self._add("corrupt", pattern, method, times, offset=offset)

    def truncate(self, pattern: str, *, after: int = 0, method: str | None = "GET", times: int | None = None) -> Rule:
        """Send the headers and ``after`` body bytes, then drop the connection."""
        return self._add("truncate", pattern, method, times, offset=after)

    def stall(
        self, pattern: str, *, after: int, seconds: float, method: str | None = "GET", times: int | None = None
    ) -> Rule:
        """Send ``after`` body bytes, pause ``seconds``, then send the rest."""
        return self._add("stall", pattern, method, times, offset=after, seconds=seconds)

    def paginate_tags(self, page_size: int = 100, *, absolute: bool = False) -> None:
        """Serve ``/v2/<name>/tags/list`` in pages (see module docstring)."""
        self.page_size = page_size
        self.absolute_links = absolute

    def clear(self) -> None:
        """Remove every rule and pagination (the request log is kept)."""
        with self._lock:
            self.rules.clear()
            self.page_size = None

    # -- request log -----------------------------------------------------------------

    def mark(self) -> None:
        with self._lock:
            self._mark = len(self._log)

    def request_log(self) -> list[ProxyRecord]:
        with self._lock:
            return list(self._log[self._mark :])

    def requests(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.request_log()]

    # -- handling ------------------------------------------------------------------------

    def _record(self, index: int, **changes: Any) -> None:
        with self._lock:
            rec = self._log[index]
            self._log[index] = ProxyRecord(**{**rec.__dict__, **changes})

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        method, path = h.command, split.path
        length = int(h.headers.get("Content-Length") or 0)
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _read_chunked(h)
        else:
            body = h.rfile.read(length) if length else b""

        with self._lock:
            fired = [r for r in self.rules if r.matches(method, path)]
            for r in fired:
                r.hits += 1
            index = len(self._log)
            self._log.append(ProxyRecord(method, path, split.query, tuple(r.describe() for r in fired)))
            page_size = self.page_size

        try:
            for r in fired:
                if r.kind == "delay":
                    self._sleep(r.seconds)
            for r in fired:
                if r.kind == "drop":
                    raise _Dropped
                if r.kind == "respond":
                    self._send_canned(h, r.status, r.headers, r.body, head=method == "HEAD")
                    self._record(index, status=r.status)
                    return
            if page_size is not None and method == "GET" and _TAGS_RE.match(path):
                self._paginate(h, index, path, split.query, page_size, fired)
            else:
                self._forward(h, index, method, h.path, body, fired)
        except _Dropped:
            self._record(index, dropped=True)
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except OSError:  # client went away, or the upstream failed mid-body
            self._record(index, dropped=True)
            h.close_connection = True

    def _send_canned(self, h: _Handler, status: int, headers: Mapping[str, str], body: bytes, *, head: bool) -> None:
        h.send_response(status)
        names = {k.lower() for k in headers}
        for k, v in headers.items():
            h.send_header(k, v)
        if "content-length" not in names:
            h.send_header("Content-Length", str(len(body)))
        if "content-type" not in names and body:
            h.send_header("Content-Type", "application/json")
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _exchange(self, method: str, target: str, body: bytes | None, headers: dict[str, str]
                  ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send one request upstream on a pooled connection (a fresh one if none is idle, or
        if the idle one turns out closed by the upstream) and return it with the response
        head; hand the connection to :meth:`_release` once the body is read, or close it."""
        conn = None
        if method in ("GET", "HEAD"):  # a push or delete always on a fresh connection: never sent twice
            with self._lock:
                conn = self._idle.pop() if self._idle else None
        if conn is not None:
            try:
                conn.request(method, target, body=body, headers=headers)
                return conn, conn.getresponse()
            except (OSError, http.client.HTTPException):
                conn.close()  # closed while idle: once more on a fresh connection
        conn = self._upstream()
        try:
            conn.request(method, target, body=body, headers=headers)
            return conn, conn.getresponse()
        except BaseException:
            conn.close()
            raise

    def _release(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        """Back to the pool if its answer was read to the end and it stays open."""
        with self._lock:
            if resp.isclosed() and not resp.will_close and not self._stopping.is_set() \
                    and len(self._idle) < UPSTREAM_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def _upstream(self) -> http.client.HTTPConnection:
        if self._upstream_tls:
            return http.client.HTTPSConnection(
                self._upstream_host, self._upstream_port, timeout=UPSTREAM_TIMEOUT,
                context=self._upstream_ctx or ssl.create_default_context(),
            )
        return http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=UPSTREAM_TIMEOUT)

    def _upstream_headers(self, h: _Handler) -> dict[str, str]:
        # a header sent more than once (Go clients such as skopeo send one ``Accept`` line per
        # media type) is forwarded as one comma-joined line, not reduced to its last value
        headers: dict[str, str] = {}
        names: dict[str, str] = {}  # lower-case name -> the spelling first seen
        for k, v in h.headers.items():
            lk = k.lower()
            if lk in _HOP_BY_HOP or lk == "content-length":
                continue
            if lk in names:
                headers[names[lk]] += f", {v}"
            else:
                names[lk] = k
                headers[k] = v
        headers["X-Forwarded-Proto"] = self.scheme
        return headers

    def _forward(self, h: _Handler, index: int, method: str, target: str, body: bytes, fired: list[Rule]) -> None:
        headers = self._upstream_headers(h)
        if body or method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        try:
            conn, resp = self._exchange(method, target, body or None, headers)
        except (OSError, http.client.HTTPException) as exc:
            msg = json.dumps({"errors": [{"code": "PROXY", "message": f"upstream unreachable: {exc}"}]})
            self._record(index, status=502)
            self._send_canned(h, 502, {}, msg.encode(), head=method == "HEAD")
            return
        done = False
        try:
            out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
            no_body = method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
            chunked = not no_body and resp.getheader("Content-Length") is None

            def chunks() -> Any:
                while True:
                    data = resp.read(CHUNK)
                    if not data:
                        return
                    yield data

            self._record(index, status=resp.status)
            self._send_response(h, resp.status, out_headers, None if no_body else chunks(), fired, chunked=chunked)
            if no_body:
                resp.read()
            done = True
        finally:
            if done:
                self._release(conn, resp)
            else:
                conn.close()  # the answer was not read to the end

    def _send_response(
        self,
        h: _Handler,
        status: int,
        headers: list[tuple[str, str]],
        body: Any,
        fired: list[Rule],
        *,
        chunked: bool = False,
    ) -> None:
        for r in fired:
            if r.kind == "set_header":
                headers = [(k, v) for k, v in headers if k.lower() != r.header_name.lower()]
                if r.header_value is not None:
                    headers.append((r.header_name, r.header_value))
        h.send_response_only(status)
        for k, v in headers:
            h.send_header(k, v)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        if body is None:
            return
        corrupt = [r for r in fired if r.kind == "corrupt"]
        truncate = [r for r in fired if r.kind == "truncate"]
        stall = [r for r in fired if r.kind == "stall"]
        data = b"".join(body) if corrupt else None  # corrupting needs the whole body (tests use small ones)
        if data is not None:
            buf = bytearray(data)
            for r in corrupt:
                if buf:
                    i = min(r.offset, len(buf) - 1)
                    buf[i] ^= 0xFF
            body = iter([bytes(buf)])
        sent = 0
        limit = min((r.offset for r in truncate), default=None)
        stalled = False
        for chunk in body:
            if stall and not stalled and sent + len(chunk) > stall[0].offset:
                cut = stall[0].offset - sent
                self._write(h, chunk[:cut], chunked)
                sent += cut
                chunk = chunk[cut:]
                h.wfile.flush()
                self._sleep(stall[0].seconds)
                stalled = True
            if limit is not None and sent + len(chunk) >= limit:
                self._write(h, chunk[: limit - sent], chunked)
                h.wfile.flush()
                raise _Dropped
            self._write(h, chunk, chunked)
            sent += len(chunk)
        if chunked:
            h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    def _sleep(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise _Dropped

    @staticmethod
    def _write(h: _Handler, data: bytes, chunked: bool) -> None:
        if not data:
            return
        if chunked:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            h.wfile.write(data)

    def _paginate(self, h: _Handler, index: int, path: str, query: str, page_size: int, fired: list[Rule]) -> None:
        name = _TAGS_RE.match(path)["name"]  # type: ignore[index]
        conn, resp = self._exchange("GET", path, None, self._upstream_headers(h))
        try:
            raw = resp.read()
        except BaseException:
            conn.close()
            raise
        self._release(conn, resp)
        headers = [
            (k, v) for k, v in resp.getheaders()
            if k.lower() not in _HOP_BY_HOP and k.lower() not in ("content-length", "link")
        ]
        self._record(index, status=resp.status)
        if resp.status != 200:
            self._send_response(h, resp.status, headers + [("Content-Length", str(len(raw)))], iter([raw]), fired)
            return
        q = parse_qs(query)
        n = int(q["n"][0]) if "n" in q and q["n"][0].isdigit() else page_size
        last = q.get("last", [None])[0]
        tags = sorted(json.loads(raw).get("tags") or [])
        if last is not None:
            tags = [t for t in tags if t > last]
        page, rest = tags[:n], tags[n:]
        payload = json.dumps({"name": name, "tags": page}).encode()
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        headers += [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(payload)))]
        if rest and page:
            link = f"/v2/{name}/tags/list?n={n}&last={quote(page[-1], safe='')}"
            if self.absolute_links:
                link = f"{self.url}{link}"
            headers.append(("Link", f'<{link}>; rel="next"'))
        self._send_response(h, 200, headers, iter([payload]), fired)


def _read_chunked(h: _Handler) -> bytes:
    out = bytearray()
    while True:
        line = h.rfile.readline(65537)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while h.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            return bytes(out)
        out += h.rfile.read(size)
        h.rfile.readline(65537)
