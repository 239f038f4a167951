"""Property tests for versions, requirements and package references, grouped by spec clause.

The oracles here are written independently of pkgloader._semver:

* precedence (SemVer §11) compares version *texts* field by field;
* the grammar (SemVer §2, §9, §10) is the regular expression published on semver.org;
* requirement matching expands each comparator into explicit bounds over that text
  comparison (the rule table of VersionReq, plus the pre-release handling of the Rust
  semver crate; ``X.Y.Z-0`` is the lowest version of ``X.Y.Z``).
"""

from __future__ import annotations

import functools
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pkgloader._errors import InvalidPackageRef, InvalidVersion, InvalidVersionReq
from pkgloader._ref import PackageRef, PackageSpec
from pkgloader._semver import Version, VersionReq

U64 = 2**64 - 1
settings.register_profile("semver-props", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("semver-props")

# --- oracles ---------------------------------------------------------------------------

# https://semver.org/#is-there-a-suggested-regular-expression-regex-to-check-a-semver-string
SEMVER_ORG = re.compile(
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<prerelease>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<buildmetadata>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?",
    re.ASCII,
)


def spec_accepts(text: str) -> bool:
    m = SEMVER_ORG.fullmatch(text)
    return m is not None and all(int(m[g]) <= U64 for g in ("major", "minor", "patch"))


def sign(x: int) -> int:
    return (x > 0) - (x < 0)


def oracle_cmp(a: str, b: str) -> int:
    """SemVer §11 precedence of two version texts: -1, 0 or 1."""
    a, b = a.split("+", 1)[0], b.split("+", 1)[0]  # §10: build metadata does not count
    a_core, _, a_pre = a.partition("-")
    b_core, _, b_pre = b.partition("-")
    for x, y in zip(a_core.split("."), b_core.split(".")):  # §11.2
        if int(x) != int(y):
            return sign(int(x) - int(y))
    if not a_pre or not b_pre:  # §11.3: a pre-release is lower than the release
        return (not a_pre) - (not b_pre)
    a_ids, b_ids = a_pre.split("."), b_pre.split(".")
    for x, y in zip(a_ids, b_ids):  # §11.4
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return sign(int(x) - int(y))
        if x.isdigit() or y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return sign(len(a_ids) - len(b_ids))


def is_release(v: str) -> bool:
    return "-" not in v.split("+", 1)[0]


def mmp(v: str) -> tuple[int, int, int]:
    core = v.split("+", 1)[0].split("-", 1)[0]
    major, minor, patch = (int(x) for x in core.split("."))
    return major, minor, patch


def floor(major: int, minor: int, patch: int) -> str:
    """The lowest version with this major.minor.patch (no pre-release sorts below ``-0``)."""
    return f"{major}.{minor}.{patch}-0"


def oracle_comparator(op: str, major: int, minor: int | None, patch: int | None, pre: str, v: str) -> bool:
    """Does version text ``v`` satisfy the comparator (before the pre-release rule)?

    ``op`` is "=", ">", ">=", "<", "<=", "~" or "^" ("1.*" is "=" with minor None).
    """

    def ge(bound: str) -> bool:
        return oracle_cmp(v, bound) >= 0

    def lt(bound: str) -> bool:
        return oracle_cmp(v, bound) < 0

    rel = is_release(v)
    if patch is not None:
        assert minor is not None
        c = f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
        if op == "=":
            return oracle_cmp(v, c) == 0
        if op == ">":
            return oracle_cmp(v, c) > 0
        if op == ">=":
            return ge(c)
        if op == "<":
            return lt(c)
        if op == "<=":
            return oracle_cmp(v, c) <= 0
        if op == "~":  # ~1.2.3 := >=1.2.3, <1.3.0
            return ge(c) and lt(floor(major, minor + 1, 0))
        if major > 0:  # ^1.2.3 := >=1.2.3, <2.0.0
            return ge(c) and lt(floor(major + 1, 0, 0))
        if minor > 0:  # ^0.2.3 := >=0.2.3, <0.3.0
            return ge(c) and lt(floor(0, minor + 1, 0))
        return ge(c) and lt(floor(0, 0, patch + 1))  # ^0.0.3 := =0.0.3
    # partial: 1 or 1.2
    lo = f"{major}.{minor or 0}.0"
    up_parts = (major + 1, 0, 0) if minor is None else (major, minor + 1, 0)
    up = "%d.%d.%d" % up_parts
    releases_in_range = rel and ge(lo) and lt(up)
    if op in ("=", "~"):  # =1.2 / ~1.2 := >=1.2.0, <1.3.0 (releases only)
        return releases_in_range
    if op == ">":  # >1.2 := >=1.3.0
        return ge(floor(*up_parts))
    if op == ">=":  # >=1.2 := >=1.2.0
        return releases_in_range or ge(floor(*up_parts))
    if op == "<":  # <1.2 := <1.2.0
        return lt(floor(major, minor or 0, 0))
    if op == "<=":  # <=1.2 := <1.3.0
        return releases_in_range or lt(floor(major, minor or 0, 0))
    # ^1 := >=1.0.0, <2.0.0; ^1.2 := >=1.2.0, <2.0.0; ^0.2 := >=0.2.0, <0.3.0; ^0 := <1.0.0
    if minor is None or major > 0:
        return ge(floor(major, minor or 0, 0)) and lt(floor(major + 1, 0, 0))
    return ge(floor(0, minor, 0)) and lt(floor(0, minor + 1, 0))


def oracle_matches(comparators: list[tuple], v: str) -> bool:
    if not all(oracle_comparator(op, M, m, p, pre, v) for op, M, m, p, pre in comparators):
        return False
    if is_release(v):
        return True
    # pre-release rule: some comparator names a pre-release of the same major.minor.patch
    return any(p is not None and pre and (M, m, p) == mmp(v) for op, M, m, p, pre in comparators)


# --- strategies --------------------------------------------------------------------------

numbers = st.one_of(st.integers(0, 12), st.integers(0, U64))
numeric_pre_id = st.integers(0, 10**30).map(str)
alpha_pre_id = st.from_regex(r"[0-9]*[A-Za-z-][0-9A-Za-z-]*", fullmatch=True).filter(lambda s: len(s) <= 12)
pre_ids = st.one_of(numeric_pre_id, alpha_pre_id)
build_ids = st.from_regex(r"[0-9A-Za-z-]+", fullmatch=True).filter(lambda s: len(s) <= 12)


@st.composite
def version_texts(draw: st.DrawFn) -> str:
    text = ".".join(str(draw(numbers)) for _ in range(3))
    pre = draw(st.lists(pre_ids, max_size=4))
    build = draw(st.lists(build_ids, max_size=3))
    if pre:
        text += "-" + ".".join(pre)
    if build:
        text += "+" + ".".join(build)
    return text


# a small domain, so that comparisons and requirement boundaries are hit often
SMALL_PRE = ["alpha", "alpha.1", "alpha.beta", "beta", "beta.2", "beta.11", "rc.1", "0", "1", "1a", "-"]
small_numbers = st.integers(0, 3)


@st.composite
def small_version_texts(draw: st.DrawFn) -> str:
    text = "%d.%d.%d" % (draw(small_numbers), draw(small_numbers), draw(small_numbers))
    if draw(st.booleans()):
        text += "-" + draw(st.sampled_from(SMALL_PRE))
    if draw(st.integers(0, 3)) == 0:
        text += "+" + draw(st.sampled_from(["b", "build.5", "001"]))
    return text


def spaces(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["", "", "", " ", "  "]))


@st.composite
def comparator_cases(draw: st.DrawFn, numbers: st.SearchStrategy[int] = small_numbers) -> tuple[str, tuple]:
    """(text of one comparator, (op, major, minor, patch, pre) as the oracle reads it)."""
    op = draw(st.sampled_from(["", "=", ">", ">=", "<", "<=", "~", "^"]))
    shape = draw(st.sampled_from(["M", "M.m", "M.m.p", "M.m.p", "M.m.p-pre", "M.*", "M.m.*", "M.*.*"]))
    major, minor, patch = draw(numbers), draw(numbers), draw(numbers)
    wild = lambda: draw(st.sampled_from("*xX"))  # noqa: E731
    pre = ""
    if shape == "M":
        body, minor, patch = f"{major}", None, None
    elif shape == "M.m":
        body, patch = f"{major}.{minor}", None
    elif shape == "M.m.p":
        body = f"{major}.{minor}.{patch}"
    elif shape == "M.m.p-pre":
        pre = draw(st.sampled_from(SMALL_PRE))
        body = f"{major}.{minor}.{patch}-{pre}"
    elif shape == "M.*":
        body, minor, patch = f"{major}.{wild()}", None, None
    elif shape == "M.m.*":
        body, patch = f"{major}.{minor}.{wild()}", None
    else:
        body, minor, patch = f"{major}.{wild()}.{wild()}", None, None
    if patch is not None and draw(st.integers(0, 5)) == 0:
        body += "+" + draw(st.sampled_from(["meta", "b.1"]))  # accepted and ignored
    wildcard = "*" in body or "x" in body.lower()
    semantic_op = op or ("=" if wildcard else "^")  # bare 1.* is "exactly 1.x"; bare 1.2 is ^1.2
    text = op + (spaces(draw) if op else "") + body
    return text, (semantic_op, major, minor, patch, pre)


@st.composite
def requirement_cases(draw: st.DrawFn, numbers: st.SearchStrategy[int] = small_numbers) -> tuple[str, list[tuple]]:
    if draw(st.integers(0, 9)) == 0:
        return spaces(draw) + draw(st.sampled_from("*xX")) + spaces(draw), []
    cases = draw(st.lists(comparator_cases(numbers), min_size=1, max_size=4))
    text = spaces(draw)
    for i, (part, _) in enumerate(cases):
        text += ("" if i == 0 else spaces(draw) + "," + spaces(draw)) + part
    return text + spaces(draw), [c for _, c in cases]


labels = st.lists(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), min_size=1, max_size=3).map("-".join)
ref_texts = st.builds(lambda ns, name: f"{ns}:{name}", labels, labels)


# --- §2, §9, §10: grammar and canonical text ---------------------------------------------


@given(version_texts())
@example("0.0.0")
@example("1.0.0-0.3.7+001.x")
def test_version_text_round_trips(text: str) -> None:
    v = Version.parse(text)
    assert str(v) == text
    assert Version.parse(str(v)) == v
    core, _, build = text.partition("+")
    numbers_, _, pre = core.partition("-")
    assert (v.major, v.minor, v.patch) == tuple(int(x) for x in numbers_.split("."))
    assert ".".join(map(str, v.pre)) == pre
    assert ".".join(v.build) == build
    assert v.is_prerelease == bool(pre)
    assert all(isinstance(p, int) == p_text.isdigit() for p, p_text in zip(v.pre, pre.split(".")))


@given(st.builds(Version, numbers, numbers, numbers, st.lists(pre_ids, max_size=3), st.lists(build_ids, max_size=2)))
def test_constructed_versions_round_trip(v: Version) -> None:
    again = Version.parse(str(v))
    assert again == v and again.build == v.build and again.pre == v.pre


near_versions = st.one_of(
    st.text(alphabet="0123456789.-+aZx_ v\t", max_size=16),
    st.builds(
        lambda text, i, ch: text[:i] + ch + text[i:],
        version_texts(),
        st.integers(0, 40),
        st.sampled_from(list("0.-+_ vé\n")),
    ),
    st.builds(lambda text, i: text[:i] + text[i + 1 :], version_texts(), st.integers(0, 40)),
)


@given(near_versions)
@example("1.2.3\n")
@example("18446744073709551616.0.0")
def test_version_grammar_is_semver_org_grammar(text: str) -> None:
    try:
        v = Version.parse(text)
    except InvalidVersion as err:
        assert not spec_accepts(text)
        quoted = repr(text) if len(text) <= 80 else repr(text[:77])[:-1]  # long inputs are shortened
        assert err.message.startswith(f"invalid version {quoted}")
        if text:
            line, caret = err.details
            assert caret.endswith("^") and set(caret[:-1]) <= {" "}
            assert len(caret) - 1 <= len(line)
    else:
        assert spec_accepts(text)
        assert str(v) == text


# --- §11: precedence -----------------------------------------------------------------------

any_version_texts = st.one_of(small_version_texts(), version_texts())


@given(any_version_texts, any_version_texts)
@example("1.0.0-alpha", "1.0.0-alpha.1")
@example("1.0.0-beta.2", "1.0.0-beta.11")
@example("0.9.0", "0.10.0")
@example("1.0.0+a", "1.0.0+b")
def test_precedence_matches_oracle(a_text: str, b_text: str) -> None:
    a, b = Version.parse(a_text), Version.parse(b_text)
    expected = oracle_cmp(a_text, b_text)
    assert (a < b, a == b, a > b) == (expected < 0, expected == 0, expected > 0)
    assert (a <= b, a != b, a >= b) == (expected <= 0, expected != 0, expected >= 0)
    if a == b:
        assert hash(a) == hash(b)
    # sort_key refines precedence with the build metadata; equal only for equal texts
    assert (a.sort_key == b.sort_key) == (a_text == b_text)
    if expected:
        assert (a.sort_key < b.sort_key) == (expected < 0)


@given(st.lists(any_version_texts, max_size=12))
def test_ordering_is_a_total_order_consistent_with_oracle(texts: list[str]) -> None:
    by_module = [str(v) for v in sorted(Version.parse(t) for t in texts)]
    by_oracle = sorted(texts, key=functools.cmp_to_key(oracle_cmp))
    assert by_module == by_oracle  # both sorts are stable, so equal-precedence texts keep their order
    assert [str(v) for v in sorted((Version.parse(t) for t in texts), key=lambda v: v.sort_key)] == sorted(
        texts, key=lambda t: (functools.cmp_to_key(oracle_cmp)(t), t.partition("+")[2])
    )


# --- OCI tags ------------------------------------------------------------------------------


@given(version_texts())
def test_tag_round_trip_keeps_build(text: str) -> None:
    v = Version.parse(text)
    tag = v.to_tag()
    assert "+" not in tag
    back = Version.from_tag(tag)
    assert back is not None
    assert back == v and back.build == v.build and str(back) == text


@given(st.text(max_size=30))
@example("latest")
@example("sha256-abc.sig")
def test_from_tag_never_raises(tag: str) -> None:
    v = Version.from_tag(tag)
    if v is not None:
        assert v.to_tag() == tag.replace("+", "_")
        assert Version.from_tag(v.to_tag()) == v


# --- requirements: syntax and canonical form ------------------------------------------------


@given(requirement_cases(numbers))
def test_requirement_round_trips(case: tuple[str, list[tuple]]) -> None:
    text, comparators = case
    req = VersionReq.parse(text)
    canonical = str(req)
    assert VersionReq.parse(canonical) == req
    assert str(VersionReq.parse(canonical)) == canonical
    assert hash(VersionReq.parse(canonical)) == hash(req)
    assert len(req.comparators) == len(comparators)
    assert canonical == (", ".join(_canonical_parts(text)) or "*")


def _canonical_parts(text: str) -> list[str]:
    """Independent canonical form of each comparator: spaces and build metadata removed,
    a bare version gets '^', wildcards become '*' and explicit-operator wildcards vanish."""
    parts = []
    stripped = text.strip()
    if stripped in ("*", "x", "X"):
        return []
    for part in stripped.split(","):
        part = part.replace(" ", "").split("+", 1)[0]
        op = re.match(r"[<>=~^]*", part)[0]  # type: ignore[index]
        body = part[len(op) :]
        pieces = body.split(".")
        if any(p in ("*", "x", "X") for p in pieces):
            numeric = [p for p in pieces if p not in ("*", "x", "X")]
            body = ".".join(numeric) if op else ".".join(numeric + ["*"])
        part = (op or ("" if body.endswith("*") else "^")) + body
        parts.append(part)
    return parts


bad_requirements = st.sampled_from(
    ["", ">=", "1.2.3 - 2", "^1 || ^2", "v1", "1.2-rc", ">=1, *", "1.*.2", "01", "1,", ">=0.2 <0.3", "=*", "latest"]
)


@given(ref_texts, bad_requirements)
def test_spec_requirement_errors_point_into_the_whole_input(ref: str, bad: str) -> None:
    try:
        VersionReq.parse(bad)
    except InvalidVersionReq as err:
        alone = err
    else:  # pragma: no cover - every sample is invalid
        raise AssertionError(bad)
    text = f"{ref}@{bad}"
    try:
        PackageSpec.parse(text)
    except InvalidVersionReq as err:
        assert err.details[0] == text
        assert err.details[1].index("^") == len(ref) + 1 + (alone.details[1].index("^") if bad else 0)
        assert err.message.startswith(f"invalid version requirement {bad!r} in {text!r}: ")
    else:  # pragma: no cover
        raise AssertionError(text)


# --- requirements: matching ----------------------------------------------------------------


@settings(max_examples=300)
@given(requirement_cases(), st.lists(small_version_texts(), min_size=1, max_size=8))
@example((">1.2, <=1.3.0-beta", [(">", 1, 2, None, ""), ("<=", 1, 3, 0, "beta")]), ["1.3.0-alpha"])
@example((">=1.2, <=1.2.3-beta", [(">=", 1, 2, None, ""), ("<=", 1, 2, 3, "beta")]), ["1.2.3-alpha"])
@example(("^1.2, <=1.2.3-beta", [("^", 1, 2, None, ""), ("<=", 1, 2, 3, "beta")]), ["1.2.3-alpha"])
@example((">=1.2.3-alpha", [(">=", 1, 2, 3, "alpha")]), ["1.2.3-beta", "1.2.4-beta"])
def test_matches_equals_oracle(case: tuple[str, list[tuple]], version_texts_: list[str]) -> None:
    text, comparators = case
    req = VersionReq.parse(text)
    for v_text in version_texts_:
        assert req.matches(Version.parse(v_text)) == oracle_matches(comparators, v_text), (text, v_text)


@settings(max_examples=200)
@given(requirement_cases(), st.lists(small_version_texts(), max_size=12))
def test_select_is_the_highest_oracle_match(case: tuple[str, list[tuple]], texts: list[str]) -> None:
    text, comparators = case
    matching = [t for t in texts if oracle_matches(comparators, t)]
    got = VersionReq.parse(text).select(Version.parse(t) for t in texts)
    if not matching:
        assert got is None
    else:
        best = max(matching, key=functools.cmp_to_key(oracle_cmp))
        assert got is not None and oracle_cmp(str(got), best) == 0
        assert str(got) in matching


@given(small_version_texts())
def test_exact_requirement_matches_only_its_version(text: str) -> None:
    v = Version.parse(text)
    req = VersionReq.parse("=" + text)
    assert req.exact() == v
    assert req.matches(v)
    assert not req.matches(Version(v.major, v.minor, v.patch + 1))


# --- package references and specs -----------------------------------------------------------


@given(ref_texts)
def test_ref_round_trips(text: str) -> None:
    ref = PackageRef.parse(text)
    assert str(ref) == text
    assert PackageRef.parse(str(ref)) == ref
    assert PackageRef(ref.namespace, ref.name) == ref
    assert (ref.namespace, ref.name) == tuple(text.split(":"))


@given(st.lists(ref_texts, max_size=8))
def test_ref_order_is_namespace_then_name(texts: list[str]) -> None:
    refs = sorted(PackageRef.parse(t) for t in texts)
    assert [str(r) for r in refs] == [f"{a}:{b}" for a, b in sorted(tuple(t.split(":")) for t in texts)]


@given(ref_texts, st.integers(0, 30), st.sampled_from(list("ABZ_ .é/")))
def test_bad_character_in_ref_is_pointed_at(text: str, i: int, ch: str) -> None:
    i = min(i, len(text))
    bad = text[:i] + ch + text[i:]
    try:
        PackageRef.parse(bad)
    except InvalidPackageRef as err:
        line, caret = err.details
        assert line == bad
        assert caret == " " * i + "^"
        assert f"at position {i + 1}" in err.message
    else:  # pragma: no cover
        raise AssertionError(bad)


@given(ref_texts, st.one_of(st.none(), requirement_cases(numbers)))
def test_spec_round_trips(ref: str, case: tuple[str, list] | None) -> None:
    text = ref if case is None else f"{ref}@{case[0]}"
    spec = PackageSpec.parse(text)
    assert spec.package == PackageRef.parse(ref)
    if case is None:
        assert spec.requirement is None and str(spec) == ref
    else:
        assert spec.requirement == VersionReq.parse(case[0])
        assert str(spec) == f"{ref}@{VersionReq.parse(case[0])}"
    assert PackageSpec.parse(str(spec)) == spec
    assert spec.exact_version == (None if spec.requirement is None else spec.requirement.exact())
