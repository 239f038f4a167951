"""Package and operator log state machines (spec §3, §4): rules, quirks and failure modes."""

from __future__ import annotations

from typing import Any

import pytest

from pkgloader._errors import (
    WargChainError,
    WargInvalidRecord,
    WargSignatureError,
    WargTimestampError,
    WargUnauthorized,
    WargUnsupported,
    WargVerificationError,
)
from pkgloader.backends.warg import PublishedRecord, validate_operator_log, validate_package_log
from pkgloader.backends.warg._crypto import OPERATOR_SIGNATURE_PREFIX, PACKAGE_SIGNATURE_PREFIX
from pkgloader.backends.warg._state import PackageLogBuilder
from support.wargfactory import (
    DefineNamespaceEntry,
    FakeWargRegistry,
    GrantEntry,
    ImportNamespaceEntry,
    InitEntry,
    ReleaseEntry,
    RevokeEntry,
    SigningKey,
    Timestamp,
    YankEntry,
    sha256_text,
)

NAME = "example:pkg"
DIGEST = sha256_text(b"content")


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {n: SigningKey.generate() for n in ("owner", "bob", "carol", "stranger")}


@pytest.fixture
def reg() -> FakeWargRegistry:
    return FakeWargRegistry()


def validate(reg: FakeWargRegistry, name: str = NAME) -> Any:
    return validate_package_log(name, reg.records(name))


def raises(cls: type[WargVerificationError], reg: FakeWargRegistry, name: str = NAME) -> WargVerificationError:
    with pytest.raises(cls) as info:
        validate(reg, name)
    assert type(info.value) is cls
    return info.value


# --- happy paths and quirks -----------------------------------------------------------------------


def test_full_lifecycle(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner, bob = keys["owner"], keys["bob"]
    reg.create_package(NAME, owner, grants={bob: ("release",)})
    d1 = reg.release(NAME, "1.0.0", b"one", bob)
    d2 = reg.release(NAME, "1.1.0-rc.1+build.7", b"two", owner)
    reg.yank(NAME, "1.0.0", owner)
    reg.revoke(NAME, owner, bob.key_id, ("release",))
    state = validate(reg)
    assert [(r.version, r.yanked, r.available_content, r.content) for r in state.releases] == [
        ("1.0.0", True, None, d1),
        ("1.1.0-rc.1+build.7", False, d2, d2),
    ]
    first = state.releases[0]
    assert first.by == bob.key_id and first.yanked_by == owner.key_id
    assert first.yanked_at is not None and first.yanked_at > first.timestamp
    assert dict(state.permissions) == {owner.key_id: frozenset({"release", "yank"}), bob.key_id: frozenset()}
    assert dict(state.keys) == {owner.key_id: owner.public.text, bob.key_id: bob.public.text}
    assert state.head.length == 5 and state.head.registry_index == 5
    assert state.head.record_id == reg.records(NAME)[-1]["fetchToken"] == state.head.fetch_token
    assert state.release("1.1.0-rc.1+build.7") is state.releases[1]
    assert state.release("1.1.0-rc.1") is None


def test_build_metadata_distinguishes_releases(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.create_package(NAME, keys["owner"])
    reg.release(NAME, "1.0.0+a", b"a", keys["owner"])
    reg.release(NAME, "1.0.0+b", b"b", keys["owner"])
    assert [r.version for r in validate(reg).releases] == ["1.0.0+a", "1.0.0+b"]


def test_equal_timestamps_are_allowed(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    t = Timestamp(1_700_000_000, 5)
    reg.append_package(NAME, [InitEntry(keys["owner"].public.text)], key=keys["owner"], time=t)
    reg.append_package(NAME, [ReleaseEntry("1.0.0", DIGEST)], key=keys["owner"], time=t)
    assert validate(reg).head.timestamp == t


def test_anyone_may_grant_an_empty_permission_set_and_sign_empty_records(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    stranger = keys["stranger"]
    reg.create_package(NAME, keys["owner"])
    reg.append_package(NAME, [GrantEntry(stranger.public.text, ())], key=stranger)
    reg.append_package(NAME, [], key=stranger)
    state = validate(reg)
    assert state.permissions[stranger.key_id] == frozenset()


def test_revoked_key_still_signs_permission_free_records(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner, bob = keys["owner"], keys["bob"]
    reg.create_package(NAME, owner, grants={bob: ("release", "yank")})
    reg.revoke(NAME, owner, bob.key_id, ("release", "yank"))
    reg.append_package(NAME, [], key=bob)
    assert validate(reg).permissions[bob.key_id] == frozenset()


def test_uncompressed_key_in_grant_is_stored_canonically(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    import base64

    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    bob = keys["bob"]
    raw = bob.public._key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    reg.create_package(NAME, keys["owner"])
    reg.append_package(NAME, [GrantEntry("ecdsa-p256:" + base64.b64encode(raw).decode(), ("release",))], key=keys["owner"])
    reg.release(NAME, "1.0.0", b"x", bob)
    state = validate(reg)
    assert state.keys[bob.key_id] == bob.public.text


def test_incremental_validation_equals_full(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner, bob = keys["owner"], keys["bob"]
    reg.create_package(NAME, owner, grants={bob: ("release",)})
    for i in range(6):
        reg.release(NAME, f"0.{i}.0", bytes([i]), bob if i % 2 else owner)
    reg.yank(NAME, "0.1.0", owner)
    records = reg.records(NAME)
    full = validate_package_log(NAME, records)
    for cut in range(1, len(records)):
        first = validate_package_log(NAME, records[:cut])
        assert validate_package_log(NAME, records[cut:], previous=first) == full


# --- chain, version, time -----------------------------------------------------------------------------


def test_prev_on_first_record(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.append_package(NAME, [InitEntry(keys["owner"].public.text)], key=keys["owner"], prev=DIGEST)
    err = raises(WargChainError, reg)
    rid = reg.records(NAME)[0]["fetchToken"]
    assert err.render() == (
        "error[warg-broken-chain]: package log example:pkg: record 0 (registry index 1) is the first record of the log but has a prev\n"
        f"  record id {rid}\n"
        f"  got prev {DIGEST}\n"
        "  hint: the registry served a log that does not verify; nothing of it was used"
    )


def test_missing_prev(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.create_package(NAME, keys["owner"])
    reg.append_package(NAME, [ReleaseEntry("1.0.0", DIGEST)], key=keys["owner"], prev=None)
    err = raises(WargChainError, reg)
    assert err.message == "package log example:pkg: record 1 (registry index 2) has no prev although it is not the first record"


def test_wrong_prev(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.create_package(NAME, keys["owner"])
    head = reg.records(NAME)[0]["fetchToken"]
    reg.append_package(NAME, [ReleaseEntry("1.0.0", DIGEST)], key=keys["owner"], prev=DIGEST)
    err = raises(WargChainError, reg)
    assert err.message == "package log example:pkg: record 1 (registry index 2) does not chain to the previous record"
    assert err.details[1:] == [f"expected prev {head} (record 0)", f"got      prev {DIGEST}"]


def test_dropped_record_breaks_the_chain(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.create_package(NAME, keys["owner"])
    reg.release(NAME, "1.0.0", b"1", keys["owner"])
    reg.release(NAME, "2.0.0", b"2", keys["owner"])
    records = reg.records(NAME)
    with pytest.raises(WargChainError):
        validate_package_log(NAME, [records[0], records[2]])


def test_protocol_version(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.append_package(NAME, [InitEntry(keys["owner"].public.text)], key=keys["owner"], version=1)
    err = raises(WargUnsupported, reg)
    assert err.code == "warg-unsupported"
    assert "unsupported protocol version 1" in err.message


def test_timestamp_going_back(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.append_package(NAME, [InitEntry(keys["owner"].public.text)], key=keys["owner"], time=Timestamp(100, 5))
    reg.append_package(NAME, [], key=keys["owner"], time=Timestamp(100, 4))
    err = raises(WargTimestampError, reg)
    assert err.message == "package log example:pkg: record 1 (registry index 2) is older than the previous record"
    assert err.details[1:] == ["previous time 100.5", "record time   100.4"]


# --- permissions ------------------------------------------------------------------------------------


def test_release_without_permission(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner, bob = keys["owner"], keys["bob"]
    reg.create_package(NAME, owner, grants={bob: ()})
    reg.release(NAME, "1.0.0", b"x", bob)
    err = raises(WargUnauthorized, reg)
    assert err.message == (
        f"package log example:pkg: record 1 (registry index 2) releases 1.0.0, "
        f"but key {bob.key_id} does not hold the 'release' permission"
    )


def test_release_after_revoke(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner, bob = keys["owner"], keys["bob"]
    reg.create_package(NAME, owner, grants={bob: ("release",)})
    reg.release(NAME, "1.0.0", b"x", bob)
    reg.revoke(NAME, owner, bob.key_id, ("release",))
    reg.release(NAME, "1.0.1", b"y", bob)
    raises(WargUnauthorized, reg)


def test_yank_without_permission(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner, bob = keys["owner"], keys["bob"]
    reg.create_package(NAME, owner, grants={bob: ("release",)})
    reg.release(NAME, "1.0.0", b"x", bob)
    reg.yank(NAME, "1.0.0", bob)
    assert "'yank' permission" in raises(WargUnauthorized, reg).message


def test_grant_of_permission_signer_lacks(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner, bob, carol = keys["owner"], keys["bob"], keys["carol"]
    reg.create_package(NAME, owner, grants={bob: ("release",)})
    reg.grant(NAME, bob, carol, ("release", "yank"))
    err = raises(WargUnauthorized, reg)
    assert err.message.endswith(f"grants 'yank' to {carol.key_id}, but signer {bob.key_id} does not hold it")


def test_revoke_by_key_without_that_permission(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner, bob = keys["owner"], keys["bob"]
    reg.create_package(NAME, owner, grants={bob: ("release",)})
    reg.revoke(NAME, bob, owner.key_id, ("yank",))
    raises(WargUnauthorized, reg)


def test_revoke_of_permission_not_held(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner, bob = keys["owner"], keys["bob"]
    reg.create_package(NAME, owner, grants={bob: ("release",)})
    reg.revoke(NAME, owner, bob.key_id, ("yank",))
    err = raises(WargInvalidRecord, reg)
    assert err.message.endswith(f"revokes 'yank' from {bob.key_id}, which does not hold it")


def test_revoke_of_unknown_key(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.create_package(NAME, keys["owner"])
    reg.revoke(NAME, keys["owner"], "not-even-a-hash", ("release",))
    raises(WargInvalidRecord, reg)


def test_signed_by_unknown_key(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.create_package(NAME, keys["owner"])
    reg.append_package(NAME, [], key=keys["stranger"])
    err = raises(WargUnauthorized, reg)
    assert err.message == (
        f"package log example:pkg: record 1 (registry index 2) is signed by key {keys['stranger'].key_id}, "
        "which is not a key of this log"
    )


def test_init_with_a_key_that_did_not_sign(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.append_package(NAME, [InitEntry(keys["bob"].public.text)], key=keys["owner"])
    err = raises(WargUnauthorized, reg)
    assert "initializes the log with a key that did not sign it" in err.message


def test_release_as_first_entry_is_unauthorized(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    # permission checks come first (reference quirk): an uninitialized log grants nothing
    reg.append_package(NAME, [ReleaseEntry("1.0.0", DIGEST)], key=keys["owner"])
    raises(WargUnauthorized, reg)


# --- structure -----------------------------------------------------------------------------------------


def test_first_entry_is_not_init(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.append_package(NAME, [GrantEntry(keys["bob"].public.text, ()), InitEntry(keys["owner"].public.text)], key=keys["owner"])
    assert "before the log's init entry" in raises(WargInvalidRecord, reg).message


def test_empty_first_record(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.append_package(NAME, [], key=keys["owner"])
    assert raises(WargInvalidRecord, reg).message.endswith("does not initialize the log")


def test_second_init(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.create_package(NAME, keys["owner"])
    reg.append_package(NAME, [InitEntry(keys["owner"].public.text)], key=keys["owner"])
    assert "already initialized" in raises(WargInvalidRecord, reg).message


def test_double_init_in_first_record(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    text = keys["owner"].public.text
    reg.append_package(NAME, [InitEntry(text), InitEntry(text)], key=keys["owner"])
    raises(WargInvalidRecord, reg)


@pytest.mark.parametrize("second", ["1.0.0", "yanked"])
def test_release_of_released(reg: FakeWargRegistry, keys: dict[str, SigningKey], second: str) -> None:
    owner = keys["owner"]
    reg.create_package(NAME, owner)
    reg.release(NAME, "1.0.0", b"x", owner)
    if second == "yanked":
        reg.yank(NAME, "1.0.0", owner)
    reg.release(NAME, "1.0.0", b"y", owner)
    assert "which was already released" in raises(WargInvalidRecord, reg).message


def test_yank_of_unreleased(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.create_package(NAME, keys["owner"])
    reg.yank(NAME, "1.0.0", keys["owner"])
    assert "which was never released" in raises(WargInvalidRecord, reg).message


def test_yank_of_yanked(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner = keys["owner"]
    reg.create_package(NAME, owner)
    reg.release(NAME, "1.0.0", b"x", owner)
    reg.yank(NAME, "1.0.0", owner)
    reg.yank(NAME, "1.0.0", owner)
    assert "already yanked" in raises(WargInvalidRecord, reg).message


@pytest.mark.parametrize(
    "entry,cls",
    [
        (ReleaseEntry("1.0", DIGEST), WargInvalidRecord),
        (ReleaseEntry("01.0.0", DIGEST), WargInvalidRecord),
        (ReleaseEntry("v1.0.0", DIGEST), WargInvalidRecord),
        (ReleaseEntry("1.0.0-01", DIGEST), WargInvalidRecord),
        (ReleaseEntry("1.0.0", DIGEST.upper().replace("SHA256", "sha256")), WargInvalidRecord),
        (ReleaseEntry("1.0.0", DIGEST[:-2]), WargInvalidRecord),
        (ReleaseEntry("1.0.0", "sha512:" + "00" * 64), WargUnsupported),
        (YankEntry("1.0.0 "), WargInvalidRecord),
    ],
)
def test_malformed_entries(reg: FakeWargRegistry, keys: dict[str, SigningKey], entry: Any, cls: type[WargVerificationError]) -> None:
    reg.create_package(NAME, keys["owner"])
    reg.append_package(NAME, [entry], key=keys["owner"])
    assert "cannot be decoded" in raises(cls, reg).message


def test_init_with_unsupported_hash_algorithm(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.append_package(NAME, [InitEntry(keys["owner"].public.text, "sha512")], key=keys["owner"])
    raises(WargUnsupported, reg)


# --- signatures, atomicity, error order ------------------------------------------------------------


def test_signature_with_operator_prefix(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.append_package(NAME, [InitEntry(keys["owner"].public.text)], key=keys["owner"], sign_prefix=OPERATOR_SIGNATURE_PREFIX)
    err = raises(WargSignatureError, reg)
    assert err.message == (
        f"package log example:pkg: record 0 (registry index 1) has a signature that does not verify with key {keys['owner'].key_id}"
    )


@pytest.mark.parametrize(
    "signature,cls",
    [
        ("ecdsa-p256:not base64", WargSignatureError),
        ("ecdsa-p256:AAAA", WargSignatureError),
        ("ecdsa-p256:a:b", WargSignatureError),
        ("ed25519:AAAA", WargUnsupported),
    ],
)
def test_malformed_signatures(reg: FakeWargRegistry, keys: dict[str, SigningKey], signature: str, cls: type[WargVerificationError]) -> None:
    reg.create_package(NAME, keys["owner"])
    reg.tamper_record(NAME, 0, signature=signature)
    raises(cls, reg)


def test_signature_of_another_record(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.create_package(NAME, keys["owner"])
    reg.release(NAME, "1.0.0", b"x", keys["owner"])
    reg.tamper_record(NAME, 1, signature=reg.records(NAME)[0]["signature"])
    raises(WargSignatureError, reg)


def test_earliest_failure_wins_even_with_batched_signatures(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner, bob = keys["owner"], keys["bob"]
    reg.create_package(NAME, owner)
    for i in range(400):
        reg.release(NAME, f"1.0.{i}", bytes([i % 256]), owner)
    reg.release(NAME, "9.0.0", b"x", bob)  # unauthorized, later in the log
    reg.tamper_record(NAME, 300, signature=reg.records(NAME)[299]["signature"])
    err = raises(WargSignatureError, reg)
    assert "record 300 " in err.message
    reg.tamper_record(NAME, 300, signature=owner.sign(PACKAGE_SIGNATURE_PREFIX, b"other data"))
    assert "record 300 " in raises(WargSignatureError, reg).message


def test_unauthorized_before_later_bad_signature(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner, bob = keys["owner"], keys["bob"]
    reg.create_package(NAME, owner)
    reg.release(NAME, "1.0.0", b"x", bob)
    reg.release(NAME, "1.0.1", b"y", owner)
    reg.tamper_record(NAME, 2, signature=reg.records(NAME)[0]["signature"])
    assert "record 1 " in raises(WargUnauthorized, reg).message


def test_failed_builder_stays_broken_and_previous_state_is_untouched(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    owner, bob = keys["owner"], keys["bob"]
    reg.create_package(NAME, owner)
    reg.release(NAME, "1.0.0", b"x", owner)
    before = validate(reg)
    reg.append_package(NAME, [GrantEntry(bob.public.text, ("release",)), ReleaseEntry("1.0.0", DIGEST)], key=owner)
    builder = PackageLogBuilder(NAME, before)
    env = PublishedRecord.from_json(reg.records(NAME)[-1])
    with pytest.raises(WargInvalidRecord) as first:
        builder.apply(env)
    with pytest.raises(WargInvalidRecord) as again:
        builder.freeze()
    assert again.value is first.value
    assert bob.key_id not in before.permissions and before.head.length == 2
    assert validate_package_log(NAME, reg.records(NAME)[:2]) == before


def test_malformed_envelope_json(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.create_package(NAME, keys["owner"])
    env = dict(reg.records(NAME)[0])
    for bad in ({**env, "contentBytes": "!!"}, {**env, "keyId": 5}, {**env, "registryIndex": -1}, {**env, "signature": None}):
        with pytest.raises(WargInvalidRecord):
            validate_package_log(NAME, [bad])


# --- operator log -------------------------------------------------------------------------------------


@pytest.fixture
def op() -> FakeWargRegistry:
    return FakeWargRegistry(init=False)


def op_raises(cls: type[WargVerificationError], reg: FakeWargRegistry) -> WargVerificationError:
    with pytest.raises(cls) as info:
        validate_operator_log(reg.records("operator"))
    assert type(info.value) is cls
    return info.value


def test_operator_lifecycle(op: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    boss, bob = op.operator_key, keys["bob"]
    op.append_operator([InitEntry(boss.public.text), GrantEntry(bob.public.text, ("commit", "defineNamespace"))])
    op.append_operator([DefineNamespaceEntry("wasi"), ImportNamespaceEntry("ba", "bytecodealliance.org")])
    op.append_operator([DefineNamespaceEntry("my-ns")], key=bob)
    op.append_operator([RevokeEntry(bob.key_id, ("commit",))])
    state = validate_operator_log(op.records("operator"))
    assert dict(state.namespaces) == {"wasi": None, "ba": "bytecodealliance.org", "my-ns": None}
    assert state.permissions[bob.key_id] == frozenset({"defineNamespace"})
    assert state.permissions[boss.key_id] == frozenset({"commit", "defineNamespace", "importNamespace"})
    assert state.head.length == 4


def test_operator_grant_needs_commit(op: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    boss, bob, carol = op.operator_key, keys["bob"], keys["carol"]
    op.append_operator([InitEntry(boss.public.text), GrantEntry(bob.public.text, ("defineNamespace",))])
    op.append_operator([GrantEntry(carol.public.text, ())], key=bob)
    err = op_raises(WargUnauthorized, op)
    assert err.message == (
        f"operator log: record 1 (registry index 1) grants permissions to {carol.key_id}, "
        f"but key {bob.key_id} does not hold the 'commit' permission"
    )


def test_operator_grant_of_permission_not_held(op: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    boss, bob, carol = op.operator_key, keys["bob"], keys["carol"]
    op.append_operator([InitEntry(boss.public.text), GrantEntry(bob.public.text, ("commit",))])
    op.append_operator([GrantEntry(carol.public.text, ("importNamespace",))], key=bob)
    op_raises(WargUnauthorized, op)


def test_operator_define_needs_permission(op: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    boss, bob = op.operator_key, keys["bob"]
    op.append_operator([InitEntry(boss.public.text), GrantEntry(bob.public.text, ("commit",))])
    op.append_operator([ImportNamespaceEntry("x", "y")], key=bob)
    op_raises(WargUnauthorized, op)


@pytest.mark.parametrize("namespace", ["Wasi", "wasi-", "-wasi", "wa--si", "1wasi", "", "wasi:http"])
def test_operator_invalid_namespace(op: FakeWargRegistry, namespace: str) -> None:
    op.append_operator([InitEntry(op.operator_key.public.text), DefineNamespaceEntry(namespace)])
    assert "invalid namespace" in op_raises(WargInvalidRecord, op).message


@pytest.mark.parametrize("second", [DefineNamespaceEntry("wasi"), ImportNamespaceEntry("wasi", "elsewhere")])
def test_operator_namespace_defined_twice(op: FakeWargRegistry, second: Any) -> None:
    op.append_operator([InitEntry(op.operator_key.public.text), DefineNamespaceEntry("wasi")])
    op.append_operator([second])
    assert "already defined or imported" in op_raises(WargInvalidRecord, op).message


def test_operator_init_by_another_key(op: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    op.append_operator([InitEntry(keys["bob"].public.text)])
    op_raises(WargUnauthorized, op)


def test_operator_entry_before_init(op: FakeWargRegistry) -> None:
    op.append_operator([DefineNamespaceEntry("wasi")])
    op_raises(WargUnauthorized, op)


def test_operator_record_with_package_prefix(op: FakeWargRegistry) -> None:
    op.append_operator([InitEntry(op.operator_key.public.text)], sign_prefix=PACKAGE_SIGNATURE_PREFIX)
    op_raises(WargSignatureError, op)


def test_operator_chain_and_time(op: FakeWargRegistry) -> None:
    op.append_operator([InitEntry(op.operator_key.public.text)], time=Timestamp(10, 0))
    op.append_operator([], time=Timestamp(9, 999_999_999))
    op_raises(WargTimestampError, op)
    fresh = FakeWargRegistry(op.operator_key, init=False)
    fresh.append_operator([InitEntry(op.operator_key.public.text)])
    fresh.append_operator([], prev=None)
    op_raises(WargChainError, fresh)
