"""The foreign packages a project's WIT refers to, found by a tokenizer-based scan.

A WIT package is the set of ``*.wit`` files directly inside one directory (``wit/`` by
convention); ``wit/deps/`` holds dependencies and is not part of the package, exactly as
``wit-parser``'s ``parse_dir`` reads it. ``scan_wit_dir`` reads those files and returns
every package they name in a *use path*:

    use wasi:io/streams@0.2.0.{input-stream};      interface- and top-level ``use``
    import wasi:http/outgoing-handler@0.2.3;        world ``import`` / ``export``
    import primary: wasi:keyvalue/store;            named import of an interface
    include wasi:cli/imports@0.2.0;                 world ``include``

The packages the scanned files declare themselves (``package ns:name@ver;`` and nested
``package ns:name { ... }`` blocks) are not foreign and are left out. Comments (``//``,
nested ``/* */``, doc comments) and string literals (``@external-id("...")``) are skipped.

Requirements follow wkg (``wit.rs``, ``packages_from_foreign_deps``): ``@x.y.z`` in WIT
means exactly that version (``=x.y.z``, pre-release included; build metadata is dropped as
Cargo does), and no version means ``*``. WIT allows whitespace and comments between the
tokens of a path; this scanner allows them too, like ``wit-parser``.

This is not a WIT parser: text that is not a valid use path right after ``use``,
``include``, ``import`` or ``export`` is reported as an ``InputError`` naming the file and
line, since ``wasm-tools`` would reject it as well; everything else is ignored. Nested
namespaces (``a:b:c/d``, a future WIT feature) cannot be expressed as a ``PackageRef`` and
are reported the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from ._errors import InputError, InvalidPackageRef, InvalidVersion, LocalIOError
from ._ref import PackageRef
from ._semver import Version, VersionReq

if TYPE_CHECKING:
    from ._resolver import Requirement

__all__ = ["WitLocation", "WitDependency", "WitScan", "scan_wit_dir", "scan_wit_text", "requirement_for"]

_MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, order=True)
class WitLocation:
    """Where a reference was written: ``path`` as it was given (``wit/world.wit``), 1-based
    ``line`` and ``column``."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class WitDependency:
    """One foreign package (at one version, or unversioned) and every place naming it."""

    package: PackageRef
    version: Version | None
    locations: tuple[WitLocation, ...]

    @property
    def requirement(self) -> VersionReq:
        """``=version`` for ``@version``, ``*`` without a version (as wkg does)."""
        return requirement_for(self.version)

    @property
    def location(self) -> WitLocation:
        """The first place (by path, line, column) naming this package."""
        return self.locations[0]

    def requested_by(self, project: str | None = None) -> str:
        """Who asked, for resolver messages: ``wit/world.wit:3`` or ``my-app wit/world.wit:3``."""
        where = str(self.location)
        return f"{project} {where}" if project else where

    def __str__(self) -> str:
        return f"{self.package}@{self.version}" if self.version is not None else str(self.package)


@dataclass(frozen=True)
class WitScan:
    """The result of scanning one WIT package directory (or one text).

    ``package``/``version`` come from the ``package ns:name@ver;`` declaration (None when no
    file declares one); ``declared`` lists every package declared in the scanned text,
    nested ``package ... { }`` blocks included; ``dependencies`` is sorted by package, then
    version (unversioned first)."""

    package: PackageRef | None
    version: Version | None
    declared: tuple[tuple[PackageRef, Version | None], ...]
    dependencies: tuple[WitDependency, ...]
    files: tuple[str, ...]

    def requirements(self, project: str | None = None) -> list["Requirement"]:
        """The dependencies as resolver root requirements (``requested_by`` is the first
        location, prefixed with ``project`` when given)."""
        from ._resolver import Requirement

        return [Requirement(d.package, d.requirement, d.requested_by(project)) for d in self.dependencies]


def requirement_for(version: Version | None) -> VersionReq:
    """The requirement wkg derives from a WIT version: ``=x.y.z[-pre]`` or ``*``."""
    if version is None:
        return VersionReq.STAR
    text = f"={version.major}.{version.minor}.{version.patch}"
    if version.pre:
        text += "-" + ".".join(map(str, version.pre))
    return VersionReq.parse(text)


# --- lexer ----------------------------------------------------------------------------

# Token kinds
_ID = "id"  # identifier or keyword (``%``-escaped identifiers are never keywords)
_EXPLICIT = "explicit-id"
_INT = "integer"
_STR = "string"
_PUNCT = "punct"
_OTHER = "other"

# WIT keywords (``wit-parser`` lexes them as their own tokens, never as identifiers).
_KEYWORDS = frozenset(
    "as async bool borrow char constructor enum error-context export f32 f64 flags float32 float64 from "
    "func future import include interface list map option own package record resource result s16 s32 "
    "s64 s8 static stream string tuple type u16 u32 u64 u8 use variant with world".split()
)
_PUNCT_CHARS = frozenset("=,:;(){}<>*/.@-+")


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    start: int
    end: int
    line: int
    column: int

    def is_punct(self, ch: str) -> bool:
        return self.kind == _PUNCT and self.text == ch

    def is_keyword(self, word: str) -> bool:
        return self.kind == _ID and self.text == word


class _Syntax(Exception):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


def _is_id_start(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def _is_id_continue(ch: str) -> bool:
    return _is_id_start(ch) or ("0" <= ch <= "9") or ch == "-"


def _tokens(text: str) -> Iterator[_Tok]:
    """WIT tokens without whitespace and comments (``wit-parser``'s lexer, simplified)."""
    n = len(text)
    i = 0
    line = 1
    line_start = 0
    while i < n:
        ch = text[i]
        if ch == "\n":
            i += 1
            line += 1
            line_start = i
            continue
        if ch in " \t\r\ufeff":
            i += 1
            continue
        if ch == "/" and i + 1 < n and text[i + 1] == "/":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch == "/" and i + 1 < n and text[i + 1] == "*":
            start_line, start_col = line, i - line_start + 1
            depth = 0
            while i < n:
                if text.startswith("/*", i):
                    depth += 1
                    i += 2
                elif text.startswith("*/", i):
                    depth -= 1
                    i += 2
                    if depth == 0:
                        break
                else:
                    if text[i] == "\n":
                        line += 1
                        line_start = i + 1
                    i += 1
            if depth:
                raise _Syntax(start_line, start_col, "unterminated block comment")
            continue
        column = i - line_start + 1
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    j += 1
                if j < n and text[j] == "\n":
                    raise _Syntax(line, column, "unterminated string literal")
                j += 1
            if j >= n:
                raise _Syntax(line, column, "unterminated string literal")
            yield _Tok(_STR, text[i : j + 1], i, j + 1, line, column)
            i = j + 1
            continue
        if ch == "%" and i + 1 < n and _is_id_start(text[i + 1]):
            j = i + 2
            while j < n and _is_id_continue(text[j]):
                j += 1
            yield _Tok(_EXPLICIT, text[i + 1 : j], i, j, line, column)
            i = j
            continue
        if _is_id_start(ch):
            j = i + 1
            while j < n and _is_id_continue(text[j]):
                j += 1
            yield _Tok(_ID, text[i:j], i, j, line, column)
            i = j
            continue
        if "0" <= ch <= "9":
            j = i + 1
            while j < n and "0" <= text[j] <= "9":
                j += 1
            yield _Tok(_INT, text[i:j], i, j, line, column)
            i = j
            continue
        if ch == "-" and i + 1 < n and text[i + 1] == ">":
            yield _Tok(_PUNCT, "->", i, i + 2, line, column)
            i += 2
            continue
        if ch in _PUNCT_CHARS:
            yield _Tok(_PUNCT, ch, i, i + 1, line, column)
            i += 1
            continue
        yield _Tok(_OTHER, ch, i, i + 1, line, column)
        i += 1


# --- scanner --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ref:
    package: PackageRef
    version: Version | None
    line: int
    column: int


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = list(_tokens(text))
        self.pos = 0
        self.refs: list[_Ref] = []
        self.declared: list[tuple[PackageRef, Version | None, int, int, bool]] = []  # (.., nested)

    # token access
    def peek(self, k: int = 0) -> _Tok | None:
        j = self.pos + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> _Tok | None:
        tok = self.peek()
        if tok is not None:
            self.pos += 1
        return tok

    def _fail(self, tok: _Tok | None, what: str) -> _Syntax:
        if tok is None:
            last = self.toks[-1] if self.toks else None
            line, col = (last.line, last.column) if last else (1, 1)
            return _Syntax(line, col, f"expected {what}, found the end of the file")
        return _Syntax(tok.line, tok.column, f"expected {what}, found {tok.text!r}")

    def ident(self, what: str = "an identifier") -> _Tok:
        tok = self.next()
        if tok is None or tok.kind not in (_ID, _EXPLICIT) or (tok.kind == _ID and tok.text in _KEYWORDS):
            raise self._fail(tok, what)
        return tok

    def is_ident(self, tok: _Tok | None) -> bool:
        return tok is not None and (tok.kind == _EXPLICIT or (tok.kind == _ID and tok.text not in _KEYWORDS))

    def is_version_part(self, tok: _Tok) -> bool:
        return tok.kind == _INT or (tok.kind == _ID and tok.text not in _KEYWORDS)

    # grammar pieces
    def version(self) -> tuple[Version, _Tok]:
        """``@`` already eaten: integer '.' integer '.' integer, then ``-``/``+`` identifier
        runs where a '.' only continues the version when an id/integer/'-' follows it
        (so ``@1.0.0.{x}`` ends before ``.{``), as ``wit-parser`` does."""
        first = self.next()
        if first is None or first.kind != _INT:
            raise self._fail(first, "a version after '@'")
        end = first
        for _ in range(2):
            dot = self.next()
            if dot is None or not dot.is_punct("."):
                raise self._fail(dot, "'.' in the version")
            num = self.next()
            if num is None or num.kind != _INT:
                raise self._fail(num, "a number in the version")
            end = num
        for prefix in ("-", "+"):
            tok = self.peek()
            if tok is None or not tok.is_punct(prefix):
                continue
            self.pos += 1
            end = tok
            while True:
                tok = self.peek()
                if tok is not None and (self.is_version_part(tok) or tok.is_punct("-")):
                    end = tok
                    self.pos += 1
                    continue
                if tok is not None and tok.is_punct("."):
                    after = self.peek(1)
                    if after is not None and (self.is_version_part(after) or after.is_punct("-")):
                        end = after
                        self.pos += 2
                        continue
                break
        text = self.text[first.start : end.end]
        try:
            return Version.parse(text), first
        except InvalidVersion as exc:
            raise _Syntax(first.line, first.column, exc.message) from None

    def package_ref(self, ns: _Tok, name: _Tok) -> PackageRef:
        try:
            return PackageRef(ns.text, name.text)
        except InvalidPackageRef:
            raise _Syntax(ns.line, ns.column, f"{ns.text}:{name.text} is not a valid package name") from None

    def use_path(self) -> None:
        """``id`` (local) or ``ns:pkg/iface[@version]`` (recorded as a reference)."""
        first = self.ident("an interface name or 'namespace:package/interface'")
        colon = self.peek()
        if colon is None or not colon.is_punct(":"):
            return  # a name defined in this package
        self.pos += 1
        pkg = self.ident("a package name after ':'")
        sep = self.next()
        if sep is not None and sep.is_punct(":"):
            raise _Syntax(
                first.line,
                first.column,
                "nested namespaces ('a:b:c/d') cannot be expressed as a package reference",
            )
        if sep is None or not sep.is_punct("/"):
            raise self._fail(sep, f"'/' after {first.text}:{pkg.text}")
        self.ident("an interface or world name after '/'")
        version = None
        at = self.peek()
        if at is not None and at.is_punct("@"):
            self.pos += 1
            version, _ = self.version()
        self.refs.append(_Ref(self.package_ref(first, pkg), version, first.line, first.column))

    def extern(self) -> None:
        """After ``import``/``export``: ``id: func..``, ``id: interface {``, ``id: use-path``
        or ``use-path`` (``wit-parser``'s ``ExternKind::parse``)."""
        first = self.peek()
        second = self.peek(1)
        if self.is_ident(first) and second is not None and second.is_punct(":"):
            third = self.peek(2)
            if third is not None and (third.is_keyword("func") or third.is_keyword("async") or third.is_keyword("interface")):
                return  # an inline function or interface; its `use`s are scanned on their own
            fourth = self.peek(3)
            qualified = self.is_ident(third) and fourth is not None and fourth.is_punct("/")
            if not qualified:
                self.pos += 2  # `label:`, then a use path
        self.use_path()

    def package_decl(self) -> None:
        ns = self.ident("a namespace after 'package'")
        colon = self.next()
        if colon is None or not colon.is_punct(":"):
            raise self._fail(colon, f"':' after 'package {ns.text}'")
        name = self.ident("a package name")
        nxt = self.peek()
        if nxt is not None and nxt.is_punct(":"):
            raise _Syntax(ns.line, ns.column, "nested namespaces ('a:b:c') cannot be expressed as a package reference")
        version = None
        if nxt is not None and nxt.is_punct("@"):
            self.pos += 1
            version, _ = self.version()
        end = self.peek()
        nested = end is not None and end.is_punct("{")
        if end is None or not (nested or end.is_punct(";")):
            raise self._fail(end, "';' or '{' after the package name")
        self.declared.append((self.package_ref(ns, name), version, ns.line, ns.column, nested))

    def run(self) -> None:
        while True:
            tok = self.next()
            if tok is None:
                return
            if tok.kind != _ID:
                continue
            word = tok.text
            if word == "use" or word == "include":
                self.use_path()
            elif word == "import" or word == "export":
                self.extern()
            elif word == "package":
                self.package_decl()


def _parse(text: str, origin: str) -> _Parser:
    try:
        parser = _Parser(text)
        parser.run()
    except _Syntax as problem:
        raise InputError(
            f"cannot read the WIT file {origin}: {problem.message} (line {problem.line}, column {problem.column})",
            details=_excerpt(text, problem.line, problem.column),
            code="invalid-wit",
        ) from None
    return parser


def _excerpt(text: str, line: int, column: int) -> list[str]:
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return []
    shown = lines[line - 1].expandtabs(1)
    if len(shown) > 120:
        return [f"{line} | {shown[:117]}..."]
    prefix = f"{line} | "
    return [prefix + shown, " " * (len(prefix) + column - 1) + "^"]


def _collect(parsed: Iterable[tuple[str, _Parser]]) -> WitScan:
    files: list[str] = []
    declared: dict[tuple[PackageRef, Version | None], None] = {}
    root: tuple[PackageRef, Version | None, str, int] | None = None
    refs: dict[tuple[PackageRef, Version | None], set[WitLocation]] = {}
    for origin, parser in parsed:
        files.append(origin)
        for package, version, line, _col, nested in parser.declared:
            declared[(package, version)] = None
            if nested:
                continue
            if root is None:
                root = (package, version, origin, line)
            elif (root[0], root[1]) != (package, version):
                first = f"{root[0]}@{root[1]}" if root[1] is not None else str(root[0])
                this = f"{package}@{version}" if version is not None else str(package)
                raise InputError(
                    f"the WIT files disagree on the package name: {first} ({root[2]}:{root[3]}) "
                    f"and {this} ({origin}:{line})",
                    hint="every file of a WIT package that has a 'package' line must name the same package",
                    code="invalid-wit",
                )
        for ref in parser.refs:
            refs.setdefault((ref.package, ref.version), set()).add(WitLocation(origin, ref.line, ref.column))

    def is_declared(package: PackageRef, version: Version | None) -> bool:
        # A path to a declared package names that package when it carries no version or
        # the declared one (a reference to another version of it is a real dependency).
        return any(p == package and (version is None or v == version) for p, v in declared)

    deps = [
        WitDependency(package, version, tuple(sorted(locations)))
        for (package, version), locations in refs.items()
        if not is_declared(package, version)
    ]
    deps.sort(key=lambda d: (d.package, d.version is not None, d.version.sort_key if d.version else ()))
    return WitScan(
        package=root[0] if root else None,
        version=root[1] if root else None,
        declared=tuple(declared),
        dependencies=tuple(deps),
        files=tuple(files),
    )


def scan_wit_text(text: str, *, origin: str = "<wit>") -> WitScan:
    """Scan the text of one WIT file; ``origin`` names it in locations and errors."""
    return _collect([(origin, _parse(text, origin))])


def scan_wit_dir(path: str | os.PathLike[str] = "wit") -> WitScan:
    """Scan the WIT package in directory ``path`` (its ``*.wit`` files, ``deps/`` excluded),
    or a single ``.wit`` file. Locations use ``path`` as given (``wit/world.wit``).

    Raises ``InputError`` (code ``invalid-wit``) for text that is not WIT, naming the file
    and line, and ``LocalIOError`` when the directory or a file cannot be read."""
    root = Path(path)
    shown_root = os.fspath(path)
    try:
        if root.is_dir():
            names = sorted(p.name for p in root.iterdir() if p.suffix == ".wit" and p.is_file())
            entries = [(root / name, _join(shown_root, name)) for name in names]
        elif root.is_file():
            entries = [(root, shown_root)]
        else:
            raise LocalIOError(
                f"no WIT directory at {shown_root}",
                hint="create it, or pass the directory that holds the project's .wit files",
            )
    except OSError as exc:
        raise LocalIOError(f"cannot read the WIT directory {shown_root}: {exc.strerror or exc}") from None
    parsed = []
    for file, shown in entries:
        try:
            with open(file, "rb") as f:
                data = f.read(_MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise LocalIOError(f"cannot read the WIT file {shown}: {exc.strerror or exc}") from None
        if len(data) > _MAX_FILE_BYTES:
            raise InputError(f"the WIT file {shown} is larger than {_MAX_FILE_BYTES} bytes", code="invalid-wit")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"the WIT file {shown} is not UTF-8 (byte {exc.start})", code="invalid-wit"
            ) from None
        parsed.append((shown, _parse(text, shown)))
    return _collect(parsed)


def _join(directory: str, name: str) -> str:
    directory = directory.replace(os.sep, "/") if os.sep != "/" else directory
    return f"{directory.rstrip('/')}/{name}" if directory not in ("", ".") else name


# --- what wit/deps/ already holds (issue 15: one package, one form) ------------------------

#: a file pkgloader puts into a WIT text dependency directory it wrote (wit-parser reads only
#: ``*.wit`` files), so that sync may replace or remove that directory later
MANAGED_MARKER = ".pkgloader-managed"


@dataclass(frozen=True)
class DepsEntry:
    """One entry of ``wit/deps/`` and the packages it defines. ``form`` is ``"wasm"`` (a
    binary WIT package), ``"component"`` (which wasm-tools refuses there), ``"wit"`` (a
    directory of ``.wit`` files, or one ``.wit`` file)."""

    path: Path
    form: str
    packages: tuple[tuple[PackageRef, Version | None], ...]

    @property
    def managed_dir(self) -> bool:
        return self.path.is_dir() and (self.path / MANAGED_MARKER).is_file()

    def describe(self) -> str:
        what = {"wasm": "a binary WIT package", "component": "a component", "wit": "WIT text"}[self.form]
        return f"{self.path} ({what})"

    def holds(self, package: PackageRef, version: Version | None) -> bool:
        return any(p == package and (v is None or version is None or v == version) for p, v in self.packages)


def deps_inventory(deps: Path) -> list[DepsEntry]:
    """What each entry of ``deps`` defines; entries that are neither WIT nor wasm (or cannot be
    read) are left out, as they are the user's and sync never touches them."""
    out: list[DepsEntry] = []
    try:
        children = sorted(deps.iterdir())
    except OSError:
        return out
    for child in children:
        try:
            if child.is_dir():
                scan = scan_wit_dir(child)
                if scan.declared:
                    out.append(DepsEntry(child, "wit", tuple(p for p in scan.declared)))
            elif child.suffix == ".wit" and child.is_file():
                scan = scan_wit_dir(child)
                if scan.declared:
                    out.append(DepsEntry(child, "wit", tuple(scan.declared)))
            elif child.suffix == ".wasm" and child.is_file():
                from ._component import read_component_file

                info = read_component_file(child)
                if info.package is not None:
                    out.append(DepsEntry(child, "wasm", ((info.package, info.version),)))
                elif not info.is_wit_package:
                    out.append(DepsEntry(child, "component", ()))
        except Exception:  # noqa: BLE001 - not WIT, not wasm: the user's file, left alone
            continue
    return out
