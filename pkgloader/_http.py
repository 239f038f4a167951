"""HTTP plumbing shared by every backend: sans-I/O requests, the sync and async drivers,
retries, TLS set-up, error mapping and URL redaction.

Protocol logic is written once as a *flow*: a generator that yields :class:`Request`
objects and is sent back :class:`Response` objects. :class:`SyncTransport` and
:class:`AsyncTransport` drive flows over one pooled ``httpx`` client per transport; the
sync client sends plain ``http://`` requests through ``_stdhttp`` instead (sockets only).
``httpx`` is imported lazily so that cached (warm) paths never import the HTTP stack.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterable, Mapping, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ._errors import NetworkError, PkgLoaderError, RegistryTimeout, TLSError
from ._log import get_logger

if TYPE_CHECKING:  # pragma: no cover
    import ssl

log = get_logger()

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
MAX_RETRY_AFTER = 30.0
USER_AGENT = "pkgloader"


def user_agent() -> str:
    from ._version import __version__

    return f"{USER_AGENT}/{__version__}"


# ---------------------------------------------------------------------------------------
# request / response values


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | Iterable[bytes] | None = None
    #: when set, the body is streamed into this callable chunk by chunk instead of
    #: being read into ``Response.content`` (used for blobs; the sink hashes and writes).
    #: A chunk may be a view of a buffer the transport reuses: it stays valid until the
    #: sink returns from its ``HASH_IN_FLIGHT``-th next call (see ``_digest``), no longer
    sink: Callable[[bytes], None] | None = None
    #: cap on the body size read into memory (manifests, JSON); exceeding it raises
    max_body: int | None = 16 * 1024 * 1024
    #: follow redirects (the driver strips Authorization when the host changes)
    follow_redirects: bool = True
    #: called before a retry of a streamed request so the sink can reset its state
    on_retry: Callable[[], None] | None = None
    retry: bool = True
    #: overall timeout for this request (seconds); None uses the transport's
    timeout: float | None = None


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    content: bytes
    url: str
    http_version: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        import json

        return json.loads(self.content)


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


Flow = Generator[Request, Response, T]


# ---------------------------------------------------------------------------------------
# helpers


def is_loopback_host(host: str) -> bool:
    import ipaddress

    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(authority: str) -> str:
    """``host[:port]`` -> host (brackets kept off IPv6)."""
    if authority.startswith("["):
        return authority[1 : authority.index("]")]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


_SECRET_QUERY = re.compile(r"(?i)(token|access_token|password|secret|signature|sig|x-amz-[a-z-]+|key)=[^&]*")


def redact_url(url: str) -> str:
    """Drop userinfo and secret-looking query values from a URL for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=REDACTED", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def make_ssl_context(extra_root_certificates: Iterable[bytes] = (), accept_invalid_certificates: bool = False) -> ssl.SSLContext | bool:
    """A verifying SSL context with the system roots plus any extra PEM/DER roots."""
    import ssl

    if accept_invalid_certificates:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    extra = list(extra_root_certificates)
    if not extra:
        return True
    ctx = ssl.create_default_context()
    for i, cert in enumerate(extra):
        try:
            if cert.lstrip().startswith(b"-----BEGIN"):
                ctx.load_verify_locations(cadata=cert.decode())
            else:
                ctx.load_verify_locations(cadata=cert)
        except (ssl.SSLError, ValueError) as exc:
            from ._errors import ConfigError

            raise ConfigError(
                f"extra_root_certificates[{i}] is not a usable certificate: {getattr(exc, 'reason', None) or exc}",
                hint="paste the CA's whole PEM block (or base64 DER with encoding = \"der\")",
            ) from None
    return ctx


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    from email.utils import parsedate_to_datetime

    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    import random

    return min(0.2 * (2**attempt), 4.0) * (0.5 + random.random() / 2)


def map_transport_error(exc: BaseException, url: str) -> NetworkError:
    """A transport exception (httpx's or the standard library's) as a pkgloader error."""
    import ssl

    safe = redact_url(url)
    text = str(exc)
    name = type(exc).__name__
    timeout_kind = None
    if type(exc).__module__.startswith("httpx"):
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            timeout_kind = {
                httpx.ConnectTimeout: "connecting to",
                httpx.ReadTimeout: "reading from",
                httpx.WriteTimeout: "writing to",
                httpx.PoolTimeout: "waiting for a connection to",
            }.get(type(exc), "talking to")
        connect_error = isinstance(exc, httpx.ConnectError)
        broken = isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError))
    else:
        if isinstance(exc, TimeoutError):
            timeout_kind = "talking to"
        connect_error = isinstance(exc, OSError) and getattr(exc, "pkgloader_connecting", False)
        broken = isinstance(exc, OSError) or _is_http_client_error(exc)
    if timeout_kind is not None:
        return RegistryTimeout(
            f"timed out {timeout_kind} {safe}",
            hint="check the network, or raise [pkgloader] timeout / connect_timeout",
        )
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            reason = getattr(cause, "reason", None) or str(cause)
            return TLSError(
                f"TLS handshake with {safe} failed: {reason}",
                hint=(
                    "if the registry uses a private CA, add it with extra_root_certificates under "
                    "[registry.\"NAME\".oci]; for a plain-HTTP registry set protocol = \"http\""
                ),
            )
        cause = cause.__cause__ or cause.__context__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return TLSError(f"TLS error talking to {safe}: {text}")
    if connect_error:
        return NetworkError(
            f"cannot connect to {safe}: {text or name}",
            hint="check the registry name and that it is reachable",
        )
    if broken:
        return NetworkError(f"connection to {safe} broke: {_broken_reason(exc, text or name)}", hint="retry")
    return NetworkError(f"HTTP error talking to {safe}: {text or name}")


def _is_http_client_error(exc: BaseException) -> bool:
    """An ``http.client`` exception (only if something imported it: pkgloader does not)."""
    import sys

    mod = sys.modules.get("http.client")
    return mod is not None and isinstance(exc, mod.HTTPException)


def _broken_reason(exc: BaseException, text: str) -> str:
    """One wording for the same failure, whichever HTTP stack saw it (pkgloader's own
    transport words its errors this way already)."""
    m = re.search(r"received (\d+) bytes, expected (\d+)", text)
    if m:
        return f"the body ended after {m.group(1)} of {m.group(2)} bytes"
    if "Server disconnected without sending" in text:
        return "the server closed the connection without answering"
    return text


@dataclass
class HttpSettings:
    timeout: float = 30.0
    connect_timeout: float = 10.0
    retries: int = 3
    extra_root_certificates: tuple[bytes, ...] = ()
    accept_invalid_certificates: bool = False
    http2: bool = True
    max_connections: int = 16
    _verify: Any = None

    def verify(self) -> ssl.SSLContext | bool:  # noqa: F821 (annotation only)
        """The TLS verification setting, built on first use (plain-HTTP never pays for it)."""
        if self._verify is None:
            self._verify = make_ssl_context(self.extra_root_certificates, self.accept_invalid_certificates)
        return self._verify


def _client_kwargs(settings: HttpSettings) -> dict[str, Any]:
    import httpx

    return {
        "timeout": httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        "verify": settings.verify(),
        "http2": settings.http2,
        "limits": httpx.Limits(max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections),
        "follow_redirects": False,
        "trust_env": False,
        "headers": {"User-Agent": user_agent()},
    }


def _should_retry(req: Request, attempt: int, retries: int) -> bool:
    return req.retry and req.method in IDEMPOTENT and attempt < retries and (req.content is None or isinstance(req.content, bytes))


def _redirect_target(req: Request, status: int, location: str | None, url: str) -> Request | None:
    if status not in (301, 302, 303, 307, 308) or not req.follow_redirects or not location:
        return None
    from urllib.parse import urljoin

    new_url = urljoin(url, location)
    headers = dict(req.headers)
    if urlsplit(new_url).netloc.lower() != urlsplit(req.url).netloc.lower():
        # another host (blob storage): never forward the registry's credentials
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    method = "GET" if status == 303 else req.method
    return Request(method, new_url, headers, req.content if method != "GET" else None, req.sink, req.max_body,
                   True, req.on_retry, req.retry, req.timeout)


def is_transport_error(exc: BaseException) -> bool:
    """A connection-level failure (retryable for idempotent requests), from either stack."""
    if isinstance(exc, OSError) or _is_http_client_error(exc):
        return True
    if type(exc).__module__.startswith("httpx"):
        import httpx

        return isinstance(exc, httpx.TransportError)
    return False


def drive_sync(req: Request, send_once: Callable[[Request], Response | Request], retries: int,
               observer: Observer | None) -> Response:
    """Run the shared policy for one logical request with a blocking ``send_once``."""
    policy = _policy(req, retries)
    try:
        kind, arg = next(policy)
        while True:
            if kind == "sleep":
                time.sleep(arg)
                kind, arg = next(policy)
                continue
            try:
                outcome: Any = send_once(arg)
            except Exception as exc:  # noqa: BLE001 - only transport errors go to the policy
                if not is_transport_error(exc):
                    raise
                outcome = exc
            kind, arg = policy.send(outcome)
    except StopIteration as stop:
        resp: Response = stop.value
    if observer:
        observer(arg, resp)  # arg: the request that was answered
    return resp


def run_sync(flow: Flow[T], transport: Callable[[], Any]) -> T:
    """Drive ``flow``; ``transport`` is called only if the flow makes a request, so a flow
    answered from the cache never opens a connection (or imports httpx)."""
    try:
        req = next(flow)
        t = transport()
        while True:
            try:
                resp = t.send(req)
            except (PkgLoaderError, BodyTooLarge) as exc:
                req = flow.throw(exc)
                continue
            req = flow.send(resp)
    except StopIteration as stop:
        return stop.value


async def run_async(flow: Flow[T], transport: Callable[[], AsyncTransport]) -> T:
    """The async twin of :func:`run_sync`."""
    try:
        req = next(flow)
        t = transport()
        while True:
            try:
                resp = await t.send(req)
            except (PkgLoaderError, BodyTooLarge) as exc:
                req = flow.throw(exc)
                continue
            req = flow.send(resp)
    except StopIteration as stop:
        return stop.value


MAX_REDIRECTS = 10


def _policy(req: Request, retries: int) -> Generator[tuple[str, Any], Any, Response]:
    """Redirects, retries and backoff for one logical request, sans-I/O.

    Yields ``("send", request)`` (answered with a Response, a redirect Request, or the
    transport's exception) and ``("sleep", seconds)``; returns the final Response."""
    attempt = 0
    redirects = 0
    while True:
        outcome = yield ("send", req)
        if isinstance(outcome, BaseException):
            if not _should_retry(req, attempt, retries):
                raise map_transport_error(outcome, req.url) from None
            delay = backoff_delay(attempt, None)
            log.debug("retrying %s %s after %s (%.2fs)", req.method, redact_url(req.url), type(outcome).__name__, delay)
        elif isinstance(outcome, Request):
            redirects += 1
            if redirects > MAX_REDIRECTS:
                raise NetworkError(f"too many redirects from {redact_url(req.url)}")
            req = outcome
            continue
        elif outcome.status in RETRY_STATUSES and _should_retry(req, attempt, retries):
            delay = backoff_delay(attempt, parse_retry_after(outcome.header("retry-after")))
            log.debug("retrying %s %s after HTTP %d (%.2fs)", req.method, redact_url(req.url), outcome.status, delay)
        else:
            return outcome
        attempt += 1
        if req.on_retry:
            req.on_retry()
        yield ("sleep", delay)


_USE_DEFAULT: Any = None  # set lazily to httpx's USE_CLIENT_DEFAULT
Observer = Callable[[Request, Response], None]


class SyncTransport:
    """Drives flows over one pooled ``httpx.Client``."""

    def __init__(self, settings: HttpSettings | None = None, *, observer: Observer | None = None) -> None:
        import httpx

        global _USE_DEFAULT
        _USE_DEFAULT = httpx.USE_CLIENT_DEFAULT
        self.settings = settings or HttpSettings()
        self._client = httpx.Client(**_client_kwargs(self.settings))
        self.observer = observer

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SyncTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, flow: Flow[T]) -> T:
        """Drive ``flow`` to completion; transport errors are thrown into the flow."""
        return run_sync(flow, lambda: self)

    def send(self, req: Request) -> Response:
        """One logical request: redirects, retries and backoff as the shared policy says."""
        return drive_sync(req, self._send_once, self.settings.retries, self.observer)

    def _send_once(self, req: Request) -> Response | Request:
        client = self._client
        request = client.build_request(req.method, req.url, headers=req.headers, content=req.content,
                                       timeout=req.timeout if req.timeout is not None else _USE_DEFAULT)
        resp = client.send(request, stream=True)
        try:
            target = _redirect_target(req, resp.status_code, resp.headers.get("location"), str(resp.url))
            if target is not None:
                return target
            headers = {k.lower(): v for k, v in resp.headers.items()}
            if req.sink is not None and 200 <= resp.status_code < 300:
                encoded = headers.get("content-encoding", "identity") != "identity"
                for chunk in (resp.iter_bytes(1 << 20) if encoded else resp.iter_raw(1 << 20)):
                    req.sink(chunk)
                body = b""
            else:
                body = _read_capped(resp.iter_bytes(), req.max_body)
            return Response(resp.status_code, headers, body, str(resp.url), resp.http_version)
        finally:
            resp.close()


def _read_capped(chunks: Iterable[bytes], limit: int | None) -> bytes:
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if limit is not None and len(buf) > limit:
            raise BodyTooLarge(limit)
    return bytes(buf)


class AsyncTransport:
    """Drives flows over one pooled ``httpx.AsyncClient``."""

    def __init__(self, settings: HttpSettings | None = None, *, observer: Observer | None = None) -> None:
        import httpx

        global _USE_DEFAULT
        _USE_DEFAULT = httpx.USE_CLIENT_DEFAULT
        self.settings = settings or HttpSettings()
        self._client = httpx.AsyncClient(**_client_kwargs(self.settings))
        self.observer = observer

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run(self, flow: Flow[T]) -> T:
        """Drive ``flow`` to completion; transport errors are thrown into the flow."""
        return await run_async(flow, lambda: self)

    async def send(self, req: Request) -> Response:
        """The async twin of :meth:`SyncTransport.send`, over the same policy."""
        import asyncio

        import httpx

        policy = _policy(req, self.settings.retries)
        try:
            kind, arg = next(policy)
            while True:
                if kind == "sleep":
                    await asyncio.sleep(arg)
                    kind, arg = next(policy)
                    continue
                try:
                    outcome: Any = await self._send_once(arg)
                except httpx.HTTPError as exc:
                    outcome = exc
                kind, arg = policy.send(outcome)
        except StopIteration as stop:
            resp: Response = stop.value
        if self.observer:
            self.observer(arg, resp)
        return resp

    async def _send_once(self, req: Request) -> Response | Request:
        client = self._client
        content = req.content
        request = client.build_request(req.method, req.url, headers=req.headers, content=content,
                                       timeout=req.timeout if req.timeout is not None else _USE_DEFAULT)
        resp = await client.send(request, stream=True)
        try:
            target = _redirect_target(req, resp.status_code, resp.headers.get("location"), str(resp.url))
            if target is not None:
                return target
            headers = {k.lower(): v for k, v in resp.headers.items()}
            if req.sink is not None and 200 <= resp.status_code < 300:
                encoded = headers.get("content-encoding", "identity") != "identity"
                async for chunk in (resp.aiter_bytes(1 << 20) if encoded else resp.aiter_raw(1 << 20)):
                    req.sink(chunk)
                body = b""
            else:
                buf = bytearray()
                async for chunk in resp.aiter_bytes():
                    buf += chunk
                    if req.max_body is not None and len(buf) > req.max_body:
                        raise BodyTooLarge(req.max_body)
                body = bytes(buf)
            return Response(resp.status_code, headers, body, str(resp.url), resp.http_version)
        finally:
            await resp.aclose()
