"""A "redirecting front" that makes a RegistryServer behave like ghcr.io for blob downloads.

    with CdnFront(registry) as front:        # registry: RegistryServer (TLS or not)
        front.host        # "127.0.0.1:PORT"  - what a client configures as the registry
        front.cdn_host    # "localhost:PORT"  - where blob downloads are redirected to
        front.mark()
        ...
        front.requests()      # [(method, path), ...] seen by the front
        front.cdn_requests()  # [CdnRecord(method, path, query, had_authorization, status), ...]

The front is a ``support.proxy.FaultProxy`` (so every FaultProxy rule works on it too: it
forwards each request to the registry with the client's ``Host`` header kept, so the
registry's absolute upload ``Location`` headers point back at the front, and
``WWW-Authenticate`` challenges pass through unchanged; the token server is a separate
server whose realm URL is absolute). It serves HTTPS when the registry does, with the
registry's own server cert (valid for 127.0.0.1 and localhost, signed by ``registry.ca``).
With ``page_size`` (default 100) ``/tags/list`` is paged like ghcr's: ``n`` tags per page
and ``Link: </v2/<name>/tags/list?n=100&last=X>; rel="next"`` (FaultProxy.paginate_tags).

What differs: ``GET /v2/<name>/blobs/sha256:<hex>``.

1. The front sends ``HEAD`` of that blob to the registry with the client's headers
   (its ``Authorization`` included).
2. Anything but 200 (401 + ``WWW-Authenticate``, 404, ...): the front forwards the client's
   GET to the registry as any other request, so the client gets the registry's own answer
   (body included). The registry then logs HEAD and GET.
3. 200: the front answers ``307 Temporary Redirect``, empty body, ``Location:
   <scheme>://localhost:<cdn_port>/blob/sha256:<hex>?X-Amz-Algorithm=AWS4-HMAC-SHA256&
   X-Amz-Date=<UTC yyyymmddThhmmssZ>&X-Amz-Expires=300&X-Amz-Signature=<hex>``, the
   signature an HMAC-SHA256 (random per-front secret) of path, date and expiry.

The "CDN" is a second threaded server of the same object, on the other loopback name
``localhost`` (it binds 127.0.0.1), HTTPS when the front is, same cert. It serves only
``GET``/``HEAD /blob/sha256:<hex>``, like S3 does with a pre-signed URL:

* a request carrying ``Authorization`` → ``400 InvalidArgument`` ("Only one auth mechanism
  allowed"): a client must drop the registry credentials when it follows the redirect;
* ``expire_next(n)``: the next ``n`` requests (that passed the Authorization check) →
  ``403 AccessDenied`` "Request has expired" (so a client must go back to the registry
  for a fresh URL); so does a URL older than its ``X-Amz-Expires``;
* a missing or wrong signature → ``403`` (``AccessDenied`` / ``SignatureDoesNotMatch``);
* otherwise 200 with ``Content-Length``, the blob streamed straight from the registry's
  storage directory (``storage/docker/registry/v2/blobs/sha256/<hex[:2]>/<hex>/data``):
  ``socket.sendfile`` over plain HTTP, 1 MiB chunks over TLS; never in memory as a whole.
  No ``Range`` support. A blob not in storage → 404 ``NoSuchKey``.

FaultProxy rules still apply on the front (``respond``/``drop``/``delay`` before the HEAD,
``set_header`` on the 307), but body faults (``corrupt``/``truncate``/``stall``) have no body
to act on for a redirected blob; the CDN has only ``expire_next``.

Errors carry S3's XML error body. Every front and CDN request is recorded *before* it is
answered, so after a client call returns the logs are complete; ``mark()`` resets both.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import http.client
import http.server
import os
import re
import secrets
import ssl
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit

from support.proxy import FaultProxy, Rule, _Handler, no_delay

if TYPE_CHECKING:
    from support.registry import RegistryServer

__all__ = ["CdnFront", "CdnRecord"]

_BLOB_RE = re.compile(r"^/v2/(?P<name>.+)/blobs/sha256:(?P<hex>[0-9a-f]{64})$")
_CDN_RE = re.compile(r"^/blob/sha256:(?P<hex>[0-9a-f]{64})$")
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
CDN_CHUNK = 1024 * 1024
DEFAULT_EXPIRES = 300


class CdnRecord(NamedTuple):
    """One request the CDN received."""

    method: str
    path: str
    query: str
    had_authorization: bool
    status: int


class _CdnHandler(http.server.BaseHTTPRequestHandler):
    server: "_CdnServer"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        no_delay(self.connection)  # as the front (see support.proxy.no_delay)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        self.server.owner._handle_cdn(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch


class _CdnServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    owner: "CdnFront"


def _s3_error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
    ).encode()


class CdnFront(FaultProxy):
    """ghcr-like front + CDN for ``upstream`` (see module docstring).

    Args:
        upstream: a started RegistryServer.
        tls: serve front and CDN over HTTPS; ``None`` (default) = as the registry does.
            HTTPS needs a TLS registry (its cert is reused).
        page_size: page ``/tags/list`` like ghcr (``None``: pass the registry's full list).
        expires: ``X-Amz-Expires`` of the redirect URLs, seconds.
    """

    def __init__(
        self,
        upstream: "RegistryServer",
        *,
        tls: bool | None = None,
        page_size: int | None = 100,
        expires: int = DEFAULT_EXPIRES,
    ) -> None:
        use_tls = upstream.tls if tls is None else tls
        if use_tls and not upstream.tls:
            raise ValueError("CdnFront(tls=True) reuses the registry's cert: start the registry with tls=True")
        cert = (str(upstream.server_cert_path), str(upstream.server_key_path)) if use_tls else None
        super().__init__(upstream, tls=cert)
        self.registry = upstream
        self.expires = expires
        self._page_size_default = page_size
        if page_size is not None:
            self.paginate_tags(page_size)
        self._secret = secrets.token_bytes(32)
        self._cdn_log: list[CdnRecord] = []
        self._cdn_mark = 0
        self._expire_budget = 0
        self._cdn: _CdnServer | None = None
        self._cdn_thread: threading.Thread | None = None
        self.cdn_port = 0

    # -- facts ---------------------------------------------------------------------

    @property
    def cdn_host(self) -> str:
        """``localhost:PORT`` (the redirect target's authority)."""
        return f"localhost:{self.cdn_port}"

    @property
    def cdn_url(self) -> str:
        return f"{self.scheme}://{self.cdn_host}"

    @property
    def ca_pem(self) -> str:
        """The CA that signed the front's and the CDN's cert (the registry's)."""
        return self.registry.ca_pem

    def blob_path(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (``sha256:<hex>`` or ``<hex>``)."""
        hex_ = digest.split(":", 1)[-1]
        return self.registry.storage_dir / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def signed_url(self, digest: str, *, date: _dt.datetime | None = None, expires: int | None = None) -> str:
        """A CDN URL for a blob, signed as the front's redirects are (tests may tamper with it)."""
        hex_ = digest.split(":", 1)[-1]
        path = f"/blob/sha256:{hex_}"
        stamp = (date or _dt.datetime.now(_dt.timezone.utc)).strftime(_DATE_FORMAT)
        exp = str(self.expires if expires is None else expires)
        query = urlencode(
            {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Date": stamp,
                "X-Amz-Expires": exp,
                "X-Amz-Signature": self._signature(path, stamp, exp),
            }
        )
        return f"{self.cdn_url}{path}?{query}"

    def _signature(self, path: str, stamp: str, expires: str) -> str:
        return hmac.new(self._secret, f"{path}\n{stamp}\n{expires}".encode(), hashlib.sha256).hexdigest()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> "CdnFront":
        cdn = _CdnServer(("127.0.0.1", 0), _CdnHandler, bind_and_activate=True)
        if self._tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self._tls)
            cdn.socket = ctx.wrap_socket(cdn.socket, server_side=True, do_handshake_on_connect=False)
        cdn.owner = self
        self._cdn = cdn
        self.cdn_port = cdn.server_address[1]
        self._cdn_thread = threading.Thread(
            target=cdn.serve_forever, kwargs={"poll_interval": 0.05}, name="cdn", daemon=True
        )
        self._cdn_thread.start()
        try:
            super().start()
        except BaseException:
            self._stop_cdn()
            raise
        return self

    def stop(self) -> None:
        self._stop_cdn()
        super().stop()

    def _stop_cdn(self) -> None:
        cdn, self._cdn = self._cdn, None
        if cdn is not None:
            cdn.shutdown()
            cdn.server_close()
        if self._cdn_thread is not None:
            self._cdn_thread.join(timeout=5)
            self._cdn_thread = None

    def __enter__(self) -> "CdnFront":
        return self.start()

    # -- test controls -----------------------------------------------------------------

    def expire_next(self, n: int = 1) -> None:
        """The next ``n`` CDN requests answer 403 "Request has expired"."""
        with self._lock:
            self._expire_budget += n

    def clear(self) -> None:
        """Remove every FaultProxy rule and pending ``expire_next``; the ghcr-like paging
        (``page_size`` given at construction) stays on. Logs are kept."""
        super().clear()
        with self._lock:
            self._expire_budget = 0
            self.page_size = self._page_size_default

    def mark(self) -> None:
        """``requests()``/``request_log()``/``cdn_requests()`` report only what comes after."""
        with self._lock:
            self._mark = len(self._log)
            self._cdn_mark = len(self._cdn_log)

    def cdn_requests(self) -> list[CdnRecord]:
        """Every CDN request since ``mark()``: (method, path, query, had_authorization, status)."""
        with self._lock:
            return list(self._cdn_log[self._cdn_mark :])

    # -- the front: redirect blob GETs ----------------------------------------------------

    def _forward(self, h: _Handler, index: int, method: str, target: str, body: bytes, fired: list[Rule]) -> None:
        m = _BLOB_RE.match(urlsplit(target).path) if method == "GET" else None
        if m is None or self._upstream_head_status(h, target) != 200:
            super()._forward(h, index, method, target, body, fired)
            return
        headers = [
            ("Location", self.signed_url(m["hex"])),
            ("Content-Length", "0"),
            ("Docker-Distribution-Api-Version", "registry/2.0"),
        ]
        self._record(index, status=307)
        self._send_response(h, 307, headers, None, fired)

    def _upstream_head_status(self, h: _Handler, target: str) -> int:
        try:
            conn, resp = self._exchange("HEAD", target, None, self._upstream_headers(h))
        except (OSError, http.client.HTTPException):
            return 0  # let the normal forward produce the 502
        try:
            resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            return 0
        self._release(conn, resp)
        return resp.status

    # -- the CDN ---------------------------------------------------------------------------

    def _handle_cdn(self, h: _CdnHandler) -> None:
        split = urlsplit(h.path)
        method, path = h.command, split.path
        had_auth = h.headers.get("Authorization") is not None
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        status, body, file_path = self._cdn_decide(method, path, split.query, had_auth)
        with self._lock:
            self._cdn_log.append(CdnRecord(method, path, split.query, had_auth, status))
        try:
            if status != 200:
                h.send_response(status)
                h.send_header("Content-Type", "application/xml")
                h.send_header("Content-Length", str(len(body)))
                if status == 405:
                    h.send_header("Allow", "GET, HEAD")
                h.end_headers()
                if method != "HEAD":
                    h.wfile.write(body)
                return
            assert file_path is not None
            self._send_blob(h, file_path, head=method == "HEAD")
        except OSError:  # client went away mid-body
            h.close_connection = True

    def _cdn_decide(self, method: str, path: str, query: str, had_auth: bool) -> tuple[int, bytes, str | None]:
        if method not in ("GET", "HEAD"):
            return 405, _s3_error("MethodNotAllowed", "The specified method is not allowed against this resource."), None
        m = _CDN_RE.match(path)
        if m is None:
            return 404, _s3_error("NoSuchKey", "The specified key does not exist."), None
        if had_auth:
            return 400, _s3_error(
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be specified",
            ), None
        with self._lock:
            forced = self._expire_budget > 0
            if forced:
                self._expire_budget -= 1
        if forced:
            return 403, _s3_error("AccessDenied", "Request has expired"), None
        q = parse_qs(query)
        stamp = (q.get("X-Amz-Date") or [""])[0]
        expires = (q.get("X-Amz-Expires") or [""])[0]
        signature = (q.get("X-Amz-Signature") or [""])[0]
        if not (stamp and expires and signature):
            return 403, _s3_error(
                "AccessDenied", "Query-string authentication requires the X-Amz-Date, X-Amz-Expires and X-Amz-Signature parameters"
            ), None
        if not hmac.compare_digest(signature, self._signature(path, stamp, expires)):
            return 403, _s3_error(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            ), None
        try:
            issued = _dt.datetime.strptime(stamp, _DATE_FORMAT).replace(tzinfo=_dt.timezone.utc)
            lifetime = int(expires)
        except ValueError:
            return 403, _s3_error("AccessDenied", "X-Amz-Date or X-Amz-Expires is malformed"), None
        if _dt.datetime.now(_dt.timezone.utc) > issued + _dt.timedelta(seconds=lifetime):
            return 403, _s3_error("AccessDenied", "Request has expired"), None
        file_path = str(self.blob_path(m["hex"]))
        if not os.path.isfile(file_path):
            return 404, _s3_error("NoSuchKey", "The specified key does not exist."), None
        return 200, b"", file_path

    def _send_blob(self, h: _CdnHandler, file_path: str, *, head: bool) -> None:
        with open(file_path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", str(size))
            h.send_header("ETag", f'"{os.path.basename(os.path.dirname(file_path))}"')
            h.end_headers()
            h.wfile.flush()
            if head or size == 0:
                return
            conn = h.connection
            if not isinstance(conn, ssl.SSLSocket):
                sent = conn.sendfile(f, 0, size)
                if sent != size:
                    raise OSError(f"sendfile sent {sent} of {size} bytes")
                return
            buf = bytearray(CDN_CHUNK)
            view = memoryview(buf)
            while True:
                n = f.readinto(buf)
                if not n:
                    return
                conn.sendall(view[:n])
