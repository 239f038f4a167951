"""The ghcr-like test infrastructure works: tinyproxy (a real forward proxy), CdnFront
(blob downloads redirected to a pre-signed "CDN" URL on localhost) and the composite
``ghcr_registry`` fixture.

Like test_support_smoke.py these use only httpx and the raw helpers in tests/support,
never pkgloader, so they pin down the behaviour pkgloader's tests rely on.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from support.cdnfront import CdnFront, CdnRecord
from support.oci import OCI_MANIFEST, digest_of
from support.tinyproxy import TinyProxy

pytestmark = pytest.mark.registry


# --------------------------------------------------------------------------- tinyproxy


def test_tinyproxy_forwards_plain_http_and_tunnels_https_with_exact_request_lines(
    tinyproxy, registry, registry_factory
):
    tls = registry_factory(tls=True)
    p = tinyproxy
    assert p.url == f"http://127.0.0.1:{p.port}" and p.host == f"127.0.0.1:{p.port}"
    with pytest.raises(AttributeError):
        p.url_with_credentials

    p.mark()
    registry.mark()
    tls.mark()
    with httpx.Client(proxy=p.url, verify=tls.ssl_context(), trust_env=False, timeout=10) as client:
        assert client.get(f"{registry.url}/v2/").status_code == 200
        assert client.get(f"{registry.url}/v2/_catalog").status_code == 200
        assert client.get(f"{tls.url}/v2/").status_code == 200
        assert client.get(f"{tls.url}/v2/_catalog").status_code == 200  # same tunnel
    # tinyproxy closes every plain-HTTP exchange (one request line each); a CONNECT tunnel
    # carries any number of requests and is one line
    assert p.requests() == [
        ("GET", f"{registry.url}/v2/"),
        ("GET", f"{registry.url}/v2/_catalog"),
        ("CONNECT", tls.host),
    ]
    assert p.denied() == 0
    # they really went through to the registries
    assert registry.requests() == [("GET", "/v2/"), ("GET", "/v2/_catalog")]
    assert tls.requests() == [("GET", "/v2/"), ("GET", "/v2/_catalog")]

    p.mark()
    assert p.requests() == []


def test_tinyproxy_basic_auth(tinyproxy_factory, registry, registry_factory):
    tls = registry_factory(tls=True)
    p = tinyproxy_factory(basic_auth=("proxyuser", "s3cret.pw"))
    assert p.url_with_credentials == f"http://proxyuser:s3cret.pw@{p.host}"
    p.mark()
    registry.mark()

    no_creds = httpx.get(f"{registry.url}/v2/", proxy=p.url, trust_env=False, timeout=10)
    assert no_creds.status_code == 407
    assert no_creds.headers["Proxy-Authenticate"].startswith("Basic ")
    # tinyproxy quirk: wrong credentials get 401 + WWW-Authenticate, not 407
    wrong = httpx.get(f"{registry.url}/v2/", proxy=f"http://proxyuser:nope@{p.host}", trust_env=False, timeout=10)
    assert wrong.status_code == 401
    ok = httpx.get(f"{registry.url}/v2/", proxy=p.url_with_credentials, trust_env=False, timeout=10)
    assert ok.status_code == 200

    with httpx.Client(proxy=p.url, verify=tls.ssl_context(), trust_env=False, timeout=10) as client:
        with pytest.raises(httpx.ProxyError, match="407"):
            client.get(f"{tls.url}/v2/")
    with httpx.Client(proxy=p.url_with_credentials, verify=tls.ssl_context(), trust_env=False, timeout=10) as client:
        assert client.get(f"{tls.url}/v2/").status_code == 200

    assert p.requests() == [("GET", f"{registry.url}/v2/")] * 3 + [("CONNECT", tls.host)] * 2
    assert p.denied() == 3
    assert registry.requests() == [("GET", "/v2/")]  # only the authenticated one got through


def test_tinyproxy_rejects_credentials_it_cannot_configure(tmp_path):
    with pytest.raises(ValueError):
        TinyProxy(tmp_path, basic_auth=("user", "pass word"))
    with pytest.raises(ValueError):
        TinyProxy(tmp_path, basic_auth=("us:er", "pw"))


# --------------------------------------------------------------------------- ghcr-like


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_ghcr_registry_anonymous_pull_via_redirect_to_cdn(ghcr_registry):
    ghcr = ghcr_registry
    data = b"\0asm\x01\0\0\0" + os.urandom(3000)
    pushed = ghcr.push_wasm("ns/pkg", "1.0.0", data)
    front = ghcr.front
    assert ghcr.host == front.host == f"127.0.0.1:{front.port}" and ghcr.url == f"https://{ghcr.host}"
    assert front.cdn_host == f"localhost:{front.cdn_port}" and front.cdn_port != front.port
    assert ghcr.ca_path.read_text() == ghcr.ca_pem

    front.mark()
    ghcr.registry.mark()
    ghcr.token_server.mark()
    with httpx.Client(verify=ghcr.verify(), trust_env=False, timeout=10) as client:
        # the challenge comes from the registry, through the front
        ping = client.get(f"{ghcr.url}/v2/")
        assert ping.status_code == 401
        challenge = ping.headers["WWW-Authenticate"]
        assert challenge.startswith(f'Bearer realm="{ghcr.token_server.realm}"')

        token = client.get(
            ghcr.token_server.realm,
            params={"service": ghcr.token_server.service, "scope": "repository:ns/pkg:pull"},
        ).json()["token"]

        manifest = client.get(
            f"{ghcr.url}/v2/ns/pkg/manifests/1.0.0", headers={**_bearer(token), "Accept": OCI_MANIFEST}
        )
        assert manifest.status_code == 200
        assert digest_of(manifest.content) == pushed.manifest_digest

        blob_path = f"/v2/ns/pkg/blobs/{pushed.layer_digest}"
        redirect = client.get(f"{ghcr.url}{blob_path}", headers=_bearer(token))
        assert redirect.status_code == 307 and redirect.content == b""
        location = redirect.headers["Location"]
        loc = urlsplit(location)
        assert (loc.scheme, loc.netloc, loc.path) == ("https", front.cdn_host, f"/blob/{pushed.layer_digest}")
        q = parse_qs(loc.query)
        assert q["X-Amz-Expires"] == ["300"] and re.fullmatch(r"[0-9a-f]{64}", q["X-Amz-Signature"][0])
        assert re.fullmatch(r"\d{8}T\d{6}Z", q["X-Amz-Date"][0])

        blob = client.get(location)  # no Authorization: as a client must follow it
        assert blob.status_code == 200 and blob.content == data
        assert blob.headers["Content-Length"] == str(len(data))

        refused = client.get(location, headers=_bearer(token))
        assert refused.status_code == 400 and b"Only one auth mechanism allowed" in refused.content

    assert front.requests() == [
        ("GET", "/v2/"),
        ("GET", "/v2/ns/pkg/manifests/1.0.0"),
        ("GET", blob_path),
    ]
    assert [r.status for r in front.request_log()] == [401, 200, 307]
    cdn_path = f"/blob/{pushed.layer_digest}"
    assert front.cdn_requests() == [
        CdnRecord("GET", cdn_path, loc.query, False, 200),
        CdnRecord("GET", cdn_path, loc.query, True, 400),
    ]
    # the front asked the registry (with the client's token) before redirecting
    assert ghcr.registry.requests() == [
        ("GET", "/v2/"),
        ("GET", "/v2/ns/pkg/manifests/1.0.0"),
        ("HEAD", blob_path),
    ]
    assert [(r.auth_sent, r.status) for r in ghcr.token_server.token_requests()] == [(False, 200)]


def test_ghcr_blob_without_token_gets_the_registry_challenge_not_a_redirect(ghcr_registry):
    pushed = ghcr_registry.push_wasm("ns/pkg", "1.0.0", b"\0asm\x01\0\0\0")
    front = ghcr_registry.front
    front.mark()
    ghcr_registry.registry.mark()
    with httpx.Client(verify=ghcr_registry.verify(), trust_env=False, timeout=10) as client:
        resp = client.get(f"{ghcr_registry.url}/v2/ns/pkg/blobs/{pushed.layer_digest}")
        assert resp.status_code == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer realm=")
        assert resp.json()["errors"][0]["code"] == "UNAUTHORIZED"  # the registry's own GET body

        token = ghcr_registry.anonymous_token("ns/pkg")
        missing = client.get(f"{ghcr_registry.url}/v2/ns/pkg/blobs/{digest_of(b'nope')}", headers=_bearer(token))
        assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert [r.status for r in front.request_log()] == [401, 404]
    assert front.cdn_requests() == []
    blob = f"/v2/ns/pkg/blobs/{pushed.layer_digest}"
    nope = f"/v2/ns/pkg/blobs/{digest_of(b'nope')}"
    assert ghcr_registry.registry.requests() == [("HEAD", blob), ("GET", blob), ("HEAD", nope), ("GET", nope)]


def test_cdn_refuses_tampered_missing_and_expired_signatures(ghcr_registry):
    data = os.urandom(3 * 1024 * 1024 + 17)  # several 1 MiB chunks over TLS
    pushed = ghcr_registry.push_wasm("ns/big", "1.0.0", data)
    front: CdnFront = ghcr_registry.front
    token = ghcr_registry.anonymous_token("ns/big")
    with httpx.Client(verify=ghcr_registry.verify(), trust_env=False, timeout=10) as client:
        location = client.get(f"{ghcr_registry.url}/v2/ns/big/blobs/{pushed.layer_digest}", headers=_bearer(token)).headers[
            "Location"
        ]
        sig = parse_qs(urlsplit(location).query)["X-Amz-Signature"][0]
        front.mark()

        tampered = location.replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
        resp = client.get(tampered)
        assert resp.status_code == 403 and b"SignatureDoesNotMatch" in resp.content
        resp = client.get(location.split("?")[0])
        assert resp.status_code == 403 and b"AccessDenied" in resp.content

        front.expire_next(1)
        resp = client.get(location)
        assert resp.status_code == 403 and b"Request has expired" in resp.content
        resp = client.get(location)  # only the next one expired
        assert resp.status_code == 200 and resp.content == data

        old = front.signed_url(pushed.layer_digest, date=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
        resp = client.get(old)
        assert resp.status_code == 403 and b"Request has expired" in resp.content

        head = client.head(location)
        assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))

    assert [(r.method, r.status) for r in front.cdn_requests()] == [
        ("GET", 403), ("GET", 403), ("GET", 403), ("GET", 200), ("GET", 403), ("HEAD", 200)
    ]
    assert front.requests() == []  # nothing went back to the front


def test_ghcr_tag_list_is_paged_by_100_with_a_link_header(ghcr_registry):
    tags = [f"1.0.{i}" for i in range(120)]
    pushed = ghcr_registry.push_tags("ns/many", tags, b"\0asm\x01\0\0\0")
    token = ghcr_registry.anonymous_token("ns/many")
    with httpx.Client(verify=ghcr_registry.verify(), trust_env=False, timeout=10) as client:
        first = client.get(f"{ghcr_registry.url}/v2/ns/many/tags/list", headers=_bearer(token))
        assert first.status_code == 200
        page1 = first.json()["tags"]
        assert len(page1) == 100
        link = first.headers["Link"]
        m = re.fullmatch(r'<(/v2/ns/many/tags/list\?n=100&last=[^>]+)>; rel="next"', link)
        assert m, link
        second = client.get(f"{ghcr_registry.url}{m.group(1)}", headers=_bearer(token))
        page2 = second.json()["tags"]
        assert len(page2) == 20 and "Link" not in second.headers
        # the tags written into storage are real tags
        some = client.get(
            f"{ghcr_registry.url}/v2/ns/many/manifests/1.0.77", headers={**_bearer(token), "Accept": OCI_MANIFEST}
        )
        assert some.status_code == 200 and digest_of(some.content) == pushed.manifest_digest
    assert page1 + page2 == sorted(tags)


def test_ghcr_push_through_the_front_and_plain_http_variant(ghcr_registry_factory):
    """Pushes work through the front (upload Locations point back at it, as the Host header is
    kept); the plain-HTTP variant redirects to http://localhost (served with sendfile)."""
    plain = ghcr_registry_factory(tls=False, page_size=None)
    assert plain.url.startswith("http://") and plain.front.cdn_url.startswith("http://localhost:")
    data = os.urandom(2 * 1024 * 1024 + 5)
    pusher = plain.oci()  # alice, to the front
    pushed = pusher.push_wasm("ns/pkg", "2.0.0", data)
    assert ("PUT", "/v2/ns/pkg/manifests/2.0.0") in plain.front.requests()

    anon = plain.oci(anonymous=True)
    resp = anon.request("GET", f"/v2/ns/pkg/blobs/{pushed.layer_digest}", scope="repository:ns/pkg:pull")
    assert resp.status_code == 307 and resp.headers["Location"].startswith(f"http://{plain.front.cdn_host}/blob/")
    blob = httpx.get(resp.headers["Location"], trust_env=False, timeout=10)
    assert blob.status_code == 200 and blob.content == data

    plain.push_tags("ns/tags", ["0.1.0", "0.2.0", "0.3.0"], b"\0asm", via_api=True)
    assert sorted(anon.list_tags("ns/tags")) == ["0.1.0", "0.2.0", "0.3.0"]  # unpaged: registry order
