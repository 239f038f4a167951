"""A small HTTP/1.1 client on plain sockets, for ``http://`` registries in the sync client.

Why a second transport: for plain ``http://`` registries (loopback, build networks) httpx
buys nothing (no HTTP/2 without TLS) but costs ~60 ms of imports per process, and its
streaming API copies every chunk; the standard library's ``http.client`` still costs ~13 ms
of imports (the ``email`` package) per process. This module imports only ``socket``: it
keeps a small keep-alive pool per host, disables Nagle, and streams bodies with
``recv_into`` into a few reused buffers. On Linux, a large download goes the cheapest way
its sink offers: received straight into the verifying writer's aligned blocks, which it
hashes on one thread and writes with ``O_DIRECT`` on another (``VerifyingWriter.blocks``);
where the file system refuses ``O_DIRECT``, moved from the socket into the file with
``splice`` and hashed back from the file (``VerifyingWriter.direct``). ``https://`` URLs keep
going through httpx (HTTP/2 via ALPN). Redirects, retries and backoff are the shared policy in ``_http``.

What it speaks (RFC 9112, client side): one request at a time per connection; bodies framed
by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the connection; 1xx
interim responses skipped; uploads with a length or chunked. A body that ends early, a
malformed status line or header, or a connection closed before any answer are errors
(``OSError`` subclasses, so the retry policy treats them as transport failures).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import threading
from typing import Any, Iterable

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

__all__ = ["StdTransport", "RoutingTransport", "ShortBody", "ServerClosed", "ProtocolError"]

_BUF = 1 << 20
_RECV = 64 * 1024
_MAX_LINE = 64 * 1024
_MAX_HEADERS = 256
_REDIRECT_DRAIN = 64 * 1024


class ProtocolError(ConnectionError):
    """The server's answer is not valid HTTP/1.1."""


class ServerClosed(ConnectionError):
    """The connection ended before a response started (a stale keep-alive connection)."""

    def __init__(self) -> None:
        super().__init__("the server closed the connection without answering")


class ShortBody(ConnectionError):
    """The connection ended before the announced body was complete."""

    def __init__(self, got: int, expected: int | None) -> None:
        self.partial = got
        self.expected = expected
        if expected is not None:
            super().__init__(f"the body ended after {got} of {expected} bytes")
        else:
            super().__init__(f"the body ended after {got} bytes, before its announced end")


class _Conn:
    """One TCP connection and the bytes received on it but not consumed yet."""

    __slots__ = ("host", "port", "sock", "pending")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.sock: socket.socket | None = None
        self.pending = bytearray()

    def connect(self, connect_timeout: float, read_timeout: float) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=connect_timeout)
        except OSError as exc:
            exc.pkgloader_connecting = True  # type: ignore[attr-defined]  # for the error message
            raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(read_timeout)
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
        self.pending.clear()

    def _fill(self) -> bool:
        assert self.sock is not None
        data = self.sock.recv(_RECV)
        if not data:
            return False
        self.pending += data
        return True

    def readline(self) -> bytes | None:
        """One line including its ``\\n``; None at the end of the stream before any byte."""
        start = 0
        while True:
            i = self.pending.find(b"\n", start)
            if i >= 0:
                line = bytes(self.pending[: i + 1])
                del self.pending[: i + 1]
                return line
            start = len(self.pending)
            if start > _MAX_LINE:
                raise ProtocolError(f"a header line longer than {_MAX_LINE} bytes")
            if not self._fill():
                if self.pending:
                    raise ProtocolError("the connection ended in the middle of a header line")
                return None

    def readinto(self, view: memoryview) -> int:
        """Up to ``len(view)`` bytes; 0 at the end of the stream."""
        if self.pending:
            n = min(len(view), len(self.pending))
            view[:n] = self.pending[:n]
            del self.pending[:n]
            return n
        assert self.sock is not None
        return self.sock.recv_into(view)


class _Body:
    """Reads one response body according to its framing."""

    __slots__ = ("conn", "chunked", "remaining", "until_close", "got", "done", "expected")

    def __init__(self, conn: _Conn, *, length: int | None, chunked: bool, until_close: bool) -> None:
        self.conn = conn
        self.chunked = chunked
        self.until_close = until_close
        self.remaining = length if length is not None else 0  # of the body or the current chunk
        self.expected = length
        self.got = 0
        self.done = length == 0 and not chunked

    def readinto(self, view: memoryview) -> int:
        """Up to ``len(view)`` body bytes; 0 once the body is complete."""
        if self.done:
            return 0
        if self.chunked and self.remaining == 0:
            self._next_chunk()
            if self.done:
                return 0
        want = len(view) if self.until_close else min(len(view), self.remaining)
        n = self.conn.readinto(view[:want])
        if n == 0:
            if self.until_close:
                self.done = True
                return 0
            raise ShortBody(self.got, self.expected if not self.chunked else None)
        self.got += n
        if not self.until_close:
            self.remaining -= n
            if self.remaining == 0:
                if self.chunked:
                    self._line(b"\r\n", "the CRLF after a chunk")
                else:
                    self.done = True
        return n

    def _line(self, expect: bytes | None, what: str) -> bytes:
        line = self.conn.readline()
        if line is None:
            raise ShortBody(self.got, None)
        if expect is not None and line.rstrip(b"\r\n") != expect.rstrip(b"\r\n"):
            raise ProtocolError(f"malformed chunked body: expected {what}")
        return line

    def _next_chunk(self) -> None:
        line = self._line(None, "a chunk size")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"malformed chunk size {size_text[:40]!r}") from None
        if size < 0:
            raise ProtocolError("negative chunk size")
        if size == 0:
            while True:  # trailers, then the blank line
                trailer = self._line(None, "the end of the trailers")
                if trailer in (b"\r\n", b"\n"):
                    break
            self.done = True
            return
        self.remaining = size

    @property
    def sized(self) -> bool:
        """Framed by Content-Length (so the bytes still owed are known)."""
        return not self.chunked and not self.until_close

    def read(self, limit: int | None) -> bytes:
        """The whole body (at most ``limit`` bytes, else :class:`BodyTooLarge`)."""
        if limit is not None and self.expected is not None and not self.chunked and self.expected > limit:
            raise BodyTooLarge(limit)
        out = bytearray()
        buf = bytearray(_RECV)
        view = memoryview(buf)
        while n := self.readinto(view):
            out += view[:n]
            if limit is not None and len(out) > limit:
                raise BodyTooLarge(limit)
        return bytes(out)

    def drain(self, limit: int) -> bool:
        """Read and drop the rest of the body if it is at most ``limit`` bytes."""
        buf = bytearray(min(limit, _RECV) or 1)
        view = memoryview(buf)
        seen = 0
        while n := self.readinto(view):
            seen += n
            if seen > limit:
                return False
        return True


class StdTransport:
    """Sync transport for ``http://`` URLs. Thread-safe (one connection per request)."""

    def __init__(self, settings: HttpSettings | None = None, *, observer: Observer | None = None) -> None:
        self.settings = settings or HttpSettings()
        self.observer = observer
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
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

    def _get(self, key: tuple[str, int]) -> tuple[_Conn, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        return _Conn(*key), False

    def _put(self, key: tuple[str, int], conn: _Conn) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.settings.max_connections:
                idle.append(conn)
                return
        conn.close()

    def _buffers(self) -> tuple[memoryview, ...]:
        """Receive buffers per thread, used in turn: a chunk handed to a sink stays valid
        until the sink returns from its ``HASH_IN_FLIGHT``-th next call (the verifying
        writer hashes chunks on a helper thread while the next ones are received)."""
        bufs = getattr(self._local, "bufs", None)
        if bufs is None:
            from ._digest import HASH_IN_FLIGHT

            bufs = self._local.bufs = tuple(memoryview(bytearray(_BUF)) for _ in range(HASH_IN_FLIGHT + 1))
        return bufs

    # --- one request ------------------------------------------------------------------

    def _send_once(self, req: Request) -> Response | Request:
        host, port, target = _split_http_url(req.url)
        key = (host, port)
        headers = {"User-Agent": self._ua, **req.headers}
        body: Any = req.content
        replayable = body is None or isinstance(body, (bytes, bytearray))
        conn, reused = self._get(key)
        try:
            try:
                status, version, resp_headers, reader = self._exchange(conn, req, host, port, target, headers, body)
            except (ServerClosed, BrokenPipeError, ConnectionResetError):
                if not reused or not replayable:
                    raise
                # a pooled connection the server had already closed: one fresh attempt
                conn.close()
                conn = _Conn(*key)
                status, version, resp_headers, reader = self._exchange(conn, req, host, port, target, headers, body)
            return self._finish(conn, key, req, status, version, resp_headers, reader)
        except BaseException:
            conn.close()
            raise

    def _exchange(self, conn: _Conn, req: Request, host: str, port: int, target: str, headers: dict[str, str],
                  body: Any) -> tuple[int, str, dict[str, str], _Body]:
        timeout = req.timeout if req.timeout is not None else self.settings.timeout
        if conn.sock is None:
            conn.connect(min(self.settings.connect_timeout, timeout), timeout)
        else:
            conn.sock.settimeout(timeout)
        sock = conn.sock
        assert sock is not None
        lower = {k.lower() for k in headers}
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal
        lines = [f"{req.method} {target} HTTP/1.1", f"Host: {name if port == 80 else f'{name}:{port}'}"]
        if "accept-encoding" not in lower:
            lines.append("Accept-Encoding: identity")
        chunked = False
        if isinstance(body, (bytes, bytearray, memoryview)):
            if "content-length" not in lower:
                lines.append(f"Content-Length: {len(body)}")
        elif body is not None:
            chunked = "content-length" not in lower
            if chunked:
                lines.append("Transfer-Encoding: chunked")
        elif req.method in ("POST", "PUT", "PATCH") and "content-length" not in lower:
            lines.append("Content-Length: 0")
        for k, v in headers.items():
            if "\r" in v or "\n" in v or "\r" in k or "\n" in k:
                raise ValueError(f"invalid header {k!r}: contains a line break")
            lines.append(f"{k}: {v}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if body is None:
            sock.sendall(head)
        elif isinstance(body, (bytes, bytearray, memoryview)):
            if len(body) <= _RECV:
                sock.sendall(head + bytes(body))
            else:
                sock.sendall(head)
                sock.sendall(body)
        else:
            sock.sendall(head)
            _send_stream(sock, body, chunked)
        return _read_head(conn, req.method)

    def _finish(self, conn: _Conn, key: tuple[str, int], req: Request, status: int, version: str,
                headers: dict[str, str], reader: _Body) -> Response | Request:
        keep = version == "HTTP/1.1" and not reader.until_close and "close" not in headers.get("connection", "").lower()
        redirect = _redirect_target(req, status, headers.get("location"), req.url)
        if redirect is not None:
            if keep and reader.drain(_REDIRECT_DRAIN):
                self._put(key, conn)
            else:
                conn.close()
            return redirect
        if req.sink is not None and 200 <= status < 300:
            blocks = getattr(req.sink, "blocks", None) if reader.sized else None
            if blocks is not None and blocks():
                _block_body(reader, req.sink)
                if keep and not conn.pending:
                    self._put(key, conn)
                else:
                    conn.close()
                return Response(status, headers, b"", req.url, version)
            direct = getattr(req.sink, "direct", None) if _SPLICE and reader.sized else None
            target = direct() if direct is not None else None
            if target is not None and _splice_body(conn, reader, req.sink, *target):
                if keep and not conn.pending:
                    self._put(key, conn)
                else:
                    conn.close()
                return Response(status, headers, b"", req.url, version)
            views = self._buffers()
            sink = req.sink
            readinto = reader.readinto
            turn = 0
            while n := readinto(views[turn]):
                sink(views[turn][:n])  # type: ignore[arg-type]  # a view, valid as Request.sink says
                turn = (turn + 1) % len(views)
            content = b""
        else:
            content = reader.read(req.max_body)
        if keep and not conn.pending:
            self._put(key, conn)
        else:
            conn.close()
        return Response(status, headers, content, req.url, version)


_SPLICE = sys.platform.startswith("linux") and hasattr(os, "splice")
_SPLICE_CHUNK = 1 << 20
#: what splice says where a file system (or socket) does not support it
_NO_SPLICE = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV})


def _block_body(reader: _Body, sink: Any) -> None:
    """Receive a Content-Length body straight into the sink's blocks (see
    ``VerifyingWriter.blocks``), each filled to the brim before it is handed over."""
    while reader.remaining:
        view = sink.next_block()
        want = min(len(view), reader.remaining)
        n = 0
        while n < want:
            n += reader.readinto(view[n:want])  # ShortBody if the connection ends early
        sink.commit_block(n)
    reader.done = True


def _splice_body(conn: _Conn, reader: _Body, sink: Any, fd: int, offset: int) -> bool:
    """Move the rest of a Content-Length body from the socket into file ``fd`` at
    ``offset`` with ``splice`` (socket -> pipe -> file, never through Python), reporting
    each piece to ``sink.advance`` (which hashes it back from the file on another thread).
    Bytes already received with the head go through ``sink`` as usual. Returns False,
    having consumed nothing after those bytes, where splice does not work here; the
    caller then reads the body the ordinary way."""
    if conn.pending and reader.remaining:
        n = min(len(conn.pending), reader.remaining)
        chunk = bytes(conn.pending[:n])
        del conn.pending[:n]
        reader.remaining -= n
        reader.got += n
        sink(chunk)
        offset += n
    if reader.remaining == 0:
        reader.done = True
        return True
    assert conn.sock is not None
    import fcntl
    import select

    r, w = os.pipe()
    try:
        try:
            fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), _SPLICE_CHUNK)
        except OSError:
            pass  # the default pipe size works, in smaller steps
        sockfd = conn.sock.fileno()
        timeout = conn.sock.gettimeout()
        poller = select.poll()
        poller.register(sockfd, select.POLLIN)
        to_file = True
        first = True
        while reader.remaining:
            try:
                n = os.splice(sockfd, w, min(reader.remaining, _SPLICE_CHUNK), flags=os.SPLICE_F_MOVE)
            except BlockingIOError:  # the socket has a timeout, so it is non-blocking: wait
                if not poller.poll(None if timeout is None else timeout * 1000):
                    raise TimeoutError("timed out receiving the body") from None
                continue
            except OSError:
                if first:
                    return False  # no splice from this socket: nothing consumed, read normally
                raise
            first = False
            if n == 0:
                raise ShortBody(reader.got, reader.expected)
            moved = 0
            while moved < n:
                if to_file:
                    try:
                        moved += os.splice(r, fd, n - moved, offset_dst=offset + moved, flags=os.SPLICE_F_MOVE)
                        continue
                    except OSError as exc:
                        if exc.errno not in _NO_SPLICE:  # disk full, I/O error: the file's fault
                            raise sink.local_error(exc) from None
                        to_file = False  # no splice into this file system: copy out of the pipe
                data = os.read(r, n - moved)
                try:
                    os.pwrite(fd, data, offset + moved)
                except OSError as exc:
                    raise sink.local_error(exc) from None
                moved += len(data)
            offset += n
            reader.remaining -= n
            reader.got += n
            sink.advance(n)
        reader.done = True
        return True
    finally:
        os.close(r)
        os.close(w)


def _split_http_url(url: str) -> tuple[str, int, str]:
    """(host, port, request target) of an ``http://`` URL."""
    if not url.startswith("http://"):
        raise ValueError(f"StdTransport only speaks http://, not {url.split(':', 1)[0]}")
    rest = url[len("http://"):]
    slash = rest.find("/")
    authority, target = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    q = authority.find("?")
    if q >= 0:  # http://host?query
        authority, target = authority[:q], "/" + authority[q:]
    target = target.split("#", 1)[0]
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    if authority.startswith("["):  # [v6]:port
        end = authority.find("]")
        host, port_text = authority[1:end], authority[end + 2:]
    elif authority.count(":") == 1:
        host, port_text = authority.split(":")
    else:
        host, port_text = authority, ""
    try:
        port = int(port_text) if port_text else 80
    except ValueError:
        raise ValueError(f"invalid port in {url!r}") from None
    return host, port, target


def _send_stream(sock: socket.socket, body: Iterable[Any], chunked: bool) -> None:
    for chunk in body:
        if not chunk:
            continue
        if chunked:
            sock.sendall(f"{len(chunk):x}\r\n".encode())
            sock.sendall(chunk)
            sock.sendall(b"\r\n")
        else:
            sock.sendall(chunk)
    if chunked:
        sock.sendall(b"0\r\n\r\n")


def _read_head(conn: _Conn, method: str) -> tuple[int, str, dict[str, str], _Body]:
    """Status line and headers (skipping 1xx interim responses), and a reader for the body."""
    first = True
    while True:
        line = conn.readline()
        if line is None:
            if first:
                raise ServerClosed()
            raise ProtocolError("the connection ended inside the response head")
        first = False
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.1 status line: {line[:80]!r}")
        version, status = parts[0], int(parts[1])
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            hl = conn.readline()
            if hl is None:
                raise ProtocolError("the connection ended inside the response headers")
            if hl in (b"\r\n", b"\n"):
                break
            name, sep, value = hl.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip():
                raise ProtocolError(f"malformed response header {hl[:80]!r}")
            lk = name.lower()
            value = value.strip()
            headers[lk] = f"{headers[lk]}, {value}" if lk in headers else value
        else:
            raise ProtocolError(f"more than {_MAX_HEADERS} response headers")
        if 100 <= status < 200 and status != 101:
            continue
        break
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, version, headers, _Body(conn, length=0, chunked=False, until_close=False)
    te = headers.get("transfer-encoding", "").lower()
    if te:
        if te.rsplit(",", 1)[-1].strip() != "chunked":
            return status, version, headers, _Body(conn, length=None, chunked=False, until_close=True)
        return status, version, headers, _Body(conn, length=None, chunked=True, until_close=False)
    cl = headers.get("content-length")
    if cl is not None:
        values = {v.strip() for v in cl.split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise ProtocolError(f"invalid Content-Length {cl[:40]!r}")
        return status, version, headers, _Body(conn, length=int(values.pop()), chunked=False, until_close=False)
    return status, version, headers, _Body(conn, length=None, chunked=False, until_close=True)


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
        return self._httpx._send_once(req)

    def close(self) -> None:
        self._std.close()
        if self._httpx is not None:
            self._httpx.close()
