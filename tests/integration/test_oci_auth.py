"""TLS and authentication against real registries: a TLS registry with htpasswd basic auth
(self-signed CA) and a plain-HTTP registry using a Docker token server. Credentials come from
the config (table or base64), docker ``config.json``, or ``PKGLOADER_REGISTRY_<HOST>_*`` env
variables; secrets never show up in any output."""

from __future__ import annotations

import base64
import json
import logging
import os
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from pkgloader._client import Client
from pkgloader._config import Config
from pkgloader._credentials import env_host_key
from pkgloader._errors import AuthError, TLSError
from support.fixtures import TLS_USERS, TOKEN_USERS
from support.registry import RegistryServer

REPO = "test/pkg"
REF = "test:pkg@=1.0.0"
WHAT = "test:pkg@1.0.0"
TLS_USER, TLS_PASSWORD = next(iter(TLS_USERS.items()))
TOKEN_USER, TOKEN_PASSWORD = next(iter(TOKEN_USERS.items()))


# --------------------------------------------------------------------------- helpers


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def toml_auth(username: str, password: str) -> str:
    return f'auth = {{ username = "{username}", password = "{password}" }}\n'


def ca_lines(registry: RegistryServer, encoding: str = "pem") -> str:
    if encoding == "der":
        data = base64.b64encode(registry.ca.root.cert_der).decode()  # type: ignore[union-attr]
        return f'extra_root_certificates = [{{ encoding = "der", data = "{data}" }}]\n'
    return f'extra_root_certificates = [{{ encoding = "pem", data = """{registry.ca_pem}""" }}]\n'


def write_config(registry: Any, tmp_path: Path, extra: str = "", name: str = "pkgloader-test.toml") -> Path:
    """Config for ``test:*`` on ``registry``; ``extra`` goes into its ``[registry."HOST".oci]``."""
    text = textwrap.dedent(f"""
        [namespace_registries]
        test = {{ registry = "{registry.host}", metadata = {{ preferredProtocol = "oci", oci = {{ registry = "{registry.host}" }} }} }}
        [registry."{registry.host}".oci]
        protocol = "{registry.scheme}"
        """) + extra
    f = tmp_path / name
    f.write_text(text)
    return f


def client(registry: Any, tmp_path: Path, extra: str = "") -> Client:
    return Client(Config.load(config_files=[write_config(registry, tmp_path, extra)], cache_dir=tmp_path / "cache"))


def cli_args(registry: Any, tmp_path: Path, extra: str = "") -> list[Any]:
    return ["--config", write_config(registry, tmp_path, extra), "--cache-dir", tmp_path / "cache"]


def line_of(path: Path, prefix: str) -> int:
    """1-based number of the first line of ``path`` starting with ``prefix``."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(prefix))


def write_docker_config(registry: Any, username: str, password: str, key: str | None = None) -> Path:
    path = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {key or registry.host: {"auth": b64(f"{username}:{password}")}}}))
    return path


def env_names(registry: Any) -> tuple[str, str]:
    key = env_host_key(registry.host)
    assert key == registry.host.replace(".", "_").replace(":", "_")  # 127_0_0_1_PORT
    return f"PKGLOADER_REGISTRY_{key}_USERNAME", f"PKGLOADER_REGISTRY_{key}_PASSWORD"


def tokens(server: Any) -> list[tuple[str | None, bool, tuple[str, ...], int]]:
    """(user, credentials sent, scopes, status) of each token request since ``mark()``."""
    return [(r.username, r.auth_sent, r.scopes, r.status) for r in server.token_requests()]


@pytest.fixture(autouse=True)
def restore_loggers():  # type: ignore[no-untyped-def]
    """``pkgloader -vv`` run in-process attaches a stderr handler (bound to this test's
    captured stderr) to the httpx/httpcore loggers and never removes it; later tests in the
    process would log into a closed stream. Put the loggers back as they were."""
    names = ("pkgloader", "httpx", "httpcore")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names}
    yield
    for n, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(n)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.fixture
def tls_published(tls_registry, oci_client, wit_package) -> bytes:  # type: ignore[no-untyped-def]
    wasm = wit_package("test", "pkg", "1.0.0").read_bytes()
    oci_client(tls_registry).push_wasm(REPO, "1.0.0", wasm)
    return wasm


@pytest.fixture
def token_published(token_registry, oci_client, wit_package) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    oci = oci_client(token_registry)
    files = {}
    for v in ("1.0.0", "2.0.0"):
        files[v] = wit_package("test", "pkg", v).read_bytes()
        oci.push_wasm(REPO, v, files[v])
    return files


# --------------------------------------------------------------------------- TLS


@pytest.mark.parametrize("encoding", ["pem", "der"])
def test_tls_verified_with_extra_root_certificates(encoding: str, tls_registry, tls_published, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tls_registry.mark()
    with client(tls_registry, tmp_path, ca_lines(tls_registry, encoding) + toml_auth(TLS_USER, TLS_PASSWORD)) as c:
        assert [str(v.version) for v in c.versions("test:pkg")] == ["1.0.0"]
        res = c.fetch(REF, tmp_path / "pkg.wasm")
    assert res.path.read_bytes() == tls_published
    # the first request learns the Basic challenge; after that credentials go along up front
    assert [(r.method, r.path.rsplit("/", 2)[-2], r.status) for r in tls_registry.request_log()] == [
        ("GET", "tags", 401), ("GET", "tags", 200), ("GET", "manifests", 200), ("GET", "blobs", 200)]


def test_tls_without_the_ca_is_a_tls_error(tls_registry, tls_published, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    extra = toml_auth(TLS_USER, TLS_PASSWORD)
    host = tls_registry.host
    expected = (
        f"error[tls-error]: the TLS certificate of {host} was refused: unable to get local issuer certificate\n"
        f"  while requesting {tls_registry.url}/v2/{REPO}/manifests/1.0.0\n"
        "  certificate subject: CN=127.0.0.1\n"
        "  certificate issuer:  CN=pkgloader test registry CA\n"
        f'  hint: if {host} uses a private CA, add the CA with extra_root_certificates under [registry."{host}".oci] '
        'or point SSL_CERT_FILE at it (trust_store = "system" uses the operating system\'s store)'
    )
    with client(tls_registry, tmp_path, extra) as c:
        with pytest.raises(TLSError) as ei:
            c.fetch(REF, tmp_path / "pkg.wasm")
    assert ei.value.render() == expected
    tls_registry.mark()
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", *cli_args(tls_registry, tmp_path, extra), "--json")
    assert (r.code, r.err) == (6, expected + "\n")
    assert r.json()["error"]["code"] == "tls-error"  # type: ignore[index]
    assert not (tmp_path / "pkg.wasm").exists()
    assert tls_registry.requests() == []  # no request ever got through


def test_tls_accept_invalid_certificates(tls_registry, tls_published, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    extra = "accept_invalid_certificates = true\n" + toml_auth(TLS_USER, TLS_PASSWORD)
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", *cli_args(tls_registry, tmp_path, extra), "-q")
    assert (r.code, r.err) == (0, "")
    assert (tmp_path / "pkg.wasm").read_bytes() == tls_published


# --------------------------------------------------------------------------- basic auth


@pytest.mark.parametrize("form", ["table", "base64"])
def test_basic_auth_from_config(form: str, tls_registry, tls_published, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    auth = toml_auth(TLS_USER, TLS_PASSWORD) if form == "table" else f'auth = "{b64(f"{TLS_USER}:{TLS_PASSWORD}")}"\n'
    args = cli_args(tls_registry, tmp_path, ca_lines(tls_registry) + auth)
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", *args, "-q")
    assert (r.code, r.err) == (0, "")
    assert (tmp_path / "pkg.wasm").read_bytes() == tls_published
    # the same credentials push
    new = wit_package("test", "pkg", "1.1.0")
    r = run_cli("publish", new, "--package", "test:pkg@1.1.0", *args, "-q")
    assert r.code == 0, r
    r = run_cli("versions", "test:pkg", *args)
    assert (r.code, r.out) == (0, "1.0.0\n1.1.0\n")


def test_basic_auth_wrong_password_is_auth_failed(tls_registry, tls_published, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(tls_registry, tmp_path, ca_lines(tls_registry) + toml_auth(TLS_USER, "not-the-password"))
    source = f'config registry."{tls_registry.host}".oci.auth (flag {cfg}:{line_of(cfg, "auth = ")})'
    expected = "\n".join([
        # the fallback to anonymous access is announced, and the error says both were refused
        f"warning: registry {tls_registry.host} did not accept the credentials from {source} for repository:{REPO}:pull; "
        "trying anonymous access",
        f"error[auth-failed]: registry {tls_registry.host} refused the credentials from {source} for repository:{REPO}:pull, "
        "and anonymous access was refused too",
        "  hint: check the username and password (or token) and that the account may access this repository",
    ])
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", "--config", cfg, "--cache-dir", tmp_path / "cache", "--json")
    assert (r.code, r.err) == (4, expected + "\n")
    assert r.json()["error"]["code"] == "auth-failed"  # type: ignore[index]
    assert not (tmp_path / "pkg.wasm").exists()


def test_basic_auth_without_credentials_says_how_to_configure_them(tls_registry, tls_published, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    # a 401 without credentials is "authentication required" (exit 4), not "not found" (3)
    cfg = write_config(tls_registry, tmp_path, ca_lines(tls_registry))
    r = run_cli("fetch", "test:pkg@1", "-o", tmp_path / "pkg.wasm", "--config", cfg, "--cache-dir", tmp_path / "cache",
                "--json")
    host = tls_registry.host
    assert (r.code, r.err) == (4, "\n".join([
        f"error[auth-required]: registry {host} requires authentication for repository:{REPO}:pull (HTTP 401)",
        f"  no credentials are configured for {host}",
        "  a registry may answer so for a repository that does not exist, too",
        f'  hint: configure credentials: auth under [registry."{host}".oci], docker login, '
        f"or PKGLOADER_REGISTRY_{env_host_key(host)}_USERNAME/_PASSWORD; or check the package name",
    ]) + "\n")
    assert r.json()["error"]["exit_code"] == 4  # type: ignore[index]
    assert not (tmp_path / "pkg.wasm").exists()


def test_docker_config_json_is_used_when_the_config_has_no_auth(tls_registry, tls_published, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    write_docker_config(tls_registry, TLS_USER, TLS_PASSWORD)
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", *cli_args(tls_registry, tmp_path, ca_lines(tls_registry)), "-q")
    assert (r.code, r.err) == (0, "")
    assert (tmp_path / "pkg.wasm").read_bytes() == tls_published


def test_config_auth_wins_over_docker_config_json(tls_registry, tls_published, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    write_docker_config(tls_registry, TLS_USER, "stale-docker-password")
    extra = ca_lines(tls_registry) + toml_auth(TLS_USER, TLS_PASSWORD)
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", *cli_args(tls_registry, tmp_path, extra), "-q")
    assert (r.code, r.err) == (0, "")


def test_env_username_and_password(tls_registry, tls_published, tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    user_var, pass_var = env_names(tls_registry)
    monkeypatch.setenv(user_var, TLS_USER)
    monkeypatch.setenv(pass_var, TLS_PASSWORD)
    write_docker_config(tls_registry, TLS_USER, "stale-docker-password")  # env wins over it
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", *cli_args(tls_registry, tmp_path, ca_lines(tls_registry)), "-q")
    assert (r.code, r.err) == (0, "")
    assert (tmp_path / "pkg.wasm").read_bytes() == tls_published


# --------------------------------------------------------------------------- token auth


def test_token_registry_anonymous_pull(token_registry, token_published, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ts = token_registry.token_server
    ts.mark()
    with client(token_registry, tmp_path) as c:
        assert [str(v.version) for v in c.versions("test:pkg")] == ["1.0.0", "2.0.0"]
        assert c.read_bytes(REF) == token_published["1.0.0"]
    # one anonymous token for the repository's pull scope, used for the tags, manifest and blob
    assert tokens(ts) == [(None, False, (f"repository:{REPO}:pull",), 200)]


def test_token_registry_push_with_config_credentials(token_registry, wit_package, oci_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ts = token_registry.token_server
    wasm = wit_package("test", "pkg", "3.0.0")
    ts.mark()
    with client(token_registry, tmp_path, toml_auth(TOKEN_USER, TOKEN_PASSWORD)) as c:
        result = c.publish(wasm, "test:pkg@=3.0.0")
    assert tokens(ts) == [(TOKEN_USER, True, (f"repository:{REPO}:pull,push",), 200)]
    manifest = oci_client(token_registry).get_manifest(REPO, "3.0.0")
    assert manifest.digest == result.manifest_digest
    assert oci_client(token_registry).get_blob(REPO, result.layer_digest) == wasm.read_bytes()


def test_token_registry_push_without_credentials_is_refused(token_registry, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    wasm = wit_package("test", "pkg", "3.0.0")
    r = run_cli("publish", wasm, "--package", "test:pkg@3.0.0", *cli_args(token_registry, tmp_path), "-q")
    assert (r.code, r.err) == (4, "\n".join([
        f"error[auth-failed]: registry {token_registry.host} refused to accept an upload to {REPO} (HTTP 401)",
        "  no credentials are configured for this registry",
        f'  hint: configure credentials to push: auth under [registry."{token_registry.host}".oci], docker login, '
        f"or PKGLOADER_REGISTRY_{env_host_key(token_registry.host)}_USERNAME/_PASSWORD",
    ]) + "\n")


def test_token_registry_push_with_pull_only_credentials_is_refused(registry_factory, token_server_factory, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    ts = token_server_factory(grants={"bob": {"*": ["pull"]}})
    reg = registry_factory(token_server=ts)
    cfg = write_config(reg, tmp_path, toml_auth("bob", TOKEN_USERS["bob"]))
    r = run_cli("publish", wit_package("test", "pkg", "3.0.0"), "--package", "test:pkg@3.0.0", "--config", cfg,
                "--cache-dir", tmp_path / "cache", "-q")
    assert (r.code, r.err) == (4, "\n".join([
        f"error[auth-failed]: registry {reg.host} refused to accept an upload to {REPO} (HTTP 401)",
        f'  credentials from config registry."{reg.host}".oci.auth (flag {cfg}:{line_of(cfg, "auth = ")})',
        "  hint: check that these credentials may push to this repository",
    ]) + "\n")


def test_one_token_per_scope_is_reused_across_calls(token_registry, token_published, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ts = token_registry.token_server
    with client(token_registry, tmp_path, toml_auth(TOKEN_USER, TOKEN_PASSWORD)) as c:
        ts.mark()
        c.fetch(REF, tmp_path / "one.wasm")
        assert tokens(ts) == [(TOKEN_USER, True, (f"repository:{REPO}:pull",), 200)]
        ts.mark()
        token_registry.mark()
        res = c.fetch("test:pkg@=2.0.0", tmp_path / "two.wasm")
        assert tokens(ts) == []  # same realm, service and scope: the cached token
        # ... and no 401 round trip either: the token goes along with the first request
        assert [(r.path, r.status) for r in token_registry.request_log()] == [
            (f"/v2/{REPO}/manifests/2.0.0", 200), (f"/v2/{REPO}/blobs/{res.release.digest}", 200)]
    assert (tmp_path / "two.wasm").read_bytes() == token_published["2.0.0"]


def test_wrong_password_on_pull_falls_back_to_one_anonymous_attempt(token_registry, token_published, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    ts = token_registry.token_server
    ts.mark()
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm",
                *cli_args(token_registry, tmp_path, toml_auth(TOKEN_USER, "wrong-password")), "-q")
    assert (r.code, r.err) == (0, "")
    assert (tmp_path / "pkg.wasm").read_bytes() == token_published["1.0.0"]
    scope = (f"repository:{REPO}:pull",)
    assert tokens(ts) == [(TOKEN_USER, True, scope, 401), (None, False, scope, 200)]


def test_wrong_password_on_a_private_repository_is_auth_failed(registry_factory, token_server_factory, oci_client, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    ts = token_server_factory(anonymous_pull=False)
    reg = registry_factory(token_server=ts)
    oci_client(reg).push_wasm(REPO, "1.0.0", wit_package("test", "pkg", "1.0.0"))
    cfg = write_config(reg, tmp_path, toml_auth(TOKEN_USER, "wrong-password"))
    ts.mark()
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", "--config", cfg, "--cache-dir", tmp_path / "cache")
    source = f'config registry."{reg.host}".oci.auth (flag {cfg}:{line_of(cfg, "auth = ")})'
    assert (r.code, r.err) == (4, "\n".join([
        f"warning: registry {reg.host} did not accept the credentials from {source} for repository:{REPO}:pull; "
        "trying anonymous access",
        f"error[auth-failed]: registry {reg.host} refused the credentials from {source} for repository:{REPO}:pull, "
        "and anonymous access was refused too",
        "  hint: check the username and password (or token) and that the account may access this repository",
    ]) + "\n")
    scope = (f"repository:{REPO}:pull",)
    assert tokens(ts) == [(TOKEN_USER, True, scope, 401), (None, False, scope, 200)]


def test_docker_config_json_for_token_registry_push(token_registry, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    write_docker_config(token_registry, TOKEN_USER, TOKEN_PASSWORD, key=f"https://{token_registry.host}")
    ts = token_registry.token_server
    ts.mark()
    r = run_cli("publish", wit_package("test", "pkg", "3.0.0"), "--package", "test:pkg@3.0.0",
                *cli_args(token_registry, tmp_path), "-q")
    assert (r.code, r.err) == (0, "")
    assert [(u, s) for u, _, _, s in tokens(ts)] == [(TOKEN_USER, 200)]


def test_static_bearer_token_from_env(token_registry, token_published, tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    ts = token_registry.token_server
    token = httpx.get(ts.realm, params={"service": ts.service, "scope": f"repository:{REPO}:pull"},
                      auth=(TOKEN_USER, TOKEN_PASSWORD), trust_env=False).json()["token"]
    monkeypatch.setenv(f"WKG_REGISTRY_{env_host_key(token_registry.host)}_AUTH_BEARER", token)
    ts.mark()
    token_registry.mark()
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", *cli_args(token_registry, tmp_path), "-q")
    assert (r.code, r.err) == (0, "")
    assert (tmp_path / "pkg.wasm").read_bytes() == token_published["1.0.0"]
    assert tokens(ts) == []  # the static token is sent as is
    assert [r.status for r in token_registry.request_log()] == [200, 200]


# --------------------------------------------------------------------------- secrets


SECRET_SOURCES = ["config-table", "config-base64", "env", "docker-config"]


def _configure(source: str, registry: Any, tmp_path: Path, password: str, monkeypatch: pytest.MonkeyPatch, base: str = "") -> list[Any]:
    extra = base
    if source == "config-table":
        extra += toml_auth(TLS_USER, password)
    elif source == "config-base64":
        extra += f'auth = "{b64(f"{TLS_USER}:{password}")}"\n'
    elif source == "env":
        user_var, pass_var = env_names(registry)
        monkeypatch.setenv(user_var, TLS_USER)
        monkeypatch.setenv(pass_var, password)
    else:
        write_docker_config(registry, TLS_USER, password)
    return cli_args(registry, tmp_path, extra)


def _assert_no_secret(password: str, *texts: str) -> None:
    forms = [password, b64(f"{TLS_USER}:{password}"), b64(f"{TLS_USER}:{password}").rstrip("=")]
    for text in texts:
        for form in forms:
            assert form not in text


@pytest.mark.parametrize("source", SECRET_SOURCES)
def test_secrets_never_appear_in_output_or_logs(source: str, tls_registry, tls_published, wit_package, tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    args = _configure(source, tls_registry, tmp_path, TLS_PASSWORD, monkeypatch, ca_lines(tls_registry))
    runs = [
        run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", *args, "-vv", "--json"),
        run_cli("versions", "test:pkg", *args, "-vv", "--json"),
        run_cli("info", "test:pkg", *args, "-vv", "--json"),
        run_cli("publish", wit_package("test", "pkg", "1.2.0"), "--package", "test:pkg@1.2.0", *args, "-vv", "--json"),
        run_cli("config", "show", "--origin", *args),
    ]
    assert [r.code for r in runs] == [0] * len(runs), runs
    assert f"debug: GET {tls_registry.url}/v2/" in runs[0].err  # -vv really logged the HTTP traffic
    _assert_no_secret(TLS_PASSWORD, *(r.out + r.err for r in runs))


@pytest.mark.parametrize("source", SECRET_SOURCES)
def test_refused_secrets_never_appear_in_errors(source: str, tls_registry, tls_published, tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    wrong = "wrong-but-secret-pw"
    args = _configure(source, tls_registry, tmp_path, wrong, monkeypatch, ca_lines(tls_registry))
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", *args, "-vv", "--json")
    assert r.code == 4, r
    assert r.json()["error"]["code"] == "auth-failed"  # type: ignore[index]
    assert "Traceback" in r.err  # -v shows the traceback: it must not carry the secret either
    _assert_no_secret(wrong, r.out, r.err)


# --------------------------------------------------------------------------- redirects


class _BlobStore:
    """A stand-in for the blob storage a registry redirects to: serves one body and records
    the headers of every request."""

    def __init__(self, body: bytes) -> None:
        import http.server
        import threading

        self.body = body
        self.seen: list[dict[str, str]] = []
        store = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                store.seen.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(store.body)))
                self.end_headers()
                self.wfile.write(store.body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def test_blob_redirect_to_another_host_drops_the_credentials(tls_registry, tls_published, fault_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = fault_proxy(tls_registry)  # plain HTTP in front of the TLS registry; forwards Authorization
    store = _BlobStore(tls_published)
    try:
        proxy.respond(r"/blobs/", 307, headers={"Location": f"{store.url}/signed/blob?X-Amz-Signature=abc"})
        with client(proxy, tmp_path, toml_auth(TLS_USER, TLS_PASSWORD)) as c:
            res = c.fetch(REF, tmp_path / "pkg.wasm")
    finally:
        store.close()
    assert res.path.read_bytes() == tls_published
    assert len(store.seen) == 1 and "authorization" not in store.seen[0]
    # the registry itself did get the credentials (the manifest request succeeded through the proxy)
    assert [(r.path.rsplit("/", 2)[-2], r.status) for r in proxy.request_log()] == [
        ("manifests", 401), ("manifests", 200), ("blobs", 307)]


def test_private_repository_without_credentials_is_auth_required(registry_factory, token_server_factory, oci_client, wit_package, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    """README "Exit codes": a pull answered with 401 and no credentials configured is exit 4
    (authentication required): here the token service hands anonymous a token without access."""
    ts = token_server_factory(anonymous_pull=False)
    reg = registry_factory(token_server=ts)
    oci_client(reg).push_wasm(REPO, "1.0.0", wit_package("test", "pkg", "1.0.0"))
    r = run_cli("fetch", REF, "-o", tmp_path / "pkg.wasm", *cli_args(reg, tmp_path), "--json")
    assert (r.code, r.err) == (4, "\n".join([
        f"error[auth-required]: registry {reg.host} requires authentication for repository:{REPO}:pull (HTTP 401)",
        f"  no credentials are configured for {reg.host}",
        "  a registry may answer so for a repository that does not exist, too",
        f'  hint: configure credentials: auth under [registry."{reg.host}".oci], docker login, '
        f"or PKGLOADER_REGISTRY_{env_host_key(reg.host)}_USERNAME/_PASSWORD; or check the package name",
    ]) + "\n")
    assert r.json()["error"]["code"] == "auth-required"  # type: ignore[index]
    assert not (tmp_path / "pkg.wasm").exists()
