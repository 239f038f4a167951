"""The real-registry test infrastructure works: registries, token server, proxy, WIT builds.

These tests use only the raw helpers in tests/support (httpx, oras-py, skopeo), never
pkgloader, so they pin down the behaviour later tests rely on.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys

import httpx
import pytest

from support import wit
from support.oci import ORAS_DEFAULT_CONFIG, WASM_CONFIG, WASM_LAYER, OciClient, digest_of, push_with_oras
from support.registry import RegistryServer, RegistryStartError, find_binary
from support.tokenserver import TokenServer, decode_jwt, libtrust_key_id
from support.wit import WitSpec, build_wit_package, wit_text_of

pytestmark = pytest.mark.registry

PUSH_REQUESTS = [
    ("POST", "/v2/ns/pkg/blobs/uploads/"),
    ("PUT", "/v2/ns/pkg/blobs/uploads/<uuid>"),
    ("POST", "/v2/ns/pkg/blobs/uploads/"),
    ("PUT", "/v2/ns/pkg/blobs/uploads/<uuid>"),
    ("PUT", "/v2/ns/pkg/manifests/1.0.0"),
]


def _normalise(requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Replace upload session ids so request lists can be compared exactly."""
    out = []
    for method, path in requests:
        if "/blobs/uploads/" in path and not path.endswith("/uploads/"):
            path = path[: path.index("/blobs/uploads/") + len("/blobs/uploads/")] + "<uuid>"
        out.append((method, path))
    return out


def _actions(scopes: tuple[str, ...]) -> list[list[str]]:
    """Sorted actions per scope: distribution writes a challenge's actions in random order
    (from a Go map), so ``repository:ns/pkg:pull,push`` and ``...:push,pull`` both occur."""
    return [sorted(s.rsplit(":", 1)[1].split(",")) for s in scopes]


# --------------------------------------------------------------------------- registries


def test_plain_registry_push_pull_with_exact_request_counts(registry, oci_client, wit_package):
    wasm = wit_package("ns", "pkg", "1.0.0")
    oci = oci_client(registry)
    assert registry.url == f"http://{registry.host}" and registry.host.startswith("127.0.0.1:")

    registry.mark()
    pushed = oci.push_wasm("ns/pkg", "1.0.0", wasm)
    assert _normalise(registry.requests()) == PUSH_REQUESTS

    registry.mark()
    manifest = oci.get_manifest("ns/pkg", "1.0.0")
    layer = manifest.json["layers"][0]
    blob = oci.get_blob("ns/pkg", layer["digest"])
    assert oci.list_tags("ns/pkg") == ["1.0.0"]
    assert registry.requests() == [
        ("GET", "/v2/ns/pkg/manifests/1.0.0"),
        ("GET", f"/v2/ns/pkg/blobs/{pushed.layer_digest}"),
        ("GET", "/v2/ns/pkg/tags/list"),
    ]
    assert blob == wasm.read_bytes()
    assert manifest.digest == manifest.header_digest == pushed.manifest_digest
    assert manifest.json["config"]["mediaType"] == WASM_CONFIG
    assert layer == {"mediaType": WASM_LAYER, "digest": digest_of(blob), "size": len(blob)}
    # the blob really is in the temp storage dir
    assert any(registry.storage_dir.rglob(pushed.layer_digest.split(":")[1]))


def test_request_log_has_status_and_query_and_skips_sync_requests(registry, oci_client):
    oci = oci_client(registry)
    registry.mark()
    assert oci.request("HEAD", "/v2/nothing/here/manifests/1.0").status_code == 404
    assert oci.request("GET", "/v2/nothing/tags/list?n=5").status_code == 404
    log = registry.request_log()
    assert [(e.method, e.path, e.query, e.status) for e in log] == [
        ("HEAD", "/v2/nothing/here/manifests/1.0", "", 404),
        ("GET", "/v2/nothing/tags/list", "n=5", 404),
    ]
    assert registry.requests() == [(e.method, e.path) for e in log]  # idempotent
    registry.mark()
    assert registry.requests() == []


def test_request_log_sees_tls_requests(tls_registry):
    # pkgloader speaks HTTP/1.1 only (README, Network); the log must see requests over TLS
    with httpx.Client(verify=tls_registry.verify(), trust_env=False) as client:
        tls_registry.mark()
        resp = client.get(f"{tls_registry.url}/v2/")
        assert resp.http_version == "HTTP/1.1"
    assert tls_registry.requests() == [("GET", "/v2/")]


def test_tls_registry_basic_auth(tls_registry, oci_client, wit_package):
    wasm = wit_package("ns", "pkg", "1.0.0")
    reg = tls_registry
    assert reg.url == f"https://{reg.host}"
    assert reg.ca_path.read_text() == reg.ca_pem and "BEGIN CERTIFICATE" in reg.ca_pem
    assert (reg.cert_dir / "ca.crt").read_text() == reg.ca_pem

    anonymous = oci_client(reg, anonymous=True)
    resp = anonymous.ping()
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="pkgloader-test"'
    with pytest.raises(AssertionError, match="HTTP 401"):
        anonymous.push_blob("ns/pkg", b"data")

    wrong = oci_client(reg, username=reg.username, password="wrong")
    assert wrong.ping().status_code == 401

    oci = oci_client(reg)
    assert oci.ping().status_code == 200
    pushed = oci.push_wasm("ns/pkg", "1.0.0", wasm)
    assert oci.get_blob("ns/pkg", pushed.layer_digest) == wasm.read_bytes()
    # the second user works too
    other = oci_client(reg, username="bob", password="bob-secret-pw")
    assert other.get_manifest("ns/pkg", "1.0.0").digest == pushed.manifest_digest


def test_tls_registry_is_untrusted_without_its_ca(tls_registry):
    with httpx.Client(trust_env=False) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(f"{tls_registry.url}/v2/")
    # the cert is valid for both 127.0.0.1 and localhost
    ctx = ssl.create_default_context(cafile=str(tls_registry.ca_path))
    for host in ("127.0.0.1", "localhost"):
        with socket.create_connection(("127.0.0.1", tls_registry.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                assert tls.version() is not None


def test_token_registry_push_pull_and_token_counts(token_registry, oci_client, wit_package):
    ts: TokenServer = token_registry.token_server
    wasm = wit_package("ns", "pkg", "1.0.0")

    resp = httpx.get(f"{token_registry.url}/v2/ns/pkg/tags/list")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == (
        f'Bearer realm="{ts.realm}",service="{ts.service}",scope="repository:ns/pkg:pull"'
    )
    anonymous = oci_client(token_registry, anonymous=True)
    with pytest.raises(AssertionError, match="HTTP 401"):
        anonymous.push_blob("ns/pkg", b"data")  # anonymous gets a token without push
    [anon_fetch] = ts.token_requests()
    assert anon_fetch.auth_sent is False and _actions(anon_fetch.scopes) == [["pull", "push"]]
    assert anon_fetch.access == ({"type": "repository", "name": "ns/pkg", "actions": ["pull"]},)

    ts.mark()
    token_registry.mark()
    oci = oci_client(token_registry)
    pushed = oci.push_wasm("ns/pkg", "1.0.0", wasm)
    assert _normalise(token_registry.requests()) == [("POST", "/v2/ns/pkg/blobs/uploads/")] + PUSH_REQUESTS
    [fetch] = ts.token_requests()
    assert (fetch.method, fetch.path, fetch.auth_sent, fetch.username, fetch.status) == (
        "GET", "/token", True, "alice", 200,
    )
    assert fetch.query == {"service": [ts.service], "scope": list(fetch.scopes)}
    assert _actions(fetch.scopes) == [["pull", "push"]]
    [granted] = fetch.access
    assert (granted["type"], granted["name"], sorted(granted["actions"])) == ("repository", "ns/pkg", ["pull", "push"])

    # anonymous pull is allowed by default
    ts.mark()
    assert anonymous.get_blob("ns/pkg", pushed.layer_digest) == wasm.read_bytes()
    assert len(ts.token_requests()) == 1 and ts.token_requests()[0].auth_sent is False


def test_token_server_jwt_has_the_claims_distribution_checks(token_server):
    resp = httpx.get(
        token_server.realm,
        params={"service": token_server.service, "scope": "repository:a/b:pull,push"},
        auth=("bob", "bob-password"),
    )
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"] and body["expires_in"] == token_server.lifetime
    header, claims = decode_jwt(body["token"])
    assert header["alg"] == "ES256" and header["typ"] == "JWT" and len(header["x5c"]) == 1
    assert claims["iss"] == token_server.issuer and claims["aud"] == token_server.service
    assert claims["sub"] == "bob"
    assert claims["exp"] - claims["iat"] == token_server.lifetime and claims["nbf"] <= claims["iat"]
    assert claims["access"] == [{"type": "repository", "name": "a/b", "actions": ["pull", "push"]}]
    assert len({decode_jwt(t)[1]["jti"] for t in (body["token"], httpx.get(token_server.realm).json()["token"])}) == 2
    # the key ID is libtrust's format: 12 groups of 4 base32 chars
    assert len(token_server.key_id.split(":")) == 12
    assert token_server.key_id == libtrust_key_id(token_server.signing.key.public_key())


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
@pytest.mark.parametrize("header_mode", ["x5c", "kid", "both"])
def test_registry_accepts_tokens_signed_each_way(registry_factory, token_server_factory, alg, header_mode):
    ts = token_server_factory(alg=alg, header_mode=header_mode)
    reg = registry_factory(token_server=ts)
    token = httpx.get(ts.realm, params={"service": ts.service, "scope": "repository:x/y:pull"}).json()["token"]
    resp = httpx.get(f"{reg.url}/v2/x/y/tags/list", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 404  # authorised; the repository just does not exist
    assert resp.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_token_registry_refusals(registry_factory, token_server_factory):
    ts = token_server_factory(anonymous_pull=False, grants={"bob": {"public/*": ["pull"]}})
    reg = registry_factory(token_server=ts)

    def token(scope: str, auth: tuple[str, str] | None = None) -> httpx.Response:
        return httpx.get(ts.realm, params={"service": ts.service, "scope": scope}, auth=auth)

    def tags(tok: str, repo: str = "private/x") -> httpx.Response:
        return httpx.get(f"{reg.url}/v2/{repo}/tags/list", headers={"Authorization": f"Bearer {tok}"})

    # wrong password: the token server refuses
    assert token("repository:private/x:pull", ("alice", "nope")).status_code == 401
    # anonymous pull disabled: a token without access, which the registry refuses
    anon = token("repository:private/x:pull").json()["token"]
    assert decode_jwt(anon)[1]["access"] == []
    resp = tags(anon)
    assert resp.status_code == 401
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
    # bob may only pull public/*
    bob = token("repository:private/x:pull", ("bob", "bob-password")).json()["token"]
    assert tags(bob).status_code == 401
    bob_public = token("repository:public/x:pull,push", ("bob", "bob-password")).json()["token"]
    assert decode_jwt(bob_public)[1]["access"] == [{"type": "repository", "name": "public/x", "actions": ["pull"]}]
    assert tags(bob_public, "public/x").status_code == 404
    # a token for another repository is refused
    alice_other = token("repository:other/y:pull", ("alice", "alice-password")).json()["token"]
    assert tags(alice_other).status_code == 401
    # an expired JWT (beyond distribution's 60 s leeway) is refused
    ts.jwt_lifetime = -120
    expired = token("repository:private/x:pull", ("alice", "alice-password")).json()["token"]
    assert tags(expired).status_code == 401
    assert "token not to be used after" in reg.stderr_tail(50)
    ts.jwt_lifetime = None
    assert tags(token("repository:private/x:pull", ("alice", "alice-password")).json()["token"]).status_code == 404


def test_token_server_fail_next_and_records(token_server):
    token_server.fail_next(503, headers={"Retry-After": "2"}, body=b"busy")
    first = httpx.get(token_server.realm, params={"service": token_server.service})
    second = httpx.get(token_server.realm, params={"service": token_server.service})
    assert (first.status_code, first.headers["Retry-After"], first.content) == (503, "2", b"busy")
    assert second.status_code == 200
    assert [r.status for r in token_server.token_requests()] == [503, 200]
    token_server.mark()
    assert token_server.token_requests() == []


# --------------------------------------------------------------------------- lifecycle


def test_registry_stops_and_frees_its_port(registry_binary, tmp_path):
    with RegistryServer(tmp_path / "r", binary=registry_binary) as reg:
        port = reg.port
        assert httpx.get(f"{reg.url}/v2/").status_code == 200
    assert not reg.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_registry_start_failure_reports_stderr(tmp_path):
    fake = tmp_path / "fake-registry"
    fake.write_text("#!/bin/sh\necho 'level=fatal msg=\"boom: bad config\"' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(RegistryStartError) as info:
        RegistryServer(tmp_path / "r", binary=str(fake)).start()
    message = str(info.value)
    assert message.startswith("docker-registry exited with code 3 before answering on http://127.0.0.1:")
    assert message.endswith('--- stderr tail ---\nlevel=fatal msg="boom: bad config"')


def test_relative_urls_option(registry_factory, oci_client):
    reg = registry_factory(relative_urls=True)
    resp = oci_client(reg).request("POST", "/v2/ns/pkg/blobs/uploads/")
    assert resp.status_code == 202 and resp.headers["Location"].startswith("/v2/ns/pkg/blobs/uploads/")


# --------------------------------------------------------------------------- proxy


def _push_tags(oci: OciClient, repo: str, count: int) -> str:
    pushed = oci.push_wasm(repo, "seed", b"\0asm\x01\0\0\0")
    for i in range(count):
        oci.push_manifest(repo, f"v{i:03d}", pushed.manifest)
    return pushed.manifest_digest


def test_proxy_paginates_250_tags_into_3_pages(registry, oci_client, fault_proxy):
    _push_tags(oci_client(registry), "ns/many", 249)  # + "seed" = 250 tags
    proxy = fault_proxy(registry)
    proxy.paginate_tags(page_size=100)
    via_proxy = oci_client(registry, base_url=proxy.url)

    registry.mark()
    pages = list(via_proxy.iter_tag_pages("ns/many"))
    assert [len(p) for p in pages] == [100, 100, 50]
    tags = [t for p in pages for t in p]
    assert tags == sorted(tags) and len(set(tags)) == 250 and tags[0] == "seed"
    assert [(r.path, r.query, r.status) for r in proxy.request_log()] == [
        ("/v2/ns/many/tags/list", "", 200),
        ("/v2/ns/many/tags/list", "n=100&last=v098", 200),
        ("/v2/ns/many/tags/list", "n=100&last=v198", 200),
    ]
    assert registry.requests() == [("GET", "/v2/ns/many/tags/list")] * 3  # one full list per page

    first = httpx.get(f"{proxy.url}/v2/ns/many/tags/list?n=2&last=v100")
    assert first.json() == {"name": "ns/many", "tags": ["v101", "v102"]}
    assert first.headers["Link"] == '</v2/ns/many/tags/list?n=2&last=v102>; rel="next"'
    proxy.paginate_tags(page_size=100, absolute=True)
    last = httpx.get(f"{proxy.url}/v2/ns/many/tags/list?last=v198")
    assert len(last.json()["tags"]) == 50 and "Link" not in last.headers
    middle = httpx.get(f"{proxy.url}/v2/ns/many/tags/list?last=v010")
    assert middle.headers["Link"] == f'<{proxy.url}/v2/ns/many/tags/list?n=100&last=v110>; rel="next"'
    # without pagination the registry ignores n and returns everything
    proxy.clear()
    assert len(httpx.get(f"{proxy.url}/v2/ns/many/tags/list?n=10").json()["tags"]) == 250


def test_proxy_injects_status_codes_without_contacting_the_registry(registry, oci_client, fault_proxy):
    digest = oci_client(registry).push_blob("ns/pkg", b"hello blob")
    proxy = fault_proxy(registry)
    via = oci_client(registry, base_url=proxy.url)
    rule = proxy.respond(r"/blobs/", 429, headers={"Retry-After": "1"}, times=1)
    proxy.respond(r"/manifests/", 503, body='{"errors":[]}', method="GET")

    registry.mark()
    first = via.request("GET", f"/v2/ns/pkg/blobs/{digest}")
    assert (first.status_code, first.headers["Retry-After"], first.content) == (429, "1", b"")
    assert via.get_blob("ns/pkg", digest) == b"hello blob"  # budget spent: passes through
    assert via.request("GET", "/v2/ns/pkg/manifests/x").status_code == 503
    assert via.request("HEAD", "/v2/ns/pkg/manifests/x").status_code == 404  # method filter
    assert rule.hits == 1
    assert registry.requests() == [("GET", f"/v2/ns/pkg/blobs/{digest}"), ("HEAD", "/v2/ns/pkg/manifests/x")]
    assert [(r.method, r.status, r.rules) for r in proxy.request_log()] == [
        ("GET", 429, ("respond(/blobs/)",)),
        ("GET", 200, ()),
        ("GET", 503, ("respond(/manifests/)",)),
        ("HEAD", 404, ()),
    ]


def test_proxy_body_faults(registry, oci_client, fault_proxy):
    data = bytes(range(256)) * 40  # 10 KiB
    digest = oci_client(registry).push_blob("ns/pkg", data)
    proxy = fault_proxy(registry)
    url = f"{proxy.url}/v2/ns/pkg/blobs/{digest}"

    proxy.corrupt(r"/blobs/", offset=5000, times=1)
    corrupted = httpx.get(url).content
    assert len(corrupted) == len(data) and corrupted != data
    assert [i for i in range(len(data)) if corrupted[i] != data[i]] == [5000]

    proxy.truncate(r"/blobs/", after=1000, times=1)
    with pytest.raises(httpx.RemoteProtocolError, match=r"received 1000 bytes, expected 10240"):
        httpx.get(url)

    proxy.drop(r"/blobs/", times=1)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        httpx.get(url)

    proxy.stall(r"/blobs/", after=100, seconds=2.0, times=1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, timeout=httpx.Timeout(5.0, read=0.2))

    proxy.delay(r"/blobs/", 2.0, times=1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, timeout=httpx.Timeout(5.0, read=0.2))

    proxy.set_header(r"/blobs/", "Docker-Content-Digest", "sha256:" + "0" * 64, times=1)
    proxy.set_header(r"/blobs/", "Content-Type", None, times=1)
    changed = httpx.get(url)
    assert changed.headers["Docker-Content-Digest"] == "sha256:" + "0" * 64 and "Content-Type" not in changed.headers
    assert changed.content == data

    assert httpx.get(url).content == data  # every budget spent
    log = proxy.request_log()
    assert [r.rules for r in log] == [
        ("corrupt(/blobs/)",), ("truncate(/blobs/)",), ("drop(/blobs/)",), ("stall(/blobs/)",),
        ("delay(/blobs/)",), ("set_header(/blobs/)", "set_header(/blobs/)"), (),
    ]
    assert [r.dropped for r in log] == [False, True, True, False, False, False, False]
    # the delayed request is still sleeping in the proxy: no status yet
    assert [r.status for r in log] == [200, 200, None, 200, None, 200, 200]


def test_proxy_in_front_of_tls_registry_with_auth(tls_registry, oci_client, fault_proxy, wit_package):
    wasm = wit_package("ns", "pkg", "1.0.0")
    plain = fault_proxy(tls_registry)  # HTTP in front of HTTPS
    tls = fault_proxy(tls_registry, tls=(str(tls_registry.server_cert_path), str(tls_registry.server_key_path)))
    assert plain.url.startswith("http://") and tls.url.startswith("https://")

    pushed = oci_client(tls_registry, base_url=plain.url).push_wasm("ns/pkg", "1.0.0", wasm)
    # the registry's upload Location pointed back at the proxy, so everything went through it
    assert _normalise(plain.requests()) == [("POST", "/v2/ns/pkg/blobs/uploads/")] + PUSH_REQUESTS
    assert oci_client(tls_registry, base_url=tls.url).get_blob("ns/pkg", pushed.layer_digest) == wasm.read_bytes()


# --------------------------------------------------------------------------- interop


@pytest.mark.parametrize("kind", ["registry", "tls_registry", "token_registry"])
def test_oras_push_then_raw_pull_gives_identical_bytes(kind, request, oci_client, wit_package):
    reg: RegistryServer = request.getfixturevalue(kind)
    wasm = wit_package("ns", "orasy", "2.0.0")
    digest = push_with_oras(reg, "ns/orasy", "2.0.0", wasm, annotations={"org.example.note": "hi"})

    oci = oci_client(reg)
    manifest = oci.get_manifest("ns/orasy", "2.0.0")
    assert manifest.digest == digest
    assert manifest.json["config"]["mediaType"] == ORAS_DEFAULT_CONFIG
    assert manifest.json["annotations"] == {"org.example.note": "hi"}
    [layer] = manifest.json["layers"]
    assert layer["mediaType"] == WASM_LAYER
    assert layer["annotations"] == {"org.opencontainers.image.title": wasm.name}
    assert oci.get_blob("ns/orasy", layer["digest"]) == wasm.read_bytes()
    assert oci.get_blob("ns/orasy", manifest.json["config"]["digest"]) == b"{}"


def test_skopeo_inspect_against_tls_registry(tls_registry, oci_client, wit_package):
    skopeo = find_binary("skopeo")
    pushed = oci_client(tls_registry).push_wasm("ns/pkg", "1.0.0", wit_package("ns", "pkg", "1.0.0"))
    creds = f"{tls_registry.username}:{tls_registry.password}"
    ref = f"docker://{tls_registry.host}/ns/pkg"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([skopeo, *args], capture_output=True, text=True, timeout=60)

    raw = run("inspect", "--raw", "--cert-dir", str(tls_registry.cert_dir), "--creds", creds, f"{ref}:1.0.0")
    assert raw.returncode == 0, raw.stderr
    assert digest_of(raw.stdout.encode()) == pushed.manifest_digest
    tags = run("list-tags", "--cert-dir", str(tls_registry.cert_dir), "--creds", creds, ref)
    assert tags.returncode == 0, tags.stderr
    assert json.loads(tags.stdout)["Tags"] == ["1.0.0"]

    untrusted = run("inspect", "--raw", "--creds", creds, f"{ref}:1.0.0")
    assert untrusted.returncode == 1 and "x509: certificate signed by unknown authority" in untrusted.stderr
    no_creds = run("inspect", "--raw", "--cert-dir", str(tls_registry.cert_dir), f"{ref}:1.0.0")
    assert no_creds.returncode == 1 and "authentication required" in no_creds.stderr


# --------------------------------------------------------------------------- WIT


def test_wit_packages_build_chains(wit_package):
    c = WitSpec("c", "base", "1.0.0")
    b = WitSpec("b", "mid", "2.0.0", deps=(c,))
    a = wit_package("a", "top", "0.3.0", deps=[b])
    text = wit_text_of(a)
    assert text.startswith("package a:top@0.3.0;")
    assert "use b:mid/api@2.0.0.{entry as dep0-entry};" in text
    assert "import c:base/api@1.0.0;" in text and "import b:mid/api@2.0.0;" in text
    assert a.read_bytes()[:8] == b"\0asm\x0d\0\x01\0"  # a component, not a core module

    mapped = wit_package("x", "y", "1.0.0", deps={"c:base@1.0.0": None})
    assert "use c:base/api@1.0.0." in wit_text_of(mapped)
    custom = wit_package("x", "custom", None, body="interface i { f: func() -> u8; }\n")
    assert "package x:custom;" in wit_text_of(custom)


def test_wit_builds_are_cached_by_content(wit_package):
    first = wit_package("cache", "me", "1.0.0", salt="one")
    runs = wit.build_count
    again = wit_package("cache", "me", "1.0.0", salt="one")
    assert wit.build_count == runs and again.read_bytes() == first.read_bytes() and again != first
    other = wit_package("cache", "me", "1.0.0", salt="two")
    assert wit.build_count == runs + 1 and other.read_bytes() != first.read_bytes()


def test_missing_wasm_tools_is_a_clear_failure(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"wasm-tools not found next to .* nor on PATH; install the test extras"):
        build_wit_package(tmp_path, "never", "built", "1.0.0", salt=str(tmp_path))


def test_bad_wit_reports_the_wasm_tools_error(tmp_path):
    with pytest.raises(RuntimeError, match=r"wasm-tools failed to build bad:wit@1.0.0 \(exit 1\)"):
        build_wit_package(tmp_path, "bad", "wit", "1.0.0", body="interface {")
