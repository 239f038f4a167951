"""Regressions of the http.client transport found by the integration tests, each pinned
with a server that produces the exact timing that exposed it."""

from __future__ import annotations

import socket
import threading

import pytest

from pkgloader._errors import RegistryError
from pkgloader._http import BodyTooLarge, HttpSettings, Request
from pkgloader._stdhttp import StdTransport


def _server(answer: list[bytes], *, pause: float = 0.2) -> tuple[socket.socket, str]:
    """Answers one request per connection with the pieces of ``answer``, ``pause`` seconds
    apart (so the body arrives in a segment of its own), then closes."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            for piece in answer:
                conn.sendall(piece)
                stop.wait(pause)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.getsockname()[1]}"


@pytest.mark.parametrize("sink", [False, True])
@pytest.mark.parametrize("head", [b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
                                  b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n",
                                  b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"])
def test_a_body_after_the_head_of_a_closing_response_is_read(head: bytes, sink: bool) -> None:
    """http.client closes the connection as soon as the head of a response that ends with it
    is read; the body must still be readable (the socket was closed under the reader: EBADF)."""
    srv, url = _server([head, b"hello"])
    got: list[bytes] = []
    try:
        t = StdTransport(HttpSettings(retries=0, timeout=5, stall_timeout=5))
        resp = t.send(Request("GET", url + "/x", sink=(lambda c: got.append(bytes(c))) if sink else None))
    finally:
        srv.close()
    assert (b"".join(got) if sink else resp.content) == b"hello"


def test_an_oversized_answer_is_a_registry_error_naming_url_and_limit() -> None:
    srv, url = _server([b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000], pause=0)
    try:
        with pytest.raises(BodyTooLarge) as info:
            StdTransport(HttpSettings(retries=0)).send(Request("GET", url + "/v2/a/b/tags/list", max_body=4096))
    finally:
        srv.close()
    assert isinstance(info.value, RegistryError) and info.value.exit_code == 6
    assert info.value.code == "answer-too-large"
    assert info.value.message == f"the answer from {url}/v2/a/b/tags/list is larger than 4 KiB; refusing to read it"


def test_deeply_nested_json_is_malformed_json_everywhere(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """100,000 '[' in a docker config.json used to end in RecursionError (exit 1)."""
    from pkgloader._config import Config
    from pkgloader._credentials import clear_cache, find_credentials
    from pkgloader._errors import PkgLoaderError
    from pkgloader._http import Response

    with pytest.raises(ValueError, match="nested too deeply"):
        Response(200, {}, b"[" * 100_000, "http://x/").json()
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text("[" * 100_000)
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    clear_cache()
    with pytest.raises(PkgLoaderError) as info:
        find_credentials(Config.builtin(), "example.test", "example.test")
    assert info.value.exit_code == 2 and "nested too deeply" in info.value.render()
