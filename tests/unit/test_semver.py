"""Unit tests for pkgloader._semver: Version (SemVer 2.0.0) and VersionReq (Cargo rules).

Requirement cases marked "crate" are taken from the Rust semver crate's own test suite
(tests/test_version_req.rs), which defines the behaviour Cargo and wkg have.
"""

from __future__ import annotations

import copy
import pickle

import pytest

from pkgloader._errors import InputError, InvalidVersion, InvalidVersionReq
from pkgloader._semver import Comparator, Version, VersionReq, _pointer

V = Version.parse
R = VersionReq.parse


# --- Version: parsing ------------------------------------------------------------------

VALID_VERSIONS = [
    # text, major, minor, patch, pre, build
    ("0.0.0", 0, 0, 0, (), ()),
    ("1.2.3", 1, 2, 3, (), ()),
    ("10.20.30", 10, 20, 30, (), ()),
    ("1.0.0-alpha", 1, 0, 0, ("alpha",), ()),
    ("1.0.0-alpha.1", 1, 0, 0, ("alpha", 1), ()),
    ("1.0.0-0.3.7", 1, 0, 0, (0, 3, 7), ()),
    ("1.0.0-x.7.z.92", 1, 0, 0, ("x", 7, "z", 92), ()),
    ("1.0.0-x-y-z.--", 1, 0, 0, ("x-y-z", "--"), ()),
    ("1.0.0-0a", 1, 0, 0, ("0a",), ()),
    ("1.0.0-00a", 1, 0, 0, ("00a",), ()),
    ("1.0.0+20130313144700", 1, 0, 0, (), ("20130313144700",)),
    ("1.0.0-beta+exp.sha.5114f85", 1, 0, 0, ("beta",), ("exp", "sha", "5114f85")),
    ("1.0.0+21AF26D3----117B344092BD", 1, 0, 0, (), ("21AF26D3----117B344092BD",)),
    ("1.0.0+001", 1, 0, 0, (), ("001",)),  # leading zeros are fine in build metadata
    ("18446744073709551615.0.0", 2**64 - 1, 0, 0, (), ()),
    ("1.2.3-99999999999999999999999", 1, 2, 3, (99999999999999999999999,), ()),
]


@pytest.mark.parametrize(("text", "major", "minor", "patch", "pre", "build"), VALID_VERSIONS)
def test_parse_valid_version(text: str, major: int, minor: int, patch: int, pre: tuple, build: tuple) -> None:
    v = V(text)
    assert (v.major, v.minor, v.patch, v.pre, v.build) == (major, minor, patch, pre, build)
    assert str(v) == text
    assert v.is_prerelease == bool(pre)
    assert Version(major, minor, patch, pre, build) == v
    assert str(Version(major, minor, patch, pre, build)) == text


INVALID_VERSIONS = [
    "",
    "1",
    "1.2",
    "1.2.3.4",
    "v1.2.3",
    "V1.2.3",
    " 1.2.3",
    "1.2.3 ",
    "1.2.3\n",
    "01.2.3",
    "1.02.3",
    "1.2.03",
    "1.2.3-01",
    "1.2.3-",
    "1.2.3+",
    "1.2.3-a..b",
    "1.2.3-a.",
    "1.2.3+a..b",
    "1.2.3+a+b",
    "1.2.3-a_b",
    "1.2.3_a",
    "1.2.-3",
    "-1.2.3",
    "1.2.x",
    "1.2.*",
    "a.b.c",
    "1.2.3-é",
    "١.٢.٣",  # Arabic-Indic digits are not ASCII digits
    "18446744073709551616.0.0",
    "1.99999999999999999999.0",
    "latest",
]


@pytest.mark.parametrize("text", INVALID_VERSIONS)
def test_parse_invalid_version(text: str) -> None:
    with pytest.raises(InvalidVersion) as info:
        V(text)
    err = info.value
    assert isinstance(err, InputError) and isinstance(err, ValueError)
    assert err.code == "invalid-version"
    assert err.message.startswith(f"invalid version {text!r}: ")
    if text:
        # the caret points inside the input (or just after it)
        line, caret = err.details
        assert caret.rstrip(" ^") == "" and caret.endswith("^")


VERSION_ERRORS = [
    (
        "01.2.3",
        """\
error[invalid-version]: invalid version '01.2.3': leading zero in major version number '01' at position 1
  01.2.3
  ^
  hint: write a version such as 1.2.3, 1.0.0-rc.1 or 1.0.0+build.5""",
    ),
    (
        "v1.0.0",
        """\
error[invalid-version]: invalid version 'v1.0.0': unexpected character 'v' at position 1; expected the major version number
  v1.0.0
  ^
  hint: drop the leading 'v': 1.0.0""",
    ),
    (
        "1.2",
        """\
error[invalid-version]: invalid version '1.2': unexpected end of input; expected '.' and the patch version number
  1.2
     ^
  hint: a version has three numbers: 1.2.0""",
    ),
    (
        "1.2.3 ",
        """\
error[invalid-version]: invalid version '1.2.3 ': unexpected whitespace at position 6; expected '-', '+' or the end
  1.2.3 \n\
       ^
  hint: remove the surrounding whitespace: 1.2.3""",
    ),
    (
        "1.2.3-rc.01",
        """\
error[invalid-version]: invalid version '1.2.3-rc.01': leading zero in numeric pre-release identifier '01' at position 10
  1.2.3-rc.01
           ^
  hint: write a version such as 1.2.3, 1.0.0-rc.1 or 1.0.0+build.5""",
    ),
    (
        "1.2.3-",
        """\
error[invalid-version]: invalid version '1.2.3-': pre-release identifier is empty
  1.2.3-
        ^
  hint: write a version such as 1.2.3, 1.0.0-rc.1 or 1.0.0+build.5""",
    ),
    (
        "1.2.3-a..b",
        """\
error[invalid-version]: invalid version '1.2.3-a..b': pre-release identifier is empty at position 9
  1.2.3-a..b
          ^
  hint: write a version such as 1.2.3, 1.0.0-rc.1 or 1.0.0+build.5""",
    ),
    (
        "1.2.3+a+b",
        """\
error[invalid-version]: invalid version '1.2.3+a+b': unexpected character '+' at position 8; expected '.' or the end
  1.2.3+a+b
         ^
  hint: write a version such as 1.2.3, 1.0.0-rc.1 or 1.0.0+build.5""",
    ),
    (
        "1.2.3\t",  # control characters are escaped and the caret still lines up
        """\
error[invalid-version]: invalid version '1.2.3\\t': unexpected whitespace at position 6; expected '-', '+' or the end
  1.2.3\\t
       ^
  hint: remove the surrounding whitespace: 1.2.3""",
    ),
    (
        "18446744073709551616.0.0",
        """\
error[invalid-version]: invalid version '18446744073709551616.0.0': major version number '18446744073709551616' is larger than 18446744073709551615 at position 1
  18446744073709551616.0.0
  ^
  hint: write a version such as 1.2.3, 1.0.0-rc.1 or 1.0.0+build.5""",
    ),
    (
        "",
        """\
error[invalid-version]: invalid version '': empty string
  hint: write a version such as 1.2.3, 1.0.0-rc.1 or 1.0.0+build.5""",
    ),
]


@pytest.mark.parametrize(("text", "rendered"), VERSION_ERRORS)
def test_version_error_messages(text: str, rendered: str) -> None:
    with pytest.raises(InvalidVersion) as info:
        V(text)
    assert info.value.render() == rendered


def test_long_input_is_shortened_in_messages() -> None:
    text = "1.2.3-" + "a" * 200 + "_"
    with pytest.raises(InvalidVersion) as info:
        V(text)
    err = info.value
    assert err.message == (
        f"invalid version '1.2.3-{'a' * 71}...': unexpected character '_' at position 207; "
        "expected '.', '+' or the end"
    )
    line, caret = err.details
    assert line == "..." + "a" * 40 + "_"
    assert caret == " " * 43 + "^"


def test_caret_alignment_with_wide_and_control_characters() -> None:
    # Parsers stop at the first bad character, so such characters before the caret are rare
    # (see test_ref for one); the helper that draws the caret handles them.
    assert _pointer("中文_x", 2) == ["中文_x", " " * 4 + "^"]  # CJK takes two columns
    assert _pointer("a\tb\x00c", 4) == ["a\\tb\\x00c", " " * 8 + "^"]
    assert _pointer("abc", 3) == ["abc", "   ^"]
    assert _pointer("", 0) == []


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        V(b"1.2.3")  # type: ignore[arg-type]


# --- Version: construction, value behaviour --------------------------------------------


def test_constructor_normalizes_numeric_pre_release_strings() -> None:
    v = Version(1, 0, 0, ("rc", "1"))
    assert v.pre == ("rc", 1)
    assert v == V("1.0.0-rc.1")
    assert str(v) == "1.0.0-rc.1"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((-1, 0, 0), InvalidVersion),
        ((2**64, 0, 0), InvalidVersion),
        ((1, 0, 0, ("01",)), InvalidVersion),
        ((1, 0, 0, ("",)), InvalidVersion),
        ((1, 0, 0, ("a.b",)), InvalidVersion),
        ((1, 0, 0, (-1,)), InvalidVersion),
        ((1, 0, 0, (), ("a+b",)), InvalidVersion),
        ((1, 0, 0, (), ("",)), InvalidVersion),
        (("1", 0, 0), TypeError),
        ((True, 0, 0), TypeError),
        ((1, 0, 0, (1.5,)), TypeError),
        ((1, 0, 0, (), (1,)), TypeError),
    ],
)
def test_constructor_validates(args: tuple, error: type[Exception]) -> None:
    with pytest.raises(error):
        Version(*args)


def test_repr_and_str() -> None:
    v = V("1.2.3-rc.1+build.5")
    assert str(v) == "1.2.3-rc.1+build.5"
    assert repr(v) == "<Version('1.2.3-rc.1+build.5')>"


def test_version_is_immutable() -> None:
    v = V("1.2.3")
    with pytest.raises(AttributeError):
        v.major = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del v.minor
    with pytest.raises(AttributeError):
        v.extra = 1  # type: ignore[attr-defined]


def test_version_pickles_and_copies() -> None:
    v = V("1.2.3-rc.1+build.5")
    for clone in (pickle.loads(pickle.dumps(v)), copy.copy(v), copy.deepcopy(v)):
        assert clone == v and clone.build == v.build and str(clone) == str(v)


# --- Version: precedence (SemVer §11) ----------------------------------------------------

ASCENDING = [
    # §11.2, §11.4 examples, plus numeric-vs-lexical traps
    "0.9.0",
    "0.10.0",
    "1.0.0-0",
    "1.0.0-0.0",
    "1.0.0-1",
    "1.0.0-2",
    "1.0.0-10",
    "1.0.0--",
    "1.0.0-1a",
    "1.0.0-Z",
    "1.0.0-a",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
    "10.0.0",
]


def test_precedence_chain() -> None:
    versions = [V(t) for t in ASCENDING]
    for lower, higher in zip(versions, versions[1:]):
        assert lower < higher and higher > lower and lower <= higher and higher >= lower
        assert lower != higher and not lower == higher
    assert sorted(reversed(versions)) == versions


def test_build_metadata_is_ignored_in_precedence() -> None:
    a, b, plain = V("1.0.0+a"), V("1.0.0+b"), V("1.0.0")
    assert a == b == plain
    assert hash(a) == hash(b) == hash(plain)
    assert not a < b and not b < a
    assert len({a, b, plain}) == 1
    # ...but sort_key gives a deterministic total order
    assert sorted([b, a, plain, V("0.9.0+z")], key=lambda v: v.sort_key) == [V("0.9.0"), plain, a, b]
    assert [str(v) for v in sorted([b, a, plain], key=lambda v: v.sort_key)] == ["1.0.0", "1.0.0+a", "1.0.0+b"]


def test_comparison_with_other_types() -> None:
    assert V("1.0.0") != "1.0.0"
    with pytest.raises(TypeError):
        V("1.0.0") < "1.0.0"  # type: ignore[operator]


# --- Version: OCI tags -------------------------------------------------------------------

TAGS = [
    ("1.2.3", "1.2.3"),
    ("1.2.3_build.5", "1.2.3+build.5"),
    ("1.2.3-rc.1_build.5", "1.2.3-rc.1+build.5"),
    ("0.2.0-rc-2024-01-25", "0.2.0-rc-2024-01-25"),
    ("latest", None),
    ("sha256-abc.sig", None),
    ("sha256-0123456789abcdef.att", None),
    ("v1.0.0", None),
    ("1.2", None),
    ("1.2.3_a_b", None),  # more than one '_'
    ("1.2.3_", None),
    ("_1.2.3", None),
    ("1.2.3+b", "1.2.3+b"),  # not a valid OCI tag, but plain version text is read as written
    ("1.2.3_a+b", None),
    ("01.2.3", None),
    ("", None),
]


@pytest.mark.parametrize(("tag", "version"), TAGS)
def test_from_tag(tag: str, version: str | None) -> None:
    v = Version.from_tag(tag)
    if version is None:
        assert v is None
    else:
        assert v is not None and str(v) == version and v.build == V(version).build


def test_to_tag() -> None:
    assert V("1.2.3+build.5").to_tag() == "1.2.3_build.5"
    assert V("1.2.3-rc.1").to_tag() == "1.2.3-rc.1"


# --- VersionReq: parsing and canonical form ----------------------------------------------

CANONICAL = [
    # text, canonical str()
    ("0.2", "^0.2"),
    ("^0.2", "^0.2"),
    ("1.0.0", "^1.0.0"),  # crate
    ("=1.0.0", "=1.0.0"),
    ("=0.1.0+meta", "=0.1.0"),  # crate: build metadata is accepted and dropped
    (">= 1.0.0", ">=1.0.0"),  # crate
    (">= 2.1.0-alpha2", ">=2.1.0-alpha2"),
    ("< 1.0.0", "<1.0.0"),
    ("> 0.0.9, <= 2.5.3", ">0.0.9, <=2.5.3"),  # crate
    ("0.3.0, 0.4.0", "^0.3.0, ^0.4.0"),
    (">=0.5.1-alpha3, <0.6", ">=0.5.1-alpha3, <0.6"),
    ("  >=0.2 ,<0.3  ", ">=0.2, <0.3"),
    ("~1", "~1"),
    ("~ 1.2.3-beta.2", "~1.2.3-beta.2"),
    ("*", "*"),
    (" * ", "*"),
    ("x", "*"),
    ("X", "*"),
    ("1.*", "1.*"),
    ("1.x", "1.*"),
    ("1.X", "1.*"),
    ("1.*.*", "1.*"),
    ("1.2.*", "1.2.*"),
    ("1.2.x", "1.2.*"),
    ("0.*.*", "0.*"),  # crate (cargo#3202)
    ("0.0.*", "0.0.*"),
    ("=1.*", "=1"),  # an explicit operator with a wildcard is a partial version
    (">=1.2.*", ">=1.2"),
    ("^1.*", "^1"),
    ("=1.2.3-1a", "=1.2.3-1a"),
    ("=1.2.3-01a", "=1.2.3-01a"),
    ("=1.2.3+01", "=1.2.3"),
    ("=1.2.3-1-1+1-1-1", "=1.2.3-1-1"),
    ("<=18446744073709551615.0.0", "<=18446744073709551615.0.0"),
]


@pytest.mark.parametrize(("text", "canonical"), CANONICAL)
def test_parse_requirement_canonical(text: str, canonical: str) -> None:
    req = R(text)
    assert str(req) == canonical
    assert R(canonical) == req
    assert str(R(canonical)) == canonical
    assert repr(req) == f"<VersionReq({canonical!r})>"


def test_equivalent_spellings_are_equal() -> None:
    assert R("1.2") == R("^1.2") == R(" ^ 1.2 ")
    assert hash(R("1.2")) == hash(R("^1.2"))
    assert R("1.x") == R("1.*") == R("1.*.*")
    assert R("*") == R("x") == VersionReq.STAR == VersionReq()
    assert R("^1") != R("^2")
    assert R("=1.2.3+a") == R("=1.2.3")


INVALID_REQS = [
    "",
    " ",
    ">=",
    ">= >= 0.0.2",  # crate
    ">== 0.0.2",  # crate
    "a.0.0",  # crate
    "\0",
    "1.0.0-",  # crate
    "1.2.3-01",
    "1.2.3+4.",
    "1.",
    "1.*.",
    "1.*.1",  # crate: digit after wildcard
    "*.1",
    ">=1.*.1",
    "> 0.1.0,",  # crate
    "> 0.3.0, ,",
    "1.2.3 - 2.3.4",  # crate: no hyphen ranges
    "> 0.0.9 <= 2.5.3",  # crate: comparators need commas
    "=1.2.3 || =2.3.4",  # crate: no alternatives
    "*, 0.20.0-any",  # crate: a wildcard must be alone
    "0.20.0-any, *",
    "0.20.0-any, *, 1.0",
    "1.2-alpha",  # pre-release needs a full version
    "1.2+build",
    "v1.2",
    "~>1.2",
    ">=1.2\t",  # only spaces separate tokens, like the crate
    "01",
    "1.*-pre",
    "=*",
    "18446744073709551616",
]


@pytest.mark.parametrize("text", INVALID_REQS)
def test_parse_invalid_requirement(text: str) -> None:
    with pytest.raises(InvalidVersionReq) as info:
        R(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.code == "invalid-version-req"
    assert err.message.startswith(f"invalid version requirement {text!r}: ")


def test_at_most_32_comparators() -> None:
    ok = ", ".join(f">{i}" for i in range(1, 33))
    assert len(R(ok).comparators) == 32
    with pytest.raises(InvalidVersionReq) as info:
        R(ok + ", >33")
    assert "more than 32 comparators" in info.value.message


REQ_ERRORS = [
    (
        ">=0.2, <0.x3",
        """\
error[invalid-version-req]: invalid version requirement '>=0.2, <0.x3': unexpected character '3' after a wildcard at position 12; expected ',' or the end
  >=0.2, <0.x3
             ^
  hint: write a requirement such as 0.2, ^0.2.1, =0.2.0, >=0.2, <0.3 or *""",
    ),
    (
        ">=0.2, <0.3a",
        """\
error[invalid-version-req]: invalid version requirement '>=0.2, <0.3a': expected ',' between comparators, found 'a' at position 12
  >=0.2, <0.3a
             ^
  hint: write a requirement such as 0.2, ^0.2.1, =0.2.0, >=0.2, <0.3 or *""",
    ),
    (
        ">=0.2 <0.3",
        """\
error[invalid-version-req]: invalid version requirement '>=0.2 <0.3': expected ',' between comparators, found '<' at position 7
  >=0.2 <0.3
        ^
  hint: separate comparators with ',', e.g. >=0.2, <0.3""",
    ),
    (
        "1.2.3 - 2.3.4",
        """\
error[invalid-version-req]: invalid version requirement '1.2.3 - 2.3.4': expected ',' between comparators, found '-' at position 7
  1.2.3 - 2.3.4
        ^
  hint: hyphen ranges are not supported; write >=LOW, <=HIGH instead of LOW - HIGH""",
    ),
    (
        "^1.2 || ^2",
        """\
error[invalid-version-req]: invalid version requirement '^1.2 || ^2': expected ',' between comparators, found '|' at position 6
  ^1.2 || ^2
       ^
  hint: alternatives ('||') are not supported; a requirement is one range, e.g. >=0.2, <0.4""",
    ),
    (
        ">=01.2",
        """\
error[invalid-version-req]: invalid version requirement '>=01.2': leading zero in major version number '01' at position 3
  >=01.2
    ^
  hint: write a requirement such as 0.2, ^0.2.1, =0.2.0, >=0.2, <0.3 or *""",
    ),
    (
        "=1.2.3-rc..1",
        """\
error[invalid-version-req]: invalid version requirement '=1.2.3-rc..1': pre-release identifier is empty at position 11
  =1.2.3-rc..1
            ^
  hint: write a requirement such as 0.2, ^0.2.1, =0.2.0, >=0.2, <0.3 or *""",
    ),
    (
        ">=0.2,",
        """\
error[invalid-version-req]: invalid version requirement '>=0.2,': unexpected end of input; expected a comparator after ','
  >=0.2,
        ^
  hint: write a requirement such as 0.2, ^0.2.1, =0.2.0, >=0.2, <0.3 or *""",
    ),
    (
        "0.2-rc.1",
        """\
error[invalid-version-req]: invalid version requirement '0.2-rc.1': a pre-release needs a full version (major.minor.patch) at position 4
  0.2-rc.1
     ^
  hint: write all three numbers, e.g. >=1.2.0-rc.1""",
    ),
    (
        ">=1, *",
        """\
error[invalid-version-req]: invalid version requirement '>=1, *': wildcard '*' must be the only comparator at position 6
  >=1, *
       ^
  hint: '*' matches every stable version; drop it or the other comparators""",
    ),
    (
        "v1.2",
        """\
error[invalid-version-req]: invalid version requirement 'v1.2': unexpected character 'v' at position 1; expected the major version number
  v1.2
  ^
  hint: drop the leading 'v' (write 1.2, not v1.2)""",
    ),
    (
        "",
        """\
error[invalid-version-req]: invalid version requirement '': empty requirement
  hint: write a requirement such as 0.2, ^0.2.1, =0.2.0, >=0.2, <0.3 or *""",
    ),
]


@pytest.mark.parametrize(("text", "rendered"), REQ_ERRORS)
def test_requirement_error_messages(text: str, rendered: str) -> None:
    with pytest.raises(InvalidVersionReq) as info:
        R(text)
    assert info.value.render() == rendered


# --- VersionReq: matching ----------------------------------------------------------------

MATCHES = [
    # requirement, versions that match, versions that do not
    ("1.0.0", ["1.0.0", "1.1.0", "1.0.1"], ["0.9.9", "0.10.0", "0.1.0", "1.0.0-pre", "1.0.1-pre"]),  # crate
    ("=1.0.0", ["1.0.0", "1.0.0+build"], ["1.0.1", "0.9.9", "0.10.0", "0.1.0", "1.0.0-pre"]),
    ("=0.0.2", ["0.0.2"], ["0.0.1", "0.0.3", "0.0.2-pre"]),
    ("=0.1.0-beta2.a", ["0.1.0-beta2.a"], ["0.9.1", "0.1.0", "0.1.1-beta2.a", "0.1.0-beta2"]),
    ("=0.1.0+meta", ["0.1.0", "0.1.0+meta", "0.1.0+any"], []),
    (">= 1.0.0", ["1.0.0", "2.0.0"], ["0.1.0", "0.0.1", "1.0.0-pre", "2.0.0-pre"]),
    (">= 2.1.0-alpha2", ["2.1.0-alpha2", "2.1.0-alpha3", "2.1.0", "3.0.0"], ["2.0.0", "2.1.0-alpha1", "2.0.0-alpha2", "3.0.0-alpha2"]),
    ("< 1.0.0", ["0.1.0", "0.0.1"], ["1.0.0", "1.0.0-beta", "1.0.1", "0.9.9-alpha"]),
    ("<= 2.1.0-alpha2", ["2.1.0-alpha2", "2.1.0-alpha1", "2.0.0", "1.0.0"], ["2.1.0", "2.2.0-alpha1", "2.0.0-alpha2", "1.0.0-alpha2"]),
    (">1.0.0-alpha, <1.0.0", ["1.0.0-beta"], []),
    (">1.0.0-alpha, <1.0", [], ["1.0.0-beta"]),
    (">1.0.0-alpha, <1", [], ["1.0.0-beta"]),
    ("> 0.0.9, <= 2.5.3", ["0.0.10", "1.0.0", "2.5.3"], ["0.0.8", "2.5.4"]),
    ("0.3.0, 0.4.0", [], ["0.0.8", "0.3.0", "0.4.0"]),
    ("<= 0.2.0, >= 0.5.0", [], ["0.0.8", "0.3.0", "0.5.1"]),
    ("0.1.0, 0.1.4, 0.1.6", ["0.1.6", "0.1.9"], ["0.1.0", "0.1.4", "0.2.0"]),
    (">=0.5.1-alpha3, <0.6", ["0.5.1-alpha3", "0.5.1-alpha4", "0.5.1-beta", "0.5.1", "0.5.5"], ["0.5.1-alpha1", "0.5.2-alpha3", "0.5.5-pre", "0.5.0-pre", "0.6.0", "0.6.0-pre"]),
    ("~1", ["1.0.0", "1.0.1", "1.1.1"], ["0.9.1", "2.9.0", "0.0.9"]),
    ("~1.2", ["1.2.0", "1.2.1"], ["1.1.1", "1.3.0", "0.0.9"]),
    ("~1.2.2", ["1.2.2", "1.2.4"], ["1.2.1", "1.9.0", "1.0.9", "2.0.1", "0.1.3"]),
    ("~1.2.3-beta.2", ["1.2.3", "1.2.4", "1.2.3-beta.2", "1.2.3-beta.4"], ["1.3.3", "1.1.4", "1.2.3-beta.1", "1.2.4-beta.2"]),
    ("^1", ["1.1.2", "1.1.0", "1.2.1", "1.0.1"], ["0.9.1", "2.9.0", "0.1.4", "1.0.0-beta1", "0.1.0-alpha", "1.0.1-pre"]),
    ("^1.1", ["1.1.2", "1.1.0", "1.2.1"], ["0.9.1", "2.9.0", "1.0.1", "0.1.4"]),
    ("^1.1.2", ["1.1.2", "1.1.4", "1.2.1"], ["0.9.1", "2.9.0", "1.1.1", "0.0.1", "1.1.2-alpha1", "1.1.3-alpha1", "2.9.0-alpha1"]),
    ("^0.1.2", ["0.1.2", "0.1.4"], ["0.9.1", "2.9.0", "1.1.1", "0.0.1", "0.1.2-beta", "0.1.3-alpha", "0.2.0-pre"]),
    ("^0.5.1-alpha3", ["0.5.1-alpha3", "0.5.1-alpha4", "0.5.1-beta", "0.5.1", "0.5.5"], ["0.5.1-alpha1", "0.5.2-alpha3", "0.5.5-pre", "0.5.0-pre", "0.6.0"]),
    ("^0.0.2", ["0.0.2"], ["0.9.1", "2.9.0", "1.1.1", "0.0.1", "0.1.4"]),
    ("^0.0", ["0.0.2", "0.0.0"], ["0.9.1", "2.9.0", "1.1.1", "0.1.4"]),
    ("^0", ["0.9.1", "0.0.2", "0.0.0"], ["2.9.0", "1.1.1"]),
    ("^1.4.2-beta.5", ["1.4.2", "1.4.3", "1.4.2-beta.5", "1.4.2-beta.6", "1.4.2-c"], ["0.9.9", "2.0.0", "1.4.2-alpha", "1.4.2-beta.4", "1.4.3-beta.5"]),
    ("*", ["0.9.1", "2.9.0", "0.0.9", "1.0.1", "1.1.1"], ["1.0.0-pre"]),
    ("1.*", ["1.2.0", "1.2.1", "1.1.1", "1.3.0"], ["0.0.9", "1.2.0-pre"]),
    ("1.2.*", ["1.2.0", "1.2.2", "1.2.4"], ["1.9.0", "1.0.9", "2.0.1", "0.1.3", "1.2.2-pre"]),
    ("=2.1.1-really.0", ["2.1.1-really.0"], []),
    ("0.*.*", ["0.5.0"], []),
    # the rules of the brief, one per line
    ("^0.2.3", ["0.2.3", "0.2.9"], ["0.2.2", "0.3.0"]),
    ("^0.0.3", ["0.0.3"], ["0.0.2", "0.0.4"]),
    ("~1.2.3", ["1.2.3", "1.2.9"], ["1.2.2", "1.3.0"]),
    ("=1.2", ["1.2.0", "1.2.9"], ["1.1.9", "1.3.0"]),
    ("=1", ["1.0.0", "1.9.9"], ["0.9.9", "2.0.0"]),
    (">1.2", ["1.3.0", "2.0.0"], ["1.2.9", "1.2.0"]),
    (">1", ["2.0.0"], ["1.9.9"]),
    ("<=1.2", ["1.2.9", "0.0.0"], ["1.3.0"]),
    ("<1.2", ["1.1.9"], ["1.2.0"]),
    (">=1.2", ["1.2.0", "9.0.0"], ["1.1.9"]),
    (">=1.2.3-alpha", ["1.2.3-beta", "1.2.3"], ["1.2.4-beta"]),
    ("0.2", ["0.2.0", "0.2.7"], ["0.2.1-rc.1", "0.3.0", "0.1.9"]),
    # pre-release rule with partial comparators: exactly as the semver crate evaluates
    # (a partial '>'/'<'/'^' admits pre-releases in its range; '>=', '<=', '=', '~' do not)
    (">1.2, <=1.3.0-beta", ["1.3.0-alpha"], ["1.2.9-alpha"]),
    (">=1.2, <=1.2.5-beta", ["1.2.4"], ["1.2.5-alpha"]),
    ("^1.2, <=1.2.5-beta", ["1.2.5-alpha"], []),
    ("~1.2, <=1.2.5-beta", [], ["1.2.5-alpha"]),
]


@pytest.mark.parametrize(("req", "yes", "no"), MATCHES)
def test_matches(req: str, yes: list[str], no: list[str]) -> None:
    r = R(req)
    for v in yes:
        assert r.matches(V(v)), f"{req} should match {v}"
        assert V(v) in r
    for v in no:
        assert not r.matches(V(v)), f"{req} should not match {v}"
        assert V(v) not in r


EQUIVALENT = [
    # requirement, the same requirement written with explicit bounds (release versions)
    ("^1.2.3", ">=1.2.3, <2.0.0"),
    ("^0.2.3", ">=0.2.3, <0.3.0"),
    ("^0.0.3", "=0.0.3"),
    ("^1.2", ">=1.2.0, <2.0.0"),
    ("^0.0", ">=0.0.0, <0.1.0"),
    ("^1", ">=1.0.0, <2.0.0"),
    ("^0", "<1.0.0"),
    ("~1.2.3", ">=1.2.3, <1.3.0"),
    ("~1.2", ">=1.2.0, <1.3.0"),
    ("~1", ">=1.0.0, <2.0.0"),
    ("=1.2", ">=1.2.0, <1.3.0"),
    ("=1", ">=1.0.0, <2.0.0"),
    ("1.2.*", ">=1.2.0, <1.3.0"),
    ("1.*", ">=1.0.0, <2.0.0"),
    (">1.2", ">=1.3.0"),
    (">1", ">=2.0.0"),
    ("<=1.2", "<1.3.0"),
    ("<1.2", "<1.2.0"),
    (">=1.2", ">=1.2.0"),
    ("*", ">=0.0.0"),
]

GRID = [Version(a, b, c) for a in (0, 1, 2, 3) for b in (0, 1, 2, 3, 4) for c in (0, 1, 2, 3, 4)]


@pytest.mark.parametrize(("req", "explicit"), EQUIVALENT)
def test_rules_for_release_versions(req: str, explicit: str) -> None:
    a, b = R(req), R(explicit)
    assert [v for v in GRID if a.matches(v)] == [v for v in GRID if b.matches(v)]


def test_select_returns_the_highest_match() -> None:
    versions = [V(t) for t in ["0.1.0", "0.2.0", "0.2.3", "0.2.4-rc.1", "0.3.0", "1.0.0"]]
    assert R("0.2").select(versions) == V("0.2.3")
    assert R(">=0.2.4-rc.1, <0.3").select(versions) == V("0.2.4-rc.1")
    assert R("*").select(versions) == V("1.0.0")
    assert R("^2").select(versions) is None
    assert R("*").select([]) is None
    assert R("*").select(iter(versions)) == V("1.0.0")  # any iterable
    # equal precedence (only build metadata differs): no build metadata wins, then the
    # lexically lowest build, whatever the input order
    assert str(R("=1.0.0").select([V("1.0.0+b"), V("1.0.0+a")])) == "1.0.0+a"
    assert str(R("=1.0.0").select([V("1.0.0+a"), V("1.0.0+b")])) == "1.0.0+a"
    assert str(R("=1.0.0").select([V("1.0.0+a.1"), V("1.0.0+a")])) == "1.0.0+a"
    assert str(R("*").select([V("1.0.0+a"), V("1.0.0"), V("1.0.0+0")])) == "1.0.0"
    assert str(R("*").select([V("1.0.0"), V("1.0.1+z")])) == "1.0.1+z"  # precedence first
    assert list(R("0.2").filter(versions)) == [V("0.2.0"), V("0.2.3")]


@pytest.mark.parametrize(
    ("req", "exact"),
    [
        ("=1.2.3", "1.2.3"),
        ("= 1.2.3-rc.1", "1.2.3-rc.1"),
        ("=1.2.3+build", "1.2.3"),
        ("1.2.3", None),
        ("=1.2", None),
        ("=1", None),
        (">=1.2.3", None),
        ("=1.2.3, =1.2.3", None),
        ("1.2.*", None),
        ("*", None),
    ],
)
def test_exact(req: str, exact: str | None) -> None:
    got = R(req).exact()
    assert (None if got is None else str(got)) == exact


def test_star() -> None:
    assert str(VersionReq.STAR) == "*"
    assert VersionReq.STAR.comparators == ()
    assert R("*") is VersionReq.STAR


def test_requirement_is_immutable_and_pickles() -> None:
    r = R(">=0.2, <0.3")
    with pytest.raises(AttributeError):
        r.comparators = ()  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(r)) == r
    assert pickle.loads(pickle.dumps(VersionReq.STAR)) == VersionReq.STAR
    c = r.comparators[0]
    with pytest.raises(AttributeError):
        c.op = "<"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(c)) == c


def test_comparator_objects() -> None:
    r = R(">=0.2, <0.3.1-rc.1, 1.*")
    assert [(c.op, c.major, c.minor, c.patch, c.pre) for c in r.comparators] == [
        (">=", 0, 2, None, ()),
        ("<", 0, 3, 1, ("rc", 1)),
        ("*", 1, None, None, ()),
    ]
    assert [str(c) for c in r.comparators] == [">=0.2", "<0.3.1-rc.1", "1.*"]
    assert repr(r.comparators[0]) == "<Comparator('>=0.2')>"
    assert VersionReq([Comparator(">=", 0, 2), Comparator("<", 0, 3)]) == R(">=0.2, <0.3")
    assert Comparator("^", 1, 2).matches(V("1.9.0"))


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("!", 1), ValueError),
        (("=", 1, None, 2), ValueError),
        (("=", 1, 2, None, ("rc",)), ValueError),
        (("*", 1, 2, 3), ValueError),
        (("=", -1), InvalidVersion),
        (("=", "1"), TypeError),
    ],
)
def test_comparator_validates(args: tuple, error: type[Exception]) -> None:
    with pytest.raises(error):
        Comparator(*args)


def test_requirement_constructor_limits() -> None:
    with pytest.raises(InvalidVersionReq):
        VersionReq([Comparator(">", i) for i in range(33)])
    with pytest.raises(TypeError):
        VersionReq([">=1"])  # type: ignore[list-item]
