"""HTTP plumbing shared by every backend: sans-I/O requests, the sync and async drivers,
retries, TLS set-up, timeouts, single-flight requests, debug lines, error mapping and URL
redaction.

Protocol logic is written once as a *flow*: a generator that yields :class:`Request`
objects and is sent back :class:`Response` objects. The sync client drives flows over
``_stdhttp.StdTransport`` (the standard library's ``http.client`` over ``ssl``, for
``http://`` and ``https://``); :class:`AsyncTransport` drives them over ``httpx``
(HTTP/1.1). Both run the same policy (:func:`_policy`: redirects, retries, backoff). HTTP/2
is not used: for blob bodies it is slower (pure-Python frame handling, ~0.9 s of CPU per
100 MiB in httpx/h2, measured), and for the few small requests of a fetch it saves nothing
measurable over pooled HTTP/1.1 keep-alive connections. Nothing here imports an HTTP stack
until a request is made, so cached (warm) paths never load one.
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterable, Mapping, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ._frozen import FACTORY, Frozen, Record, init_field
from ._lazyre import LazyPattern
from ._errors import NetworkError, PkgLoaderError, RegistryError, RegistryTimeout, TLSError
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


class Request(Record):
    __fields__ = (
        "method", "url", "headers", "content", "sink", "max_body", "follow_redirects", "on_retry", "retry", "timeout",
        "via_status", "shared", "tls"
    )
    method: str
    url: str
    headers: dict[str, str]
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
    #: total deadline for this request (seconds); None uses the transport's ``timeout``
    timeout: float | None = None
    #: the status of the redirect that led here (0: not a redirect target)
    via_status: int = 0
    #: requests with the same key that run at the same time share one exchange (tokens)
    shared: Any = None
    #: TLS settings of this request's endpoint when they are not the transport's (a mirror
    #: with TLS keys of its own); kept across redirects
    tls: TlsSettings | None = None

    def __init__(self, method: str, url: str, headers: dict[str, str] = FACTORY,
                 content: bytes | Iterable[bytes] | None = None, sink: Callable[[bytes], None] | None = None,
                 max_body: int | None = 16 * 1024 * 1024, follow_redirects: bool = True,
                 on_retry: Callable[[], None] | None = None, retry: bool = True, timeout: float | None = None,
                 via_status: int = 0, shared: Any = None, tls: TlsSettings | None = None) -> None:
        self.method = method
        self.url = url
        self.headers = dict() if headers is FACTORY else headers
        self.content = content
        self.sink = sink
        self.max_body = max_body
        self.follow_redirects = follow_redirects
        self.on_retry = on_retry
        self.retry = retry
        self.timeout = timeout
        self.via_status = via_status
        self.shared = shared
        self.tls = tls


class Response(Record):
    __fields__ = ("status", "headers", "content", "url", "http_version", "received")
    status: int
    headers: Mapping[str, str]
    content: bytes
    url: str
    http_version: str = "HTTP/1.1"
    #: body bytes received (also for a body streamed to a sink)
    received: int = 0

    def __init__(self, status: int, headers: Mapping[str, str], content: bytes, url: str, http_version: str = "HTTP/1.1",
                 received: int = 0) -> None:
        self.status = status
        self.headers = headers
        self.content = content
        self.url = url
        self.http_version = http_version
        self.received = received

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when malformed, deep nesting included)."""
        from ._json import load_json

        return load_json(self.content)


class BodyTooLarge(RegistryError):
    """An answer larger than the request's ``max_body``: refused unread. Flows that know
    what they asked for reword it (a manifest, a token); anywhere else it reaches the user
    as this error (exit 6), naming the URL and the limit."""

    code = "answer-too-large"

    def __init__(self, limit: int, url: str = "") -> None:
        where = f"the answer from {redact_url(url)}" if url else "an answer"
        super().__init__(
            f"{where} is larger than {_size_text(limit)}; refusing to read it",
            hint="the registry is serving something other than what was asked for; report it to its operator",
        )
        self.limit = limit
        self.url = url


def _size_text(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n} bytes"


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


_SECRET_QUERY = LazyPattern(r"(?i)(token|access_token|password|secret|signature|sig|x-amz-[a-z-]+|key)=[^&]*")


def redact_url(url: str) -> str:
    """Drop userinfo and secret-looking query values from a URL for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=REDACTED", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _load_extra_roots(ctx: ssl.SSLContext, extra: Iterable[bytes]) -> None:
    import ssl

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


def _hashed_dir(path: str) -> bool:
    """Whether ``path`` is a directory of OpenSSL subject-hash names (``1a2b3c4d.0``), as
    ``c_rehash`` / ``update-ca-certificates`` make them."""
    import os

    try:
        with os.scandir(path) as it:
            for entry in it:
                name = entry.name
                if len(name) >= 10 and name[8] == "." and name[9:].isdigit() \
                        and all(c in "0123456789abcdef" for c in name[:8]):
                    return True
    except OSError:
        return False
    return False


def _same_file(a: str, b: str | None) -> bool:
    import os

    try:
        return b is not None and os.path.samefile(a, b)
    except OSError:
        return False


def _lazy_openssl_context() -> ssl.SSLContext | None:
    """OpenSSL's default store as a hashed directory looked up as needed, or None where it
    cannot stand in for the default store.

    Loading the default store parses the whole system bundle in every new process (~40 ms for
    ~140 CAs); a handshake needs one or two of them, which OpenSSL finds by subject hash in the
    system's certificate directory. Used only when ``SSL_CERT_FILE`` is unset or names that
    same default bundle and the directory (``SSL_CERT_DIR`` or OpenSSL's default) holds hash
    links. The context is marked ``pkgloader_lazy``: a certificate it cannot verify is tried
    once more with the whole default store (``_stdhttp``), so nothing the default store trusts
    is refused, and nothing else is trusted."""
    import os
    import ssl

    paths = ssl.get_default_verify_paths()
    env_file = os.environ.get(paths.openssl_cafile_env)
    if env_file and not _same_file(env_file, paths.openssl_cafile):
        return None  # a bundle of the user's own: read whole, as asked
    capath = os.environ.get(paths.openssl_capath_env) or paths.openssl_capath
    if not capath or os.pathsep in capath or not _hashed_dir(capath):
        return None
    ctx = ssl.create_default_context(capath=capath)
    ctx.pkgloader_lazy = True  # type: ignore[attr-defined]
    return ctx


def _base_context(trust_store: str, lazy: bool = False) -> ssl.SSLContext:
    """A verifying client context over the trust store ``trust_store`` names.

    ``openssl``: OpenSSL's default store (on Linux the system's CA bundle; ``SSL_CERT_FILE``
    and ``SSL_CERT_DIR`` are honoured by OpenSSL itself). ``system``: the operating system's
    verifier through the ``truststore`` package (macOS Keychain, Windows certificate store),
    as pip does. ``auto``: ``openssl`` where OpenSSL has a store or the variables are set,
    else ``system`` when ``truststore`` is installed, else certifi's bundle. ``lazy``: the
    OpenSSL store through :func:`_lazy_openssl_context` where it can be."""
    import os
    import ssl

    if trust_store == "auto":
        paths = ssl.get_default_verify_paths()
        env_set = bool(os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"))
        if env_set or paths.cafile or paths.capath or os.name == "nt":
            trust_store = "openssl"
        else:
            try:
                import truststore  # noqa: F401
                trust_store = "system"
            except ImportError:
                import certifi

                return ssl.create_default_context(cafile=certifi.where())
    if trust_store == "system":
        try:
            import truststore
        except ImportError:
            from ._errors import ConfigError

            raise ConfigError(
                'trust_store = "system" needs the truststore package, which is not installed',
                hint="pip install 'pkgloader[truststore]', or set trust_store = \"openssl\"",
            ) from None
        ctx: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return ctx
    if lazy:
        found = _lazy_openssl_context()
        if found is not None:
            return found
    return ssl.create_default_context()


def make_ssl_context(extra_root_certificates: Iterable[bytes] = (), accept_invalid_certificates: bool = False, *,
                     trust_store: str = "auto", client_certificate: str | None = None,
                     client_key: str | None = None, lazy: bool = False) -> ssl.SSLContext:
    """The client TLS context: the trust store plus any extra PEM/DER roots, an optional
    client certificate (mutual TLS), HTTP/1.1 by ALPN."""
    import ssl

    if accept_invalid_certificates:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = _base_context(trust_store, lazy)
        _load_extra_roots(ctx, extra_root_certificates)
    if client_certificate:
        try:
            ctx.load_cert_chain(client_certificate, client_key or None)
        except (OSError, ssl.SSLError, ValueError) as exc:
            from ._errors import ConfigError

            what = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
            raise ConfigError(
                f"cannot use the client certificate {client_certificate}"
                + (f" with the key {client_key}" if client_key else "") + f": {what}",
                hint="client_certificate and client_key name PEM files; the key must belong to the certificate "
                     "(or be in the certificate file when client_key is not set)",
            ) from None
    try:
        ctx.set_alpn_protocols(["http/1.1"])
    except (NotImplementedError, AttributeError):  # pragma: no cover - old OpenSSL
        pass
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


class StallTimeout(TimeoutError):
    """No byte arrived for ``stall_timeout`` seconds."""

    kind = "stall"


class DeadlineExceeded(TimeoutError):
    """A request with a small body did not finish within its total ``timeout``."""

    kind = "deadline"


class TooSlow(TimeoutError):
    """A body arrived slower than ``low_speed_limit`` for ``low_speed_time`` seconds."""

    kind = "slow"

    def __init__(self, rate: float, limit: int, seconds: float) -> None:
        super().__init__(f"{rate:.0f} bytes/s, below {limit} bytes/s for {seconds:g} s")
        self.rate, self.limit, self.seconds = rate, limit, seconds


def _cert_refused(exc: BaseException) -> BaseException | None:
    """The ``ssl.SSLCertVerificationError`` in ``exc``'s chain, if any."""
    import ssl

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def _tls_refusal(cause: BaseException, safe: str, host: str) -> TLSError:
    reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or str(cause)
    details = [f"while requesting {safe}"]
    peer = getattr(cause, "pkgloader_peer", None)
    if peer:
        details += [f"certificate subject: {peer[0]}", f"certificate issuer:  {peer[1]}"]
    return TLSError(
        f"the TLS certificate of {host} was refused: {reason}",
        details=details,
        hint=(
            f"if {host} uses a private CA, add the CA with extra_root_certificates under "
            f"[registry.\"{host}\".oci] or point SSL_CERT_FILE at it (trust_store = \"system\" uses the "
            "operating system's store)"
        ),
    )


def map_transport_error(exc: BaseException, url: str) -> NetworkError:
    """A transport exception (httpx's or the standard library's) as a pkgloader error."""
    import ssl

    safe = redact_url(url)
    text = str(exc)
    name = type(exc).__name__
    timeout_kind = None
    host = urlsplit(url).netloc.rsplit("@", 1)[-1]
    if isinstance(exc, TooSlow):
        return RegistryTimeout(
            f"download from {safe} was too slow: {exc}",
            hint="check the network; [pkgloader] low_speed_limit / low_speed_time set the limit (0 turns it off)",
        )
    if isinstance(exc, DeadlineExceeded):
        return RegistryTimeout(
            f"{safe} did not answer completely within {text}",
            hint="check the network and the registry, or raise [pkgloader] timeout",
        )
    if isinstance(exc, StallTimeout):
        return RegistryTimeout(
            f"{safe} sent nothing for {text}",
            hint="check the network and the registry, or raise [pkgloader] stall_timeout",
        )
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
        if isinstance(exc, httpx.ProxyError):
            return NetworkError(f"the proxy refused the connection to {safe}: {text or name}",
                                hint="check the proxy settings (HTTPS_PROXY, NO_PROXY, [pkgloader] proxy)")
    else:
        connecting = getattr(exc, "pkgloader_connecting", False)
        if isinstance(exc, TimeoutError):
            timeout_kind = "connecting to" if connecting else "talking to"
        connect_error = isinstance(exc, OSError) and connecting
        broken = isinstance(exc, OSError) or _is_http_client_error(exc)
    proxy_msg = getattr(exc, "pkgloader_proxy", None)
    if proxy_msg:
        return NetworkError(f"{proxy_msg} (for {safe})",
                            hint="check the proxy settings (HTTPS_PROXY, HTTP_PROXY, NO_PROXY, [pkgloader] proxy)")
    if timeout_kind is not None:
        return RegistryTimeout(
            f"timed out {timeout_kind} {safe}",
            hint="check the network, or raise [pkgloader] connect_timeout / stall_timeout",
        )
    refused = _cert_refused(exc)
    if refused is not None:
        return _tls_refusal(refused, safe, host)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            reason = getattr(cause, "reason", None) or str(cause)
            client_cert = _CLIENT_CERT_ALERTS.get(reason)
            if client_cert is not None:
                return TLSError(
                    f"TLS handshake with {safe} failed: {client_cert} ({reason})",
                    hint="set client_certificate (and client_key) under [registry.\"NAME\".oci], or SSL_CLIENT_CERT, "
                         "to a certificate the registry accepts",
                )
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
            f"cannot connect to {safe}: {_os_reason(exc, text or name)}",
            hint="check the registry name and that it is reachable",
        )
    if broken:
        return NetworkError(f"connection to {safe} broke: {_broken_reason(exc, text or name)}", hint="retry")
    return NetworkError(f"HTTP error talking to {safe}: {text or name}")


def unsendable(req: Request, exc: BaseException) -> NetworkError:
    """A request that cannot be sent as it is (a redirect to an unsupported scheme, an
    invalid URL or header from the registry's answers): an error, never retried."""
    return NetworkError(
        f"cannot send {req.method} {redact_url(req.url)}: {redact_text(str(exc)) or type(exc).__name__}",
        hint="the registry's answers led to a request pkgloader cannot make; report it to the registry's operator",
    )


#: TLS alerts from the server about the client certificate (mutual TLS)
_CLIENT_CERT_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server refused the client certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the server refused the client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the server refused the client certificate",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "the server refused the client certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the server refused the client certificate",
}


def _os_reason(exc: BaseException, text: str) -> str:
    strerror = getattr(exc, "strerror", None)
    return strerror if isinstance(strerror, str) and strerror else text


def _is_http_client_error(exc: BaseException) -> bool:
    """An ``http.client`` exception."""
    import sys

    mod = sys.modules.get("http.client")
    return mod is not None and isinstance(exc, mod.HTTPException)


def _broken_reason(exc: BaseException, text: str) -> str:
    """One wording for the same failure, whichever HTTP stack saw it."""
    import sys

    hc = sys.modules.get("http.client")
    if hc is not None:
        if isinstance(exc, hc.IncompleteRead):
            if exc.expected is not None:
                return f"the body ended after {len(exc.partial)} of {len(exc.partial) + exc.expected} bytes"
            return f"the body ended after {len(exc.partial)} bytes, before its announced end"
        if isinstance(exc, hc.RemoteDisconnected):
            return "the server closed the connection without answering"
        if isinstance(exc, hc.LineTooLong):
            return f"not a valid HTTP/1.1 answer: a line is too long ({text})"
        if isinstance(exc, hc.BadStatusLine):
            return f"not an HTTP/1.1 answer: the status line is {str(getattr(exc, 'line', text)).strip()[:80]!r}"
        if isinstance(exc, hc.UnknownProtocol):
            return f"not an HTTP/1.1 answer: the status line starts with {text[:20]!r}"
        if isinstance(exc, hc.HTTPException):
            return f"not a valid HTTP/1.1 answer: {text[:200] or type(exc).__name__}"
    m = re.search(r"received (\d+) bytes, expected (\d+)", text)
    if m:
        return f"the body ended after {m.group(1)} of {m.group(2)} bytes"
    if "Server disconnected without sending" in text:
        return "the server closed the connection without answering"
    return _os_reason(exc, text)  # "Connection reset by peer", not "[Errno 104] Connection reset by peer"


class HttpSettings(Record):
    """How to talk to one registry. Timeouts (seconds):

    * ``connect_timeout``: TCP connect, proxy tunnel and TLS handshake together;
    * ``timeout``: total deadline for a request whose body is read into memory (manifests,
      tag pages, tokens, metadata) and for the response head of a download;
    * ``stall_timeout``: no byte received for this long while a request is under way;
    * ``low_speed_limit`` / ``low_speed_time``: a download slower than the limit (bytes/s)
      for that long fails (like curl's ``--speed-limit`` / ``--speed-time``; 0 = off).
    """

    __fields__ = (
        "timeout", "connect_timeout", "retries", "extra_root_certificates", "accept_invalid_certificates",
        "max_connections", "stall_timeout", "low_speed_limit", "low_speed_time", "trust_store", "client_certificate",
        "client_key", "proxies", "_verify"
    )
    timeout: float = 30.0
    connect_timeout: float = 10.0
    retries: int = 3
    extra_root_certificates: tuple[bytes, ...] = ()
    accept_invalid_certificates: bool = False
    max_connections: int = 16
    stall_timeout: float = 30.0
    low_speed_limit: int = 1024
    low_speed_time: float = 30.0
    trust_store: str = "auto"
    client_certificate: str | None = None
    client_key: str | None = None
    proxies: Any = None  # a _proxy.ProxySettings, or None for no proxy
    _verify: Any = None

    def __init__(self, timeout: float = 30.0, connect_timeout: float = 10.0, retries: int = 3,
                 extra_root_certificates: tuple[bytes, ...] = (), accept_invalid_certificates: bool = False,
                 max_connections: int = 16, stall_timeout: float = 30.0, low_speed_limit: int = 1024,
                 low_speed_time: float = 30.0, trust_store: str = "auto", client_certificate: str | None = None,
                 client_key: str | None = None, proxies: Any = None, _verify: Any = None) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.extra_root_certificates = extra_root_certificates
        self.accept_invalid_certificates = accept_invalid_certificates
        self.max_connections = max_connections
        self.stall_timeout = stall_timeout
        self.low_speed_limit = low_speed_limit
        self.low_speed_time = low_speed_time
        self.trust_store = trust_store
        self.client_certificate = client_certificate
        self.client_key = client_key
        self.proxies = proxies
        self._verify = _verify

    def verify(self, tls: TlsSettings | None = None, *, lazy: bool = False) -> ssl.SSLContext:  # noqa: F821
        """The TLS context, built on first use (plain-HTTP never pays for it) and shared by
        every transport with the same TLS settings; ``tls``: an endpoint's own TLS settings
        (a mirror's) instead of these, with this trust store. ``lazy``: the system store may
        be a hashed directory looked up as needed (see ``_lazy_openssl_context``); a caller
        that asks for it handles ``pkgloader_lazy`` refusals with :meth:`unlazy`."""
        if tls is None and not lazy and self._verify is not None:
            return self._verify
        t = self if tls is None else tls
        key = self._context_key(tls, lazy)
        ctx = _CONTEXTS.get(key)
        if ctx is None:
            ctx = _CONTEXTS[key] = make_ssl_context(
                t.extra_root_certificates, t.accept_invalid_certificates, trust_store=self.trust_store,
                client_certificate=t.client_certificate, client_key=t.client_key, lazy=lazy)
        if tls is None and not lazy:
            self._verify = ctx
        return ctx

    def unlazy(self, tls: TlsSettings | None = None) -> ssl.SSLContext:  # noqa: F821
        """After a lazy context could not verify a certificate: the context over the whole
        default store, from now on also for ``verify(lazy=True)``."""
        full = _CONTEXTS[self._context_key(tls, True)] = self.verify(tls)
        return full

    def _context_key(self, tls: TlsSettings | None, lazy: bool) -> tuple[Any, ...]:
        """What a TLS context depends on: the endpoint's TLS settings, the trust store, ``lazy``."""
        t = self if tls is None else tls
        return (t.extra_root_certificates, t.accept_invalid_certificates, self.trust_store, t.client_certificate,
                t.client_key, lazy)


_CONTEXTS: dict[Any, Any] = {}


class TlsSettings(Frozen):
    """The TLS settings of one endpoint that has its own (a mirror table's TLS keys)."""

    __fields__ = ("extra_root_certificates", "accept_invalid_certificates", "client_certificate", "client_key")
    extra_root_certificates: tuple[bytes, ...] = ()
    accept_invalid_certificates: bool = False
    client_certificate: str | None = None
    client_key: str | None = None

    def __init__(self, extra_root_certificates: tuple[bytes, ...] = (), accept_invalid_certificates: bool = False,
                 client_certificate: str | None = None, client_key: str | None = None) -> None:
        init_field(self, "extra_root_certificates", extra_root_certificates)
        init_field(self, "accept_invalid_certificates", accept_invalid_certificates)
        init_field(self, "client_certificate", client_certificate)
        init_field(self, "client_key", client_key)


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
                   True, req.on_retry, req.retry, req.timeout, via_status=status, shared=req.shared, tls=req.tls)


def is_transport_error(exc: BaseException) -> bool:
    """A connection-level failure (retryable for idempotent requests), from either stack."""
    if isinstance(exc, OSError) or _is_http_client_error(exc):
        return True
    if type(exc).__module__.startswith("httpx"):
        import httpx

        return isinstance(exc, httpx.TransportError)
    return False


def _not_retried(exc: BaseException) -> bool:
    """Failures that a second try cannot mend: a refused certificate, a TLS set-up error,
    a proxy that refuses the tunnel."""
    import ssl

    if getattr(exc, "pkgloader_proxy", None):
        return True
    if _cert_refused(exc) is not None:
        return True
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    if type(exc).__module__.startswith("httpx"):
        import httpx

        return isinstance(exc, httpx.TimeoutException)
    return False


# ---------------------------------------------------------------------------------------
# debug output: one line per request and response (logger ``pkgloader.http``)

http_log = get_logger("pkgloader.http")


def log_exchange(req: Request, outcome: Any, elapsed: float) -> None:
    """``GET https://host/v2/... -> 200 HTTP/1.1, 1234 bytes, 12 ms`` (URLs redacted; the
    query of a redirect to another host, a signed URL, is never shown)."""
    if not http_log._live():
        return
    url = _log_url(req)
    ms = elapsed * 1000
    if isinstance(outcome, Request):
        http_log.debug("%s %s -> %d redirect to %s, %.0f ms", req.method, url, outcome.via_status,
                       _log_url(outcome), ms)
    elif isinstance(outcome, Response):
        http_log.debug("%s %s -> %d %s, %d bytes, %.0f ms", req.method, url, outcome.status, outcome.http_version,
                       outcome.received, ms)
    else:
        http_log.debug("%s %s -> failed after %.0f ms: %s", req.method, url, ms,
                       f"{type(outcome).__name__}: {redact_text(str(outcome))}")


def _log_url(req: Request) -> str:
    if req.via_status:  # a redirect target: another host's signed URL; its query is a credential
        parts = urlsplit(req.url)
        return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path,
                           "<query hidden>" if parts.query else "", ""))
    return redact_url(req.url)


_URL_IN_TEXT = LazyPattern(r"https?://[^\s'\"]+")


def redact_text(text: str) -> str:
    """Every URL in ``text`` redacted (exception messages may quote one)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


_UNPRINTABLE = LazyPattern(r"[^\S ]|[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, limit: int = 200) -> str:
    """A registry's own words (an error body, a header) made safe to quote in a one-line
    message: at most ``limit`` characters, control characters (escape sequences, line
    breaks, bidi overrides) written as ``\\xNN`` / ``\\uNNNN``."""
    text = text[:limit]
    return _UNPRINTABLE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


# ---------------------------------------------------------------------------------------
# single flight: concurrent identical requests (token fetches) share one exchange


class _Flight:
    __slots__ = ("event", "result", "error", "done_at")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.result: Response | None = None
        self.error: BaseException | None = None
        self.done_at = 0.0


#: an answered shared request is handed to later callers for this long (covers a caller
#: that checked the token cache just before the first answer was stored)
SHARE_WINDOW = 2.0


class SingleFlight:
    """Thread-safe: the first caller of a key performs the request, the others wait for
    its response (or its error)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Any, _Flight] = {}

    def run(self, key: Any, call: Callable[[], Response]) -> Response:
        with self._lock:
            now = time.monotonic()
            for k in [k for k, f in self._flights.items() if f.done_at and now - f.done_at > SHARE_WINDOW]:
                del self._flights[k]
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.event.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.result is not None
            return flight.result
        try:
            flight.result = call()
            return flight.result
        except BaseException as exc:
            flight.error = exc
            with self._lock:
                self._flights.pop(key, None)  # an error is not shared with later callers
            raise
        finally:
            flight.done_at = time.monotonic()
            flight.event.set()


class AsyncSingleFlight:
    """The asyncio twin of :class:`SingleFlight` (one event loop)."""

    def __init__(self) -> None:
        self._flights: dict[Any, tuple[Any, float]] = {}

    async def run(self, key: Any, call: Callable[[], Any]) -> Response:
        import asyncio

        now = time.monotonic()
        for k in [k for k, (f, t) in self._flights.items() if t and now - t > SHARE_WINDOW]:
            del self._flights[k]
        hit = self._flights.get(key)
        if hit is not None:
            resp: Response = await asyncio.shield(hit[0])
            return resp
        fut = asyncio.get_running_loop().create_future()
        self._flights[key] = (fut, 0.0)
        try:
            result = await call()
        except BaseException as exc:
            self._flights.pop(key, None)
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        fut.set_result(result)
        self._flights[key] = (fut, time.monotonic())
        return result


# ---------------------------------------------------------------------------------------
# the policy and its drivers


def drive_sync(req: Request, send_once: Callable[[Request], Response | Request], retries: int,
               observer: Observer | None, flights: SingleFlight | None = None) -> Response:
    """Run the shared policy for one logical request with a blocking ``send_once``
    (a request with a ``shared`` key runs once for all concurrent callers)."""
    if req.shared is not None and flights is not None:
        return flights.run(req.shared, lambda: drive_sync(req, send_once, retries, observer))
    policy = _policy(req, retries)
    try:
        kind, arg = next(policy)
        while True:
            if kind == "sleep":
                time.sleep(arg)
                kind, arg = next(policy)
                continue
            started = time.monotonic()
            try:
                outcome: Any = send_once(arg)
            except Exception as exc:  # noqa: BLE001 - only transport errors go to the policy
                log_exchange(arg, exc, time.monotonic() - started)
                if isinstance(exc, ValueError) and not isinstance(exc, (OSError, PkgLoaderError)):
                    # (a refused certificate is both; a ConfigError, e.g. an unusable client certificate, is one)
                    raise unsendable(arg, exc) from None
                if not is_transport_error(exc):
                    raise
                outcome = exc
            else:
                log_exchange(arg, outcome, time.monotonic() - started)
            kind, arg = policy.send(outcome)
    except StopIteration as stop:
        resp: Response = stop.value
    if observer:
        observer(arg, resp)  # arg: the request that was answered
    return resp


def run_sync(flow: Flow[T], transport: Callable[[], Any]) -> T:
    """Drive ``flow``; ``transport`` is called only if the flow makes a request, so a flow
    answered from the cache never opens a connection (or imports an HTTP stack)."""
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
#: a request that timed out is tried again at most this many times (a registry that
#: accepts connections and never answers must not hold a command for retries x timeout)
TIMEOUT_RETRIES = 1


def _policy(req: Request, retries: int) -> Generator[tuple[str, Any], Any, Response]:
    """Redirects, retries and backoff for one logical request, sans-I/O.

    Yields ``("send", request)`` (answered with a Response, a redirect Request, or the
    transport's exception) and ``("sleep", seconds)``; returns the final Response. A retry
    starts again from the original request: after a redirect to blob storage, that asks
    the registry for a fresh (signed) URL rather than repeating a stale one."""
    original = req
    attempt = 0
    timeouts = 0
    redirects = 0
    while True:
        outcome = yield ("send", req)
        if isinstance(outcome, BaseException):
            if _not_retried(outcome) or not _should_retry(original, attempt, retries) or (
                    _is_timeout(outcome) and timeouts >= TIMEOUT_RETRIES):
                raise map_transport_error(outcome, req.url) from None
            if _is_timeout(outcome):
                timeouts += 1
            delay = backoff_delay(attempt, None)
            log.debug("retrying %s %s after %s (%.2fs)", original.method, redact_url(original.url),
                      type(outcome).__name__, delay)
        elif isinstance(outcome, Request):
            redirects += 1
            if redirects > MAX_REDIRECTS:
                raise NetworkError(f"too many redirects from {redact_url(original.url)}")
            req = outcome
            continue
        elif outcome.status in RETRY_STATUSES and _should_retry(original, attempt, retries):
            delay = backoff_delay(attempt, parse_retry_after(outcome.header("retry-after")))
            log.debug("retrying %s %s after HTTP %d (%.2fs)", original.method, redact_url(original.url),
                      outcome.status, delay)
        elif req is not original and req.via_status and outcome.status in (401, 403) and attempt == 0 \
                and _should_retry(original, attempt, retries):
            # blob storage refused its signed URL (expired): ask the registry for a new one
            delay = 0.0
            log.debug("%s %s: the redirect target answered HTTP %d; asking the registry again",
                      original.method, redact_url(original.url), outcome.status)
        else:
            return outcome
        attempt += 1
        redirects = 0
        req = original
        if req.on_retry:
            req.on_retry()
        if delay:
            yield ("sleep", delay)


Observer = Callable[[Request, Response], None]


class AsyncTransport:
    """Drives flows over ``httpx.AsyncClient`` (HTTP/1.1), one per proxy route."""

    def __init__(self, settings: HttpSettings | None = None, *, observer: Observer | None = None) -> None:
        self.settings = settings or HttpSettings()
        self.observer = observer
        self._clients: dict[Any, Any] = {}
        self._flights = AsyncSingleFlight()

    def _client_for(self, url: str, tls: TlsSettings | None = None) -> Any:
        import httpx

        proxy = None
        proxies = self.settings.proxies
        if proxies is not None and proxies.active:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            proxy = proxies.for_url(parts.scheme, parts.hostname or "", port)
        https = url.startswith("https://")
        key = (proxy.display if proxy is not None else None, https, tls if https else None)
        client = self._clients.get(key)
        if client is None:
            st = self.settings
            kwargs: dict[str, Any] = {
                "timeout": httpx.Timeout(st.stall_timeout, connect=st.connect_timeout, pool=st.timeout),
                "http1": True,
                "http2": False,
                "limits": httpx.Limits(max_connections=st.max_connections, max_keepalive_connections=st.max_connections),
                "follow_redirects": False,
                "trust_env": False,
                "headers": {"User-Agent": user_agent()},
            }
            kwargs["verify"] = st.verify(tls) if https else False  # False: no TLS context for http://
            if proxy is not None:
                headers = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
                kwargs["proxy"] = httpx.Proxy(proxy.display, headers=headers)
            client = self._clients[key] = httpx.AsyncClient(**kwargs)
        return client

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.aclose()
        self._clients.clear()

    async def run(self, flow: Flow[T]) -> T:
        """Drive ``flow`` to completion; transport errors are thrown into the flow."""
        return await run_async(flow, lambda: self)

    async def send(self, req: Request) -> Response:
        """The async twin of :func:`drive_sync`, over the same policy."""
        if req.shared is not None:
            return await self._flights.run(req.shared, lambda: self._send(req))
        return await self._send(req)

    async def _send(self, req: Request) -> Response:
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
                started = time.monotonic()
                try:
                    outcome: Any = await self._send_once(arg)
                except (httpx.HTTPError, TimeoutError, OSError) as exc:
                    log_exchange(arg, exc, time.monotonic() - started)
                    # httpx's read timeout is the stall timeout: worded as the sync transport words it
                    outcome = StallTimeout(f"{self.settings.stall_timeout:g} s") if isinstance(exc, httpx.ReadTimeout) else exc
                except (ValueError, httpx.InvalidURL) as exc:  # OSError (certificates) is caught above
                    if isinstance(exc, PkgLoaderError):  # a ConfigError from the TLS set-up
                        raise
                    raise unsendable(arg, exc) from None
                else:
                    log_exchange(arg, outcome, time.monotonic() - started)
                kind, arg = policy.send(outcome)
        except StopIteration as stop:
            resp: Response = stop.value
        if self.observer:
            self.observer(arg, resp)
        return resp

    async def _send_once(self, req: Request) -> Response | Request:
        """One exchange. The total deadline covers the response head and a body read into
        memory; an upload of more than ``_DEADLINE_UPLOAD`` bytes (or a stream) is bounded
        by the stall timeout only, as in the sync transport (which starts the deadline once
        the request is sent)."""
        import asyncio

        client = self._client_for(req.url, req.tls)
        request = client.build_request(req.method, req.url, headers=req.headers, content=req.content)
        limit = req.timeout if req.timeout is not None else self.settings.timeout
        small = req.content is None or (isinstance(req.content, bytes) and len(req.content) <= _DEADLINE_UPLOAD)
        if not small:
            return await self._exchange(client, request, req)
        try:
            async with asyncio.timeout(limit):
                if req.sink is None:
                    return await self._exchange(client, request, req)
                resp = await client.send(request, stream=True)
        except TimeoutError:
            raise DeadlineExceeded(f"{limit:g} s") from None
        return await self._exchange(client, request, req, resp)

    async def _exchange(self, client: Any, request: Any, req: Request, resp: Any = None) -> Response | Request:
        if resp is None:
            resp = await client.send(request, stream=True)
        try:
            target = _redirect_target(req, resp.status_code, resp.headers.get("location"), str(resp.url))
            if target is not None:
                return target
            headers = {k.lower(): v for k, v in resp.headers.items()}
            if req.sink is not None and 200 <= resp.status_code < 300:
                encoded = headers.get("content-encoding", "identity") != "identity"
                meter = SpeedMeter(self.settings.low_speed_limit, self.settings.low_speed_time)
                received = 0
                async for chunk in (resp.aiter_bytes(1 << 20) if encoded else resp.aiter_raw(1 << 20)):
                    req.sink(chunk)
                    received += len(chunk)
                    meter.add(len(chunk))
                body = b""
            else:
                announced = headers.get("content-length", "")
                if (req.max_body is not None and announced.isdigit() and int(announced) > req.max_body
                        and headers.get("content-encoding", "identity") == "identity"):
                    raise BodyTooLarge(req.max_body, req.url)  # announced too large: not read at all
                buf = bytearray()
                async for chunk in resp.aiter_bytes():
                    buf += chunk
                    if req.max_body is not None and len(buf) > req.max_body:
                        raise BodyTooLarge(req.max_body, req.url)
                body = bytes(buf)
                received = len(body)
            return Response(resp.status_code, headers, body, str(resp.url), resp.http_version, received)
        finally:
            await resp.aclose()


#: an upload larger than this is not under the total deadline (it may take long); it is
#: bounded by the stall timeout
_DEADLINE_UPLOAD = 1 << 20


class SpeedMeter:
    """Fails a transfer that stays below ``limit`` bytes/s for ``seconds`` (curl's
    ``--speed-limit`` / ``--speed-time``): checked at every received piece; a piece that
    never comes is the stall timeout's business."""

    __slots__ = ("limit", "seconds", "start", "count")

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.start = time.monotonic()
        self.count = 0

    def add(self, n: int) -> None:
        if not self.limit:
            return
        self.count += n
        now = time.monotonic()
        elapsed = now - self.start
        if elapsed >= self.seconds:
            rate = self.count / elapsed
            if rate < self.limit:
                raise TooSlow(rate, self.limit, self.seconds)
            self.start, self.count = now, 0
