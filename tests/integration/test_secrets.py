"""A distinctive secret never leaves pkgloader (issue 13): not on stdout, not on stderr, not in a
log line at ``-v``/``-vv``, not in ``--json``, not in an exception's text, not in any file under
the cache directory.

The secret (:data:`SECRET`) is put everywhere a secret can be: the config (``auth`` table,
base64 ``auth``, a warg ``auth_token``, a proxy URL with a password), the environment
(``PKGLOADER_REGISTRY_<HOST>_PASSWORD``, ``..._AUTH_BEARER``, ``HTTPS_PROXY=http://u:SECRET@...``),
a docker ``config.json`` and a credential helper (a script on PATH). Then every path is run:

* config errors (malformed files and env, with the secret inside);
* auth errors and successes against real registries: the TLS registry with htpasswd basic auth
  and the ghcr-like one (token auth over TLS, CDN redirects), right and wrong secrets from each
  source, and a warg registry that refuses the token;
* network errors with every source configured at once: a registry that is down, a refused
  certificate, 503s, a connection cut mid-body, a real proxy (tinyproxy with basic auth) that
  works, refuses the password or cannot reach the registry, an unreachable warg registry.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import pytest

from pkgloader import _credentials
from pkgloader._client import Client
from pkgloader._config import Config
from pkgloader._credentials import env_host_key
from pkgloader._errors import PkgLoaderError
from support.wargserver import WargServer

SECRET = "zq7-canary-s3cr3t-4711"  # lower case: tinyproxy's BasicAuth takes [-a-z0-9._]+
USER = "alice"  # her password is SECRET everywhere
OTHER = "bob"  # his password is not SECRET: SECRET is the wrong password for him
OTHER_PASSWORD = "bob-real-pw"
PROXY_USER = "proxyuser"
REPO = "test/pkg"
REF = "test:pkg@=1.0.0"
FLAGS: list[tuple[str, ...]] = [("-v",), ("-vv", "--json"), ("--json",)]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def leak_forms() -> list[str]:
    """Every shape the secret could leak in: itself (and URL-quoted), its halves, and the
    base64 of each ``user:secret`` pair an Authorization or Proxy-Authorization header holds."""
    forms = [SECRET, quote(SECRET, safe=""), SECRET[:11], SECRET[11:]]
    for user in (USER, OTHER, PROXY_USER, ""):
        encoded = b64(f"{user}:{SECRET}")
        forms += [encoded, encoded.rstrip("=")]
    return forms


def assert_no_secret(texts: list[str], cache_dir: Path | None = None) -> None:
    forms = leak_forms()
    for text in texts:
        for form in forms:
            assert form not in text, f"{form!r} leaked in:\n{text}"
    if cache_dir is not None and cache_dir.exists():
        for path in cache_dir.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for form in forms:
                    assert form.encode() not in data, f"{form!r} leaked into {path}"
                    assert form not in str(path)


@pytest.fixture(autouse=True)
def _fresh_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _credentials.clear_cache()  # helper answers and parsed docker configs are cached per process
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate)
             for n in ("pkgloader", "pkgloader.http")}
    yield
    _credentials.clear_cache()
    for n, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(n)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


class Probe:
    """Runs CLI commands with each of FLAGS and keeps every byte they printed."""

    def __init__(self, run_cli: Callable[..., Any], cache_dir: Path) -> None:
        self.run_cli = run_cli
        self.cache_dir = cache_dir
        self.texts: list[str] = []

    def run(self, code: int, *args: Any, flags: list[tuple[str, ...]] = FLAGS) -> list[Any]:
        results = []
        for extra in flags:
            r = self.run_cli(*args, "--cache-dir", self.cache_dir, *extra)
            assert r.code == code, (args, extra, r)
            if "--json" in extra and code != 0:
                error = r.json()["error"]
                assert error["exit_code"] == code
                self.texts.append(json.dumps(error))
            if extra and extra[0] == "-vv" and code != 0 and code != 2:
                assert "Traceback" in r.err  # -v shows the traceback: it must not carry the secret either
            self.texts += [r.out, r.err]
            results.append(r)
        return results

    def check(self, *more: str) -> None:
        assert_no_secret(self.texts + list(more), self.cache_dir)


def library_texts(config_file: Path, cache_dir: Path, call: Callable[[Client], Any],
                  caplog: pytest.LogCaptureFixture) -> list[str]:
    """The same through the library: the error's text in every form, and the log records."""
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="pkgloader"):
        try:
            with Client(Config.load(config_files=[config_file], cache_dir=cache_dir)) as c:
                call(c)
        except PkgLoaderError as exc:
            texts += [exc.render(), repr(exc), str(exc), json.dumps(exc.to_json()), repr(exc.args)]
    texts.append(caplog.text)
    texts += [repr(r.args) for r in caplog.records]
    return texts


# --------------------------------------------------------------------------- set-up helpers


def ca_line(registry: Any) -> str:
    return f'extra_root_certificates = [{{ encoding = "pem", data = """{registry.ca_pem}""" }}]\n'


def config_text(host: str, scheme: str, oci_extra: str = "", tail: str = "") -> str:
    return (
        "[namespace_registries]\n"
        f'test = {{ registry = "{host}", metadata = {{ preferredProtocol = "oci", oci = {{ registry = "{host}" }} }} }}\n'
        f'[registry."{host}".oci]\n'
        f'protocol = "{scheme}"\n' + oci_extra + tail
    )


def install_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, username: str) -> None:
    """``docker-credential-canary`` on PATH, answering ``username`` / SECRET."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "docker-credential-canary"
    exe.write_text(f"#!{sys.executable} -I\nimport json, sys\nsys.stdin.read()\n"
                   f"print(json.dumps({{'ServerURL': 'x', 'Username': {username!r}, 'Secret': {SECRET!r}}}))\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def write_docker_config(data: dict[str, Any]) -> Path:
    path = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


SOURCES = ["config-table", "config-base64", "env-basic", "env-bearer", "docker-config", "cred-helper"]


def configure(source: str, host: str, username: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Put SECRET (as ``username``'s password, or as a bearer token) in ``source``; returns
    the lines to add to the registry's oci table."""
    key = env_host_key(host)
    if source == "config-table":
        return f'auth = {{ username = "{username}", password = "{SECRET}" }}\n'
    if source == "config-base64":
        return f'auth = "{b64(f"{username}:{SECRET}")}"\n'
    if source == "env-basic":
        monkeypatch.setenv(f"PKGLOADER_REGISTRY_{key}_USERNAME", username)
        monkeypatch.setenv(f"PKGLOADER_REGISTRY_{key}_PASSWORD", SECRET)
    elif source == "env-bearer":
        monkeypatch.setenv(f"PKGLOADER_REGISTRY_{key}_AUTH_BEARER", SECRET)
    elif source == "docker-config":
        write_docker_config({"auths": {host: {"auth": b64(f"{username}:{SECRET}")}}})
    else:
        install_helper(tmp_path, monkeypatch, username)
        write_docker_config({"credHelpers": {host: "canary"}})
    return ""


def closed_port() -> int:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------- config errors


BROKEN_CONFIGS = {
    "unterminated-auth-table": '[registry."r.example".oci]\nauth = {{ username = "alice", password = "{s}"\n',
    "auth-array": '[registry."r.example".oci]\nauth = ["{s}"]\n',
    "base64-auth-without-colon": '[registry."r.example".oci]\nauth = "{b}"\n',
    "warg-token-array": '[registry."w.example".warg]\nauth_token = ["{s}"]\n',
    "warg-token-unterminated": '[registry."w.example".warg]\nurl = "http://127.0.0.1:1"\nauth_token = "{s}\n',
    "proxy-bad-port": '[pkgloader]\nhttps_proxy = "http://proxyuser:{s}@127.0.0.1:port"\n',
    "proxy-array": '[pkgloader]\nproxy = ["http://proxyuser:{s}@127.0.0.1:3128"]\n',
}


@pytest.mark.parametrize("name", sorted(BROKEN_CONFIGS))
def test_config_errors_never_show_the_secret(name: str, tmp_path: Path, run_cli: Any,
                                             caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "broken.toml"
    f.write_text(BROKEN_CONFIGS[name].format(s=SECRET, b=b64(USER + SECRET)))
    probe = Probe(run_cli, tmp_path / "cache")
    if name in REGISTRY_SCOPED:  # a bad registry entry fails that registry only, as in wkg (issue 15)
        registry = REGISTRY_SCOPED[name]
        probe.run(0, "config", "show", "--origin", "--config", f)  # a warning
        for args in (("config", "resolve", "test:pkg"), ("fetch", REF), ("versions", "test:pkg"), ("info", REF)):
            probe.run(2, *args, "--config", f, "--registry", registry)  # registry-unusable, repeating why
        with caplog.at_level(logging.DEBUG, logger="pkgloader"):
            cfg = Config.load(config_files=[f])
            try:
                cfg.registry_config(registry).check_usable()
            except PkgLoaderError as exc:
                probe.texts += [exc.render(), repr(exc), json.dumps(exc.to_json()), *cfg.warnings]
            else:  # pragma: no cover
                pytest.fail("no error")
        probe.check(caplog.text)
        return
    for args in (("config", "show", "--origin"), ("config", "resolve", "test:pkg"), ("fetch", REF),
                 ("versions", "test:pkg"), ("info", REF)):
        probe.run(2, *args, "--config", f)
    with caplog.at_level(logging.DEBUG, logger="pkgloader"):
        try:
            Config.load(config_files=[f])
        except PkgLoaderError as exc:
            probe.texts += [exc.render(), repr(exc), json.dumps(exc.to_json())]
        else:  # pragma: no cover
            pytest.fail("no error")
    probe.check(caplog.text)


#: the broken configs whose problem is inside one [registry."NAME"] entry: warnings, then errors on use
REGISTRY_SCOPED = {"auth-array": "r.example", "base64-auth-without-colon": "r.example", "warg-token-array": "w.example"}


ENV_ERRORS = ["password-without-username", "username-without-password", "bad-https-proxy", "bad-http-proxy",
              "bad-docker-config", "bad-containers-auth", "bearer-and-half-basic"]


@pytest.mark.parametrize("case", ENV_ERRORS)
def test_environment_and_docker_config_errors_never_show_the_secret(case: str, tmp_path: Path, run_cli: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    host = f"127.0.0.1:{closed_port()}"
    key = env_host_key(host)
    f = tmp_path / "c.toml"
    f.write_text(config_text(host, "http"))
    if case == "password-without-username":
        monkeypatch.setenv(f"PKGLOADER_REGISTRY_{key}_PASSWORD", SECRET)
    elif case == "username-without-password":
        monkeypatch.setenv(f"PKGLOADER_REGISTRY_{key}_USERNAME", SECRET)  # a user name can be a token, too
    elif case == "bad-https-proxy":
        monkeypatch.setenv("HTTPS_PROXY", f"http://{PROXY_USER}:{SECRET}@127.0.0.1:bad")
    elif case == "bad-http-proxy":
        monkeypatch.setenv("HTTP_PROXY", f"ftp://{PROXY_USER}:{SECRET}@127.0.0.1:3128")
    elif case == "bad-docker-config":
        path = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"auths": {"%s": {"auth": "%s"' % (host, b64(f"{USER}:{SECRET}")))  # cut short
    elif case == "bad-containers-auth":
        path = tmp_path / "auth.json"
        path.write_text('{"auths": {"%s": {"auth": ["%s"]}}}' % (host, b64(f"{USER}:{SECRET}")))
        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    else:
        monkeypatch.setenv(f"PKGLOADER_REGISTRY_{key}_PASSWORD", SECRET)
        monkeypatch.setenv(f"WKG_REGISTRY_OTHER_EXAMPLE_AUTH_BEARER", SECRET)
    probe = Probe(run_cli, tmp_path / "cache")
    for args in (("fetch", REF, "-o", tmp_path / "out.wasm"), ("versions", "test:pkg"), ("info", REF)):
        probe.run(2, *args, "--config", f)
    probe.check()


def test_a_failing_credential_helper_that_prints_its_answer_is_not_quoted(tmp_path: Path, run_cli: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    host = f"127.0.0.1:{closed_port()}"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "docker-credential-canary"
    exe.write_text(f"#!/bin/sh\ncat >/dev/null\necho '{{\"Username\": \"{USER}\", \"Secret\": \"{SECRET}\"}}'\nexit 3\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    write_docker_config({"credHelpers": {host: "canary"}})
    f = tmp_path / "c.toml"
    f.write_text(config_text(host, "http", tail="[pkgloader]\nretries = 0\n"))
    probe = Probe(run_cli, tmp_path / "cache")
    results = probe.run(6, "versions", "test:pkg", "--config", f)  # the registry is down: a network error
    assert (f"warning: credential helper docker-credential-canary failed for {host} "
            "(exit status 3: output not shown: it may hold the credentials); continuing without it\n") in results[0].err
    probe.check()


# --------------------------------------------------------------------------- auth: real registries


@pytest.fixture
def htpasswd_registry(registry_factory: Any, oci_client: Any, wit_package: Any) -> Any:
    reg = registry_factory(tls=True, htpasswd={USER: SECRET, OTHER: OTHER_PASSWORD})
    oci_client(reg, username=OTHER, password=OTHER_PASSWORD).push_wasm(REPO, "1.0.0",
                                                                       wit_package("test", "pkg", "1.0.0"))
    return reg


@pytest.fixture
def private_ghcr(ghcr_registry_factory: Any, wit_package: Any) -> Any:
    ghcr = ghcr_registry_factory(users={USER: SECRET, OTHER: OTHER_PASSWORD}, anonymous_pull=False)
    ghcr.push_wasm(REPO, "1.0.0", wit_package("test", "pkg", "1.0.0").read_bytes())
    return ghcr


def _auth_paths(registry: Any, source: str, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch,
                wit_package: Any, caplog: pytest.LogCaptureFixture) -> None:
    wasm = wit_package("test", "pkg", "1.1.0")
    # the right secret (not for a bearer token: SECRET is no token the registry issued)
    texts: list[str] = []
    cache = tmp_path / "cache"
    if source != "env-bearer":
        with monkeypatch.context() as m:
            _credentials.clear_cache()
            f = tmp_path / "right.toml"
            f.write_text(config_text(registry.host, "https", ca_line(registry) + configure(source, registry.host, USER, tmp_path, m)))
            probe = Probe(run_cli, cache)
            probe.run(0, "fetch", REF, "-o", tmp_path / "pkg.wasm", "--overwrite", "--config", f)
            probe.run(0, "versions", "test:pkg", "--config", f)
            probe.run(0, "info", REF, "--config", f)
            probe.run(0, "publish", wasm, "--package", "test:pkg@1.1.0", "--force", "--config", f)
            texts += probe.texts
            texts += library_texts(f, cache, lambda c: c.fetch(REF, tmp_path / "lib.wasm", overwrite=True), caplog)
    # the wrong secret: SECRET is not bob's password (nor a token)
    _credentials.clear_cache()
    cache = tmp_path / "cache-wrong"  # a cached exact version is served without asking the registry
    f = tmp_path / "wrong.toml"
    f.write_text(config_text(registry.host, "https", ca_line(registry) + configure(source, registry.host, OTHER, tmp_path, monkeypatch)))
    probe = Probe(run_cli, cache)
    probe.run(4, "fetch", REF, "-o", tmp_path / "wrong.wasm", "--config", f)
    probe.run(4, "versions", "test:pkg", "--config", f)
    probe.run(4, "info", REF, "--config", f)
    probe.run(4, "publish", wasm, "--package", "test:pkg@1.2.0", "--config", f)
    texts += probe.texts
    texts += library_texts(f, cache, lambda c: c.versions("test:pkg"), caplog)
    assert "refused" in "".join(texts)
    assert_no_secret(texts, tmp_path / "cache")
    assert_no_secret([], cache)
    assert not (tmp_path / "wrong.wasm").exists()


@pytest.mark.parametrize("source", SOURCES)
def test_htpasswd_registry_never_shows_the_secret(source: str, htpasswd_registry: Any, tmp_path: Path, run_cli: Any,
                                                  monkeypatch: pytest.MonkeyPatch, wit_package: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    _auth_paths(htpasswd_registry, source, tmp_path, run_cli, monkeypatch, wit_package, caplog)


@pytest.mark.parametrize("source", SOURCES)
def test_ghcr_like_registry_never_shows_the_secret(source: str, private_ghcr: Any, tmp_path: Path, run_cli: Any,
                                                   monkeypatch: pytest.MonkeyPatch, wit_package: Any,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    _auth_paths(private_ghcr, source, tmp_path, run_cli, monkeypatch, wit_package, caplog)


def test_refused_password_with_anonymous_fallback_never_shows_the_secret(ghcr_registry_factory: Any, wit_package: Any,
                                                                         tmp_path: Path, run_cli: Any) -> None:
    """A public repository: the wrong password falls back to anonymous access, which works;
    the warning names where the password came from, not the password."""
    ghcr = ghcr_registry_factory(users={USER: SECRET, OTHER: OTHER_PASSWORD})
    ghcr.push_wasm(REPO, "1.0.0", wit_package("test", "pkg", "1.0.0").read_bytes())
    f = tmp_path / "c.toml"
    f.write_text(config_text(ghcr.host, "https", ca_line(ghcr) + f'auth = {{ username = "{OTHER}", password = "{SECRET}" }}\n'))
    line = next(i for i, text in enumerate(f.read_text().splitlines(), 1) if text.startswith("auth = "))
    probe = Probe(run_cli, tmp_path / "cache")
    results = probe.run(0, "versions", "test:pkg", "--config", f)
    assert (f'warning: registry {ghcr.host} did not accept the credentials from config registry."{ghcr.host}".oci.auth '
            f"(flag {f}:{line}) for repository:{REPO}:pull; trying anonymous access\n") in results[0].err
    probe.check()


def test_warg_token_never_shows(tmp_path: Path, run_cli: Any, caplog: pytest.LogCaptureFixture) -> None:
    with WargServer() as server:
        server.auth_token = "the-real-token"
        f = tmp_path / "warg.toml"
        f.write_text(f'[namespace_registries]\nacme = "warg.test"\n[registry."warg.test".warg]\n'
                     f'url = "{server.url}"\nauth_token = "{SECRET}"\n')
        probe = Probe(run_cli, tmp_path / "cache")
        probe.run(4, "versions", "acme:pkg", "--config", f)
        probe.run(4, "fetch", "acme:pkg@1", "-o", tmp_path / "x.wasm", "--config", f)
        probe.run(0, "config", "show", "--origin", "--config", f, flags=[(), ("--json",)])
        probe.check(*library_texts(f, tmp_path / "cache", lambda c: c.versions("acme:pkg"), caplog))


# --------------------------------------------------------------------------- network errors


@pytest.fixture
def everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``everywhere(host, scheme, oci_extra)``: a config with SECRET in every place at once
    (config auth, warg auth_token, [pkgloader] proxy keys for a scheme not used, env password
    and bearer for other names, docker auths and a credential helper for the host)."""

    def make(host: str, scheme: str, oci_extra: str = "", *, proxy_keys: bool = True) -> Path:
        key = env_host_key(host)
        monkeypatch.setenv(f"PKGLOADER_REGISTRY_{key}_USERNAME", USER)
        monkeypatch.setenv(f"PKGLOADER_REGISTRY_{key}_PASSWORD", SECRET)
        monkeypatch.setenv("PKGLOADER_REGISTRY_OTHER_EXAMPLE_AUTH_BEARER", SECRET)
        install_helper(tmp_path, monkeypatch, USER)
        write_docker_config({"auths": {"other.example": {"auth": b64(f"{USER}:{SECRET}")}},
                             "credHelpers": {host: "canary"}})
        tail = (f'[registry."w.example".warg]\nurl = "http://127.0.0.1:{closed_port()}"\nauth_token = "{SECRET}"\n'
                "[pkgloader]\nretries = 1\n")
        if proxy_keys:  # proxies for hosts no request goes to (NO_PROXY="*" keeps them unused)
            tail += f'proxy = "http://{PROXY_USER}:{SECRET}@127.0.0.1:{closed_port()}"\n'
        f = tmp_path / f"everywhere-{scheme}.toml"
        f.write_text(config_text(host, scheme, f'auth = {{ username = "{USER}", password = "{SECRET}" }}\n' + oci_extra, tail))
        return f

    return make


def test_registry_down(everywhere: Callable[..., Path], tmp_path: Path, run_cli: Any,
                       caplog: pytest.LogCaptureFixture) -> None:
    f = everywhere(f"127.0.0.1:{closed_port()}", "http")
    probe = Probe(run_cli, tmp_path / "cache")
    probe.run(6, "fetch", REF, "-o", tmp_path / "x.wasm", "--config", f)
    probe.run(6, "versions", "test:pkg", "--config", f)
    probe.run(6, "fetch", "w:pkg@1", "--registry", "w.example", "-o", tmp_path / "y.wasm", "--config", f)
    probe.check(*library_texts(f, tmp_path / "cache", lambda c: c.versions("test:pkg"), caplog))


def test_refused_certificate(everywhere: Callable[..., Path], htpasswd_registry: Any, wit_package: Any, tmp_path: Path,
                             run_cli: Any) -> None:
    f = everywhere(htpasswd_registry.host, "https")  # no CA: the certificate is refused
    probe = Probe(run_cli, tmp_path / "cache")
    probe.run(6, "fetch", REF, "-o", tmp_path / "x.wasm", "--config", f)
    probe.run(6, "publish", wit_package("test", "pkg", "9.0.0"), "--package", "test:pkg@9.0.0", "--config", f)
    probe.check()


@pytest.mark.parametrize("fault", ["503-manifest", "503-tags", "cut-blob", "500-token"])
def test_registry_faults(fault: str, everywhere: Callable[..., Path], registry_factory: Any, token_server_factory: Any,
                         fault_proxy: Any, oci_client: Any, wit_package: Any, tmp_path: Path, run_cli: Any,
                         caplog: pytest.LogCaptureFixture) -> None:
    ts = token_server_factory(users={USER: SECRET, OTHER: OTHER_PASSWORD}, anonymous_pull=False)
    reg = registry_factory(token_server=ts)
    oci_client(reg, username=USER, password=SECRET).push_wasm(REPO, "1.0.0", wit_package("test", "pkg", "1.0.0"))
    proxy = fault_proxy(reg)  # forwards Authorization: the credentials go along and must not come back
    if fault == "503-manifest":
        proxy.respond(r"/manifests/", 503, body="try later")
    elif fault == "503-tags":
        proxy.respond(r"/tags/list", 503)
    elif fault == "cut-blob":
        proxy.truncate(r"/blobs/", after=3)
    else:
        ts.fail_next(500, times=10, body=b"token service down")
    f = everywhere(proxy.host, "http")
    probe = Probe(run_cli, tmp_path / "cache")
    if fault == "503-tags":
        probe.run(6, "versions", "test:pkg", "--config", f)
    else:
        probe.run(6, "fetch", REF, "-o", tmp_path / "x.wasm", "--config", f)
    probe.check(*library_texts(f, tmp_path / "cache", lambda c: c.fetch(REF, tmp_path / "lib.wasm"), caplog))
    assert not (tmp_path / "x.wasm").exists()


@pytest.mark.parametrize("where", ["env", "config"])
def test_proxy_with_credentials(where: str, everywhere: Callable[..., Path], htpasswd_registry: Any,
                                tinyproxy_factory: Any, tmp_path: Path, run_cli: Any,
                                monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)  # conftest's "*" would keep every request off the proxy
    good = tinyproxy_factory(basic_auth=(PROXY_USER, SECRET))
    other = tinyproxy_factory(basic_auth=(PROXY_USER, "not-the-canary"))  # SECRET is the wrong password here

    def use(proxy: Any) -> Path:
        url = f"http://{PROXY_USER}:{SECRET}@{proxy.host}"
        if where == "env":
            monkeypatch.setenv("HTTPS_PROXY", url)
            monkeypatch.setenv("HTTP_PROXY", url)
            return everywhere(htpasswd_registry.host, "https", ca_line(htpasswd_registry), proxy_keys=False)
        f = everywhere(htpasswd_registry.host, "https", ca_line(htpasswd_registry), proxy_keys=False)
        f.write_text(f.read_text() + f'https_proxy = "{url}"\nhttp_proxy = "{url}"\n')
        return f

    probe = Probe(run_cli, tmp_path / "cache")
    f = use(good)
    good.mark()
    probe.run(0, "fetch", REF, "-o", tmp_path / "x.wasm", "--overwrite", "--config", f)
    assert good.requests()  # really through the proxy
    probe.run(0, "config", "show", "--origin", "--config", f, flags=[(), ("--json",)])
    f = use(other)
    probe.run(6, "versions", "test:pkg", "--config", f)  # the proxy refuses the password
    cold = Probe(run_cli, tmp_path / "cache-2")  # a cached exact version needs no proxy
    cold.run(6, "fetch", REF, "-o", tmp_path / "y.wasm", "--config", f)
    probe.texts += cold.texts
    texts = library_texts(f, tmp_path / "cache", lambda c: c.versions("test:pkg"), caplog)
    # the proxy cannot reach the registry (502 from the proxy)
    f = use(good)
    dead = f.read_text().replace(htpasswd_registry.host, f"127.0.0.1:{closed_port()}")
    f.write_text(dead)
    probe.run(6, "versions", "test:pkg", "--config", f)
    probe.check(*texts)
