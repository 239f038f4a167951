"""The shared, sans-I/O HTTP policy (``_http._policy``: redirects, retries, backoff) and the
pieces around it (``_redirect_target``, ``drive_sync``, single flight, the speed meter,
error mapping, debug lines), driven with scripted outcomes: no sockets, no clocks."""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from typing import Any, Callable, Iterable, Iterator

import pytest

from pkgloader import _http
from pkgloader._errors import ConfigError, LocalIOError, NetworkError, RegistryTimeout, TLSError
from pkgloader._http import (
    MAX_REDIRECTS,
    MAX_RETRY_AFTER,
    TIMEOUT_RETRIES,
    AsyncSingleFlight,
    DeadlineExceeded,
    Request,
    Response,
    SingleFlight,
    SpeedMeter,
    StallTimeout,
    TooSlow,
    _policy,
    _redirect_target,
    drive_sync,
    log_exchange,
    map_transport_error,
)

URL = "https://registry.test/v2/x/blobs/sha256:1"
CDN = "https://cdn.test/b/1?X-Amz-Signature=sig"


def answer(status: int, headers: dict[str, str] | None = None, url: str = URL) -> Response:
    return Response(status, headers or {}, b"", url)


def redirect(req: Request, status: int = 307, location: str = CDN) -> Request:
    target = _redirect_target(req, status, location, req.url)
    assert target is not None
    return target


Outcome = Any  # a Response, a Request (a redirect), an exception, or a callable of the request


def run_policy(req: Request, retries: int, outcomes: Iterable[Outcome]) -> tuple[list[tuple[str, Any]], Response]:
    """Drive ``_policy`` with ``outcomes`` in turn; returns every yielded event and the
    final response (an error the policy raises propagates)."""
    policy = _policy(req, retries)
    events: list[tuple[str, Any]] = []
    it = iter(outcomes)
    try:
        kind, arg = next(policy)
        while True:
            events.append((kind, arg))
            if kind == "sleep":
                kind, arg = next(policy)
                continue
            outcome = next(it)
            if callable(outcome) and not isinstance(outcome, (Response, Request, BaseException)):
                outcome = outcome(arg)
            kind, arg = policy.send(outcome)
    except StopIteration as stop:
        return events, stop.value


def sent(events: list[tuple[str, Any]]) -> list[str]:
    return [arg.url for kind, arg in events if kind == "send"]


def sleeps(events: list[tuple[str, Any]]) -> list[float]:
    return [arg for kind, arg in events if kind == "sleep"]


# --- retries ------------------------------------------------------------------------------------


def test_success_is_returned_at_once() -> None:
    events, resp = run_policy(Request("GET", URL), 3, [answer(200)])
    assert resp.status == 200 and sent(events) == [URL]


def test_connection_errors_are_retried_with_backoff_up_to_retries() -> None:
    events, resp = run_policy(Request("GET", URL), 3, [ConnectionResetError(), ConnectionResetError(), answer(200)])
    assert resp.status == 200 and sent(events) == [URL] * 3
    assert len(sleeps(events)) == 2 and all(0 < s <= 4.0 for s in sleeps(events))
    with pytest.raises(NetworkError) as info:
        run_policy(Request("GET", URL), 2, [ConnectionResetError("reset")] * 3)
    assert info.value.message == f"connection to {URL} broke: reset"


@pytest.mark.parametrize("timeout", [DeadlineExceeded("1 s"), StallTimeout("0.5 s"), TooSlow(10.0, 1024, 30), TimeoutError()])
def test_a_timeout_is_tried_again_once(timeout: TimeoutError) -> None:
    assert TIMEOUT_RETRIES == 1
    attempts: list[str] = []

    def fail(req: Request) -> BaseException:
        attempts.append(req.url)
        return timeout

    with pytest.raises(RegistryTimeout):
        run_policy(Request("GET", URL), 10, [fail] * 10)
    assert attempts == [URL, URL]
    events, resp = run_policy(Request("GET", URL), 10, [timeout, answer(200)])
    assert resp.status == 200


def test_timeouts_are_counted_apart_from_other_failures() -> None:
    events, resp = run_policy(Request("GET", URL), 5, [StallTimeout("1 s"), ConnectionResetError(), ConnectionResetError(),
                                                       answer(200)])
    assert resp.status == 200 and len(sent(events)) == 4
    with pytest.raises(RegistryTimeout, match="sent nothing for 1 s"):  # but the second timeout is the end
        run_policy(Request("GET", URL), 5, [StallTimeout("1 s"), ConnectionResetError(), StallTimeout("1 s"), answer(200)])


def _cert_error() -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get local issuer certificate")
    err.verify_message = "unable to get local issuer certificate"
    return err


def _proxy_refusal() -> OSError:
    exc = OSError("Tunnel connection failed: 407 Proxy Authentication Required")
    exc.pkgloader_proxy = "the proxy http://proxy.test:3128 refused the tunnel to registry.test:443: 407"  # type: ignore[attr-defined]
    return exc


def _tls_error(reason: str) -> ssl.SSLError:
    err = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()}")
    err.reason = reason
    return err


@pytest.mark.parametrize("make, kind", [
    (_cert_error, TLSError),
    (lambda: _tls_error("WRONG_VERSION_NUMBER"), TLSError),
    (lambda: _tls_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"), TLSError),
    (_proxy_refusal, NetworkError),
], ids=["refused-certificate", "tls-setup", "client-certificate", "proxy-refusal"])
def test_failures_a_retry_cannot_mend_are_not_retried(make: Callable[[], BaseException], kind: type) -> None:
    attempts: list[str] = []

    def fail(req: Request) -> BaseException:
        attempts.append(req.url)
        return make()

    with pytest.raises(kind):
        run_policy(Request("GET", URL), 3, [fail] * 4)
    assert attempts == [URL]


def test_a_tls_connection_cut_short_is_retried() -> None:
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    events, resp = run_policy(Request("GET", URL), 3, [eof, answer(200)])
    assert resp.status == 200 and len(sent(events)) == 2


@pytest.mark.parametrize("req", [
    Request("POST", URL, content=b"x"),
    Request("PATCH", URL, content=b"x"),
    Request("PUT", URL, content=iter([b"streamed"])),
    Request("GET", URL, retry=False),
], ids=["POST", "PATCH", "streamed-PUT", "retry-False"])
def test_requests_that_are_not_retried(req: Request) -> None:
    with pytest.raises(NetworkError):
        run_policy(req, 3, [ConnectionResetError()] * 4)
    events, resp = run_policy(req, 3, [answer(503, {"retry-after": "0"}), answer(200)])
    assert resp.status == 503 and len(sent(events)) == 1


def test_idempotent_uploads_of_bytes_are_retried() -> None:
    events, resp = run_policy(Request("PUT", URL, content=b"blob"), 3, [ConnectionResetError(), answer(201)])
    assert resp.status == 201 and len(sent(events)) == 2


def test_retry_statuses_honour_retry_after_and_end_with_the_answer() -> None:
    events, resp = run_policy(Request("GET", URL), 2, [answer(429, {"retry-after": "1.5"}), answer(503), answer(502)])
    assert resp.status == 502 and len(sent(events)) == 3
    assert sleeps(events)[0] == 1.5 and 0 < sleeps(events)[1] <= 4.0
    events, _ = run_policy(Request("GET", URL), 1, [answer(503, {"retry-after": "3600"}), answer(200)])
    assert sleeps(events) == [MAX_RETRY_AFTER]  # a long Retry-After is capped
    events, resp = run_policy(Request("GET", URL), 3, [answer(500), answer(200)])
    assert resp.status == 500 and len(sent(events)) == 1  # 500 is an answer, not a retry


def test_on_retry_is_called_before_each_retry() -> None:
    calls: list[int] = []
    req = Request("GET", URL, on_retry=lambda: calls.append(1))
    run_policy(req, 3, [ConnectionResetError(), answer(503, {"retry-after": "0"}), answer(200)])
    assert calls == [1, 1]


# --- redirects -----------------------------------------------------------------------------------


def test_redirects_are_followed() -> None:
    req = Request("GET", URL, headers={"Authorization": "Bearer t"})
    events, resp = run_policy(req, 3, [redirect, answer(200, url=CDN)])
    assert resp.status == 200 and sent(events) == [URL, CDN]
    assert "Authorization" not in events[1][1].headers and events[1][1].via_status == 307


def test_a_retry_after_a_redirect_starts_from_the_original_request() -> None:
    req = Request("GET", URL)
    events, resp = run_policy(req, 3, [redirect, ConnectionResetError(), redirect, answer(200, url=CDN)])
    assert resp.status == 200 and sent(events) == [URL, CDN, URL, CDN]
    sends = [arg for kind, arg in events if kind == "send"]
    assert sends[0] is req and sends[2] is req  # the original itself: the registry is asked again


@pytest.mark.parametrize("status", [401, 403])
def test_a_redirect_target_refusing_asks_the_registry_again_once(status: int) -> None:
    req = Request("GET", URL)
    events, resp = run_policy(req, 3, [redirect, answer(status, url=CDN), redirect, answer(200, url=CDN)])
    assert resp.status == 200 and sent(events) == [URL, CDN, URL, CDN]
    assert sleeps(events) == []  # at once: a fresh signed URL, not a busy server
    events, resp = run_policy(req, 3, [redirect, answer(status, url=CDN), redirect, answer(status, url=CDN)])
    assert resp.status == status and sent(events) == [URL, CDN, URL, CDN]


def test_a_refusal_from_the_registry_itself_is_the_answer() -> None:
    events, resp = run_policy(Request("GET", URL), 3, [answer(401)])
    assert resp.status == 401 and len(sent(events)) == 1


def test_too_many_redirects() -> None:
    loop = [lambda r: redirect(r, 302, r.url + "x")] * (MAX_REDIRECTS + 1)
    with pytest.raises(NetworkError, match=f"too many redirects from {URL}"):
        run_policy(Request("GET", URL), 0, loop)
    events, resp = run_policy(Request("GET", URL), 0, loop[:MAX_REDIRECTS] + [answer(200)])
    assert resp.status == 200


def test_the_redirect_count_starts_again_with_a_retry() -> None:
    hops: list[Outcome] = [lambda r: redirect(r, 302, r.url + "x")] * MAX_REDIRECTS
    events, resp = run_policy(Request("GET", URL), 1, hops + [ConnectionResetError()] + hops + [answer(200)])
    assert resp.status == 200


def test_redirect_target() -> None:
    req = Request("PUT", URL, {"Authorization": "Bearer t", "X-Other": "1"}, content=b"body", timeout=7, shared="k")
    same = _redirect_target(req, 307, "/v2/elsewhere?x=1", req.url)
    assert same is not None
    assert same.url == "https://registry.test/v2/elsewhere?x=1" and same.method == "PUT" and same.content == b"body"
    assert same.headers == req.headers and same.via_status == 307 and same.timeout == 7 and same.shared == "k"
    other = _redirect_target(req, 308, "https://REGISTRY.test:8443/v2/", req.url)
    assert other is not None and other.headers == {"X-Other": "1"}  # another port is another host
    lower = _redirect_target(Request("GET", URL, {"authorization": "Bearer t"}), 302, CDN, URL)
    assert lower is not None and lower.headers == {}
    see_other = _redirect_target(req, 303, CDN, req.url)
    assert see_other is not None and (see_other.method, see_other.content) == ("GET", None)
    assert _redirect_target(req, 307, None, URL) is None
    assert _redirect_target(req, 200, CDN, URL) is None
    assert _redirect_target(Request("GET", URL, follow_redirects=False), 307, CDN, URL) is None


# --- drive_sync ---------------------------------------------------------------------------------------


def test_drive_sync_maps_errors() -> None:
    def unsendable(req: Request) -> Response:
        raise ValueError("Invalid header value b'a\\r\\nb'")

    with pytest.raises(NetworkError) as info:
        drive_sync(Request("GET", URL), unsendable, 3, None)
    assert info.value.message == f"cannot send GET {URL}: Invalid header value b'a\\r\\nb'"

    calls: list[int] = []

    def config_error(req: Request) -> Response:
        calls.append(1)
        raise ConfigError("cannot use the client certificate /nope.pem: No such file or directory")

    with pytest.raises(ConfigError, match="cannot use the client certificate"):  # itself, not "cannot send"
        drive_sync(Request("GET", URL), config_error, 3, None)

    def disk_full(req: Request) -> Response:
        calls.append(1)
        raise LocalIOError("cannot write the download")

    with pytest.raises(LocalIOError):
        drive_sync(Request("GET", URL), disk_full, 3, None)
    assert calls == [1, 1]  # neither is retried


def test_drive_sync_tells_the_observer_which_request_was_answered() -> None:
    seen: list[tuple[str, int]] = []
    answers = iter([redirect(Request("GET", URL)), answer(200, url=CDN)])
    resp = drive_sync(Request("GET", URL), lambda req: next(answers), 0, lambda req, r: seen.append((req.url, r.status)))
    assert resp.status == 200 and seen == [(CDN, 200)]


# --- single flight ------------------------------------------------------------------------------------


def test_single_flight_threads() -> None:
    flights = SingleFlight()
    gate = threading.Event()
    calls: list[int] = []

    def call() -> Response:
        calls.append(1)
        gate.wait(5)
        return answer(200)

    results: list[Response] = []
    threads = [threading.Thread(target=lambda: results.append(flights.run("k", call))) for _ in range(8)]
    for th in threads:
        th.start()
    while len(flights._flights) == 0:
        pass
    gate.set()
    for th in threads:
        th.join(5)
    assert calls == [1] and len(results) == 8 and all(r is results[0] for r in results)
    assert flights.run("k", call) is results[0]  # just answered: shared with a late caller too
    assert flights.run("other", call) is not results[0] and calls == [1, 1]


def test_single_flight_answer_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_http, "SHARE_WINDOW", -1.0)
    flights = SingleFlight()
    a = flights.run("k", lambda: answer(200))
    b = flights.run("k", lambda: answer(201))
    assert (a.status, b.status) == (200, 201)


def test_single_flight_error_is_not_kept() -> None:
    flights = SingleFlight()

    def boom() -> Response:
        raise NetworkError("down")

    with pytest.raises(NetworkError):
        flights.run("k", boom)
    assert flights.run("k", lambda: answer(200)).status == 200


def test_async_single_flight() -> None:
    async def main() -> None:
        flights = AsyncSingleFlight()
        calls: list[int] = []
        gate = asyncio.Event()

        async def call() -> Response:
            calls.append(1)
            await gate.wait()
            return answer(200)

        tasks = [asyncio.ensure_future(flights.run("k", call)) for _ in range(8)]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*tasks)
        assert calls == [1] and all(r is results[0] for r in results)

        async def boom() -> Response:
            calls.append(1)
            await asyncio.sleep(0.01)
            raise NetworkError("down")

        failing = [asyncio.ensure_future(flights.run("e", boom)) for _ in range(4)]
        outcomes = await asyncio.gather(*failing, return_exceptions=True)
        assert all(isinstance(o, NetworkError) for o in outcomes) and calls == [1, 1]
        assert (await flights.run("e", call)).status == 200  # a later call asks again
        assert calls == [1, 1, 1]

    asyncio.run(main())


# --- the speed meter ------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Clock]:
    c = _Clock()
    monkeypatch.setattr(_http, "time", c)
    yield c


def test_speed_meter(clock: _Clock) -> None:
    m = SpeedMeter(1000, 2.0)
    for _ in range(3):  # 1250 bytes/s, window after window: fine
        clock.now += 2.0
        m.add(2500)
    clock.now += 1.0
    m.add(100)  # the window is not over yet
    clock.now += 1.0
    with pytest.raises(TooSlow) as info:
        m.add(100)  # 200 bytes in 2 s
    assert str(info.value) == "100 bytes/s, below 1000 bytes/s for 2 s"
    off = SpeedMeter(0, 1.0)
    clock.now += 100
    off.add(1)  # 0: off


# --- error mapping and debug lines ----------------------------------------------------------------


@pytest.mark.parametrize("exc, message", [
    (DeadlineExceeded("30 s"), f"{URL} did not answer completely within 30 s"),
    (StallTimeout("30 s"), f"{URL} sent nothing for 30 s"),
    (TooSlow(12.4, 1024, 30), f"download from {URL} was too slow: 12 bytes/s, below 1024 bytes/s for 30 s"),
    (TimeoutError("timed out"), f"timed out talking to {URL}"),
    (ConnectionResetError(104, "Connection reset by peer"), f"connection to {URL} broke: Connection reset by peer"),
    (BrokenPipeError(32, "Broken pipe"), f"connection to {URL} broke: Broken pipe"),
])
def test_map_transport_error(exc: BaseException, message: str) -> None:
    err = map_transport_error(exc, URL)
    assert err.message == message and err.exit_code == 6


def test_map_transport_error_redacts_the_url() -> None:
    err = map_transport_error(StallTimeout("1 s"), "https://user:pw@registry.test/t?token=abc&scope=x")
    assert err.message == "https://registry.test/t?token=REDACTED&scope=x sent nothing for 1 s"


def test_connect_failure_and_refused_certificate() -> None:
    exc = ConnectionRefusedError(111, "Connection refused")
    exc.pkgloader_connecting = True  # type: ignore[attr-defined]
    assert map_transport_error(exc, URL).message == f"cannot connect to {URL}: Connection refused"
    cert = _cert_error()
    cert.pkgloader_peer = ("CN=registry.test", "CN=Some CA")  # type: ignore[attr-defined]
    err = map_transport_error(cert, URL)
    assert isinstance(err, TLSError)
    assert err.message == "the TLS certificate of registry.test was refused: unable to get local issuer certificate"
    assert err.details == [f"while requesting {URL}", "certificate subject: CN=registry.test",
                           "certificate issuer:  CN=Some CA"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_log_exchange_lines() -> None:
    lg = logging.getLogger("pkgloader.http")
    handler, old = _Lines(), lg.level
    lg.addHandler(handler)
    lg.setLevel(logging.DEBUG)
    try:
        req = Request("GET", "https://registry.test/v2/x?token=abc", {"Authorization": "Bearer sekrit"})
        log_exchange(req, Response(200, {}, b"xy", req.url, "HTTP/1.1", 2), 0.0123)
        target = redirect(req, 307, CDN)
        log_exchange(req, target, 0.002)
        log_exchange(target, StallTimeout("1 s"), 1.0)
        log_exchange(req, ConnectionResetError("reset by https://u:pw@registry.test/?password=x"), 0.0)
        lg.setLevel(logging.INFO)
        log_exchange(req, Response(200, {}, b"", req.url), 0.0)  # not at DEBUG: nothing
    finally:
        lg.removeHandler(handler)
        lg.setLevel(old)
    assert handler.lines == [
        "GET https://registry.test/v2/x?token=REDACTED -> 200 HTTP/1.1, 2 bytes, 12 ms",
        "GET https://registry.test/v2/x?token=REDACTED -> 307 redirect to https://cdn.test/b/1?<query hidden>, 2 ms",
        "GET https://cdn.test/b/1?<query hidden> -> failed after 1000 ms: StallTimeout: 1 s",
        "GET https://registry.test/v2/x?token=REDACTED -> failed after 0 ms: "
        "ConnectionResetError: reset by https://registry.test/?password=REDACTED",
    ]
