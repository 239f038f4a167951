"""A small HTTP/1.1 transport on the standard library's ``http.client``, for the sync client.

Why a second transport: for plain ``http://`` registries (loopback, build networks) httpx
buys nothing (no HTTP/2 without TLS) but costs ~60 ms of imports per process, and its
streaming API copies every chunk. This one imports only ``http.client``, keeps a small
keep-alive pool per host, disables Nagle, and streams bodies with ``readinto`` into one
reused buffer. ``https://`` URLs keep going through httpx (HTTP/2 via ALPN). Redirects,
retries and backoff are the shared policy in ``_http``.
"""

from __future__ import annotations

import http.client
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from ._http import (
    BodyTooLarge,
    HttpSettings,
    Observer,
    Request,
    Response,
    _redirect_target,
    drive_sync,
    user_agent,
)

__all__ = ["StdTransport"]

_BUF = 1 << 20


class _Connection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self.read_timeout = read_timeout

    def connect(self) -> None:
        try:
            super().connect()
        except OSError as exc:
            exc.pkgloader_connecting = True  # type: ignore[attr-defined]  # for the error message
            raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(self.read_timeout)


class StdTransport:
    """Sync transport for ``http://`` URLs. Thread-safe (one connection per request)."""

    def __init__(self, settings: HttpSettings | None = None, *, observer: Observer | None = None) -> None:
        self.settings = settings or HttpSettings()
        self.observer = observer
        self._idle: dict[tuple[str, int | None], list[_Connection]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._ua = user_agent()

    def close(self) -> None:
        with self._lock:
            for conns in self._idle.values():
                for c in conns:
                    c.close()
            self._idle.clear()

    def send(self, req: Request) -> Response:
        return drive_sync(req, self._send_once, self.settings.retries, self.observer)

    # --- connections ------------------------------------------------------------------

    def _get(self, key: tuple[str, int | None]) -> tuple[_Connection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        return self._new(key), False

    def _new(self, key: tuple[str, int | None]) -> _Connection:
        return _Connection(key[0], key[1], self.settings.connect_timeout, self.settings.timeout)

    def _put(self, key: tuple[str, int | None], conn: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.settings.max_connections:
                idle.append(conn)
                return
        conn.close()

    def _buffer(self) -> bytearray:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = bytearray(_BUF)
        return buf

    # --- one request ------------------------------------------------------------------

    def _send_once(self, req: Request) -> Response | Request:
        parts = urlsplit(req.url)
        if parts.scheme != "http":
            raise ValueError(f"StdTransport only speaks http://, not {parts.scheme}")
        key = (parts.hostname or "", parts.port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": self._ua, **req.headers}
        body: Any = req.content
        if body is not None and not isinstance(body, (bytes, bytearray)) and not any(
                k.lower() == "content-length" for k in headers):
            headers["Transfer-Encoding"] = "chunked"
        conn, reused = self._get(key)
        try:
            try:
                resp = self._exchange(conn, req, target, headers, body)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused or not (body is None or isinstance(body, (bytes, bytearray))):
                    raise
                # a pooled connection the server had already closed: one fresh attempt
                conn.close()
                conn = self._new(key)
                resp = self._exchange(conn, req, target, headers, body)
            return self._finish(conn, key, req, resp)
        except BaseException:
            conn.close()
            raise

    def _exchange(self, conn: _Connection, req: Request, target: str, headers: dict[str, str],
                  body: Any) -> http.client.HTTPResponse:
        if req.timeout is not None:
            conn.timeout = min(req.timeout, conn.timeout or req.timeout)
            conn.read_timeout = req.timeout
            if conn.sock is not None:
                conn.sock.settimeout(req.timeout)
        chunked = headers.get("Transfer-Encoding") == "chunked"
        if chunked:
            headers = {k: v for k, v in headers.items() if k != "Transfer-Encoding"}
        conn.request(req.method, target, body=body, headers=headers, encode_chunked=chunked)
        return conn.getresponse()

    def _finish(self, conn: _Connection, key: tuple[str, int | None], req: Request,
                resp: http.client.HTTPResponse) -> Response | Request:
        status = resp.status
        headers: dict[str, str] = {}
        for k, v in resp.getheaders():
            lk = k.lower()
            headers[lk] = f"{headers[lk]}, {v}" if lk in headers else v
        redirect = _redirect_target(req, status, headers.get("location"), req.url)
        if redirect is not None:
            resp.read(64 * 1024)
            self._reuse(conn, key, resp)
            return redirect
        if req.method == "HEAD":
            content = b""
        elif req.sink is not None and 200 <= status < 300:
            buf = self._buffer()
            view = memoryview(buf)
            sink = req.sink
            readinto = resp.readinto
            got = 0
            while n := readinto(buf):
                sink(view[:n])
                got += n
            _check_complete(resp, got)
            content = b""
        else:
            limit = req.max_body
            content = resp.read() if limit is None else resp.read(limit + 1)
            if limit is not None and len(content) > limit:
                raise BodyTooLarge(limit)
            _check_complete(resp, len(content))
        self._reuse(conn, key, resp)
        return Response(status, headers, content, req.url, "HTTP/1.1")

    def _reuse(self, conn: _Connection, key: tuple[str, int | None], resp: http.client.HTTPResponse) -> None:
        if resp.will_close or not resp.isclosed():
            conn.close()
        else:
            self._put(key, conn)


class ShortBody(http.client.IncompleteRead):
    """The connection ended before the Content-Length was reached (``partial`` is a count)."""

    def __repr__(self) -> str:
        return f"the body ended after {self.partial} of {self.partial + (self.expected or 0)} bytes"

    __str__ = __repr__


def _check_complete(resp: http.client.HTTPResponse, got: int) -> None:
    """http.client ends a short Content-Length body silently; make that an error."""
    if resp.length:  # bytes still owed when the connection ended
        raise ShortBody(got, resp.length)  # type: ignore[arg-type]


class RoutingTransport:
    """``http://`` through :class:`StdTransport`, everything else through httpx (created on
    first use). One policy loop, so a redirect may cross from one to the other."""

    def __init__(self, settings: HttpSettings, *, observer: Observer | None = None) -> None:
        self.settings = settings
        self.observer = observer
        self._std = StdTransport(settings)
        self._httpx: Any = None
        self._lock = threading.Lock()

    def send(self, req: Request) -> Response:
        return drive_sync(req, self._send_once, self.settings.retries, self.observer)

    def _send_once(self, req: Request) -> Response | Request:
        if req.url.startswith("http://"):
            return self._std._send_once(req)
        with self._lock:
            if self._httpx is None:
                from ._http import SyncTransport

                self._httpx = SyncTransport(self.settings)
        return self._httpx._send_once(req)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._std.close()
        if self._httpx is not None:
            self._httpx.close()
