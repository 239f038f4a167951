"""Proxies: which one a request goes through (``_proxy``: proxy URLs, ``NO_PROXY``, the
environment), where the config takes them from and that it never shows their credentials,
and real requests through a forward proxy (``tinyproxy``, see tests/support/tinyproxy.py):
absolute-form requests for ``http://``, ``CONNECT`` tunnels for ``https://``, ``NO_PROXY``,
a proxy that wants credentials, a proxy that is not there."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from pkgloader._config import Config, Origin
from pkgloader._errors import ConfigError, NetworkError, TLSError
from pkgloader._http import HttpSettings, Request
from pkgloader._proxy import (
    ENV_NAMES,
    Proxy,
    ProxySettings,
    from_environment,
    no_proxy_matches,
    parse_proxy_url,
    split_no_proxy,
)
from pkgloader._source import http_settings, proxy_settings
from pkgloader._stdhttp import StdTransport
from support.tinyproxy import TinyProxy

# the harness of the transport tests: a scripted server, TLS with a throw-away CA
from test_stdhttp import ServeFn, _Tls, close_transports, eventually, fresh_tls_contexts, ok, serve, tls  # noqa: F401

SECRET = "s3cr3t-pw"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- proxy URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value, host, port, auth, display", [
    ("http://proxy.example:3128", "proxy.example", 3128, None, "http://proxy.example:3128"),
    ("  http://proxy.example:3128/  ", "proxy.example", 3128, None, "http://proxy.example:3128"),
    ("proxy.example:3128", "proxy.example", 3128, None, "http://proxy.example:3128"),  # bare host:port
    ("HTTP://Proxy.Example:8080", "proxy.example", 8080, None, "http://proxy.example:8080"),
    ("http://proxy.example", "proxy.example", 80, None, "http://proxy.example:80"),
    ("http://[::1]:3128", "::1", 3128, None, "http://[::1]:3128"),
    ("http://10.0.0.1:3128", "10.0.0.1", 3128, None, "http://10.0.0.1:3128"),
    (f"http://alice:{SECRET}@proxy.example:3128", "proxy.example", 3128, basic("alice", SECRET), "http://proxy.example:3128"),
    ("http://al%40ce:p%3Ass%40w@proxy.example:3128", "proxy.example", 3128, basic("al@ce", "p:ss@w"), "http://proxy.example:3128"),
    ("alice:pw@proxy.example:3128", "proxy.example", 3128, basic("alice", "pw"), "http://proxy.example:3128"),
    ("http://alice@proxy.example:3128", "proxy.example", 3128, basic("alice", ""), "http://proxy.example:3128"),
])
def test_parse_proxy_url(value: str, host: str, port: int, auth: str | None, display: str) -> None:
    p = parse_proxy_url(value, "env HTTPS_PROXY")
    assert (p.host, p.port, p.authorization, p.display, p.origin) == (host, port, auth, display, "env HTTPS_PROXY")
    assert SECRET not in repr(p) and SECRET not in p.display
    assert repr(p) == f"Proxy({display!r})"


@pytest.mark.parametrize("value, message", [
    (f"https://alice:{SECRET}@proxy.example:3128",
     "env HTTPS_PROXY: pkgloader speaks to proxies over http:// only, not https:// "
     "(an http:// proxy still tunnels https:// registries with CONNECT)"),
    (f"socks5://alice:{SECRET}@proxy.example:1080",
     "env HTTPS_PROXY: pkgloader speaks to proxies over http:// only, not socks5:// "
     "(an http:// proxy still tunnels https:// registries with CONNECT)"),
    (f"socks5h://proxy.example:1080", "env HTTPS_PROXY: pkgloader speaks to proxies over http:// only, not socks5h:// "
     "(an http:// proxy still tunnels https:// registries with CONNECT)"),
    (f"http://alice:{SECRET}@proxy.example:port", "env HTTPS_PROXY: not a proxy URL (expected http://host:port)"),
    (f"http://alice:{SECRET}@proxy.example:99999", "env HTTPS_PROXY: not a proxy URL (expected http://host:port)"),
    ("http://:3128", "env HTTPS_PROXY: the proxy URL has no host (expected http://host:port)"),
    ("", "env HTTPS_PROXY: the proxy URL has no host (expected http://host:port)"),
])
def test_unusable_proxy_urls(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_proxy_url(value, "env HTTPS_PROXY")
    assert str(info.value) == message
    assert SECRET not in str(info.value)


# --- NO_PROXY ------------------------------------------------------------------------------------


@pytest.mark.parametrize("entries, host, port, exempt", [
    # nothing, everything
    ((), "example.com", 443, False),
    (("*",), "example.com", 443, True),
    (("other.test", "*"), "127.0.0.1", 80, True),
    # a name: the host and every host below it, with or without a leading dot
    (("example.com",), "example.com", 443, True),
    (("example.com",), "registry.example.com", 443, True),
    (("example.com",), "a.b.example.com", 443, True),
    ((".example.com",), "registry.example.com", 443, True),
    ((".example.com",), "example.com", 443, True),
    (("EXAMPLE.com.",), "Registry.Example.COM", 443, True),
    (("example.com",), "example.com.", 443, True),
    # never a partial label
    (("ample.com",), "example.com", 443, False),
    ((".ample.com",), "example.com", 443, False),
    (("example.com",), "example.com.evil.test", 443, False),
    (("example.com",), "notexample.com", 443, False),
    (("registry.example.com",), "example.com", 443, False),
    (("localhost",), "localhost", 5000, True),
    (("localhost",), "registry.localhost", 5000, True),
    # host:port
    (("example.com:443",), "example.com", 443, True),
    (("example.com:443",), "example.com", 80, False),
    (("example.com:8443",), "a.example.com", 8443, True),
    (("127.0.0.1:5000",), "127.0.0.1", 5000, True),
    (("127.0.0.1:5000",), "127.0.0.1", 5001, False),
    # IPv4 literals: exact, never a name's address, never a prefix
    (("127.0.0.1",), "127.0.0.1", 80, True),
    (("127.0.0.1",), "127.0.0.2", 80, False),
    (("127.0.0.1",), "localhost", 80, False),
    (("10.0.0.1",), "110.0.0.1", 80, False),
    (("localhost",), "127.0.0.1", 80, False),
    # IPv6 literals, with and without brackets on either side
    (("::1",), "::1", 80, True),
    (("::1",), "[::1]", 80, True),
    (("[::1]",), "::1", 80, True),
    (("[::1]:8080",), "::1", 8080, True),
    (("[::1]:8080",), "::1", 8081, False),
    (("::1",), "::2", 80, False),
    (("0:0:0:0:0:0:0:1",), "::1", 80, True),
    # CIDR ranges, v4 and v6, for IP literals only
    (("10.0.0.0/8",), "10.1.2.3", 80, True),
    (("10.0.0.0/8",), "11.1.2.3", 80, False),
    (("192.168.1.0/24",), "192.168.1.200", 80, True),
    (("192.168.1.0/24",), "192.168.2.1", 80, False),
    (("10.1.2.3/8",), "10.9.9.9", 80, True),  # host bits set: still the /8
    (("fd00::/8",), "fd12::1", 80, True),
    (("fd00::/8",), "[fd12::1]", 80, True),
    (("fd00::/8",), "fe80::1", 80, False),
    (("10.0.0.0/8",), "fd12::1", 80, False),
    (("::/0",), "10.0.0.1", 80, False),  # a v6 range never holds a v4 address
    (("10.0.0.0/8",), "ten.example", 80, False),
    # garbage is ignored, the rest still counts
    (("10.0.0.0/33", "example.com"), "example.com", 443, True),
    (("10.0.0.0/33",), "10.0.0.1", 80, False),
    (("not a cidr/x",), "10.0.0.1", 80, False),
    (("host:port",), "host", 80, False),
    (("host:",), "host", 80, False),
    (("", "  ", "."), "example.com", 443, False),
    (("a:b:c",), "example.com", 443, False),
])
def test_no_proxy_matches(entries: tuple[str, ...], host: str, port: int, exempt: bool) -> None:
    assert no_proxy_matches(entries, host, port) is exempt


def test_split_no_proxy() -> None:
    assert split_no_proxy("localhost, .internal,10.0.0.0/8  [::1]:5000,,") == (
        "localhost", ".internal", "10.0.0.0/8", "[::1]:5000")
    assert split_no_proxy("") == () and split_no_proxy(" , ") == ()


def test_from_environment_lower_case_first() -> None:
    env = {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:1", "HTTP_PROXY": "http://plain:2",
           "ALL_PROXY": "http://all:3", "all_proxy": "  ", "NO_PROXY": "localhost", "no_proxy": "example.com"}
    assert from_environment(env) == {
        "https_proxy": ("http://lower:1", "https_proxy"),
        "http_proxy": ("http://plain:2", "HTTP_PROXY"),
        "proxy": ("http://all:3", "ALL_PROXY"),  # a blank lower-case value does not hide the upper-case one
        "no_proxy": ("example.com", "no_proxy"),
    }
    assert from_environment({}) == {}
    assert from_environment({"Https_Proxy": "http://mixed:1", "PATH": "/bin"}) == {}
    assert set(ENV_NAMES) == {"https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY",
                              "no_proxy", "NO_PROXY"}


def test_proxy_settings_for_url() -> None:
    http = parse_proxy_url("http://plain-proxy:3128", "t")
    https = parse_proxy_url("http://tls-proxy:3128", "t")
    ps = ProxySettings(http=http, https=https, no_proxy=("internal.test", "127.0.0.1:5000", "10.0.0.0/8"))
    assert ps.active
    assert ps.for_url("https", "ghcr.io", 443) is https
    assert ps.for_url("http", "ghcr.io", 80) is http
    assert ps.for_url("https", "registry.internal.test", 443) is None
    assert ps.for_url("http", "127.0.0.1", 5000) is None
    assert ps.for_url("http", "127.0.0.1", 5001) is http
    assert ps.for_url("https", "10.2.3.4", 443) is None
    only_https = ProxySettings(https=https)
    assert only_https.for_url("http", "ghcr.io", 80) is None  # HTTPS_PROXY alone: http:// goes direct
    assert only_https.for_url("https", "ghcr.io", 443) is https
    assert not ProxySettings().active and ProxySettings().for_url("https", "ghcr.io", 443) is None


# --- config -------------------------------------------------------------------------------------


def _load(env: dict[str, str]) -> Config:
    return Config.load(env=env, use_global=False, use_project=False)


def test_config_takes_proxies_from_the_environment() -> None:
    cfg = _load({"HTTPS_PROXY": f"http://alice:{SECRET}@proxy.example:3128", "NO_PROXY": "localhost,.internal",
                 "http_proxy": "plain.example:8080"})
    st = cfg.settings
    assert st.https_proxy is not None and st.https_proxy.origin == Origin("env", "HTTPS_PROXY")
    assert str(st.https_proxy.origin) == "env HTTPS_PROXY"
    assert st.http_proxy is not None and str(st.http_proxy.origin) == "env http_proxy"
    assert st.no_proxy is not None and (st.no_proxy.value, str(st.no_proxy.origin)) == ("localhost,.internal", "env NO_PROXY")
    assert st.proxy is None
    ps = proxy_settings(cfg)
    assert isinstance(ps, ProxySettings)
    assert ps.https == Proxy("proxy.example", 3128, basic("alice", SECRET), "http://proxy.example:3128", "env HTTPS_PROXY")
    assert ps.http is not None and ps.http.display == "http://plain.example:8080"
    assert ps.no_proxy == ("localhost", ".internal")
    assert http_settings(cfg, "ghcr.io").proxies == ps
    assert proxy_settings(_load({})) is None and http_settings(_load({}), "ghcr.io").proxies is None


def test_all_proxy_serves_both_schemes_unless_one_is_set() -> None:
    ps = proxy_settings(_load({"ALL_PROXY": "http://all.example:1", "HTTPS_PROXY": "http://tls.example:2"}))
    assert ps.http.display == "http://all.example:1" and ps.https.display == "http://tls.example:2"
    assert ps.http.origin == "env ALL_PROXY"


@pytest.mark.parametrize("var", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY"])
@pytest.mark.parametrize("value", [f"socks5://alice:{SECRET}@proxy.example:1080", f"http://alice:{SECRET}@proxy.example:port"])
def test_invalid_proxy_in_the_environment_is_a_config_error(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load({var: value})
    err = info.value
    assert err.exit_code == 2
    assert err.message.startswith(f"invalid proxy setting: environment variable {var}: ")
    assert err.details == [f"set by: environment variable {var}"]
    assert SECRET not in err.render() and "alice" not in err.render()


def test_no_proxy_is_not_checked_as_a_url() -> None:
    cfg = _load({"NO_PROXY": "*"})
    assert cfg.settings.no_proxy is not None and cfg.settings.no_proxy.value == "*"
    assert proxy_settings(cfg) is None  # no proxy: nothing to exempt from


def test_config_file_proxy_keys() -> None:
    cfg = Config.from_toml(f'''
[pkgloader]
proxy = "http://alice:{SECRET}@proxy.example:3128"
https_proxy = "tls-proxy.example:3129"
no_proxy = ["localhost", ".internal", "10.0.0.0/8"]
''', source="pkgloader.toml")
    st = cfg.settings
    assert st.proxy is not None and str(st.proxy.origin) == "project pkgloader.toml:3"
    assert st.no_proxy is not None and st.no_proxy.value == "localhost,.internal,10.0.0.0/8"
    ps = proxy_settings(cfg)
    assert ps.http.authorization == basic("alice", SECRET) and ps.http.display == "http://proxy.example:3128"
    assert ps.https.display == "http://tls-proxy.example:3129" and ps.https.authorization is None
    assert ps.no_proxy == ("localhost", ".internal", "10.0.0.0/8")
    assert Config.from_toml('[pkgloader]\nno_proxy = "a.test, b.test"\n').settings.no_proxy.value == "a.test, b.test"  # type: ignore[union-attr]


@pytest.mark.parametrize("text, message", [
    (f'[pkgloader]\nhttps_proxy = "socks5://alice:{SECRET}@proxy.example:1080"\n',
     "invalid proxy setting: project pkgloader.toml:2: pkgloader speaks to proxies over http:// only, not socks5://"),
    (f'[pkgloader]\nproxy = "http://alice:{SECRET}@proxy.example:nope"\n',
     "invalid proxy setting: project pkgloader.toml:2: not a proxy URL"),
])
def test_invalid_proxy_in_a_config_file(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_toml(text, source="pkgloader.toml")
    assert info.value.message.startswith(message) and info.value.exit_code == 2
    assert SECRET not in info.value.render()


@pytest.mark.parametrize("text", ['[pkgloader]\nproxy = 3128\n', '[pkgloader]\nno_proxy = [1, 2]\n'])
def test_proxy_keys_of_the_wrong_type(text: str) -> None:
    with pytest.raises(ConfigError):
        Config.from_toml(text, source="pkgloader.toml")


def test_config_show_never_prints_proxy_credentials(run_cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://alice:{SECRET}@proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal")
    f = tmp_path / "c.toml"
    f.write_text(f'[pkgloader]\nhttp_proxy = "bob:{SECRET}-2@plain.example:8080"\n')
    for args in (("config", "show"), ("config", "show", "--origin"), ("config", "show", "--json"),
                 ("config", "show", "--json", "--origin")):
        r = run_cli(*args, "--config", f)
        assert r.code == 0, r
        assert SECRET not in r.out + r.err and "alice" not in r.out and "bob" not in r.out
    r = run_cli("config", "show", "--origin", "--config", f)
    assert 'https_proxy = "http://proxy.example:3128"' in r.out and "# env HTTPS_PROXY" in r.out
    assert 'http_proxy = "http://plain.example:8080"' in r.out
    assert 'no_proxy = "localhost,.internal"' in r.out
    data = json.loads(run_cli("config", "show", "--json", "--config", f).out)
    assert data["pkgloader"]["https_proxy"] == "http://proxy.example:3128"


def test_cli_refuses_an_unusable_proxy_without_showing_it(run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"socks5://alice:{SECRET}@proxy.example:1080")
    r = run_cli("config", "show")
    assert r.code == 2
    assert "invalid proxy setting: environment variable HTTPS_PROXY" in r.err
    assert SECRET not in r.out + r.err


# --- through a real forward proxy ---------------------------------------------------------------


def _through(proxy_url: str, *, no_proxy: tuple[str, ...] = (), **kw: Any) -> StdTransport:
    p = parse_proxy_url(proxy_url, "test")
    settings = HttpSettings(retries=kw.pop("retries", 0), timeout=5, connect_timeout=5,
                            proxies=ProxySettings(http=p, https=p, no_proxy=no_proxy), **kw)
    return StdTransport(settings)


def test_plain_http_goes_through_the_proxy_in_absolute_form(serve: ServeFn, tinyproxy: TinyProxy) -> None:
    srv = serve(lambda req, c, i: (ok(f"via {req.headers.get('via', 'no via')}".encode()), False))
    tinyproxy.mark()
    with _through(tinyproxy.url) as t:
        resp = t.send(Request("GET", f"{srv.url}/v2/x/tags/list?n=10", headers={"Authorization": "Bearer tok"}))
        assert t.send(Request("GET", f"{srv.url}/v2/")).status == 200
    assert resp.status == 200 and resp.content == b"via no via"
    assert tinyproxy.requests() == [("GET", f"{srv.url}/v2/x/tags/list?n=10"), ("GET", f"{srv.url}/v2/")]
    assert [s.request_line for s in srv.seen] == ["GET /v2/x/tags/list?n=10 HTTP/1.1", "GET /v2/ HTTP/1.1"]
    assert srv.seen[0].headers["authorization"] == "Bearer tok"  # the registry's header reaches the registry
    assert srv.seen[0].headers["host"] == f"127.0.0.1:{srv.port}"


def test_https_goes_through_a_connect_tunnel(serve: ServeFn, tinyproxy: TinyProxy, tls: _Tls) -> None:
    srv = serve(lambda req, c, i: (ok(f"tunnelled {i}".encode()), False), tls=tls.server_context())
    tinyproxy.mark()
    with _through(tinyproxy.url, extra_root_certificates=(tls.ca_pem,)) as t:
        got = [t.send(Request("GET", f"{srv.url}/v2/{n}")).content for n in range(3)]
    assert got == [b"tunnelled 0", b"tunnelled 1", b"tunnelled 2"]
    assert tinyproxy.requests() == [("CONNECT", f"127.0.0.1:{srv.port}")]  # one tunnel, kept alive
    assert srv.connections == 1 and [s.path for s in srv.seen] == ["/v2/0", "/v2/1", "/v2/2"]


def test_refused_certificate_through_a_tunnel_names_it(serve: ServeFn, tinyproxy: TinyProxy, tls: _Tls) -> None:
    srv = serve(lambda req, c, i: (ok(b"never"), False), tls=tls.server_context())
    with pytest.raises(TLSError) as info, _through(tinyproxy.url, retries=3, trust_store="openssl") as t:
        t.send(Request("GET", f"{srv.url}/v2/"))
    assert info.value.message.startswith(f"the TLS certificate of 127.0.0.1:{srv.port} was refused")
    assert "certificate subject: CN=pkgloader test server" in info.value.details  # looked up through the proxy too
    # the system CA directory, then the whole default store (see test_stdhttp): two refusals, no request
    assert eventually(lambda: srv.handshake_failures == 2) and srv.seen == []


def test_no_proxy_bypasses_the_proxy(serve: ServeFn, tinyproxy: TinyProxy, tls: _Tls) -> None:
    srv = serve(lambda req, c, i: (ok(b"direct"), False))
    tls_srv = serve(lambda req, c, i: (ok(b"direct tls"), False), tls=tls.server_context())
    tinyproxy.mark()
    with _through(tinyproxy.url, no_proxy=("127.0.0.1",), extra_root_certificates=(tls.ca_pem,)) as t:
        assert t.send(Request("GET", f"{srv.url}/v2/")).content == b"direct"
        assert t.send(Request("GET", f"{tls_srv.url}/v2/")).content == b"direct tls"
    with _through(tinyproxy.url, no_proxy=(f"127.0.0.1:{srv.port}",)) as t:  # that port only
        assert t.send(Request("GET", f"{srv.url}/v2/")).content == b"direct"
        other = serve(lambda req, c, i: (ok(b"proxied"), False))
        assert t.send(Request("GET", f"{other.url}/v2/")).content == b"proxied"
    assert tinyproxy.requests() == [("GET", f"{other.url}/v2/")]


def test_proxy_credentials_are_sent_to_the_proxy_only(serve: ServeFn, tinyproxy_factory: Any, tls: _Tls) -> None:
    proxy = tinyproxy_factory(basic_auth=("alice", "pw-1"))
    srv = serve(lambda req, c, i: (ok(b"ok"), False))
    tls_srv = serve(lambda req, c, i: (ok(b"ok tls"), False), tls=tls.server_context())
    proxy.mark()
    with _through(proxy.url_with_credentials, extra_root_certificates=(tls.ca_pem,)) as t:
        assert t.send(Request("GET", f"{srv.url}/v2/")).content == b"ok"
        assert t.send(Request("GET", f"{tls_srv.url}/v2/")).content == b"ok tls"
    assert proxy.requests() == [("GET", f"{srv.url}/v2/"), ("CONNECT", f"127.0.0.1:{tls_srv.port}")]
    assert proxy.denied() == 0
    assert "proxy-authorization" not in srv.seen[0].headers and "proxy-authorization" not in tls_srv.seen[0].headers


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_proxy_that_wants_credentials_is_named_and_not_retried(serve: ServeFn, tinyproxy_factory: Any, tls: _Tls,
                                                               scheme: str) -> None:
    proxy = tinyproxy_factory(basic_auth=("alice", "pw-1"))
    srv = serve(lambda req, c, i: (ok(b"never"), False), tls=tls.server_context() if scheme == "https" else None)
    proxy.mark()
    with pytest.raises(NetworkError) as info, _through(proxy.url, retries=3, extra_root_certificates=(tls.ca_pem,)) as t:
        t.send(Request("GET", f"{srv.url}/v2/"))
    err = info.value
    assert err.exit_code == 6
    if scheme == "http":
        assert err.message == (f"the proxy {proxy.url} refused the request: 407 Proxy Authentication Required "
                               f"(for {srv.url}/v2/)")
        assert proxy.requests() == [("GET", f"{srv.url}/v2/")]
    else:
        assert err.message == (f"the proxy {proxy.url} refused the tunnel to 127.0.0.1:{srv.port}: "
                               f"407 Proxy Authentication Required (for {srv.url}/v2/)")
        assert proxy.requests() == [("CONNECT", f"127.0.0.1:{srv.port}")]
    assert "HTTPS_PROXY" in (err.hint or "")
    assert proxy.denied() == 1 and srv.seen == []  # asked once, never retried, never reached the registry


def test_wrong_proxy_credentials_are_not_shown(serve: ServeFn, tinyproxy_factory: Any, tls: _Tls) -> None:
    proxy = tinyproxy_factory(basic_auth=("alice", "pw-1"))
    srv = serve(lambda req, c, i: (ok(b"never"), False), tls=tls.server_context())
    with pytest.raises(NetworkError) as info, _through(f"http://alice:{SECRET}@{proxy.host}", retries=3,
                                                       extra_root_certificates=(tls.ca_pem,)) as t:
        t.send(Request("GET", f"{srv.url}/v2/"))
    # tinyproxy answers wrong credentials with 401, not 407 (see support.tinyproxy)
    assert info.value.message == (f"the proxy {proxy.url} refused the tunnel to 127.0.0.1:{srv.port}: "
                                  f"401 Unauthorized (for {srv.url}/v2/)")
    assert SECRET not in info.value.render() and proxy.denied() == 1 and srv.seen == []


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_unreachable_proxy(scheme: str) -> None:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    url = f"{scheme}://registry.example/v2/"
    with pytest.raises(NetworkError) as info, _through(f"http://alice:{SECRET}@127.0.0.1:{port}", retries=3) as t:
        t.send(Request("GET", url))
    err = info.value
    assert err.message == f"cannot connect to the proxy http://127.0.0.1:{port}: Connection refused (for {url})"
    assert err.exit_code == 6 and SECRET not in err.render()


def test_proxy_from_the_environment_end_to_end(serve: ServeFn, tinyproxy: TinyProxy) -> None:
    srv = serve(lambda req, c, i: (ok(b"env proxied"), False))
    cfg = _load({"http_proxy": tinyproxy.url, "NO_PROXY": "ghcr.io"})
    tinyproxy.mark()
    with StdTransport(http_settings(cfg, f"127.0.0.1:{srv.port}")) as t:
        assert t.send(Request("GET", f"{srv.url}/v2/")).content == b"env proxied"
    assert tinyproxy.requests() == [("GET", f"{srv.url}/v2/")]


def test_a_wildcard_domain_entry_means_the_domain_and_below() -> None:
    from pkgloader._proxy import no_proxy_matches

    assert no_proxy_matches(("*.example.com",), "a.example.com", 443)
    assert no_proxy_matches(("*.example.com",), "example.com", 443)
    assert not no_proxy_matches(("*.example.com",), "badexample.com", 443)
