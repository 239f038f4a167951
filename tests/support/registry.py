"""A real OCI registry on loopback for integration tests.

``RegistryServer`` runs Debian's ``docker-registry`` (CNCF distribution 2.8) on
``127.0.0.1`` with a free port, a temporary storage directory and a generated YAML
config, in one of three set-ups:

* anonymous plain HTTP (``RegistryServer(workdir)``),
* htpasswd basic auth over TLS with a self-signed CA
  (``RegistryServer(workdir, tls=True, htpasswd={"alice": "pw"})``),
* Docker token auth against a ``support.tokenserver.TokenServer``
  (``RegistryServer(workdir, token_server=ts)``).

Deletes are always enabled. ``with RegistryServer(...) as reg:`` starts it, waits until
``GET /v2/`` answers 200 or 401 and stops it (terminate, then kill) on exit.

Counting requests
-----------------
distribution writes one Apache combined-log line per request to **stdout** (the access
log, written by gorilla's ``CombinedLoggingHandler``) and its logrus logs to **stderr**.
Both go to files in the work dir. The access log line is written after the handler
returns, so a client can in rare cases see the end of a response before the line exists.
``mark()`` and ``requests()`` therefore first *synchronise*: they send a sentinel
``GET /v2/?pkgloader-sync=<uuid>`` and wait (bounded) until its line shows up; every
request a client completed before that is then in the log. Sentinel lines are never
reported.

    reg.mark()
    ...  # client under test talks to reg.url
    assert reg.requests() == [("GET", "/v2/"), ("GET", "/v2/ns/pkg/tags/list")]
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from support.tokenserver import TokenServer

__all__ = [
    "CertificateAuthority",
    "IssuedCert",
    "LoggedRequest",
    "RegistryServer",
    "RegistryStartError",
    "find_binary",
    "free_port",
]

INSTALL_HINTS = {
    "docker-registry": "apt-get install docker-registry",
    "htpasswd": "apt-get install apache2-utils",
    "skopeo": "apt-get install skopeo",
}

STARTUP_TIMEOUT = 20.0
SYNC_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
_SYNC_PARAM = "pkgloader-sync"


def find_binary(name: str) -> str:
    """Absolute path of a system tool, or raise RuntimeError with the apt install hint."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if not found:
        hint = INSTALL_HINTS.get(name, f"install {name}")
        raise RuntimeError(f"{name!r} not found on PATH; the real-registry tests need it (hint: {hint})")
    return found


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (racy by nature; callers retry on clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class IssuedCert:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()


class CertificateAuthority:
    """A throw-away self-signed CA (EC P-256) that issues server and signing certs."""

    def __init__(self, common_name: str = "pkgloader test CA") -> None:
        now = _dt.datetime.now(_dt.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self._not_before = now - _dt.timedelta(hours=1)
        self._not_after = now + _dt.timedelta(days=2)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        self.root = IssuedCert(cert, key)

    @property
    def cert_pem(self) -> str:
        return self.root.cert_pem

    def issue(
        self,
        common_name: str,
        *,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        server: bool = True,
    ) -> IssuedCert:
        """A leaf cert signed by this CA: a TLS server cert (``server=True``) or a
        plain signing cert (digitalSignature only, e.g. for JWTs)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.root.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False,
                    crl_sign=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root.key.public_key()), critical=False
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if server:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return IssuedCert(builder.sign(self.root.key, hashes.SHA256()), key)


# --------------------------------------------------------------------------- config


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(data: Mapping[str, Any], indent: int = 0) -> str:
    """Tiny YAML emitter for nested mappings of scalars (all the registry config needs)."""
    lines: list[str] = []
    pad = "  " * indent
    for key, value in data.items():
        if isinstance(value, Mapping):
            lines.append(f"{pad}{key}:")
            lines.append(to_yaml(value, indent + 1))
        elif isinstance(value, (list, tuple)):
            lines.append(f"{pad}{key}:")
            lines.extend(f"{pad}  - {_yaml_scalar(v)}" for v in value)
        else:
            lines.append(f"{pad}{key}: {_yaml_scalar(value)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- access log

# 127.0.0.1 - - [23/Nov/2026:14:55:06 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
_ACCESS_RE = re.compile(r'^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+) (?P<uri>\S+) [^"]*" (?P<status>\d{3}) ')


class LoggedRequest(NamedTuple):
    """One line of the registry's access log."""

    method: str
    path: str  # without the query string
    query: str  # raw query string ('' when none)
    status: int

    @property
    def uri(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


class RegistryStartError(RuntimeError):
    pass


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Have the kernel SIGTERM the registry if the test process dies abruptly."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# --------------------------------------------------------------------------- server


@dataclass
class RegistryServer:
    """``docker-registry serve`` on 127.0.0.1 (see module docstring).

    Args:
        workdir: an empty directory owned by the test (config, storage, logs, certs).
        tls: serve HTTPS with a cert for 127.0.0.1/localhost signed by a fresh CA.
        htpasswd: ``{user: password}``; enables basic auth (bcrypt, via ``htpasswd -Bbn``).
        token_server: enables Docker token auth against this (already started) server.
        relative_urls: ``http.relativeurls`` (upload ``Location`` headers become relative).
    """

    workdir: Path
    tls: bool = False
    htpasswd: Mapping[str, str] | None = None
    token_server: "TokenServer | None" = None
    relative_urls: bool = False
    binary: str | None = None
    startup_timeout: float = STARTUP_TIMEOUT

    port: int = field(init=False, default=0)
    ca: CertificateAuthority | None = field(init=False, default=None)
    _proc: subprocess.Popen[bytes] | None = field(init=False, default=None, repr=False)
    _log_offset: int = field(init=False, default=0, repr=False)
    _entries: list[LoggedRequest] = field(init=False, default_factory=list, repr=False)
    _partial: bytes = field(init=False, default=b"", repr=False)
    _mark: int = field(init=False, default=0, repr=False)
    _sync_ids: set[str] = field(init=False, default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        if self.htpasswd is not None and self.token_server is not None:
            raise ValueError("choose htpasswd or token auth, not both")

    # -- public facts ----------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` (what goes into an OCI reference)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def storage_dir(self) -> Path:
        return self.workdir / "storage"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    @property
    def access_log_path(self) -> Path:
        return self.workdir / "access.log"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / "registry.log"

    @property
    def ca_pem(self) -> str:
        if self.ca is None:
            raise AttributeError("ca_pem: this registry does not use TLS")
        return self.ca.cert_pem

    @property
    def ca_path(self) -> Path:
        if self.ca is None:
            raise AttributeError("ca_path: this registry does not use TLS")
        return self.workdir / "ca.pem"

    @property
    def cert_dir(self) -> Path:
        """A docker/containers ``certs.d``-style dir holding ``ca.crt`` (for skopeo --cert-dir)."""
        if self.ca is None:
            raise AttributeError("cert_dir: this registry does not use TLS")
        return self.workdir / "certs.d"

    @property
    def server_cert_path(self) -> Path:
        return self.workdir / "server.pem"

    @property
    def server_key_path(self) -> Path:
        return self.workdir / "server.key"

    @property
    def username(self) -> str | None:
        if self.htpasswd:
            return next(iter(self.htpasswd))
        return None

    @property
    def password(self) -> str | None:
        if self.htpasswd:
            return self.htpasswd[next(iter(self.htpasswd))]
        return None

    @property
    def auth_kind(self) -> str:
        """``"none"``, ``"basic"`` or ``"token"``."""
        return "basic" if self.htpasswd is not None else "token" if self.token_server is not None else "none"

    def verify(self) -> ssl.SSLContext | bool:
        """What to pass as httpx's ``verify=`` to trust this registry."""
        if self.ca is None:
            return True
        return ssl.create_default_context(cadata=self.ca_pem)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = self.verify()
        assert isinstance(ctx, ssl.SSLContext), "plain-HTTP registry has no TLS"
        return ctx

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> "RegistryServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "RegistryServer":
        if self._proc is not None:
            raise RuntimeError("registry already started")
        binary = self.binary or find_binary("docker-registry")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(exist_ok=True)
        auth = self._prepare_auth()
        last_error: RegistryStartError | None = None
        for _attempt in range(5):  # retry only when another process grabbed our free port
            self.port = free_port()
            self.config_path.write_text(to_yaml(self._config(auth)) + "\n")
            try:
                self._spawn(binary)
                self._wait_ready()
                return self
            except RegistryStartError as err:
                self._kill()
                last_error = err
                if "address already in use" not in str(err):
                    raise
            except BaseException:
                self._kill()  # never leave a registry behind (KeyboardInterrupt, ...)
                raise
        assert last_error is not None
        raise last_error

    def stop(self) -> None:
        self._kill()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)

    def _spawn(self, binary: str) -> None:
        self._entries.clear()
        self._partial = b""
        self._log_offset = 0
        self._mark = 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(self.access_log_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self._proc = subprocess.Popen(
                [binary, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.workdir,
                env=env,
                preexec_fn=_set_pdeathsig if sys.platform.startswith("linux") else None,
            )

    def stderr_tail(self, lines: int = 25) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return "<no registry log>"
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = "no attempt"
        with httpx.Client(verify=self.verify(), trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self._proc is not None
                code = self._proc.poll()
                if code is not None:
                    raise RegistryStartError(
                        f"docker-registry exited with code {code} before answering on {self.url}\n"
                        f"config: {self.config_path}\n--- stderr tail ---\n{self.stderr_tail()}"
                    )
                try:
                    status = client.get(f"{self.url}/v2/").status_code
                except httpx.HTTPError as exc:
                    last = repr(exc)
                else:
                    if status in (200, 401):
                        return
                    last = f"HTTP {status}"
                time.sleep(0.02)
        raise RegistryStartError(
            f"docker-registry did not answer GET {self.url}/v2/ with 200/401 within "
            f"{self.startup_timeout:.0f}s (last: {last})\n--- stderr tail ---\n{self.stderr_tail()}"
        )

    # -- config --------------------------------------------------------------------

    def _prepare_auth(self) -> dict[str, Any] | None:
        if self.tls:
            self.ca = CertificateAuthority("pkgloader test registry CA")
            server = self.ca.issue("127.0.0.1", dns=("localhost",), ips=("127.0.0.1",))
            self.ca_path.write_text(self.ca.cert_pem)
            self.server_cert_path.write_text(server.cert_pem)
            self.server_key_path.write_text(server.key_pem)
            self.server_key_path.chmod(0o600)
            self.cert_dir.mkdir(exist_ok=True)
            (self.cert_dir / "ca.crt").write_text(self.ca.cert_pem)
        if self.htpasswd is not None:
            tool = find_binary("htpasswd")
            lines = []
            for user, password in self.htpasswd.items():
                out = subprocess.run(
                    [tool, "-Bbn", user, password], capture_output=True, check=True, timeout=30
                ).stdout.decode()
                lines.append(out.strip())
            path = self.workdir / "htpasswd"
            path.write_text("\n".join(lines) + "\n")
            return {"htpasswd": {"realm": "pkgloader-test", "path": str(path)}}
        if self.token_server is not None:
            ts = self.token_server
            return {
                "token": {
                    "realm": ts.realm,
                    "service": ts.service,
                    "issuer": ts.issuer,
                    "rootcertbundle": str(ts.rootcertbundle_path),
                }
            }
        return None

    def _config(self, auth: Mapping[str, Any] | None) -> dict[str, Any]:
        http: dict[str, Any] = {
            "addr": self.host,
            "secret": secrets.token_hex(16),
            "relativeurls": self.relative_urls,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self.tls:
            http["tls"] = {"certificate": str(self.server_cert_path), "key": str(self.server_key_path)}
        config: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
        }
        if auth:
            config["auth"] = auth
        return config

    # -- request log ---------------------------------------------------------------

    def _read_log(self) -> None:
        with open(self.access_log_path, "rb") as f:
            f.seek(self._log_offset)
            data = f.read()
        self._log_offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for raw in lines:
            m = _ACCESS_RE.match(raw.decode("utf-8", "replace"))
            if not m:
                continue
            path, _, query = m["uri"].partition("?")
            self._entries.append(LoggedRequest(m["method"], path, query, int(m["status"])))

    def _sync(self) -> None:
        """Make sure every request completed so far is in ``self._entries``."""
        if not self.running:
            raise RuntimeError(f"registry at {self.url} is not running\n{self.stderr_tail()}")
        token = uuid.uuid4().hex
        self._sync_ids.add(token)
        self._read_log()
        with httpx.Client(verify=self.verify(), trust_env=False, timeout=5.0) as client:
            client.get(f"{self.url}/v2/", params={_SYNC_PARAM: token})
        needle = f"{_SYNC_PARAM}={token}"
        seen = len(self._entries)
        deadline = time.monotonic() + SYNC_TIMEOUT
        while True:
            self._read_log()
            if any(e.query == needle for e in self._entries[seen:]):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"sync request {needle} never reached the access log {self.access_log_path}")
            time.sleep(0.002)

    def _is_sync(self, entry: LoggedRequest) -> bool:
        return entry.query.startswith(f"{_SYNC_PARAM}=") and entry.query[len(_SYNC_PARAM) + 1 :] in self._sync_ids

    def mark(self) -> None:
        """Forget requests so far: ``requests()`` reports only what comes after."""
        self._sync()
        self._mark = len(self._entries)

    def request_log(self) -> list[LoggedRequest]:
        """Every request since ``mark()`` (or start) as LoggedRequest(method, path, query, status)."""
        self._sync()
        return [e for e in self._entries[self._mark :] if not self._is_sync(e)]

    def requests(self) -> list[tuple[str, str]]:
        """Every request since ``mark()`` (or start) as ``(method, path)``, query stripped."""
        return [(e.method, e.path) for e in self.request_log()]
