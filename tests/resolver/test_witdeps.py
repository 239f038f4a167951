"""Foreign packages of a project's WIT sources (``_witdeps``), checked against wasm-tools."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pkgloader._component import read_component_file
from pkgloader._errors import InputError, LocalIOError
from pkgloader._ref import PackageRef
from pkgloader._resolver import Requirement
from pkgloader._semver import Version, VersionReq
from pkgloader import _witdeps
from pkgloader._witdeps import WitLocation, requirement_for, scan_wit_dir, scan_wit_text
from support.wit import WitSpec, wasm_tools


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def deps_of(scan) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(str(d.package), str(d.requirement)) for d in scan.dependencies]


WORLD = """
    package my:app@0.1.0;

    /// Docs mention use fake:doc/x@1.0.0; and are comments.
    world app {
      // import fake:line/comment;
      /* import fake:block/comment; /* nested: use fake:nested/x; */ still a comment */
      import wasi:http/outgoing-handler@0.2.3;
      export wasi:http/incoming-handler@0.2.3;
      import primary: wasi:keyvalue/store@0.2.0-draft;
      import local-thing;
      import log: func(msg: string);
      import inline: interface {
        use wasi:clocks/wall-clock@0.2.0.{datetime};
        now: func() -> datetime;
      }
      export run: async func() -> result<_, string>;
      include wasi:cli/imports@0.2.0 with { environment as env };
      @external-id("import fake:string/literal@9.9.9;")
      import %use: func();
      @since(version = 0.1.0)
      import my:app/types@0.1.0;
    }
    """

TYPES = """
    use wasi:io/streams@0.2.0 as streams;
    use wasi:io/poll@0.2.0;

    @unstable(feature = fancy)
    interface types {
      use streams.{input-stream};
      use wasi:random/random.{get-random-bytes};
      use my:app/other.{thing};
      type id = u64;
    }

    interface other {
      record thing { a: u32 }
    }

    package my:vendored@1.0.0 {
      interface v { use wasi:io/error@0.2.0.{error}; }
    }
    """


def test_scan_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "wit" / "world.wit", WORLD)
    write(tmp_path / "wit" / "types.wit", TYPES)
    # wit/deps/ is not part of the package, nor are non-.wit files
    write(tmp_path / "wit" / "deps" / "dep" / "package.wit", "package dep:x;\ninterface i { use nope:deps/x.{y}; }\n")
    write(tmp_path / "wit" / "notes.txt", "use nope:txt/x;")

    scan = scan_wit_dir()
    assert scan.package == PackageRef.parse("my:app") and scan.version == Version.parse("0.1.0")
    assert scan.files == ("wit/types.wit", "wit/world.wit")
    assert deps_of(scan) == [
        ("wasi:cli", "=0.2.0"),
        ("wasi:clocks", "=0.2.0"),
        ("wasi:http", "=0.2.3"),
        ("wasi:io", "=0.2.0"),
        ("wasi:keyvalue", "=0.2.0-draft"),
        ("wasi:random", "*"),
    ]
    http = scan.dependencies[2]
    assert http.locations == (WitLocation("wit/world.wit", 7, 10), WitLocation("wit/world.wit", 8, 10))
    io = scan.dependencies[3]
    assert [str(loc) for loc in io.locations] == ["wit/types.wit:1", "wit/types.wit:2", "wit/types.wit:17"]
    assert [str(p) for p, _ in scan.declared] == ["my:vendored", "my:app"]


def test_requirements_for_the_resolver(tmp_path: Path) -> None:
    write(tmp_path / "w" / "world.wit", WORLD)
    scan = scan_wit_dir(tmp_path / "w")
    reqs = scan.requirements("my-app")
    assert reqs[2] == Requirement("wasi:http", "=0.2.3", f"my-app {tmp_path.as_posix()}/w/world.wit:7")
    assert scan.requirements()[0].requested_by == f"{tmp_path.as_posix()}/w/world.wit:17"


def test_scan_a_single_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "my.wit", "package a:b;\nworld w { import c:d/e@1.2.3; }\n")
    scan = scan_wit_dir("my.wit")
    assert deps_of(scan) == [("c:d", "=1.2.3")]
    assert str(scan.dependencies[0].location) == "my.wit:2"


def test_own_package_is_not_a_dependency_but_another_version_of_it_is() -> None:
    scan = scan_wit_text(
        """
        package my:pkg@1.0.0;
        interface a { use my:pkg/b.{t}; use my:pkg/b@1.0.0.{t}; use my:pkg/b@2.0.0.{t}; }
        interface b { type t = u32; }
        """
    )
    assert deps_of(scan) == [("my:pkg", "=2.0.0")]


def test_versions() -> None:
    scan = scan_wit_text(
        """
        package x:y;
        world w {
          import a:a/i@1.0.0-rc.1;
          import b:b/i@1.0.0+build.7;
          import c:c/i @ 0.2.0 ;
          import d:d/i@0.0.1-alpha-2.beta.{x};
          import e:e/i@1.2.3-rc.1.{x};
          include f:f/w@3.0.0-x with { a as b };
        }
        """
    )
    assert [(str(d.package), str(d.version), str(d.requirement)) for d in scan.dependencies] == [
        ("a:a", "1.0.0-rc.1", "=1.0.0-rc.1"),
        ("b:b", "1.0.0+build.7", "=1.0.0"),  # build metadata is dropped, as Cargo does
        ("c:c", "0.2.0", "=0.2.0"),
        ("d:d", "0.0.1-alpha-2.beta", "=0.0.1-alpha-2.beta"),
        ("e:e", "1.2.3-rc.1", "=1.2.3-rc.1"),
        ("f:f", "3.0.0-x", "=3.0.0-x"),
    ]


def test_named_import_looks_like_a_nested_namespace_but_is_not() -> None:
    # wit-parser reads `import a:b:c/d` as the import named `a` of interface b:c/d
    scan = scan_wit_text("package x:y;\nworld w { import a:b:c/d; import e :f:g/h; }")
    assert deps_of(scan) == [("b:c", "*"), ("f:g", "*")]


def test_two_versions_of_one_package_are_two_dependencies() -> None:
    scan = scan_wit_text("package a:b;\nworld w { import c:d/x@1.0.0; import c:d/y@1.1.0; import c:d/z; }")
    assert deps_of(scan) == [("c:d", "*"), ("c:d", "=1.0.0"), ("c:d", "=1.1.0")]


def test_requirement_for() -> None:
    assert requirement_for(None) == VersionReq.STAR
    assert str(requirement_for(Version.parse("0.2.0"))) == "=0.2.0"
    assert str(requirement_for(Version.parse("1.0.0-rc.1+b.2"))) == "=1.0.0-rc.1"


ERRORS = [
    (
        "package a:b;\nworld w {\n  import c:d/;\n}\n",
        "error[invalid-wit]: cannot read the WIT file my.wit: expected an interface or world name after '/', found ';' (line 3, column 14)\n"
        "  3 |   import c:d/;\n"
        "                   ^",
    ),
    (
        "package a:b;\ninterface i {\n  use c:d/e@1.0.{t};\n}\n",
        "error[invalid-wit]: cannot read the WIT file my.wit: expected a number in the version, found '{' (line 3, column 17)\n"
        "  3 |   use c:d/e@1.0.{t};\n"
        "                      ^",
    ),
    (
        "package a:b;\ninterface i { use a:b:c/d.{x}; }\n",
        "error[invalid-wit]: cannot read the WIT file my.wit: nested namespaces ('a:b:c/d') cannot be expressed as a package reference (line 2, column 19)\n"
        "  2 | interface i { use a:b:c/d.{x}; }\n"
        "                        ^",
    ),
    (
        "package a:b@01.0.0;\n",
        "error[invalid-wit]: cannot read the WIT file my.wit: invalid version '01.0.0': leading zero in major version number '01' at position 1 (line 1, column 13)\n"
        "  1 | package a:b@01.0.0;\n"
        "                  ^",
    ),
    (
        "package a:b;\n/* unterminated\n",
        "error[invalid-wit]: cannot read the WIT file my.wit: unterminated block comment (line 2, column 1)\n"
        "  2 | /* unterminated\n"
        "      ^",
    ),
    (
        "package a:b;\nworld w { @external-id(\"x) }\n",
        "error[invalid-wit]: cannot read the WIT file my.wit: unterminated string literal (line 2, column 24)\n"
        "  2 | world w { @external-id(\"x) }\n"
        "                             ^",
    ),
    (
        "package a:b\nworld w {}\n",
        "error[invalid-wit]: cannot read the WIT file my.wit: expected ';' or '{' after the package name, found 'world' (line 2, column 1)\n"
        "  2 | world w {}\n"
        "      ^",
    ),
    (
        "package a:b;\nworld w { import c:D/e; }\n",
        "error[invalid-wit]: cannot read the WIT file my.wit: c:D is not a valid package name (line 2, column 18)\n"
        "  2 | world w { import c:D/e; }\n"
        "                       ^",
    ),
]


@pytest.mark.parametrize("text,rendered", ERRORS, ids=range(len(ERRORS)))
def test_errors_name_the_file_and_line(text: str, rendered: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.wit").write_text(text)
    with pytest.raises(InputError) as info:
        scan_wit_dir("my.wit")
    assert info.value.render() == rendered


def test_files_must_agree_on_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "wit" / "a.wit", "package my:app@0.1.0;\n")
    write(tmp_path / "wit" / "b.wit", "// b\npackage my:app@0.2.0;\n")
    with pytest.raises(InputError) as info:
        scan_wit_dir()
    assert info.value.render() == (
        "error[invalid-wit]: the WIT files disagree on the package name: my:app@0.1.0 (wit/a.wit:1) and my:app@0.2.0 (wit/b.wit:2)\n"
        "  hint: every file of a WIT package that has a 'package' line must name the same package"
    )


def test_unreadable_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LocalIOError) as info:
        scan_wit_dir()
    assert info.value.render() == (
        "error[io-error]: no WIT directory at wit\n"
        "  hint: create it, or pass the directory that holds the project's .wit files"
    )
    (tmp_path / "wit").mkdir()
    (tmp_path / "wit" / "bad.wit").write_bytes(b"package a:b;\n\xff\n")
    with pytest.raises(InputError) as info2:
        scan_wit_dir()
    assert info2.value.render() == "error[invalid-wit]: the WIT file wit/bad.wit is not UTF-8 (byte 13)"


def test_empty_directory_has_no_dependencies(tmp_path: Path) -> None:
    scan = scan_wit_dir(tmp_path)
    assert scan.package is None and scan.dependencies == () and scan.files == ()


# --- against wasm-tools ---------------------------------------------------------------------------


def _write_deps(wit: Path, specs: list[WitSpec]) -> None:
    seen: dict[str, WitSpec] = {}
    todo = list(specs)
    while todo:
        spec = todo.pop(0)
        if spec.package_id in seen:
            continue
        seen[spec.package_id] = spec
        todo.extend(spec.deps)
    for spec in seen.values():
        write(wit / "deps" / spec.dir_name / "package.wit", spec.source())


def test_matches_what_wasm_tools_builds(tmp_path: Path) -> None:
    """Scan a project WIT directory, build it with wasm-tools, and compare: the direct
    dependencies the scan finds are exactly the foreign packages of the built package
    that the project itself names (its dependencies' dependencies come on top)."""
    c = WitSpec("chain", "c", "1.0.0")
    b = WitSpec("chain", "b", "0.3.0-rc.1", deps=(c,))
    d = WitSpec("other", "d", None)
    wit = tmp_path / "wit"
    write(
        wit / "world.wit",
        """
        package my:proj@2.0.0;

        world proj {
          import chain:b/api@0.3.0-rc.1;
          export other:d/api;
          // import chain:c/api@1.0.0;   (only through chain:b)
        }
        """,
    )
    write(wit / "more.wit", "interface extra {\n  use other:d/api.{entry};\n  f: func(e: entry);\n}\n")
    _write_deps(wit, [b, d])
    out = tmp_path / "proj.wasm"
    subprocess.run([wasm_tools(), "component", "wit", str(wit), "--wasm", "-o", str(out)], check=True, timeout=60)

    scan = scan_wit_dir(wit)
    built = read_component_file(out)
    assert built.package == scan.package and built.version == scan.version
    assert deps_of(scan) == [("chain:b", "=0.3.0-rc.1"), ("other:d", "*")]
    assert [(str(f.package), str(f.requirement)) for f in built.foreign] == [
        ("chain:b", "=0.3.0-rc.1"),
        ("chain:c", "=1.0.0"),
        ("other:d", "*"),
    ]


# --- property: comments and whitespace anywhere between tokens ---------------------------------

# WIT keywords ('as', 'use', 'func', ...) are not identifiers unless %-escaped, and
# wasm-tools rejects them unescaped in a package path, as the scanner does
labels = st.from_regex(r"[a-z][a-z0-9]{0,4}(-[a-z][a-z0-9]{0,3})?", fullmatch=True).filter(
    lambda label: label not in _witdeps._KEYWORDS)
versions = st.one_of(st.none(), st.sampled_from(["0.2.0", "1.0.0-rc.1", "0.0.1-alpha.2", "3.1.4+b.1"]))
gaps = st.sampled_from([" ", "  ", "\n", "\t", " /* c */ ", "/**/", " // line\n", "\n/* a /* b */ c */\n"])
refs = st.tuples(labels, labels, labels, versions)
forms = st.sampled_from(["use-iface", "use-top", "import", "export", "named", "include"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(refs, forms), max_size=6), st.data())
def test_found_exactly_with_any_comments_between_tokens(items, data) -> None:  # type: ignore[no-untyped-def]
    def g() -> str:
        return data.draw(gaps)

    def path(ns: str, pkg: str, iface: str, version: str | None) -> str:
        text = f"{ns}{g()}:{g()}{pkg}{g()}/ {g()}%{iface}"  # a space after '/': '//' would start a comment
        if version is not None:
            text += f"{g()}@{version}"
        return text

    lines = [f"package{g()}self{g()}:{g()}pkg{g()}@{g()}9.9.9{g()};"]
    world = []
    for (ns, pkg, iface, version), form in items:
        p = path(ns, pkg, iface, version)
        if form == "use-iface":
            lines.append(f"interface i{len(lines)} {{{g()}use{g()}{p}{g()}.{g()}{{{g()}t{g()}}}{g()};{g()}}}")
        elif form == "use-top":
            lines.append(f"use{g()}{p}{g()}as{g()}u{len(lines)}{g()};")
        elif form == "include":
            world.append(f"include{g()}{p}{g()};")
        elif form == "named":
            world.append(f"import{g()}n{len(world)}{g()}:{g()}{p}{g()};")
        else:
            world.append(f"{form}{g()}{p}{g()};")
    lines.append("world w {" + g().join(world) + "}")
    text = g().join(lines)

    expected = set()
    for (ns, pkg, _iface, version), _form in items:
        if (ns, pkg) == ("self", "pkg") and version in (None, "9.9.9"):
            continue
        expected.add((f"{ns}:{pkg}", str(requirement_for(Version.parse(version) if version else None))))
    assert set(deps_of(scan_wit_text(text))) == expected, text
