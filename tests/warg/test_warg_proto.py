"""Protobuf wire decoding (prost semantics), identifiers, keys, hashes, SemVer (spec §1, §2)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pkgloader._errors import InvalidPackageRef, WargInvalidRecord, WargSignatureError, WargUnsupported
from pkgloader.backends.warg import package_log_id, validate_package_name
from pkgloader.backends.warg._crypto import BadValue, b64decode, parse_hash, parse_public_key, parse_signature, sha256_text
from pkgloader.backends.warg._proto import (
    ProtoError,
    field_bytes,
    field_packed_varints,
    field_varint,
    iter_fields,
    leb128,
    read_varint,
)
from pkgloader.backends.warg._records import (
    GrantEntry,
    InitEntry,
    ReleaseEntry,
    RevokeEntry,
    Timestamp,
    YankEntry,
    decode_operator_record,
    decode_package_record,
    encode_package_record,
    is_semver,
)
from support.wargfactory import SigningKey, load_vector

IDS = load_vector("derived/identifiers.json")
ALICE = IDS["keys"]["alice"]["public"]
BOB = IDS["keys"]["bob"]["public"]
DIGEST = sha256_text(b"x")
TIME = field_bytes(3, field_varint(1, 1_700_000_000))


def rec(*fields: bytes) -> bytes:
    return b"".join(fields)


def entry(variant: int, body: bytes) -> bytes:
    return field_bytes(4, field_bytes(variant, body))


def release_body(version: str = "1.0.0", digest: str = DIGEST) -> bytes:
    return field_bytes(1, version.encode()) + field_bytes(2, digest.encode())


def bad(content: bytes, cls: type = WargInvalidRecord, operator: bool = False) -> str:
    with pytest.raises(BadValue) as info:
        (decode_operator_record if operator else decode_package_record)(content)
    assert info.value.error is cls
    return info.value.message


# --- varints and fields ------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_round_trip(n: int) -> None:
    data = leb128(n)
    assert read_varint(data + b"\xff", 0) == (n, len(data))


def test_varint_limits() -> None:
    with pytest.raises(ProtoError, match="truncated"):
        read_varint(b"\x80\x80", 0)
    with pytest.raises(ProtoError, match="64 bits"):
        read_varint(b"\xff" * 9 + b"\x02", 0)
    with pytest.raises(ProtoError, match="longer than 10"):
        read_varint(b"\xff" * 10 + b"\x01", 0)
    assert read_varint(b"\xff" * 9 + b"\x01", 0) == (2**64 - 1, 10)


def test_iter_fields_errors() -> None:
    with pytest.raises(ProtoError, match="field number 0"):
        list(iter_fields(b"\x00\x01"))
    with pytest.raises(ProtoError, match="wire type 3"):
        list(iter_fields(b"\x0b"))
    with pytest.raises(ProtoError, match="runs past the end"):
        list(iter_fields(b"\x0a\x05abc"))
    with pytest.raises(ProtoError, match="truncated fixed"):
        list(iter_fields(b"\x09\x00\x00"))


# --- records -------------------------------------------------------------------------------------


def test_minimal_release_record() -> None:
    r = decode_package_record(rec(TIME, entry(4, release_body())))
    assert r == (None, 0, Timestamp(1_700_000_000, 0), (ReleaseEntry("1.0.0", DIGEST),))


def test_unknown_fields_are_ignored() -> None:
    extra = field_varint(15, 7) + b"\x81\x01" + b"\x00" * 8 + b"\x8d\x01" + b"\x00" * 4 + field_bytes(18, b"junk")
    plain = decode_package_record(rec(TIME, entry(4, release_body())))
    assert decode_package_record(rec(extra, TIME, entry(4, release_body() + extra), extra)) == plain


def test_packed_and_unpacked_permissions() -> None:
    packed = entry(2, field_bytes(1, BOB.encode()) + field_packed_varints(2, [1, 2]))
    unpacked = entry(2, field_bytes(1, BOB.encode()) + field_varint(2, 1) + field_varint(2, 2))
    expected = (GrantEntry(BOB, ("release", "yank")),)
    assert decode_package_record(rec(TIME, packed)).entries == expected
    assert decode_package_record(rec(TIME, unpacked)).entries == expected


@pytest.mark.parametrize("value", [0, 3, -1])
def test_invalid_package_permissions(value: int) -> None:
    assert "invalid permission value" in bad(rec(TIME, entry(3, field_bytes(1, b"k") + field_varint(2, value))))


def test_operator_permissions_and_init_field_order() -> None:
    content = rec(
        TIME,
        entry(1, field_bytes(1, b"sha256") + field_bytes(2, ALICE.encode())),
        entry(2, field_bytes(1, BOB.encode()) + field_packed_varints(2, [1, 2, 3])),
    )
    r = decode_operator_record(content)
    assert r.entries == (InitEntry(ALICE), GrantEntry(BOB, ("commit", "defineNamespace", "importNamespace")))
    # the package decoder reads field 2 as the hash algorithm: a key text is not one
    bad(content, WargUnsupported)
    assert "invalid permission value 4" in bad(rec(TIME, entry(2, field_bytes(1, BOB.encode()) + field_varint(2, 4))), operator=True)


def test_entry_without_contents() -> None:
    assert bad(rec(TIME, field_bytes(4, b""))) == "entry has no contents"


def test_oneof_merge_and_replace() -> None:
    # the same variant twice merges (prost), a different variant replaces
    split = field_bytes(4, field_bytes(4, field_bytes(1, b"1.0.0")) + field_bytes(4, field_bytes(2, DIGEST.encode())))
    assert decode_package_record(rec(TIME, split)).entries == (ReleaseEntry("1.0.0", DIGEST),)
    replaced = field_bytes(4, field_bytes(4, release_body()) + field_bytes(5, field_bytes(1, b"2.0.0")))
    assert decode_package_record(rec(TIME, replaced)).entries == (YankEntry("2.0.0"),)


def test_time_is_required_and_merged() -> None:
    assert bad(rec(entry(4, release_body()))) == "record has no time"
    merged = rec(field_bytes(3, field_varint(1, 5)), field_bytes(3, field_varint(2, 7)))
    assert decode_package_record(merged).time == Timestamp(5, 7)


@pytest.mark.parametrize(
    "seconds,nanos,expected",
    [(10, -1, Timestamp(9, 999_999_999)), (10, 1_500_000_000, Timestamp(11, 500_000_000)), (-3, 5, Timestamp(-3, 5))],
)
def test_time_normalization(seconds: int, nanos: int, expected: Timestamp) -> None:
    content = field_bytes(3, field_varint(1, seconds) + field_varint(2, nanos))
    assert decode_package_record(content).time == expected


def test_version_field() -> None:
    assert decode_package_record(rec(field_varint(2, 3), TIME)).version == 3
    assert decode_package_record(rec(field_varint(2, 2**32), TIME)).version == 0  # prost truncates uint32
    assert "wire type" in bad(rec(field_bytes(2, b"\x00"), TIME))


@pytest.mark.parametrize(
    "prev,cls",
    [
        (b"sha256:" + b"A" * 64, WargInvalidRecord),
        (b"sha256:abc", WargInvalidRecord),
        (b"md5:" + b"0" * 32, WargUnsupported),
        (b"", WargInvalidRecord),
        (b"\xff\xfe", WargInvalidRecord),
    ],
)
def test_bad_prev(prev: bytes, cls: type) -> None:
    bad(rec(field_bytes(1, prev), TIME), cls)


def test_invalid_utf8_and_truncation() -> None:
    assert "UTF-8" in bad(rec(TIME, entry(4, field_bytes(1, b"\xff") + field_bytes(2, DIGEST.encode()))))
    assert "malformed protobuf" in bad(rec(TIME, entry(4, release_body()))[:-3])


versions = st.builds(
    lambda a, b, c, pre, build: f"{a}.{b}.{c}" + (f"-{pre}" if pre else "") + (f"+{build}" if build else ""),
    st.integers(0, 2**64 - 1),
    st.integers(0, 999),
    st.integers(0, 999),
    st.sampled_from(["", "alpha", "rc.1", "0.a-b", "x-1.2"]),
    st.sampled_from(["", "001", "sha.5114f85", "a-b"]),
)
digests = st.binary(min_size=0, max_size=16).map(sha256_text)
entries = st.one_of(
    st.builds(ReleaseEntry, versions, digests),
    st.builds(YankEntry, versions),
    st.builds(GrantEntry, st.sampled_from([ALICE, BOB]), st.lists(st.sampled_from(["release", "yank"]), max_size=3).map(tuple)),
    st.builds(RevokeEntry, st.text(max_size=20), st.lists(st.sampled_from(["release", "yank"]), max_size=3).map(tuple)),
    st.sampled_from([ALICE, BOB]).map(InitEntry),
)


@settings(max_examples=150, deadline=None)
@given(
    prev=st.one_of(st.none(), digests),
    time=st.builds(Timestamp, st.integers(-(2**40), 2**40), st.integers(0, 999_999_999)),
    items=st.lists(entries, max_size=6),
)
def test_record_round_trip(prev: str | None, time: Timestamp, items: list) -> None:
    content = encode_package_record(prev, time, items)
    assert decode_package_record(content) == (prev, 0, time, tuple(items))


# --- identifiers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,cls",
    [
        ("sha256:" + "0" * 64, None),
        ("sha256:" + "A" * 64, WargInvalidRecord),
        ("SHA256:" + "0" * 64, WargUnsupported),
        ("sha512:" + "0" * 128, WargUnsupported),
        ("sha256:" + "0" * 62, WargInvalidRecord),
        ("sha256:" + "0" * 66, WargInvalidRecord),
        ("sha256:" + "g" * 64, WargInvalidRecord),
        ("sha256" + "0" * 64, WargInvalidRecord),
        ("sha256:" + "0" * 64 + "\n", WargInvalidRecord),
    ],
)
def test_parse_hash(text: str, cls: type | None) -> None:
    if cls is None:
        assert parse_hash(text) == text
    else:
        with pytest.raises(BadValue) as info:
            parse_hash(text)
        assert info.value.error is cls


def test_public_key_parsing() -> None:
    assert parse_public_key(ALICE).text == ALICE
    raw = base64.b64decode(ALICE.split(":")[1])
    for text, cls in [
        ("ecdsa-p256:" + ALICE.split(":")[1] + ":x", WargInvalidRecord),
        ("ed25519:" + ALICE.split(":")[1], WargUnsupported),
        ("ecdsa-p256:" + base64.b64encode(raw[:-1]).decode(), WargInvalidRecord),
        ("ecdsa-p256:" + base64.b64encode(b"\x02" + b"\xff" * 32).decode(), WargInvalidRecord),
        (IDS["keys"]["alice"]["publicUncompressed"].rstrip("="), WargInvalidRecord),  # padding required
    ]:
        with pytest.raises(BadValue) as info:
            parse_public_key(text)
        assert info.value.error is cls, text


def test_base64_must_be_canonical() -> None:
    assert b64decode("QUI=", "x") == b"AB"
    for text in ("QUJ=", "QUI", "QUI==", "QU I=", "QUI=\n"):
        with pytest.raises(BadValue):
            b64decode(text, "x")


def test_signature_parsing() -> None:
    key = SigningKey.generate()
    sig = key.sign(b"P:", b"m")
    assert parse_signature(sig) == base64.b64decode(sig.split(":")[1])
    for text in ("ecdsa-p256", "ecdsa-p256:a:b", "ecdsa-p256:****", 5):
        with pytest.raises(BadValue) as info:
            parse_signature(text)
        assert info.value.error is WargSignatureError
    with pytest.raises(BadValue) as info:
        parse_signature("rsa:AAAA")
    assert info.value.error is WargUnsupported


@pytest.mark.parametrize("name", ["wasi:http", "ba:example-pkg", "a1:b2-c3", "my-ns:a-b-c"])
def test_valid_package_names(name: str) -> None:
    assert validate_package_name(name) == name
    assert package_log_id(name).startswith("sha256:")


@pytest.mark.parametrize("name", ["wasi", "Wasi:http", "wasi:HTTP", "wasi:http:x", "wasi:-http", "wasi:http-", "wasi:a--b", "1a:b", "a:2d", "a:b-2d", "", " a:b", 5])
def test_invalid_package_names(name: object) -> None:
    with pytest.raises(InvalidPackageRef):
        validate_package_name(name)


@pytest.mark.parametrize(
    "version",
    ["0.0.0", "1.2.3", "1.2.3-alpha.1", "1.2.3-0a", "1.2.3+001", "1.2.3-rc.1+build.5", "18446744073709551615.0.0", "1.0.0--"],
)
def test_semver_valid(version: str) -> None:
    assert is_semver(version)


@pytest.mark.parametrize(
    "version",
    ["1.2", "v1.2.3", "01.2.3", "1.2.3-01", "1.2.3-", "1.2.3+", "1.2.3 ", "1.2.3-a..b", "18446744073709551616.0.0", "١.2.3", "1.2.3+a+b"],
)
def test_semver_invalid(version: str) -> None:
    assert not is_semver(version)


def test_high_s_signatures_are_accepted() -> None:
    """The reference has no low-S rule for P-256; neither do we."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    key = SigningKey.generate()
    sig = key.sign(b"P:", b"message")
    r, s = decode_dss_signature(parse_signature(sig))
    flipped = encode_dss_signature(r, n - s)
    assert key.public.verify(b"P:", b"message", parse_signature(sig))
    assert key.public.verify(b"P:", b"message", flipped)
    assert not key.public.verify(b"P:", b"other", flipped)
