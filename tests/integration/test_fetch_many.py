"""Several packages in one command: every package is reported (successes and failures),
the exit code is the most severe failure's, duplicates are fetched once, paths are always
printed the same way."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest

from pkgloader import AsyncClient, Client, FetchManyError, NoMatchingVersion, PackageNotFound


@pytest.fixture
def published(registry: Any, registry_config: Callable[..., Path], wit_package: Callable[..., Path]) -> dict[str, bytes]:
    registry_config(registry)
    out = {}
    with Client() as c:
        for name in ("a", "d"):
            wasm = wit_package("test", name, "1.0.0")
            c.publish(wasm, f"test:{name}@1.0.0")
            out[name] = wasm.read_bytes()
    return out


def test_cli_reports_every_package_and_exits_with_the_failure(published: dict[str, bytes], run_cli: Callable[..., Any],
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run_cli("fetch", "test:a", "test:nope", "test:d@9", "test:d", "-o", f"{out}/")
    assert r.code == 3
    lines = r.out.splitlines()
    assert lines == [os.path.abspath(out / "test_a@1.0.0.wasm"), os.path.abspath(out / "test_d@1.0.0.wasm")]
    assert (out / "test_a@1.0.0.wasm").read_bytes() == published["a"]
    err = r.err
    assert "test:nope: error[package-not-found]" in err
    assert "test:d@^9: error[no-matching-version]" in err
    assert "fetched test:a@1.0.0" in err and "fetched test:d@1.0.0" in err
    assert err.rstrip().endswith("2 of 4 packages failed")


def test_cli_json_has_fetched_and_errors(published: dict[str, bytes], run_cli: Callable[..., Any], tmp_path: Path) -> None:
    r = run_cli("fetch", "test:a", "test:nope", "-o", f"{tmp_path}/", "--json")
    assert r.code == 3
    data = json.loads(r.out)
    assert [f["package"] for f in data["fetched"]] == ["test:a"]
    assert data["fetched"][0]["path"] == os.path.abspath(tmp_path / "test_a@1.0.0.wasm")
    assert [(e["package"], e["code"], e["exit_code"]) for e in data["errors"]] == [("test:nope", "package-not-found", 3)]


def test_duplicate_refs_are_fetched_once(published: dict[str, bytes], run_cli: Callable[..., Any], tmp_path: Path) -> None:
    r = run_cli("fetch", "test:a@1", "test:a@1", "-o", f"{tmp_path}/", "--json")
    assert r.code == 0, r.err
    assert len(json.loads(r.out)["fetched"]) == 1


def test_one_ref_prints_the_same_kind_of_path(published: dict[str, bytes], run_cli: Callable[..., Any],
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = run_cli("fetch", "test:a", "-o", "single/")
    assert r.code == 0, r.err
    assert r.out == os.path.abspath(tmp_path / "single" / "test_a@1.0.0.wasm") + "\n"


def test_fetch_many_raises_one_error_carrying_every_outcome(published: dict[str, bytes], tmp_path: Path) -> None:
    with Client() as c, pytest.raises(FetchManyError) as info:
        c.fetch_many(["test:a", "test:nope", "test:d@9"], tmp_path)
    e = info.value
    assert (e.code, e.exit_code) == ("package-not-found", 3)
    assert [spec for spec, _ in e.outcomes] == ["test:a", "test:nope", "test:d@^9"]
    assert [r.release.package.name for r in e.fetched] == ["a"]
    assert [type(err) for _, err in e.errors] == [PackageNotFound, NoMatchingVersion]
    assert e.message == "2 of 3 packages failed"
    assert (tmp_path / "test_a@1.0.0.wasm").read_bytes() == published["a"]

    async def main() -> FetchManyError:
        async with AsyncClient() as ac:
            try:
                await ac.fetch_many(["test:d", "test:nope"], tmp_path / "async")
            except FetchManyError as exc:
                return exc
        raise AssertionError("no error")

    ae = asyncio.run(main())
    assert [r.release.package.name for r in ae.fetched] == ["d"] and len(ae.errors) == 1
