"""Versions and version requirements: SemVer 2.0.0 versions, Cargo requirement rules.

``Version`` is a strict SemVer 2.0.0 version (https://semver.org): no leading ``v``, no
leading zeros, no surrounding whitespace. Its ordering is SemVer *precedence* (§11), which
ignores build metadata, so ``==``, ``<`` and ``hash()`` ignore build metadata as well. Use
``Version.sort_key`` when a total order that also separates build metadata is needed.

``VersionReq`` is a version requirement with the semantics of the Rust ``semver`` crate
(``semver::VersionReq``, used by Cargo and wkg): comma-separated comparators, a bare
version means ``^version``, partial versions and wildcards, and the pre-release rule (a
pre-release version only matches when some comparator names a pre-release of the same
``major.minor.patch``). Its accepted syntax, canonical ``str()`` and ``matches()`` follow
that crate exactly, including its edge cases; only the error messages differ.

Numbers are limited to 0..2**64-1 like in the crate (and therefore in wkg and Cargo), so
every version pkgloader accepts can be handled by those tools as well.

Terminology: a *comparator* is one ``op version`` term of a requirement (``>=0.2``); a
*partial* version leaves out the minor and/or patch number (``0.2``, ``1``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar, Iterable, Iterator, NoReturn, Union

from ._lazyre import LazyPattern
from ._errors import InputError, InvalidVersion, InvalidVersionReq

__all__ = ["Version", "VersionReq", "Comparator"]

PreId = Union[int, str]

_U64_MAX = 2**64 - 1
_MAX_COMPARATORS = 32
_DIGITS = frozenset("0123456789")
_IDENT_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")
_IDENT_RE = LazyPattern(r"[0-9A-Za-z-]+")
_WILDCARDS = frozenset("*xX")

_VERSION_HINT = "write a version such as 1.2.3, 1.0.0-rc.1 or 1.0.0+build.5"
_REQ_HINT = "write a requirement such as 0.2, ^0.2.1, =0.2.0, >=0.2, <0.3 or *"

# Strict SemVer 2.0.0 (the grammar of semver.org, ASCII digits only). The fast path of
# Version.parse; _scan_version() accepts the same language and explains rejections.
_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_VERSION_RE = LazyPattern(
    rf"({_NUM})\.({_NUM})\.({_NUM})"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


# --- error reporting ---------------------------------------------------------------


class _Syntax(Exception):
    """Internal: a parse failure at ``pos`` (0-based) of the text being parsed.

    Messages count positions from 1 (the first character is "position 1"), and the caret
    line in the details points at the same character.

    Turned into a public error by ``_input_error``; ``_ref`` shifts ``pos`` to point into a
    longer input (``wasi:http@<req>``).
    """

    def __init__(
        self, pos: int, problem: str, *, note: str = "", hint: str | None = None, at_end: bool = False
    ) -> None:
        super().__init__(problem)
        self.pos = pos
        self.problem = problem
        self.note = note
        self.hint = hint
        self.at_end = at_end

    def reason(self, offset: int = 0) -> str:
        text = self.problem if self.at_end else f"{self.problem} at position {self.pos + offset + 1}"
        return f"{text}; {self.note}" if self.note else text


def _quote(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message: Python repr (escapes control characters), shortened."""
    if len(text) > limit:
        head = repr(text[: limit - 3])
        return head[:-1] + "..." + head[-1]
    return repr(text)


def _char(ch: str) -> str:
    return repr(ch)


def _unexpected(ch: str) -> str:
    return "unexpected whitespace" if ch.isspace() else f"unexpected character {_char(ch)}"


def _cell(ch: str) -> tuple[str, int]:
    import unicodedata  # error messages only

    if ch.isprintable():
        if unicodedata.combining(ch):
            return ch, 0
        return ch, 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    shown = repr(ch)[1:-1]  # \t, \x00, \u200b ...
    return shown, len(shown)


def _pointer(text: str, pos: int, window: int = 40) -> list[str]:
    """Two detail lines: ``text`` (control characters escaped) and a caret under ``pos``.

    ``pos`` may equal ``len(text)`` (the caret then stands after the last character).
    Long inputs are cut to a window around ``pos``.
    """
    if not text:
        return []
    start, end = 0, len(text)
    if end > 2 * window + 20:
        start, end = max(0, pos - window), min(end, pos + window)
    cells = [_cell(ch) for ch in text[start:end]]
    line = ("..." if start else "") + "".join(s for s, _ in cells) + ("..." if end < len(text) else "")
    column = (3 if start else 0) + sum(w for _, w in cells[: pos - start])
    return [line, " " * column + "^"]


def _input_error(
    cls: type[InputError],
    what: str,
    text: str,
    problem: _Syntax,
    *,
    whole: str | None = None,
    offset: int = 0,
    default_hint: str | None = None,
) -> InputError:
    """The public error for ``problem`` found in ``text`` (which starts at ``offset`` of
    ``whole`` when it was cut out of a longer input)."""
    where = "" if whole is None else f" in {_quote(whole)}"
    message = f"invalid {what} {_quote(text)}{where}: {problem.reason(offset)}"
    details = _pointer(text if whole is None else whole, problem.pos + offset)
    return cls(message, details=details, hint=problem.hint or default_hint)


# --- scanning ------------------------------------------------------------------------


def _scan_number(text: str, i: int, what: str) -> tuple[int, int]:
    """A numeric identifier (no leading zero, at most 2**64-1) at ``i``: (value, end)."""
    n = len(text)
    j = i
    while j < n and text[j] in _DIGITS:
        j += 1
    if j == i:
        if i == n:
            raise _Syntax(i, "unexpected end of input", note=f"expected the {what}", at_end=True)
        raise _Syntax(i, _unexpected(text[i]), note=f"expected the {what}")
    digits = text[i:j]
    if j - i > 1 and text[i] == "0":
        raise _Syntax(i, f"leading zero in {what} {_quote(digits)}")
    if j - i > 19 and (j - i > 20 or int(digits) > _U64_MAX):
        raise _Syntax(i, f"{what} {_quote(digits, 40)} is larger than {_U64_MAX}")
    return int(digits), j


def _scan_identifiers(text: str, i: int, pre: bool) -> tuple[tuple[PreId, ...], int]:
    """Dot-separated pre-release (``pre``) or build identifiers at ``i``: (identifiers, end).

    Stops at the first character that cannot continue them; the caller decides whether
    that character is allowed there.
    """
    kind = "pre-release identifier" if pre else "build metadata identifier"
    n = len(text)
    out: list[PreId] = []
    while True:
        start = j = i
        while j < n and text[j] in _IDENT_CHARS:
            j += 1
        if j == start:
            if j == n:
                raise _Syntax(j, f"{kind} is empty", at_end=True)
            if text[j] == "." or (pre and text[j] == "+"):
                raise _Syntax(j, f"{kind} is empty")
            raise _Syntax(j, _unexpected(text[j]), note=f"expected a {kind}")
        ident = text[start:j]
        if pre and ident.isdigit():
            if len(ident) > 1 and ident[0] == "0":
                raise _Syntax(start, f"leading zero in numeric {kind} {_quote(ident, 40)}")
            try:
                out.append(int(ident))
            except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
                raise _Syntax(start, f"numeric {kind} is too long ({len(ident)} digits)") from None
        else:
            out.append(ident)
        if j < n and text[j] == ".":
            i = j + 1
            continue
        return tuple(out), j


def _version_hint(text: str) -> str | None:
    """A targeted hint for a rejected version text, when an obvious fix exists."""
    stripped = text.strip()
    candidates: list[tuple[str, str]] = []
    if stripped != text:
        candidates.append((stripped, "remove the surrounding whitespace: {}"))
    if stripped[:1] in ("v", "V"):
        candidates.append((stripped[1:], "drop the leading 'v': {}"))
    parts = stripped.split(".")
    if 1 <= len(parts) < 3 and all(p.isdigit() and p.isascii() for p in parts):
        full = ".".join(parts + ["0"] * (3 - len(parts)))
        candidates.append((full, "a version has three numbers: {}"))
    for fixed, template in candidates:
        if _scan_ok(fixed):
            return template.format(fixed)
    return None


def _scan_ok(text: str) -> bool:
    try:
        _scan_version(text)
    except _Syntax:
        return False
    return True


def _scan_version(text: str) -> tuple[int, int, int, tuple[PreId, ...], tuple[str, ...]]:
    """Parse a full version by hand; raises _Syntax pointing at the first bad character."""
    if not text:
        raise _Syntax(0, "empty string", at_end=True)
    major, i = _scan_number(text, 0, "major version number")
    minor, i = _scan_number(text, _scan_dot(text, i, "minor version number"), "minor version number")
    patch, i = _scan_number(text, _scan_dot(text, i, "patch version number"), "patch version number")
    pre: tuple[PreId, ...] = ()
    build: tuple[PreId, ...] = ()
    expected = "expected '-', '+' or the end"
    if i < len(text) and text[i] == "-":
        pre, i = _scan_identifiers(text, i + 1, pre=True)
        expected = "expected '.', '+' or the end"
    if i < len(text) and text[i] == "+":
        build, i = _scan_identifiers(text, i + 1, pre=False)
        expected = "expected '.' or the end"
    if i < len(text):
        raise _Syntax(i, _unexpected(text[i]), note=expected)
    return major, minor, patch, pre, build  # type: ignore[return-value]


def _scan_dot(text: str, i: int, what: str) -> int:
    """The index after the '.' at ``i`` that introduces the ``what``."""
    if i < len(text) and text[i] == ".":
        return i + 1
    note = f"expected '.' and the {what}"
    if i == len(text):
        raise _Syntax(i, "unexpected end of input", note=note, at_end=True)
    raise _Syntax(i, _unexpected(text[i]), note=note)


def _skip_spaces(text: str, i: int) -> int:
    # Like the semver crate: only U+0020 separates tokens of a requirement.
    n = len(text)
    while i < n and text[i] == " ":
        i += 1
    return i


_OPS_2 = (">=", "<=")
_OPS_1 = frozenset("=><~^")


def _scan_comparator(text: str, i: int) -> tuple[Comparator, int]:
    """One comparator at ``i`` (spaces already skipped): (comparator, index after it and
    the spaces that follow)."""
    n = len(text)
    if text.startswith(_OPS_2, i):
        op, default = text[i : i + 2], False
        i += 2
    elif i < n and text[i] in _OPS_1:
        op, default = text[i], False
        i += 1
    else:
        op, default = "^", True
    i = _skip_spaces(text, i)
    if i < n and text[i] in ("v", "V") and i + 1 < n and text[i + 1] in _DIGITS:
        raise _Syntax(
            i,
            f"unexpected character {_char(text[i])}",
            note="expected the major version number",
            hint="drop the leading 'v' (write 1.2, not v1.2)",
        )
    if i == n and not default:
        raise _Syntax(i, "unexpected end of input", note=f"expected a version after {op!r}", at_end=True)
    major, i = _scan_number(text, i, "major version number")
    minor: int | None = None
    patch: int | None = None
    wildcard = False
    if i < n and text[i] == ".":
        i += 1
        if i < n and text[i] in _WILDCARDS:
            wildcard = True
            if default:
                op = "*"
            i += 1
        else:
            minor, i = _scan_number(text, i, "minor version number")
        if i < n and text[i] == ".":
            i += 1
            if i < n and text[i] in _WILDCARDS:
                if default:
                    op = "*"
                i += 1
                wildcard = True
            elif wildcard:
                if i == n:
                    raise _Syntax(i, "unexpected end of input", note="expected '*' after a wildcard", at_end=True)
                raise _Syntax(
                    i,
                    f"unexpected character {_char(text[i])} after a wildcard",
                    note="only '*' can follow a wildcard",
                )
            else:
                patch, i = _scan_number(text, i, "patch version number")
    if wildcard and i < n and text[i] in _IDENT_CHARS:
        raise _Syntax(
            i,
            f"unexpected character {_char(text[i])} after a wildcard",
            note="expected ',' or the end",
        )
    pre: tuple[PreId, ...] = ()
    if i < n and text[i] in "-+" and patch is None:
        part = "a pre-release" if text[i] == "-" else "build metadata"
        raise _Syntax(
            i,
            f"{part} needs a full version (major.minor.patch)",
            hint="write all three numbers, e.g. >=1.2.0-rc.1",
        )
    if i < n and text[i] == "-":
        pre, i = _scan_identifiers(text, i + 1, pre=True)
    if i < n and text[i] == "+":
        _, i = _scan_identifiers(text, i + 1, pre=False)  # accepted and ignored, like Cargo
    return Comparator._make(op, major, minor, patch, pre), _skip_spaces(text, i)


def _expected_comma(text: str, i: int) -> _Syntax:
    ch = text[i]
    hint: str | None
    if ch == "|":
        hint = "alternatives ('||') are not supported; a requirement is one range, e.g. >=0.2, <0.4"
    elif ch == "-" and i > 0 and text[i - 1] == " ":
        hint = "hyphen ranges are not supported; write >=LOW, <=HIGH instead of LOW - HIGH"
    elif ch in "<>=~^" or ch in _DIGITS:
        hint = "separate comparators with ',', e.g. >=0.2, <0.3"
    else:
        hint = None
    return _Syntax(i, f"expected ',' between comparators, found {_char(ch)}", hint=hint)


def _scan_req(text: str) -> tuple[Comparator, ...]:
    """Parse a requirement by hand; raises _Syntax pointing at the first bad character."""
    n = len(text)
    i = _skip_spaces(text, 0)
    if i == n:
        raise _Syntax(i, "empty requirement", at_end=True)
    if text[i] in _WILDCARDS and not (text[i] != "*" and i + 1 < n and text[i + 1].isalpha()):
        j = _skip_spaces(text, i + 1)
        if j == n:
            return ()
        if text[j] == ",":
            raise _Syntax(
                i,
                f"wildcard {_char(text[i])} must be the only comparator",
                hint="'*' matches every stable version; drop it or the other comparators",
            )
        raise _Syntax(
            j,
            f"unexpected character {_char(text[j])} after a wildcard",
            note="write '*' alone, or a version with a wildcard such as 1.*",
        )
    comparators: list[Comparator] = []
    while True:
        if i < n and text[i] in _WILDCARDS:
            after = _skip_spaces(text, i + 1)
            if after == n or text[after] == ",":
                raise _Syntax(
                    i,
                    f"wildcard {_char(text[i])} must be the only comparator",
                    hint="'*' matches every stable version; drop it or the other comparators",
                )
        if i == n:
            raise _Syntax(i, "unexpected end of input", note="expected a comparator after ','", at_end=True)
        comparator, i = _scan_comparator(text, i)
        comparators.append(comparator)
        if i == n:
            return tuple(comparators)
        if text[i] != ",":
            raise _expected_comma(text, i)
        if len(comparators) == _MAX_COMPARATORS:
            raise _Syntax(i, f"more than {_MAX_COMPARATORS} comparators")
        i = _skip_spaces(text, i + 1)


# --- Version -------------------------------------------------------------------------


_RELEASE = (1,)
_setattr = object.__setattr__
_new = object.__new__


def _pre_key(pre: tuple[PreId, ...]) -> tuple:
    """Precedence key of a pre-release (SemVer §11.4); a release sorts above every
    pre-release of the same major.minor.patch."""
    if not pre:
        return _RELEASE
    return (0, *[(0, p) if type(p) is int else (1, p) for p in pre])


def _check_number(value: object, what: str) -> int:
    if type(value) is not int:
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= _U64_MAX:
        raise InvalidVersion(f"invalid version: {what} {value} is not between 0 and {_U64_MAX}")
    return value


def _check_pre(pre: Iterable[PreId]) -> tuple[PreId, ...]:
    out: list[PreId] = []
    for p in pre:
        if type(p) is int:
            if p < 0:
                raise InvalidVersion(f"invalid version: pre-release identifier {p} is negative")
            out.append(p)
        elif isinstance(p, str) and _IDENT_RE.fullmatch(p):
            if p.isdigit():
                if len(p) > 1 and p[0] == "0":
                    raise InvalidVersion(f"invalid version: leading zero in numeric pre-release identifier {p!r}")
                out.append(int(p))
            else:
                out.append(str(p))
        elif isinstance(p, str):
            raise InvalidVersion(
                f"invalid version: pre-release identifier {p!r} is not made of [0-9A-Za-z-]",
                hint=_VERSION_HINT,
            )
        else:
            raise TypeError(f"pre-release identifiers must be int or str, not {type(p).__name__}")
    return tuple(out)


def _check_build(build: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for b in build:
        if not isinstance(b, str):
            raise TypeError(f"build identifiers must be str, not {type(b).__name__}")
        if not _IDENT_RE.fullmatch(b):
            raise InvalidVersion(
                f"invalid version: build metadata identifier {b!r} is not made of [0-9A-Za-z-]",
                hint=_VERSION_HINT,
            )
        out.append(str(b))
    return tuple(out)


class Version:
    """An immutable SemVer 2.0.0 version.

    >>> v = Version.parse("1.2.3-rc.1+build.5")
    >>> v.major, v.minor, v.patch, v.pre, v.build
    (1, 2, 3, ('rc', 1), ('build', '5'))
    >>> v < Version.parse("1.2.3")
    True

    Ordering, equality and hashing follow SemVer precedence and ignore build metadata:
    ``1.0.0+a == 1.0.0+b``. ``sort_key`` orders by precedence, then build metadata.
    """

    __slots__ = ("major", "minor", "patch", "pre", "build", "_key", "_str")

    major: int
    minor: int
    patch: int
    pre: tuple[PreId, ...]
    build: tuple[str, ...]
    _key: tuple[Any, ...]
    _str: str | None

    def __init__(
        self,
        major: int,
        minor: int,
        patch: int,
        pre: Iterable[PreId] = (),
        build: Iterable[str] = (),
    ) -> None:
        """A version from its parts. Numeric pre-release identifiers given as strings
        (``"1"``) are stored as ints, so ``Version(1, 0, 0, ("rc", "1")) == Version.parse("1.0.0-rc.1")``."""
        major = _check_number(major, "major version number")
        minor = _check_number(minor, "minor version number")
        patch = _check_number(patch, "patch version number")
        pre = _check_pre(pre)
        _setattr(self, "major", major)
        _setattr(self, "minor", minor)
        _setattr(self, "patch", patch)
        _setattr(self, "pre", pre)
        _setattr(self, "build", _check_build(build))
        _setattr(self, "_key", (major, minor, patch, _pre_key(pre)))
        _setattr(self, "_str", None)

    @classmethod
    def _make(
        cls,
        major: int,
        minor: int,
        patch: int,
        pre: tuple[PreId, ...] = (),
        build: tuple[str, ...] = (),
        text: str | None = None,
    ) -> Version:
        """Internal: a Version from parts already known to be valid (the fast path)."""
        self = _new(cls)
        _setattr(self, "major", major)
        _setattr(self, "minor", minor)
        _setattr(self, "patch", patch)
        _setattr(self, "pre", pre)
        _setattr(self, "build", build)
        _setattr(self, "_key", (major, minor, patch, _pre_key(pre) if pre else _RELEASE))
        _setattr(self, "_str", text)
        return self

    # -- parsing -------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse a strict SemVer 2.0.0 version such as ``1.2.3``, ``1.0.0-rc.1+build.5``.

        Raises ``InvalidVersion`` (a ``ValueError``) pointing at the first bad character.
        """
        if not isinstance(text, str):
            raise TypeError(f"Version.parse() needs a str, not {type(text).__name__}")
        try:
            return _parse_version(text)
        except _Syntax as problem:
            raise _input_error(
                InvalidVersion, "version", text, problem, default_hint=_version_hint(text) or _VERSION_HINT
            ) from None

    @classmethod
    def from_tag(cls, tag: str) -> Version | None:
        """The version an OCI tag names, or None when the tag is not a version.

        OCI tags cannot contain ``+``, so build metadata is written after ``_``
        (``1.2.3_build.5`` is ``1.2.3+build.5``; the Helm convention). ``latest``,
        ``v1.0.0``, ``sha256-abc.sig`` and tags with more than one ``_`` give None.
        A ``+`` is read as written (``1.2.3+build.5``), so the plain version text of a
        file name or a non-OCI listing works too.
        """
        return _version_from_tag(tag) if isinstance(tag, str) else None

    def to_tag(self) -> str:
        """This version as an OCI tag (``+`` written as ``_``)."""
        return str(self).replace("+", "_")

    # -- properties ----------------------------------------------------------------

    @property
    def is_prerelease(self) -> bool:
        return bool(self.pre)

    @property
    def sort_key(self) -> tuple:
        """A key for a deterministic total order: precedence, then the build metadata
        string (``1.0.0 < 1.0.0+a < 1.0.0+b < 1.0.1``)."""
        return (self._key, ".".join(self.build))

    @property
    def selection_key(self) -> tuple:
        """The key requirements select by (the highest wins): precedence, then no build
        metadata over any, then the lexically lowest build (``1.0.0+b < 1.0.0+a < 1.0.0``)."""
        build = ".".join(self.build)
        return (self._key, not build, tuple(-ord(c) for c in build) + (1,))

    # -- value behaviour -----------------------------------------------------------

    def __str__(self) -> str:
        text = self._str
        if text is None:
            text = f"{self.major}.{self.minor}.{self.patch}"
            if self.pre:
                text += "-" + ".".join(map(str, self.pre))
            if self.build:
                text += "+" + ".".join(self.build)
            _setattr(self, "_str", text)
        return text

    def __repr__(self) -> str:
        return f"<Version({str(self)!r})>"

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key != other._key

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __le__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key <= other._key

    def __gt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key > other._key

    def __ge__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key >= other._key

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Version is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Version is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple:
        return (Version, (self.major, self.minor, self.patch, self.pre, self.build))


@lru_cache(maxsize=4096)
def _parse_version(text: str) -> Version:
    m = _VERSION_RE.fullmatch(text)
    if m is not None:
        major, minor, patch, pre_text, build_text = m.groups()
        if len(major) < 20 and len(minor) < 20 and len(patch) < 20:
            try:
                pre = tuple(int(p) if p.isdigit() else p for p in pre_text.split(".")) if pre_text else ()
            except ValueError:  # a numeric identifier too long for int(); let the scanner say so
                pass
            else:
                build = tuple(build_text.split(".")) if build_text else ()
                return Version._make(int(major), int(minor), int(patch), pre, build, text)
    major_, minor_, patch_, pre_, build_ = _scan_version(text)  # raises _Syntax for bad input
    return Version._make(major_, minor_, patch_, pre_, build_, text)


@lru_cache(maxsize=4096)
def _version_from_tag(tag: str) -> Version | None:
    underscores = tag.count("_")
    if underscores > 1:
        return None
    try:
        return _parse_version(tag.replace("_", "+") if underscores else tag)
    except _Syntax:
        return None


# --- VersionReq ------------------------------------------------------------------------


class Comparator:
    """One term of a requirement: an operator and a (possibly partial) version.

    ``op`` is one of ``=``, ``>``, ``>=``, ``<``, ``<=``, ``~``, ``^`` or ``*`` (a bare
    wildcard version such as ``1.*`` or ``1.2.*``). ``minor`` and ``patch`` are None when
    left out; ``pre`` can only be non-empty when ``patch`` is given. Build metadata is
    accepted by the parser and dropped, like Cargo does.
    """

    __slots__ = ("op", "major", "minor", "patch", "pre", "_pre_key")

    op: str
    major: int
    minor: int | None
    patch: int | None
    pre: tuple[PreId, ...]
    _pre_key: tuple[Any, ...]

    _OPS: ClassVar[frozenset[str]] = frozenset(("=", ">", ">=", "<", "<=", "~", "^", "*"))

    def __init__(
        self,
        op: str,
        major: int,
        minor: int | None = None,
        patch: int | None = None,
        pre: Iterable[PreId] = (),
    ) -> None:
        if op not in self._OPS:
            raise ValueError(f"unknown comparator operator {op!r}")
        major = _check_number(major, "major version number")
        if minor is not None:
            minor = _check_number(minor, "minor version number")
        if patch is not None:
            patch = _check_number(patch, "patch version number")
            if minor is None:
                raise ValueError("a comparator with a patch number needs a minor number")
        pre = _check_pre(pre)
        if pre and patch is None:
            raise ValueError("a pre-release needs a full version (major.minor.patch)")
        if op == "*" and patch is not None:
            raise ValueError("a wildcard comparator leaves out the minor or patch number")
        self._init(op, major, minor, patch, pre)

    def _init(self, op: str, major: int, minor: int | None, patch: int | None, pre: tuple[PreId, ...]) -> None:
        _setattr(self, "op", op)
        _setattr(self, "major", major)
        _setattr(self, "minor", minor)
        _setattr(self, "patch", patch)
        _setattr(self, "pre", pre)
        _setattr(self, "_pre_key", _pre_key(pre))

    @classmethod
    def _make(cls, op: str, major: int, minor: int | None, patch: int | None, pre: tuple[PreId, ...]) -> Comparator:
        self = cls.__new__(cls)
        self._init(op, major, minor, patch, pre)
        return self

    # -- evaluation: a port of semver::eval (crate semver 1.0) ---------------------

    def _matches_impl(self, v: Version) -> bool:
        """Whether ``v`` satisfies this comparator, before the pre-release rule."""
        op = self.op
        if op == "=" or op == "*":
            return self._exact(v)
        if op == ">":
            return self._greater(v)
        if op == ">=":
            return self._exact(v) or self._greater(v)
        if op == "<":
            return self._less(v)
        if op == "<=":
            return self._exact(v) or self._less(v)
        if op == "~":
            return self._tilde(v)
        return self._caret(v)

    def _exact(self, v: Version) -> bool:
        if v.major != self.major:
            return False
        if self.minor is not None and v.minor != self.minor:
            return False
        if self.patch is not None and v.patch != self.patch:
            return False
        return v.pre == self.pre

    def _greater(self, v: Version) -> bool:
        if v.major != self.major:
            return v.major > self.major
        if self.minor is None:
            return False
        if v.minor != self.minor:
            return v.minor > self.minor
        if self.patch is None:
            return False
        if v.patch != self.patch:
            return v.patch > self.patch
        return v._key[3] > self._pre_key

    def _less(self, v: Version) -> bool:
        if v.major != self.major:
            return v.major < self.major
        if self.minor is None:
            return False
        if v.minor != self.minor:
            return v.minor < self.minor
        if self.patch is None:
            return False
        if v.patch != self.patch:
            return v.patch < self.patch
        return v._key[3] < self._pre_key

    def _tilde(self, v: Version) -> bool:
        if v.major != self.major:
            return False
        if self.minor is not None and v.minor != self.minor:
            return False
        if self.patch is not None and v.patch != self.patch:
            return v.patch > self.patch
        return v._key[3] >= self._pre_key

    def _caret(self, v: Version) -> bool:
        if v.major != self.major:
            return False
        minor, patch = self.minor, self.patch
        if minor is None:
            return True
        if patch is None:
            return v.minor >= minor if self.major > 0 else v.minor == minor
        if self.major > 0:
            if v.minor != minor:
                return v.minor > minor
            if v.patch != patch:
                return v.patch > patch
        elif minor > 0:
            if v.minor != minor:
                return False
            if v.patch != patch:
                return v.patch > patch
        elif v.minor != minor or v.patch != patch:
            return False
        return v._key[3] >= self._pre_key

    def _pre_is_compatible(self, v: Version) -> bool:
        return (
            bool(self.pre) and self.major == v.major and self.minor == v.minor and self.patch == v.patch
        )

    def matches(self, version: Version) -> bool:
        """Whether ``version`` matches this comparator alone (pre-release rule included)."""
        return self._matches_impl(version) and (not version.pre or self._pre_is_compatible(version))

    # -- value behaviour -----------------------------------------------------------

    def _parts(self) -> tuple:
        return (self.op, self.major, self.minor, self.patch, self.pre)

    def __str__(self) -> str:
        op = self.op
        text = ("" if op == "*" else op) + str(self.major)
        if self.minor is not None:
            text += f".{self.minor}"
            if self.patch is not None:
                text += f".{self.patch}"
                if self.pre:
                    text += "-" + ".".join(map(str, self.pre))
            elif op == "*":
                text += ".*"
        elif op == "*":
            text += ".*"
        return text

    def __repr__(self) -> str:
        return f"<Comparator({str(self)!r})>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Comparator):
            return NotImplemented
        return self._parts() == other._parts()

    def __hash__(self) -> int:
        return hash(self._parts())

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Comparator is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Comparator is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple:
        return (Comparator, self._parts())


class VersionReq:
    """An immutable version requirement with Cargo's rules (the Rust ``semver`` crate).

    >>> req = VersionReq.parse(">=0.2, <0.3")
    >>> req.matches(Version.parse("0.2.5")), str(req)
    (True, '>=0.2, <0.3')
    >>> str(VersionReq.parse("0.2"))
    '^0.2'

    Summary of the rules (release versions):
    ``^1.2.3`` >=1.2.3,<2.0.0 | ``^0.2.3`` >=0.2.3,<0.3.0 | ``^0.0.3`` =0.0.3 |
    ``^1.2`` >=1.2.0,<2.0.0 | ``^0.0`` >=0.0.0,<0.1.0 | ``^1`` >=1.0.0,<2.0.0 | ``^0`` <1.0.0 |
    ``~1.2.3`` >=1.2.3,<1.3.0 | ``~1.2`` >=1.2.0,<1.3.0 | ``~1`` >=1.0.0,<2.0.0 |
    ``=1.2`` / ``1.2.*`` >=1.2.0,<1.3.0 | ``=1`` / ``1.*`` >=1.0.0,<2.0.0 |
    ``>1.2`` >=1.3.0 | ``>1`` >=2.0.0 | ``<=1.2`` <1.3.0 | ``<1.2`` <1.2.0 | ``*`` any.
    A bare version means ``^``.

    Pre-release rule: a pre-release version matches only when it satisfies every
    comparator and at least one comparator has a pre-release on the same
    ``major.minor.patch`` (``>=1.2.3-alpha`` matches ``1.2.3-beta`` but not ``1.2.4-beta``;
    ``*`` and ``0.2`` match no pre-release).
    """

    __slots__ = ("comparators", "_str")

    comparators: tuple[Comparator, ...]
    _str: str | None
    STAR: ClassVar[VersionReq]

    def __init__(self, comparators: Iterable[Comparator] = ()) -> None:
        """A requirement from comparators; no comparators is ``*``."""
        comparators = tuple(comparators)
        for c in comparators:
            if not isinstance(c, Comparator):
                raise TypeError(f"comparators must be Comparator, not {type(c).__name__}")
        if len(comparators) > _MAX_COMPARATORS:
            raise InvalidVersionReq(f"invalid version requirement: more than {_MAX_COMPARATORS} comparators")
        _setattr(self, "comparators", comparators)
        _setattr(self, "_str", None)

    @classmethod
    def parse(cls, text: str) -> VersionReq:
        """Parse a requirement such as ``0.2``, ``^0.2.1``, ``=0.2.0``, ``>=0.2, <0.3`` or ``*``.

        Raises ``InvalidVersionReq`` (a ``ValueError``) pointing at the first bad character.
        """
        if not isinstance(text, str):
            raise TypeError(f"VersionReq.parse() needs a str, not {type(text).__name__}")
        try:
            return _parse_req(text)
        except _Syntax as problem:
            raise _input_error(
                InvalidVersionReq, "version requirement", text, problem, default_hint=_REQ_HINT
            ) from None

    def matches(self, version: Version) -> bool:
        """Whether ``version`` satisfies every comparator and the pre-release rule."""
        for c in self.comparators:
            if not c._matches_impl(version):
                return False
        if not version.pre:
            return True
        for c in self.comparators:
            if c._pre_is_compatible(version):
                return True
        return False

    def __contains__(self, version: object) -> bool:
        return isinstance(version, Version) and self.matches(version)

    def select(self, versions: Iterable[Version]) -> Version | None:
        """The highest matching version, or None. Versions equal in precedence differ only in
        build metadata (tags ``1.2.3`` and ``1.2.3_build.5``): the one without build metadata
        wins, then the lexically lowest build (``Version.selection_key``)."""
        best: Version | None = None
        for v in versions:
            if self.matches(v) and (best is None or v.selection_key > best.selection_key):
                best = v
        return best

    def filter(self, versions: Iterable[Version]) -> Iterator[Version]:
        """The matching versions, in the given order."""
        return (v for v in versions if self.matches(v))

    def exact(self) -> Version | None:
        """The version when this requirement is a single ``=X.Y.Z[-pre]`` comparator."""
        if len(self.comparators) != 1:
            return None
        c = self.comparators[0]
        if c.op != "=" or c.patch is None:
            return None
        return Version._make(c.major, c.minor, c.patch, c.pre)  # type: ignore[arg-type]

    def __str__(self) -> str:
        text = self._str
        if text is None:
            text = ", ".join(map(str, self.comparators)) if self.comparators else "*"
            _setattr(self, "_str", text)
        return text

    def __repr__(self) -> str:
        return f"<VersionReq({str(self)!r})>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionReq):
            return NotImplemented
        return self.comparators == other.comparators

    def __hash__(self) -> int:
        return hash(self.comparators)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"VersionReq is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"VersionReq is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple:
        return (VersionReq, (self.comparators,))


VersionReq.STAR = VersionReq()


@lru_cache(maxsize=1024)
def _parse_req(text: str) -> VersionReq:
    comparators = _scan_req(text)
    return VersionReq(comparators) if comparators else VersionReq.STAR
