"""pkgloader's own HTTP/1.1 client (``_stdhttp``) against a scripted socket server.

The registry tests exercise it end to end against the real distribution registry; these
cover the framing and failure cases a well-behaved server does not produce: chunked bodies
with extensions and trailers, interim 1xx responses, bodies that run to the end of the
connection, bodies that end early, garbage status lines, stale keep-alive connections.
"""

from __future__ import annotations

import socket
import threading
from typing import Callable, Iterator

import pytest

from pkgloader._errors import NetworkError
from pkgloader._http import BodyTooLarge, HttpSettings, Request, map_transport_error
from pkgloader._stdhttp import ProtocolError, ServerClosed, ShortBody, StdTransport, _split_http_url


class Seen:
    def __init__(self, head: bytes, body: bytes) -> None:
        self.head = head
        self.body = body
        lines = head.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        self.headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}


# respond(request, connection number, request number on that connection) -> (raw bytes, close after?)
Script = Callable[[Seen, int, int], tuple[bytes, bool]]


class ScriptedServer:
    """Accepts connections on loopback and answers each request with raw bytes."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.seen: list[Seen] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn, self.connections), daemon=True).start()

    def _handle(self, conn: socket.socket, number: int) -> None:
        buf = b""
        index = 0
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(65536)
                    except ConnectionResetError:  # the client gave up on a body it did not read
                        return
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                seen = Seen(head, b"")
                if "content-length" in seen.headers:
                    n = int(seen.headers["content-length"])
                    while len(buf) < n:
                        buf += conn.recv(65536)
                    seen.body, buf = buf[:n], buf[n:]
                elif seen.headers.get("transfer-encoding") == "chunked":
                    body = b""
                    while True:
                        while b"\r\n" not in buf:
                            buf += conn.recv(65536)
                        size_line, buf = buf.split(b"\r\n", 1)
                        size = int(size_line, 16)
                        while len(buf) < size + 2:
                            buf += conn.recv(65536)
                        body, buf = body + buf[:size], buf[size + 2:]
                        if size == 0:
                            break
                    seen.body = body
                self.seen.append(seen)
                raw, close = self.script(seen, number, index)
                index += 1
                try:
                    conn.sendall(raw)
                except OSError:  # the client hung up mid-answer (a test about that)
                    return
                if close:
                    conn.shutdown(socket.SHUT_RDWR)
                    return


@pytest.fixture
def serve() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        s = ScriptedServer(script)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def transport(**kw: object) -> StdTransport:
    return StdTransport(HttpSettings(retries=0, timeout=5, connect_timeout=5, **kw))  # type: ignore[arg-type]


def test_keep_alive_reuses_one_connection(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda req, c, i: (ok(f"answer {i}".encode()), False))
    t = transport()
    assert [t.send(Request("GET", f"{srv.url}/v2/{n}")).content for n in range(3)] == [b"answer 0", b"answer 1", b"answer 2"]
    assert srv.connections == 1
    first = srv.seen[0]
    assert first.request_line == "GET /v2/0 HTTP/1.1"
    assert first.headers["host"] == f"127.0.0.1:{srv.port}"
    assert first.headers["user-agent"].startswith("pkgloader/")
    assert first.headers["accept-encoding"] == "identity"


def test_chunked_body_with_extensions_and_trailers(serve) -> None:  # type: ignore[no-untyped-def]
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n")
    srv = serve(lambda req, c, i: (raw, False))
    t = transport()
    assert t.send(Request("GET", srv.url + "/a")).content == b"hello world"
    got: list[bytes] = []
    t.send(Request("GET", srv.url + "/b", sink=lambda chunk: got.append(bytes(chunk))))
    assert b"".join(got) == b"hello world"
    assert srv.connections == 1  # the chunked body was framed exactly: the connection was reused


def test_body_until_close_and_no_reuse(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda req, c, i: (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 100_000, True))
    t = transport()
    assert t.send(Request("GET", srv.url + "/1")).content == b"x" * 100_000
    assert t.send(Request("GET", srv.url + "/2")).content == b"x" * 100_000
    assert srv.connections == 2


def test_interim_responses_are_skipped(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda req, c, i: (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                                   + ok(b"done"), False))
    resp = transport().send(Request("GET", srv.url + "/"))
    assert (resp.status, resp.content) == (200, b"done")
    assert "link" not in resp.headers


def test_repeated_headers_are_joined(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda req, c, i: (ok(b"", "WWW-Authenticate: Basic realm=a", "www-authenticate: Bearer realm=b"), False))
    resp = transport().send(Request("GET", srv.url + "/"))
    assert resp.header("WWW-Authenticate") == "Basic realm=a, Bearer realm=b"


def test_body_shorter_than_content_length(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda req, c, i: (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 40, True))
    with pytest.raises(ShortBody) as raw:
        transport()._send_once(Request("GET", srv.url + "/blob", sink=lambda chunk: None))
    assert str(raw.value) == "the body ended after 40 of 100 bytes"
    with pytest.raises(NetworkError) as info:  # what the user sees (after the retries)
        transport().send(Request("GET", srv.url + "/blob", sink=lambda chunk: None))
    assert info.value.message == f"connection to {srv.url}/blob broke: the body ended after 40 of 100 bytes"
    assert info.value.exit_code == 6


def test_truncated_chunked_body(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda req, c, i: (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n12345", True))
    with pytest.raises(ShortBody, match="the body ended after 5 bytes, before its announced end"):
        transport()._send_once(Request("GET", srv.url + "/"))


@pytest.mark.parametrize("raw, message", [
    (b"SPDY/3 200 OK\r\n\r\n", "not an HTTP/1.1 status line"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.1 status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed response header"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello", "invalid Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "the connection ended"),
])
def test_malformed_answers(serve, raw: bytes, message: str) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda req, c, i: (raw, True))
    with pytest.raises(ProtocolError, match=message):
        transport()._send_once(Request("GET", srv.url + "/"))
    with pytest.raises(NetworkError, match=f"connection to {srv.url}/ broke: {message}"):
        transport().send(Request("GET", srv.url + "/"))


def test_closed_without_answer(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda req, c, i: (b"", True))
    with pytest.raises(ServerClosed):
        transport()._send_once(Request("GET", srv.url + "/"))
    with pytest.raises(NetworkError) as info:
        transport().send(Request("GET", srv.url + "/"))
    assert info.value.message == f"connection to {srv.url}/ broke: the server closed the connection without answering"


def test_stale_pooled_connection_is_replaced_once(serve) -> None:  # type: ignore[no-untyped-def]
    # the server closes after each answer without saying so (an idle timeout, a restart)
    srv = serve(lambda req, c, i: (ok(f"conn {c}".encode()), True))
    t = transport()
    assert t.send(Request("GET", srv.url + "/1")).content == b"conn 1"
    assert t.send(Request("GET", srv.url + "/2")).content == b"conn 2"
    assert srv.connections == 2


def test_stale_pooled_connection_is_not_replayed_for_a_streamed_upload(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda req, c, i: (ok(b"ok"), True))
    t = transport()
    t.send(Request("GET", srv.url + "/warm-up"))
    with pytest.raises((ServerClosed, BrokenPipeError, ConnectionResetError)):
        t._send_once(Request("PUT", srv.url + "/upload", content=iter([b"a", b"b"]), retry=False))
    assert [s.request_line for s in srv.seen] == ["GET /warm-up HTTP/1.1"]


def test_head_and_204_have_no_body(serve) -> None:  # type: ignore[no-untyped-def]
    def script(req: Seen, c: int, i: int) -> tuple[bytes, bool]:
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


def test_uploads_with_length_and_chunked(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda req, c, i: (b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", False))
    t = transport()
    big = bytes(range(256)) * 1024  # larger than one send buffer
    t.send(Request("PUT", srv.url + "/bytes", content=big))
    t.send(Request("PUT", srv.url + "/stream", content=iter([b"ab", b"", b"cd"])))
    t.send(Request("PUT", srv.url + "/sized", headers={"Content-Length": "4"}, content=iter([b"wx", b"yz"])))
    t.send(Request("POST", srv.url + "/empty"))
    by_path = {s.request_line.split()[1]: s for s in srv.seen}
    assert by_path["/bytes"].body == big and by_path["/bytes"].headers["content-length"] == str(len(big))
    assert by_path["/stream"].body == b"abcd" and by_path["/stream"].headers["transfer-encoding"] == "chunked"
    assert by_path["/sized"].body == b"wxyz" and "transfer-encoding" not in by_path["/sized"].headers
    assert by_path["/empty"].headers["content-length"] == "0"


def test_large_body_streams_to_the_sink_in_bounded_chunks(serve) -> None:  # type: ignore[no-untyped-def]
    payload = bytes(range(256)) * (12 * 1024)  # 3 MiB
    srv = serve(lambda req, c, i: (ok(payload), False))
    sizes: list[int] = []
    parts: list[bytes] = []

    def sink(chunk: memoryview) -> None:
        sizes.append(len(chunk))
        parts.append(bytes(chunk))

    resp = transport().send(Request("GET", srv.url + "/blob", sink=sink))  # type: ignore[arg-type]
    assert resp.content == b"" and b"".join(parts) == payload
    assert max(sizes) <= 1 << 20


def test_body_over_the_limit_is_refused(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda req, c, i: (ok(b"z" * 2000), False))
    with pytest.raises(BodyTooLarge):
        transport().send(Request("GET", srv.url + "/manifest", max_body=1000))
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" + b"z" * 2000 + b"\r\n0\r\n\r\n"
    srv2 = serve(lambda req, c, i: (chunked, False))
    with pytest.raises(BodyTooLarge):
        transport().send(Request("GET", srv2.url + "/manifest", max_body=1000))


def test_redirect_on_the_same_host_reuses_the_connection(serve) -> None:  # type: ignore[no-untyped-def]
    def script(req: Seen, c: int, i: int) -> tuple[bytes, bool]:
        if req.request_line.startswith("GET /old"):
            return b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /new\r\nContent-Length: 5\r\n\r\nmoved", False
        return ok(b"here"), False

    srv = serve(script)
    resp = transport().send(Request("GET", srv.url + "/old", headers={"Authorization": "Bearer t"}))
    assert (resp.status, resp.content, resp.url) == (200, b"here", srv.url + "/new")
    assert srv.seen[1].headers["authorization"] == "Bearer t"  # same host: credentials kept
    assert srv.connections == 1


def test_header_injection_is_refused(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(lambda req, c, i: (ok(b""), False))
    with pytest.raises(ValueError, match="line break"):
        transport().send(Request("GET", srv.url + "/", headers={"X-Evil": "a\r\nInjected: 1"}))
    assert srv.seen == []


def test_connection_refused_is_a_connect_error() -> None:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(OSError) as raw:
        transport()._send_once(Request("GET", f"http://127.0.0.1:{port}/v2/"))
    err = map_transport_error(raw.value, f"http://127.0.0.1:{port}/v2/")
    assert err.message.startswith(f"cannot connect to http://127.0.0.1:{port}/v2/")
    assert err.hint == "check the registry name and that it is reachable"


@pytest.mark.parametrize("url, expected", [
    ("http://example.test/v2/", ("example.test", 80, "/v2/")),
    ("http://example.test:5000", ("example.test", 5000, "/")),
    ("http://127.0.0.1:5000/v2/a/b/tags/list?n=100&last=x", ("127.0.0.1", 5000, "/v2/a/b/tags/list?n=100&last=x")),
    ("http://[::1]:8080/x#frag", ("::1", 8080, "/x")),
    ("http://[::1]/x", ("::1", 80, "/x")),
    ("http://user:pw@host.test:81/p", ("host.test", 81, "/p")),
    ("http://host.test?q=1", ("host.test", 80, "/?q=1")),
])
def test_split_http_url(url: str, expected: tuple[str, int, str]) -> None:
    assert _split_http_url(url) == expected


def test_split_http_url_refuses_other_schemes_and_bad_ports() -> None:
    with pytest.raises(ValueError, match="only speaks http"):
        _split_http_url("https://example.test/")
    with pytest.raises(ValueError, match="invalid port"):
        _split_http_url("http://example.test:abc/")


# --- large bodies spliced straight into the download's file ---------------------------------

import errno  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402

from pkgloader import _digest, _stdhttp  # noqa: E402
from pkgloader._digest import Digest, VerifyingWriter  # noqa: E402
from pkgloader._errors import DigestMismatch, LocalIOError  # noqa: E402
from pkgloader._http import HttpSettings as _Settings  # noqa: E402


def _file_writers(tmp_path):  # type: ignore[no-untyped-def]
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


@pytest.fixture
def direct_writer(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A VerifyingWriter over a temp file, in the mode that allows direct writes (splice:
    block mode, which would be taken first, is switched off)."""
    monkeypatch.setattr(_digest, "PARALLEL_HASH_MIN", 1)
    monkeypatch.setattr(_digest, "_O_DIRECT", 0)
    yield from _file_writers(tmp_path)


def _count_splices(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    calls: list[int] = []
    real = os.splice

    def counting(*a, **kw):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(os, "splice", counting)
    return calls


@pytest.mark.skipif(not _stdhttp._SPLICE, reason="splice is Linux-only; other systems take the copy path")
def test_large_body_is_spliced_into_the_file_and_verified(serve, direct_writer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(9 << 20)
    srv = serve(lambda req, c, i: (ok(payload), False))
    calls = _count_splices(monkeypatch)
    w = direct_writer(payload)
    t = StdTransport(_Settings(retries=0))
    resp = t.send(Request("GET", srv.url + "/blob", sink=w))
    w.verify()
    w.close()
    assert resp.status == 200 and resp.content == b""
    w.out.seek(0)
    assert w.out.read() == payload and w.written == len(payload) and w.head == payload[:8]
    assert len(calls) >= 2  # socket -> pipe -> file
    # the body was framed exactly: the connection goes back to the pool
    t.send(Request("GET", srv.url + "/again"))
    assert srv.connections == 1


@pytest.mark.skipif(not _stdhttp._SPLICE, reason="splice is Linux-only")
def test_spliced_body_that_ends_early(serve, direct_writer) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(3 << 20)
    srv = serve(lambda req, c, i: (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload[:1 << 20], True))
    w = direct_writer(payload)
    with pytest.raises(ShortBody, match=f"of {len(payload)} bytes"):
        StdTransport(_Settings(retries=0))._send_once(Request("GET", srv.url + "/blob", sink=w))
    w.close()


@pytest.mark.skipif(not _stdhttp._SPLICE, reason="splice is Linux-only")
def test_splice_into_an_unsupported_file_system_falls_back_to_writes(serve, direct_writer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(5 << 20)
    srv = serve(lambda req, c, i: (ok(payload), False))
    real = os.splice

    def no_file_splice(src, dst, count, offset_src=None, offset_dst=None, flags=0):  # type: ignore[no-untyped-def]
        if offset_dst is not None:
            raise OSError(22, "Invalid argument")  # what splice says for a file system without it
        return real(src, dst, count, flags=flags)

    monkeypatch.setattr(os, "splice", no_file_splice)
    _fetch_and_check(srv, direct_writer(payload), payload)


@pytest.mark.skipif(not _stdhttp._SPLICE, reason="splice is Linux-only")
def test_no_splice_from_the_socket_reads_the_ordinary_way(serve, direct_writer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(5 << 20)
    srv = serve(lambda req, c, i: (ok(payload), False))

    def refuse(*a, **kw):  # type: ignore[no-untyped-def]
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "splice", refuse)
    _fetch_and_check(srv, direct_writer(payload), payload)


# --- large bodies received into the writer's blocks and written with O_DIRECT ----------------

_HAS_ODIRECT = bool(_digest._O_DIRECT)


@pytest.fixture
def block_writer(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A VerifyingWriter over a temp file on this disk (which takes O_DIRECT), small blocks."""
    monkeypatch.setattr(_digest, "PARALLEL_HASH_MIN", 1)
    monkeypatch.setattr(_digest, "BLOCK", 64 * 1024)
    yield from _file_writers(tmp_path)


def _o_direct_on(f) -> bool:  # type: ignore[no-untyped-def]
    import fcntl

    return bool(fcntl.fcntl(f.fileno(), fcntl.F_GETFL) & _digest._O_DIRECT)


@pytest.mark.skipif(not _HAS_ODIRECT, reason="O_DIRECT block writes are Linux-only; other systems take the copy path")
def test_large_body_goes_into_blocks_written_past_the_page_cache(serve, block_writer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(1_000_000 + 123)  # 15 whole blocks, then an unaligned tail
    srv = serve(lambda req, c, i: (ok(payload), False))
    w = block_writer(payload)
    written: list[tuple[int, int, bool]] = []
    real = os.pwrite

    def recording(fd, data, offset):  # type: ignore[no-untyped-def]
        written.append((offset, len(data), _o_direct_on(w.out)))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", recording)
    calls = _count_splices(monkeypatch)
    t = StdTransport(_Settings(retries=0))
    resp = t.send(Request("GET", srv.url + "/blob", sink=w))
    w.verify()
    w.close()
    assert resp.status == 200 and resp.content == b""
    w.out.seek(0)
    assert w.out.read() == payload and w.head == payload[:8]
    assert calls == []  # no splice: the blocks were the way
    whole = [x for x in written if x[1] == 64 * 1024]
    assert len(whole) == 15 and all(direct for _, _, direct in whole)  # O_DIRECT, block by block
    assert written[-1] == (15 * 64 * 1024, len(payload) - 15 * 64 * 1024, False)  # the tail through the cache
    assert not _o_direct_on(w.out)  # the file is left as it was given
    t.send(Request("GET", srv.url + "/again"))
    assert srv.connections == 1  # framed exactly: the connection was reused


@pytest.mark.skipif(not _HAS_ODIRECT, reason="O_DIRECT block writes are Linux-only")
def test_blocks_refused_by_the_file_system_fall_back_to_splice(serve, block_writer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # tmpfs and some others refuse O_DIRECT when it is switched on: nothing changed, next way
    import fcntl

    payload = os.urandom(300_000)
    srv = serve(lambda req, c, i: (ok(payload), False))
    real = fcntl.fcntl

    def no_direct(fd, cmd, arg=0):  # type: ignore[no-untyped-def]
        if cmd == fcntl.F_SETFL and arg & _digest._O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", no_direct)
    calls = _count_splices(monkeypatch)
    w = block_writer(payload)
    _fetch_and_check(srv, w, payload)
    assert w._blocks is None and len(calls) >= 2


@pytest.mark.skipif(not _HAS_ODIRECT, reason="O_DIRECT block writes are Linux-only")
def test_a_block_write_refused_for_its_alignment_goes_through_the_page_cache(serve, block_writer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # a device with a larger logical block than a page: EINVAL from the write itself
    payload = os.urandom(500_000)
    srv = serve(lambda req, c, i: (ok(payload), False))
    w = block_writer(payload)
    real = os.pwrite

    def picky(fd, data, offset):  # type: ignore[no-untyped-def]
        if _o_direct_on(w.out):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", picky)
    _fetch_and_check(srv, w, payload)


@pytest.mark.skipif(not _HAS_ODIRECT, reason="O_DIRECT block writes are Linux-only")
def test_block_write_failure_is_a_local_error_and_not_retried(serve, block_writer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(500_000)
    srv = serve(lambda req, c, i: (ok(payload), False))

    def full(fd, data, offset):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    w = block_writer(payload)
    with pytest.raises(LocalIOError, match="No space left on device"):
        StdTransport(_Settings(retries=3)).send(Request("GET", srv.url + "/blob", sink=w))
        w.verify()
    w.close()
    assert len(srv.seen) == 1


@pytest.mark.skipif(not _HAS_ODIRECT, reason="O_DIRECT block writes are Linux-only")
def test_block_body_that_ends_early_and_a_wrong_digest(serve, block_writer) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(400_000)
    srv = serve(lambda req, c, i: (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload[:200_000], True))
    w = block_writer(payload)
    with pytest.raises(ShortBody, match=f"of {len(payload)} bytes"):
        StdTransport(_Settings(retries=0))._send_once(Request("GET", srv.url + "/blob", sink=w))
    w.close()
    other = os.urandom(len(payload))
    srv2 = serve(lambda req, c, i: (ok(other), False))
    w2 = block_writer(payload)
    StdTransport(_Settings(retries=0)).send(Request("GET", srv2.url + "/blob", sink=w2))
    with pytest.raises(DigestMismatch):
        w2.verify()
    w2.close()


def _fetch_and_check(srv: ScriptedServer, w: VerifyingWriter, payload: bytes) -> None:
    StdTransport(_Settings(retries=0)).send(Request("GET", srv.url + "/blob", sink=w))
    w.verify()
    w.close()
    assert w.out is not None
    w.out.seek(0)
    assert w.out.read() == payload


@pytest.mark.skipif(not _stdhttp._SPLICE, reason="splice is Linux-only")
def test_spliced_body_that_stalls_times_out(direct_writer) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(2 << 20)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held: list[socket.socket] = []

    def stall() -> None:
        conn, _ = listener.accept()
        held.append(conn)
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload[:100_000])

    threading.Thread(target=stall, daemon=True).start()
    w = direct_writer(payload)
    try:
        with pytest.raises(TimeoutError):
            StdTransport(_Settings(retries=0, timeout=0.5))._send_once(
                Request("GET", f"http://127.0.0.1:{port}/blob", sink=w))
    finally:
        w.close()
        listener.close()
        for c in held:
            c.close()


def test_ipv6_literal_host_header() -> None:
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.fail("this machine has no IPv6 loopback; the test needs ::1")
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            seen.append(data)
            conn.sendall(ok(b"v6"))

    threading.Thread(target=answer, daemon=True).start()
    try:
        resp = transport().send(Request("GET", f"http://[::1]:{port}/v2/"))
    finally:
        listener.close()
    assert resp.content == b"v6"
    assert f"\r\nHost: [::1]:{port}\r\n".encode() in seen[0]


# --- a full disk is the machine's problem, not the network's ---------------------------------


class _FullDisk:
    def write(self, data: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_write_failure_is_a_local_error_and_not_retried(serve) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(10_000)
    srv = serve(lambda req, c, i: (ok(payload), False))
    w = VerifyingWriter(_FullDisk(), Digest("sha256", hashlib.sha256(payload).hexdigest()), len(payload),  # type: ignore[arg-type]
                        what="test:pkg@1.0.0", origin="test")
    with pytest.raises(LocalIOError) as info:
        StdTransport(_Settings(retries=3)).send(Request("GET", srv.url + "/blob", sink=w))
    assert info.value.message == "cannot write the download of test:pkg@1.0.0 to the cache: No space left on device"
    assert info.value.exit_code == 8 and "--cache-dir" in (info.value.hint or "")
    assert len(srv.seen) == 1  # the disk will not get emptier by downloading again


@pytest.mark.skipif(not _stdhttp._SPLICE, reason="splice is Linux-only")
def test_spliced_write_failure_is_a_local_error(serve, direct_writer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(5 << 20)
    srv = serve(lambda req, c, i: (ok(payload), False))
    real = os.splice

    def disk_full(src, dst, count, offset_src=None, offset_dst=None, flags=0):  # type: ignore[no-untyped-def]
        if offset_dst is not None:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, count, flags=flags)

    monkeypatch.setattr(os, "splice", disk_full)
    w = direct_writer(payload)
    with pytest.raises(LocalIOError, match="No space left on device"):
        StdTransport(_Settings(retries=3)).send(Request("GET", srv.url + "/blob", sink=w))
    w.close()
    assert len(srv.seen) == 1
