"""Identifiers, envelopes and the package/operator record messages (spec §1.2, §1.6-§2.2).

Records are decoded from the exact ``contentBytes`` received and are never re-encoded for
hashing or verification. The encoders here exist for the test factory, the benchmark and
vector generation; they follow the reference encoder byte for byte (fields ascending,
proto3 defaults omitted, ``time`` always present, permissions packed).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final, Mapping, NamedTuple, Union

from ..._errors import InvalidPackageRef, WargUnsupported
from . import _proto
from ._crypto import (
    HASH_ALGORITHM,
    BadValue,
    b64decode,
    b64encode,
    parse_hash,
    parse_public_key,
)
from ._proto import ProtoError

__all__ = [
    "OPERATOR_LOG_ID",
    "PACKAGE_RECORD_ID_PREFIX",
    "OPERATOR_RECORD_ID_PREFIX",
    "validate_package_name",
    "is_valid_namespace",
    "package_log_id",
    "Timestamp",
    "InitEntry",
    "GrantEntry",
    "RevokeEntry",
    "ReleaseEntry",
    "YankEntry",
    "DefineNamespaceEntry",
    "ImportNamespaceEntry",
    "PackageEntry",
    "OperatorEntry",
    "Record",
    "PACKAGE_PERMISSIONS",
    "OPERATOR_PERMISSIONS",
    "decode_package_record",
    "decode_operator_record",
    "encode_package_record",
    "encode_operator_record",
    "PublishedRecord",
    "is_semver",
]

#: ``H(b"WARG-OPERATOR-LOG-ID-V0")`` (no colon).
OPERATOR_LOG_ID: Final = "sha256:" + hashlib.sha256(b"WARG-OPERATOR-LOG-ID-V0").hexdigest()
PACKAGE_RECORD_ID_PREFIX: Final = b"WARG-PACKAGE-LOG-RECORD-V0:"
OPERATOR_RECORD_ID_PREFIX: Final = b"WARG-OPERATOR-LOG-RECORD-V0:"

_WORD = r"[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*"
_PACKAGE_NAME_RE: Final = re.compile(rf"{_WORD}:{_WORD}\Z")
_NAMESPACE_RE: Final = re.compile(rf"{_WORD}\Z")

# Strict SemVer 2.0 as accepted by the Rust `semver` crate: no leading zeros in numeric
# core or pre-release identifiers, ASCII only, build metadata may have leading zeros.
_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER_RE: Final = re.compile(
    rf"({_NUM})\.({_NUM})\.({_NUM})"
    rf"(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?\Z"
)
_U64_MAX: Final = (1 << 64) - 1


def validate_package_name(name: object) -> str:
    """Return ``name`` if it is a valid ``namespace:name`` (lowercase kebab words), else raise
    :class:`~pkgloader._errors.InvalidPackageRef`."""
    if not isinstance(name, str) or not _PACKAGE_NAME_RE.match(name):
        raise InvalidPackageRef(
            f"invalid warg package name {name!r}",
            hint="package names are namespace:name in lowercase kebab case, e.g. wasi:http",
        )
    return name


def is_valid_namespace(namespace: str) -> bool:
    return bool(_NAMESPACE_RE.match(namespace))


def package_log_id(name: str) -> str:
    """``H(b"WARG-PACKAGE-LOG-ID-V0:" || b"WARG-PACKAGE-ID-V0" || PSTR(name))`` as text."""
    validate_package_name(name)
    return "sha256:" + hashlib.sha256(b"WARG-PACKAGE-LOG-ID-V0:WARG-PACKAGE-ID-V0" + _proto.pstr(name)).hexdigest()


def is_semver(text: str) -> bool:
    m = _SEMVER_RE.match(text)
    if m is None or not text.isascii():
        return False
    return all(int(part) <= _U64_MAX for part in m.groups())


class Timestamp(NamedTuple):
    """A record time as ``(seconds, nanos)`` since the Unix epoch; ordered as a tuple."""

    seconds: int
    nanos: int

    def __str__(self) -> str:
        # The upstream state JSON form: seconds "." unpadded nanoseconds.
        return f"{self.seconds}.{self.nanos}"


# --- entries -------------------------------------------------------------------------


class InitEntry(NamedTuple):
    key: str  # canonical public key text
    hash_algorithm: str = HASH_ALGORITHM

    @property
    def key_id(self) -> str:
        return parse_public_key(self.key).key_id


class GrantEntry(NamedTuple):
    key: str  # canonical public key text
    permissions: tuple[str, ...]

    @property
    def key_id(self) -> str:
        return parse_public_key(self.key).key_id


class RevokeEntry(NamedTuple):
    key_id: str  # carried verbatim, not validated as a hash (spec §1.4)
    permissions: tuple[str, ...]


class ReleaseEntry(NamedTuple):
    version: str
    content: str  # sha256:<hex>


class YankEntry(NamedTuple):
    version: str


class DefineNamespaceEntry(NamedTuple):
    namespace: str


class ImportNamespaceEntry(NamedTuple):
    namespace: str
    registry: str


PackageEntry = Union[InitEntry, GrantEntry, RevokeEntry, ReleaseEntry, YankEntry]
OperatorEntry = Union[InitEntry, GrantEntry, RevokeEntry, DefineNamespaceEntry, ImportNamespaceEntry]

#: enum value -> permission name (the names used by the upstream state JSON)
PACKAGE_PERMISSIONS: Final[dict[int, str]] = {1: "release", 2: "yank"}
OPERATOR_PERMISSIONS: Final[dict[int, str]] = {1: "commit", 2: "defineNamespace", 3: "importNamespace"}
_PACKAGE_PERMISSION_VALUES: Final = {v: k for k, v in PACKAGE_PERMISSIONS.items()}
_OPERATOR_PERMISSION_VALUES: Final = {v: k for k, v in OPERATOR_PERMISSIONS.items()}


class Record(NamedTuple):
    """A decoded package or operator record."""

    prev: str | None
    version: int
    time: Timestamp
    entries: tuple[Any, ...]


# --- decoding ----------------------------------------------------------------------------


def _string_fields(data: bytes, names: tuple[str, ...], what: str) -> list[str]:
    """Decode a message made only of string fields 1..len(names) (last value wins)."""
    values = [""] * len(names)
    for field, wire, value in _proto.iter_fields(data):
        if field <= len(names):
            if wire != _proto.WIRE_LEN:
                raise BadValue(f"{what}.{names[field - 1]} has wire type {wire}, expected 2")
            values[field - 1] = _proto.utf8(value, f"{what}.{names[field - 1]}")  # type: ignore[arg-type]
    return values


def _key_and_permissions(data: bytes, what: str, table: dict[int, str]) -> tuple[str, tuple[str, ...]]:
    key = ""
    perms: list[int] = []
    for field, wire, value in _proto.iter_fields(data):
        if field == 1:
            if wire != _proto.WIRE_LEN:
                raise BadValue(f"{what} field 1 has wire type {wire}, expected 2")
            key = _proto.utf8(value, f"{what} field 1")  # type: ignore[arg-type]
        elif field == 2:
            if wire == _proto.WIRE_LEN:
                perms.extend(_proto.unpack_varints(value))  # type: ignore[arg-type]
            elif wire == _proto.WIRE_VARINT:
                perms.append(value)  # type: ignore[arg-type]
            else:
                raise BadValue(f"{what}.permissions has wire type {wire}")
    names: list[str] = []
    for raw in perms:
        name = table.get(_proto.as_int32(raw))
        if name is None:
            raise BadValue(f"{what} has invalid permission value {_proto.as_int32(raw)}")
        names.append(name)
    return key, tuple(names)


def _parse_key(text: str, what: str) -> str:
    return parse_public_key(text).text


def _check_algorithm(algorithm: str, what: str) -> None:
    if algorithm != HASH_ALGORITHM:
        raise BadValue(f"{what} uses unsupported hash algorithm {algorithm[:40]!r}", WargUnsupported)


def _semver(text: str, what: str) -> str:
    if not is_semver(text):
        raise BadValue(f"{what} {text[:80]!r} is not a valid SemVer 2.0 version")
    return text


def _decode_package_entry(variant: int, data: bytes) -> PackageEntry:
    if variant == 4:  # release: the common case first
        version, content = _string_fields(data, ("version", "content_hash"), "release")
        return ReleaseEntry(_semver(version, "release version"), parse_hash(content, "release content hash"))
    if variant == 1:
        key, algorithm = _string_fields(data, ("key", "hash_algorithm"), "init")
        _check_algorithm(algorithm, "init")
        return InitEntry(_parse_key(key, "init key"), algorithm)
    if variant == 2:
        key, perms = _key_and_permissions(data, "grant", PACKAGE_PERMISSIONS)
        return GrantEntry(_parse_key(key, "grant key"), perms)
    if variant == 3:
        key_id, perms = _key_and_permissions(data, "revoke", PACKAGE_PERMISSIONS)
        return RevokeEntry(key_id, perms)
    (version,) = _string_fields(data, ("version",), "yank")
    return YankEntry(_semver(version, "yank version"))


def _decode_operator_entry(variant: int, data: bytes) -> OperatorEntry:
    if variant == 1:
        algorithm, key = _string_fields(data, ("hash_algorithm", "key"), "init")
        _check_algorithm(algorithm, "init")
        return InitEntry(_parse_key(key, "init key"), algorithm)
    if variant == 2:
        key, perms = _key_and_permissions(data, "grant", OPERATOR_PERMISSIONS)
        return GrantEntry(_parse_key(key, "grant key"), perms)
    if variant == 3:
        key_id, perms = _key_and_permissions(data, "revoke", OPERATOR_PERMISSIONS)
        return RevokeEntry(key_id, perms)
    if variant == 4:
        (namespace,) = _string_fields(data, ("namespace",), "defineNamespace")
        return DefineNamespaceEntry(namespace)
    namespace, registry = _string_fields(data, ("namespace", "registry"), "importNamespace")
    return ImportNamespaceEntry(namespace, registry)


def _decode_entry(data: bytes, decode_variant: Any) -> Any:
    # oneof with prost semantics: a repeated occurrence of the same variant merges,
    # a different variant replaces. Merging messages == concatenating their bytes.
    variant = 0
    body = b""
    for field, wire, value in _proto.iter_fields(data):
        if 1 <= field <= 5:
            if wire != _proto.WIRE_LEN:
                raise BadValue(f"entry field {field} has wire type {wire}, expected 2")
            if field == variant:
                body += value  # type: ignore[operator]
            else:
                variant = field
                body = value  # type: ignore[assignment]
    if variant == 0:
        raise BadValue("entry has no contents")
    return decode_variant(variant, body)


def _normalize_time(seconds: int, nanos: int) -> Timestamp:
    # prost_types::Timestamp::normalize (truncating division), then SystemTime.
    if nanos <= -1_000_000_000 or nanos >= 1_000_000_000:
        carry = int(nanos / 1_000_000_000)
        seconds += carry
        nanos -= carry * 1_000_000_000
    if nanos < 0:
        seconds -= 1
        nanos += 1_000_000_000
    return Timestamp(seconds, nanos)


def _decode_time(data: bytes) -> Timestamp:
    seconds = 0
    nanos = 0
    for field, wire, value in _proto.iter_fields(data):
        if field == 1 or field == 2:
            if wire != _proto.WIRE_VARINT:
                raise BadValue(f"time field {field} has wire type {wire}, expected 0")
            if field == 1:
                seconds = _proto.as_int64(value)  # type: ignore[arg-type]
            else:
                nanos = _proto.as_int32(value)  # type: ignore[arg-type]
    return _normalize_time(seconds, nanos)


def _decode_record(content: bytes, decode_variant: Any) -> Record:
    prev: str | None = None
    version = 0
    time_bytes: bytes | None = None
    raw_entries: list[bytes] = []
    try:
        for field, wire, value in _proto.iter_fields(content):
            if field == 4:
                if wire != _proto.WIRE_LEN:
                    raise BadValue(f"entries has wire type {wire}, expected 2")
                raw_entries.append(value)  # type: ignore[arg-type]
            elif field == 1:
                if wire != _proto.WIRE_LEN:
                    raise BadValue(f"prev has wire type {wire}, expected 2")
                prev = _proto.utf8(value, "prev")  # type: ignore[arg-type]
            elif field == 3:
                if wire != _proto.WIRE_LEN:
                    raise BadValue(f"time has wire type {wire}, expected 2")
                time_bytes = value if time_bytes is None else time_bytes + value  # type: ignore[operator,assignment]
            elif field == 2:
                if wire != _proto.WIRE_VARINT:
                    raise BadValue(f"version has wire type {wire}, expected 0")
                version = _proto.as_uint32(value)  # type: ignore[arg-type]
        if time_bytes is None:
            raise BadValue("record has no time")
        entries = tuple([_decode_entry(e, decode_variant) for e in raw_entries])
        if prev is not None:
            prev = parse_hash(prev, "prev")
        return Record(prev, version, _decode_time(time_bytes), entries)
    except ProtoError as exc:
        raise BadValue(f"malformed protobuf: {exc}") from None


def decode_package_record(content: bytes) -> Record:
    """Decode ``PackageRecord`` bytes. Raises :class:`~._crypto.BadValue`."""
    return _decode_record(content, _decode_package_entry)


def decode_operator_record(content: bytes) -> Record:
    """Decode ``OperatorRecord`` bytes. Raises :class:`~._crypto.BadValue`."""
    return _decode_record(content, _decode_operator_entry)


# --- encoding ------------------------------------------------------------------------------


def _encode_time(time: Timestamp) -> bytes:
    out = b""
    if time.seconds:
        out += _proto.field_varint(1, time.seconds)
    if time.nanos:
        out += _proto.field_varint(2, time.nanos)
    return out


def _s(field: int, text: str) -> bytes:
    return _proto.field_bytes(field, text.encode("utf-8")) if text else b""


def _perms(field: int, names: tuple[str, ...], values: dict[str, int]) -> bytes:
    return _proto.field_packed_varints(field, [values[n] for n in names]) if names else b""


def _encode_package_entry(entry: PackageEntry) -> bytes:
    if isinstance(entry, InitEntry):
        variant, body = 1, _s(1, entry.key) + _s(2, entry.hash_algorithm)
    elif isinstance(entry, GrantEntry):
        variant, body = 2, _s(1, entry.key) + _perms(2, entry.permissions, _PACKAGE_PERMISSION_VALUES)
    elif isinstance(entry, RevokeEntry):
        variant, body = 3, _s(1, entry.key_id) + _perms(2, entry.permissions, _PACKAGE_PERMISSION_VALUES)
    elif isinstance(entry, ReleaseEntry):
        variant, body = 4, _s(1, entry.version) + _s(2, entry.content)
    elif isinstance(entry, YankEntry):
        variant, body = 5, _s(1, entry.version)
    else:
        raise TypeError(f"not a package entry: {entry!r}")
    return _proto.field_bytes(variant, body)


def _encode_operator_entry(entry: OperatorEntry) -> bytes:
    if isinstance(entry, InitEntry):
        variant, body = 1, _s(1, entry.hash_algorithm) + _s(2, entry.key)
    elif isinstance(entry, GrantEntry):
        variant, body = 2, _s(1, entry.key) + _perms(2, entry.permissions, _OPERATOR_PERMISSION_VALUES)
    elif isinstance(entry, RevokeEntry):
        variant, body = 3, _s(1, entry.key_id) + _perms(2, entry.permissions, _OPERATOR_PERMISSION_VALUES)
    elif isinstance(entry, DefineNamespaceEntry):
        variant, body = 4, _s(1, entry.namespace)
    elif isinstance(entry, ImportNamespaceEntry):
        variant, body = 5, _s(1, entry.namespace) + _s(2, entry.registry)
    else:
        raise TypeError(f"not an operator entry: {entry!r}")
    return _proto.field_bytes(variant, body)


def _encode_record(prev: str | None, time: Timestamp, entries: Any, encode_entry: Any, version: int) -> bytes:
    out = b""
    if prev is not None:
        out += _proto.field_bytes(1, prev.encode("utf-8"))
    if version:
        out += _proto.field_varint(2, version)
    out += _proto.field_bytes(3, _encode_time(time))
    for entry in entries:
        out += _proto.field_bytes(4, encode_entry(entry))
    return out


def encode_package_record(
    prev: str | None, time: Timestamp, entries: tuple[PackageEntry, ...] | list[PackageEntry], *, version: int = 0
) -> bytes:
    return _encode_record(prev, time, entries, _encode_package_entry, version)


def encode_operator_record(
    prev: str | None, time: Timestamp, entries: tuple[OperatorEntry, ...] | list[OperatorEntry], *, version: int = 0
) -> bytes:
    return _encode_record(prev, time, entries, _encode_operator_entry, version)


# --- envelopes as served by the HTTP API ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishedRecord:
    """One record envelope of a fetch-logs response (spec §2.1)."""

    content: bytes
    key_id: str
    signature: str
    registry_index: int | None = None
    fetch_token: str | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PublishedRecord:
        """Parse ``{"contentBytes", "keyId", "signature", "registryIndex"?, "fetchToken"?}``.
        Raises :class:`~._crypto.BadValue`."""
        if not isinstance(obj, Mapping):
            raise BadValue(f"record envelope must be a JSON object, got {type(obj).__name__}")
        content = b64decode(obj.get("contentBytes"), "contentBytes")
        key_id = obj.get("keyId")
        if not isinstance(key_id, str):
            raise BadValue("record envelope has no string keyId")
        signature = obj.get("signature")
        if not isinstance(signature, str):
            raise BadValue("record envelope has no string signature")
        index = obj.get("registryIndex")
        if index is not None and (type(index) is not int or index < 0):
            raise BadValue(f"registryIndex must be a non-negative integer, got {index!r}")
        token = obj.get("fetchToken")
        if token is not None and not isinstance(token, str):
            raise BadValue(f"fetchToken must be a string, got {type(token).__name__}")
        return cls(content, key_id, signature, index, token)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "contentBytes": b64encode(self.content),
            "keyId": self.key_id,
            "signature": self.signature,
        }
        if self.registry_index is not None:
            out["registryIndex"] = self.registry_index
        if self.fetch_token is not None:
            out["fetchToken"] = self.fetch_token
        return out
