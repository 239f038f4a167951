"""The resolver's API: the request flow and its batches, drivers, values and errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pkgloader._errors import (
    InputError,
    InvalidPackageRef,
    NetworkError,
    PackageNotFound,
    ResolutionConflict,
)
from pkgloader._ref import PackageRef
from pkgloader._release import VersionInfo
from pkgloader._resolver import (
    DependenciesRequest,
    Provider,
    Requirement,
    Resolution,
    Resolved,
    Resolver,
    VersionsRequest,
    resolve,
    resolve_async,
)
from pkgloader._semver import Version, VersionReq
from resolver_data import DataProvider

R = PackageRef.parse
V = Version.parse

WIDE = {
    "app:root": {"versions": {"1.0.0": {"x:a": "^1", "x:b": "^1", "x:c": "^1"}}},
    "x:a": {"versions": {"1.0.0": {"y:d": "*"}, "1.1.0": {"y:d": "*"}}},
    "x:b": {"versions": {"1.0.0": {"y:d": ">=2"}}},
    "x:c": {"versions": {"1.2.0": {}}},
    "y:d": {"versions": {"1.0.0": {}, "2.0.0": {}}},
}


def test_batches_are_layers_of_the_graph() -> None:
    flow = Resolver([Requirement("app:root", "*", "me")]).flow()
    provider = DataProvider(WIDE)
    batches = []
    try:
        batch = next(flow)
        while True:
            batches.append(batch)
            answers: dict[Any, Any] = {}
            for r in batch:
                if isinstance(r, VersionsRequest):
                    answers[r] = provider.versions(r.package, r.registry)
                else:
                    answers[r] = provider.dependencies(r.package, r.version, r.registry, r.path)
            batch = flow.send(answers)
    except StopIteration as done:
        result = done.value
    assert [[_show(r) for r in b] for b in batches] == [
        ["versions app:root"],
        ["dependencies app:root@1.0.0"],
        ["versions x:a", "versions x:b", "versions x:c"],
        ["dependencies x:a@1.1.0", "dependencies x:b@1.0.0", "dependencies x:c@1.2.0"],
        ["versions y:d"],
        ["dependencies y:d@2.0.0"],
    ]
    assert {str(p): str(r.version) for p, r in result.items()} == {
        "app:root": "1.0.0",
        "x:a": "1.1.0",
        "x:b": "1.0.0",
        "x:c": "1.2.0",
        "y:d": "2.0.0",
    }


def _show(r: Any) -> str:
    if isinstance(r, VersionsRequest):
        return f"versions {r.package}"
    return f"dependencies {r.package}@{r.version}"


def test_without_prefetch_dependencies_are_asked_one_at_a_time() -> None:
    provider = DataProvider(WIDE)
    Resolver([Requirement("app:root", "*", "me")], prefetch=False).resolve(provider)
    deps_calls = [c for c in provider.calls if c[0] == "dependencies"]
    assert len(deps_calls) == 5  # exactly the pinned versions, nothing speculative


def test_answers_in_other_shapes() -> None:
    flow = Resolver([Requirement("a:a", "^1", "me")]).flow()
    batch = next(flow)
    assert batch == [VersionsRequest(R("a:a"), None)]
    batch = flow.send({batch[0]: [V("1.0.0"), VersionInfo(V("1.1.0"), yanked=True)]})  # plain Versions
    assert batch == [DependenciesRequest(R("a:a"), V("1.0.0"), None)]
    batch = flow.send({batch[0]: [("b:b", "=2.0.0"), Requirement("c:c", "*")]})  # strings and Requirements
    assert batch == [VersionsRequest(R("b:b"), None), VersionsRequest(R("c:c"), None)]
    with pytest.raises(PackageNotFound) as info:
        flow.send({batch[0]: [V("2.0.0")], batch[1]: None})  # None: the package does not exist
    assert info.value.render() == "error[package-not-found]: package c:c was not found (required by a:a@1.0.0)"


def test_flow_checks_the_answers() -> None:
    flow = Resolver([Requirement("a:a", "*", "me")]).flow()
    next(flow)
    with pytest.raises(ValueError, match="no answer for VersionsRequest"):
        flow.send({})
    flow = Resolver([Requirement("a:a", "*", "me")]).flow()
    next(flow)
    with pytest.raises(TypeError):
        flow.send([V("1.0.0")])  # type: ignore[arg-type]


def test_provider_errors_other_than_not_found_propagate() -> None:
    class Broken(DataProvider):
        def versions(self, package, registry):  # type: ignore[no-untyped-def]
            raise NetworkError(f"cannot reach {registry}")

    with pytest.raises(NetworkError):
        resolve([Requirement("a:a", "*", "me", registry="r.example")], Broken({}))


def test_async_driver_answers_a_batch_concurrently() -> None:
    in_flight = 0
    most = 0

    class Slow:
        def __init__(self) -> None:
            self.sync = DataProvider(WIDE)

        async def versions(self, package, registry):  # type: ignore[no-untyped-def]
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return self.sync.versions(package, registry)

        async def dependencies(self, package, version, registry, path):  # type: ignore[no-untyped-def]
            return self.sync.dependencies(package, version, registry, path)

    result = asyncio.run(resolve_async([Requirement("app:root", "*", "me")], Slow()))
    assert most == 3  # x:a, x:b and x:c were asked together
    assert len(result) == 5


def test_registry_of_callable_and_root_registry() -> None:
    seen = []

    def registry_of(package: PackageRef) -> str | None:
        seen.append(str(package))
        return "wasi.dev" if package.namespace == "wasi" else None

    provider = DataProvider({"wasi:io": {"versions": {"0.2.0": {}}}, "my:x": {"versions": {"1.0.0": {"wasi:io": "*"}}}})
    result = resolve([Requirement("my:x", "*", "me", registry="my.example")], provider, registry_of=registry_of)
    assert result["my:x"].registry == "my.example"
    assert result["wasi:io"].registry == "wasi.dev"
    assert ("versions", "wasi:io", "wasi.dev") in provider.calls
    assert seen.count("wasi:io") == 1  # asked once, remembered


def test_two_paths_for_one_package() -> None:
    with pytest.raises(InputError) as info:
        Resolver([Requirement("a:a", path="../a"), Requirement("a:a", path="../b")])
    assert info.value.render() == (
        "error[usage]: a:a is overridden by two paths: ../a and ../b\n  hint: keep one local override per package"
    )


def test_requirement_values() -> None:
    r = Requirement("wasi:io", "0.2", "wasi:http@0.2.3")
    assert r.package == R("wasi:io") and r.requirement == VersionReq.parse("^0.2")
    assert str(r) == "wasi:io: ^0.2 (required by wasi:http@0.2.3)"
    assert Requirement("a:a").describe() == "* (required by the command line)"
    with pytest.raises(InvalidPackageRef):
        Requirement("Bad:ref")
    with pytest.raises(TypeError):
        Resolver(["a:a"])  # type: ignore[list-item]


def test_conflict_error_carries_the_requirements() -> None:
    provider = DataProvider({"c:c": {"versions": {"1.0.0": {}, "2.0.0": {}}}})
    roots = [Requirement("c:c", "^1", "a"), Requirement("c:c", "^2", "b")]
    with pytest.raises(ResolutionConflict) as info:
        resolve(roots, provider)
    assert info.value.package == R("c:c")  # type: ignore[attr-defined]
    assert info.value.requirements == tuple(roots)  # type: ignore[attr-defined]
    assert info.value.exit_code == 7


def test_resolution_mapping() -> None:
    res = Resolution(
        [
            Resolved(R("b:b"), V("1.0.0"), None, (), dependencies=(R("c:c"),)),
            Resolved(R("a:a"), V("1.0.0"), "r", (), dependencies=(R("b:b"), R("c:c"))),
            Resolved(R("c:c"), None, None, (), path="../c"),
        ]
    )
    assert list(map(str, res)) == ["a:a", "b:b", "c:c"]
    assert "a:a" in res and R("b:b") in res and "x:y" not in res and "Bad" not in res
    assert res["c:c"].is_local and str(res["c:c"]) == "c:c (../c)" and str(res["a:a"]) == "a:a@1.0.0"
    assert [str(r.package) for r in res.topological()] == ["c:c", "b:b", "a:a"]
    assert res.to_json()[2] == {
        "package": "c:c",
        "version": None,
        "registry": None,
        "path": "../c",
        "locked": False,
        "digest": None,
        "yanked": False,
        "requirements": [],
        "dependencies": [],
    }
    assert res == Resolution(reversed(list(res.values())))
    assert repr(res) == "<Resolution a:a@1.0.0, b:b@1.0.0, c:c (../c)>"


def test_topological_order_survives_cycles() -> None:
    res = Resolution(
        [
            Resolved(R("a:a"), V("1.0.0"), None, (), dependencies=(R("b:b"),)),
            Resolved(R("b:b"), V("1.0.0"), None, (), dependencies=(R("a:a"),)),
        ]
    )
    assert [str(r.package) for r in res.topological()] == ["b:b", "a:a"]


def test_dependency_cycles_resolve() -> None:
    provider = DataProvider(
        {
            "a:a": {"versions": {"1.0.0": {"b:b": "^1"}}},
            "b:b": {"versions": {"1.0.0": {"a:a": "^1"}, "1.1.0": {"a:a": "^2"}}},
        }
    )
    result = resolve([Requirement("a:a", "*", "me")], provider)
    assert {str(p): str(r.version) for p, r in result.items()} == {"a:a": "1.0.0", "b:b": "1.0.0"}


def test_data_provider_satisfies_the_protocol() -> None:
    assert isinstance(DataProvider({}), Provider)
