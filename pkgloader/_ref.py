"""Package references (``wasi:http``) and package specs (``wasi:http@^0.2``).

A *label* follows the Component Model rule used by wasm-pkg-tools: words of lowercase
ASCII letters and digits, each word starting with a letter, joined by single ``-``
(``[a-z][a-z0-9]*(-[a-z][a-z0-9]*)*``). A ``PackageRef`` is ``namespace:name``, two labels.
A ``PackageSpec`` is a ``PackageRef`` with an optional ``VersionReq`` after ``@``; no
requirement means "the highest stable release".
"""

from __future__ import annotations

import re
from functools import lru_cache

from ._lazyre import LazyPattern
from ._errors import InvalidPackageRef, InvalidVersionReq
from ._semver import Version, VersionReq, _input_error, _parse_req, _quote, _Syntax, _unexpected

__all__ = ["PackageRef", "PackageSpec"]

_LABEL = r"[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*"
_LABEL_RE = LazyPattern(_LABEL)
_REF_RE = re.compile(rf"({_LABEL}):({_LABEL})")

_REF_HINT = "write a package reference such as wasi:http"
_SPEC_HINT = "write a package reference such as wasi:http@0.2"


def _word_at(text: str, i: int) -> str:
    j = i
    while j < len(text) and text[j].isascii() and text[j].isalnum():
        j += 1
    return text[i:j]


def _fixed(text: str, ref_end: int, fixed_ref: str) -> str | None:
    """``text`` with its reference part ``text[:ref_end]`` replaced by ``fixed_ref`` when
    that makes a valid reference (or label), for a hint."""
    ok = _REF_RE.fullmatch(fixed_ref) if ":" in text[:ref_end] else _LABEL_RE.fullmatch(fixed_ref)
    return fixed_ref + text[ref_end:] if ok else None


def _scan_label(text: str, start: int, end: int, what: str, *, in_spec: bool, ref_end: int) -> None:
    """Raise _Syntax for the first problem of the label ``text[start:end]`` (the ``what``:
    "namespace" or "name") of the reference ``text[:ref_end]``; return when it is valid."""
    if start == end:
        if end == len(text):
            raise _Syntax(end, f"empty {what}", at_end=True)
        raise _Syntax(end, f"empty {what}")
    for k in range(start, end):
        ch = text[k]
        if "a" <= ch <= "z":
            continue
        word_start = k == start or text[k - 1] == "-"
        if "0" <= ch <= "9":
            if word_start:
                raise _Syntax(k, f"word {_quote(_word_at(text, k), 40)} of the {what} starts with a digit")
            continue
        if "A" <= ch <= "Z":
            fixed = _fixed(text, ref_end, text[:ref_end].lower())
            hint = f"package references are lowercase: {fixed}" if fixed else None
            raise _Syntax(k, f"uppercase letter {ch!r} in the {what}", hint=hint)
        if ch == "-":
            if k == start:
                raise _Syntax(k, f"'-' at the start of the {what}")
            if k + 1 == end:
                raise _Syntax(k, f"'-' at the end of the {what}")
            if text[k + 1] == "-":
                raise _Syntax(k, f"empty word ('--') in the {what}")
            continue
        if what == "name" and ch == ":":
            raise _Syntax(k, "more than one ':'", hint="a package reference is 'namespace:name' with one ':'")
        if what == "name" and ch == "/":
            package = text[:k]
            rest = text[end:]
            raise _Syntax(
                k,
                "unexpected '/'",
                note=f"{_quote(text[:end], 60)} names an interface, not a package",
                hint=f"interfaces are not packages; write the package: {package}{rest}",
            )
        if what == "name" and ch == "@" and not in_spec:
            raise _Syntax(
                k,
                "unexpected '@'",
                note="a package reference has no version",
                hint=f"write {text[:k]}, or parse {_quote(text, 60)} as a PackageSpec",
            )
        if ch == "_":
            fixed = _fixed(text, ref_end, text[:ref_end].replace("_", "-"))
            hint = f"labels join words with '-': {fixed}" if fixed else None
            raise _Syntax(k, "unexpected character '_'", hint=hint)
        raise _Syntax(k, _unexpected(ch))


def _diagnose_ref(text: str, end: int, *, in_spec: bool) -> _Syntax:
    """Why ``text[:end]`` is not ``namespace:name``."""
    if end == 0:
        if not text:
            return _Syntax(0, "empty package reference", at_end=True)
        return _Syntax(0, "expected 'namespace:name' before '@'")
    colon = text.find(":", 0, end)
    if colon < 0:
        return _Syntax(end, "expected 'namespace:name', found no ':'", at_end=True)
    try:
        _scan_label(text, 0, colon, "namespace", in_spec=in_spec, ref_end=end)
        _scan_label(text, colon + 1, end, "name", in_spec=in_spec, ref_end=end)
    except _Syntax as problem:
        return problem
    raise AssertionError(f"{text!r} was rejected but no problem was found")  # pragma: no cover


class PackageRef:
    """An immutable package reference ``namespace:name`` such as ``wasi:http``.

    Ordered by (namespace, name); hashable.
    """

    __slots__ = ("namespace", "name")

    namespace: str
    name: str

    def __init__(self, namespace: str, name: str) -> None:
        for what, label in (("namespace", namespace), ("name", name)):
            if not isinstance(label, str):
                raise TypeError(f"the package {what} must be a str, not {type(label).__name__}")
            if not _LABEL_RE.fullmatch(label):
                try:
                    _scan_label(label, 0, len(label), what, in_spec=False, ref_end=len(label))
                except _Syntax as problem:
                    raise _input_error(
                        InvalidPackageRef, f"package {what}", label, problem, default_hint=_REF_HINT
                    ) from None
        object.__setattr__(self, "namespace", namespace)
        object.__setattr__(self, "name", name)

    @classmethod
    def _make(cls, namespace: str, name: str) -> PackageRef:
        self = cls.__new__(cls)
        object.__setattr__(self, "namespace", namespace)
        object.__setattr__(self, "name", name)
        return self

    @classmethod
    def parse(cls, text: str) -> PackageRef:
        """Parse ``namespace:name``. Raises ``InvalidPackageRef`` (a ``ValueError``)
        pointing at the first bad character."""
        if not isinstance(text, str):
            raise TypeError(f"PackageRef.parse() needs a str, not {type(text).__name__}")
        ref = _parse_ref(text)
        if ref is None:
            problem = _diagnose_ref(text, len(text), in_spec=False)
            raise _input_error(InvalidPackageRef, "package reference", text, problem, default_hint=_REF_HINT)
        return ref

    def __str__(self) -> str:
        return f"{self.namespace}:{self.name}"

    def __repr__(self) -> str:
        return f"<PackageRef({str(self)!r})>"

    def _key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PackageRef):
            return NotImplemented
        return self.namespace == other.namespace and self.name == other.name

    def __hash__(self) -> int:
        return hash((self.namespace, self.name))

    def __lt__(self, other: PackageRef) -> bool:
        if not isinstance(other, PackageRef):
            return NotImplemented
        return self._key() < other._key()

    def __le__(self, other: PackageRef) -> bool:
        if not isinstance(other, PackageRef):
            return NotImplemented
        return self._key() <= other._key()

    def __gt__(self, other: PackageRef) -> bool:
        if not isinstance(other, PackageRef):
            return NotImplemented
        return self._key() > other._key()

    def __ge__(self, other: PackageRef) -> bool:
        if not isinstance(other, PackageRef):
            return NotImplemented
        return self._key() >= other._key()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"PackageRef is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"PackageRef is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple:
        return (PackageRef, (self.namespace, self.name))


@lru_cache(maxsize=1024)
def _parse_ref(text: str) -> PackageRef | None:
    m = _REF_RE.fullmatch(text)
    return None if m is None else PackageRef._make(m.group(1), m.group(2))


class PackageSpec:
    """A package reference with an optional version requirement: ``wasi:http``,
    ``wasi:http@0.2`` (``^0.2``), ``wasi:http@=0.2.0``, ``wasi:http@>=0.2, <0.3``,
    ``wasi:http@*``.

    ``requirement`` None means the highest stable release. ``str()`` is canonical
    (``wasi:http@^0.2``) and parses back to an equal spec.

    Build metadata: requirements follow Cargo and ignore it, except that an exact
    ``ns:name@=1.2.3+build.5`` names one tag (``1.2.3_build.5``): ``build`` keeps it and
    ``exact_version`` carries it. ``@=1.2.3`` and every other requirement may select a
    version with build metadata, preferring the one without (see ``VersionReq.select``).
    """

    __slots__ = ("package", "requirement", "build")

    package: PackageRef
    requirement: VersionReq | None
    build: tuple[str, ...]

    def __init__(self, package: PackageRef, requirement: VersionReq | None = None, *,
                 build: tuple[str, ...] = ()) -> None:
        if not isinstance(package, PackageRef):
            raise TypeError(f"package must be a PackageRef, not {type(package).__name__}")
        if requirement is not None and not isinstance(requirement, VersionReq):
            raise TypeError(f"requirement must be a VersionReq or None, not {type(requirement).__name__}")
        build = tuple(build)
        if build and (requirement is None or requirement.exact() is None):
            raise ValueError("build metadata is kept only with an exact requirement (=X.Y.Z+BUILD)")
        object.__setattr__(self, "package", package)
        object.__setattr__(self, "requirement", requirement)
        object.__setattr__(self, "build", build)

    @classmethod
    def parse(cls, text: str) -> PackageSpec:
        """Parse ``namespace:name[@requirement]``.

        Raises ``InvalidPackageRef`` for the reference part and ``InvalidVersionReq`` for
        the requirement part; both point at the bad character of the whole input.
        """
        if not isinstance(text, str):
            raise TypeError(f"PackageSpec.parse() needs a str, not {type(text).__name__}")
        at = text.find("@")
        end = len(text) if at < 0 else at
        package = _parse_ref(text[:end])
        if package is None:
            problem = _diagnose_ref(text, end, in_spec=True)
            raise _input_error(InvalidPackageRef, "package reference", text, problem, default_hint=_SPEC_HINT)
        if at < 0:
            return cls(package)
        req_text = text[at + 1 :]
        try:
            requirement = _parse_req(req_text)
        except _Syntax as problem:
            hint = (
                f"write a requirement such as {package}@0.2, {package}@=0.2.0 or {package}@*,"
                " or leave out '@' for the highest stable release"
            )
            raise _input_error(
                InvalidVersionReq,
                "version requirement",
                req_text,
                problem,
                whole=text,
                offset=at + 1,
                default_hint=hint,
            ) from None
        build: tuple[str, ...] = ()
        if "+" in req_text and requirement.exact() is not None:
            # =X.Y.Z+B: the one comparator's text is a whole version (checked by the parser)
            build = Version.parse(req_text.strip().lstrip("=").strip()).build
        return cls(package, requirement, build=build)

    @property
    def exact_version(self) -> Version | None:
        """The version when the requirement is a single ``=X.Y.Z[-pre][+build]``, else None."""
        if self.requirement is None:
            return None
        v = self.requirement.exact()
        if v is not None and self.build:
            v = Version._make(v.major, v.minor, v.patch, v.pre, self.build)
        return v

    def __str__(self) -> str:
        if self.requirement is None:
            return str(self.package)
        build = "+" + ".".join(self.build) if self.build else ""
        return f"{self.package}@{self.requirement}{build}"

    def __repr__(self) -> str:
        return f"<PackageSpec({str(self)!r})>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PackageSpec):
            return NotImplemented
        return (self.package == other.package and self.requirement == other.requirement
                and self.build == other.build)

    def __hash__(self) -> int:
        return hash((self.package, self.requirement, self.build))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"PackageSpec is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"PackageSpec is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple:
        return (_make_spec, (self.package, self.requirement, self.build))


def _make_spec(package: PackageRef, requirement: VersionReq | None, build: tuple[str, ...]) -> PackageSpec:
    return PackageSpec(package, requirement, build=build)
