"""Every upstream and derived vector of warg-protocol.md §10 (copied to tests/data/warg)."""

from __future__ import annotations

import base64
import copy
import json
from datetime import datetime
from typing import Any

import pytest

from pkgloader._errors import (
    WargProofError,
    WargSignatureError,
    WargVerificationError,
)
from pkgloader.backends.warg import (
    OPERATOR_LOG_ID,
    Update,
    VerifiedState,
    package_log_id,
    validate_operator_log,
    validate_package_log,
    verify_update,
)
from pkgloader.backends.warg import _merkle, _proto
from pkgloader.backends.warg._checkpoint import SignedCheckpoint
from pkgloader.backends.warg._crypto import (
    OPERATOR_SIGNATURE_PREFIX,
    PACKAGE_SIGNATURE_PREFIX,
    SigningKey,
    hash_raw,
    key_id_of,
    parse_public_key,
    parse_signature,
    sha256_text,
)
from pkgloader.backends.warg._records import (
    OPERATOR_RECORD_ID_PREFIX,
    PACKAGE_RECORD_ID_PREFIX,
    Timestamp,
    decode_operator_record,
    decode_package_record,
    encode_operator_record,
    encode_package_record,
)
from support.wargfactory import FakeWargRegistry, drive_update, entries_from_proto_json, load_vector

IDS = load_vector("derived/identifiers.json")
ENVELOPES = load_vector("derived/fixture-envelopes.json")
SCENARIO = load_vector("derived/registry-scenario.json")
FIXTURES = ["package-logs/minimal.json", "package-logs/longer.json", "operator-logs/minimal.json", "operator-logs/longer.json"]


# --- identifiers.json ------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob", "third"])
def test_key_ids(who: str) -> None:
    key = IDS["keys"][who]
    assert key_id_of(key["public"]) == key["keyId"]
    assert parse_public_key(key["public"]).text == key["public"]
    if key["private"]:
        signer = SigningKey.from_text(key["private"])
        assert signer.public.text == key["public"]
        assert signer.private_text == key["private"]


def test_uncompressed_key_has_the_compressed_key_id() -> None:
    alice = IDS["keys"]["alice"]
    key = parse_public_key(alice["publicUncompressed"])
    assert key.key_id == alice["keyId"]
    assert key.text == alice["public"]


@pytest.mark.parametrize("text,digest", sorted(IDS["digests"].items()))
def test_digests(text: str, digest: str) -> None:
    data = bytes.fromhex(text.split(":", 1)[1]) if text.startswith(("empty",)) else text.encode()
    assert sha256_text(data) == digest


def test_operator_log_id() -> None:
    assert OPERATOR_LOG_ID == IDS["operatorLogId"]


@pytest.mark.parametrize("name,log_id", sorted(IDS["packageLogIds"].items()))
def test_package_log_ids(name: str, log_id: str) -> None:
    assert package_log_id(name) == log_id


def test_package_log_id_preimage() -> None:
    preimage = bytes.fromhex(IDS["packageLogIdPreimageHex"]["example:hello"])
    assert preimage == b"WARG-PACKAGE-LOG-ID-V0:WARG-PACKAGE-ID-V0" + _proto.pstr("example:hello")
    assert sha256_text(preimage) == IDS["packageLogIds"]["example:hello"]


@pytest.mark.parametrize("n,hexval", sorted(IDS["leb128"].items()))
def test_leb128(n: str, hexval: str) -> None:
    assert _proto.leb128(int(n)).hex() == hexval
    assert _proto.read_varint(bytes.fromhex(hexval), 0) == (int(n), len(hexval) // 2)


def test_empty_roots_and_subtrees() -> None:
    assert "sha256:" + _merkle.EMPTY_LOG_ROOT.hex() == IDS["emptyLogRoot"]
    assert "sha256:" + _merkle.fold_roots([]).hex() == IDS["emptyLogRoot"]
    assert "sha256:" + _merkle.EMPTY_MAP_HASHES[256].hex() == IDS["emptyMapRoot"]
    for height, digest in IDS["emptySubtreeHashByHeight"].items():
        assert "sha256:" + _merkle.EMPTY_MAP_HASHES[int(height)].hex() == digest


# --- fixture-envelopes.json ------------------------------------------------------------------


def _fixture_envelopes() -> list[tuple[str, int, dict[str, Any]]]:
    return [(f, i, env) for f in FIXTURES for i, env in enumerate(ENVELOPES[f])]


@pytest.mark.parametrize("fixture,index,env", _fixture_envelopes(), ids=lambda v: str(v)[:30])
def test_fixture_envelope(fixture: str, index: int, env: dict[str, Any]) -> None:
    content = base64.b64decode(env["contentBytes"])
    assert content.hex() == env["_contentHex"]
    is_package = fixture.startswith("package")
    record_prefix = PACKAGE_RECORD_ID_PREFIX if is_package else OPERATOR_RECORD_ID_PREFIX
    assert sha256_text(record_prefix + content) == env["_recordId"]
    record = (decode_package_record if is_package else decode_operator_record)(content)
    encode = encode_package_record if is_package else encode_operator_record
    assert encode(record.prev, record.time, record.entries) == content  # encoder is byte-exact
    key = parse_public_key(IDS["keys"]["alice" if env["keyId"] == IDS["keys"]["alice"]["keyId"] else "bob"]["public"])
    sig_prefix = PACKAGE_SIGNATURE_PREFIX if is_package else OPERATOR_SIGNATURE_PREFIX
    other_prefix = OPERATOR_SIGNATURE_PREFIX if is_package else PACKAGE_SIGNATURE_PREFIX
    assert key.verify(sig_prefix, content, parse_signature(env["signature"]))
    assert not key.verify(other_prefix, content, parse_signature(env["signature"]))


@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixture_envelopes_validate_as_a_log(fixture: str) -> None:
    expected = load_vector(f"upstream/{fixture.replace('/', '/output/')}")["Valid"]
    if fixture.startswith("package"):
        state: Any = validate_package_log("example:hello", ENVELOPES[fixture])
    else:
        state = validate_operator_log(ENVELOPES[fixture])
    assert _upstream_form(state) == _normalize_upstream(expected)


def test_negative_tampered_content() -> None:
    env = ENVELOPES["negative"]["tamperedContent"]
    with pytest.raises(WargVerificationError):
        validate_package_log("example:hello", [env])
    # the flipped byte turns a permission into UNSPECIFIED: the signature no longer verifies
    # either (checked directly, since decoding already rejects the record)
    key = parse_public_key(IDS["keys"]["alice"]["public"])
    assert not key.verify(PACKAGE_SIGNATURE_PREFIX, base64.b64decode(env["contentBytes"]), parse_signature(env["signature"]))


def test_negative_wrong_signature_prefix() -> None:
    env = ENVELOPES["negative"]["wrongSignaturePrefix"]
    with pytest.raises(WargSignatureError) as info:
        validate_package_log("example:hello", [env])
    assert info.value.code == "warg-bad-signature"
    key = parse_public_key(IDS["keys"]["alice"]["public"])
    content = base64.b64decode(env["contentBytes"])
    assert key.verify(OPERATOR_SIGNATURE_PREFIX, content, parse_signature(env["signature"]))


def test_openapi_example_signature_does_not_verify() -> None:
    # upstream openapi.yaml's example signature is used upstream as a non-matching signature
    env = dict(ENVELOPES["package-logs/minimal.json"][0])
    env["signature"] = (
        "ecdsa-p256:MEUCIQCzWZBW6ux9LecP66Y+hjmLZTP/hZVz7puzlPTXcRT2wwIgQZO7nxP0nugtw18MwHZ26ROFWcJmgCtKOguK031Y1D0="
    )
    with pytest.raises(WargSignatureError):
        validate_package_log("example:hello", [env])


# --- upstream package-logs / operator-logs ----------------------------------------------------------


def _rfc3339(text: str) -> Timestamp:
    date, frac = text.split(".")
    nanos_text, _, _ = frac.partition("+")
    nanos_text = nanos_text.rstrip("Z")
    seconds = int(datetime.fromisoformat(date + "+00:00").timestamp())
    return Timestamp(seconds, int(nanos_text.ljust(9, "0")))


def _build_upstream_log(fixture: str) -> list[dict[str, Any]]:
    """What the upstream harness does: overwrite prev, encode, sign with the item's key."""
    items = load_vector(f"upstream/{fixture}")
    is_package = fixture.startswith("package")
    out: list[dict[str, Any]] = []
    prev = None
    for item in items:
        key = SigningKey.from_text(item["key"])
        contents = item["contents"]
        entries = entries_from_proto_json(contents["entries"])
        time = _rfc3339(contents["time"])
        encode = encode_package_record if is_package else encode_operator_record
        content = encode(prev, time, entries, version=contents.get("version", 0))
        prefix = PACKAGE_SIGNATURE_PREFIX if is_package else OPERATOR_SIGNATURE_PREFIX
        out.append(
            {
                "contentBytes": base64.b64encode(content).decode(),
                "keyId": key.key_id,
                "signature": key.sign(prefix, content),
            }
        )
        prev = sha256_text((PACKAGE_RECORD_ID_PREFIX if is_package else OPERATOR_RECORD_ID_PREFIX) + content)
    return out


def _normalize_upstream(state: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(state)
    out["permissions"] = {k: sorted(v) for k, v in out["permissions"].items()}
    return out


def _upstream_form(state: Any) -> dict[str, Any]:
    """Our state in the upstream output/*.json shape (only to compare with the vectors)."""
    out: dict[str, Any] = {
        "algorithm": "sha256",
        "head": {"digest": state.head.record_id, "timestamp": str(state.head.timestamp)},
        "permissions": {k: sorted(v) for k, v in state.permissions.items()},
        "keys": dict(state.keys),
    }
    if hasattr(state, "releases") and state.releases:
        out["releases"] = {
            r.version: {
                "recordId": r.record_id,
                "version": r.version,
                "by": r.by,
                "timestamp": str(r.timestamp),
                "state": {"status": "yanked", "by": r.yanked_by, "timestamp": str(r.yanked_at)}
                if r.yanked
                else {"status": "released", "content": r.content},
            }
            for r in state.releases
        }
    return out


@pytest.mark.parametrize("fixture", FIXTURES)
def test_upstream_fixture_logs(fixture: str) -> None:
    envelopes = _build_upstream_log(fixture)
    # byte-identical to the derived envelopes, including the RFC 6979 signatures
    assert [e["contentBytes"] for e in envelopes] == [e["contentBytes"] for e in ENVELOPES[fixture]]
    assert [e["signature"] for e in envelopes] == [e["signature"] for e in ENVELOPES[fixture]]
    expected = load_vector(f"upstream/{fixture.replace('/', '/output/')}")["Valid"]
    if fixture.startswith("package"):
        state: Any = validate_package_log("example:hello", envelopes)
    else:
        state = validate_operator_log(envelopes)
    assert _upstream_form(state) == _normalize_upstream(expected)


def test_upstream_longer_release_record_id() -> None:
    state = validate_package_log("example:hello", ENVELOPES["package-logs/longer.json"])
    (release,) = state.releases
    assert release.record_id == "sha256:9cceb5c0132deb4eb971802826ff72666b2fc85139360a5ae8d17d02772745a4"
    assert release.yanked and release.available_content is None
    assert release.content == "sha256:7d38b5cd25a2baf85ad3bb5b9311383e671a8a142eb302b324d4a5fba8748c69"


# --- registry-scenario.json ------------------------------------------------------------------------


def test_scenario_records() -> None:
    for name, rec in SCENARIO["records"].items():
        content = base64.b64decode(rec["contentBytes"])
        assert content.hex() == rec["_contentHex"], name
        prefix = OPERATOR_RECORD_ID_PREFIX if name.startswith("op") else PACKAGE_RECORD_ID_PREFIX
        assert sha256_text(prefix + content) == rec["_recordId"] == rec["fetchToken"], name


@pytest.mark.parametrize("leaf", SCENARIO["ledger"], ids=lambda leaf: str(leaf["registryIndex"]))
def test_scenario_ledger_leaves(leaf: dict[str, Any]) -> None:
    data = _merkle.log_leaf_bytes(leaf["logId"], leaf["recordId"])
    assert data.hex() == leaf["logLeafBytesHex"]
    assert "sha256:" + _merkle.leaf_hash(data).hex() == leaf["logLeafHash"]


@pytest.mark.parametrize("length", ["len3", "len6"])
def test_scenario_checkpoints(length: str) -> None:
    raw = SCENARIO["checkpoints"][length]
    cp = SignedCheckpoint.from_json(raw)
    assert (b"WARG-CHECKPOINT-SIGNATURE-V0:" + cp.checkpoint.timestamped_encoding()).hex() == raw["_signedMessageHex"]
    assert cp.checkpoint.checkpoint_id() == raw["_checkpointHash"]
    assert cp.to_json() == {k: raw[k] for k in ("contents", "keyId", "signature")}
    # log root recomputed from the ledger
    leaves = [_merkle.leaf_hash(bytes.fromhex(leaf["logLeafBytesHex"])) for leaf in SCENARIO["ledger"]]
    n = cp.checkpoint.log_length
    roots = []
    start = 0
    for node in _merkle.broots(n):
        size = 1 << _merkle.height(node)
        roots.append(_merkle_root(leaves[start : start + size]))
        start += size
    assert "sha256:" + _merkle.fold_roots(roots).hex() == cp.checkpoint.log_root
    operator = validate_operator_log([SCENARIO["records"]["op0"]])
    cp.verify(operator)


def _merkle_root(leaves: list[bytes]) -> bytes:
    while len(leaves) > 1:
        leaves = [_merkle.branch(leaves[i], leaves[i + 1]) for i in range(0, len(leaves), 2)]
    return leaves[0]


def test_broots_examples() -> None:
    assert _merkle.broots(3) == [1, 4]
    assert _merkle.broots(6) == [3, 9]
    assert _merkle.broots(7) == [3, 9, 12]
    assert _merkle.broots(8) == [7]


def _expected_releases(name: str) -> list[dict[str, Any]]:
    return SCENARIO["expected"][name]["releases"]


def _release_view(state: VerifiedState, name: str) -> list[dict[str, Any]]:
    out = []
    for r in state.releases(name):
        item: dict[str, Any] = {
            "version": r.version,
            "recordId": r.record_id,
            "by": r.by,
            "yanked": r.yanked,
            "content": r.available_content,
        }
        if r.yanked:
            item["yankedBy"] = r.yanked_by
        out.append(item)
    return out


def _check_expected(state: VerifiedState) -> None:
    exp = SCENARIO["expected"]
    op = exp["operator"]
    assert state.operator.head.record_id == op["head"]
    assert dict(state.operator.keys) == op["keys"]
    assert {k: set(v) for k, v in state.operator.permissions.items()} == {k: set(v) for k, v in op["permissions"].items()}
    assert dict(state.operator.namespaces) == {
        ns: None if v == "defined" else v["imported"] for ns, v in op["namespaces"].items()
    }
    for name in ("example:hello", "example:world"):
        pkg = state.package(name)
        assert pkg is not None
        assert pkg.head.record_id == exp[name]["head"]
        assert _release_view(state, name) == _expected_releases(name)
        if "permissions" in exp[name]:
            assert {k: set(v) for k, v in pkg.permissions.items()} == {k: set(v) for k, v in exp[name]["permissions"].items()}


def test_scenario_full_http_flow() -> None:
    http = SCENARIO["http"]
    update = Update(http["GET v1/fetch/checkpoint"], ["example:hello", "example:world"], registry="registry.example.com")
    assert update.fetch_logs_request() == http["POST v1/fetch/logs"]["request"]
    assert update.add_fetch_logs_response(http["POST v1/fetch/logs"]["response"]) is False
    assert update.inclusion_request() == http["POST v1/proof/inclusion"]["request"]
    assert update.consistency_request() is None
    state = update.finish(http["POST v1/proof/inclusion"]["response"])
    _check_expected(state)
    assert state.log_length == 6
    # persistence round trip through real JSON text
    again = VerifiedState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state


def test_scenario_page_example() -> None:
    """The illustrative page: with limit 2 and tokens after hello2, one more page is needed."""
    http = SCENARIO["http"]
    page = http["POST v1/fetch/logs (page example)"]
    state3 = _scenario_state_at_3()
    update = Update(http["GET v1/fetch/checkpoint"], ["example:hello"], state3)
    # hello2 (index 3) is not in state3, so apply it first the way an earlier page would
    update.add_package_records("example:hello", [SCENARIO["records"]["hello2"]])
    assert update.fetch_logs_request(limit=2) == page["request"]
    assert update.add_fetch_logs_response(page["response"]) is True
    assert update.add_fetch_logs_response({"more": False, "operator": [], "packages": {}}) is False


def _scenario_registry() -> FakeWargRegistry:
    ledger = [(leaf["logId"], leaf["recordId"]) for leaf in SCENARIO["ledger"]]
    names = {v: k for k, v in SCENARIO["packages"].items()}
    content = {d: bytes.fromhex(v["contentHex"]) for d, v in SCENARIO["contentSources"].items()}
    return FakeWargRegistry.from_ledger(
        ledger,
        SCENARIO["records"].values(),
        names=names,
        checkpoints=SCENARIO["checkpoints"].values(),
        content=content,
    )


def _scenario_state_at_3() -> VerifiedState:
    reg = _scenario_registry()
    reg.serve_checkpoint(3)
    return drive_update(reg, ["example:hello", "example:world"])


def test_scenario_served_by_factory_matches_vectors() -> None:
    """The factory reproduces the vector's proof bundles byte for byte."""
    reg = _scenario_registry()
    http = SCENARIO["http"]
    assert reg.call("POST", "v1/fetch/logs", http["POST v1/fetch/logs"]["request"]) == http["POST v1/fetch/logs"]["response"]
    inclusion = reg.call("POST", "v1/proof/inclusion", http["POST v1/proof/inclusion"]["request"])
    assert inclusion == http["POST v1/proof/inclusion"]["response"]
    consistency = reg.call("POST", "v1/proof/consistency", http["POST v1/proof/consistency"]["request"])
    assert consistency == http["POST v1/proof/consistency"]["response"]
    assert reg.call("POST", "v1/fetch/names", http["POST v1/fetch/names"]["request"]) == http["POST v1/fetch/names"]["response"]
    for digest, src in SCENARIO["contentSources"].items():
        assert reg.call("GET", f"v1/content/{digest}") == src["response"]
    assert "sha256:" + reg.log_root(6).hex() == SCENARIO["checkpoints"]["len6"]["contents"]["logRoot"]
    assert "sha256:" + reg.map_root(6).hex() == SCENARIO["checkpoints"]["len6"]["contents"]["mapRoot"]
    assert "sha256:" + reg.map_root(3).hex() == SCENARIO["checkpoints"]["len3"]["contents"]["mapRoot"]


def test_scenario_incremental_3_to_6_with_consistency_vector() -> None:
    state3 = _scenario_state_at_3()
    assert state3.log_length == 3
    assert [r.version for r in state3.releases("example:hello")] == []
    assert [r.version for r in state3.releases("example:world")] == ["0.1.0"]
    http = SCENARIO["http"]
    update = Update(http["GET v1/fetch/checkpoint"], ["example:hello", "example:world"], state3)
    request = update.fetch_logs_request()
    assert request["operator"] == SCENARIO["records"]["op0"]["fetchToken"]
    assert request["packages"] == {
        SCENARIO["packages"]["example:hello"]: SCENARIO["records"]["hello1"]["fetchToken"],
        SCENARIO["packages"]["example:world"]: SCENARIO["records"]["world1"]["fetchToken"],
    }
    reg = _scenario_registry()
    assert update.add_fetch_logs_response(reg.call("POST", "v1/fetch/logs", request)) is False
    assert update.consistency_request() == http["POST v1/proof/consistency"]["request"]
    assert update.inclusion_request() == http["POST v1/proof/inclusion"]["request"]
    state6 = update.finish(http["POST v1/proof/inclusion"]["response"], http["POST v1/proof/consistency"]["response"])
    _check_expected(state6)


def test_scenario_consistency_vector_roots() -> None:
    proof = SCENARIO["http"]["POST v1/proof/consistency"]
    bundle = _merkle.LogProofBundle.decode(base64.b64decode(proof["response"]["proof"]))
    assert bundle.encode().hex() == proof["_bundleHex"]
    old, new = _merkle.verify_log_consistency(bundle.hashes, 3, 6)
    assert "sha256:" + old.hex() == proof["_expect"]["oldRoot"]
    assert "sha256:" + new.hex() == proof["_expect"]["newRoot"]


def test_scenario_inclusion_vector_hex() -> None:
    inc = SCENARIO["http"]["POST v1/proof/inclusion"]
    assert base64.b64decode(inc["response"]["log"]).hex() == inc["_logBundleHex"]
    assert base64.b64decode(inc["response"]["map"]).hex() == inc["_mapBundleHex"]
    bundle = _merkle.MapProofBundle.decode(base64.b64decode(inc["response"]["map"]))
    for peers, leaf in zip(bundle.proofs, inc["_leafValues"]):
        root = _merkle.evaluate_map_inclusion(peers, hash_raw(leaf["logId"]), leaf["recordId"])
        assert "sha256:" + root.hex() == SCENARIO["checkpoints"]["len6"]["contents"]["mapRoot"]


# --- flipping any byte must make verification fail ------------------------------------------------


def _scenario_inputs() -> dict[str, Any]:
    http = SCENARIO["http"]
    return {
        "checkpoint": copy.deepcopy(http["GET v1/fetch/checkpoint"]),
        "operator": copy.deepcopy(http["POST v1/fetch/logs"]["response"]["operator"]),
        "packages": copy.deepcopy(http["POST v1/fetch/logs"]["response"]["packages"]),
        "inclusion": copy.deepcopy(http["POST v1/proof/inclusion"]["response"]),
    }


def _verify_inputs(inputs: dict[str, Any]) -> VerifiedState:
    names = {v: k for k, v in SCENARIO["packages"].items()}
    return verify_update(
        inputs["checkpoint"],
        inputs["operator"],
        {names[log_id]: recs for log_id, recs in inputs["packages"].items()},
        inputs["inclusion"],
    )


def _flip_b64(text: str, pos: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[pos] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_unmodified_inputs_verify() -> None:
    _check_expected(_verify_inputs(_scenario_inputs()))


def _record_flips() -> list[tuple[str, int, int]]:
    out = []
    for log_id, recs in SCENARIO["http"]["POST v1/fetch/logs"]["response"]["packages"].items():
        for i, rec in enumerate(recs):
            size = len(base64.b64decode(rec["contentBytes"]))
            step = 1 if (i == 1 and log_id == SCENARIO["packages"]["example:hello"]) else 5
            out += [(log_id, i, pos) for pos in range(0, size, step)]
    return out


@pytest.mark.parametrize("log_id,index,pos", _record_flips())
def test_flipping_a_record_byte_fails(log_id: str, index: int, pos: int) -> None:
    inputs = _scenario_inputs()
    rec = inputs["packages"][log_id][index]
    rec["contentBytes"] = _flip_b64(rec["contentBytes"], pos)
    with pytest.raises(WargVerificationError):
        _verify_inputs(inputs)


@pytest.mark.parametrize("pos", range(0, len(base64.b64decode(SCENARIO["records"]["op0"]["contentBytes"])), 3))
def test_flipping_an_operator_record_byte_fails(pos: int) -> None:
    inputs = _scenario_inputs()
    rec = inputs["operator"][0]
    rec["contentBytes"] = _flip_b64(rec["contentBytes"], pos)
    with pytest.raises(WargVerificationError):
        _verify_inputs(inputs)


@pytest.mark.parametrize("where", ["operator", "hello0", "hello3", "world0"])
@pytest.mark.parametrize("pos", [0, 5, 10, 20, 40, 60, -1])
def test_flipping_a_signature_byte_fails(where: str, pos: int) -> None:
    inputs = _scenario_inputs()
    hello, world = SCENARIO["packages"]["example:hello"], SCENARIO["packages"]["example:world"]
    rec = {
        "operator": inputs["operator"][0],
        "hello0": inputs["packages"][hello][0],
        "hello3": inputs["packages"][hello][3],
        "world0": inputs["packages"][world][0],
    }[where]
    algo, b64 = rec["signature"].split(":")
    raw = base64.b64decode(b64)
    rec["signature"] = algo + ":" + _flip_b64(b64, pos % len(raw))
    with pytest.raises(WargVerificationError):
        _verify_inputs(inputs)


@pytest.mark.parametrize("field", ["logRoot", "mapRoot"])
@pytest.mark.parametrize("pos", [7, 20, 40, 70])
def test_flipping_a_root_fails(field: str, pos: int) -> None:
    inputs = _scenario_inputs()
    root = inputs["checkpoint"]["contents"][field]
    inputs["checkpoint"]["contents"][field] = root[:pos] + ("0" if root[pos] != "0" else "1") + root[pos + 1 :]
    with pytest.raises(WargSignatureError):
        _verify_inputs(inputs)


def test_flipping_length_or_timestamp_fails() -> None:
    for field, value in (("logLength", 7), ("timestamp", 1671221141)):
        inputs = _scenario_inputs()
        inputs["checkpoint"]["contents"][field] = value
        with pytest.raises(WargVerificationError):
            _verify_inputs(inputs)


def _proof_hash_offsets(b64: str) -> list[int]:
    """Byte offsets inside every 32-byte hash of a bundle (first, middle, last byte)."""
    raw = base64.b64decode(b64)
    out = []
    pos = raw.find(b"\x12\x20")
    while pos != -1:
        out += [pos + 2, pos + 2 + 16, pos + 2 + 31]
        pos = raw.find(b"\x12\x20", pos + 34)
    return out


def _map_hash_offsets(b64: str) -> list[int]:
    raw = base64.b64decode(b64)
    out = []
    pos = raw.find(b"\x0a\x20")
    while pos != -1:
        out.append(pos + 2 + (pos % 32))
        pos = raw.find(b"\x0a\x20", pos + 34)
    return out


@pytest.mark.parametrize("pos", _proof_hash_offsets(SCENARIO["http"]["POST v1/proof/inclusion"]["response"]["log"]))
def test_flipping_a_log_proof_hash_fails(pos: int) -> None:
    inputs = _scenario_inputs()
    inputs["inclusion"]["log"] = _flip_b64(inputs["inclusion"]["log"], pos)
    with pytest.raises(WargProofError):
        _verify_inputs(inputs)


@pytest.mark.parametrize("pos", _map_hash_offsets(SCENARIO["http"]["POST v1/proof/inclusion"]["response"]["map"]))
def test_flipping_a_map_proof_hash_fails(pos: int) -> None:
    inputs = _scenario_inputs()
    inputs["inclusion"]["map"] = _flip_b64(inputs["inclusion"]["map"], pos)
    with pytest.raises(WargProofError):
        _verify_inputs(inputs)


@pytest.mark.parametrize("pos", _proof_hash_offsets(SCENARIO["http"]["POST v1/proof/consistency"]["response"]["proof"]))
def test_flipping_a_consistency_proof_hash_fails(pos: int) -> None:
    state3 = _scenario_state_at_3()
    http = SCENARIO["http"]
    proof = {"proof": _flip_b64(http["POST v1/proof/consistency"]["response"]["proof"], pos)}
    reg = _scenario_registry()
    update = Update(http["GET v1/fetch/checkpoint"], ["example:hello", "example:world"], state3)
    update.add_fetch_logs_response(reg.call("POST", "v1/fetch/logs", update.fetch_logs_request()))
    with pytest.raises(WargVerificationError) as info:
        update.finish(http["POST v1/proof/inclusion"]["response"], proof)
    assert info.value.code in ("warg-bad-proof", "warg-fork")
