"""Property tests: on random small registries the resolver finds a resolution exactly when
one exists (brute-force oracle), and every resolution satisfies every requirement."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pkgloader._errors import NoMatchingVersion, PackageNotFound, ResolutionConflict
from pkgloader._ref import PackageRef
from pkgloader._resolver import Locked, Requirement, Resolution, Resolver
from pkgloader._semver import Version, VersionReq
from resolver_data import DataProvider

NAMES = ["p:a", "p:b", "p:c", "p:d"]
MISSING = "p:zz"  # a package no registry has
VERSIONS = ["0.1.0", "0.2.0", "1.0.0", "1.1.0", "1.2.0-rc.1", "1.2.0", "2.0.0-alpha", "2.0.0", "2.1.0"]
REQS = ["*", "^0.1", "^1", "^1.1", ">=1.1", "<2", "=1.0.0", "~1.2", ">=1.2.0-rc.1", "^2", ">=0.2, <1.2", "=2.0.0-alpha"]
# permissive requirements are drawn more often, so that many problems have a solution
COMMON_REQS = ["*", "*", "^1", "^1", ">=1.0.0", "<2", ">=0.1"]
requirements = st.one_of(st.sampled_from(COMMON_REQS), st.sampled_from(REQS))


@st.composite
def problems(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, len(NAMES)))
    names = NAMES[:n]
    packages: dict[str, Any] = {}
    for name in names:
        versions = draw(st.lists(st.sampled_from(VERSIONS), min_size=draw(st.sampled_from([0, 1, 2, 2])), max_size=5, unique=True))
        entry: dict[str, Any] = {"versions": {}, "yanked": []}
        for v in versions:
            pool = names if draw(st.integers(0, 9)) else [*names, MISSING]
            k = min(draw(st.sampled_from([0, 1, 1, 2, 2, 3])), len(pool))
            deps_names = draw(st.lists(st.sampled_from(pool), min_size=k, max_size=k, unique=True))
            entry["versions"][v] = {d: draw(requirements) for d in deps_names if d != name}
            if draw(st.integers(0, 7)) == 0:
                entry["yanked"].append(v)
        packages[name] = entry
    roots = draw(st.lists(st.tuples(st.sampled_from(names), requirements), min_size=1, max_size=3))
    locked = []
    for name in names:
        vs = list(packages[name]["versions"])
        if vs and draw(st.booleans()):
            locked.append((name, draw(st.sampled_from(vs))))
    unlock = draw(st.sampled_from([False, True, (), tuple(names[:1])]))
    return {"packages": packages, "roots": roots, "locked": locked, "unlock": unlock}


def _allowed(problem: dict[str, Any], name: str) -> list[str]:
    entry = problem["packages"].get(name)
    if entry is None:
        return []
    unlock = problem["unlock"]
    locked = set()
    if unlock is not True:
        locked = {v for n, v in problem["locked"] if n == name and n not in (unlock or ())}
    return [v for v in entry["versions"] if v not in entry["yanked"] or v in locked]


def _oracle(problem: dict[str, Any]) -> bool:
    """Is there an assignment (package -> allowed version or absent) satisfying every root
    and every dependency of every assigned package?"""
    names = list(problem["packages"])
    choices = [[None, *_allowed(problem, n)] for n in names]
    for combo in itertools.product(*choices):
        pick = dict(zip(names, combo))
        if _satisfies(problem, pick):
            return True
    return False


def _satisfies(problem: dict[str, Any], pick: dict[str, str | None]) -> bool:
    for name, req in problem["roots"]:
        v = pick.get(name)
        if v is None or not VersionReq.parse(req).matches(Version.parse(v)):
            return False
    for name, v in pick.items():
        if v is None:
            continue
        for dep, req in problem["packages"][name]["versions"][v].items():
            dv = pick.get(dep)
            if dv is None or not VersionReq.parse(req).matches(Version.parse(dv)):
                return False
    return True


def _resolver(problem: dict[str, Any], locked: list[tuple[str, str]] | None = None) -> Resolver:
    roots = [Requirement(n, r, "root") for n, r in problem["roots"]]
    locked = problem["locked"] if locked is None else locked
    return Resolver(roots, locked=[Locked(n, v) for n, v in locked], unlock=problem["unlock"])


def _check(problem: dict[str, Any], result: Resolution) -> None:
    pick = {str(p): str(r.version) for p, r in result.items()}
    assert _satisfies(problem, pick)
    # exactly the packages reachable from the roots
    reachable = set()
    todo = [n for n, _ in problem["roots"]]
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        reachable.add(name)
        todo.extend(problem["packages"][name]["versions"][pick[name]])
    assert set(pick) == reachable
    for name, v in pick.items():
        assert v in _allowed(problem, name)
        resolved = result[name]
        assert resolved.yanked == (v in problem["packages"][name]["yanked"])
        for req in resolved.requirements:
            assert req.requirement.matches(resolved.version)
        assert set(map(str, resolved.dependencies)) == set(problem["packages"][name]["versions"][v])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_resolves_exactly_when_a_solution_exists(problem: dict[str, Any]) -> None:
    provider = DataProvider(problem["packages"])
    try:
        result = _resolver(problem).resolve(provider)
    except (ResolutionConflict, NoMatchingVersion, PackageNotFound) as exc:
        assert not _oracle(problem), f"resolver failed but a solution exists: {exc.render()}"
        assert exc.code != "resolution-too-complex"
        assert isinstance(exc.package, PackageRef)  # type: ignore[attr-defined]
        assert all(isinstance(r, Requirement) for r in exc.requirements)  # type: ignore[attr-defined]
        return
    _check(problem, result)
    # deterministic
    assert _resolver(problem).resolve(DataProvider(problem["packages"])) == result
    # stable: locking the result and resolving again changes nothing
    relocked = [(str(p), str(r.version)) for p, r in result.items()]
    again = Resolver(
        [Requirement(n, r, "root") for n, r in problem["roots"]],
        locked=[Locked(n, v) for n, v in relocked],
    ).resolve(DataProvider(problem["packages"]))
    assert {p: r.version for p, r in again.items()} == {p: r.version for p, r in result.items()}
    assert all(r.locked for r in again.values())


@settings(max_examples=200, deadline=None)
@given(problems())
def test_no_request_is_repeated(problem: dict[str, Any]) -> None:
    """The resolver remembers every answer: each version list and each dependency list is
    asked for at most once, however much it backtracks."""
    provider = DataProvider(problem["packages"])
    try:
        _resolver(problem).resolve(provider)
    except (ResolutionConflict, NoMatchingVersion, PackageNotFound):
        pass
    assert len(provider.calls) == len(set(provider.calls))


@settings(max_examples=100, deadline=None)
@given(problems())
def test_prefetch_does_not_change_the_result(problem: dict[str, Any]) -> None:
    def run(prefetch: bool) -> object:
        roots = [Requirement(n, r, "root") for n, r in problem["roots"]]
        resolver = Resolver(
            roots, locked=[Locked(n, v) for n, v in problem["locked"]], unlock=problem["unlock"], prefetch=prefetch
        )
        try:
            return resolver.resolve(DataProvider(problem["packages"]))
        except (ResolutionConflict, NoMatchingVersion, PackageNotFound) as exc:
            return exc.render()

    assert run(True) == run(False)
