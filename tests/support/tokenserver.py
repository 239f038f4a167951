"""A small Docker token-auth server (``/token``) for the real-registry tests.

Implements the Docker registry token protocol that distribution's ``auth.token`` uses:

    GET /token?service=SERVICE&scope=repository:NAME:pull,push[&scope=...][&account=USER]
    Authorization: Basic ...   (optional)

    200 {"token": JWT, "access_token": JWT, "expires_in": N, "issued_at": "...Z"}

JWTs are signed ES256 (or RS256) by a signing cert issued by the server's own CA. The
registry's ``auth.token.rootcertbundle`` (``rootcertbundle_path``) holds the CA *and* the
signing cert, and every JWT header carries both ``x5c`` (the signing cert, verified against
the bundle) and ``kid`` (the libtrust key ID of the signing key, which distribution 2.8
looks up among the bundle's certs' keys when ``x5c`` is absent). ``header_mode`` picks
``"x5c"`` (default), ``"kid"`` or ``"both"``.

Claims: ``iss`` (issuer), ``sub`` (user or ""), ``aud`` (the requested service),
``exp``/``nbf``/``iat``/``jti`` and ``access`` (the granted subset of the requested scopes).
distribution allows 60 s of clock leeway on ``exp``/``nbf``; to make the registry reject a
fresh token set ``jwt_lifetime`` below -60.

Permissions: ``users`` maps user to password; ``grants`` maps user (``None`` = anonymous) to
``{repo-glob: actions}``. By default every user may pull/push/delete everything and
anonymous users may pull everything iff ``anonymous_pull``. Wrong credentials give 401;
scopes the caller may not have are silently dropped from ``access`` (as Docker Hub does),
so the registry then answers 401 ``insufficient_scope``.

Every request is recorded (``requests``: path, query, whether Authorization was sent, the
user, status, granted access) before the response is written, so counts are exact.
"""

from __future__ import annotations

import base64
import datetime as _dt
import fnmatch
import hashlib
import http.server
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from support.proxy import no_delay
from support.registry import CertificateAuthority, IssuedCert

__all__ = ["TokenRequest", "TokenServer", "decode_jwt", "libtrust_key_id"]

ALL_ACTIONS = ("pull", "push", "delete", "*")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def libtrust_key_id(public_key: Any) -> str:
    """docker/libtrust key ID: base32 of the first 240 bits of SHA-256(DER SPKI), in
    12 colon-separated groups of 4 (what distribution matches a JWT ``kid`` against)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWT, without verifying it."""
    header, claims, _sig = token.split(".")
    return json.loads(_b64url_decode(header)), json.loads(_b64url_decode(claims))


@dataclass(frozen=True)
class TokenRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    auth_sent: bool
    username: str | None  # the Basic user, if credentials were sent (valid or not)
    status: int
    scopes: tuple[str, ...]
    access: tuple[dict[str, Any], ...]  # what the issued token grants ( () when refused )


def _parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    # repository:name/with/slashes:pull,push  (name may contain ':' only for a port-less host, so
    # split type first and actions last)
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return kind, name, [a for a in actions.split(",") if a]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_HTTPServer"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        no_delay(self.connection)  # as the front and the CDN (see support.proxy.no_delay)

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    def do_GET(self) -> None:
        self.server.owner._handle(self)

    def do_POST(self) -> None:
        # OAuth2 "POST /token" is not implemented; Docker clients fall back to GET on 404.
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.owner._handle(self)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "TokenServer"


@dataclass
class TokenServer:
    """Threaded token server on 127.0.0.1 (see module docstring). Use as a context manager
    or call ``start()``/``stop()``. Write ``rootcertbundle_path`` into ``workdir`` before the
    registry starts: ``start()`` does that."""

    workdir: Path
    users: Mapping[str, str] = field(default_factory=lambda: {"alice": "alice-password"})
    grants: Mapping[str | None, Mapping[str, Iterable[str]]] | None = None
    anonymous_pull: bool = True
    lifetime: int = 300
    service: str = "pkgloader-test-registry"
    issuer: str = "pkgloader-test-token-issuer"
    alg: str = "ES256"
    header_mode: str = "x5c"

    # mutable knobs tests may flip at run time
    jwt_lifetime: int | None = None  # exp - iat of the JWT; None = ``lifetime``

    port: int = field(init=False, default=0)
    requests: list[TokenRequest] = field(init=False, default_factory=list)
    issued: list[str] = field(init=False, default_factory=list)  # every JWT handed out
    _failures: list[tuple[int, dict[str, str], bytes]] = field(init=False, default_factory=list)
    _mark: int = field(init=False, default=0)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _httpd: _HTTPServer | None = field(init=False, default=None)
    _thread: threading.Thread | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.alg not in ("ES256", "RS256"):
            raise ValueError(f"unsupported alg {self.alg!r}")
        if self.header_mode not in ("x5c", "kid", "both"):
            raise ValueError(f"unsupported header_mode {self.header_mode!r}")
        self.workdir = Path(self.workdir)
        self.ca = CertificateAuthority("pkgloader test token CA")
        if self.alg == "ES256":
            self.signing = self.ca.issue("pkgloader test token signer", server=False)
        else:
            self.signing = _issue_rsa(self.ca, "pkgloader test token signer")
        self.key_id = libtrust_key_id(self.signing.key.public_key())

    # -- facts -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    @property
    def rootcertbundle_path(self) -> Path:
        return self.workdir / "token-rootcerts.pem"

    def password(self, user: str) -> str:
        return self.users[user]

    # -- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> "TokenServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "TokenServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rootcertbundle_path.write_text(self.ca.cert_pem + self.signing.cert_pem)
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="token-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- test controls ---------------------------------------------------------------

    def fail_next(self, status: int, *, times: int = 1, headers: Mapping[str, str] | None = None, body: bytes = b"") -> None:
        """Answer the next ``times`` token requests with ``status`` (recorded as usual)."""
        with self._lock:
            self._failures.extend([(status, dict(headers or {}), body)] * times)

    def mark(self) -> None:
        """``token_requests()`` counts only what comes after."""
        with self._lock:
            self._mark = len(self.requests)

    def token_requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self.requests[self._mark :])

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._mark = 0

    # -- protocol -------------------------------------------------------------------

    def _grants_for(self, user: str | None) -> Mapping[str, Iterable[str]]:
        if self.grants is not None and user in self.grants:
            return self.grants[user]
        if user is None:
            return {"*": ("pull",)} if self.anonymous_pull else {}
        return {"*": ALL_ACTIONS}

    def _allowed(self, user: str | None, name: str, wanted: list[str]) -> list[str]:
        granted: set[str] = set()
        for pattern, actions in self._grants_for(user).items():
            if fnmatch.fnmatchcase(name, pattern):
                granted.update(actions)
        if "*" in granted:
            return list(wanted)
        return [a for a in wanted if a in granted]

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        query = parse_qs(split.query, keep_blank_values=True)
        scopes = tuple(s for v in query.get("scope", []) for s in v.split(" ") if s)
        auth = h.headers.get("Authorization")
        user: str | None = None
        password: str | None = None
        if auth and auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except Exception:
                user, password = "", None

        def reply(status: int, payload: bytes, headers: Mapping[str, str] = {}, access: tuple = ()) -> None:
            record = TokenRequest(h.command, split.path, query, auth is not None, user, status, scopes, access)
            with self._lock:
                self.requests.append(record)
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(payload)

        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            status, headers, body = failure
            reply(status, body, headers)
            return
        if h.command != "GET" or split.path != "/token":
            reply(404, b'{"errors":[{"code":"NOT_FOUND","message":"not found"}]}')
            return
        if auth is not None and not auth.lower().startswith("basic "):
            reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"basic credentials expected"}]}')
            return
        if auth is not None and (user not in self.users or self.users[user] != password):
            reply(
                401,
                b'{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}',
                {"WWW-Authenticate": 'Basic realm="pkgloader-test-token"'},
            )
            return
        service = (query.get("service") or [""])[0]
        access: list[dict[str, Any]] = []
        for scope in scopes:
            parsed = _parse_scope(scope)
            if parsed is None:
                continue
            kind, name, wanted = parsed
            if kind != "repository":
                continue
            allowed = self._allowed(user, name, wanted)
            if allowed:
                access.append({"type": kind, "name": name, "actions": allowed})
        token = self._sign(user or "", service, access)
        now = _dt.datetime.now(_dt.timezone.utc)
        body = json.dumps(
            {
                "token": token,
                "access_token": token,
                "expires_in": self.lifetime,
                "issued_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        ).encode()
        with self._lock:
            self.issued.append(token)
        reply(200, body, access=tuple(access))

    def _sign(self, subject: str, audience: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        lifetime = self.lifetime if self.jwt_lifetime is None else self.jwt_lifetime
        header: dict[str, Any] = {"typ": "JWT", "alg": self.alg}
        if self.header_mode in ("x5c", "both"):
            header["x5c"] = [base64.b64encode(self.signing.cert_der).decode()]
        if self.header_mode in ("kid", "both"):
            header["kid"] = self.key_id
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "exp": now + lifetime,
            "nbf": now - 1,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}".encode()
        key = self.signing.key
        if self.alg == "ES256":
            der = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
            r, s = decode_dss_signature(der)
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS wants raw r||s
        else:
            signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg]
        return f"{signing_input.decode()}.{_b64url(signature)}"


def _issue_rsa(ca: CertificateAuthority, common_name: str) -> IssuedCert:
    """An RSA signing cert from ``ca`` (for RS256)."""
    import datetime

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca.root.key, hashes.SHA256())
    )
    return IssuedCert(cert, key)  # type: ignore[arg-type]
