"""Build warg registries on the fly, with fresh keys, and answer its HTTP API as JSON.

``FakeWargRegistry`` keeps an operator log, any number of package logs, the registry log
(ledger) and checkpoints signed by the operator key. ``handle(method, path, body)`` returns
``(status, json)`` exactly as the warg HTTP API does (spec §8), so a loopback HTTP server
only has to wrap it. Merkle roots and proofs are computed here independently of
``pkgloader`` (RFC 6962 recursion for log roots, a direct sparse-tree recursion for the
map), so the library's verifier is checked against an oracle, not against itself.

The registry accepts anything it is told to publish: tests create unauthorized records,
broken chains and the like simply by appending them. Tampering hooks change what is
*served* without changing the ledger:

* ``tamper_record(log, index, **fields)`` – replace envelope fields (signature, keyId, …)
* ``serve_checkpoint(length)`` – answer ``fetch/checkpoint`` with an older/other checkpoint
* ``fork(length)`` – a copy of the registry truncated to ``length`` leaves, to diverge
* ``corrupt`` – a set of proof parts to corrupt: ``"inclusion-log"``, ``"inclusion-map"``,
  ``"consistency"``, ``"inclusion-index"``
* ``response_hook`` – a callable ``(route, status, body) -> (status, body)`` for anything else
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from pkgloader.backends.warg import OPERATOR_LOG_ID, Update, VerifiedState, package_log_id
from pkgloader.backends.warg._crypto import (
    OPERATOR_SIGNATURE_PREFIX,
    PACKAGE_SIGNATURE_PREFIX,
    CHECKPOINT_SIGNATURE_PREFIX,
    SigningKey,
)
from pkgloader.backends.warg._records import (
    DefineNamespaceEntry,
    GrantEntry,
    ImportNamespaceEntry,
    InitEntry,
    ReleaseEntry,
    RevokeEntry,
    Timestamp,
    YankEntry,
    encode_operator_record,
    encode_package_record,
)

__all__ = [
    "SigningKey",
    "FakeWargRegistry",
    "FakeHTTPError",
    "drive_update",
    "entries_from_proto_json",
    "sha256_text",
    "load_vector",
    "VECTORS",
    "InitEntry",
    "GrantEntry",
    "RevokeEntry",
    "ReleaseEntry",
    "YankEntry",
    "DefineNamespaceEntry",
    "ImportNamespaceEntry",
    "Timestamp",
]

AUTO: Any = object()

#: the spec's test vectors, copied into the repository
VECTORS = Path(__file__).resolve().parent.parent / "data" / "warg"


def load_vector(relpath: str) -> Any:
    """``load_vector("derived/identifiers.json")`` -> parsed JSON."""
    return json.loads((VECTORS / relpath).read_text(encoding="utf-8"))


def sha256_text(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pstr(s: str) -> bytes:
    raw = s.encode()
    return _leb(len(raw)) + raw


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _branch(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


_EMPTY = [_leaf(b"")]
for _i in range(256):
    _EMPTY.append(_branch(_EMPTY[-1], _EMPTY[-1]))


def _log_leaf_hash(log_id: str, record_id: str) -> bytes:
    return _leaf(b"WARG-LOG-LEAF-V0" + _pstr(log_id) + _pstr(record_id))


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over leaf hashes (the independent oracle for log roots)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _branch(_mth(leaves[:k]), _mth(leaves[k:]))


class FakeHTTPError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class _Ledger:
    log_id: str
    record_id: str


class FakeWargRegistry:
    """An in-memory warg registry. See the module docstring."""

    def __init__(
        self,
        operator_key: SigningKey | None = None,
        *,
        namespaces: Iterable[str] = ("example",),
        imported: Mapping[str, str] | None = None,
        start_time: int = 1_700_000_000,
        content_base_url: str = "https://registry.example.com",
        init: bool = True,
    ) -> None:
        self.operator_key = operator_key or SigningKey.generate()
        self.time = start_time
        self.content_base_url = content_base_url.rstrip("/")
        self.ledger: list[_Ledger] = []
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.names: dict[str, str] = {}
        self.checkpoints: dict[int, dict[str, Any]] = {}
        self.content: dict[str, bytes] = {}
        self.served_checkpoint: int | None = None
        self.corrupt: set[str] = set()
        self.response_hook: Callable[[str, int, Any], tuple[int, Any]] | None = None
        self.requests: list[tuple[str, str, Any]] = []
        self._node_cache: dict[int, bytes] = {}
        if init:
            entries: list[Any] = [InitEntry(self.operator_key.public.text)]
            entries += [DefineNamespaceEntry(ns) for ns in namespaces]
            entries += [ImportNamespaceEntry(ns, reg) for ns, reg in (imported or {}).items()]
            self.append_operator(entries)

    @classmethod
    def from_ledger(
        cls,
        ledger: Iterable[tuple[str, str]],
        envelopes: Iterable[Mapping[str, Any]],
        *,
        names: Mapping[str, str] | None = None,
        checkpoints: Iterable[Mapping[str, Any]] = (),
        content: Mapping[str, bytes] | None = None,
    ) -> FakeWargRegistry:
        """A registry serving existing data (e.g. the spec's scenario): ``ledger`` lists
        ``(log_id, record_id)`` by registry index, ``envelopes`` the published records
        (with ``registryIndex``), ``checkpoints`` signed checkpoint JSON to serve."""
        reg = cls(init=False)
        reg.ledger = [_Ledger(log_id, record_id) for log_id, record_id in ledger]
        for env in sorted(envelopes, key=lambda e: e["registryIndex"]):
            log_id = reg.ledger[env["registryIndex"]].log_id
            reg.logs.setdefault(log_id, []).append(
                {k: env[k] for k in ("contentBytes", "keyId", "signature", "registryIndex", "fetchToken")}
            )
        reg.names = dict(names or {})
        for cp in checkpoints:
            reg.checkpoints[cp["contents"]["logLength"]] = {k: copy.deepcopy(cp[k]) for k in ("contents", "keyId", "signature")}
        reg.content = dict(content or {})
        return reg

    # -- time --

    def tick(self, seconds: int = 1) -> Timestamp:
        self.time += seconds
        return Timestamp(self.time, 0)

    # -- publishing --

    @property
    def length(self) -> int:
        return len(self.ledger)

    def _append(
        self,
        log_id: str,
        content: bytes,
        key: SigningKey,
        prefix: bytes,
        record_prefix: bytes,
        sign_prefix: bytes | None,
    ) -> dict[str, Any]:
        record_id = sha256_text(record_prefix + content)
        index = len(self.ledger)
        self.ledger.append(_Ledger(log_id, record_id))
        env = {
            "contentBytes": _b64(content),
            "keyId": key.key_id,
            "signature": key.sign(sign_prefix if sign_prefix is not None else prefix, content),
            "registryIndex": index,
            "fetchToken": record_id,
        }
        self.logs.setdefault(log_id, []).append(env)
        return env

    def _prev(self, log_id: str, prev: Any) -> str | None:
        if prev is not AUTO:
            return prev  # type: ignore[no-any-return]
        records = self.logs.get(log_id)
        return records[-1]["fetchToken"] if records else None

    def append_operator(
        self,
        entries: list[Any],
        *,
        key: SigningKey | None = None,
        prev: Any = AUTO,
        time: Timestamp | None = None,
        version: int = 0,
        sign_prefix: bytes | None = None,
    ) -> dict[str, Any]:
        content = encode_operator_record(self._prev(OPERATOR_LOG_ID, prev), time or self.tick(), entries, version=version)
        return self._append(
            OPERATOR_LOG_ID, content, key or self.operator_key, OPERATOR_SIGNATURE_PREFIX, b"WARG-OPERATOR-LOG-RECORD-V0:", sign_prefix
        )

    def append_package(
        self,
        name: str,
        entries: list[Any],
        *,
        key: SigningKey,
        prev: Any = AUTO,
        time: Timestamp | None = None,
        version: int = 0,
        sign_prefix: bytes | None = None,
        content: bytes | None = None,
    ) -> dict[str, Any]:
        log_id = package_log_id(name)
        self.names[log_id] = name
        if content is None:
            content = encode_package_record(self._prev(log_id, prev), time or self.tick(), entries, version=version)
        return self._append(log_id, content, key, PACKAGE_SIGNATURE_PREFIX, b"WARG-PACKAGE-LOG-RECORD-V0:", sign_prefix)

    # conveniences

    def create_package(self, name: str, owner: SigningKey, *, grants: Mapping[SigningKey, tuple[str, ...]] | None = None) -> dict[str, Any]:
        entries: list[Any] = [InitEntry(owner.public.text)]
        entries += [GrantEntry(k.public.text, perms) for k, perms in (grants or {}).items()]
        return self.append_package(name, entries, key=owner)

    def release(self, name: str, version: str, data: bytes, key: SigningKey) -> str:
        digest = sha256_text(data)
        self.content[digest] = data
        self.append_package(name, [ReleaseEntry(version, digest)], key=key)
        return digest

    def yank(self, name: str, version: str, key: SigningKey) -> dict[str, Any]:
        return self.append_package(name, [YankEntry(version)], key=key)

    def grant(self, name: str, key: SigningKey, to: SigningKey, perms: tuple[str, ...]) -> dict[str, Any]:
        return self.append_package(name, [GrantEntry(to.public.text, perms)], key=key)

    def revoke(self, name: str, key: SigningKey, key_id: str, perms: tuple[str, ...]) -> dict[str, Any]:
        return self.append_package(name, [RevokeEntry(key_id, perms)], key=key)

    # -- checkpoints --

    def publish_checkpoint(
        self,
        *,
        length: int | None = None,
        timestamp: int | None = None,
        key: SigningKey | None = None,
        log_root: str | None = None,
        map_root: str | None = None,
    ) -> dict[str, Any]:
        """Sign a checkpoint at ``length`` (default: everything) and make it the served one."""
        length = self.length if length is None else length
        log_root = log_root or "sha256:" + self.log_root(length).hex()
        map_root = map_root or "sha256:" + self.map_root(length).hex()
        timestamp = self.time if timestamp is None else timestamp
        payload = b"WARG-TIMESTAMPED-CHECKPOINT-V0" + _leb(length) + _pstr(log_root) + _pstr(map_root) + _leb(timestamp)
        key = key or self.operator_key
        cp = {
            "contents": {"logRoot": log_root, "logLength": length, "mapRoot": map_root, "timestamp": timestamp},
            "keyId": key.key_id,
            "signature": key.sign(CHECKPOINT_SIGNATURE_PREFIX, payload),
        }
        self.checkpoints[length] = cp
        self.served_checkpoint = None
        return cp

    def serve_checkpoint(self, length: int) -> None:
        self.served_checkpoint = length

    def latest_checkpoint(self) -> dict[str, Any]:
        if self.served_checkpoint is not None:
            return self.checkpoints[self.served_checkpoint]
        return self.checkpoints[max(self.checkpoints)]

    # -- tampering --

    def _log_id(self, log: str) -> str:
        return OPERATOR_LOG_ID if log == "operator" else package_log_id(log)

    def tamper_record(self, log: str, index: int, **fields: Any) -> None:
        """Replace fields of the served envelope ``index`` of ``log`` ("operator" or a name)."""
        self.logs[self._log_id(log)][index].update(fields)

    def records(self, log: str) -> list[dict[str, Any]]:
        return self.logs[self._log_id(log)]

    def fork(self, length: int) -> FakeWargRegistry:
        """An independent copy holding only the first ``length`` ledger entries."""
        other = copy.copy(self)
        other.ledger = [copy.copy(e) for e in self.ledger[:length]]
        other.logs = {k: [dict(r) for r in v if r["registryIndex"] < length] for k, v in self.logs.items()}
        other.logs = {k: v for k, v in other.logs.items() if v}
        other.names = dict(self.names)
        other.checkpoints = {k: v for k, v in self.checkpoints.items() if k <= length}
        other.content = dict(self.content)
        other.corrupt = set()
        other.requests = []
        other.served_checkpoint = None
        other.response_hook = None
        other._node_cache = {k: v for k, v in self._node_cache.items() if self._node_last_leaf(k) < length}
        return other

    # -- Merkle log (oracle) --

    @staticmethod
    def _height(node: int) -> int:
        h = 0
        while node >> h & 1:
            h += 1
        return h

    def _node_last_leaf(self, node: int) -> int:
        return (node + (1 << self._height(node)) - 1) // 2

    def node_hash(self, node: int) -> bytes:
        cached = self._node_cache.get(node)
        if cached is not None:
            return cached
        h = self._height(node)
        if h == 0:
            e = self.ledger[node // 2]
            value = _log_leaf_hash(e.log_id, e.record_id)
        else:
            half = 1 << (h - 1)
            value = _branch(self.node_hash(node - half), self.node_hash(node + half))
        self._node_cache[node] = value
        return value

    def log_root(self, length: int) -> bytes:
        return _mth([_log_leaf_hash(e.log_id, e.record_id) for e in self.ledger[:length]])

    @staticmethod
    def _broots(length: int) -> list[int]:
        out, start = [], 0
        for h in range(length.bit_length() - 1, -1, -1):
            if length >> h & 1:
                out.append(2 * start + (1 << h) - 1)
                start += 1 << h
        return out

    def _walk_nodes(self, node: int, length: int) -> set[int]:
        roots = self._broots(length)
        needed: set[int] = set()
        n = node
        while n not in roots:
            h = self._height(n)
            d = 1 << h
            left = (n >> (h + 1)) & 1 == 0
            needed.add(n + 2 * d if left else n - 2 * d)
            n = n + d if left else n - d
        needed.update(r for r in roots if r != n)
        return needed

    # -- map (oracle) --

    def map_entries(self, length: int) -> dict[str, str]:
        latest: dict[str, str] = {}
        for e in self.ledger[:length]:
            latest[e.log_id] = e.record_id
        return latest

    @staticmethod
    def _key(log_id: str) -> int:
        return int.from_bytes(hashlib.sha256(bytes.fromhex(log_id[7:])).digest(), "big")

    def _subtree(self, items: list[tuple[int, bytes]], depth: int) -> bytes:
        if not items:
            return _EMPTY[256 - depth]
        if depth == 256:
            return items[0][1]
        bit = 255 - depth
        left = [it for it in items if not (it[0] >> bit) & 1]
        right = [it for it in items if (it[0] >> bit) & 1]
        return _branch(self._subtree(left, depth + 1), self._subtree(right, depth + 1))

    def _map_items(self, length: int) -> list[tuple[int, bytes]]:
        return [
            (self._key(log_id), _leaf(b"WARG-MAP-LEAF-V0" + _pstr(record_id)))
            for log_id, record_id in self.map_entries(length).items()
        ]

    def map_root(self, length: int) -> bytes:
        return self._subtree(self._map_items(length), 0)

    def map_peers(self, length: int, log_id: str) -> list[bytes | None]:
        """Bottom-up peers, one per level from the root down to where the key is alone."""
        items = self._map_items(length)
        key = self._key(log_id)
        others = [it for it in items if it[0] != key]
        lcp = max((256 - (key ^ o[0]).bit_length() for o in others), default=-1)
        m = lcp + 1
        top_down: list[bytes | None] = []
        group = items
        for depth in range(m):
            bit = 255 - depth
            mine = (key >> bit) & 1
            sibling = [it for it in group if (it[0] >> bit) & 1 != mine]
            group = [it for it in group if (it[0] >> bit) & 1 == mine]
            top_down.append(self._subtree(sibling, depth + 1))
        return top_down[::-1]

    # -- proof bundles (protobuf, hand-encoded here) --

    @staticmethod
    def _field(n: int, data: bytes) -> bytes:
        return _leb(n << 3 | 2) + _leb(len(data)) + data

    def _log_bundle(self, length: int, consistent: list[int], included: list[int], nodes: set[int]) -> bytes:
        out = _leb(1 << 3) + _leb(length)
        if consistent:
            out += self._field(2, b"".join(_leb(x) for x in consistent))
        if included:
            out += self._field(3, b"".join(_leb(x) for x in included))
        for node in sorted(nodes):
            body = (_leb(1 << 3) + _leb(node) if node else b"") + self._field(2, self.node_hash(node))
            out += self._field(4, body)
        return out

    def _map_bundle(self, proofs: list[list[bytes | None]]) -> bytes:
        out = b""
        for peers in proofs:
            body = b"".join(self._field(1, b"" if p is None else self._field(1, p)) for p in peers)
            out += self._field(1, body)
        return out

    # -- HTTP API --

    def handle(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Answer one API call: ``(status, json)`` (content downloads: ``(status, bytes)``)."""
        path = path.lstrip("/")
        self.requests.append((method, path, body))
        route = f"{method} {path}"
        out: Any
        try:
            if route == "GET v1/fetch/checkpoint":
                status, out = 200, self.latest_checkpoint()
            elif route == "POST v1/fetch/logs":
                status, out = self._fetch_logs(body)
            elif route == "POST v1/proof/inclusion":
                status, out = self._prove_inclusion(body)
            elif route == "POST v1/proof/consistency":
                status, out = self._prove_consistency(body)
            elif route == "POST v1/fetch/names":
                ids = (body or {}).get("packages", [])
                status, out = 200, {"packages": {i: self.names.get(i) for i in ids[:1000]}}
            elif method == "GET" and path.startswith("v1/content/"):
                digest = path[len("v1/content/") :]
                if digest not in self.content:
                    status, out = 404, {"status": 404, "type": "contentDigest", "id": digest}
                else:
                    url = f"{self.content_base_url}/content/{digest.replace(':', '-')}"
                    status, out = 200, {"contentSources": {digest: [{"type": "httpGet", "url": url}]}}
            elif method == "GET" and path.startswith("content/"):
                digest = path[len("content/") :].replace("-", ":", 1)
                status, out = (200, self.content[digest]) if digest in self.content else (404, {"status": 404, "message": "not found"})
            else:
                status, out = 404, {"status": 404, "message": f"no route {route}"}
        except FakeHTTPError as exc:
            status, out = exc.status, exc.body
        if self.response_hook is not None:
            status, out = self.response_hook(route, status, out)
        return status, out

    def call(self, method: str, path: str, body: Any = None) -> Any:
        status, out = self.handle(method, path, body)
        if status != 200:
            raise FakeHTTPError(status, out)
        return out

    def _require_length(self, length: Any) -> int:
        if type(length) is not int or length not in self.checkpoints:
            raise FakeHTTPError(404, {"status": 404, "type": "logLength", "id": length})
        return length

    def _fetch_logs(self, body: Any) -> tuple[int, Any]:
        allowed = {"logLength", "limit", "operator", "packages"}
        if not isinstance(body, dict) or set(body) - allowed:
            return 400, {"status": 400, "message": "invalid request body"}
        length = self._require_length(body.get("logLength"))
        limit = body.get("limit", 100)
        if type(limit) is not int or not 1 <= limit <= 1000:
            return 400, {"status": 400, "message": "limit must be between 1 and 1000"}

        def page(log_id: str, token: str | None) -> list[dict[str, Any]]:
            records = self.logs.get(log_id)
            if records is None:
                raise FakeHTTPError(404, {"status": 404, "type": "log", "id": log_id})
            visible = [r for r in records if r["registryIndex"] < length]
            start = 0
            if token is not None:
                for i, r in enumerate(records):
                    if r["fetchToken"] == token:
                        start = i + 1
                        break
                else:
                    raise FakeHTTPError(404, {"status": 404, "type": "fetchToken", "id": token})
            return [dict(r) for r in visible[start : start + limit]]

        operator = page(OPERATOR_LOG_ID, body.get("operator"))
        packages = {log_id: page(log_id, token) for log_id, token in (body.get("packages") or {}).items()}
        more = len(operator) == limit or any(len(v) == limit for v in packages.values())
        return 200, {"more": more, "operator": operator, "packages": packages}

    def _prove_inclusion(self, body: Any) -> tuple[int, Any]:
        length = self._require_length(body.get("logLength"))
        leafs = body.get("leafs", [])
        nodes: set[int] = set()
        peers: list[list[bytes | None]] = []
        for leaf in leafs:
            if type(leaf) is not int or not 0 <= leaf < length:
                raise FakeHTTPError(404, {"status": 404, "type": "leaf", "id": leaf})
            nodes |= self._walk_nodes(2 * leaf, length)
            peers.append(self.map_peers(length, self.ledger[leaf].log_id))
        included = [2 * leaf for leaf in leafs]
        if "inclusion-index" in self.corrupt and included:
            included[-1] += 2
        log_bundle = self._log_bundle(length, [], included, nodes)
        if "inclusion-log" in self.corrupt:
            node = max(nodes) if nodes else None
            if node is not None:
                log_bundle = log_bundle.replace(self.node_hash(node), bytes(32))
        if "inclusion-map" in self.corrupt:
            for p in peers:
                if p:
                    p[-1] = bytes(32)
        return 200, {"log": _b64(log_bundle), "map": _b64(self._map_bundle(peers))}

    def _prove_consistency(self, body: Any) -> tuple[int, Any]:
        old = self._require_length(body.get("from"))
        new = self._require_length(body.get("to"))
        if old > new or old < 1:
            return 422, {"status": 422, "reason": "failure", "message": "invalid lengths"}
        nodes: set[int] = set()
        for b in self._broots(old):
            nodes.add(b)
            nodes |= self._walk_nodes(b, new)
        bundle = self._log_bundle(new, [old], [], nodes)
        if "consistency" in self.corrupt and nodes:
            bundle = bundle.replace(self.node_hash(max(nodes)), bytes(32))
        return 200, {"proof": _b64(bundle)}


def drive_update(
    registry: FakeWargRegistry,
    packages: Iterable[str],
    previous: VerifiedState | None = None,
    *,
    limit: int | None = None,
    registry_name: str | None = "registry.example.com",
) -> VerifiedState:
    """Run one verification round against ``registry`` the way the HTTP backend will."""
    update = Update(registry.call("GET", "v1/fetch/checkpoint"), packages, previous, registry=registry_name)
    while update.add_fetch_logs_response(registry.call("POST", "v1/fetch/logs", update.fetch_logs_request(limit))):
        pass
    inclusion = update.inclusion_request()
    consistency = update.consistency_request()
    return update.finish(
        registry.call("POST", "v1/proof/inclusion", inclusion) if inclusion else None,
        registry.call("POST", "v1/proof/consistency", consistency) if consistency else None,
    )


# --- upstream fixture format ---------------------------------------------------------------

_PERM_NAMES = {
    "PACKAGE_PERMISSION_RELEASE": "release",
    "PACKAGE_PERMISSION_YANK": "yank",
    "OPERATOR_PERMISSION_COMMIT": "commit",
    "OPERATOR_PERMISSION_DEFINE_NAMESPACE": "defineNamespace",
    "OPERATOR_PERMISSION_IMPORT_NAMESPACE": "importNamespace",
}


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    return obj[camel] if camel in obj else obj.get(snake)


def entries_from_proto_json(entries: list[Mapping[str, Any]]) -> list[Any]:
    """Entries of an upstream fixture record (proto3 JSON, camel or snake case)."""
    out: list[Any] = []
    for entry in entries:
        ((kind, body),) = entry.items()
        perms = tuple(_PERM_NAMES[p] for p in body.get("permissions", []))
        if kind == "init":
            out.append(InitEntry(body["key"], _get(body, "hashAlgorithm", "hash_algorithm")))
        elif kind in ("grantFlat", "grant_flat"):
            out.append(GrantEntry(body["key"], perms))
        elif kind in ("revokeFlat", "revoke_flat"):
            out.append(RevokeEntry(_get(body, "keyId", "key_id"), perms))
        elif kind == "release":
            out.append(ReleaseEntry(body["version"], _get(body, "contentHash", "content_hash")))
        elif kind == "yank":
            out.append(YankEntry(body["version"]))
        elif kind in ("defineNamespace", "define_namespace"):
            out.append(DefineNamespaceEntry(body["namespace"]))
        elif kind in ("importNamespace", "import_namespace"):
            out.append(ImportNamespaceEntry(body["namespace"], body["registry"]))
        else:
            raise ValueError(f"unknown entry kind {kind!r}")
    return out
