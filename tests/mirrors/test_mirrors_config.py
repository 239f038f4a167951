"""Mirrors in the config (keys, "*", PKGLOADER_MIRRORS, origins, masking, errors) and the
mirror rules that need no pull-through cache: credentials stay with their host, resolve =
true lists and resolves tags through the mirror, a mirror without the content is skipped."""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pkgloader import Client
from pkgloader._config import Config
from pkgloader._errors import ConfigError
from support.config import write_config
from support.proxy import FaultProxy
from support.wit import WitSpec, build_spec

SECRET = "mirror-secret-pw-4711"
BASE = WitSpec("test", "base", "1.0.0")


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    f = tmp_path / "c.toml"
    f.write_text(textwrap.dedent(text))
    return Config.load(config_files=[f], env=env or {}, cwd=tmp_path)


def test_mirror_strings_tables_star_and_fallback_with_origins_and_masked_auth(tmp_path: Path,
                                                                              run_cli: Callable[..., Any]) -> None:
    f = tmp_path / "c.toml"
    f.write_text(textwrap.dedent(f"""
        [registry."ghcr.io".oci]
        mirrors = ["mirror.internal:5000/ghcr", {{ location = "zot.internal", resolve = true, auth = {{ username = "ci", password = "{SECRET}" }} }}]
        mirror_fallback = false
        [registry."*".oci]
        mirrors = ["cache.internal"]
        """))
    r = run_cli("config", "show", "--origin", "--json", "--config", f)
    assert r.code == 0, r.err
    regs = r.json()["registry"]  # type: ignore[index]
    assert regs["ghcr.io"]["oci"]["mirrors"] == {
        "value": [{"location": "mirror.internal:5000/ghcr"},
                  {"location": "zot.internal", "resolve": True, "auth": {"username": "ci", "password": "********"}}],
        "origin": {"layer": "flag", "source": str(f), "line": 3}}
    assert regs["ghcr.io"]["oci"]["mirror_fallback"]["value"] is False
    assert regs["*"]["oci"]["mirrors"]["value"] == [{"location": "cache.internal"}]
    assert SECRET not in r.out + r.err
    r = run_cli("config", "show", "--origin", "--config", f)
    assert r.code == 0 and SECRET not in r.out + r.err


def test_pkgloader_mirrors_environment_override(tmp_path: Path) -> None:
    (tmp_path / "pkgloader.toml").write_text('[registry."ghcr.io".oci]\nmirrors = ["from-file:5000"]\n')
    env = {"PKGLOADER_MIRRORS": "ghcr.io=ci-mirror:5000/ghcr,second.internal; everything.internal"}
    cfg = Config.load(env=env, cwd=tmp_path, use_global=False)  # the environment wins over the project file
    ghcr = cfg.registries["ghcr.io"].backends["oci"]["mirrors"]
    assert ghcr.value == [{"location": "ci-mirror:5000/ghcr"}, {"location": "second.internal"}]
    assert str(ghcr.origin) == "env PKGLOADER_MIRRORS"
    assert cfg.registries["*"].backends["oci"]["mirrors"].value == [{"location": "everything.internal"}]
    with pytest.raises(ConfigError) as ei:
        _load(tmp_path, "", env={"PKGLOADER_MIRRORS": "https://m.internal"})
    assert ei.value.render() == (
        "error[invalid-config]: invalid PKGLOADER_MIRRORS: invalid mirror location 'https://m.internal': "
        "a mirror location has no scheme\n"
        "  set by: environment variable PKGLOADER_MIRRORS\n"
        "  hint: write [REGISTRY=]HOST[:PORT][/PREFIX][,...] groups separated by ';'")


@pytest.mark.parametrize(("value", "message"), [
    ('"m:5000"', "registry.\"r.example\".oci.mirrors: mirrors must be an array"),
    ('["http://m:5000"]', "registry.\"r.example\".oci.mirrors.0.location: invalid mirror location 'http://m:5000': "
                          "a mirror location has no scheme"),
    ('["m:99999"]', "registry.\"r.example\".oci.mirrors.0.location: invalid mirror location 'm:99999': port 99999 is out of range"),
    ('["m/Upper"]', "registry.\"r.example\".oci.mirrors.0.location: invalid mirror location 'm/Upper': "
                    "the path prefix is not a repository path"),
    ('[{ location = "m", resolv = true }]', "registry.\"r.example\".oci.mirrors.0.resolv: unknown mirror key 'resolv'"),
    ('[{ location = "m", resolve = "yes" }]', "registry.\"r.example\".oci.mirrors.0.resolve: resolve must be true or false"),
    ('[{ location = "m", accept_invalid_certificates = 1 }]',
     "registry.\"r.example\".oci.mirrors.0.accept_invalid_certificates: "),
    ('[{ resolve = true }]', "registry.\"r.example\".oci.mirrors.0: a mirror table needs a string location"),
])
def test_invalid_mirrors_are_config_errors(value: str, message: str, tmp_path: Path) -> None:
    # as for any key of a registry entry: a warning at load, an error when the registry is used
    cfg = _load(tmp_path, f'[registry."r.example".oci]\nmirrors = {value}\n')
    assert len(cfg.warnings) == 1 and f"(flag layer): {message}" in cfg.warnings[0], cfg.warnings
    with pytest.raises(ConfigError) as ei:
        cfg.registry_config("r.example").check_usable()
    assert ei.value.code == "registry-unusable"
    # a broken "*" entry fails every registry that would use its mirrors
    star = _load(tmp_path, f'[registry."*".oci]\nmirrors = {value}\n')
    assert len(star.warnings) == 1 and 'registry."*".oci.mirrors' in star.warnings[0]


def test_a_mirror_auth_is_never_shown_in_errors(tmp_path: Path) -> None:
    for text in (f'mirrors = [{{ location = "m", auth = {{ username = "u", pasword = "{SECRET}" }} }}]\n',
                 f'mirrors = [{{ location = "m", auth = "{SECRET}" }}]\n',
                 f'mirrors = [{{ location = "m", auth = ["{SECRET}"] }}]\n'):
        cfg = _load(tmp_path, '[registry."r.example".oci]\n' + text)
        assert cfg.warnings and SECRET not in "".join(cfg.warnings)
        with pytest.raises(ConfigError) as ei:
            cfg.registry_config("r.example").check_usable()
        assert SECRET not in ei.value.render()


# --- behaviour against real registries --------------------------------------------------------


class HeaderProxy(FaultProxy):
    """A FaultProxy that records the Authorization header of every request it forwards."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.authorizations: list[str | None] = []

    def _upstream_headers(self, h: Any) -> dict[str, str]:
        self.authorizations.append(h.headers.get("Authorization"))
        return super()._upstream_headers(h)


@pytest.fixture
def plain_mirror(registry_factory: Callable[..., Any], tmp_path: Path) -> Iterator[tuple[Any, HeaderProxy]]:
    """An anonymous registry holding test:base@1.0.0, behind a header-recording proxy."""
    reg = registry_factory()
    (tmp_path / "m").mkdir()
    with Client(Config.load(config_files=[write_config(tmp_path / "m", reg)], cache_dir=tmp_path / "m-cache", env={})) as c:
        c.publish(build_spec(tmp_path / "built", BASE), BASE.package_id)
    with HeaderProxy(reg) as proxy:
        yield reg, proxy


def test_the_origins_credentials_never_go_to_a_mirror(tls_registry: Any, plain_mirror: tuple[Any, HeaderProxy],
                                                      tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    _reg, mirror = plain_mirror
    # the same package on the origin (TLS + basic auth): same content, so the same layer digest
    user, password = next(iter(tls_registry.htpasswd.items()))
    ca = f'extra_root_certificates = [{{ encoding = "pem", data = """{tls_registry.ca_pem}""" }}]\n'
    auth = f'auth = {{ username = "{user}", password = "{password}" }}\n'
    (tmp_path / "o").mkdir()
    cfg = write_config(tmp_path / "o", tls_registry, extra=ca + auth)
    with Client(Config.load(config_files=[cfg], cache_dir=tmp_path / "o-cache", env={})) as c:
        c.publish(build_spec(tmp_path / "built", BASE), BASE.package_id)
    (tmp_path / "both").mkdir()
    cfg = write_config(tmp_path / "both", tls_registry, extra=ca + auth + f'mirrors = ["{mirror.host}"]\n')
    tls_registry.mark()
    mirror.mark()
    r = run_cli("fetch", "test:base@=1.0.0", "-o", tmp_path / "base.wasm", "--json", "--config", cfg,
                "--cache-dir", tmp_path / "cache")
    assert r.code == 0, r.err
    fetched = r.json()["fetched"][0]  # type: ignore[index]
    assert fetched["served_by"] == {"manifest": f"origin {tls_registry.host}", "content": f"mirror {mirror.host}"}
    assert [p.rsplit("/", 2)[-2] for _, p in mirror.requests()] == ["blobs"]
    assert [p.rsplit("/", 2)[-2] for _, p in tls_registry.requests()] == ["manifests", "manifests"]  # 401, then with auth
    assert mirror.authorizations == [None]  # the origin's password was not sent to the mirror
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    assert basic not in r.out + r.err


def test_resolve_true_lists_and_resolves_tags_through_the_mirror(plain_mirror: tuple[Any, HeaderProxy],
                                                                 tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    reg, mirror = plain_mirror
    # the origin is a registry that is down: a free port nobody listens on
    from support.registry import free_port

    class Down:
        host = f"127.0.0.1:{free_port()}"
        scheme = "http"

    cfg = write_config(tmp_path, Down, extra=f'mirrors = [{{ location = "{mirror.host}", resolve = true }}]\n'
                                             "mirror_fallback = false\n")
    r = run_cli("versions", "test:base", "--json", "--config", cfg, "--cache-dir", tmp_path / "cache")
    assert r.code == 0, r.err
    assert [v["version"] for v in r.json()["versions"]] == ["1.0.0"]  # type: ignore[index]
    r = run_cli("fetch", "test:base@1", "-o", tmp_path / "b.wasm", "--json", "--config", cfg,
                "--cache-dir", tmp_path / "cache")
    assert r.code == 0, r.err
    assert r.json()["fetched"][0]["served_by"] == {"manifest": f"mirror {mirror.host}",  # type: ignore[index]
                                                   "content": f"mirror {mirror.host}"}
    # without resolve = true the tags come from the origin, which is down
    cfg = write_config(tmp_path, Down, extra=f'mirrors = ["{mirror.host}"]\n')
    r = run_cli("versions", "test:base", "--config", cfg, "--cache-dir", tmp_path / "cache2")
    assert r.code == 6
    assert r.err.startswith(f"error[network-error]: ") and Down.host in r.err


def test_a_mirror_without_the_content_is_skipped_once_for_the_next(plain_mirror: tuple[Any, HeaderProxy],
                                                                   registry_factory: Callable[..., Any], tmp_path: Path,
                                                                   run_cli: Callable[..., Any]) -> None:
    reg, mirror = plain_mirror
    empty = registry_factory()
    cfg = write_config(tmp_path, reg, extra=f'mirrors = ["{empty.host}/nothing/here", "{mirror.host}"]\n')
    r = run_cli("fetch", "test:base@=1.0.0", "-o", tmp_path / "b.wasm", "--json", "--config", cfg,
                "--cache-dir", tmp_path / "cache")
    assert r.code == 0, r.err
    assert r.err == (f"warning: mirror {empty.host}/nothing/here failed (package-not-found: content of test:base not "
                     f"found or not authorized at {empty.host}/nothing/here/test/base); skipping it from now on\n")
    assert r.json()["fetched"][0]["served_by"]["content"] == f"mirror {mirror.host}"  # type: ignore[index]
    assert json.loads(r.out)["fetched"][0]["digest"].startswith("sha256:")


def test_pkgloader_mirrors_for_every_registry_serves_content(plain_mirror: tuple[Any, HeaderProxy], tmp_path: Path,
                                                             run_cli: Callable[..., Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    reg, mirror = plain_mirror
    cfg = write_config(tmp_path, reg)  # no mirrors in any file
    monkeypatch.setenv("PKGLOADER_MIRRORS", mirror.host)  # "*": every registry
    mirror.mark()
    r = run_cli("fetch", "test:base@=1.0.0", "-o", tmp_path / "b.wasm", "--json", "--config", cfg,
                "--cache-dir", tmp_path / "cache")
    assert r.code == 0, r.err
    assert r.json()["fetched"][0]["served_by"] == {"manifest": f"origin {reg.host}",  # type: ignore[index]
                                                   "content": f"mirror {mirror.host}"}
    assert [p.rsplit("/", 2)[-2] for _, p in mirror.requests()] == ["blobs"]
    # mirrors = [] for one registry turns the "*" mirrors off for it
    cfg = write_config(tmp_path, reg, extra="mirrors = []\n")
    r = run_cli("fetch", "test:base@=1.0.0", "-o", tmp_path / "c.wasm", "--json", "--config", cfg,
                "--cache-dir", tmp_path / "cache2")
    assert r.code == 0, r.err
    assert "served_by" not in r.json()["fetched"][0]  # type: ignore[index]  (no mirrors: nothing to say)


def test_the_async_client_goes_through_the_mirror_too(plain_mirror: tuple[Any, HeaderProxy], tmp_path: Path) -> None:
    import asyncio

    from pkgloader import AsyncClient

    reg, mirror = plain_mirror
    cfg = Config.load(config_files=[write_config(tmp_path, reg, extra=f'mirrors = ["{mirror.host}"]\n')],
                      cache_dir=tmp_path / "cache", env={})
    mirror.mark()

    async def main() -> Any:
        async with AsyncClient(cfg) as client:
            return await client.fetch("test:base@=1.0.0", tmp_path / "b.wasm")

    result = asyncio.run(main())
    assert result.path.read_bytes()[:4] == b"\0asm"
    assert [p.rsplit("/", 2)[-2] for _, p in mirror.requests()] == ["blobs"]


def test_config_resolve_names_the_mirrors_and_a_layout(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    f = tmp_path / "c.toml"
    f.write_text(textwrap.dedent(f"""
        [namespace_registries]
        test = "r.example"
        other = "files"
        [registry."*".oci]
        mirrors = ["m1:5000/p", {{ location = "m2", resolve = true }}]
        mirror_fallback = false
        [registry."files".oci-layout]
        root = "{tmp_path / 'layout'}"
        """))
    r = run_cli("config", "resolve", "test:x", "--offline", "--config", f)
    assert r.code == 0, r.err
    assert r.out.splitlines()[-1] == 'mirrors:   m1:5000/p, m2 (resolve)  (from registry."*"; fallback to the origin off)'
    r = run_cli("config", "resolve", "test:x", "--offline", "--json", "--config", f)
    data = r.json()
    assert data["mirrors"] == [{"location": "m1:5000/p", "scheme": "https", "resolve": False},  # type: ignore[index]
                               {"location": "m2", "scheme": "https", "resolve": True}]
    assert data["mirror_fallback"] is False  # type: ignore[index]
    r = run_cli("config", "resolve", "other:y", "--config", f)
    assert r.code == 0, r.err
    assert r.out.splitlines()[2:] == ["backend:   oci-layout  (only backend configured for registry \"files\")",
                                      "metadata:  not fetched (oci-layout backend)",
                                      f"oci-layout: {tmp_path / 'layout'}:other/y"]


def test_the_ci_mirrors_example_means_what_its_comments_say() -> None:
    from pkgloader._ref import PackageRef
    from pkgloader._source import source_flow
    from pkgloader.backends._mirrors import mirror_plan

    example = Path(__file__).resolve().parents[2] / "config-examples" / "ci-mirrors.toml"
    cfg = Config.load(config_files=[example], use_global=False, use_project=False, env={})
    assert cfg.warnings == []
    flow = source_flow(cfg, PackageRef.parse("wasi:http"))
    try:
        next(flow)
        raise AssertionError("inline metadata: no request")
    except StopIteration as stop:
        source = stop.value
    plan = mirror_plan(cfg, source)  # found under the OCI host's entry (ghcr.io), not wasi.dev
    assert plan is not None and plan.configured_in == "ghcr.io" and plan.fallback is True
    assert [(m.label, m.resolve, m.scheme) for m in plan.mirrors] == [
        ("registry-cache.ci.internal:5000", False, "https"), ("harbor.ci.internal/ghcr-proxy", True, "https")]
    assert cfg.registries["*"].backends["oci"]["mirrors"].value == [{"location": "registry-cache.ci.internal:5000"}]
