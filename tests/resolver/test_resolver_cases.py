"""Resolver cases from tests/data/resolver/*.toml, each run three ways (sync provider,
generator flow, async provider), which must agree exactly."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pkgloader._errors import PkgLoaderError
from pkgloader._resolver import DependenciesRequest, Resolution, Resolver, VersionsRequest
from resolver_data import DATA, AsyncDataProvider, DataProvider, options_of, roots_of, summary

CASES = sorted(DATA.glob("*.toml"))


def test_there_are_cases() -> None:
    assert len(CASES) >= 25


def _load(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def _run_sync(case: dict[str, Any]) -> tuple[Resolution | PkgLoaderError, DataProvider]:
    provider = DataProvider(case.get("packages", {}), case.get("paths", {}))
    try:
        return Resolver(roots_of(case), **options_of(case)).resolve(provider), provider
    except PkgLoaderError as exc:
        return exc, provider


def _run_flow(case: dict[str, Any]) -> Resolution | PkgLoaderError:
    """Drive the generator by hand, answering each batch from the data."""
    provider = DataProvider(case.get("packages", {}), case.get("paths", {}))
    try:
        flow = Resolver(roots_of(case), **options_of(case)).flow()
        batch = next(flow)
        while True:
            answers: dict[Any, Any] = {}
            for request in batch:
                if isinstance(request, VersionsRequest):
                    try:
                        answers[request] = provider.versions(request.package, request.registry)
                    except PkgLoaderError as exc:
                        answers[request] = exc
                else:
                    assert isinstance(request, DependenciesRequest)
                    answers[request] = provider.dependencies(
                        request.package, request.version, request.registry, request.path
                    )
            batch = flow.send(answers)
    except StopIteration as done:
        return done.value
    except PkgLoaderError as exc:
        return exc


def _run_async(case: dict[str, Any]) -> Resolution | PkgLoaderError:
    provider = AsyncDataProvider(DataProvider(case.get("packages", {}), case.get("paths", {})))
    try:
        return asyncio.run(Resolver(roots_of(case), **options_of(case)).resolve_async(provider))
    except PkgLoaderError as exc:
        return exc


def _same(a: Resolution | PkgLoaderError, b: Resolution | PkgLoaderError) -> bool:
    if isinstance(a, PkgLoaderError) or isinstance(b, PkgLoaderError):
        return type(a) is type(b) and a.render() == b.render()  # type: ignore[union-attr]
    return a == b


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    case = _load(path)
    expect = case["expect"]
    result, provider = _run_sync(case)

    # Local overrides never ask the registry for versions.
    local = {r.package for r in roots_of(case) if r.path is not None}
    asked = {call[1] for call in provider.calls if call[0] == "versions"}
    assert not asked & {str(p) for p in local}, provider.calls

    if "error" in expect:
        assert isinstance(result, PkgLoaderError), f"expected {expect['error']['type']}, resolved {result!r}"
        assert type(result).__name__ == expect["error"]["type"]
        assert result.render() == expect["error"]["rendered"].strip("\n")
    else:
        assert isinstance(result, Resolution), result.render() if isinstance(result, PkgLoaderError) else result
        assert summary(result.values()) == expect["resolution"]
        if "locked" in expect:
            assert sorted(str(r.package) for r in result.values() if r.locked) == sorted(expect["locked"])
        if "yanked" in expect:
            assert sorted(str(r.package) for r in result.values() if r.yanked) == sorted(expect["yanked"])
        for package, described in expect.get("requirements", {}).items():
            assert [r.describe() for r in result[package].requirements] == described
        for package, registry in expect.get("registry", {}).items():
            assert result[package].registry == registry
        # Every requirement in the result holds (local overrides are not checked).
        for r in result.values():
            if r.version is not None:
                for req in r.requirements:
                    assert req.requirement.matches(r.version), (r, req)

    assert _same(result, _run_flow(case))
    assert _same(result, _run_async(case))
