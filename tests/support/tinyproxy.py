"""A real forward HTTP proxy on loopback: Debian's ``tinyproxy`` (1.11), for proxy tests.

    with TinyProxy(tmp_path) as proxy:                     # proxy.url -> http://127.0.0.1:PORT
        proxy.mark()
        httpx.get(f"{registry.url}/v2/", proxy=proxy.url)
        assert proxy.requests() == [("GET", f"{registry.url}/v2/")]
        # HTTPS goes through a tunnel: [("CONNECT", "127.0.0.1:PORT")]

    with TinyProxy(tmp_path, basic_auth=("user", "pass")) as proxy:
        ...  # proxy.url_with_credentials -> http://user:pass@127.0.0.1:PORT

``tinyproxy -d -c CONF`` runs in the foreground with a config generated in the work dir:
``Listen 127.0.0.1``, a free ``Port``, ``Allow 127.0.0.1``, no ``ConnectPort`` line (so
CONNECT to any port is allowed), no upstream, ``DisableViaHeader Yes``, ``LogLevel Connect``
and ``LogFile`` in the work dir, and ``BasicAuth user pass`` when ``basic_auth`` is given
(tinyproxy accepts only ``[-a-z0-9._]`` there). No ``User``/``Group``/``PidFile``: tinyproxy
then keeps running as the current user (it logs a warning as root, nothing more), so the
log file stays writable and nothing is written outside the work dir.

Request accounting
------------------
For every client connection tinyproxy writes, at ``LogLevel Connect``::

    CONNECT   Dec 03 07:59:34.520 [5390]: Connect (file descriptor 5): 127.0.0.1
    CONNECT   Dec 03 07:59:34.520 [5390]: Request (file descriptor 5): GET http://127.0.0.1:18889/ HTTP/1.1
    CONNECT   Dec 03 07:59:34.521 [5390]: Established connection to host "127.0.0.1" using file descriptor 6.

The ``Request`` line is the raw request line; it is written (``write`` + ``fsync``, under a
mutex) right after the line is read, i.e. *before* tinyproxy checks credentials, connects
upstream or answers. So every request a client has had any answer to is already in the
file, also requests refused with 407/401. ``requests()`` reports ``(method, target)`` of
those lines since ``mark()``: ``("GET", "http://127.0.0.1:5000/v2/")`` for plain HTTP
(absolute-form) and ``("CONNECT", "127.0.0.1:5001")`` for a TLS tunnel (requests inside a
tunnel are invisible to the proxy, one CONNECT per client connection).

tinyproxy sends ``Connection: close`` upstream and closes the client connection after each
plain-HTTP exchange, so every proxied plain-HTTP request is its own client connection and
its own ``Request`` line: counts are exact.

As belt and braces ``mark()``/``requests()`` also *synchronise* like ``RegistryServer``: they
ask the proxy for its statistics page (``GET http://tinyproxy.stats/?pkgloader-sync=<uuid>``
through the proxy, which tinyproxy answers itself) and wait, bounded, until that request's
line is in the log. Those sentinel lines are never reported. The same page carries
tinyproxy's "denied connections" counter, so ``denied()`` says how many requests since
``mark()`` the proxy refused (407 without credentials, 401 with wrong ones, 403 by ACL).

Quirk: tinyproxy 1.11 answers *wrong* proxy credentials with ``401 Unauthorized`` and
``WWW-Authenticate`` (not 407/``Proxy-Authenticate``); only missing credentials get 407.
"""

from __future__ import annotations

import base64
import http.client
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, urlencode

from support.registry import _set_pdeathsig, find_binary, free_port

__all__ = ["ProxiedRequest", "TinyProxy", "TinyProxyStartError"]

STARTUP_TIMEOUT = 10.0
SYNC_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
STAT_HOST = "tinyproxy.stats"
_SYNC_PARAM = "pkgloader-sync"
_CRED_RE = re.compile(r"^[-a-z0-9._]+$")

# CONNECT   Dec 03 07:59:34.520 [5390]: Request (file descriptor 5): GET http://127.0.0.1:18889/ HTTP/1.1
_REQUEST_RE = re.compile(
    r"^\S+\s+\w{3} +\d+ [\d:.]+ \[\d+\]: Request \(file descriptor (?P<fd>\d+)\): "
    r"(?P<method>\S+) (?P<target>\S+)(?: (?P<protocol>\S+))?\s*$"
)
_DENIED_RE = re.compile(r"Number of denied connections: (\d+)")


class ProxiedRequest(NamedTuple):
    """One ``Request`` line of tinyproxy's log."""

    method: str
    target: str  # absolute URL (plain HTTP) or host:port (CONNECT)
    protocol: str  # e.g. "HTTP/1.1" ('' if the line had none)
    fd: int  # tinyproxy's client file descriptor (reused across connections)


class TinyProxyStartError(RuntimeError):
    pass


INSTALL_HINT = "apt-get install tinyproxy"


class TinyProxy:
    """``tinyproxy`` on 127.0.0.1:free-port (see module docstring).

    Args:
        workdir: a directory owned by the test (config and log go there).
        basic_auth: ``(user, password)`` the proxy demands (``[-a-z0-9._]+`` each).
        log_level: tinyproxy ``LogLevel``; ``"Connect"`` (default) or ``"Info"`` (also
            logs connection set-up/tear-down details, for debugging).
        binary: path of ``tinyproxy`` (default: found on PATH or /usr/bin).
    """

    def __init__(
        self,
        workdir: Path | str,
        *,
        basic_auth: tuple[str, str] | None = None,
        log_level: str = "Connect",
        binary: str | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        if basic_auth is not None:
            for part in basic_auth:
                if not _CRED_RE.match(part):
                    raise ValueError(f"tinyproxy BasicAuth accepts only [-a-z0-9._]+, not {part!r}")
        if log_level.lower() not in ("connect", "info"):
            raise ValueError("log_level must be 'Connect' or 'Info' (requests are logged at Connect)")
        self.workdir = Path(workdir)
        self.basic_auth = basic_auth
        self.log_level = log_level
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._partial = b""
        self._entries: list[ProxiedRequest] = []
        self._mark = 0
        self._sync_ids: set[str] = set()
        self._denied_at_mark = 0

    # -- facts ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no credentials, even when the proxy wants some)."""
        return f"http://{self.host}"

    @property
    def url_with_credentials(self) -> str:
        """``http://user:pass@127.0.0.1:PORT``; only for a proxy with ``basic_auth``."""
        if self.basic_auth is None:
            raise AttributeError("url_with_credentials: this proxy has no basic_auth")
        user, password = (quote(p, safe="") for p in self.basic_auth)
        return f"http://{user}:{password}@{self.host}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "tinyproxy.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "tinyproxy.log"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / "tinyproxy.stderr"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        out = []
        for path in (self.log_path, self.stderr_path):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            out.append(f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out) or "<no tinyproxy log>"

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> "TinyProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "TinyProxy":
        if self._proc is not None:
            raise RuntimeError("tinyproxy already started")
        try:
            binary = self.binary or find_binary("tinyproxy")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} ({INSTALL_HINT})") from None
        self.workdir.mkdir(parents=True, exist_ok=True)
        last_error: TinyProxyStartError | None = None
        for _attempt in range(5):  # retry only when another process grabbed our free port
            self.port = free_port()
            self.config_path.write_text(self._config())
            try:
                self._spawn(binary)
                self._wait_ready()
                return self
            except TinyProxyStartError as err:
                self._kill()
                last_error = err
                if "could not create listening sockets" not in str(err).lower():
                    raise
            except BaseException:
                self._kill()
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
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)

    def _config(self) -> str:
        lines = [
            "# generated by tests/support/tinyproxy.py",
            "Listen 127.0.0.1",
            f"Port {self.port}",
            "Timeout 60",
            "MaxClients 100",
            f"LogLevel {self.log_level}",
            f'LogFile "{self.log_path}"',
            f'StatHost "{STAT_HOST}"',
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
            # no ConnectPort line: CONNECT to every port is allowed
            # no User/Group/PidFile: run as the current user, write nothing outside workdir
        ]
        if self.basic_auth is not None:
            lines.append(f"BasicAuth {self.basic_auth[0]} {self.basic_auth[1]}")
        return "\n".join(lines) + "\n"

    def _spawn(self, binary: str) -> None:
        self._entries.clear()
        self._partial = b""
        self._log_offset = 0
        self._mark = 0
        self._denied_at_mark = 0
        self.log_path.write_bytes(b"")
        with open(self.stderr_path, "wb") as err:
            self._proc = subprocess.Popen(
                [binary, "-d", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                preexec_fn=_set_pdeathsig if sys.platform.startswith("linux") else None,
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise TinyProxyStartError(
                    f"tinyproxy exited with code {code} before listening on {self.host}\n"
                    f"config: {self.config_path}\n{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    pass
            except OSError:
                time.sleep(0.01)
                continue
            # the port is open: make sure it is tinyproxy (not some other process that
            # grabbed the port) by fetching its stats page once
            try:
                self._stats(timeout=2.0)
            except (OSError, http.client.HTTPException) as exc:
                if not self.running:
                    continue
                raise TinyProxyStartError(f"port {self.port} open but no tinyproxy answer: {exc!r}") from None
            return
        raise TinyProxyStartError(f"tinyproxy did not listen on {self.host} within {self.startup_timeout:.0f}s\n{self.log_tail()}")

    # -- request log -------------------------------------------------------------------

    def _stats(self, params: dict[str, str] | None = None, timeout: float = 5.0) -> str:
        """tinyproxy's own statistics page, asked for through the proxy (plain http.client:
        cheaper than an httpx client, and tinyproxy answers it without going upstream)."""
        headers = {"Host": STAT_HOST}
        if self.basic_auth is not None:
            user, password = self.basic_auth
            headers["Proxy-Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        target = f"http://{STAT_HOST}/" + (f"?{urlencode(params)}" if params else "")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
            body = resp.read().decode("utf-8", "replace")
        finally:
            conn.close()
        if resp.status != 200:
            raise OSError(f"tinyproxy stats page: HTTP {resp.status}")
        return body

    def _read_log(self) -> None:
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            data = f.read()
        self._log_offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for raw in lines:
            m = _REQUEST_RE.match(raw.decode("utf-8", "replace"))
            if m:
                self._entries.append(ProxiedRequest(m["method"], m["target"], m["protocol"] or "", int(m["fd"])))

    def _sync(self) -> int:
        """Make sure every request answered so far is in ``_entries``; return the proxy's
        denied-connections counter."""
        if not self.running:
            raise RuntimeError(f"tinyproxy at {self.url} is not running\n{self.log_tail()}")
        token = uuid.uuid4().hex
        self._sync_ids.add(token)
        seen = len(self._entries)
        page = self._stats({_SYNC_PARAM: token})
        m = _DENIED_RE.search(page)
        denied = int(m.group(1)) if m else 0
        deadline = time.monotonic() + SYNC_TIMEOUT
        while True:
            self._read_log()
            if any(self._is_sync(e) and e.target.endswith(token) for e in self._entries[seen:]):
                return denied
            if time.monotonic() > deadline:
                raise RuntimeError(f"sync request {token} never reached tinyproxy's log {self.log_path}")
            time.sleep(0.002)

    def _is_sync(self, entry: ProxiedRequest) -> bool:
        prefix = f"http://{STAT_HOST}/?{_SYNC_PARAM}="
        return entry.target.startswith(prefix) and entry.target[len(prefix) :] in self._sync_ids

    def mark(self) -> None:
        """Forget requests so far: ``requests()``/``denied()`` report only what comes after."""
        self._denied_at_mark = self._sync()
        self._mark = len(self._entries)

    def request_log(self) -> list[ProxiedRequest]:
        """Every request line since ``mark()`` (or start), sentinels excluded."""
        self._sync()
        return [e for e in self._entries[self._mark :] if not self._is_sync(e)]

    def requests(self) -> list[tuple[str, str]]:
        """``[(method, target), ...]`` since ``mark()``: ``("GET", "http://127.0.0.1:P/v2/")``
        or ``("CONNECT", "127.0.0.1:P")``. Includes requests the proxy refused."""
        return [(e.method, e.target) for e in self.request_log()]

    def denied(self) -> int:
        """How many requests since ``mark()`` tinyproxy refused (407 no credentials,
        401 wrong credentials, 403 ACL), from its statistics counter."""
        return self._sync() - self._denied_at_mark
