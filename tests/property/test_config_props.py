"""Property tests for the local parsers: the config loader and the lock-file parser never raise
anything but their documented errors, whatever they are given, and a config error never shows
a secret.

* ``Config.from_toml`` / ``Config.merge_data``: any text (random, TOML-ish token soup, valid
  TOML of random data, config-shaped data with wrong values), deep nesting, huge strings ->
  a Config (whose ``to_dict`` and backend accessors work) or a :class:`ConfigError`;
* ``LockFile.loads``: the same -> a LockFile or a ``ConfigError`` (code ``invalid-lock-file``);
  a lock file round-trips through ``dumps``;
* redaction: a config holding a secret, damaged by random edits, loads or fails without the
  secret in the error (render, ``--json`` form, repr) or in ``to_dict()``.
"""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pkgloader._config import Config
from pkgloader._digest import Digest
from pkgloader._errors import ConfigError
from pkgloader._lockfile import LockedPackage, LockedVersion, LockFile
from pkgloader._ref import PackageRef
from pkgloader._semver import Version, VersionReq

settings.register_profile("config-props", deadline=None, max_examples=150,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("config-props")

SECRET = "Zq7s3cr3tCANARY"


# --- strategies --------------------------------------------------------------------------

KEYS = ["default_registry", "namespace_registries", "package_registry_overrides", "registry", "pkgloader",
        "dependencies", "namespace", "oci", "local", "warg", "default", "type", "auth", "username", "password",
        "protocol", "accept_invalid_certificates", "extra_root_certificates", "encoding", "data",
        "client_certificate", "client_key", "root", "url", "auth_token", "config_file", "signing_key", "cache_dir",
        "strict", "timeout", "connect_timeout", "metadata_timeout", "metadata_ttl", "max_concurrency", "retries",
        "fsync", "stall_timeout", "low_speed_limit", "low_speed_time", "trust_store", "proxy", "https_proxy",
        "http_proxy", "no_proxy", "metadata", "preferredProtocol", "ociRegistry", "wargUrl", "namespacePrefix",
        "r.example", "localhost:5000", "wasi", "wasi:http", "my-org", "version", "path"]

scalars = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["oci", "warg", "local", "http", "https", "pem", "der", "auto", "system", "r.example",
                     "http://u:p@proxy:3128", "https://warg.example", "0.2", "^1.0", "YWxpY2U6cHc=", "@@@",
                     "-----BEGIN CERTIFICATE-----", "/abs/path", "rel/path", "~/x"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(timezones=st.none() | st.just(datetime.timezone.utc)),
    st.dates(),
    st.times(),
)
keys = st.sampled_from(KEYS) | st.text(max_size=8)


def toml_data(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    return st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                        | st.dictionaries(keys, children, max_size=5), max_leaves=max_leaves)


documents = st.dictionaries(keys, toml_data(), max_size=6)


@st.composite
def config_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """Data with the shape of a config (so validation gets past the first level) and values
    drawn from anything."""
    value = toml_data(10)
    backend_table = st.dictionaries(st.sampled_from(KEYS[12:31]) | keys, value, max_size=5)
    registry_table = st.dictionaries(st.sampled_from(["oci", "local", "warg", "default", "type"]) | keys,
                                     backend_table | value, max_size=4)
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["registry"] = draw(st.dictionaries(st.sampled_from(["r.example", "localhost:5000", "bad name"]) | keys,
                                               registry_table | value, max_size=3))
    if draw(st.booleans()):
        doc["pkgloader"] = draw(st.dictionaries(st.sampled_from(KEYS[33:49]) | keys, value, max_size=5))
    for key in ("namespace_registries", "package_registry_overrides", "dependencies"):
        if draw(st.booleans()):
            doc[key] = draw(st.dictionaries(st.sampled_from(["wasi", "my-org", "wasi:http", "a:b", "Bad"]) | keys,
                                            value, max_size=3))
    if draw(st.booleans()):
        doc["default_registry"] = draw(value)
    return doc


TOKENS = ["[", "]", "[[", "]]", "{", "}", "=", ",", ".", '"', "'", '"""', "'''", "\n", " ", "#", "\\", "\\u00e9",
          "\\x", "\r", "\x00", "\x0c", "\u2028", "auth", "password", "registry", '"r.example"', "oci", "warg",
          "pkgloader", "namespace_registries", "default_registry", "username", "true", "1", "1.5", "1979-05-27",
          "07:32:00", "inf", "nan", "0x1F", "+", "-", "_", "x", SECRET, "http://u:" + SECRET + "@p:1"]
tomlish = st.lists(st.sampled_from(TOKENS) | st.text(max_size=3), max_size=60).map("".join)


def check_config(text: str) -> Config | None:
    """Load; only ConfigError may come out; a loaded config can be shown and used."""
    try:
        cfg = Config.from_toml(text, source="props.toml")
    except ConfigError as exc:
        exc.render()
        json.dumps(exc.to_json())
        return None
    use(cfg)
    return cfg


def use(cfg: Config) -> None:
    json.dumps(cfg.to_dict(origins=True), default=str)
    for rc in cfg.registries.values():
        rc.oci(), rc.warg(), rc.local(), rc.default_backend()


# --- the config loader ------------------------------------------------------------------


@given(st.text(max_size=300))
@example("a = " + "[" * 5000 + "]" * 5000)
@example("x = " + "{ a = " * 3000 + "1" + " }" * 3000)
@example('[registry."r".oci]\nauth = "\x00"')
def test_any_text(text: str) -> None:
    check_config(text)


@given(tomlish)
def test_toml_ish_token_soup(text: str) -> None:
    check_config(text)


@given(documents)
def test_any_toml_document(data: dict[str, Any]) -> None:
    check_config(tomli_w.dumps(data))


@given(config_shaped())
@example({"registry": {"r.example": {"oci": {"auth": [[[]]]}}}})
@example({"registry": {"r.example": {"oci": {"extra_root_certificates": [{"encoding": "der", "data": "!!"}]}}}})
@example({"namespace_registries": {"wasi": {"registry": "r.example", "metadata": {"oci": [1]}}}})
@example({"pkgloader": {"timeout": math.nan}})
@example({"pkgloader": {"no_proxy": [1]}})
def test_config_shaped_data(data: dict[str, Any]) -> None:
    check_config(tomli_w.dumps(data))
    cfg = Config.builtin()
    try:  # straight into merge_data, as build tools do (no text: no line numbers)
        cfg.merge_data(data, __import__("pathlib").Path("/x/props.toml"), "project")
    except ConfigError:
        return
    use(cfg)


@settings(max_examples=25)
@given(depth=st.integers(min_value=1, max_value=6000), opener=st.sampled_from(["[", "{ a = ", "[{ a = "]),
       where=st.sampled_from(["a = ", '[registry."r".oci]\nauth = ', "[pkgloader]\nproxy = "]))
def test_deep_nesting(depth: int, opener: str, where: str) -> None:
    closer = {"[": "]", "{ a = ": " }", "[{ a = ": " }]"}[opener]
    inner = "1" if opener != "[" else ""
    check_config(where + opener * depth + inner + closer * depth + "\n")
    check_config(where + opener * depth)  # never closed


@settings(max_examples=8)
@given(size=st.integers(min_value=0, max_value=3_000_000), where=st.sampled_from(
    ['default_registry = "{}"', '[registry."r".oci]\nauth = "{}"', '[pkgloader]\nproxy = "{}"', '"{}" = 1',
     "# {}", 'a = """{}', 'x = "{}" junk']))
def test_huge_strings(size: int, where: str) -> None:
    check_config(where.replace("{}", "a" * size) + "\n")


# --- redaction under damage -------------------------------------------------------------

TEMPLATES = [
    f'[registry."r.example".oci]\nprotocol = "http"\nauth = {{ username = "alice", password = "{SECRET}" }}\n',
    f'[registry."r.example".oci]\nauth = "YWxpY2U6{SECRET}"\n',
    f'[registry."r.example".oci.auth]\nusername = "alice"\npassword = """\n{SECRET}\n"""\n',
    f'[registry."r.example".warg]\nurl = "https://w.example"\nauth_token = \'{SECRET}\'\n',
    f'[pkgloader]\ntimeout = 5\nhttps_proxy = "http://proxyuser:{SECRET}@127.0.0.1:3128"\n',
    f'[registry."r.example"]\noci = {{ auth = {{ username = "alice", password = "{SECRET}" }} }}\n',
    f'[registry."r.example".oci]\nauth.username = "alice"\nauth.password = "{SECRET}"  # comment\n',
]


@st.composite
def damaged(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(TEMPLATES))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        i = draw(st.integers(min_value=0, max_value=len(text)))
        op = draw(st.sampled_from(["cut", "insert", "delete", "replace", "merge-lines", "prepend"]))
        ch = draw(st.sampled_from(list('"\'{}[]=,.#\n \\\x00\x0c') + ["junk", '"""', "'''", "\u2028"]))
        if op == "cut":
            text = text[:i]
        elif op == "insert":
            text = text[:i] + ch + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + 1:]
        elif op == "replace":
            text = text[:i] + ch + text[i + 1:]
        elif op == "merge-lines":
            text = text.replace("\n", " ", 1) if i % 2 else text.replace("\n", "", 1)
        else:
            text = draw(st.sampled_from(["x = [\n", "a = 1\n", 'k = """\n', "[t]\n"])) + text
    return text


def fragments(secret: str, size: int = 8) -> list[str]:
    return [secret[i:i + size] for i in range(len(secret) - size + 1)]


@given(damaged())
@example(f'[registry."r.example".oci]\nprotocol = "http"auth = {{ username = "alice", password = "{SECRET}" }}\n')
@example(f'[registry."r.example".oci]\npasword = "{SECRET}" junk\n')
@example(f'[registry."r.example".oci]\nauth = {{ username = "alice", password "{SECRET}" }}\n')
@example(f'x = 1\x0c\n[registry."r.example".oci]\nauth = ["{SECRET}"] junk\n')
def test_a_damaged_config_never_shows_its_secret(text: str) -> None:
    try:
        cfg = Config.from_toml(text, source="props.toml")
    except ConfigError as exc:
        shown = exc.render() + json.dumps(exc.to_json()) + repr(exc)
    else:
        shown = json.dumps(cfg.to_dict(origins=True), default=str)
    for part in fragments(SECRET):
        assert part not in shown, shown


# --- the lock-file parser ---------------------------------------------------------------


def check_lock(text: str | bytes) -> None:
    try:
        lock = LockFile.loads(text, path="props.lock")
    except ConfigError as exc:
        assert exc.code == "invalid-lock-file"
        exc.render()
        return
    assert LockFile.loads(lock.dumps()).packages == lock.packages


LOCK_TOKENS = ["version = 1\n", "[[packages]]\n", "[[packages.versions]]\n", "[[package]]\n", "[[package.version]]\n",
               'name = "wasi:http"\n', 'registry = "wasi.dev"\n', 'requirement = "^0.2"\n', 'version = "0.2.0"\n',
               'digest = "sha256:' + "a" * 64 + '"\n', "packages = []\n", "version = 2\n", 'name = "Bad"\n',
               'digest = "md5:x"\n', "[", "]", "{", "}", '"', "\n", "=", "x", "\ufeff", "\x00"]


@given(st.text(max_size=300) | st.binary(max_size=300))
@example(b"\xff\xfe")
@example("version = 1\npackages = " + "[" * 5000)
@example("\ufeffversion = 1\n")
def test_lock_any_input(text: str | bytes) -> None:
    check_lock(text)


@given(st.lists(st.sampled_from(LOCK_TOKENS) | st.text(max_size=3), max_size=40).map("".join))
def test_lock_token_soup(text: str) -> None:
    check_lock(text)


@given(st.dictionaries(st.sampled_from(["version", "packages", "package"]) | keys,
                       toml_data(20) | st.lists(st.dictionaries(st.sampled_from(
                           ["name", "registry", "versions", "version", "requirement", "digest"]) | keys,
                           toml_data(8) | st.lists(st.dictionaries(st.sampled_from(
                               ["requirement", "version", "digest"]), scalars, max_size=4), max_size=3),
                           max_size=4), max_size=4), max_size=4))
@example({"version": 1, "packages": [{"name": "a:b", "versions": [{"requirement": "1", "version": "1.0.0",
                                                                   "digest": "sha256:" + "0" * 64}]}]})
def test_lock_any_toml_document(data: dict[str, Any]) -> None:
    check_lock(tomli_w.dumps(data))


@settings(max_examples=8)
@given(size=st.integers(min_value=0, max_value=3_000_000))
def test_lock_huge_strings(size: int) -> None:
    check_lock(f'version = 1\n[[packages]]\nname = "{"a" * size}"\n')


names = st.from_regex(r"[a-z][a-z0-9]{0,5}(-[a-z][a-z0-9]{0,3})?:[a-z][a-z0-9]{0,5}", fullmatch=True)
versions = st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)).map(lambda t: "%d.%d.%d" % t)


@st.composite
def lock_files(draw: st.DrawFn) -> LockFile:
    packages = []
    for name in draw(st.lists(names, max_size=4, unique=True)):
        registry = draw(st.none() | st.sampled_from(["wasi.dev", "localhost:5000"]))
        vs = []
        for v in draw(st.lists(versions, max_size=3, unique=True)):
            req = draw(st.sampled_from(["^", "=", "~", ">="])) + v
            vs.append(LockedVersion(VersionReq.parse(req), Version.parse(v),
                                    Digest.parse("sha256:" + draw(st.text("0123456789abcdef", min_size=64, max_size=64)))))
        packages.append(LockedPackage(PackageRef.parse(name), registry, tuple(vs)))
    return LockFile(packages)


@given(lock_files())
def test_lock_round_trip(lock: LockFile) -> None:
    text = lock.dumps()
    again = LockFile.loads(text)
    assert again.packages == lock.packages
    assert again.dumps() == text
