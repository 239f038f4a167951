"""The registry log (RFC 6962-style Merkle tree) and the sparse Merkle map (spec §5, §7).

Log nodes use in-order numbering: leaf ``i`` is node ``2i``; a node's height is the
number of trailing 1-bits of its index. Proof bundles carry node hashes keyed by node
index; evaluation follows the reference walk exactly. The map is a 256-level sparse
Merkle tree keyed by ``H(raw log ID)``; proofs list sibling hashes bottom-up with the
lowest (empty) ones left out.

Errors are :class:`ProofError` (message only); ``_verify`` adds context and raises
``WargProofError`` / ``WargFork``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final, Mapping

from . import _proto
from ._proto import ProtoError

__all__ = [
    "ProofError",
    "leaf_hash",
    "branch",
    "log_leaf_bytes",
    "map_leaf_bytes",
    "EMPTY_LOG_ROOT",
    "EMPTY_MAP_HASHES",
    "height",
    "broots",
    "node_exists",
    "fold_roots",
    "evaluate_log_inclusion",
    "verify_log_consistency",
    "map_key",
    "evaluate_map_inclusion",
    "LogProofBundle",
    "MapProofBundle",
]

_sha256 = hashlib.sha256
_LOG_LEAF_PREFIX: Final = b"WARG-LOG-LEAF-V0"
_MAP_LEAF_PREFIX: Final = b"WARG-MAP-LEAF-V0"
_MAX_U32: Final = 0xFFFFFFFF


class ProofError(ValueError):
    """A proof is malformed or does not evaluate."""


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def branch(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def log_leaf_bytes(log_id: str, record_id: str) -> bytes:
    """``b"WARG-LOG-LEAF-V0" || PSTR(log_id) || PSTR(record_id)`` (texts ``sha256:<hex>``)."""
    return _LOG_LEAF_PREFIX + _proto.pstr(log_id) + _proto.pstr(record_id)


def map_leaf_bytes(record_id: str) -> bytes:
    return _MAP_LEAF_PREFIX + _proto.pstr(record_id)


#: ``H(b"")``: the root of an empty log (not a leaf hash).
EMPTY_LOG_ROOT: Final = _sha256(b"").digest()


def _empty_map_hashes() -> tuple[bytes, ...]:
    out = [leaf_hash(b"")]
    for _ in range(256):
        out.append(branch(out[-1], out[-1]))
    return tuple(out)


#: ``E[h]`` for h = 0..256: hash of an empty map subtree of height h; ``E[256]`` = empty root.
EMPTY_MAP_HASHES: Final = _empty_map_hashes()


# --- log ------------------------------------------------------------------------------------


def height(node: int) -> int:
    """Number of trailing 1-bits of the node index."""
    return ((node + 1) & -(node + 1)).bit_length() - 1


def broots(length: int) -> list[int]:
    """Node indices of the perfect subtrees ("balanced roots") of a log of ``length`` leaves,
    left to right."""
    out: list[int] = []
    start = 0
    for h in range(length.bit_length() - 1, -1, -1):
        if length >> h & 1:
            out.append(2 * start + (1 << h) - 1)
            start += 1 << h
    return out


def node_exists(node: int, length: int) -> bool:
    h = height(node)
    return (node + (1 << h) - 1) // 2 < length


def fold_roots(hashes: list[bytes]) -> bytes:
    """``branch(b0, branch(b1, … branch(b_{k-1}, b_k)))``; ``H(b"")`` for none."""
    if not hashes:
        return EMPTY_LOG_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = branch(h, acc)
    return acc


def _combine(a: tuple[int, bytes], b: tuple[int, bytes]) -> tuple[int, bytes]:
    return (b[0], branch(a[1], b[1]) if a[0] < b[0] else branch(b[1], a[1]))


def _get(hashes: Mapping[int, bytes], node: int) -> bytes:
    try:
        return hashes[node]
    except KeyError:
        raise ProofError(f"proof is missing the hash of log node {node}") from None


def evaluate_log_inclusion(hashes: Mapping[int, bytes], node: int, length: int, value: bytes) -> bytes:
    """The log root implied by ``value`` at ``node`` in a log of ``length`` leaves."""
    if length < 1 or not node_exists(node, length):
        raise ProofError(f"log node {node} does not exist in a log of length {length}")
    roots = broots(length)
    cur = (node, value)
    n = node
    while n not in roots:
        h = height(n)
        delta = 1 << h
        left = ((n >> (h + 1)) & 1) == 0
        sibling = n + 2 * delta if left else n - 2 * delta
        cur = _combine(cur, (sibling, _get(hashes, sibling)))
        n = n + delta if left else n - delta
    j = roots.index(n)
    lower = roots[j + 1 :][::-1]
    if lower:
        acc = (lower[0], _get(hashes, lower[0]))
        for x in lower[1:]:
            acc = _combine(acc, (x, _get(hashes, x)))
        cur = _combine(cur, acc)
    for u in roots[:j][::-1]:
        cur = _combine(cur, (u, _get(hashes, u)))
    return cur[1]


def verify_log_consistency(hashes: Mapping[int, bytes], old_length: int, new_length: int) -> tuple[bytes, bytes]:
    """Evaluate a consistency proof; returns ``(old_root, new_root)`` it proves."""
    if old_length < 1 or old_length > new_length:
        raise ProofError(f"cannot prove consistency from length {old_length} to {new_length}")
    old_roots = broots(old_length)
    old_hashes = [_get(hashes, b) for b in old_roots]
    new_root: bytes | None = None
    for b, hb in zip(old_roots, old_hashes):
        root = evaluate_log_inclusion(hashes, b, new_length, hb)
        if new_root is None:
            new_root = root
        elif root != new_root:
            raise ProofError(f"consistency proof {old_length}->{new_length} yields diverging roots")
    assert new_root is not None
    return fold_roots(old_hashes), new_root


# --- map ------------------------------------------------------------------------------------


def map_key(log_id_raw: bytes) -> bytes:
    """Map path of a log: ``H(raw 32-byte log ID)``."""
    return _sha256(log_id_raw).digest()


def evaluate_map_inclusion(peers: tuple[bytes | None, ...], log_id_raw: bytes, record_id: str) -> bytes:
    """The map root implied by ``log_id -> MapLeaf{record_id}`` and bottom-up ``peers``."""
    m = len(peers)
    if m > 256:
        raise ProofError(f"map proof has {m} peers, at most 256 allowed")
    key = int.from_bytes(map_key(log_id_raw), "big")  # bit 255 - i of the int = path bit 255 - i
    h = leaf_hash(map_leaf_bytes(record_id))
    empty = EMPTY_MAP_HASHES
    skip = 256 - m
    for i in range(256):
        sib = peers[i - skip] if i >= skip else None
        if sib is None:
            sib = empty[i]
        # path bit (255 - i) counted from the root is bit i of the integer from the right
        if (key >> i) & 1:
            h = _sha256(b"\x01" + sib + h).digest()
        else:
            h = _sha256(b"\x01" + h + sib).digest()
    return h


# --- proof bundles --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogProofBundle:
    """``warg.transparency.LogProofBundle``."""

    log_length: int
    consistent_lengths: tuple[int, ...]
    included_indices: tuple[int, ...]
    hashes: Mapping[int, bytes]

    @classmethod
    def decode(cls, data: bytes) -> LogProofBundle:
        log_length = 0
        consistent: list[int] = []
        included: list[int] = []
        hashes: dict[int, bytes] = {}
        try:
            for field, wire, value in _proto.iter_fields(data):
                if field == 1:
                    if wire != _proto.WIRE_VARINT:
                        raise ProofError("log_length has the wrong wire type")
                    log_length = _proto.as_uint32(value)  # type: ignore[arg-type]
                elif field == 2 or field == 3:
                    target = consistent if field == 2 else included
                    if wire == _proto.WIRE_LEN:
                        target.extend(_proto.as_uint32(v) for v in _proto.unpack_varints(value))  # type: ignore[arg-type]
                    elif wire == _proto.WIRE_VARINT:
                        target.append(_proto.as_uint32(value))  # type: ignore[arg-type]
                    else:
                        raise ProofError(f"field {field} has the wrong wire type")
                elif field == 4:
                    if wire != _proto.WIRE_LEN:
                        raise ProofError("hashes has the wrong wire type")
                    index = 0
                    digest = b""
                    for f2, w2, v2 in _proto.iter_fields(value):  # type: ignore[arg-type]
                        if f2 == 1:
                            if w2 != _proto.WIRE_VARINT:
                                raise ProofError("hash index has the wrong wire type")
                            index = _proto.as_uint32(v2)  # type: ignore[arg-type]
                        elif f2 == 2:
                            if w2 != _proto.WIRE_LEN:
                                raise ProofError("hash has the wrong wire type")
                            digest = v2  # type: ignore[assignment]
                    if len(digest) != 32:
                        raise ProofError(f"hash of log node {index} is {len(digest)} bytes, expected 32")
                    if hashes.get(index, digest) != digest:
                        raise ProofError(f"log node {index} has two different hashes")
                    hashes[index] = digest
        except ProtoError as exc:
            raise ProofError(f"malformed log proof bundle: {exc}") from None
        return cls(log_length, tuple(consistent), tuple(included), hashes)

    def encode(self) -> bytes:
        out = b""
        if self.log_length:
            out += _proto.field_varint(1, self.log_length)
        if self.consistent_lengths:
            out += _proto.field_packed_varints(2, self.consistent_lengths)
        if self.included_indices:
            out += _proto.field_packed_varints(3, self.included_indices)
        for index in sorted(self.hashes):
            body = (_proto.field_varint(1, index) if index else b"") + _proto.field_bytes(2, self.hashes[index])
            out += _proto.field_bytes(4, body)
        return out


@dataclass(frozen=True, slots=True)
class MapProofBundle:
    """``warg.transparency.MapProofBundle``: one bottom-up peer list per requested leaf."""

    proofs: tuple[tuple[bytes | None, ...], ...]

    @classmethod
    def decode(cls, data: bytes) -> MapProofBundle:
        proofs: list[tuple[bytes | None, ...]] = []
        try:
            for field, wire, value in _proto.iter_fields(data):
                if field != 1:
                    continue
                if wire != _proto.WIRE_LEN:
                    raise ProofError("proofs has the wrong wire type")
                peers: list[bytes | None] = []
                for f2, w2, v2 in _proto.iter_fields(value):  # type: ignore[arg-type]
                    if f2 != 1:
                        continue
                    if w2 != _proto.WIRE_LEN:
                        raise ProofError("map proof hashes has the wrong wire type")
                    digest: bytes | None = None
                    for f3, w3, v3 in _proto.iter_fields(v2):  # type: ignore[arg-type]
                        if f3 == 1:
                            if w3 != _proto.WIRE_LEN:
                                raise ProofError("optional hash has the wrong wire type")
                            digest = v3  # type: ignore[assignment]
                    if digest is not None and len(digest) != 32:
                        raise ProofError(f"map proof hash is {len(digest)} bytes, expected 32")
                    peers.append(digest)
                if len(peers) > 256:
                    raise ProofError(f"map proof has {len(peers)} peers, at most 256 allowed")
                proofs.append(tuple(peers))
        except ProtoError as exc:
            raise ProofError(f"malformed map proof bundle: {exc}") from None
        return cls(tuple(proofs))

    def encode(self) -> bytes:
        out = b""
        for peers in self.proofs:
            body = b""
            for peer in peers:
                body += _proto.field_bytes(1, b"" if peer is None else _proto.field_bytes(1, peer))
            out += _proto.field_bytes(1, body)
        return out
