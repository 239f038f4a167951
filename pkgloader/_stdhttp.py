"""The sync HTTP/1.1 transport: the standard library's ``http.client`` over ``ssl``, for
``http://`` and ``https://`` registries alike, directly or through an ``http://`` proxy
(absolute-form requests for ``http://``, a ``CONNECT`` tunnel for ``https://``).

``http.client`` does the protocol: request framing, status line and headers, bodies framed
by ``Content-Length``, chunked or the end of the connection, and it lets us read a body
with ``readinto`` into buffers we own. What this module adds is what no library offers:

* a thread-safe keep-alive pool per (scheme, host, port, proxy), with one fresh attempt
  when a pooled connection turns out to be closed by the server;
* timeouts that mean what they say (see ``HttpSettings``): every read from the socket goes
  through :class:`_MeteredIO`, which sets the socket's timeout to what is left of the
  request's total deadline (small bodies and every response head) or of the stall timeout,
  and counts bytes for the low-speed limit, so that a server trickling a byte a second
  cannot hold a request; ``http.client`` alone knows only a per-``recv`` timeout;
* large downloads received straight into the verifying writer's page-aligned blocks
  (``VerifyingWriter.blocks``: hashed on one thread, written with ``O_DIRECT`` on another,
  so nothing goes through the page cache), over plain HTTP and TLS alike; smaller ones into
  a few reused 1 MiB buffers (``http.client``'s buffered reader reads a large
  ``readinto`` straight into the caller's buffer, no copy);
* the refused certificate's subject and issuer for the error message (one unverified
  handshake, only after a verification failure).

Redirects, retries and backoff are the shared policy in ``_http``.
"""

from __future__ import annotations

import http.client
import io
import threading
import time
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from ._http import (
    BodyTooLarge,
    DeadlineExceeded,
    HttpSettings,
    Observer,
    Request,
    Response,
    SingleFlight,
    SpeedMeter,
    StallTimeout,
    _redirect_target,
    drive_sync,
    user_agent,
)

from ._log import get_logger

__all__ = ["StdTransport", "ShortBody"]

log = get_logger()

_BUF = 1 << 20
_READ = 64 * 1024
_REDIRECT_DRAIN = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ShortBody(ConnectionError):
    """The connection ended before the announced body was complete."""

    def __init__(self, got: int, expected: int | None) -> None:
        self.partial = got
        self.expected = expected
        if expected is not None:
            super().__init__(f"the body ended after {got} of {expected} bytes")
        else:
            super().__init__(f"the body ended after {got} bytes, before its announced end")


class _MeteredIO(io.RawIOBase):
    """The socket as ``http.client`` reads it: each ``recv`` is bounded by what is left of
    the total deadline (when one is set) and by the stall timeout, and counted by the
    low-speed meter (when one is set)."""

    def __init__(self, sock: Any, stall: float, deadline: float | None, limit: float) -> None:
        super().__init__()
        self.sock = sock
        self.stall = stall
        self.deadline = deadline  # monotonic time, or None
        self.limit = limit  # the deadline's length, for the message
        self.meter: SpeedMeter | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        wait = self.stall
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(f"{self.limit:g} s")
            wait = min(wait, left)
        if self.sock.gettimeout() != wait:  # settimeout is a syscall (FIONBIO) each time: a 100 MiB
            self.sock.settimeout(wait)  # body over TLS is ~6,400 reads of one 16 KiB record
        try:
            n: int = self.sock.recv_into(b)
        except TimeoutError:
            if self.deadline is not None and time.monotonic() >= self.deadline - 0.01:
                raise DeadlineExceeded(f"{self.limit:g} s") from None
            raise StallTimeout(f"{self.stall:g} s") from None
        if self.meter is not None and n:
            self.meter.add(n)
        return n


class _Response(http.client.HTTPResponse):
    """An ``HTTPResponse`` reading through :class:`_MeteredIO`."""

    def __init__(self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None, *,
                 metered: tuple[float, float | None, float]) -> None:
        super().__init__(sock, debuglevel, method, url)
        # read through the meter instead of the base class's makefile(), but keep that file
        # open until the response is done: it holds the socket open after http.client closes
        # the connection of a response that ends with it (HTTP/1.0, Connection: close)
        self._keep: Any = self.fp
        self.io = _MeteredIO(sock, *metered)
        self.fp = self.reader = _LineReader(self.io, _READ)

    def _read_status(self) -> tuple[str, int, str]:
        # every interim 1xx answer is skipped (http.client itself skips only 100 Continue)
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 < status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)

    def begin(self) -> None:
        """http.client's ``begin``, refusing what it takes silently: a head cut short by the
        end of the connection, a line that is not a header, an invalid ``Content-Length``
        (it would read such bodies to the end of the connection)."""
        super().begin()
        if self.reader.last == b"":
            raise ConnectionError("the connection ended in the middle of the answer's head")
        junk = self.msg.get_payload()
        if isinstance(junk, str) and junk.strip():
            raise BadAnswer(f"a malformed header line ({junk.strip().splitlines()[0][:80]!r})")
        lengths = self.msg.get_all("content-length")
        if lengths and not self.chunked:
            values = {v.strip() for v in lengths}
            if len(values) != 1 or not all(v.isascii() and v.isdigit() for v in values):
                raise BadAnswer(f"invalid Content-Length {', '.join(lengths)[:80]!r}")

    def _close_conn(self) -> None:
        super()._close_conn()  # type: ignore[misc]
        keep, self._keep = self._keep, None
        if keep is not None:
            keep.close()


class _LineReader(io.BufferedReader):
    """Remembers the last line read (http.client takes the end of the data as the end of
    the head, and hides the chunk-size line it could not parse)."""

    last = b"\r\n"

    def readline(self, size: int | None = -1) -> bytes:
        self.last = super().readline(size)
        return self.last


class BadAnswer(http.client.HTTPException):
    """An answer that breaks HTTP/1.1 framing in a way http.client lets through."""


def _chunked_cut(resp: http.client.HTTPResponse, exc: http.client.IncompleteRead, before: int) -> Exception:
    """What http.client's ``IncompleteRead`` from a chunked body means. It counts only the
    chunks of the last read (``before``: the bytes received until then), keeps the part of
    the chunk that was cut in its cause, and stands for a malformed chunk-size line too."""
    got = before + len(exc.partial)
    inner = exc.__cause__ or exc.__context__
    if isinstance(inner, http.client.IncompleteRead):
        got += len(inner.partial)
        inner = inner.__cause__ or inner.__context__
    reader = getattr(resp, "reader", None)
    line = reader.last.strip() if isinstance(reader, _LineReader) else b""
    if isinstance(inner, ValueError) and line:  # int(chunk-size line, 16) failed
        return BadAnswer(f"a malformed chunk size ({line[:40].decode('latin-1')!r})")
    return ShortBody(got, None)


def _http_connection(tls: bool) -> type[http.client.HTTPConnection]:
    return http.client.HTTPSConnection if tls else http.client.HTTPConnection


class StdTransport:
    """Sync transport for ``http://`` and ``https://`` URLs. Thread-safe: a request takes a
    connection from the pool (or opens one) and gives it back when its answer is read."""

    def __init__(self, settings: HttpSettings | None = None, *, observer: Observer | None = None) -> None:
        self.settings = settings or HttpSettings()
        self.observer = observer
        self._idle: dict[tuple[Any, ...], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._flights = SingleFlight()
        self._ua = user_agent()

    def close(self) -> None:
        with self._lock:
            for conns in self._idle.values():
                for c in conns:
                    c.close()
            self._idle.clear()

    def __enter__(self) -> StdTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, flow: Any) -> Any:
        from ._http import run_sync

        return run_sync(flow, lambda: self)

    def send(self, req: Request) -> Response:
        """One logical request: redirects, retries and backoff as the shared policy says."""
        return drive_sync(req, self._send_once, self.settings.retries, self.observer, self._flights)

    # --- connections ------------------------------------------------------------------

    def _get(self, key: tuple[Any, ...]) -> http.client.HTTPConnection | None:
        """An idle pooled connection that the server has not closed meanwhile (an idle
        connection with something to read has been closed, or is broken: dropped)."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                conn = idle.pop()
            if not _dropped(conn):
                return conn
            conn.close()

    def _put(self, key: tuple[Any, ...], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.settings.max_connections:
                idle.append(conn)
                return
        conn.close()

    def _connect(self, scheme: str, host: str, port: int, proxy: Any,
                 endpoint_tls: Any = None) -> http.client.HTTPConnection:
        st = self.settings
        tls = scheme == "https"
        cls = _http_connection(tls)
        kwargs: dict[str, Any] = {"timeout": st.connect_timeout}
        if tls:
            kwargs["context"] = st.verify(endpoint_tls, lazy=True)
        for attempt in range(2):
            if proxy is None:
                conn = cls(host, port, **kwargs)
            else:
                conn = cls(proxy.host, proxy.port, **kwargs)
                if tls:
                    tunnel_headers = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
                    conn.set_tunnel(host, port, headers=tunnel_headers)
            try:
                conn.connect()
            except OSError as exc:
                conn.close()
                if attempt == 0 and tls and getattr(kwargs["context"], "pkgloader_lazy", False) \
                        and _is_certificate_error(exc):
                    # the system directory has no issuer for it: the whole default store decides
                    log.debug("certificate of %s:%d not verified from the system CA directory; "
                              "loading the whole default CA store", host, port)
                    kwargs["context"] = st.unlazy(endpoint_tls)
                    continue
                _explain_connect_error(exc, scheme, host, port, proxy, st)
                raise
            return conn
        raise AssertionError("unreachable")  # pragma: no cover

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
        parts = urlsplit(req.url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"pkgloader speaks http:// and https://, not {scheme}://")
        host = parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS[scheme]
        proxies = self.settings.proxies
        proxy = proxies.for_url(scheme, host, port) if proxies is not None else None
        key = (scheme, host, port, proxy.display if proxy is not None else None, req.tls if scheme == "https" else None)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": self._ua, **req.headers}
        if proxy is not None and scheme == "http":
            netloc = parts.netloc.rsplit("@", 1)[-1]
            target = f"http://{netloc}{target}"  # absolute form, for the proxy
            if proxy.authorization:
                headers["Proxy-Authorization"] = proxy.authorization
        replayable = req.content is None or isinstance(req.content, (bytes, bytearray))
        # a streamed upload cannot be sent again if a pooled connection turns out to be closed
        # (a proxy or server may close it just as the request goes out): it gets a fresh one
        conn = self._get(key) if replayable else None
        reused = conn is not None
        if conn is None:
            conn = self._connect(scheme, host, port, proxy, req.tls)
        try:
            try:
                resp = self._exchange(conn, req, target, headers)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                if not reused or not replayable:
                    raise
                # a pooled connection the server had already closed: one fresh attempt
                conn.close()
                conn = self._connect(scheme, host, port, proxy, req.tls)
                resp = self._exchange(conn, req, target, headers)
            if proxy is not None and resp.status == 407:
                exc = OSError(f"the proxy {proxy.display} refused the request: 407 {resp.reason}")
                exc.pkgloader_proxy = str(exc)  # type: ignore[attr-defined]
                raise exc
            return self._finish(conn, key, req, resp)
        except BaseException:
            conn.close()
            raise

    def _exchange(self, conn: http.client.HTTPConnection, req: Request, target: str,
                  headers: dict[str, str]) -> http.client.HTTPResponse:
        st = self.settings
        limit = req.timeout if req.timeout is not None else st.timeout
        if conn.sock is not None:
            conn.sock.settimeout(st.stall_timeout)
        conn.request(req.method, target, body=req.content, headers=headers)
        # from the moment the request is sent (an upload may take long), the response head is
        # under the total deadline; so is a body read into memory
        conn.response_class = partial(_Response, metered=(st.stall_timeout, time.monotonic() + limit, limit))  # type: ignore[assignment]
        return conn.getresponse()

    def _finish(self, conn: http.client.HTTPConnection, key: tuple[Any, ...], req: Request,
                resp: http.client.HTTPResponse) -> Response | Request:
        status = resp.status
        version = "HTTP/1.0" if resp.version == 10 else "HTTP/1.1"
        headers: dict[str, str] = {}
        for k, v in resp.getheaders():
            lk = k.lower()
            headers[lk] = f"{headers[lk]}, {v}" if lk in headers else v
        redirect = _redirect_target(req, status, headers.get("location"), req.url)
        if redirect is not None:
            drained = _drain(resp, _REDIRECT_DRAIN)
            self._release(conn, key, resp, drained)
            return redirect
        mio: _MeteredIO = resp.io  # type: ignore[attr-defined]
        if req.sink is not None and 200 <= status < 300:
            st = self.settings
            mio.deadline = None  # a download is bounded by the stall timeout and the low-speed limit
            mio.meter = SpeedMeter(st.low_speed_limit, st.low_speed_time) if st.low_speed_limit else None
            received = _stream_body(resp, req.sink, self._buffers)
            content = b""
        else:
            content = _read_capped(resp, req.max_body, req.url)
            received = len(content)
        self._release(conn, key, resp, True)
        return Response(status, headers, content, req.url, version, received)

    def _release(self, conn: http.client.HTTPConnection, key: tuple[Any, ...], resp: http.client.HTTPResponse,
                 complete: bool) -> None:
        if complete and resp.isclosed() and not resp.will_close and conn.sock is not None:
            self._put(key, conn)
        else:
            resp.close()
            conn.close()


def _dropped(conn: http.client.HTTPConnection) -> bool:
    import select

    sock = conn.sock
    if sock is None:
        return True
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _drain(resp: http.client.HTTPResponse, limit: int) -> bool:
    """Read and drop a small body (a redirect's); False if it is larger than ``limit``."""
    if resp.length is not None and resp.length > limit:
        return False
    seen = 0
    while chunk := resp.read(_READ):
        seen += len(chunk)
        if seen > limit:
            return False
    return True


def _read_capped(resp: http.client.HTTPResponse, limit: int | None, url: str = "") -> bytes:
    """The whole body (at most ``limit`` bytes, else :class:`BodyTooLarge`)."""
    if limit is not None and resp.length is not None and resp.length > limit:
        raise BodyTooLarge(limit, url)
    expected = resp.length
    out = bytearray()
    try:
        while chunk := resp.read(_READ if limit is None else min(_READ, limit + 1 - len(out))):
            out += chunk
            if limit is not None and len(out) > limit:
                raise BodyTooLarge(limit, url)
    except http.client.IncompleteRead as exc:
        raise _chunked_cut(resp, exc, len(out)) from None
    if expected is not None and len(out) < expected:
        raise ShortBody(len(out), expected)
    return bytes(out)


def _stream_body(resp: http.client.HTTPResponse, sink: Any, buffers: Any) -> int:
    """Stream a body into ``sink``; returns the byte count. A ``Content-Length`` body goes
    straight into the sink's blocks where it offers them (see ``VerifyingWriter.blocks``),
    each filled to the brim before it is handed over; one smaller than a receive buffer into
    a buffer of its own size (each chunk handed over is a part of it that is never reused);
    otherwise into the thread's receive buffers (``buffers()``) in turn."""
    expected = resp.length  # None for chunked or until-close bodies
    got = 0
    blocks = getattr(sink, "blocks", None) if expected is not None else None
    if blocks is not None and blocks():
        remaining = expected or 0
        while remaining:
            view = sink.next_block()
            want = min(len(view), remaining)
            n = 0
            while n < want:
                k = resp.readinto(view[n:want])
                if not k:
                    raise ShortBody(got + n, expected)
                n += k
            sink.commit_block(n)
            got += n
            remaining -= n
        return got
    if expected is not None and expected < _BUF:
        # most bodies (WIT packages, small components): no 4 x 1 MiB receive buffers per thread
        whole = memoryview(bytearray(expected))
        while got < expected:
            n = resp.readinto(whole[got:])
            if not n:
                raise ShortBody(got, expected)
            sink(whole[got:got + n])
            got += n
        return got
    views = buffers()
    turn = 0
    try:
        while n := resp.readinto(views[turn]):
            sink(views[turn][:n])
            got += n
            turn = (turn + 1) % len(views)
    except http.client.IncompleteRead as exc:
        raise _chunked_cut(resp, exc, got) from None
    if expected is not None and got < expected:
        raise ShortBody(got, expected)
    return got


#: OpenSSL verify codes of a chain whose issuer was not found (2, 20), or whose self-signed
#: root or leaf is not trusted (19, 18): what the whole default store may know better than the
#: system directory. Any other refusal (a name mismatch, an expired certificate) is final.
_ISSUER_UNKNOWN = frozenset({2, 18, 19, 20})


def _is_certificate_error(exc: BaseException) -> bool:
    import ssl

    return isinstance(exc, ssl.SSLCertVerificationError) and getattr(exc, "verify_code", None) in _ISSUER_UNKNOWN


def _explain_connect_error(exc: OSError, scheme: str, host: str, port: int, proxy: Any, st: HttpSettings) -> None:
    """Mark ``exc`` for the error message: a proxy's refusal, a refused certificate (with
    its subject and issuer), or a failure to connect at all."""
    import ssl

    text = str(exc)
    if proxy is not None and text.startswith("Tunnel connection failed"):
        status = text.split(":", 1)[1].strip() if ":" in text else text
        exc.pkgloader_proxy = f"the proxy {proxy.display} refused the tunnel to {host}:{port}: {status}"  # type: ignore[attr-defined]
        return
    if isinstance(exc, ssl.SSLCertVerificationError):
        exc.pkgloader_peer = _peer_names(host, port, proxy, st)  # type: ignore[attr-defined]
        return
    if isinstance(exc, ssl.SSLError):
        return
    if proxy is not None and not isinstance(exc, TimeoutError):
        reason = exc.strerror or text or type(exc).__name__
        exc.pkgloader_proxy = f"cannot connect to the proxy {proxy.display}: {reason}"  # type: ignore[attr-defined]
        return
    exc.pkgloader_connecting = True  # type: ignore[attr-defined]


def _peer_names(host: str, port: int, proxy: Any, st: HttpSettings) -> tuple[str, str] | None:
    """(subject, issuer) of the certificate ``host`` presents, by one unverified handshake."""
    import ssl

    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if proxy is None:
            conn = http.client.HTTPSConnection(host, port, timeout=st.connect_timeout, context=ctx)
        else:
            conn = http.client.HTTPSConnection(proxy.host, proxy.port, timeout=st.connect_timeout, context=ctx)
            conn.set_tunnel(host, port, headers={"Proxy-Authorization": proxy.authorization} if proxy.authorization else None)
        try:
            conn.connect()
            der = conn.sock.getpeercert(binary_form=True)
        finally:
            conn.close()
        if not der:
            return None
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
    except Exception:  # noqa: BLE001 - only decoration for an error already being reported
        return None
