"""The sync transport (``_stdhttp.StdTransport``: ``http.client`` over ``ssl``) against a
scripted socket server.

The registry tests exercise it end to end against the real distribution registry; these
cover what a well-behaved server does not produce: chunked bodies with extensions and
trailers, interim 1xx responses, bodies that run to the end of the connection, bodies that
end early, garbage status lines, stale keep-alive connections, servers that trickle or
stall (the total deadline, the stall timeout, the low-speed limit), plus single flight, the
debug lines, the retry policy after redirects, TLS with a throw-away CA (refused
certificates, ``SSL_CERT_FILE``, client certificates, ``trust_store``) and the large-body
block mode.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import re
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Union

import pytest

from pkgloader import _digest, _http
from pkgloader._digest import Digest, VerifyingWriter
from pkgloader._errors import ConfigError, DigestMismatch, LocalIOError, NetworkError, RegistryTimeout, TLSError
from pkgloader._http import TIMEOUT_RETRIES, BodyTooLarge, HttpSettings, Request, map_transport_error
from pkgloader._stdhttp import ShortBody, StdTransport
from support.registry import CertificateAuthority


class Seen:
    def __init__(self, head: bytes, body: bytes, connection: int) -> None:
        self.head = head
        self.body = body
        self.connection = connection
        lines = head.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        self.headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}

    @property
    def path(self) -> str:
        return self.request_line.split()[1]


#: an answer: raw bytes, or pieces sent in turn where a float means "wait this many seconds"
Answer = Union[bytes, Sequence[Union[bytes, float]]]
# respond(request, connection number, request number on that connection) -> (answer, close after?)
Script = Callable[[Seen, int, int], tuple[Answer, bool]]


class _Gone(Exception):
    """The client closed the connection (or the server is shutting down)."""


class ScriptedServer:
    """Accepts connections on loopback and answers each request with raw bytes, over
    plain TCP or, with ``tls`` (a server-side ``SSLContext``), over TLS."""

    def __init__(self, script: Script, *, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.script = script
        self.tls = tls
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, 0), family=family)
        self.port = self.sock.getsockname()[1]
        netloc = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if tls else 'http'}://{netloc}:{self.port}"
        self.connections = 0  # TCP connections accepted
        self.handshake_failures = 0  # TLS handshakes that failed (e.g. the client refused the certificate)
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self.sock.close()
        with self._lock:
            conns = list(self._open)
        for c in conns:  # wakes a handler blocked in recv
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
                self._open.append(conn)
            threading.Thread(target=self._handle, args=(conn, number), daemon=True).start()

    def _recv(self, conn: socket.socket) -> bytes:
        try:
            data = conn.recv(65536)
        except OSError:  # reset by the client, or a TLS alert
            raise _Gone from None
        if not data:
            raise _Gone
        return data

    def _handle(self, raw_conn: socket.socket, number: int) -> None:
        conn = raw_conn
        try:
            if self.tls is not None:
                spare = raw_conn.dup()  # wrap_socket closes the socket when the handshake fails
                try:
                    conn = self.tls.wrap_socket(raw_conn, server_side=True)
                except (ssl.SSLError, OSError):
                    with self._lock:
                        self.handshake_failures += 1
                    self._linger(spare)
                    return
                finally:
                    spare.close()
                with self._lock:
                    self._open.append(conn)
            self._converse(conn, number)
        except _Gone:
            pass
        finally:
            conn.close()
            raw_conn.close()

    @staticmethod
    def _linger(sock: socket.socket) -> None:
        """Close after a failed handshake without a reset: a close with unread data (the
        request a TLS 1.3 client sends right after its side of the handshake) would reset
        the connection, and the reset may overtake the alert the handshake sent (on
        loopback it often does); the client would then see a reset rather than the alert."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(2)
            while sock.recv(65536):
                pass
        except OSError:
            pass

    def _converse(self, conn: socket.socket, number: int) -> None:
        buf = b""
        index = 0
        while True:
            while b"\r\n\r\n" not in buf:
                buf += self._recv(conn)
            head, buf = buf.split(b"\r\n\r\n", 1)
            seen = Seen(head, b"", number)
            if "content-length" in seen.headers:
                n = int(seen.headers["content-length"])
                while len(buf) < n:
                    buf += self._recv(conn)
                seen.body, buf = buf[:n], buf[n:]
            elif seen.headers.get("transfer-encoding") == "chunked":
                body = b""
                while True:
                    while b"\r\n" not in buf:
                        buf += self._recv(conn)
                    size_line, buf = buf.split(b"\r\n", 1)
                    size = int(size_line, 16)
                    while len(buf) < size + 2:
                        buf += self._recv(conn)
                    body, buf = body + buf[:size], buf[size + 2:]
                    if size == 0:
                        break
                seen.body = body
            with self._lock:
                self.seen.append(seen)
            answer, close = self.script(seen, number, index)
            index += 1
            pieces = [answer] if isinstance(answer, bytes) else answer
            try:
                for piece in pieces:
                    if isinstance(piece, float):
                        if self._closed.wait(piece):
                            return
                    elif piece:
                        conn.sendall(piece)
            except OSError:  # the client hung up mid-answer (a test about that)
                return
            if close:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return


ServeFn = Callable[..., ScriptedServer]


@pytest.fixture
def serve() -> Iterator[ServeFn]:
    """``serve(script, tls=None)`` -> a started ScriptedServer (closed at teardown)."""
    servers: list[ScriptedServer] = []

    def start(script: Script, **kw: Any) -> ScriptedServer:
        s = ScriptedServer(script, **kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


@pytest.fixture(autouse=True)
def fresh_tls_contexts() -> Iterator[None]:
    """TLS contexts are cached per settings (``_http._CONTEXTS``), and one built under
    another ``SSL_CERT_FILE`` must not leak into the next test."""
    _http._CONTEXTS.clear()
    yield
    _http._CONTEXTS.clear()


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


_TRANSPORTS: list[StdTransport] = []


def transport(**kw: Any) -> StdTransport:
    """A transport for this test (no retries unless asked; closed at teardown)."""
    kw = {"retries": 0, "timeout": 5, "connect_timeout": 5, **kw}
    t = StdTransport(HttpSettings(**kw))
    _TRANSPORTS.append(t)
    return t


@pytest.fixture(autouse=True)
def close_transports() -> Iterator[None]:
    yield
    while _TRANSPORTS:
        _TRANSPORTS.pop().close()


def eventually(check: Callable[[], bool], within: float = 5.0) -> bool:
    """``check()`` becomes true within ``within`` seconds (what the server thread records
    may lag the client's error by a moment)."""
    end = time.monotonic() + within
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def fail_message(t: StdTransport, req: Request) -> NetworkError:
    with pytest.raises(NetworkError) as info:
        t.send(req)
    assert info.value.exit_code == 6
    return info.value


# --- framing ------------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: (ok(f"answer {i}".encode()), False))
    t = transport()
    assert [t.send(Request("GET", f"{srv.url}/v2/{n}")).content for n in range(3)] == [b"answer 0", b"answer 1", b"answer 2"]
    assert srv.connections == 1
    first = srv.seen[0]
    assert first.request_line == "GET /v2/0 HTTP/1.1"
    assert first.headers["host"] == f"127.0.0.1:{srv.port}"
    assert first.headers["user-agent"].startswith("pkgloader/")
    assert first.headers["accept-encoding"] == "identity"


def test_query_is_sent_and_response_fields(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: (ok(b"{}", "Content-Type: application/json"), False))
    resp = transport().send(Request("GET", f"{srv.url}/v2/a/tags/list?n=100&last=x"))
    assert srv.seen[0].request_line == "GET /v2/a/tags/list?n=100&last=x HTTP/1.1"
    assert (resp.status, resp.http_version, resp.received, resp.url) == (200, "HTTP/1.1", 2, f"{srv.url}/v2/a/tags/list?n=100&last=x")
    assert resp.header("Content-Type") == "application/json" and resp.json() == {}


def test_chunked_body_with_extensions_and_trailers(serve: ServeFn) -> None:
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n")
    srv = serve(lambda req, c, i: (raw, False))
    t = transport()
    assert t.send(Request("GET", srv.url + "/a")).content == b"hello world"
    got: list[bytes] = []
    resp = t.send(Request("GET", srv.url + "/b", sink=lambda chunk: got.append(bytes(chunk))))
    assert b"".join(got) == b"hello world" and resp.received == 11
    assert t.send(Request("GET", srv.url + "/c")).content == b"hello world"
    assert srv.connections == 1  # the chunked body was framed exactly: the connection was reused


def test_body_until_close_and_no_reuse(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 100_000, True))
    t = transport()
    assert t.send(Request("GET", srv.url + "/1")).content == b"x" * 100_000
    got: list[bytes] = []
    t.send(Request("GET", srv.url + "/2", sink=lambda chunk: got.append(bytes(chunk))))
    assert b"".join(got) == b"x" * 100_000
    assert srv.connections == 2


def test_http_1_0_answer(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: (b"HTTP/1.0 200 OK\r\n\r\nold", True))
    resp = transport().send(Request("GET", srv.url + "/"))
    assert (resp.status, resp.http_version, resp.content) == (200, "HTTP/1.0", b"old")


@pytest.mark.parametrize("interim", [
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n",
], ids=["100", "103", "100-103-100"])
def test_interim_responses_are_skipped(serve: ServeFn, interim: bytes) -> None:
    srv = serve(lambda req, c, i: (interim + ok(b"done"), False))
    t = transport()
    resp = t.send(Request("GET", srv.url + "/"))
    assert (resp.status, resp.content) == (200, b"done")
    assert "link" not in resp.headers
    assert t.send(Request("GET", srv.url + "/again")).content == b"done"
    assert srv.connections == 1


def test_repeated_headers_are_joined(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: (ok(b"", "WWW-Authenticate: Basic realm=a", "www-authenticate: Bearer realm=b"), False))
    resp = transport().send(Request("GET", srv.url + "/"))
    assert resp.header("WWW-Authenticate") == "Basic realm=a, Bearer realm=b"


@pytest.mark.parametrize("sink", [True, False], ids=["download", "small-body"])
def test_body_shorter_than_content_length(serve: ServeFn, sink: bool) -> None:
    srv = serve(lambda req, c, i: (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 40, True))
    req = Request("GET", srv.url + "/blob", sink=(lambda chunk: None) if sink else None)
    with pytest.raises(ShortBody) as raw:
        transport()._send_once(req)
    assert str(raw.value) == "the body ended after 40 of 100 bytes"
    err = fail_message(transport(), req)  # what the user sees
    assert err.message == f"connection to {srv.url}/blob broke: the body ended after 40 of 100 bytes"
    assert err.hint == "retry"


def test_short_body_is_retried(serve: ServeFn) -> None:
    def script(req: Seen, c: int, i: int) -> tuple[Answer, bool]:
        if c == 1:
            return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 40, True
        return ok(b"y" * 100), False

    srv = serve(script)
    retried: list[int] = []
    got = bytearray()

    def on_retry() -> None:
        retried.append(1)
        got.clear()

    resp = transport(retries=2).send(Request("GET", srv.url + "/blob", sink=got.extend, on_retry=on_retry))
    assert resp.status == 200 and bytes(got) == b"y" * 100
    assert retried == [1] and len(srv.seen) == 2


@pytest.mark.parametrize("sink", [True, False], ids=["download", "small-body"])
def test_truncated_chunked_body(serve: ServeFn, sink: bool) -> None:
    srv = serve(lambda req, c, i: (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n12345", True))
    req = Request("GET", srv.url + "/", sink=(lambda chunk: None) if sink else None)
    err = fail_message(transport(), req)
    assert err.message == f"connection to {srv.url}/ broke: the body ended after 5 bytes, before its announced end"


@pytest.mark.parametrize("raw, reason", [
    (b"SPDY/3 200 OK\r\n\r\n", "not an HTTP/1.1 answer: the status line is 'SPDY/3 200 OK'"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.1 answer: the status line is 'HTTP/1.1 2000 OK'"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not a valid HTTP/1.1 answer: a malformed header line ('no colon here')"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello", "not a valid HTTP/1.1 answer: invalid Content-Length '5, 6'"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not a valid HTTP/1.1 answer: a malformed chunk size ('zz')"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
     "not a valid HTTP/1.1 answer: invalid Content-Length '5, 6'"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello", "not a valid HTTP/1.1 answer: invalid Content-Length '-5'"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "the connection ended in the middle of the answer's head"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "the connection ended in the middle of the answer's head"),
    (b"HTTP/1.1 200 OK", "the connection ended in the middle of the answer's head"),
    (b"HTTP/2.0 200 OK\r\n\r\n", "not an HTTP/1.1 answer: the status line starts with 'HTTP/2.0'"),
    (b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * 70_000 + b"\r\n\r\n",
     "not a valid HTTP/1.1 answer: a line is too long (got more than 65536 bytes when reading header line)"),
])
def test_malformed_answers(serve: ServeFn, raw: bytes, reason: str) -> None:
    srv = serve(lambda req, c, i: (raw, True))
    err = fail_message(transport(), Request("GET", srv.url + "/"))
    assert err.message == f"connection to {srv.url}/ broke: {reason}"
    assert len(srv.seen) == 1


def test_closed_without_answer(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: (b"", True))
    with pytest.raises(http.client.RemoteDisconnected):
        transport()._send_once(Request("GET", srv.url + "/"))
    err = fail_message(transport(retries=2), Request("GET", srv.url + "/"))
    assert err.message == f"connection to {srv.url}/ broke: the server closed the connection without answering"
    assert len(srv.seen) == 1 + 3  # the _send_once, then the request and its two retries


def test_stale_pooled_connection_is_replaced_once(serve: ServeFn) -> None:
    # the server closes after each answer without saying so (an idle timeout, a restart)
    srv = serve(lambda req, c, i: (ok(f"conn {c}".encode()), True))
    t = transport()
    assert t.send(Request("GET", srv.url + "/1")).content == b"conn 1"
    assert t.send(Request("GET", srv.url + "/2")).content == b"conn 2"
    assert srv.connections == 2
    # only once: when the fresh connection fails too, that is the answer
    dead = serve(lambda req, c, i: (ok(b"warm") if c == 1 else b"", True))
    t = transport()
    t.send(Request("GET", dead.url + "/warm-up"))
    err = fail_message(t, Request("GET", dead.url + "/again"))
    assert err.message.endswith("the server closed the connection without answering")
    assert dead.connections == 2 and [s.path for s in dead.seen] == ["/warm-up", "/again"]


def test_streamed_upload_gets_a_fresh_connection_and_is_never_replayed(serve: ServeFn) -> None:
    # a streamed body cannot be sent twice: it never goes out on a pooled connection (which
    # may turn out closed just as the request goes out), and a failure is the answer
    srv = serve(lambda req, c, i: (ok(b"ok") if req.path == "/warm-up" else b"", True))
    t = transport(retries=3)
    t.send(Request("GET", srv.url + "/warm-up"))  # leaves a (stale) pooled connection
    err = fail_message(t, Request("PUT", srv.url + "/upload", content=iter([b"a", b"b"])))
    assert err.message == f"connection to {srv.url}/upload broke: the server closed the connection without answering"
    assert [s.request_line for s in srv.seen] == ["GET /warm-up HTTP/1.1", "PUT /upload HTTP/1.1"]
    assert srv.seen[1].body == b"ab" and srv.seen[1].connection == 2


def test_head_and_204_have_no_body(serve: ServeFn) -> None:
    def script(req: Seen, c: int, i: int) -> tuple[Answer, bool]:
        if req.request_line.startswith("HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nDocker-Content-Digest: sha256:x\r\n\r\n", False
        return b"HTTP/1.1 204 No Content\r\n\r\n", False

    srv = serve(script)
    t = transport()
    head = t.send(Request("HEAD", srv.url + "/m"))
    assert (head.status, head.content, head.header("content-length")) == (200, b"", "1000")
    assert t.send(Request("DELETE", srv.url + "/m")).status == 204
    assert t.send(Request("HEAD", srv.url + "/m")).status == 200
    assert srv.connections == 1


def test_uploads_with_length_and_chunked(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: (b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", False))
    t = transport()
    big = bytes(range(256)) * 1024  # larger than one send buffer
    t.send(Request("PUT", srv.url + "/bytes", content=big))
    t.send(Request("PUT", srv.url + "/stream", content=iter([b"ab", b"", b"cd"])))
    t.send(Request("PUT", srv.url + "/sized", headers={"Content-Length": "4"}, content=iter([b"wx", b"yz"])))
    t.send(Request("POST", srv.url + "/empty"))
    by_path = {s.path: s for s in srv.seen}
    assert by_path["/bytes"].body == big and by_path["/bytes"].headers["content-length"] == str(len(big))
    assert by_path["/stream"].body == b"abcd" and by_path["/stream"].headers["transfer-encoding"] == "chunked"
    assert by_path["/sized"].body == b"wxyz" and "transfer-encoding" not in by_path["/sized"].headers
    assert by_path["/empty"].headers["content-length"] == "0"
    assert srv.connections == 3  # the two streamed uploads each on a fresh connection


def test_large_body_streams_to_the_sink_in_bounded_chunks(serve: ServeFn) -> None:
    payload = bytes(range(256)) * (12 * 1024)  # 3 MiB
    srv = serve(lambda req, c, i: (ok(payload), False))
    sizes: list[int] = []
    parts: list[bytes] = []

    def sink(chunk: bytes) -> None:
        sizes.append(len(chunk))
        parts.append(bytes(chunk))

    resp = transport().send(Request("GET", srv.url + "/blob", sink=sink))
    assert resp.content == b"" and b"".join(parts) == payload and resp.received == len(payload)
    assert max(sizes) <= 1 << 20


def test_error_status_body_is_read_not_streamed(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: (b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", False))
    got: list[bytes] = []
    resp = transport().send(Request("GET", srv.url + "/blob", sink=got.append))
    assert (resp.status, resp.content, got) == (404, b"not found", [])


def test_body_over_the_limit_is_refused(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: (ok(b"z" * 2000), False))
    with pytest.raises(BodyTooLarge):
        transport().send(Request("GET", srv.url + "/manifest", max_body=1000))
    assert transport().send(Request("GET", srv.url + "/manifest", max_body=2000)).content == b"z" * 2000
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" + b"z" * 2000 + b"\r\n0\r\n\r\n"
    srv2 = serve(lambda req, c, i: (chunked, False))
    with pytest.raises(BodyTooLarge) as info:
        transport().send(Request("GET", srv2.url + "/manifest", max_body=1000))
    assert info.value.limit == 1000
    until_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"z" * 2000
    srv3 = serve(lambda req, c, i: (until_close, True))
    with pytest.raises(BodyTooLarge):
        transport().send(Request("GET", srv3.url + "/manifest", max_body=1000))


def test_redirect_on_the_same_host_reuses_the_connection(serve: ServeFn) -> None:
    def script(req: Seen, c: int, i: int) -> tuple[Answer, bool]:
        if req.path == "/old":
            return b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /new\r\nContent-Length: 5\r\n\r\nmoved", False
        return ok(b"here"), False

    srv = serve(script)
    resp = transport().send(Request("GET", srv.url + "/old", headers={"Authorization": "Bearer t"}))
    assert (resp.status, resp.content, resp.url) == (200, b"here", srv.url + "/new")
    assert srv.seen[1].headers["authorization"] == "Bearer t"  # same host: credentials kept
    assert srv.connections == 1


def test_redirect_to_another_host_drops_authorization(serve: ServeFn) -> None:
    cdn = serve(lambda req, c, i: (ok(b"blob"), False))
    reg = serve(lambda req, c, i: (f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {cdn.url}/b?sig=s\r\n"
                                   "Content-Length: 0\r\n\r\n".encode(), False))
    resp = transport().send(Request("GET", reg.url + "/v2/x/blobs/sha256:1", headers={"Authorization": "Bearer t"}))
    assert (resp.status, resp.content, resp.url) == (200, b"blob", f"{cdn.url}/b?sig=s")
    assert reg.seen[0].headers["authorization"] == "Bearer t"
    assert "authorization" not in cdn.seen[0].headers and cdn.seen[0].path == "/b?sig=s"


def test_header_injection_is_refused(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: (ok(b""), False))
    with pytest.raises(ValueError, match="Invalid header value"):  # http.client refuses it
        transport()._send_once(Request("GET", srv.url + "/", headers={"X-Evil": "a\r\nInjected: 1"}))
    err = fail_message(transport(retries=3), Request("GET", srv.url + "/", headers={"X-Evil": "a\r\nInjected: 1"}))
    assert err.message == rf"cannot send GET {srv.url}/: Invalid header value b'a\r\nInjected: 1'"
    err = fail_message(transport(), Request("GET", srv.url + "/", headers={"X-Evil\r\nInjected": "1"}))
    assert err.message.startswith(f"cannot send GET {srv.url}/: Invalid header name")
    assert srv.seen == []  # nothing was sent, nothing retried


def test_other_schemes_are_refused() -> None:
    err = fail_message(transport(), Request("GET", "ftp://example.test/x"))
    assert err.message == "cannot send GET ftp://example.test/x: pkgloader speaks http:// and https://, not ftp://"


def test_connection_refused_is_a_connect_error() -> None:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    url = f"http://127.0.0.1:{port}/v2/"
    with pytest.raises(OSError) as raw:
        transport()._send_once(Request("GET", url))
    err = map_transport_error(raw.value, url)
    assert err.message == f"cannot connect to {url}: Connection refused"
    assert err.hint == "check the registry name and that it is reachable"
    err = fail_message(transport(), Request("GET", url))
    assert err.message == f"cannot connect to {url}: Connection refused"


def test_ipv6_literal_host_header(serve: ServeFn) -> None:
    try:
        srv = serve(lambda req, c, i: (ok(b"v6"), False), host="::1")
    except OSError:
        pytest.fail("this machine has no IPv6 loopback; the test needs ::1")
    resp = transport().send(Request("GET", f"{srv.url}/v2/"))
    assert resp.content == b"v6"
    assert srv.seen[0].headers["host"] == f"[::1]:{srv.port}"
    assert f"\r\nHost: [::1]:{srv.port}\r\n".encode() in srv.seen[0].head + b"\r\n"


def test_credentials_in_the_url_are_not_sent_as_host(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: (ok(b""), False))
    transport().send(Request("GET", f"http://user:pw@127.0.0.1:{srv.port}/x"))
    assert srv.seen[0].headers["host"] == f"127.0.0.1:{srv.port}"
    assert b"pw" not in srv.seen[0].head


# --- timeouts: total deadline, stall timeout, low-speed limit -------------------------------


def _trickle(data: bytes, every: float) -> list[bytes | float]:
    out: list[bytes | float] = []
    for i in range(len(data)):
        out += [every, data[i:i + 1]]
    return out


def test_total_deadline_covers_a_trickling_body(serve: ServeFn) -> None:
    body = b"0123456789" * 2  # 20 bytes, one every 0.2 s: 4 s, never a stall
    srv = serve(lambda req, c, i: ([f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode(),
                                    *_trickle(body, 0.2)], True))
    url = srv.url + "/v2/x/manifests/1"
    started = time.monotonic()
    with pytest.raises(RegistryTimeout) as info:
        transport(timeout=1, retries=3).send(Request("GET", url))
    assert time.monotonic() - started < 10  # bounded (safety net; two attempts of 1 s)
    assert info.value.message == f"{url} did not answer completely within 1 s"
    assert info.value.exit_code == 6
    assert TIMEOUT_RETRIES == 1 and len(srv.seen) == 2  # a timeout is tried again once, not retries times


def test_total_deadline_covers_a_trickling_head(serve: ServeFn) -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"p" * 30 + b"\r\nContent-Length: 0\r\n\r\n"
    srv = serve(lambda req, c, i: (_trickle(head, 0.1), True))
    started = time.monotonic()
    with pytest.raises(RegistryTimeout) as info:
        transport(timeout=1).send(Request("GET", srv.url + "/v2/"))
    assert time.monotonic() - started < 10
    assert info.value.message == f"{srv.url}/v2/ did not answer completely within 1 s"
    # a download's head too (its body is then bounded by the stall timeout and the speed limit)
    with pytest.raises(RegistryTimeout, match="did not answer completely within 1 s"):
        transport(timeout=1).send(Request("GET", srv.url + "/blob", sink=lambda chunk: None))


def test_per_request_timeout_overrides_the_transport_one(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: ([b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", *_trickle(b"abcd", 0.2)], False))
    with pytest.raises(RegistryTimeout, match="within 0.5 s"):
        transport(timeout=30).send(Request("GET", srv.url + "/", timeout=0.5))


def test_stall_timeout(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: ([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", 30.0], True))
    with pytest.raises(RegistryTimeout) as info:
        transport(stall_timeout=0.5).send(Request("GET", srv.url + "/v2/"))
    assert info.value.message == f"{srv.url}/v2/ sent nothing for 0.5 s"
    assert info.value.exit_code == 6
    # a download stalls the same way (it has no total deadline)
    with pytest.raises(RegistryTimeout, match="sent nothing for 0.5 s"):
        transport(stall_timeout=0.5).send(Request("GET", srv.url + "/blob", sink=lambda chunk: None))


def test_download_is_not_under_the_total_deadline(serve: ServeFn) -> None:
    body = os.urandom(6000)
    pieces: list[bytes | float] = [f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()]
    for k in range(0, len(body), 1000):
        pieces += [0.25, body[k:k + 1000]]
    srv = serve(lambda req, c, i: (pieces, False))
    got = bytearray()
    resp = transport(timeout=1, low_speed_limit=0).send(Request("GET", srv.url + "/blob", sink=got.extend))
    assert resp.status == 200 and bytes(got) == body  # 1.5 s > timeout: fine, it keeps coming


def test_low_speed_limit(serve: ServeFn) -> None:
    body = os.urandom(1500)
    pieces: list[bytes | float] = [f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()]
    for k in range(0, len(body), 100):  # 100 bytes every 0.1 s: ~1000 bytes/s, for 1.5 s
        pieces += [0.1, body[k:k + 100]]
    srv = serve(lambda req, c, i: (pieces, False))
    url = srv.url + "/v2/x/blobs/sha256:1"
    with pytest.raises(RegistryTimeout) as info:
        transport(low_speed_limit=100_000, low_speed_time=1).send(Request("GET", url, sink=lambda chunk: None))
    assert re.fullmatch(rf"download from {re.escape(url)} was too slow: \d+ bytes/s, below 100000 bytes/s for 1 s",
                        info.value.message), info.value.message
    assert "low_speed_limit" in (info.value.hint or "")
    assert len(srv.seen) == 1
    got = bytearray()  # 0 turns the check off
    resp = transport(low_speed_limit=0, low_speed_time=1).send(Request("GET", url, sink=got.extend))
    assert resp.status == 200 and bytes(got) == body


# --- single flight ------------------------------------------------------------------------------


def _in_threads(n: int, call: Callable[[], Any]) -> list[Any]:
    """``call()`` on ``n`` threads started together; results (or exceptions) in order."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(k: int) -> None:
        barrier.wait()
        try:
            out[k] = call()
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            out[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    return out


def test_single_flight_shares_one_request(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: ([0.3, ok(b'{"token": "t%d"}' % len(srv.seen))], False))
    t = transport()
    results = _in_threads(16, lambda: t.send(Request("GET", srv.url + "/token?scope=a", shared=("token", "a"))))
    assert len(srv.seen) == 1
    assert all(r is results[0] for r in results) and results[0].content == b'{"token": "t1"}'


def test_single_flight_shares_an_error_but_not_with_later_callers(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: ([0.3, b""] if len(srv.seen) == 1 else ok(b"fine"), True))
    t = transport()
    results = _in_threads(16, lambda: t.send(Request("GET", srv.url + "/token", shared="k")))
    assert len(srv.seen) == 1
    assert all(isinstance(r, NetworkError) for r in results)
    assert {r.message for r in results} == {f"connection to {srv.url}/token broke: the server closed the connection without answering"}
    assert t.send(Request("GET", srv.url + "/token", shared="k")).content == b"fine"  # a fresh request
    assert len(srv.seen) == 2


def test_single_flight_different_keys_are_separate_requests(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: ([0.3, ok(req.path.encode())], False))
    t = transport()
    keys = ["a", "b"] * 4
    counter = iter(range(len(keys)))
    lock = threading.Lock()

    def call() -> bytes:
        with lock:
            k = keys[next(counter)]
        return t.send(Request("GET", f"{srv.url}/{k}", shared=k)).content

    results = _in_threads(len(keys), call)
    assert sorted(results) == [b"/a"] * 4 + [b"/b"] * 4
    assert sorted(s.path for s in srv.seen) == ["/a", "/b"]
    t.send(Request("GET", f"{srv.url}/c"))  # no key: never shared
    t.send(Request("GET", f"{srv.url}/c"))
    assert [s.path for s in srv.seen].count("/c") == 2


# --- debug lines ----------------------------------------------------------------------------------


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def http_lines() -> Iterator[_Lines]:
    """What logger ``pkgloader.http`` says at DEBUG."""
    lg = logging.getLogger("pkgloader.http")
    handler = _Lines()
    old = lg.level
    lg.addHandler(handler)
    lg.setLevel(logging.DEBUG)
    yield handler
    lg.removeHandler(handler)
    lg.setLevel(old)


_MS = r"\d+ ms"


def test_debug_line_per_request(serve: ServeFn, http_lines: _Lines) -> None:
    srv = serve(lambda req, c, i: (ok(b"12345"), False))
    t = transport()
    t.send(Request("GET", srv.url + "/v2/"))
    t.send(Request("HEAD", srv.url + "/v2/x/manifests/1", headers={"Authorization": "Bearer sekrit-token"}))
    assert len(http_lines.lines) == 2
    assert re.fullmatch(rf"GET {re.escape(srv.url)}/v2/ -> 200 HTTP/1\.1, 5 bytes, {_MS}", http_lines.lines[0]), http_lines.lines
    assert re.fullmatch(rf"HEAD {re.escape(srv.url)}/v2/x/manifests/1 -> 200 HTTP/1\.1, 0 bytes, {_MS}", http_lines.lines[1])
    assert not any("sekrit" in line for line in http_lines.lines)


def test_debug_lines_of_a_redirect_hide_the_signed_query(serve: ServeFn, http_lines: _Lines) -> None:
    cdn = serve(lambda req, c, i: (ok(b"blob"), False))
    reg = serve(lambda req, c, i: (f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {cdn.url}/b/1?X-Amz-Signature=abc&exp=9\r\n"
                                   "Content-Length: 0\r\n\r\n".encode(), False))
    transport().send(Request("GET", reg.url + "/v2/x/blobs/sha256:1?token=tok", headers={"Authorization": "Bearer sekrit"}))
    assert len(http_lines.lines) == 2, http_lines.lines
    first, second = http_lines.lines
    assert re.fullmatch(rf"GET {re.escape(reg.url)}/v2/x/blobs/sha256:1\?token=REDACTED -> 307 redirect to "
                        rf"{re.escape(cdn.url)}/b/1\?<query hidden>, {_MS}", first), first
    assert re.fullmatch(rf"GET {re.escape(cdn.url)}/b/1\?<query hidden> -> 200 HTTP/1\.1, 4 bytes, {_MS}", second), second
    text = "\n".join(http_lines.lines)
    assert "abc" not in text and "sekrit" not in text and "tok," not in text


def test_debug_line_of_a_failed_request(serve: ServeFn, http_lines: _Lines) -> None:
    srv = serve(lambda req, c, i: (b"", True))
    with pytest.raises(NetworkError):
        transport().send(Request("GET", srv.url + "/v2/?password=pw1"))
    assert len(http_lines.lines) == 1
    assert re.fullmatch(rf"GET {re.escape(srv.url)}/v2/\?password=REDACTED -> failed after {_MS}: "
                        r"RemoteDisconnected: Remote end closed connection without response", http_lines.lines[0]), http_lines.lines


def test_debug_logging_does_not_change_results(serve: ServeFn) -> None:
    cdn = serve(lambda req, c, i: (ok(b"blob", "X-A: 1"), False))
    reg = serve(lambda req, c, i: (f"HTTP/1.1 302 Found\r\nLocation: {cdn.url}/b?sig=1\r\nContent-Length: 0\r\n\r\n".encode(), False))

    def fetch() -> tuple[Any, ...]:
        r = transport().send(Request("GET", reg.url + "/blob"))
        return (r.status, dict(r.headers), r.content, r.url, r.http_version, r.received)

    lg = logging.getLogger("pkgloader.http")
    old = lg.level
    try:
        lg.setLevel(logging.WARNING)
        quiet = fetch()
        handler = _Lines()
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
        loud = fetch()
        lg.removeHandler(handler)
    finally:
        lg.setLevel(old)
    assert quiet == loud and len(handler.lines) == 2


# --- the retry policy after redirects ------------------------------------------------------------------


def test_retry_after_a_redirect_starts_again_from_the_original_url(serve: ServeFn) -> None:
    order: list[str] = []
    cdn = serve(lambda req, c, i: (order.append("target") or (b"" if c == 1 else ok(b"blob")), True))  # type: ignore[func-returns-value]
    reg = serve(lambda req, c, i: (order.append("original") or (  # type: ignore[func-returns-value]
        f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {cdn.url}/signed?sig={len(order)}\r\nContent-Length: 0\r\n\r\n".encode()), False))
    resp = transport(retries=3).send(Request("GET", reg.url + "/v2/x/blobs/sha256:1"))
    assert (resp.status, resp.content) == (200, b"blob")
    assert order == ["original", "target", "original", "target"]
    assert [s.path for s in cdn.seen] == ["/signed?sig=1", "/signed?sig=3"]  # the fresh signed URL


@pytest.mark.parametrize("status", [401, 403])
def test_redirect_target_refusing_once_asks_the_original_again(serve: ServeFn, status: int) -> None:
    denied = f"HTTP/1.1 {status} Denied\r\nContent-Length: 7\r\n\r\nexpired".encode()
    cdn = serve(lambda req, c, i: (denied if len(cdn.seen) == 1 else ok(b"blob"), False))
    reg = serve(lambda req, c, i: (f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {cdn.url}/s\r\nContent-Length: 0\r\n\r\n".encode(), False))
    resp = transport(retries=3).send(Request("GET", reg.url + "/blob"))
    assert (resp.status, resp.content) == (200, b"blob")
    assert len(reg.seen) == 2 and len(cdn.seen) == 2
    # only once: a target that keeps refusing is the answer
    always = serve(lambda req, c, i: (denied, False))
    reg2 = serve(lambda req, c, i: (f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {always.url}/s\r\nContent-Length: 0\r\n\r\n".encode(), False))
    resp = transport(retries=3).send(Request("GET", reg2.url + "/blob"))
    assert (resp.status, resp.content) == (status, b"expired")
    assert len(reg2.seen) == 2 and len(always.seen) == 2


def test_retry_status_is_retried_with_backoff_and_then_answered(serve: ServeFn) -> None:
    srv = serve(lambda req, c, i: (b"HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n", False))
    resp = transport(retries=2).send(Request("GET", srv.url + "/v2/"))
    assert resp.status == 503 and len(srv.seen) == 3
    srv2 = serve(lambda req, c, i: (b"HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n", False))
    assert transport(retries=2).send(Request("GET", srv2.url + "/v2/", retry=False)).status == 503
    assert len(srv2.seen) == 1


# --- TLS ------------------------------------------------------------------------------------------------


class _Tls:
    """A throw-away CA, a server certificate for 127.0.0.1 and the files pkgloader reads."""

    def __init__(self, tmp: Path) -> None:
        self.ca = CertificateAuthority("pkgloader test CA")
        self.server = self.ca.issue("pkgloader test server", dns=("localhost",), ips=("127.0.0.1",))
        self.client = self.ca.issue("pkgloader test client", server=False)
        self.ca_file = tmp / "ca.pem"
        self.ca_file.write_text(self.ca.cert_pem)
        self.server_cert = tmp / "server.pem"
        self.server_cert.write_text(self.server.cert_pem + self.server.key_pem)
        self.client_cert = tmp / "client.pem"
        self.client_cert.write_text(self.client.cert_pem)
        self.client_key = tmp / "client.key"
        self.client_key.write_text(self.client.key_pem)
        self.client_both = tmp / "client-both.pem"
        self.client_both.write_text(self.client.cert_pem + self.client.key_pem)

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.encode()

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=str(self.ca_file))
        return ctx


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> _Tls:
    return _Tls(tmp_path_factory.mktemp("tls"))


def test_https_with_the_ca_in_extra_root_certificates(serve: ServeFn, tls: _Tls) -> None:
    srv = serve(lambda req, c, i: (ok(f"tls {i}".encode()), False), tls=tls.server_context())
    assert srv.url.startswith("https://127.0.0.1:")
    t = transport(extra_root_certificates=(tls.ca_pem,))
    assert [t.send(Request("GET", srv.url + f"/v2/{n}")).content for n in range(2)] == [b"tls 0", b"tls 1"]
    assert srv.connections == 1 and srv.seen[0].headers["host"] == f"127.0.0.1:{srv.port}"
    der = ssl.PEM_cert_to_DER_cert(tls.ca.cert_pem)  # DER works as well
    assert transport(extra_root_certificates=(der,)).send(Request("GET", srv.url + "/der")).status == 200


def test_refused_certificate_is_named_and_not_retried(serve: ServeFn, tls: _Tls) -> None:
    srv = serve(lambda req, c, i: (ok(b"never"), False), tls=tls.server_context())
    with pytest.raises(TLSError) as info:
        transport(retries=3, trust_store="openssl").send(Request("GET", srv.url + "/v2/"))
    err = info.value
    assert err.exit_code == 6
    assert err.message == ("the TLS certificate of 127.0.0.1:%d was refused: unable to get local issuer certificate" % srv.port)
    assert err.details == [f"while requesting {srv.url}/v2/", "certificate subject: CN=pkgloader test server",
                           "certificate issuer:  CN=pkgloader test CA"]
    assert "extra_root_certificates" in (err.hint or "") and "SSL_CERT_FILE" in (err.hint or "")
    # not retried: the system CA directory refused it, then the whole default store once (an
    # issuer the directory lacks may be in the bundle), then one unverified handshake reads
    # the refused certificate's names for the message; no request
    assert eventually(lambda: srv.handshake_failures == 2) and srv.connections == 3 and srv.seen == []


def test_certificate_for_another_name_is_refused(serve: ServeFn, tls: _Tls, tmp_path: Path) -> None:
    other = tls.ca.issue("elsewhere", dns=("elsewhere.test",))
    pem = tmp_path / "other.pem"
    pem.write_text(other.cert_pem + other.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pem)
    srv = serve(lambda req, c, i: (ok(b"never"), False), tls=ctx)
    with pytest.raises(TLSError) as info:
        transport(retries=3, extra_root_certificates=(tls.ca_pem,)).send(Request("GET", srv.url + "/v2/"))
    assert info.value.message.startswith(f"the TLS certificate of 127.0.0.1:{srv.port} was refused: IP address mismatch")
    assert "certificate subject: CN=elsewhere" in info.value.details
    assert eventually(lambda: srv.handshake_failures == 1) and srv.seen == []


def test_tls_to_a_plain_http_server_is_not_retried(tls: _Tls) -> None:
    # a plain-HTTP server answers the TLS hello with a 400
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[int] = []

    def answer() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    threading.Thread(target=answer, daemon=True).start()
    try:
        err = fail_message(transport(retries=3, extra_root_certificates=(tls.ca_pem,)),
                           Request("GET", f"https://127.0.0.1:{port}/v2/"))
    finally:
        listener.close()
    assert isinstance(err, TLSError)
    assert err.message == f"TLS handshake with https://127.0.0.1:{port}/v2/ failed: WRONG_VERSION_NUMBER"
    assert 'protocol = "http"' in (err.hint or "")
    assert accepted == [1]  # a TLS set-up error is not retried


def test_plain_http_to_a_tls_server(serve: ServeFn, tls: _Tls) -> None:
    srv = serve(lambda req, c, i: (ok(b"never"), False), tls=tls.server_context())
    err = fail_message(transport(), Request("GET", srv.url.replace("https://", "http://") + "/v2/"))
    assert err.message == (f"connection to http://127.0.0.1:{srv.port}/v2/ broke: "
                           "the server closed the connection without answering")
    assert eventually(lambda: srv.handshake_failures == 1) and srv.seen == []


def test_ssl_cert_file_with_the_openssl_trust_store(serve: ServeFn, tls: _Tls, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = serve(lambda req, c, i: (ok(b"trusted"), False), tls=tls.server_context())
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))
    assert transport(trust_store="openssl").send(Request("GET", srv.url + "/")).content == b"trusted"
    assert transport(trust_store="auto").send(Request("GET", srv.url + "/")).content == b"trusted"


def test_ssl_cert_dir_with_the_openssl_trust_store(serve: ServeFn, tls: _Tls, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    srv = serve(lambda req, c, i: (ok(b"trusted"), False), tls=tls.server_context())
    certs = tmp_path / "certs"
    certs.mkdir()
    subject_hash = _openssl_subject_hash(tls.ca_file)
    (certs / f"{subject_hash}.0").write_text(tls.ca.cert_pem)
    monkeypatch.setenv("SSL_CERT_DIR", str(certs))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    assert transport(trust_store="openssl").send(Request("GET", srv.url + "/")).content == b"trusted"


def _openssl_subject_hash(pem: Path) -> str:
    import subprocess

    try:
        return subprocess.run(["openssl", "x509", "-noout", "-subject_hash", "-in", str(pem)], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:  # .ci/run installs openssl: never a skip
        raise AssertionError(f"openssl x509 -subject_hash failed ({exc}); install openssl (apt-get install openssl)") from None


def test_without_ssl_cert_file_the_test_ca_is_not_trusted(serve: ServeFn, tls: _Tls) -> None:
    srv = serve(lambda req, c, i: (ok(b"x"), False), tls=tls.server_context())
    with pytest.raises(TLSError, match="was refused"):
        transport(trust_store="openssl").send(Request("GET", srv.url + "/"))


# --- the default store as a hashed directory (``_http._lazy_openssl_context``) -----------------


def _system_store(monkeypatch: pytest.MonkeyPatch, bundle: Path, directory: Path) -> None:
    """Make ``bundle`` and ``directory`` OpenSSL's defaults, as Python reports them."""
    real = ssl.get_default_verify_paths()
    fake = ssl.DefaultVerifyPaths(str(bundle), str(directory), real.openssl_cafile_env, str(bundle),
                                  real.openssl_capath_env, str(directory))
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: fake)


def _hashed(directory: Path, *pems: Path) -> Path:
    directory.mkdir()
    for pem in pems:
        (directory / f"{_openssl_subject_hash(pem)}.0").write_text(pem.read_text())
    return directory


@pytest.fixture
def stranger_ca(tmp_path: Path) -> Path:
    pem = tmp_path / "stranger-ca.pem"
    pem.write_text(CertificateAuthority("some other CA").cert_pem)
    return pem


def test_the_system_directory_is_read_as_needed_not_the_whole_bundle(serve: ServeFn, tls: _Tls, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     stranger_ca: Path) -> None:
    srv = serve(lambda req, c, i: (ok(b"trusted"), False), tls=tls.server_context())
    _system_store(monkeypatch, stranger_ca, _hashed(tmp_path / "certs", tls.ca_file, stranger_ca))
    t = transport(trust_store="openssl")
    ctx = t.settings.verify(lazy=True)
    assert getattr(ctx, "pkgloader_lazy", False) and ctx.cert_store_stats()["x509"] == 0  # nothing parsed up front
    assert t.send(Request("GET", srv.url + "/")).content == b"trusted"
    assert ctx.cert_store_stats()["x509_ca"] == 1  # the one CA this handshake needed
    assert srv.handshake_failures == 0
    # the same with the variables naming those defaults (as CI images often set them)
    monkeypatch.setenv("SSL_CERT_FILE", str(stranger_ca))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "certs"))
    _http._CONTEXTS.clear()
    assert getattr(transport(trust_store="auto").settings.verify(lazy=True), "pkgloader_lazy", False)


def test_an_issuer_only_in_the_bundle_is_still_trusted(serve: ServeFn, tls: _Tls, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, stranger_ca: Path) -> None:
    srv = serve(lambda req, c, i: (ok(b"trusted"), False), tls=tls.server_context())
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(stranger_ca.read_text() + tls.ca.cert_pem)  # the test CA is in the bundle only
    _system_store(monkeypatch, bundle, _hashed(tmp_path / "certs", stranger_ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # where OpenSSL's own default store reads it
    t = transport(trust_store="openssl")
    assert t.send(Request("GET", srv.url + "/a")).content == b"trusted"
    assert eventually(lambda: srv.handshake_failures == 1)  # the directory did not know the issuer: the bundle did
    # from then on the whole store is used straight away, by every transport with these settings
    assert transport(trust_store="openssl").send(Request("GET", srv.url + "/b")).content == b"trusted"
    assert srv.handshake_failures == 1 and not getattr(t.settings.verify(lazy=True), "pkgloader_lazy", False)


def test_a_bundle_of_ones_own_or_an_unhashed_directory_is_read_whole(tls: _Tls, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    stranger_ca: Path) -> None:
    _system_store(monkeypatch, stranger_ca, _hashed(tmp_path / "certs", stranger_ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))  # not the default bundle: the user's choice
    ctx = transport(trust_store="openssl").settings.verify(lazy=True)
    assert not getattr(ctx, "pkgloader_lazy", False) and ctx.cert_store_stats()["x509_ca"] >= 1
    monkeypatch.delenv("SSL_CERT_FILE")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "ca.pem").write_text(tls.ca.cert_pem)  # no hash links: OpenSSL could not look anything up
    _system_store(monkeypatch, stranger_ca, plain)
    _http._CONTEXTS.clear()
    assert not getattr(transport(trust_store="openssl").settings.verify(lazy=True), "pkgloader_lazy", False)


def test_client_certificate(serve: ServeFn, tls: _Tls) -> None:
    srv = serve(lambda req, c, i: (ok(b"mutual"), False), tls=tls.server_context(require_client_cert=True))
    roots = (tls.ca_pem,)
    t = transport(extra_root_certificates=roots, client_certificate=str(tls.client_cert), client_key=str(tls.client_key))
    assert t.send(Request("GET", srv.url + "/")).content == b"mutual"
    both = transport(extra_root_certificates=roots, client_certificate=str(tls.client_both))  # key in the same file
    assert both.send(Request("GET", srv.url + "/")).content == b"mutual"
    before = srv.connections
    err = fail_message(transport(retries=3, extra_root_certificates=roots), Request("GET", srv.url + "/v2/"))
    assert isinstance(err, TLSError)
    assert err.message == (f"TLS handshake with {srv.url}/v2/ failed: the server requires a client certificate "
                           "(TLSV13_ALERT_CERTIFICATE_REQUIRED)")
    assert "client_certificate" in (err.hint or "")
    assert srv.connections == before + 1 and len(srv.seen) == 2  # not retried, never answered
    stranger = CertificateAuthority("some other CA").issue("stranger", server=False)
    cert = tls.ca_file.parent / "stranger.pem"
    cert.write_text(stranger.cert_pem + stranger.key_pem)
    err = fail_message(transport(retries=3, extra_root_certificates=roots, client_certificate=str(cert)),
                       Request("GET", srv.url + "/v2/"))
    assert err.message == (f"TLS handshake with {srv.url}/v2/ failed: the server refused the client certificate "
                           "(TLSV1_ALERT_UNKNOWN_CA)")
    assert srv.connections == before + 2 and len(srv.seen) == 2


def test_bad_client_certificate_is_a_config_error(tls: _Tls, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError) as info:
        transport(client_certificate=str(missing)).send(Request("GET", "https://127.0.0.1:1/"))
    assert info.value.exit_code == 2
    assert info.value.message == f"cannot use the client certificate {missing}: No such file or directory"
    with pytest.raises(ConfigError) as info:  # a key that is not the certificate's
        other = tls.ca.issue("other", server=False)
        key = tmp_path / "other.key"
        key.write_text(other.key_pem)
        transport(client_certificate=str(tls.client_cert), client_key=str(key)).send(Request("GET", "https://127.0.0.1:1/"))
    assert info.value.message.startswith(f"cannot use the client certificate {tls.client_cert} with the key {key}: ")


def test_bad_extra_root_certificate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"extra_root_certificates\[0\] is not a usable certificate"):
        transport(extra_root_certificates=(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",)).send(
            Request("GET", "https://127.0.0.1:1/"))


def test_trust_store_system_uses_truststore(serve: ServeFn, tls: _Tls) -> None:
    import truststore

    ctx = HttpSettings(trust_store="system").verify()
    assert isinstance(ctx, truststore.SSLContext)
    srv = serve(lambda req, c, i: (ok(b"system"), False), tls=tls.server_context())
    t = transport(trust_store="system", extra_root_certificates=(tls.ca_pem,))
    assert t.send(Request("GET", srv.url + "/")).content == b"system"
    _http._CONTEXTS.clear()
    with pytest.raises(TLSError, match="was refused"):  # the system store alone does not know the test CA
        transport(trust_store="system").send(Request("GET", srv.url + "/"))


def test_accept_invalid_certificates(serve: ServeFn, tls: _Tls) -> None:
    srv = serve(lambda req, c, i: (ok(b"whatever"), False), tls=tls.server_context())
    assert transport(accept_invalid_certificates=True).send(Request("GET", srv.url + "/")).content == b"whatever"


def test_tls_contexts_are_shared_by_equal_settings() -> None:
    a = HttpSettings(trust_store="openssl").verify()
    assert HttpSettings(trust_store="openssl").verify() is a
    assert HttpSettings(trust_store="openssl", accept_invalid_certificates=True).verify() is not a
    assert a.verify_mode == ssl.CERT_REQUIRED and a.check_hostname


# --- large bodies received into the writer's blocks and written with O_DIRECT ----------------


def _file_writers(tmp_path: Path) -> Iterator[Callable[[bytes], VerifyingWriter]]:
    """Yields a maker of VerifyingWriters over fresh temp files (closed afterwards)."""
    files = []

    def make(payload: bytes) -> VerifyingWriter:
        f = open(tmp_path / f"blob{len(files)}", "w+b")
        files.append(f)
        return VerifyingWriter(f, Digest("sha256", hashlib.sha256(payload).hexdigest()), len(payload),
                               what="test blob", origin="test")

    yield make
    for f in files:
        f.close()


_HAS_ODIRECT = bool(_digest._O_DIRECT)
needs_odirect = pytest.mark.skipif(not _HAS_ODIRECT, reason="O_DIRECT block writes are Linux-only; other systems take the copy path")


@pytest.fixture
def block_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bytes], VerifyingWriter]]:
    """A VerifyingWriter over a temp file on this disk (which takes O_DIRECT), small blocks."""
    monkeypatch.setattr(_digest, "PARALLEL_HASH_MIN", 1)
    monkeypatch.setattr(_digest, "BLOCK", 64 * 1024)
    yield from _file_writers(tmp_path)


def _o_direct_on(f: Any) -> bool:
    import fcntl

    return bool(fcntl.fcntl(f.fileno(), fcntl.F_GETFL) & _digest._O_DIRECT)


def _record_writes(monkeypatch: pytest.MonkeyPatch, w: VerifyingWriter) -> tuple[list[tuple[int, int, bool]], list[int]]:
    """(pwrite calls as (offset, length, O_DIRECT on?), os.write lengths) on ``w``'s file."""
    pwrites: list[tuple[int, int, bool]] = []
    writes: list[int] = []
    real_pwrite, real_write = os.pwrite, os.write

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if fd == w._fd:
            pwrites.append((offset, len(data), _o_direct_on(w.out)))
        return real_pwrite(fd, data, offset)

    def write(fd: int, data: Any) -> int:
        if fd == w._fd:
            writes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "write", write)
    return pwrites, writes


@needs_odirect
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_large_body_goes_into_blocks_written_past_the_page_cache(serve: ServeFn, block_writer: Any, tls: _Tls,
                                                                 monkeypatch: pytest.MonkeyPatch, scheme: str) -> None:
    payload = os.urandom(1_000_000 + 123)  # 15 whole blocks, then an unaligned tail
    srv = serve(lambda req, c, i: (ok(payload), False), tls=tls.server_context() if scheme == "https" else None)
    w = block_writer(payload)
    pwrites, writes = _record_writes(monkeypatch, w)
    t = transport(extra_root_certificates=(tls.ca_pem,))
    resp = t.send(Request("GET", srv.url + "/blob", sink=w))
    w.verify()
    w.close()
    assert resp.status == 200 and resp.content == b"" and resp.received == len(payload)
    assert w.out is not None
    w.out.seek(0)
    assert w.out.read() == payload and w.head == payload[:8]
    assert writes == []  # nothing through the buffered path
    whole = [x for x in pwrites if x[1] == 64 * 1024]
    assert len(whole) == 15 and all(direct for _, _, direct in whole)  # O_DIRECT, block by block
    assert pwrites[-1] == (15 * 64 * 1024, len(payload) - 15 * 64 * 1024, False)  # the tail through the cache
    assert not _o_direct_on(w.out)  # the file is left as it was given
    t.send(Request("GET", srv.url + "/again"))
    assert srv.connections == 1  # framed exactly: the connection was reused


@needs_odirect
def test_chunked_large_body_does_not_use_blocks(serve: ServeFn, block_writer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = os.urandom(300_000)
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(payload) + payload + b"\r\n0\r\n\r\n"
    srv = serve(lambda req, c, i: (raw, False))
    w = block_writer(payload)
    pwrites, writes = _record_writes(monkeypatch, w)
    _fetch_and_check(srv, w, payload)
    assert w._blocks is None and pwrites == [] and sum(writes) == len(payload)


@needs_odirect
def test_blocks_refused_by_the_file_system_fall_back_to_buffered_writes(serve: ServeFn, block_writer: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # tmpfs and some others refuse O_DIRECT when it is switched on: nothing changed, the
    # body goes through the transport's buffers and the writer's ordinary writes
    import fcntl

    payload = os.urandom(300_000)
    srv = serve(lambda req, c, i: (ok(payload), False))
    real = fcntl.fcntl

    def no_direct(fd: int, cmd: int, arg: int = 0) -> Any:
        if cmd == fcntl.F_SETFL and arg & _digest._O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", no_direct)
    w = block_writer(payload)
    pwrites, writes = _record_writes(monkeypatch, w)
    _fetch_and_check(srv, w, payload)
    assert w._blocks is None and pwrites == [] and sum(writes) == len(payload)


@needs_odirect
def test_a_block_write_refused_for_its_alignment_goes_through_the_page_cache(serve: ServeFn, block_writer: Any,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # a device with a larger logical block than a page: EINVAL from the write itself
    payload = os.urandom(500_000)
    srv = serve(lambda req, c, i: (ok(payload), False))
    w = block_writer(payload)
    real = os.pwrite
    refused: list[int] = []

    def picky(fd: int, data: Any, offset: int) -> int:
        if _o_direct_on(w.out):
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", picky)
    _fetch_and_check(srv, w, payload)
    assert refused == [0]  # once; every later block through the page cache


@needs_odirect
def test_block_write_failure_is_a_local_error_and_not_retried(serve: ServeFn, block_writer: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    payload = os.urandom(500_000)
    srv = serve(lambda req, c, i: (ok(payload), False))

    def full(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    w = block_writer(payload)
    with pytest.raises(LocalIOError, match="No space left on device"):
        transport(retries=3).send(Request("GET", srv.url + "/blob", sink=w, on_retry=w.reset))
        w.verify()
    w.close()
    assert len(srv.seen) == 1


@needs_odirect
def test_block_body_that_ends_early_and_a_wrong_digest(serve: ServeFn, block_writer: Any) -> None:
    payload = os.urandom(400_000)
    srv = serve(lambda req, c, i: (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload[:200_000], True))
    w = block_writer(payload)
    with pytest.raises(ShortBody) as info:
        transport()._send_once(Request("GET", srv.url + "/blob", sink=w))
    assert str(info.value) == f"the body ended after 200000 of {len(payload)} bytes"
    w.close()
    w1 = block_writer(payload)
    err = fail_message(transport(), Request("GET", srv.url + "/blob", sink=w1))
    assert err.message == f"connection to {srv.url}/blob broke: the body ended after 200000 of {len(payload)} bytes"
    w1.close()
    other = os.urandom(len(payload))
    srv2 = serve(lambda req, c, i: (ok(other), False))
    w2 = block_writer(payload)
    transport().send(Request("GET", srv2.url + "/blob", sink=w2))
    assert w2._blocks is not None
    with pytest.raises(DigestMismatch):
        w2.verify()
    w2.close()


def _fetch_and_check(srv: ScriptedServer, w: VerifyingWriter, payload: bytes) -> None:
    transport().send(Request("GET", srv.url + "/blob", sink=w))
    w.verify()
    w.close()
    assert w.out is not None
    w.out.seek(0)
    assert w.out.read() == payload


# --- a full disk is the machine's problem, not the network's ---------------------------------


class _FullDisk:
    def write(self, data: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_write_failure_is_a_local_error_and_not_retried(serve: ServeFn) -> None:
    payload = os.urandom(10_000)
    srv = serve(lambda req, c, i: (ok(payload), False))
    w = VerifyingWriter(_FullDisk(), Digest("sha256", hashlib.sha256(payload).hexdigest()), len(payload),  # type: ignore[arg-type]
                        what="test:pkg@1.0.0", origin="test")
    with pytest.raises(LocalIOError) as info:
        transport(retries=3).send(Request("GET", srv.url + "/blob", sink=w))
    assert info.value.message == "cannot write the download of test:pkg@1.0.0 to the cache: No space left on device"
    assert info.value.exit_code == 8 and "--cache-dir" in (info.value.hint or "")
    assert len(srv.seen) == 1  # the disk will not get emptier by downloading again
