"""Log and map proofs (spec §7) against the factory's independent oracle
(RFC 6962 recursion for log roots, direct sparse-tree recursion for the map)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pkgloader.backends.warg._crypto import hash_raw
from pkgloader.backends.warg._merkle import (
    LogProofBundle,
    MapProofBundle,
    ProofError,
    broots,
    evaluate_log_inclusion,
    evaluate_map_inclusion,
    height,
    leaf_hash,
    log_leaf_bytes,
    node_exists,
    verify_log_consistency,
)
from support.wargfactory import FakeWargRegistry

N = 33


def _id(tag: str, i: int) -> str:
    return "sha256:" + hashlib.sha256(f"{tag}{i}".encode()).hexdigest()


def synthetic_registry(n: int, logs: int = 5) -> FakeWargRegistry:
    ledger = [(_id("log", i % logs), _id("rec", i)) for i in range(n)]
    reg = FakeWargRegistry.from_ledger(ledger, [])
    for length in range(1, n + 1):
        reg.checkpoints[length] = {}  # the proof endpoints only check that the length exists
    return reg


@pytest.fixture(scope="module")
def reg() -> FakeWargRegistry:
    return synthetic_registry(N)


def test_height_and_broots() -> None:
    assert [height(i) for i in range(8)] == [0, 1, 0, 2, 0, 1, 0, 3]
    for length in range(1, 70):
        roots = broots(length)
        sizes = [1 << height(r) for r in roots]
        assert sum(sizes) == length and sizes == sorted(sizes, reverse=True)
        assert all(node_exists(r, length) for r in roots)
        assert not node_exists(2 * length, length)


def test_inclusion_all_leaves_all_lengths(reg: FakeWargRegistry) -> None:
    for length in range(1, N + 1):
        root = reg.log_root(length)
        answer = reg.call("POST", "v1/proof/inclusion", {"logLength": length, "leafs": list(range(length))})
        bundle = LogProofBundle.decode(base64.b64decode(answer["log"]))
        assert bundle.log_length == length and bundle.included_indices == tuple(2 * i for i in range(length))
        for leaf in range(length):
            e = reg.ledger[leaf]
            value = leaf_hash(log_leaf_bytes(e.log_id, e.record_id))
            assert evaluate_log_inclusion(bundle.hashes, 2 * leaf, length, value) == root
            assert evaluate_log_inclusion(bundle.hashes, 2 * leaf, length, bytes(32)) != root


def test_consistency_all_pairs(reg: FakeWargRegistry) -> None:
    for new in range(1, N + 1):
        for old in range(1, new + 1):
            answer = reg.call("POST", "v1/proof/consistency", {"from": old, "to": new})
            bundle = LogProofBundle.decode(base64.b64decode(answer["proof"]))
            assert bundle.consistent_lengths == (old,) and bundle.log_length == new
            assert verify_log_consistency(bundle.hashes, old, new) == (reg.log_root(old), reg.log_root(new))


@pytest.mark.parametrize("old,new", [(1, 2), (3, 6), (5, 13), (8, 8), (16, 33), (21, 22)])
def test_consistency_missing_or_wrong_hash_fails(reg: FakeWargRegistry, old: int, new: int) -> None:
    answer = reg.call("POST", "v1/proof/consistency", {"from": old, "to": new})
    bundle = LogProofBundle.decode(base64.b64decode(answer["proof"]))
    expected = (reg.log_root(old), reg.log_root(new))
    for node in bundle.hashes:
        fewer = {k: v for k, v in bundle.hashes.items() if k != node}
        with pytest.raises(ProofError, match="missing the hash"):
            verify_log_consistency(fewer, old, new)
        changed = dict(bundle.hashes)
        changed[node] = bytes(32)
        try:
            assert verify_log_consistency(changed, old, new) != expected
        except ProofError as exc:
            assert "diverging roots" in str(exc)


def test_inclusion_edge_cases(reg: FakeWargRegistry) -> None:
    with pytest.raises(ProofError, match="does not exist"):
        evaluate_log_inclusion({}, 2 * 5, 5, bytes(32))
    with pytest.raises(ProofError, match="does not exist"):
        evaluate_log_inclusion({}, 0, 0, bytes(32))
    with pytest.raises(ProofError):
        verify_log_consistency({}, 0, 5)
    with pytest.raises(ProofError):
        verify_log_consistency({}, 6, 5)
    # a log of one leaf: the leaf hash is the root, no hashes needed
    e = reg.ledger[0]
    value = leaf_hash(log_leaf_bytes(e.log_id, e.record_id))
    assert evaluate_log_inclusion({}, 0, 1, value) == reg.log_root(1) == value


def test_bundle_codec_rejects_bad_hashes() -> None:
    good = LogProofBundle(3, (), (0,), {1: bytes(32), 4: bytes(32)})
    assert LogProofBundle.decode(good.encode()) == good
    short = good.encode()[:-1]
    with pytest.raises(ProofError):
        LogProofBundle.decode(short)
    dup = good.encode() + b"\x22\x24\x08\x01\x12\x20" + b"\x01" * 32
    with pytest.raises(ProofError, match="two different hashes"):
        LogProofBundle.decode(dup)
    with pytest.raises(ProofError, match="expected 32"):
        MapProofBundle.decode(MapProofBundle(((b"\x00" * 31,),)).encode())
    with pytest.raises(ProofError, match="at most 256"):
        MapProofBundle.decode(MapProofBundle(((None,) * 257,)).encode())
    with pytest.raises(ProofError, match="at most 256"):
        evaluate_map_inclusion((None,) * 257, bytes(32), _id("r", 0))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=24, unique=True), st.data())
def test_map_proofs(log_numbers: list[int], data: st.DataObject) -> None:
    ledger = [(_id("log", n), _id("rec", n)) for n in log_numbers]
    reg = FakeWargRegistry.from_ledger(ledger, [])
    length = len(ledger)
    root = reg.map_root(length)
    pick = data.draw(st.sampled_from(ledger))
    peers = tuple(reg.map_peers(length, pick[0]))
    assert evaluate_map_inclusion(peers, hash_raw(pick[0]), pick[1]) == root
    assert evaluate_map_inclusion(peers, hash_raw(pick[0]), _id("other", 0)) != root
    if peers:
        i = data.draw(st.integers(0, len(peers) - 1))
        tampered = peers[:i] + (bytes(32),) + peers[i + 1 :]
        assert evaluate_map_inclusion(tampered, hash_raw(pick[0]), pick[1]) != root
        # the codec round-trips explicit peers
        assert MapProofBundle.decode(MapProofBundle((peers,)).encode()).proofs == (peers,)


def test_map_with_a_single_log_needs_no_peers() -> None:
    reg = FakeWargRegistry.from_ledger([(_id("log", 1), _id("rec", 1))], [])
    assert reg.map_peers(1, _id("log", 1)) == []
    assert evaluate_map_inclusion((), hash_raw(_id("log", 1)), _id("rec", 1)) == reg.map_root(1)
