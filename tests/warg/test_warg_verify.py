"""Update rounds against generated registries: checkpoints, proofs, incremental use,
persistence, and every registry-level failure mode with its own error class."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pkgloader._errors import (
    PackageNotFound,
    PkgLoaderError,
    RegistryError,
    WargFork,
    WargInvalidRecord,
    WargProofError,
    WargRewind,
    WargRootMismatch,
    WargSignatureError,
    WargUnauthorized,
    WargVerificationError,
)
from pkgloader.backends.warg import STATE_FORMAT, Update, VerifiedState, package_log_id, verify_update
from support.wargfactory import (
    DefineNamespaceEntry,
    FakeWargRegistry,
    GrantEntry,
    RevokeEntry,
    SigningKey,
    drive_update,
)

HELLO = "example:hello"
WORLD = "example:world"


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {n: SigningKey.generate() for n in ("alice", "bob", "carol")}


@pytest.fixture
def reg(keys: dict[str, SigningKey]) -> FakeWargRegistry:
    """Operator log + example:hello (alice, bob may release) + example:world, checkpointed.

    Ledger: 0 operator init, 1 hello init, 2 hello 1.0.0, 3 world init, 4 hello 1.1.0,
    5 world 0.1.0, 6 hello yank 1.0.0, 7 operator define namespace.
    """
    r = FakeWargRegistry(imported={"wasi": "wasi.dev"})
    alice, bob = keys["alice"], keys["bob"]
    r.create_package(HELLO, alice, grants={bob: ("release",)})
    r.release(HELLO, "1.0.0", b"\0asm\x0d\0\x01\0", bob)
    r.create_package(WORLD, bob)
    r.release(HELLO, "1.1.0", b"hello 1.1", alice)
    r.release(WORLD, "0.1.0", b"world", bob)
    r.yank(HELLO, "1.0.0", alice)
    r.append_operator([DefineNamespaceEntry("other")])
    r.publish_checkpoint()
    return r


def routes(reg: FakeWargRegistry, since: int = 0) -> list[str]:
    return [f"{m} {p}" for m, p, _ in reg.requests[since:]]


# --- happy paths ----------------------------------------------------------------------------------


def test_first_update(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    state = drive_update(reg, [HELLO, WORLD])
    assert state.log_length == reg.length == 8
    assert [(r.version, r.yanked) for r in state.releases(HELLO)] == [("1.0.0", True), ("1.1.0", False)]
    assert [(r.version, r.yanked) for r in state.releases(WORLD)] == [("0.1.0", False)]
    assert state.releases("example:unknown") == ()
    assert dict(state.operator.namespaces) == {"example": None, "wasi": "wasi.dev", "other": None}
    assert state.registry == "registry.example.com"
    hello = state.package(HELLO)
    assert hello is not None and hello.verified_at == 8 and hello.head.registry_index == 6
    assert routes(reg) == ["GET v1/fetch/checkpoint", "POST v1/fetch/logs", "POST v1/proof/inclusion"]
    assert reg.requests[2][2] == {"logLength": 8, "leafs": [7, 6, 5]}


def test_pagination(reg: FakeWargRegistry) -> None:
    state = drive_update(reg, [HELLO, WORLD], limit=1)
    assert state == drive_update(reg, [HELLO, WORLD])
    logs = [body for m, p, body in reg.requests if p == "v1/fetch/logs"]
    assert len(logs) == 6  # 4 hello records with limit 1: pages 1..4 + one empty page, then the full fetch
    assert logs[1]["packages"][package_log_id(HELLO)] == reg.records(HELLO)[0]["fetchToken"]


def test_incremental_update_fetches_only_new_records(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    first = drive_update(reg, [HELLO, WORLD])
    reg.release(HELLO, "2.0.0", b"two", keys["bob"])
    reg.publish_checkpoint()
    start = len(reg.requests)
    second = drive_update(reg, [HELLO, WORLD], first)
    assert routes(reg, start) == [
        "GET v1/fetch/checkpoint",
        "POST v1/fetch/logs",
        "POST v1/proof/inclusion",
        "POST v1/proof/consistency",
    ]
    fetch = reg.requests[start + 1][2]
    assert fetch["operator"] == first.operator.head.fetch_token
    assert fetch["packages"] == {
        package_log_id(HELLO): first.packages[HELLO].head.fetch_token,
        package_log_id(WORLD): first.packages[WORLD].head.fetch_token,
    }
    assert reg.requests[start + 3][2] == {"from": 8, "to": 9}
    assert [r.version for r in second.releases(HELLO)] == ["1.0.0", "1.1.0", "2.0.0"]
    assert second.package(HELLO).head.length == 5  # type: ignore[union-attr]


def test_old_records_are_not_validated_again(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    first = drive_update(reg, [HELLO])
    reg.tamper_record(HELLO, 0, signature="ecdsa-p256:AAAA")  # would fail if fetched again
    reg.release(HELLO, "2.0.0", b"two", keys["alice"])
    reg.publish_checkpoint()
    assert [r.version for r in drive_update(reg, [HELLO], first).releases(HELLO)][-1] == "2.0.0"
    with pytest.raises(WargSignatureError):
        drive_update(reg, [HELLO])


def test_nothing_new_needs_no_proofs(reg: FakeWargRegistry) -> None:
    first = drive_update(reg, [HELLO])
    start = len(reg.requests)
    again = drive_update(reg, [HELLO], first)
    assert routes(reg, start) == ["GET v1/fetch/checkpoint", "POST v1/fetch/logs"]
    assert again == first


def test_adding_a_package_later_and_keeping_others(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    first = drive_update(reg, [HELLO])
    reg.release(WORLD, "0.2.0", b"w2", keys["bob"])
    reg.publish_checkpoint()
    second = drive_update(reg, [WORLD], first)
    assert set(second.packages) == {HELLO, WORLD}
    assert second.packages[HELLO] == first.packages[HELLO]  # kept, proven at the older checkpoint
    assert second.packages[HELLO].verified_at == 8 and second.packages[WORLD].verified_at == 9
    # the same checkpoint again: hello was proven at 8, so a proof at 9 is requested
    start = len(reg.requests)
    third = drive_update(reg, [HELLO, WORLD], second)
    assert "POST v1/proof/inclusion" in routes(reg, start)
    assert third.packages[HELLO].verified_at == 9


def test_operator_key_rotation(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    first = drive_update(reg, [HELLO])
    old_key, new_key = reg.operator_key, keys["carol"]
    reg.append_operator([GrantEntry(new_key.public.text, ("commit",))])
    reg.append_operator([RevokeEntry(old_key.key_id, ("commit",))], key=new_key)
    reg.operator_key = new_key
    reg.publish_checkpoint()
    state = drive_update(reg, [HELLO], first)
    assert state.checkpoint.key_id == new_key.key_id
    # a checkpoint signed by the revoked key is refused
    reg.publish_checkpoint(key=old_key, timestamp=reg.time + 5)
    with pytest.raises(WargUnauthorized) as info:
        drive_update(reg, [HELLO], state)
    assert info.value.message == (
        f"checkpoint at log length 10 of registry.example.com is signed by key {old_key.key_id}, "
        "which does not hold the 'commit' permission"
    )


def test_one_shot_verify_update(reg: FakeWargRegistry) -> None:
    cp = reg.call("GET", "v1/fetch/checkpoint")
    logs = reg.call("POST", "v1/fetch/logs", {"logLength": 8, "packages": {package_log_id(HELLO): None}})
    inclusion = reg.call("POST", "v1/proof/inclusion", {"logLength": 8, "leafs": [7, 6]})
    state = verify_update(cp, logs["operator"], {HELLO: logs["packages"][package_log_id(HELLO)]}, inclusion)
    assert [r.version for r in state.releases(HELLO)] == ["1.0.0", "1.1.0"]


def test_drop_package_after_404(reg: FakeWargRegistry) -> None:
    update = Update(reg.call("GET", "v1/fetch/checkpoint"), [HELLO, "example:missing"])
    status, body = reg.handle("POST", "v1/fetch/logs", update.fetch_logs_request())
    assert (status, body) == (404, {"status": 404, "type": "log", "id": package_log_id("example:missing")})
    update.drop_package("example:missing")
    assert update.package_names == (HELLO,)
    update.add_fetch_logs_response(reg.call("POST", "v1/fetch/logs", update.fetch_logs_request()))
    state = update.finish(reg.call("POST", "v1/proof/inclusion", update.inclusion_request()))
    assert list(state.packages) == [HELLO]


# --- persistence --------------------------------------------------------------------------------


def test_persistence_round_trip_and_continue(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    state = drive_update(reg, [HELLO, WORLD])
    data = json.loads(json.dumps(state.to_json()))
    assert data["format"] == STATE_FORMAT
    loaded = VerifiedState.from_json(data)
    assert loaded == state
    reg.release(HELLO, "3.0.0", b"three", keys["alice"])
    reg.publish_checkpoint()
    assert drive_update(reg, [HELLO, WORLD], loaded) == drive_update(reg, [HELLO, WORLD], state)


def _corrupt(data: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    target = data
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    "path,value",
    [
        (["format"], "something-else/1"),
        (["checkpoint", "contents", "logLength"], -1),
        (["operator", "verifiedAt"], 3),
        (["operator", "head", "recordId"], "sha256:XYZ"),
        (["packages", HELLO, "logId"], package_log_id(WORLD)),
        (["packages", HELLO, "name"], WORLD),
        (["packages", HELLO, "verifiedAt"], 99),
        (["packages", HELLO, "releases", 0, "version"], "1.0"),
        (["packages", HELLO, "permissions", "sha256:00", 0], "admin"),
        (["packages", HELLO, "head", "registryIndex"], 8),
    ],
)
def test_corrupt_persisted_state_is_rejected(reg: FakeWargRegistry, path: list[Any], value: Any) -> None:
    data = drive_update(reg, [HELLO]).to_json()
    if path[-2:] == ["sha256:00", 0]:
        data = _corrupt(data, path[:-1], [value])
    else:
        data = _corrupt(data, path, value)
    with pytest.raises(WargInvalidRecord) as info:
        VerifiedState.from_json(data)
    assert info.value.message.startswith("stored warg state for registry.example.com is not valid: ")
    assert info.value.hint == "delete the cached state; it will be rebuilt from the registry"


def test_persisted_key_must_match_its_id(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    data = drive_update(reg, [HELLO]).to_json()
    alice = keys["alice"].key_id
    data["packages"][HELLO]["keys"][alice] = keys["bob"].public.text
    with pytest.raises(WargInvalidRecord):
        VerifiedState.from_json(data)


def test_persisted_checkpoint_signature_is_rechecked(reg: FakeWargRegistry) -> None:
    data = drive_update(reg, [HELLO]).to_json()
    data["checkpoint"]["contents"]["timestamp"] += 1
    with pytest.raises(WargSignatureError):
        VerifiedState.from_json(data)


def test_not_json_object() -> None:
    with pytest.raises(WargInvalidRecord):
        VerifiedState.from_json([1, 2])


# --- checkpoint failures --------------------------------------------------------------------------


def test_rewind(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.release(HELLO, "2.0.0", b"two", keys["alice"])
    reg.publish_checkpoint()
    state = drive_update(reg, [HELLO])
    reg.serve_checkpoint(8)
    start = len(reg.requests)
    with pytest.raises(WargRewind) as info:
        drive_update(reg, [HELLO], state)
    assert routes(reg, start) == ["GET v1/fetch/checkpoint"]  # refused before fetching logs
    assert info.value.code == "warg-rewind"
    assert info.value.message == (
        "warg registry registry.example.com went back in time: its checkpoint has log length 8, "
        "but length 9 was verified earlier"
    )


def test_changed_root_at_same_length(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    state = drive_update(reg, [HELLO])
    fork = reg.fork(7)
    fork.release(WORLD, "0.9.0", b"other", keys["bob"])
    fork.publish_checkpoint()
    with pytest.raises(WargRootMismatch) as info:
        drive_update(fork, [HELLO], state)
    assert info.value.code == "warg-root-mismatch"
    assert info.value.message == "warg registry registry.example.com changed its roots at log length 8"


def test_fork(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    # the client saw length 6 (heads: operator 0, hello 4); the fork rewrites index 5
    # (example:world, which the client does not follow) and then grows
    reg.publish_checkpoint(length=6)
    reg.serve_checkpoint(6)
    state = drive_update(reg, [HELLO])
    assert state.log_length == 6
    fork = reg.fork(5)
    fork.release(WORLD, "0.9.0", b"other", keys["bob"])
    fork.publish_checkpoint()  # the fork's own view of length 6
    fork.release(HELLO, "9.0.0", b"evil", keys["bob"])
    fork.publish_checkpoint()
    with pytest.raises(WargFork) as info:
        drive_update(fork, [HELLO], state)
    assert info.value.code == "warg-fork"
    assert info.value.message == (
        "warg registry registry.example.com forked: its log at length 7 does not extend the log "
        "at length 6 verified earlier"
    )
    assert info.value.details[0] == f"verified earlier: logRoot {state.checkpoint.checkpoint.log_root}"


def test_checkpoint_signed_by_unknown_key(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.publish_checkpoint(key=keys["carol"])
    with pytest.raises(WargUnauthorized) as info:
        drive_update(reg, [HELLO])
    assert "which is not in the operator log" in info.value.message


def test_checkpoint_bad_signature(reg: FakeWargRegistry) -> None:
    cp = reg.publish_checkpoint()
    cp["contents"]["timestamp"] += 1
    with pytest.raises(WargSignatureError):
        drive_update(reg, [HELLO])


def test_checkpoint_with_wrong_roots_signed_by_operator(reg: FakeWargRegistry) -> None:
    reg.publish_checkpoint(log_root="sha256:" + "11" * 32)
    with pytest.raises(WargProofError) as info:
        drive_update(reg, [HELLO])
    assert "is not in the registry log of checkpoint length 8" in info.value.message


@pytest.mark.parametrize(
    "cp",
    [
        {},
        {"contents": {"logRoot": "sha256:00", "logLength": 1, "mapRoot": "sha256:00", "timestamp": 1}, "keyId": "k", "signature": "s"},
        {"contents": {"logRoot": "sha256:" + "0" * 64, "logLength": True, "mapRoot": "sha256:" + "0" * 64, "timestamp": 1}},
    ],
)
def test_malformed_checkpoint(cp: dict[str, Any]) -> None:
    with pytest.raises(WargInvalidRecord):
        Update(cp, [HELLO])


# --- proof failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["inclusion-log", "inclusion-map", "inclusion-index"])
def test_bad_inclusion_proofs(reg: FakeWargRegistry, part: str) -> None:
    reg.corrupt.add(part)
    with pytest.raises(WargProofError) as info:
        drive_update(reg, [HELLO, WORLD])
    assert info.value.code == "warg-bad-proof"


def test_bad_consistency_proof(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    state = drive_update(reg, [HELLO])
    reg.release(HELLO, "2.0.0", b"two", keys["alice"])
    reg.publish_checkpoint()
    reg.corrupt.add("consistency")
    with pytest.raises(WargProofError):
        drive_update(reg, [HELLO], state)


def test_withheld_latest_record_fails_the_map_proof(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    """A registry that hides the newest record (e.g. a yank) cannot prove the older head."""
    reg.yank(HELLO, "1.1.0", keys["alice"])
    reg.publish_checkpoint()
    hidden = reg.records(HELLO)[-1]["fetchToken"]

    def hide(route: str, status: int, body: Any) -> tuple[int, Any]:
        if route == "POST v1/fetch/logs" and status == 200:
            for log_id, recs in body["packages"].items():
                body["packages"][log_id] = [r for r in recs if r["fetchToken"] != hidden]
        return status, body

    reg.response_hook = hide
    with pytest.raises(WargProofError) as info:
        drive_update(reg, [HELLO])
    assert "is not the latest record of the log" in info.value.message


def test_wrong_inclusion_shape(reg: FakeWargRegistry) -> None:
    update = Update(reg.call("GET", "v1/fetch/checkpoint"), [HELLO])
    update.add_fetch_logs_response(reg.call("POST", "v1/fetch/logs", update.fetch_logs_request()))
    only_operator = reg.call("POST", "v1/proof/inclusion", {"logLength": 8, "leafs": [7]})
    with pytest.raises(WargProofError) as info:
        update.finish(only_operator)
    assert "has 1 log and 1 map proofs for 2 requested heads" in info.value.message


def test_missing_proofs(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    state = drive_update(reg, [HELLO])
    reg.release(HELLO, "2.0.0", b"two", keys["alice"])
    reg.publish_checkpoint()
    update = Update(reg.call("GET", "v1/fetch/checkpoint"), [HELLO], state)
    update.add_fetch_logs_response(reg.call("POST", "v1/fetch/logs", update.fetch_logs_request()))
    with pytest.raises(WargProofError):
        update.finish(reg.call("POST", "v1/proof/inclusion", update.inclusion_request()), None)
    update = Update(reg.call("GET", "v1/fetch/checkpoint"), [HELLO], state)
    update.add_fetch_logs_response(reg.call("POST", "v1/fetch/logs", update.fetch_logs_request()))
    with pytest.raises(WargProofError):
        update.finish(None, reg.call("POST", "v1/proof/consistency", update.consistency_request()))


def test_inclusion_proof_for_another_length(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.release(HELLO, "2.0.0", b"two", keys["alice"])
    reg.publish_checkpoint()
    update = Update(reg.checkpoints[8], [HELLO])
    update.add_fetch_logs_response(reg.call("POST", "v1/fetch/logs", update.fetch_logs_request()))
    leafs = update.inclusion_request()["leafs"]  # type: ignore[index]
    with pytest.raises(WargProofError) as info:
        update.finish(reg.call("POST", "v1/proof/inclusion", {"logLength": 9, "leafs": leafs}))
    assert "is for the wrong log" in info.value.message


# --- fetch/logs protocol failures -----------------------------------------------------------------


def test_registry_index_beyond_checkpoint(reg: FakeWargRegistry) -> None:
    def shift(route: str, status: int, body: Any) -> tuple[int, Any]:
        if route == "POST v1/fetch/logs":
            body["packages"][package_log_id(HELLO)][3]["registryIndex"] = 8
        return status, body

    reg.response_hook = shift
    with pytest.raises(WargInvalidRecord) as info:
        drive_update(reg, [HELLO])
    assert info.value.message == (
        "package log example:hello of registry.example.com: record 3 has registry index 8, "
        "beyond the checkpoint's log length 8"
    )


def test_missing_registry_index(reg: FakeWargRegistry) -> None:
    def drop(route: str, status: int, body: Any) -> tuple[int, Any]:
        if route == "POST v1/fetch/logs":
            del body["operator"][0]["registryIndex"]
        return status, body

    reg.response_hook = drop
    with pytest.raises(WargInvalidRecord) as info:
        drive_update(reg, [HELLO])
    assert info.value.message == "operator log of registry.example.com: record 0 has no registryIndex"


def test_lying_registry_index_fails_the_proof(reg: FakeWargRegistry) -> None:
    reg.tamper_record(HELLO, 3, registryIndex=7)
    with pytest.raises(WargProofError):
        drive_update(reg, [HELLO])


def test_unauthorized_release_served_by_registry(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    reg.release(WORLD, "6.6.6", b"evil", keys["alice"])  # alice has no rights on example:world
    reg.publish_checkpoint()
    with pytest.raises(WargUnauthorized):
        drive_update(reg, [WORLD])


def test_broken_chain_served_by_registry(reg: FakeWargRegistry, keys: dict[str, SigningKey]) -> None:
    from pkgloader._errors import WargChainError

    reg.append_package(HELLO, [], key=keys["alice"], prev=reg.records(HELLO)[1]["fetchToken"])
    reg.publish_checkpoint()
    with pytest.raises(WargChainError):
        drive_update(reg, [HELLO])


def test_package_without_records(reg: FakeWargRegistry) -> None:
    reg.records(WORLD)[:] = []
    with pytest.raises(PackageNotFound) as info:
        drive_update(reg, [WORLD])
    assert info.value.message == (
        "package example:world does not exist in warg registry registry.example.com "
        "(no records up to checkpoint length 8)"
    )


def test_more_without_progress(reg: FakeWargRegistry) -> None:
    update = Update(reg.call("GET", "v1/fetch/checkpoint"), [HELLO])
    update.add_fetch_logs_response(reg.call("POST", "v1/fetch/logs", update.fetch_logs_request()))
    with pytest.raises(RegistryError) as info:
        update.add_fetch_logs_response({"more": True, "operator": [], "packages": {}})
    assert info.value.message == "the warg registry sent a malformed fetch/logs response: 'more' is true but no new records were sent"


@pytest.mark.parametrize("body", [[], {"more": "yes"}, {"operator": {}}, {"packages": {package_log_id(HELLO): {}}}])
def test_malformed_fetch_logs_response(reg: FakeWargRegistry, body: Any) -> None:
    update = Update(reg.call("GET", "v1/fetch/checkpoint"), [HELLO])
    with pytest.raises(RegistryError):
        update.add_fetch_logs_response(body)


def test_failed_update_is_poisoned(reg: FakeWargRegistry) -> None:
    reg.tamper_record(HELLO, 1, signature=reg.records(HELLO)[0]["signature"])
    update = Update(reg.call("GET", "v1/fetch/checkpoint"), [HELLO])
    with pytest.raises(WargSignatureError) as first:
        update.add_fetch_logs_response(reg.call("POST", "v1/fetch/logs", update.fetch_logs_request()))
    for call in (update.fetch_logs_request, update.inclusion_request, update.finish):
        with pytest.raises(WargSignatureError) as again:
            call()
        assert again.value is first.value


def test_finish_before_fetch_complete(reg: FakeWargRegistry) -> None:
    update = Update(reg.call("GET", "v1/fetch/checkpoint"), [HELLO])
    assert update.add_fetch_logs_response(reg.call("POST", "v1/fetch/logs", update.fetch_logs_request(limit=1))) is True
    with pytest.raises(PkgLoaderError) as info:
        update.inclusion_request()
    assert not isinstance(info.value, WargVerificationError)


def test_error_codes_are_distinct() -> None:
    classes = [WargFork, WargRewind, WargRootMismatch, WargProofError, WargSignatureError, WargUnauthorized, WargInvalidRecord]
    assert len({c.code for c in classes}) == len(classes)
