"""Unit tests for pkgloader._ref: PackageRef and PackageSpec."""

from __future__ import annotations

import copy
import pickle

import pytest

from pkgloader._errors import InvalidPackageRef, InvalidVersionReq
from pkgloader._ref import PackageRef, PackageSpec
from pkgloader._semver import Version, VersionReq

# --- PackageRef ------------------------------------------------------------------------

VALID_REFS = [
    ("wasi:http", "wasi", "http"),
    ("wasi:io", "wasi", "io"),
    ("a:b", "a", "b"),
    ("wasm-pkg:client", "wasm-pkg", "client"),
    ("my-org2:pkg-v2-beta", "my-org2", "pkg-v2-beta"),
    ("ba:s0", "ba", "s0"),
]


@pytest.mark.parametrize(("text", "namespace", "name"), VALID_REFS)
def test_parse_valid_ref(text: str, namespace: str, name: str) -> None:
    ref = PackageRef.parse(text)
    assert (ref.namespace, ref.name) == (namespace, name)
    assert str(ref) == text
    assert repr(ref) == f"<PackageRef({text!r})>"
    assert ref == PackageRef(namespace, name)
    assert hash(ref) == hash(PackageRef(namespace, name))


INVALID_REFS = [
    "",
    "wasi",
    "wasi:",
    ":http",
    ":",
    "Wasi:http",
    "wasi:HTTP",
    "wasi:2http",
    "wasi:http-2",
    "wasi:-http",
    "wasi:http-",
    "wasi:ht--tp",
    "wasi:my_pkg",
    "wasi:http:types",
    "wasi:http/types",
    "wasi:http@0.2",  # a reference has no version; that is a PackageSpec
    " wasi:http",
    "wasi:http ",
    "wasi :http",
    "wasi.http",
    "wasi:héllo",
    "wasi:http\n",
]


@pytest.mark.parametrize("text", INVALID_REFS)
def test_parse_invalid_ref(text: str) -> None:
    with pytest.raises(InvalidPackageRef) as info:
        PackageRef.parse(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.code == "invalid-package-ref"
    assert err.message.startswith(f"invalid package reference {text!r}: ")
    assert err.hint


REF_ERRORS = [
    (
        "wasi",
        """\
error[invalid-package-ref]: invalid package reference 'wasi': expected 'namespace:name', found no ':'
  wasi
      ^
  hint: write a package reference such as wasi:http""",
    ),
    (
        "Wasi:HTTP",
        """\
error[invalid-package-ref]: invalid package reference 'Wasi:HTTP': uppercase letter 'W' in the namespace at position 1
  Wasi:HTTP
  ^
  hint: package references are lowercase: wasi:http""",
    ),
    (
        "wasi:2http",
        """\
error[invalid-package-ref]: invalid package reference 'wasi:2http': word '2http' of the name starts with a digit at position 6
  wasi:2http
       ^
  hint: write a package reference such as wasi:http""",
    ),
    (
        "wasi:http--client",
        """\
error[invalid-package-ref]: invalid package reference 'wasi:http--client': empty word ('--') in the name at position 10
  wasi:http--client
           ^
  hint: write a package reference such as wasi:http""",
    ),
    (
        "-wasi:http",
        """\
error[invalid-package-ref]: invalid package reference '-wasi:http': '-' at the start of the namespace at position 1
  -wasi:http
  ^
  hint: write a package reference such as wasi:http""",
    ),
    (
        "wasi:http-",
        """\
error[invalid-package-ref]: invalid package reference 'wasi:http-': '-' at the end of the name at position 10
  wasi:http-
           ^
  hint: write a package reference such as wasi:http""",
    ),
    (
        "wasi:",
        """\
error[invalid-package-ref]: invalid package reference 'wasi:': empty name
  wasi:
       ^
  hint: write a package reference such as wasi:http""",
    ),
    (
        ":http",
        """\
error[invalid-package-ref]: invalid package reference ':http': empty namespace at position 1
  :http
  ^
  hint: write a package reference such as wasi:http""",
    ),
    (
        "wasi:http:types",
        """\
error[invalid-package-ref]: invalid package reference 'wasi:http:types': more than one ':' at position 10
  wasi:http:types
           ^
  hint: a package reference is 'namespace:name' with one ':'""",
    ),
    (
        "wasi:http/types",
        """\
error[invalid-package-ref]: invalid package reference 'wasi:http/types': unexpected '/' at position 10; 'wasi:http/types' names an interface, not a package
  wasi:http/types
           ^
  hint: interfaces are not packages; write the package: wasi:http""",
    ),
    (
        "wasi:my_pkg",
        """\
error[invalid-package-ref]: invalid package reference 'wasi:my_pkg': unexpected character '_' at position 8
  wasi:my_pkg
         ^
  hint: labels join words with '-': wasi:my-pkg""",
    ),
    (
        "wasi:http@0.2",
        """\
error[invalid-package-ref]: invalid package reference 'wasi:http@0.2': unexpected '@' at position 10; a package reference has no version
  wasi:http@0.2
           ^
  hint: write wasi:http, or parse 'wasi:http@0.2' as a PackageSpec""",
    ),
    (
        "中文",  # the caret after two wide characters stands four columns in
        """\
error[invalid-package-ref]: invalid package reference '中文': expected 'namespace:name', found no ':'
  中文
      ^
  hint: write a package reference such as wasi:http""",
    ),
]


@pytest.mark.parametrize(("text", "rendered"), REF_ERRORS)
def test_ref_error_messages(text: str, rendered: str) -> None:
    with pytest.raises(InvalidPackageRef) as info:
        PackageRef.parse(text)
    assert info.value.render() == rendered


def test_ref_constructor_validates_each_label() -> None:
    with pytest.raises(InvalidPackageRef) as info:
        PackageRef("Wasi", "http")
    assert info.value.render() == (
        "error[invalid-package-ref]: invalid package namespace 'Wasi': uppercase letter 'W' in the namespace at position 1\n"
        "  Wasi\n"
        "  ^\n"
        "  hint: package references are lowercase: wasi"
    )
    with pytest.raises(InvalidPackageRef) as info:
        PackageRef("wasi", "")
    assert info.value.message == "invalid package name '': empty name"
    with pytest.raises(InvalidPackageRef):
        PackageRef("wasi", "a:b")
    with pytest.raises(TypeError):
        PackageRef("wasi", None)  # type: ignore[arg-type]


def test_ref_ordering_and_hashing() -> None:
    refs = [PackageRef.parse(t) for t in ["wasi:io", "ba:z", "wasi:http", "wasi:cli", "a-b:c"]]
    assert [str(r) for r in sorted(refs)] == ["a-b:c", "ba:z", "wasi:cli", "wasi:http", "wasi:io"]
    assert PackageRef.parse("wasi:http") < PackageRef.parse("wasi:io") <= PackageRef.parse("wasi:io")
    assert PackageRef.parse("wasi:io") > PackageRef.parse("wasi:http") >= PackageRef.parse("wasi:http")
    assert len({PackageRef.parse("wasi:http"), PackageRef("wasi", "http")}) == 1
    assert PackageRef.parse("wasi:http") != "wasi:http"
    with pytest.raises(TypeError):
        PackageRef.parse("wasi:http") < "wasi:io"  # type: ignore[operator]


def test_ref_is_immutable_and_pickles() -> None:
    ref = PackageRef.parse("wasi:http")
    with pytest.raises(AttributeError):
        ref.name = "io"  # type: ignore[misc]
    for clone in (pickle.loads(pickle.dumps(ref)), copy.deepcopy(ref)):
        assert clone == ref


# --- PackageSpec -------------------------------------------------------------------------

VALID_SPECS = [
    # text, canonical str(), requirement (str or None), exact version
    ("wasi:http", "wasi:http", None, None),
    ("wasi:http@0.2", "wasi:http@^0.2", "^0.2", None),
    ("wasi:http@^0.2", "wasi:http@^0.2", "^0.2", None),
    ("wasi:http@0.2.0", "wasi:http@^0.2.0", "^0.2.0", None),
    ("wasi:http@=0.2.0", "wasi:http@=0.2.0", "=0.2.0", "0.2.0"),
    ("wasi:http@=0.2.0-rc-2023-12-05", "wasi:http@=0.2.0-rc-2023-12-05", "=0.2.0-rc-2023-12-05", "0.2.0-rc-2023-12-05"),
    ("wasi:http@^0.2.1", "wasi:http@^0.2.1", "^0.2.1", None),
    ("wasi:http@>=0.2, <0.3", "wasi:http@>=0.2, <0.3", ">=0.2, <0.3", None),
    ("wasi:http@ >= 0.2 ,< 0.3 ", "wasi:http@>=0.2, <0.3", ">=0.2, <0.3", None),
    ("wasi:http@*", "wasi:http@*", "*", None),
    ("wasi:http@0.2.*", "wasi:http@0.2.*", "0.2.*", None),
    ("wasi:http@~0.2.1", "wasi:http@~0.2.1", "~0.2.1", None),
]


@pytest.mark.parametrize(("text", "canonical", "requirement", "exact"), VALID_SPECS)
def test_parse_valid_spec(text: str, canonical: str, requirement: str | None, exact: str | None) -> None:
    spec = PackageSpec.parse(text)
    assert spec.package == PackageRef.parse("wasi:http")
    assert (None if spec.requirement is None else str(spec.requirement)) == requirement
    assert (None if spec.exact_version is None else str(spec.exact_version)) == exact
    assert str(spec) == canonical
    assert repr(spec) == f"<PackageSpec({canonical!r})>"
    assert PackageSpec.parse(canonical) == spec
    assert hash(PackageSpec.parse(canonical)) == hash(spec)


def test_spec_values() -> None:
    ref = PackageRef.parse("wasi:http")
    assert PackageSpec(ref) == PackageSpec.parse("wasi:http")
    assert PackageSpec(ref, VersionReq.parse("0.2")) == PackageSpec.parse("wasi:http@^0.2")
    assert PackageSpec(ref) != PackageSpec(ref, VersionReq.STAR)  # "highest stable" vs "*": same meaning, different text
    assert PackageSpec.parse("wasi:http@=0.2.0").exact_version == Version(0, 2, 0)
    with pytest.raises(TypeError):
        PackageSpec("wasi:http")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PackageSpec(ref, "0.2")  # type: ignore[arg-type]
    spec = PackageSpec.parse("wasi:http@0.2")
    with pytest.raises(AttributeError):
        spec.requirement = None  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(spec)) == spec


INVALID_SPECS = [
    ("", InvalidPackageRef),
    ("@0.2", InvalidPackageRef),
    ("http@0.2", InvalidPackageRef),
    ("Wasi:http@0.2", InvalidPackageRef),
    ("wasi:http/types@0.2.0", InvalidPackageRef),
    ("wasi:http @0.2", InvalidPackageRef),
    ("wasi:@0.2", InvalidPackageRef),
    ("wasi:http@", InvalidVersionReq),
    ("wasi:http@v0.2", InvalidVersionReq),
    ("wasi:http@0.2@1", InvalidVersionReq),
    ("wasi:http@latest", InvalidVersionReq),
    ("wasi:http@>=0.2 <0.3", InvalidVersionReq),
]


@pytest.mark.parametrize(("text", "error"), INVALID_SPECS)
def test_parse_invalid_spec(text: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        PackageSpec.parse(text)
    assert isinstance(info.value, ValueError)


SPEC_ERRORS = [
    (
        "wasi:http@>=0.2, <0.x3",
        InvalidVersionReq,
        """\
error[invalid-version-req]: invalid version requirement '>=0.2, <0.x3' in 'wasi:http@>=0.2, <0.x3': unexpected character '3' after a wildcard at position 22; expected ',' or the end
  wasi:http@>=0.2, <0.x3
                       ^
  hint: write a requirement such as wasi:http@0.2, wasi:http@=0.2.0 or wasi:http@*, or leave out '@' for the highest stable release""",
    ),
    (
        "wasi:http@0.2.01",
        InvalidVersionReq,
        """\
error[invalid-version-req]: invalid version requirement '0.2.01' in 'wasi:http@0.2.01': leading zero in patch version number '01' at position 15
  wasi:http@0.2.01
                ^
  hint: write a requirement such as wasi:http@0.2, wasi:http@=0.2.0 or wasi:http@*, or leave out '@' for the highest stable release""",
    ),
    (
        "wasi:http@",
        InvalidVersionReq,
        """\
error[invalid-version-req]: invalid version requirement '' in 'wasi:http@': empty requirement
  wasi:http@
            ^
  hint: write a requirement such as wasi:http@0.2, wasi:http@=0.2.0 or wasi:http@*, or leave out '@' for the highest stable release""",
    ),
    (
        "wasi:http@1.2.3 - 2",
        InvalidVersionReq,
        """\
error[invalid-version-req]: invalid version requirement '1.2.3 - 2' in 'wasi:http@1.2.3 - 2': expected ',' between comparators, found '-' at position 17
  wasi:http@1.2.3 - 2
                  ^
  hint: hyphen ranges are not supported; write >=LOW, <=HIGH instead of LOW - HIGH""",
    ),
    (
        "wasi:http/types@0.2.0",
        InvalidPackageRef,
        """\
error[invalid-package-ref]: invalid package reference 'wasi:http/types@0.2.0': unexpected '/' at position 10; 'wasi:http/types' names an interface, not a package
  wasi:http/types@0.2.0
           ^
  hint: interfaces are not packages; write the package: wasi:http@0.2.0""",
    ),
    (
        "WASI:HTTP@0.2",
        InvalidPackageRef,
        """\
error[invalid-package-ref]: invalid package reference 'WASI:HTTP@0.2': uppercase letter 'W' in the namespace at position 1
  WASI:HTTP@0.2
  ^
  hint: package references are lowercase: wasi:http@0.2""",
    ),
    (
        "http@0.2",
        InvalidPackageRef,
        """\
error[invalid-package-ref]: invalid package reference 'http@0.2': expected 'namespace:name', found no ':'
  http@0.2
      ^
  hint: write a package reference such as wasi:http@0.2""",
    ),
    (
        "wasi:@0.2",
        InvalidPackageRef,
        """\
error[invalid-package-ref]: invalid package reference 'wasi:@0.2': empty name at position 6
  wasi:@0.2
       ^
  hint: write a package reference such as wasi:http@0.2""",
    ),
    (
        "@0.2",
        InvalidPackageRef,
        """\
error[invalid-package-ref]: invalid package reference '@0.2': expected 'namespace:name' before '@' at position 1
  @0.2
  ^
  hint: write a package reference such as wasi:http@0.2""",
    ),
]


@pytest.mark.parametrize(("text", "error", "rendered"), SPEC_ERRORS)
def test_spec_error_messages(text: str, error: type[Exception], rendered: str) -> None:
    with pytest.raises(error) as info:
        PackageSpec.parse(text)
    assert info.value.render() == rendered  # type: ignore[attr-defined]
