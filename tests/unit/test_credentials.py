"""Credential lookup: env, config, docker config.json / credential helpers (no HTTP).

Helpers are real processes: ``docker-credential-fake`` is a small Python script written into a
temp dir that is put on PATH. It logs each call and answers from ``answers.json`` next to it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

from pkgloader import _credentials
from pkgloader._config import Config
from pkgloader._credentials import Credentials, clear_cache, env_host_key, find_credentials
from pkgloader._errors import ConfigError

SECRET = "s3cr3t-Pa55"  # every secret in this file contains this, so leaks are easy to spot


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    clear_cache()
    # not covered by the shared isolated_env fixture, but read by this module
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    yield
    clear_cache()


def found(config: Config, registry: str, host: str) -> Credentials:
    creds = find_credentials(config, registry, host)
    assert creds is not None, f"no credentials for {host}"
    return creds


def no_config() -> Config:
    return Config.builtin()


def config_with(tmp_path: Path, registry: str, auth: str) -> tuple[Config, Path]:
    path = tmp_path / "pkgloader.toml"
    path.write_text(f'[registry."{registry}".oci]\n{auth}\n')
    cfg = Config.builtin()
    cfg.merge_file(path, "project")
    return cfg, path


def docker_config_path() -> Path:
    return Path(os.environ["DOCKER_CONFIG"]) / "config.json"


def write_docker_config(data: Any, path: Path | None = None) -> Path:
    path = path or docker_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        assert SECRET not in str(text)


def error_text(exc: ConfigError) -> str:
    return exc.render() + repr(exc) + str(exc.to_json())


# ---------------------------------------------------------------------------------------
# a real fake credential helper

HELPER_SCRIPT = """\
#!{python} -I
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
url = sys.stdin.read()  # returns only once the caller has closed stdin
name = os.path.basename(sys.argv[0])
with open(os.path.join(here, "calls.log"), "a") as log:
    log.write(name + " " + " ".join(sys.argv[1:]) + " " + url + "\\n")
with open(os.path.join(here, "answers.json")) as f:
    answers = json.load(f)
answer = answers.get(url)
if answer is None:
    sys.stdout.write("credentials not found in native keychain\\n")
    sys.exit(1)
time.sleep(answer.get("sleep", 0))
sys.stdout.write(answer.get("out", ""))
sys.exit(answer.get("exit", 0))
"""


class FakeHelpers:
    """``docker-credential-<name>`` scripts in one directory on PATH."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.answers: dict[str, dict[str, Any]] = {}
        self.save()

    def install(self, name: str = "fake") -> None:
        exe = self.bin_dir / f"docker-credential-{name}"
        exe.write_text(HELPER_SCRIPT.format(python=sys.executable))
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def save(self) -> None:
        (self.bin_dir / "answers.json").write_text(json.dumps(self.answers))

    def answer(self, url: str, username: str = "", secret: str = "", *, out: str | None = None,
               exit: int = 0, sleep: float = 0) -> None:
        body = json.dumps({"ServerURL": url, "Username": username, "Secret": secret}) if out is None else out
        self.answers[url] = {"out": body, "exit": exit, "sleep": sleep}
        self.save()

    @property
    def calls(self) -> list[str]:
        log = self.bin_dir / "calls.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHelpers:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    fake = FakeHelpers(bin_dir)
    fake.install("fake")
    return fake


# ---------------------------------------------------------------------------------------
# Credentials


def test_repr_and_str_never_show_the_secret() -> None:
    for kind in ("basic", "bearer", "identity-token"):
        creds = Credentials(kind, "alice", SECRET, "env X")
        assert_no_secret(repr(creds), str(creds), f"{creds}", [creds], {"c": creds})
    assert repr(Credentials("basic", "alice", SECRET, "env X")) == (
        "Credentials(kind='basic', username='alice', secret='********', source='env X')")


def test_authorization_header() -> None:
    assert Credentials("basic", "alice", "pw:with:colons", "x").authorization() == "Basic " + b64("alice:pw:with:colons")
    assert Credentials("basic", None, "pw", "x").authorization() == "Basic " + b64(":pw")
    assert Credentials("bearer", None, "tok", "x").authorization() == "Bearer tok"
    assert Credentials("identity-token", None, "refresh", "x").authorization() is None


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown credentials kind 'digest'"):
        Credentials("digest", None, SECRET, "x")


# ---------------------------------------------------------------------------------------
# <HOST> in env var names: wasm-pkg-client's registry_auth_env_var


@pytest.mark.parametrize(("name", "key"), [
    ("example.com", "EXAMPLE_COM"),  # the cases of wasm-pkg-client's own tests and docs
    ("ghcr.io", "GHCR_IO"),
    ("localhost:1234", "LOCALHOST_1234"),
    ("localhost:8008", "LOCALHOST_8008"),
    ("foo.bar/baz", "FOO_BAR_BAZ"),
    ("127.0.0.1:5000", "127_0_0_1_5000"),
    ("my-registry.Example.COM", "MY_REGISTRY_EXAMPLE_COM"),
    ("[::1]:5000", "___1__5000"),  # one "_" per character, never collapsed
    ("bücher.de", "B_CHER_DE"),  # non-ASCII letters are not alphanumeric for Rust's is_ascii_alphanumeric
])
def test_env_host_key(name: str, key: str) -> None:
    assert env_host_key(name) == key


# ---------------------------------------------------------------------------------------
# 1. env bearer


def test_env_bearer_pkgloader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_AUTH_BEARER", SECRET)
    creds = find_credentials(no_config(), "wasi.dev", "ghcr.io")
    assert creds == Credentials("bearer", None, SECRET, "env PKGLOADER_REGISTRY_GHCR_IO_AUTH_BEARER")
    assert creds.authorization() == f"Bearer {SECRET}"


def test_env_bearer_wkg_with_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WKG_REGISTRY_127_0_0_1_5000_AUTH_BEARER", SECRET)
    creds = find_credentials(no_config(), "127.0.0.1:5000", "127.0.0.1:5000")
    assert creds == Credentials("bearer", None, SECRET, "env WKG_REGISTRY_127_0_0_1_5000_AUTH_BEARER")


def test_env_bearer_pkgloader_before_wkg_and_host_before_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = no_config()
    monkeypatch.setenv("WKG_REGISTRY_WASI_DEV_AUTH_BEARER", "t4")
    assert found(cfg, "wasi.dev", "ghcr.io").source == "env WKG_REGISTRY_WASI_DEV_AUTH_BEARER"
    monkeypatch.setenv("PKGLOADER_REGISTRY_WASI_DEV_AUTH_BEARER", "t3")
    assert found(cfg, "wasi.dev", "ghcr.io").secret == "t3"
    monkeypatch.setenv("WKG_REGISTRY_GHCR_IO_AUTH_BEARER", "t2")
    assert found(cfg, "wasi.dev", "ghcr.io").secret == "t2"
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_AUTH_BEARER", "t1")
    assert found(cfg, "wasi.dev", "ghcr.io").secret == "t1"


def test_empty_env_vars_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_AUTH_BEARER", "")
    monkeypatch.setenv("WKG_REGISTRY_GHCR_IO_AUTH_BEARER", "")
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_USERNAME", "")
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_PASSWORD", "")
    assert find_credentials(no_config(), "ghcr.io", "ghcr.io") is None


def test_env_argument_replaces_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_AUTH_BEARER", "from-os-environ")
    creds = find_credentials(no_config(), "ghcr.io", "ghcr.io", env={"WKG_REGISTRY_GHCR_IO_AUTH_BEARER": "given"})
    assert creds is not None and creds.secret == "given"
    assert find_credentials(no_config(), "ghcr.io", "ghcr.io", env={}) is None


# ---------------------------------------------------------------------------------------
# 2. env basic


def test_env_basic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_USERNAME", "alice")
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_PASSWORD", SECRET)
    creds = find_credentials(no_config(), "wasi.dev", "ghcr.io")
    assert creds == Credentials("basic", "alice", SECRET, "env PKGLOADER_REGISTRY_GHCR_IO_PASSWORD")
    assert creds.authorization() == "Basic " + b64(f"alice:{SECRET}")


def test_env_basic_by_registry_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKGLOADER_REGISTRY_WASI_DEV_USERNAME", "alice")
    monkeypatch.setenv("PKGLOADER_REGISTRY_WASI_DEV_PASSWORD", SECRET)
    creds = find_credentials(no_config(), "wasi.dev", "ghcr.io")
    assert creds is not None and creds.source == "env PKGLOADER_REGISTRY_WASI_DEV_PASSWORD"


def test_env_basic_username_without_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_USERNAME", "alice")
    with pytest.raises(ConfigError) as info:
        find_credentials(no_config(), "ghcr.io", "ghcr.io")
    assert info.value.render() == (
        "error[invalid-config]: PKGLOADER_REGISTRY_GHCR_IO_USERNAME is set but "
        "PKGLOADER_REGISTRY_GHCR_IO_PASSWORD is not (credentials for ghcr.io)\n"
        "  PKGLOADER_REGISTRY_GHCR_IO_PASSWORD is unset or empty\n"
        "  hint: set both PKGLOADER_REGISTRY_GHCR_IO_USERNAME and PKGLOADER_REGISTRY_GHCR_IO_PASSWORD, or neither"
    )


def test_env_basic_password_without_username(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKGLOADER_REGISTRY_127_0_0_1_5000_PASSWORD", SECRET)
    with pytest.raises(ConfigError) as info:
        find_credentials(no_config(), "local", "127.0.0.1:5000")
    assert str(info.value) == (
        "PKGLOADER_REGISTRY_127_0_0_1_5000_PASSWORD is set but "
        "PKGLOADER_REGISTRY_127_0_0_1_5000_USERNAME is not (credentials for 127.0.0.1:5000)")
    assert_no_secret(error_text(info.value))


# ---------------------------------------------------------------------------------------
# 3. config


def test_config_auth_table(tmp_path: Path) -> None:
    cfg, path = config_with(tmp_path, "wasi.dev", f'auth = {{ username = "alice", password = "{SECRET}" }}')
    creds = find_credentials(cfg, "wasi.dev", "ghcr.io")
    assert creds == Credentials("basic", "alice", SECRET,
                                f'config registry."wasi.dev".oci.auth (project {path}:2)')


def test_config_auth_base64(tmp_path: Path) -> None:
    cfg, path = config_with(tmp_path, "127.0.0.1:5000", f'auth = "{b64("bob:" + SECRET)}"')
    creds = find_credentials(cfg, "127.0.0.1:5000", "127.0.0.1:5000")
    assert creds == Credentials("basic", "bob", SECRET,
                                f'config registry."127.0.0.1:5000".oci.auth (project {path}:2)')


def test_config_of_another_registry_is_not_used(tmp_path: Path) -> None:
    cfg, _ = config_with(tmp_path, "other.dev", f'auth = {{ username = "alice", password = "{SECRET}" }}')
    assert find_credentials(cfg, "wasi.dev", "ghcr.io") is None


# ---------------------------------------------------------------------------------------
# precedence: env bearer > env basic > config > docker config


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_docker_config({"auths": {"ghcr.io": {"auth": b64("docker-user:d-" + SECRET)}}})
    cfg, _ = config_with(tmp_path, "wasi.dev", f'auth = {{ username = "cfg-user", password = "c-{SECRET}" }}')
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_USERNAME", "env-user")
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_PASSWORD", "e-" + SECRET)
    monkeypatch.setenv("WKG_REGISTRY_GHCR_IO_AUTH_BEARER", "b-" + SECRET)

    def who() -> str | None:
        creds = find_credentials(cfg, "wasi.dev", "ghcr.io")
        return None if creds is None else creds.source.split(" ")[0] + ":" + (creds.username or creds.kind)

    assert who() == "env:bearer"
    monkeypatch.delenv("WKG_REGISTRY_GHCR_IO_AUTH_BEARER")
    assert who() == "env:env-user"
    monkeypatch.delenv("PKGLOADER_REGISTRY_GHCR_IO_USERNAME")
    monkeypatch.delenv("PKGLOADER_REGISTRY_GHCR_IO_PASSWORD")
    assert who() == "config:cfg-user"
    assert who() == "config:cfg-user"
    assert who() == "config:cfg-user"
    assert find_credentials(no_config(), "wasi.dev", "ghcr.io") == Credentials(
        "basic", "docker-user", "d-" + SECRET, f'docker config {docker_config_path()} (auths "ghcr.io")')
    docker_config_path().unlink()
    assert find_credentials(no_config(), "wasi.dev", "ghcr.io") is None


def test_bearer_for_registry_name_beats_basic_for_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_USERNAME", "alice")
    monkeypatch.setenv("PKGLOADER_REGISTRY_GHCR_IO_PASSWORD", SECRET)
    monkeypatch.setenv("PKGLOADER_REGISTRY_WASI_DEV_AUTH_BEARER", SECRET)
    creds = find_credentials(no_config(), "wasi.dev", "ghcr.io")
    assert creds is not None and creds.kind == "bearer"


# ---------------------------------------------------------------------------------------
# 4. docker config: auths


def test_docker_auths_auth_field() -> None:
    path = write_docker_config({"auths": {"ghcr.io": {"auth": b64(f"alice:{SECRET}:x")}}})
    assert find_credentials(no_config(), "wasi.dev", "ghcr.io") == Credentials(
        "basic", "alice", f"{SECRET}:x", f'docker config {path} (auths "ghcr.io")')


def test_docker_auths_unpadded_auth() -> None:
    raw = b64(f"al:{SECRET}").rstrip("=")
    write_docker_config({"auths": {"ghcr.io": {"auth": raw}}})
    creds = find_credentials(no_config(), "ghcr.io", "ghcr.io")
    assert creds is not None and (creds.username, creds.secret) == ("al", SECRET)


def test_docker_auths_username_password_fields() -> None:
    path = write_docker_config({"auths": {"127.0.0.1:5000": {"username": "bob", "password": SECRET}}})
    assert find_credentials(no_config(), "local", "127.0.0.1:5000") == Credentials(
        "basic", "bob", SECRET, f'docker config {path} (auths "127.0.0.1:5000")')


def test_docker_auths_identity_token() -> None:
    # what docker login writes for e.g. Azure ACR: a username with no password, plus a refresh token
    write_docker_config({"auths": {"x.azurecr.io": {
        "auth": b64("00000000-0000-0000-0000-000000000000:"), "identitytoken": SECRET}}})
    creds = find_credentials(no_config(), "x.azurecr.io", "x.azurecr.io")
    assert creds is not None
    assert (creds.kind, creds.username, creds.secret) == ("identity-token", "00000000-0000-0000-0000-000000000000", SECRET)
    assert creds.authorization() is None


def test_docker_auths_registry_token_is_a_bearer_token() -> None:
    write_docker_config({"auths": {"ghcr.io": {"registrytoken": SECRET}}})
    creds = find_credentials(no_config(), "ghcr.io", "ghcr.io")
    assert creds is not None and (creds.kind, creds.secret) == ("bearer", SECRET)


@pytest.mark.parametrize("key", [
    "https://ghcr.io", "http://ghcr.io", "https://ghcr.io/", "https://ghcr.io/v1/", "https://ghcr.io/v2/", "GHCR.IO",
])
def test_docker_auths_url_form_keys(key: str) -> None:
    path = write_docker_config({"auths": {key: {"auth": b64(f"alice:{SECRET}")}}})
    assert find_credentials(no_config(), "wasi.dev", "ghcr.io") == Credentials(
        "basic", "alice", SECRET, f'docker config {path} (auths "{key}")')


def test_docker_auths_url_key_with_port() -> None:
    write_docker_config({"auths": {"http://127.0.0.1:5000": {"auth": b64(f"alice:{SECRET}")}}})
    assert find_credentials(no_config(), "x", "127.0.0.1:5000") is not None
    assert find_credentials(no_config(), "x", "127.0.0.1:5001") is None
    assert find_credentials(no_config(), "x", "127.0.0.1") is None


def test_docker_auths_exact_key_preferred() -> None:
    write_docker_config({"auths": {
        "https://ghcr.io": {"auth": b64("url-user:pw")},
        "ghcr.io": {"auth": b64("exact-user:pw")},
    }})
    creds = find_credentials(no_config(), "ghcr.io", "ghcr.io")
    assert creds is not None and creds.username == "exact-user"


def test_docker_auths_docker_hub() -> None:
    path = write_docker_config({"auths": {"https://index.docker.io/v1/": {"auth": b64(f"hubuser:{SECRET}")}}})
    for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert find_credentials(no_config(), host, host) == Credentials(
            "basic", "hubuser", SECRET, f'docker config {path} (auths "https://index.docker.io/v1/")')


def test_docker_auths_other_hosts_and_repository_scoped_keys_do_not_match() -> None:
    write_docker_config({"auths": {
        "ghcr.io.evil.example": {"auth": b64("a:b")},
        "ghcr.io/some-org": {"auth": b64("a:b")},  # podman's repository-scoped entries
        "https://example.com/ghcr.io": {"auth": b64("a:b")},
    }})
    assert find_credentials(no_config(), "ghcr.io", "ghcr.io") is None


def test_docker_auths_empty_entry_means_no_credentials() -> None:
    write_docker_config({"auths": {"ghcr.io": {}, "https://ghcr.io": {"auth": ""}}})
    assert find_credentials(no_config(), "ghcr.io", "ghcr.io") is None


def test_missing_or_empty_docker_config() -> None:
    assert find_credentials(no_config(), "ghcr.io", "ghcr.io") is None
    write_docker_config("")
    assert find_credentials(no_config(), "ghcr.io", "ghcr.io") is None
    write_docker_config({})
    assert find_credentials(no_config(), "ghcr.io", "ghcr.io") is None


def test_docker_config_from_home_when_docker_config_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_CONFIG")
    path = write_docker_config({"auths": {"ghcr.io": {"auth": b64("alice:pw")}}},
                               Path(os.environ["HOME"]) / ".docker" / "config.json")
    creds = find_credentials(no_config(), "ghcr.io", "ghcr.io")
    assert creds is not None and creds.source == f'docker config {path} (auths "ghcr.io")'


def test_malformed_docker_config_is_a_config_error() -> None:
    path = write_docker_config('{"auths": {"ghcr.io": {"auth": "' + SECRET + '"}}')  # truncated
    with pytest.raises(ConfigError) as info:
        find_credentials(no_config(), "ghcr.io", "ghcr.io")
    assert info.value.render() == (
        f"error[invalid-config]: docker config {path} is not valid JSON\n"
        f"  file: {path}\n"
        f"  line 1 column {len(SECRET) + 36}: Expecting ',' delimiter\n"
        f"  hint: fix or remove {path} (it is read for registry credentials)"
    )
    assert_no_secret(error_text(info.value))


@pytest.mark.parametrize(("data", "message"), [
    ([], "is not a JSON object"),
    ({"auths": []}, 'has an "auths" that is not an object'),
    ({"auths": {"ghcr.io": "x"}}, 'has an auths entry "ghcr.io" that is not an object'),
    ({"auths": {"ghcr.io": {"password": 1}}}, 'has a non-string "password" in auths "ghcr.io"'),
    ({"credHelpers": {"ghcr.io": "../../bin/sh"}}, 'names an invalid credential helper for "ghcr.io" in credHelpers'),
    ({"credsStore": 3}, "names an invalid credential helper in credsStore"),
])
def test_invalid_docker_config_shapes(data: Any, message: str) -> None:
    path = write_docker_config(data)
    with pytest.raises(ConfigError) as info:
        find_credentials(no_config(), "ghcr.io", "ghcr.io")
    assert str(info.value) == f"docker config {path} {message}"


@pytest.mark.parametrize(("auth", "problem"), [
    (SECRET + "!", 'that is not base64 of "user:password"'),
    (b64(SECRET), 'without ":" between user and password'),
])
def test_bad_auth_field_is_a_config_error_without_the_secret(auth: str, problem: str) -> None:
    path = write_docker_config({"auths": {"https://ghcr.io": {"auth": auth}}})
    with pytest.raises(ConfigError) as info:
        find_credentials(no_config(), "ghcr.io", "ghcr.io")
    assert str(info.value) == f'docker config {path} has an "auth" in auths "https://ghcr.io" {problem}'
    assert info.value.hint == "run docker login ghcr.io again, or fix the entry"
    assert_no_secret(error_text(info.value))


def test_docker_config_is_parsed_once_and_reread_when_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    write_docker_config({"auths": {"ghcr.io": {"auth": b64("one:pw")}}})
    parses: list[Path] = []
    real = _credentials._parse_auth_file

    def counting(path: Path, label: str) -> Any:
        parses.append(path)
        return real(path, label)

    monkeypatch.setattr(_credentials, "_parse_auth_file", counting)
    for _ in range(5):
        assert found(no_config(), "ghcr.io", "ghcr.io").username == "one"
    assert len(parses) == 1
    write_docker_config({"auths": {"ghcr.io": {"auth": b64("second:pw")}}})
    assert found(no_config(), "ghcr.io", "ghcr.io").username == "second"
    assert len(parses) == 2


# --- containers auth.json (podman, skopeo) ----------------------------------------------


def test_registry_auth_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth_file = write_docker_config({"auths": {"quay.io": {"auth": b64(f"pod:{SECRET}")}}}, tmp_path / "auth.json")
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))
    assert find_credentials(no_config(), "quay.io", "quay.io") == Credentials(
        "basic", "pod", SECRET, f'containers auth file {auth_file} (auths "quay.io")')


def test_xdg_runtime_auth_file_comes_after_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = tmp_path / "run"
    auth_file = write_docker_config({"auths": {"quay.io": {"auth": b64("pod:pw")}}},
                                    runtime / "containers" / "auth.json")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    creds = find_credentials(no_config(), "quay.io", "quay.io")
    assert creds is not None and creds.source == f'containers auth file {auth_file} (auths "quay.io")'
    write_docker_config({"auths": {"quay.io": {"auth": b64("docker:pw")}}})
    creds = find_credentials(no_config(), "quay.io", "quay.io")
    assert creds is not None and creds.username == "docker"


def test_xdg_config_auth_file() -> None:
    auth_file = write_docker_config({"auths": {"quay.io": {"auth": b64("pod:pw")}}},
                                    Path(os.environ["XDG_CONFIG_HOME"]) / "containers" / "auth.json")
    creds = find_credentials(no_config(), "quay.io", "quay.io")
    assert creds is not None and creds.source == f'containers auth file {auth_file} (auths "quay.io")'


# ---------------------------------------------------------------------------------------
# 4. docker config: credential helpers


def test_cred_helper_basic(helpers: FakeHelpers) -> None:
    helpers.answer("ghcr.io", "alice", SECRET)
    path = write_docker_config({"credHelpers": {"ghcr.io": "fake"}})
    assert find_credentials(no_config(), "wasi.dev", "ghcr.io") == Credentials(
        "basic", "alice", SECRET, f"docker config {path} (credHelpers: fake)")
    assert helpers.calls == ["docker-credential-fake get ghcr.io"]


def test_cred_helper_identity_token(helpers: FakeHelpers) -> None:
    helpers.answer("x.azurecr.io", "<token>", SECRET)
    write_docker_config({"credHelpers": {"x.azurecr.io": "fake"}})
    creds = find_credentials(no_config(), "x.azurecr.io", "x.azurecr.io")
    assert creds is not None and (creds.kind, creds.username, creds.secret) == ("identity-token", None, SECRET)


def test_cred_helper_is_asked_once_per_process(helpers: FakeHelpers) -> None:
    helpers.answer("ghcr.io", "alice", SECRET)
    write_docker_config({"credHelpers": {"ghcr.io": "fake"}})
    for _ in range(50):
        assert find_credentials(no_config(), "wasi.dev", "ghcr.io") is not None
    assert len(helpers.calls) == 1


def test_cred_helper_not_found_is_cached_too(helpers: FakeHelpers) -> None:
    write_docker_config({"credHelpers": {"ghcr.io": "fake"}})
    for _ in range(10):
        assert find_credentials(no_config(), "wasi.dev", "ghcr.io") is None
    # asked for the host and for https://host (what some logins store), once each
    assert helpers.calls == ["docker-credential-fake get ghcr.io", "docker-credential-fake get https://ghcr.io"]


def test_cred_helper_url_form_server(helpers: FakeHelpers) -> None:
    helpers.answer("https://ghcr.io", "alice", SECRET)
    write_docker_config({"credHelpers": {"https://ghcr.io": "fake"}})
    creds = find_credentials(no_config(), "ghcr.io", "ghcr.io")
    assert creds is not None and creds.username == "alice"


def test_cred_helper_docker_hub_uses_the_index_url(helpers: FakeHelpers) -> None:
    helpers.answer("https://index.docker.io/v1/", "hubuser", SECRET)
    write_docker_config({"credHelpers": {"https://index.docker.io/v1/": "fake"}})
    creds = find_credentials(no_config(), "docker.io", "docker.io")
    assert creds is not None and creds.username == "hubuser"
    assert helpers.calls == ["docker-credential-fake get https://index.docker.io/v1/"]


def test_cred_helper_beats_creds_store_and_auths(helpers: FakeHelpers) -> None:
    helpers.install("store")
    helpers.answer("ghcr.io", "from-helper", SECRET)
    write_docker_config({"credHelpers": {"ghcr.io": "fake"}, "credsStore": "store",
                         "auths": {"ghcr.io": {"auth": b64("from-auths:pw")}}})
    creds = find_credentials(no_config(), "ghcr.io", "ghcr.io")
    assert creds is not None and creds.username == "from-helper"
    assert helpers.calls == ["docker-credential-fake get ghcr.io"]


def test_creds_store(helpers: FakeHelpers) -> None:
    helpers.answer("ghcr.io", "alice", SECRET)
    path = write_docker_config({"credsStore": "fake", "credHelpers": {"other.io": "missing"},
                                "auths": {"ghcr.io": {}}})
    assert find_credentials(no_config(), "wasi.dev", "ghcr.io") == Credentials(
        "basic", "alice", SECRET, f"docker config {path} (credsStore: fake)")


def test_creds_store_https_fallback(helpers: FakeHelpers) -> None:
    helpers.answer("https://ghcr.io", "alice", SECRET)
    write_docker_config({"credsStore": "fake"})
    creds = find_credentials(no_config(), "ghcr.io", "ghcr.io")
    assert creds is not None and creds.username == "alice"
    assert helpers.calls == ["docker-credential-fake get ghcr.io", "docker-credential-fake get https://ghcr.io"]


def test_creds_store_not_found_falls_back_to_auths(helpers: FakeHelpers) -> None:
    path = write_docker_config({"credsStore": "fake", "auths": {"127.0.0.1:5000": {"auth": b64("bob:pw")}}})
    assert find_credentials(no_config(), "local", "127.0.0.1:5000") == Credentials(
        "basic", "bob", "pw", f'docker config {path} (auths "127.0.0.1:5000")')


def test_helper_answer_with_empty_secret_means_not_found(helpers: FakeHelpers) -> None:
    helpers.answer("ghcr.io", "", "")
    helpers.answer("https://ghcr.io", "", "")
    write_docker_config({"credsStore": "fake"})
    assert find_credentials(no_config(), "ghcr.io", "ghcr.io") is None


def test_missing_helper_is_a_warning(helpers: FakeHelpers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pkgloader")
    path = write_docker_config({"credsStore": "desktop", "auths": {"ghcr.io": {"auth": b64("alice:pw")}}})
    for _ in range(3):
        creds = find_credentials(no_config(), "ghcr.io", "ghcr.io")
        assert creds is not None and creds.username == "alice"
    assert find_credentials(no_config(), "quay.io", "quay.io") is None
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [(
        "pkgloader", "WARNING",
        f"docker config {path} names credential helper docker-credential-desktop in credsStore, "
        "but it is not on PATH; continuing without it",
    )]


def test_slow_helper_times_out(helpers: FakeHelpers, caplog: pytest.LogCaptureFixture,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_credentials, "HELPER_TIMEOUT", 1.0)
    caplog.set_level(logging.WARNING, logger="pkgloader")
    helpers.answer("ghcr.io", "alice", SECRET, sleep=30)
    path = write_docker_config({"credHelpers": {"ghcr.io": "fake"}, "auths": {"https://ghcr.io": {"auth": b64("alice:pw")}}})
    for _ in range(3):  # the helper is not asked again: one wait per process, not one per package
        creds = find_credentials(no_config(), "ghcr.io", "ghcr.io")
        assert creds is not None and creds.source == f'docker config {path} (auths "https://ghcr.io")'
    assert helpers.calls == ["docker-credential-fake get ghcr.io"]
    assert [r.getMessage() for r in caplog.records] == [
        f"credential helper docker-credential-fake did not answer within 1 s for ghcr.io "
        f"(docker config {path} (credHelpers: fake)); continuing without it"
    ]


def test_failing_helper_is_a_warning(helpers: FakeHelpers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pkgloader")
    helpers.answer("ghcr.io", out="error getting credentials: keychain is locked\n", exit=1)
    helpers.answer("https://ghcr.io", out="", exit=2)
    write_docker_config({"credsStore": "fake"})
    assert find_credentials(no_config(), "ghcr.io", "ghcr.io") is None
    assert [r.getMessage() for r in caplog.records] == [
        "credential helper docker-credential-fake failed for ghcr.io "
        "(exit status 1: error getting credentials: keychain is locked); continuing without it",
        "credential helper docker-credential-fake failed for https://ghcr.io (exit status 2: no output); "
        "continuing without it",
    ]


def test_garbage_helper_answer_is_not_echoed(helpers: FakeHelpers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pkgloader")
    helpers.answer("ghcr.io", out=f'{{"Username": "alice", "Secret": "{SECRET}"')  # truncated JSON
    helpers.answer("https://ghcr.io", out=f'["{SECRET}"]')
    write_docker_config({"credsStore": "fake"})
    assert find_credentials(no_config(), "ghcr.io", "ghcr.io") is None
    assert [r.getMessage() for r in caplog.records] == [
        "credential helper docker-credential-fake answered ghcr.io with something that is not JSON; "
        "continuing without it",
        "credential helper docker-credential-fake answered https://ghcr.io with JSON that is not an object; "
        "continuing without it",
    ]


def test_secrets_never_logged(helpers: FakeHelpers, caplog: pytest.LogCaptureFixture,
                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG, logger="pkgloader")
    helpers.answer("ghcr.io", "alice", SECRET)
    write_docker_config({"credHelpers": {"ghcr.io": "fake"}, "auths": {"quay.io": {"auth": b64("a:" + SECRET)}}})
    found = [find_credentials(no_config(), "ghcr.io", "ghcr.io"), find_credentials(no_config(), "quay.io", "quay.io")]
    monkeypatch.setenv("WKG_REGISTRY_A_IO_AUTH_BEARER", SECRET)
    monkeypatch.setenv("PKGLOADER_REGISTRY_B_IO_USERNAME", "u")
    monkeypatch.setenv("PKGLOADER_REGISTRY_B_IO_PASSWORD", SECRET)
    cfg, _ = config_with(tmp_path, "c.io", f'auth = {{ username = "u", password = "{SECRET}" }}')
    found += [find_credentials(cfg, h, h) for h in ("a.io", "b.io", "c.io")]
    assert all(c is not None and SECRET in c.secret for c in found)
    assert caplog.records
    assert_no_secret(caplog.text, [repr(c) for c in found])


def test_concurrent_lookups_run_one_helper(helpers: FakeHelpers) -> None:
    helpers.answer("ghcr.io", "alice", SECRET, sleep=0.2)
    write_docker_config({"credHelpers": {"ghcr.io": "fake"}})
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: find_credentials(no_config(), "wasi.dev", "ghcr.io"), range(16)))
    assert {r.username if r else None for r in results} == {"alice"}
    assert helpers.calls == ["docker-credential-fake get ghcr.io"]


def test_helper_gets_the_url_on_stdin_and_no_shell(helpers: FakeHelpers, tmp_path: Path) -> None:
    # a server URL with shell metacharacters reaches the helper verbatim on stdin
    host = "odd$(touch pwned);host:5000"
    helpers.answer(host, "alice", SECRET)
    write_docker_config({"credHelpers": {host: "fake"}})
    creds = find_credentials(no_config(), host, host)
    assert creds is not None and creds.username == "alice"
    assert helpers.calls == [f"docker-credential-fake get {host}"]
    assert not (Path.cwd() / "pwned").exists()


def test_helper_that_cannot_run_is_a_warning(helpers: FakeHelpers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pkgloader")
    bad = helpers.bin_dir / "docker-credential-broken"
    bad.write_text("#!/nonexistent/interpreter\n")
    bad.chmod(0o755)
    write_docker_config({"credsStore": "broken", "auths": {"ghcr.io": {"auth": b64("alice:pw")}}})
    creds = find_credentials(no_config(), "ghcr.io", "ghcr.io")
    assert creds is not None and creds.username == "alice"
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith(f"cannot run credential helper {bad} (")

