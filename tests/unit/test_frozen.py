"""The hand-written value types (``_frozen.Frozen``) behave as the frozen dataclasses they
replaced: repr, ==, hash, ordering, frozen attributes, copy and pickle."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from pathlib import Path

import pytest

from pkgloader._digest import Digest
from pkgloader._engine import FetchResult
from pkgloader._http import TlsSettings
from pkgloader._proxy import Proxy, ProxySettings
from pkgloader._release import VersionInfo
from pkgloader._semver import Version


@dataclasses.dataclass(frozen=True)
class _Twin:  # what @dataclass(frozen=True) made of VersionInfo
    version: Version
    yanked: bool = False


def test_same_repr_eq_hash_as_the_dataclass() -> None:
    v = Version.parse("1.2.3")
    mine, twin = VersionInfo(v), _Twin(v)
    assert repr(mine) == repr(twin).replace("_Twin", "VersionInfo") == "VersionInfo(version=" + repr(v) + ", yanked=False)"
    assert hash(mine) == hash(twin)
    assert mine == VersionInfo(v, False) and mine != VersionInfo(v, True)
    assert (mine == twin) is False  # another class: NotImplemented both ways, then identity
    assert VersionInfo.__match_args__ == _Twin.__match_args__ == ("version", "yanked")
    assert TlsSettings() == TlsSettings() and hash(TlsSettings()) == hash(((), False, None, None))
    assert {ProxySettings(): 1}[ProxySettings()] == 1


def test_frozen() -> None:
    d = Digest.parse("sha256:" + "a" * 64)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'hex'"):
        d.hex = "b"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'hex'"):
        del d.hex  # type: ignore[misc]
    with pytest.raises(AttributeError):
        d.other = 1  # type: ignore[attr-defined]


def test_digest_order_copy_pickle() -> None:
    a, b = Digest("sha256", "0" * 64), Digest("sha256", "f" * 64)
    assert a < b <= b and b > a >= a and sorted([b, a]) == [a, b]
    with pytest.raises(TypeError):
        _ = a < "sha256:" + "0" * 64  # type: ignore[operator]
    for x in (a, FetchResult(None, Path("x"), True), Proxy("h", 1, None, "http://h:1")):  # type: ignore[arg-type]
        assert copy.copy(x) == x and copy.deepcopy(x) == x and pickle.loads(pickle.dumps(x)) == x
    assert repr(Proxy("h", 1, "Basic c2VjcmV0", "http://h:1")) == "Proxy('http://h:1')"  # its own repr wins


def test_still_answers_the_dataclasses_functions() -> None:
    v = VersionInfo(Version.parse("1.0.0"))
    assert dataclasses.is_dataclass(v) and dataclasses.is_dataclass(VersionInfo)
    assert [(f.name, f.default) for f in dataclasses.fields(v)] == [(f.name, f.default) for f in dataclasses.fields(_Twin)]
    assert dataclasses.replace(v, yanked=True) == VersionInfo(v.version, True)
    assert dataclasses.asdict(Digest("sha256", "ab")) == {"algorithm": "sha256", "hex": "ab"}
    assert dataclasses.astuple(TlsSettings()) == ((), False, None, None)


def test_records_and_factories() -> None:
    from pkgloader._config import Config, Settings
    from pkgloader._frozen import replace
    from pkgloader._http import Request

    a, b = Request("GET", "https://h/x"), Request("GET", "https://h/x")
    assert a == b and a.headers == {} and a.headers is not b.headers  # default_factory: one dict each
    a.headers["X"] = "1"  # mutable, as the dataclass was
    assert a != b
    with pytest.raises(TypeError):
        hash(a)
    assert repr(b).startswith("Request(method='GET', url='https://h/x', headers={}, ")
    assert Config().settings == Settings() and Config().registries is not Config().registries
    s = replace(Settings(), retries=Settings().strict)
    assert s.retries == Settings().strict and s.timeout == Settings().timeout
    assert dataclasses.replace(b, url="https://h/y").url == "https://h/y"
    with pytest.raises(TypeError):
        replace(Settings(), no_such_field=1)
