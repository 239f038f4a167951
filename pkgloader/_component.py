"""Which packages a WIT package or component binary refers to, read from the binary itself.

This is a small reader of the Component Model binary format (``design/mvp/Binary.md``,
preamble ``\\0asm`` + version ``0x0d`` + layer ``1``). It walks the sections and the type
definitions and collects every *extern name* (import and export names) at every depth of
the top-level type definitions, then interprets the interface names among them
(``ns:pkg/iface``, ``ns:pkg/iface@1.2.3``):

* a **WIT package** (what ``wasm-tools component wit DIR --wasm`` and wkg build: only
  exported component types, no imports) is named by the interface and world names inside
  its exported types (``(export "a:pkg/api@0.1.0" (instance ...))``). Every other package
  named anywhere in those types is a foreign dependency: the packages of ``use``d,
  imported, exported and included interfaces, transitively (a package ``a`` that uses
  ``b``, which uses ``c``, refers to ``b`` and ``c``, as ``wasm-tools component wit`` prints
  them). Both WIT encodings are understood: the current one (top-level exports with plain
  names such as ``api``) and the older one (a single export ``ns:pkg/wit``).
* a **component** has no package of its own; every package named by its top-level imports
  and exports (and by the type definitions of its top-level type sections) is foreign.

Versions: ``@1.2.3`` gives the requirement ``=1.2.3`` (as for WIT source, see
``_witdeps.requirement_for``); a canonical version (``@0.2``, the 🔗 "canonical interface
name" form) is completed by its ``versionsuffix`` attribute when present and otherwise
gives ``^0.2``; no version gives ``*``. An ``implements`` attribute (🏷️ named imports such as
``import primary: wasi:keyvalue/store``) counts as a reference to the interface it names.

Not extracted: nested components, core modules and instances (a component's internal
wiring: their imports are satisfied inside the component), function bodies, custom
sections (names, producers, package docs), and names with nested namespaces
(``a:b:c/d``, 🪺), which a ``PackageRef`` cannot express: those are listed in
``ComponentInfo.unsupported_names``. The reader does not validate (index bounds, type
matching): it is for discovering dependencies, not for checking a component.

Robustness: every read is bounds-checked, every vector length is checked against the
bytes left, nesting depth is capped, and the work is linear in the input size. Anything
malformed raises ``InvalidContent`` (code ``invalid-component``, or ``not-wasm`` for data
that is not WebAssembly at all) naming the origin and the byte offset, never a
``struct.error`` or ``IndexError``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ._errors import InvalidContent, InvalidPackageRef, InvalidVersion, LocalIOError
from ._ref import PackageRef
from ._semver import Version, VersionReq
from ._witdeps import requirement_for

__all__ = ["ComponentInfo", "ForeignPackage", "read_component", "read_component_file"]

_MAGIC = b"\x00asm"
_COMPONENT_VERSION = 0x0D
_MAX_DEPTH = 64
_MAX_NAME = 1 << 20
_MAX_FILE_BYTES = 1 << 30


@dataclass(frozen=True)
class ForeignPackage:
    """A package referred to at one version (or unversioned), and the names that did."""

    package: PackageRef
    version: Version | None
    requirement: VersionReq
    names: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.package}@{self.version}" if self.version is not None else str(self.package)


@dataclass(frozen=True)
class ComponentInfo:
    """What ``read_component`` found.

    ``kind`` is ``"wit-package"`` or ``"component"``; ``package``/``version`` name a WIT
    package (None for a component); ``imports``/``exports`` are the top-level extern names
    in binary order; ``foreign`` is sorted by package, then version (unversioned first)."""

    kind: str
    package: PackageRef | None
    version: Version | None
    foreign: tuple[ForeignPackage, ...]
    imports: tuple[str, ...]
    exports: tuple[str, ...]
    unsupported_names: tuple[str, ...] = ()

    @property
    def is_wit_package(self) -> bool:
        return self.kind == "wit-package"


# --- reader -------------------------------------------------------------------------


class _Malformed(Exception):
    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


class _Reader:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data = data
        self.pos = pos
        self.end = end

    def fail(self, message: str, at: int | None = None) -> _Malformed:
        return _Malformed(self.pos if at is None else at, message)

    def eof(self) -> bool:
        return self.pos >= self.end

    def u8(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end of data")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def peek(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end of data")
        return self.data[self.pos]

    def uleb(self, bits: int = 32) -> int:
        start = self.pos
        result = shift = 0
        for _ in range((bits + 6) // 7):
            b = self.u8()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                if result >= 1 << bits:
                    raise self.fail(f"integer too large for u{bits}", start)
                return result
            shift += 7
        raise self.fail(f"invalid LEB128 u{bits}: too many bytes", start)

    def sleb(self, bits: int = 33) -> int:
        start = self.pos
        result = shift = 0
        for _ in range((bits + 6) // 7):
            b = self.u8()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if b & 0x40:
                    result -= 1 << shift
                if not -(1 << (bits - 1)) <= result < 1 << (bits - 1):
                    raise self.fail(f"integer too large for s{bits}", start)
                return result
        raise self.fail(f"invalid LEB128 s{bits}: too many bytes", start)

    def count(self, what: str) -> int:
        """A vector length; each element takes at least one byte, so it is bounded."""
        at = self.pos
        n = self.uleb()
        if n > self.end - self.pos:
            raise self.fail(f"{what} count {n} is larger than the {self.end - self.pos} bytes left", at)
        return n

    def skip(self, n: int) -> None:
        if n > self.end - self.pos:
            raise self.fail(f"{n} bytes needed, {self.end - self.pos} left")
        self.pos += n

    def name(self) -> str:
        at = self.pos
        n = self.uleb()
        if n > _MAX_NAME or n > self.end - self.pos:
            raise self.fail(f"name of {n} bytes does not fit in the {self.end - self.pos} bytes left", at)
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("name is not valid UTF-8", at) from None


@dataclass
class _Name:
    """An extern name with its attributes."""

    name: str
    implements: str | None = None
    version_suffix: str | None = None
    kind: int | None = None  # the extern kind (0x04 component, 0x05 instance, ...) where recorded


_PRIM_VALTYPES = frozenset(range(0x73, 0x80)) | {0x64}
# Component type-index space entries, as far as this reader needs to know them.
_T_COMPONENT = "component"
_T_OTHER = "other"


class _Walker:
    """Parses one component: collects extern names; tracks the top-level type index space
    well enough to tell whether each exported type is a component type."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.top_imports: list[_Name] = []
        self.top_exports: list[tuple[_Name, int, int]] = []  # (name, sort, index)
        self.top_export_kinds: list[str] = []  # kind of the exported item (types only)
        self.types: list[str] = []  # top-level type index space
        self.type_names: dict[int, list[tuple[int, str, _Name]]] = {}  # type idx -> names inside
        self.other_names: list[_Name] = []  # names in non-exported type definitions etc.
        self.custom: dict[str, bytes] = {}  # top-level custom sections (the first of each name)

    # -- component (top level) -------------------------------------------------------

    def walk(self) -> None:
        r = _Reader(self.data, 0, len(self.data))
        _check_preamble(r)
        while not r.eof():
            section_start = r.pos
            sid = r.u8()
            size = r.uleb()
            if size > r.end - r.pos:
                raise r.fail(f"section {sid} of {size} bytes runs past the end of the data", section_start)
            body = _Reader(self.data, r.pos, r.pos + size)
            r.pos += size
            if sid == 7:
                self.type_section(body)
            elif sid == 10:
                self.import_section(body)
            elif sid == 11:
                self.export_section(body)
            elif sid == 6:
                self.alias_section(body)
            elif sid == 0:  # custom: kept for the metadata publish reads (wasm-tools metadata add)
                try:
                    cname = body.name()
                except _Malformed:
                    body.pos = body.end
                    continue
                self.custom.setdefault(cname, self.data[body.pos:body.end])
                body.pos = body.end
            elif sid in (1, 2, 3, 4, 5, 8, 9, 12):
                continue  # custom, core module/instance/type, nested component, instances, canon, start, values
            else:
                raise r.fail(f"unknown section id {sid}", section_start)
            if not body.eof():
                raise body.fail(f"section {sid} has {body.end - body.pos} unread bytes")

    def type_section(self, r: _Reader) -> None:
        for _ in range(r.count("type")):
            index = len(self.types)
            names: list[tuple[int, str, _Name]] = []
            kind = _deftype(r, 0, names)
            self.types.append(kind)
            if names:
                self.type_names[index] = names

    def import_section(self, r: _Reader) -> None:
        for _ in range(r.count("import")):
            name = _name_attributes(r)
            kind, _ = _externtype(r)
            self.top_imports.append(name)
            if kind == 0x03:
                self.types.append(_T_OTHER)

    def export_section(self, r: _Reader) -> None:
        for _ in range(r.count("export")):
            name = _name_attributes(r)
            sort = _sort(r)
            index = r.uleb()
            flag = r.u8()
            if flag == 0x01:
                _externtype(r)
            elif flag != 0x00:
                raise r.fail(f"invalid optional export type flag 0x{flag:02x}", r.pos - 1)
            self.top_exports.append((name, sort, index))
            if sort == 0x03:
                kind = self.types[index] if index < len(self.types) else _T_OTHER
                self.top_export_kinds.append(kind)
                self.types.append(kind)

    def alias_section(self, r: _Reader) -> None:
        for _ in range(r.count("alias")):
            sort = _sort(r)
            _alias_target(r)
            if sort == 0x03:
                self.types.append(_T_OTHER)


def _check_preamble(r: _Reader) -> None:
    if r.end < 8 or bytes(r.data[0:4]) != _MAGIC:
        raise _NotWasm()
    version = r.data[4] | (r.data[5] << 8)
    layer = r.data[6] | (r.data[7] << 8)
    if layer == 0 and version == 1:
        raise _Malformed(0, "this is a core WebAssembly module, not a component")
    if layer != 1:
        raise _Malformed(6, f"unknown layer {layer} (a component has layer 1)")
    if version != _COMPONENT_VERSION:
        raise _Malformed(
            4,
            f"unsupported component binary version 0x{version:02x} (pkgloader reads 0x{_COMPONENT_VERSION:02x}, "
            "the version wasm-tools writes since 2023)",
        )
    r.pos = 8


class _NotWasm(Exception):
    pass


def _sort(r: _Reader) -> int:
    at = r.pos
    sort = r.u8()
    if sort == 0x00:
        core = r.u8()
        if core not in (0x00, 0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12):
            raise r.fail(f"unknown core sort 0x{core:02x}", at + 1)
        return 0x100 | core
    if sort > 0x05:
        raise r.fail(f"unknown sort 0x{sort:02x}", at)
    return sort


def _alias_target(r: _Reader) -> None:
    at = r.pos
    tag = r.u8()
    if tag in (0x00, 0x01):
        r.uleb()
        r.name()
    elif tag == 0x02:
        r.uleb()
        r.uleb()
    else:
        raise r.fail(f"unknown alias target 0x{tag:02x}", at)


def _name_attributes(r: _Reader) -> _Name:
    at = r.pos
    tag = r.u8()
    if tag in (0x00, 0x01):
        return _Name(r.name())
    if tag != 0x02:
        raise r.fail(f"unknown extern name encoding 0x{tag:02x}", at)
    out = _Name(r.name())
    for _ in range(r.count("attribute")):
        a_at = r.pos
        kind = r.u8()
        if kind == 0x00:
            out.implements = r.name()
        elif kind == 0x01:
            out.version_suffix = r.name()
        elif kind == 0x02:
            r.name()  # external-id: not a package reference
        else:
            raise r.fail(f"unknown extern name attribute 0x{kind:02x}", a_at)
    return out


def _externtype(r: _Reader) -> tuple[int, int | None]:
    """(kind, type index or None)."""
    at = r.pos
    kind = r.u8()
    if kind == 0x00:
        if r.u8() != 0x11:
            raise r.fail("invalid core module extern type", at)
        return kind, r.uleb()
    if kind in (0x01, 0x04, 0x05):
        return kind, r.uleb()
    if kind == 0x02:  # value bound
        tag = r.u8()
        if tag == 0x00:
            r.uleb()
        elif tag == 0x01:
            _valtype(r)
        else:
            raise r.fail(f"invalid value bound 0x{tag:02x}", r.pos - 1)
        return kind, None
    if kind == 0x03:  # type bound
        tag = r.u8()
        if tag == 0x00:
            return kind, r.uleb()
        if tag == 0x01:
            return kind, None
        raise r.fail(f"invalid type bound 0x{tag:02x}", r.pos - 1)
    raise r.fail(f"unknown extern type 0x{kind:02x}", at)


def _valtype(r: _Reader) -> None:
    if r.peek() in _PRIM_VALTYPES:
        r.pos += 1
        return
    at = r.pos
    if r.sleb(33) < 0:
        raise r.fail("invalid value type", at)


def _opt_valtype(r: _Reader) -> None:
    tag = r.u8()
    if tag == 0x01:
        _valtype(r)
    elif tag != 0x00:
        raise r.fail(f"invalid option flag 0x{tag:02x}", r.pos - 1)


def _deftype(r: _Reader, depth: int, names: list[tuple[int, str, _Name]]) -> str:
    """One ``type``: returns the kind for the type index space; appends the extern names
    found inside (with their depth and "import"/"export") to ``names``."""
    if depth > _MAX_DEPTH:
        raise r.fail(f"types nested more than {_MAX_DEPTH} levels deep")
    at = r.pos
    b = r.u8()
    if b in _PRIM_VALTYPES:
        return _T_OTHER
    if b == 0x72:  # record
        for _ in range(r.count("record field")):
            r.name()
            _valtype(r)
    elif b == 0x71:  # variant
        for _ in range(r.count("variant case")):
            r.name()
            _opt_valtype(r)
            tag = r.u8()
            if tag == 0x01:  # legacy `refines`
                r.uleb()
            elif tag != 0x00:
                raise r.fail(f"invalid variant case terminator 0x{tag:02x}", r.pos - 1)
    elif b in (0x70, 0x6B):  # list, option
        _valtype(r)
    elif b == 0x67:  # fixed-size list
        _valtype(r)
        r.uleb()
    elif b in (0x6F, 0x6C):  # tuple, (legacy) union
        for _ in range(r.count("tuple element")):
            _valtype(r)
    elif b in (0x6E, 0x6D):  # flags, enum
        for _ in range(r.count("label")):
            r.name()
    elif b == 0x6A:  # result
        _opt_valtype(r)
        _opt_valtype(r)
    elif b in (0x69, 0x68):  # own, borrow
        r.uleb()
    elif b in (0x66, 0x65):  # stream, future
        _opt_valtype(r)
    elif b == 0x63:  # map
        _valtype(r)
        _valtype(r)
    elif b == 0x3F:  # resource
        rep = r.u8()
        if rep not in (0x7F, 0x7E):
            raise r.fail(f"invalid resource representation 0x{rep:02x}", r.pos - 1)
        flag = r.u8()
        if flag == 0x01:
            r.uleb()
        elif flag != 0x00:
            raise r.fail(f"invalid option flag 0x{flag:02x}", r.pos - 1)
    elif b in (0x40, 0x43):  # func, async func
        for _ in range(r.count("parameter")):
            r.name()
            _valtype(r)
        tag = r.u8()
        if tag == 0x00:
            _valtype(r)
        elif tag == 0x01:  # `0x01 0x00` (no result); older binaries: named results
            for _ in range(r.count("result")):
                r.name()
                _valtype(r)
        else:
            raise r.fail(f"invalid function result list 0x{tag:02x}", r.pos - 1)
    elif b == 0x41:  # component type
        for _ in range(r.count("component declaration")):
            d_at = r.pos
            tag = r.u8()
            if tag == 0x03:
                name = _name_attributes(r)
                name.kind = _externtype(r)[0]
                names.append((depth, "import", name))
            else:
                r.pos = d_at
                _instancedecl(r, depth, names)
        return _T_COMPONENT
    elif b == 0x42:  # instance type
        for _ in range(r.count("instance declaration")):
            _instancedecl(r, depth, names)
    else:
        raise r.fail(f"unknown type opcode 0x{b:02x}", at)
    return _T_OTHER


def _instancedecl(r: _Reader, depth: int, names: list[tuple[int, str, _Name]]) -> None:
    at = r.pos
    tag = r.u8()
    if tag == 0x00:
        _core_type(r, depth + 1)
    elif tag == 0x01:
        _deftype(r, depth + 1, names)
    elif tag == 0x02:
        _sort(r)
        _alias_target(r)
    elif tag == 0x04:
        name = _name_attributes(r)
        name.kind = _externtype(r)[0]
        names.append((depth, "export", name))
    else:
        raise r.fail(f"unknown declaration 0x{tag:02x}", at)


# --- core types (only skipped: they never carry extern names) ------------------------


_CORE_NUM = frozenset({0x7F, 0x7E, 0x7D, 0x7C, 0x7B})
_CORE_ABSTRACT_HEAP = frozenset(range(0x68, 0x76))  # func/extern/any/eq/i31/struct/array/exn/none/...


def _core_heaptype(r: _Reader) -> None:
    b = r.peek()
    if b == 0x65:  # shared
        r.pos += 1
        b = r.peek()
    if b in _CORE_ABSTRACT_HEAP:
        r.pos += 1
        return
    at = r.pos
    if r.sleb(33) < 0:
        raise r.fail("invalid core heap type", at)


def _core_valtype(r: _Reader) -> None:
    at = r.pos
    b = r.u8()
    if b in _CORE_NUM or b in _CORE_ABSTRACT_HEAP:
        return
    if b in (0x64, 0x63):  # (ref ht), (ref null ht)
        _core_heaptype(r)
        return
    raise r.fail(f"unknown core value type 0x{b:02x}", at)


def _core_storagetype(r: _Reader) -> None:
    if r.peek() in (0x78, 0x77):  # i8, i16
        r.pos += 1
        return
    _core_valtype(r)


def _core_fieldtype(r: _Reader) -> None:
    _core_storagetype(r)
    if r.u8() not in (0x00, 0x01):
        raise r.fail("invalid mutability flag", r.pos - 1)


def _core_comptype(r: _Reader) -> None:
    at = r.pos
    b = r.u8()
    if b == 0x65:  # shared
        at = r.pos
        b = r.u8()
    if b == 0x60:
        for _ in range(r.count("parameter")):
            _core_valtype(r)
        for _ in range(r.count("result")):
            _core_valtype(r)
    elif b == 0x5F:
        for _ in range(r.count("field")):
            _core_fieldtype(r)
    elif b == 0x5E:
        _core_fieldtype(r)
    elif b == 0x5D:  # continuation type
        r.sleb(33)
    else:
        raise r.fail(f"unknown core composite type 0x{b:02x}", at)


def _core_subtype(r: _Reader, non_final_prefixed: bool) -> None:
    b = r.peek()
    if b == 0x4F or (b == 0x50 and not non_final_prefixed):
        r.pos += 1
        for _ in range(r.count("supertype")):
            r.uleb()
    _core_comptype(r)


def _limits(r: _Reader) -> None:
    at = r.pos
    flags = r.u8()
    if flags & ~0x0F:
        raise r.fail(f"invalid limits flags 0x{flags:02x}", at)
    bits = 64 if flags & 0x04 else 32
    r.uleb(bits)
    if flags & 0x01:
        r.uleb(bits)
    if flags & 0x08:
        r.uleb()


def _core_externtype(r: _Reader) -> None:
    at = r.pos
    kind = r.u8()
    if kind == 0x00:
        r.uleb()
    elif kind == 0x01:  # table
        _core_valtype(r)
        _limits(r)
    elif kind == 0x02:  # memory
        _limits(r)
    elif kind == 0x03:  # global
        _core_valtype(r)
        if r.u8() not in (0x00, 0x01, 0x02, 0x03):
            raise r.fail("invalid global mutability", r.pos - 1)
    elif kind == 0x04:  # tag
        if r.u8() != 0x00:
            raise r.fail("invalid tag attribute", r.pos - 1)
        r.uleb()
    else:
        raise r.fail(f"unknown core extern type 0x{kind:02x}", at)


def _core_type(r: _Reader, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise r.fail(f"types nested more than {_MAX_DEPTH} levels deep")
    b = r.peek()
    if b == 0x50:  # module type
        r.pos += 1
        for _ in range(r.count("module declaration")):
            at = r.pos
            tag = r.u8()
            if tag == 0x00:
                r.name()
                r.name()
                _core_externtype(r)
            elif tag == 0x01:
                _core_type(r, depth + 1)
            elif tag == 0x02:
                if r.u8() != 0x10 or r.u8() != 0x01:
                    raise r.fail("invalid core alias", at + 1)
                r.uleb()
                r.uleb()
            elif tag == 0x03:
                r.name()
                _core_externtype(r)
            else:
                raise r.fail(f"unknown module declaration 0x{tag:02x}", at)
    elif b == 0x00:  # non-final sub type, prefixed in component core types
        r.pos += 1
        if r.u8() != 0x50:
            raise r.fail("invalid core sub type", r.pos - 1)
        for _ in range(r.count("supertype")):
            r.uleb()
        _core_comptype(r)
    elif b == 0x4E:  # rec group
        r.pos += 1
        for _ in range(r.count("rec group member")):
            _core_subtype(r, non_final_prefixed=False)
    else:
        _core_subtype(r, non_final_prefixed=True)


# --- interpretation -------------------------------------------------------------------


@dataclass(frozen=True)
class _Iface:
    package: PackageRef
    version: Version | None
    requirement: VersionReq


class _Unsupported(Exception):
    pass


def _interface_name(text: str, version_suffix: str | None) -> _Iface | None:
    """``ns:pkg/iface[@ver]`` as (package, version, requirement); None for plain names.
    Raises _Unsupported for interface names pkgloader cannot express."""
    colon = text.find(":")
    slash = text.find("/")
    if colon <= 0 or slash < colon:
        return None  # a plain name: `api`, `[method]r.f`, ...
    at = text.find("@", slash)
    head = text if at < 0 else text[:at]
    namespace, _, rest = head.partition(":")
    package_name, _, _iface = rest.partition("/")
    if ":" in rest or not _iface:
        raise _Unsupported(text)
    try:
        package = PackageRef(namespace, package_name)
    except InvalidPackageRef:
        raise _Unsupported(text) from None
    if at < 0:
        return _Iface(package, None, VersionReq.STAR)
    version_text = text[at + 1 :]
    full = version_text + (version_suffix or "")
    try:
        version = Version.parse(full)
    except InvalidVersion:
        version = None
    if version is not None:
        return _Iface(package, version, requirement_for(version))
    if version_suffix is None and _is_canon_version(version_text):
        # `@0.2`: any version compatible with the canonical one.
        return _Iface(package, None, VersionReq.parse("^" + version_text))
    raise _Unsupported(text)


def _is_canon_version(text: str) -> bool:
    parts = text.split(".")
    if not all(p.isdigit() and p.isascii() and (p == "0" or not p.startswith("0")) for p in parts):
        return False
    if len(parts) == 1:
        return parts[0] != "0"
    if len(parts) == 2:
        return parts[0] == "0" and parts[1] != "0"
    return len(parts) == 3 and parts[0] == "0" and parts[1] == "0"


def _interpret(walker: _Walker) -> ComponentInfo:
    imports = tuple(n.name for n in walker.top_imports)
    exports = tuple(n.name for n, _s, _i in walker.top_exports)
    is_wit_package = (
        not walker.top_imports
        and bool(walker.top_exports)
        and all(sort == 0x03 for _n, sort, _i in walker.top_exports)
        and all(kind == _T_COMPONENT for kind in walker.top_export_kinds)
    )

    refs: dict[tuple[PackageRef, Version | None, str], set[str]] = {}
    unsupported: set[str] = set()

    def add(name: _Name) -> None:
        for text, suffix in ((name.name, name.version_suffix), (name.implements, None)):
            if text is None:
                continue
            try:
                iface = _interface_name(text, suffix)
            except _Unsupported:
                unsupported.add(text)
                continue
            if iface is not None:
                key = (iface.package, iface.version, str(iface.requirement))
                refs.setdefault(key, set()).add(text)

    own: tuple[PackageRef, Version | None] | None = None
    if is_wit_package:
        # The package is named by the exports directly inside each exported component
        # type: `(export "a:pkg/api@0.1.0" ...)` (v2), or by the top-level export name
        # `a:pkg/wit` (v1).
        candidates: list[_Iface] = []
        for (name, _sort, index) in walker.top_exports:
            inner = walker.type_names.get(index, [])
            depth0 = [n for d, kind, n in inner if d == 0 and kind == "export"]
            # v1 names the package (without its version) in the top-level export name.
            names = [name.name] if ":" in name.name else [n.name for n in depth0]
            for text in names:
                try:
                    iface = _interface_name(text, None)
                except _Unsupported:
                    continue
                if iface is not None:
                    candidates.append(iface)
        if candidates:
            own = (candidates[0].package, candidates[0].version)
        for index in sorted(walker.type_names):
            for _d, _kind, n in walker.type_names[index]:
                add(n)
    else:
        for n in walker.top_imports:
            add(n)
        for n, _s, _i in walker.top_exports:
            add(n)
        for index in sorted(walker.type_names):
            for _d, _kind, n in walker.type_names[index]:
                add(n)

    foreign = []
    for (package, version, req), texts in refs.items():
        if own is not None and package == own[0] and (version is None or own[1] is None or version == own[1]):
            continue  # the package itself (another version of it would be a real dependency)
        foreign.append(ForeignPackage(package, version, VersionReq.parse(req), tuple(sorted(texts))))
    foreign.sort(key=lambda f: (f.package, f.version is not None, f.version.sort_key if f.version else (), str(f.requirement)))
    return ComponentInfo(
        kind="wit-package" if is_wit_package else "component",
        package=own[0] if own else None,
        version=own[1] if own else None,
        foreign=tuple(foreign),
        imports=imports,
        exports=exports,
        unsupported_names=tuple(sorted(unsupported)),
    )


def read_component(data: bytes | bytearray | memoryview, *, origin: str = "<bytes>") -> ComponentInfo:
    """Read a WIT package or component binary and list the packages it refers to.

    Raises ``InvalidContent`` (``not-wasm`` when ``data`` is not WebAssembly,
    ``invalid-component`` when it is malformed, a core module or another binary version),
    naming ``origin`` and the byte offset."""
    raw = bytes(data)
    walker = _Walker(raw)
    try:
        walker.walk()
    except _NotWasm:
        head = raw[:8].hex(" ") if raw else "empty"
        raise InvalidContent(
            f"{origin} is not WebAssembly (no '\\0asm' header)",
            details=[f"first bytes: {head}"],
            hint="expected a WIT package or component built by wasm-tools, wkg or cargo-component",
        ) from None
    except _Malformed as problem:
        raise InvalidContent(
            f"{origin} is not a valid component: {problem.message} (at byte {problem.offset})",
            details=[f"{len(raw)} bytes"],
            code="invalid-component",
        ) from None
    return _interpret(walker)


def read_component_file(path: str | os.PathLike[str]) -> ComponentInfo:
    """``read_component`` of a file (``LocalIOError`` when it cannot be read)."""
    shown = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise LocalIOError(f"cannot read {shown}: {exc.strerror or exc}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise InvalidContent(f"{shown} is larger than {_MAX_FILE_BYTES} bytes", code="invalid-component")
    return read_component(data, origin=shown)



# --- what publish puts into the OCI config and manifest (issue 15, as wkg / oci-wasm) ---------

#: the custom sections ``wasm-tools metadata add`` writes (wasm-metadata), read at the top level
METADATA_FIELDS = ("authors", "description", "licenses", "source", "homepage", "revision", "version")


@dataclass(frozen=True)
class PublishInfo:
    """What publishing needs from a binary: ``kind`` ("component", "wit-package" or "module"),
    the ``component`` block of the OCI config (``exports``, ``imports``; None for a core
    module), and the top-level metadata fields (``METADATA_FIELDS``) that are present."""

    kind: str
    exports: tuple[str, ...] | None
    imports: tuple[str, ...] | None
    metadata: dict[str, str]


def publish_info(data: bytes, *, origin: str = "<bytes>") -> PublishInfo:
    """The component block as oci-wasm's ``Component::from_raw_component`` builds it:

    * a component: the world's exports and imports, which are the component's top-level
      export and import names in order (``wasi:http/incoming-handler@0.2.3``, ``get``);
    * a WIT package: no imports; exports are every world's exports, every world's own name
      (``ns:pkg/world@v``) and every interface (``ns:pkg/iface@v``), sorted (oci-wasm
      collects them in a hash set);

    and the metadata ``wasm-tools metadata add`` wrote (``--description`` ...)."""
    if len(data) >= 8 and data[:4] == _MAGIC and data[4:8] == b"\x01\x00\x00\x00":
        return PublishInfo("module", None, None, _core_metadata(data))
    walker = _Walker(bytes(data))
    try:
        walker.walk()
    except (_NotWasm, _Malformed):
        read_component(data, origin=origin)  # raises the error worded for it
        raise
    metadata = {}
    for key in METADATA_FIELDS:
        raw = walker.custom.get(key)
        if raw is not None:
            try:
                metadata[key] = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
    info = _interpret(walker)
    if not info.is_wit_package:
        return PublishInfo("component", tuple(n.name for n, _s, _i in walker.top_exports),
                           tuple(n.name for n in walker.top_imports), metadata)
    exports: set[str] = set()
    for names in walker.type_names.values():
        top = [n for depth, way, n in names if depth == 0 and way == "export"]
        if not top:
            continue
        qualified = top[-1]
        exports.add(qualified.name)
        if qualified.kind == 0x04:  # a world: its own exports (depth 1)
            exports.update(n.name for depth, way, n in names if depth == 1 and way == "export")
    return PublishInfo("wit-package", tuple(sorted(exports)), (), metadata)


def _core_metadata(data: bytes) -> dict[str, str]:
    """The metadata custom sections of a core module (walked without parsing its contents)."""
    out: dict[str, str] = {}
    r = _Reader(data, 8, len(data))
    try:
        while not r.eof():
            sid = r.u8()
            size = r.uleb()
            if size > r.end - r.pos:
                break
            end = r.pos + size
            if sid == 0:
                body = _Reader(data, r.pos, end)
                name = body.name()
                if name in METADATA_FIELDS and name not in out:
                    try:
                        out[name] = data[body.pos:end].decode("utf-8")
                    except UnicodeDecodeError:
                        pass
            r.pos = end
    except _Malformed:
        pass
    return out
