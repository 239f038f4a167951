"""The component binary reader (``_component``) against packages built with wasm-tools."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pkgloader._component import ComponentInfo, read_component, read_component_file
from pkgloader._errors import InvalidContent, LocalIOError
from pkgloader._ref import PackageRef
from pkgloader._semver import Version
from support.wit import WitSpec, build_spec, build_wit_package, wasm_tools, wit_text_of

_NESTED = re.compile(r"^package ([a-z0-9:-]+?)(?:@(\S+))? \{$", re.M)
_ROOT = re.compile(r"^package ([a-z0-9:-]+?)(?:@(\S+))?;$", re.M)
_REF = re.compile(r"^\s*(?:use|import|export|include)\s+(?:[a-z0-9-]+:\s+)?([a-z0-9-]+:[a-z0-9-]+)/", re.M)


def oracle(wasm: Path) -> tuple[str | None, set[str], set[str]]:
    """From ``wasm-tools component wit``: the root package, the foreign packages (printed as
    nested ``package ... {`` blocks) and the packages named on use/import/export lines."""
    text = wit_text_of(wasm)
    root = _ROOT.search(text)
    root_id = None if root is None else root.group(1) + (f"@{root.group(2)}" if root.group(2) else "")
    nested = {m.group(1) + (f"@{m.group(2)}" if m.group(2) else "") for m in _NESTED.finditer(text)}
    named = {m.group(1) for m in _REF.finditer(text)}
    return root_id, nested, named


def foreign_ids(info: ComponentInfo) -> set[str]:
    return {str(f) for f in info.foreign}


def check_against_wasm_tools(wasm: Path) -> ComponentInfo:
    info = read_component_file(wasm)
    root, nested, named = oracle(wasm)
    if info.is_wit_package:
        own = str(info.package) + (f"@{info.version}" if info.version else "")
        assert own == root
    else:
        assert root == "root:component"
    assert foreign_ids(info) == nested
    assert named - {root.split("@")[0] if root else ""} <= {str(f.package) for f in info.foreign}
    return info


# --- WIT packages ------------------------------------------------------------------------------


def test_chain_a_uses_b_uses_c(tmp_path: Path) -> None:
    c = WitSpec("c", "pkg", "1.0.0")
    b = WitSpec("b", "pkg", "1.0.0", deps=(c,))
    wasm = build_wit_package(tmp_path, "a", "pkg", "0.1.0", deps=[b])
    info = check_against_wasm_tools(wasm)
    assert info.kind == "wit-package"
    assert info.package == PackageRef.parse("a:pkg") and info.version == Version.parse("0.1.0")
    assert [(str(f.package), str(f.version), str(f.requirement), f.names) for f in info.foreign] == [
        ("b:pkg", "1.0.0", "=1.0.0", ("b:pkg/api@1.0.0",)),
        ("c:pkg", "1.0.0", "=1.0.0", ("c:pkg/api@1.0.0",)),
    ]
    assert info.imports == () and info.exports == ("api", "types", "app")

    # each link of the chain on its own
    assert foreign_ids(check_against_wasm_tools(build_spec(tmp_path / "b", b))) == {"c:pkg@1.0.0"}
    assert foreign_ids(check_against_wasm_tools(build_spec(tmp_path / "c", c))) == set()


def test_diamond_and_unversioned_and_prerelease(tmp_path: Path) -> None:
    base = WitSpec("wasi", "io", "0.2.0-rc.1")
    left = WitSpec("my", "left", None, deps=(base,))
    right = WitSpec("my-org", "right2", "3.1.4", deps=(base,))
    wasm = build_wit_package(tmp_path, "top", "app", None, deps=[left, right])
    info = check_against_wasm_tools(wasm)
    assert info.package == PackageRef.parse("top:app") and info.version is None
    assert [(str(f), str(f.requirement)) for f in info.foreign] == [
        ("my:left", "*"),
        ("my-org:right2@3.1.4", "=3.1.4"),
        ("wasi:io@0.2.0-rc.1", "=0.2.0-rc.1"),
    ]


def test_world_include_and_export_of_foreign_interfaces(tmp_path: Path) -> None:
    cli = WitSpec("wasi", "cli", "0.2.0", body="interface environment { get: func() -> list<string>; }\nworld imports { import environment; }\n")
    http = WitSpec("wasi", "http", "0.2.3", body="interface handler { handle: func(); }\n")
    body = (
        "world app {\n"
        "  include wasi:cli/imports@0.2.0;\n"
        "  export wasi:http/handler@0.2.3;\n"
        "  import log: func(msg: string);\n"
        "}\n"
    )
    wasm = build_wit_package(tmp_path, "my", "app", "1.0.0", body=body, deps=[cli, http])
    info = check_against_wasm_tools(wasm)
    assert foreign_ids(info) == {"wasi:cli@0.2.0", "wasi:http@0.2.3"}
    assert info.exports == ("app",)


def test_named_import_of_an_interface(tmp_path: Path) -> None:
    kv = WitSpec("wasi", "keyvalue", "0.2.0-draft", body="interface store { get: func(k: string) -> option<string>; }\n")
    body = "world app {\n  import primary: wasi:keyvalue/store@0.2.0-draft;\n}\n"
    info = check_against_wasm_tools(build_wit_package(tmp_path, "my", "app", "1.0.0", body=body, deps=[kv]))
    assert foreign_ids(info) == {"wasi:keyvalue@0.2.0-draft"}


# --- components -----------------------------------------------------------------------------------


def test_component_with_core_module_inside(tmp_path: Path) -> None:
    c = WitSpec("c", "pkg", "2.0.0-rc.1")
    b = WitSpec("b", "pkg", "1.0.0", deps=(c,))
    wit = tmp_path / "wit"
    (wit / "deps" / b.dir_name).mkdir(parents=True)
    (wit / "deps" / c.dir_name).mkdir(parents=True)
    (wit / "deps" / b.dir_name / "package.wit").write_text(b.source())
    (wit / "deps" / c.dir_name / "package.wit").write_text(c.source())
    (wit / "world.wit").write_text(
        "package my:comp@0.3.0;\n"
        "world w {\n"
        "  import c:pkg/api@2.0.0-rc.1;\n"
        "  use c:pkg/api@2.0.0-rc.1.{entry};\n"
        "  import f: func(e: entry) -> string;\n"
        "  export b:pkg/api@1.0.0;\n"
        "  export run: func() -> result<list<u8>, string>;\n"
        "}\n"
    )
    core, comp = tmp_path / "core.wasm", tmp_path / "comp.wasm"
    tool = wasm_tools()
    subprocess.run([tool, "component", "embed", str(wit), "--dummy", "-o", str(core)], check=True, timeout=60)
    subprocess.run([tool, "component", "new", str(core), "-o", str(comp)], check=True, timeout=60)
    info = check_against_wasm_tools(comp)
    assert info.kind == "component" and info.package is None and info.version is None
    assert foreign_ids(info) == {"b:pkg@1.0.0", "c:pkg@2.0.0-rc.1"}
    assert info.imports == ("c:pkg/api@2.0.0-rc.1", "entry", "f")
    assert set(info.exports) == {"run", "b:pkg/api@1.0.0"}


def _wat(tmp_path: Path, text: str) -> Path:
    src, out = tmp_path / "x.wat", tmp_path / "x.wasm"
    src.write_text(text)
    subprocess.run([wasm_tools(), "parse", str(src), "-o", str(out)], check=True, timeout=60)
    return out


def test_older_wit_encoding(tmp_path: Path) -> None:
    # The v1 encoding: one export named `<ns>:<pkg>/wit`; wasm-tools still reads it.
    wasm = _wat(
        tmp_path,
        """
        (component
          (type (component
            (type (instance (type (record (field "v" u32))) (export "thing" (type (eq 0)))))
            (import "c:pkg/api@2.0.0" (instance (type 0)))
            (type (instance))
            (export "a:pkg/api@0.1.0" (instance (type 1)))))
          (export "a:pkg/wit" (type 0)))
        """,
    )
    info = check_against_wasm_tools(wasm)
    assert info.kind == "wit-package" and str(info.package) == "a:pkg" and info.version is None
    assert foreign_ids(info) == {"c:pkg@2.0.0"}


def test_implements_attribute(tmp_path: Path) -> None:
    wasm = _wat(tmp_path, '(component (import "primary" (implements "wasi:keyvalue/store@0.2.0") (instance)))')
    info = check_against_wasm_tools(wasm)
    assert info.imports == ("primary",)
    assert [(str(f), f.names) for f in info.foreign] == [("wasi:keyvalue@0.2.0", ("wasi:keyvalue/store@0.2.0",))]


# --- crafted binaries -------------------------------------------------------------------------------


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def name(text: str) -> bytes:
    raw = text.encode()
    return leb(len(raw)) + raw


def section(sid: int, body: bytes) -> bytes:
    return bytes([sid]) + leb(len(body)) + body


PREAMBLE = b"\x00asm\x0d\x00\x01\x00"


def imports(*entries: bytes) -> bytes:
    return section(10, leb(len(entries)) + b"".join(entries))


def test_canonical_versions_and_version_suffix() -> None:
    empty_instance_type = section(7, leb(1) + b"\x42\x00")
    data = PREAMBLE + empty_instance_type + imports(
        b"\x00" + name("wasi:http/types@0.2") + b"\x05\x00",  # canonical version alone: ^0.2
        b"\x02" + name("wasi:io/streams@0.2") + leb(1) + b"\x01" + name(".6-rc.1") + b"\x05\x00",  # + versionsuffix
        b"\x02" + name("x") + leb(1) + b"\x02" + name("external id") + b"\x05\x00",  # external-id: ignored
        b"\x01" + name("[method]r.f") + b"\x05\x00",
        b"\x00" + name("a:b:c/d") + b"\x05\x00",  # nested namespace: not expressible
        b"\x00" + name("e:f/g@not-a-version") + b"\x05\x00",
    )
    info = read_component(data)
    assert [(str(f.package), str(f.version), str(f.requirement)) for f in info.foreign] == [
        ("wasi:http", "None", "^0.2"),
        ("wasi:io", "0.2.6-rc.1", "=0.2.6-rc.1"),
    ]
    assert info.unsupported_names == ("a:b:c/d", "e:f/g@not-a-version")


def test_deep_nesting_is_refused() -> None:
    depth = 200
    ty = b"\x42\x00"
    for _ in range(depth):
        ty = b"\x42" + leb(1) + b"\x01" + ty  # an instance type declaring a type
    with pytest.raises(InvalidContent) as info:
        read_component(PREAMBLE + section(7, leb(1) + ty), origin="deep.wasm")
    assert info.value.code == "invalid-component"
    assert info.value.message.startswith("deep.wasm is not a valid component: types nested more than 64 levels deep")


MALFORMED = [
    (b"", "not-wasm", "x.wasm is not WebAssembly (no '\\0asm' header)"),
    (b"hello world", "not-wasm", "x.wasm is not WebAssembly (no '\\0asm' header)"),
    (b"\x00asm\x01\x00\x00\x00", "invalid-component", "x.wasm is not a valid component: this is a core WebAssembly module, not a component (at byte 0)"),
    (
        b"\x00asm\x0a\x00\x01\x00",
        "invalid-component",
        "x.wasm is not a valid component: unsupported component binary version 0x0a (pkgloader reads 0x0d, "
        "the version wasm-tools writes since 2023) (at byte 4)",
    ),
    (PREAMBLE + b"\x0d\x00", "invalid-component", "x.wasm is not a valid component: unknown section id 13 (at byte 8)"),
    (PREAMBLE + b"\x07\x05\x01", "invalid-component", "x.wasm is not a valid component: section 7 of 5 bytes runs past the end of the data (at byte 8)"),
    (PREAMBLE + section(7, b"\xff\xff\xff\xff\x0f"), "invalid-component", "x.wasm is not a valid component: type count 4294967295 is larger than the 0 bytes left (at byte 10)"),
    (PREAMBLE + section(7, b"\x80\x80\x80\x80\x80\x01"), "invalid-component", "x.wasm is not a valid component: invalid LEB128 u32: too many bytes (at byte 10)"),
    (PREAMBLE + section(7, leb(1) + b"\x5a"), "invalid-component", "x.wasm is not a valid component: unknown type opcode 0x5a (at byte 11)"),
    (PREAMBLE + section(7, leb(1) + b"\x42\x00\x00"), "invalid-component", "x.wasm is not a valid component: section 7 has 1 unread bytes (at byte 13)"),
    (PREAMBLE + imports(b"\x00" + b"\x02\xff\xfe" + b"\x05\x00"), "invalid-component", "x.wasm is not a valid component: name is not valid UTF-8 (at byte 12)"),
    (PREAMBLE + imports(b"\x07" + name("x") + b"\x05\x00"), "invalid-component", "x.wasm is not a valid component: unknown extern name encoding 0x07 (at byte 11)"),
    (PREAMBLE + imports(b"\x00" + name("x") + b"\x09\x00"), "invalid-component", "x.wasm is not a valid component: unknown extern type 0x09 (at byte 14)"),
]


@pytest.mark.parametrize("data,code,message", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed(data: bytes, code: str, message: str) -> None:
    with pytest.raises(InvalidContent) as info:
        read_component(data, origin="x.wasm")
    assert info.value.code == code
    assert info.value.message == message


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(LocalIOError) as info:
        read_component_file(tmp_path / "missing.wasm")
    assert info.value.message == f"cannot read {tmp_path / 'missing.wasm'}: No such file or directory"


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    tmp = tmp_path_factory.mktemp("samples")
    c = WitSpec("c", "pkg", "1.0.0")
    b = WitSpec("b", "pkg", "1.0.0-rc.1", deps=(c,))
    return [build_wit_package(tmp, "a", "pkg", "0.1.0", deps=[b]).read_bytes()]


def _section_ends(data: bytes) -> set[int]:
    ends, pos = {8}, 8
    while pos < len(data):
        pos += 1
        size = shift = 0
        while True:
            b = data[pos]
            pos += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        pos += size
        ends.add(pos)
    return ends


def test_every_truncation_is_a_clean_error(samples: list[bytes]) -> None:
    """Cut anywhere: an error, unless the cut falls between two sections (then the rest is
    a shorter but well-formed component)."""
    data = samples[0]
    ends = _section_ends(data)
    assert len(ends) > 3
    for end in range(len(data)):
        if end in ends:
            read_component(data[:end])
        else:
            with pytest.raises(InvalidContent):
                read_component(data[:end])
    assert read_component(data).is_wit_package


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_corrupted_bytes_never_raise_anything_else(samples: list[bytes], data: st.DataObject) -> None:
    blob = bytearray(samples[0])
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(8, len(blob) - 1))
        kind = data.draw(st.sampled_from(["set", "delete", "insert"]))
        if kind == "set":
            blob[pos] = data.draw(st.integers(0, 255))
        elif kind == "delete":
            del blob[pos : pos + data.draw(st.integers(1, 16))]
        else:
            blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        if len(blob) <= 9:
            break
    try:
        info = read_component(bytes(blob))
    except InvalidContent as exc:
        assert exc.code in ("invalid-component", "not-wasm")
    else:
        assert isinstance(info, ComponentInfo)
