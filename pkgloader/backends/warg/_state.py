"""Package and operator log state machines (spec §3, §4) and their immutable states.

A log is validated by a *builder*: it starts from nothing or from a previously verified
immutable state, applies envelopes strictly in log order, and ``freeze()`` returns a new
immutable state. A builder that raised once is broken for good: nothing of a log that
failed is ever used (the caller discards the builder; the old state is untouched).

Errors (reference name -> pkgloader class):

* PreviousHashOnFirstRecord, NoPreviousHashAfterInit, RecordHashDoesNotMatch -> WargChainError
* ProtocolVersionNotAllowed, unknown algorithms -> WargUnsupported
* TimestampLowerThanPrevious -> WargTimestampError
* UnauthorizedAction, KeyIDNotRecognized (unknown signer / init key) -> WargUnauthorized
* decode errors, FirstEntryIsNotInit, InitialEntryAfterBeginning, InitialRecordDoesNotInit,
  PermissionNotFoundToRevoke, ReleaseOfReleased, YankOfUnreleased, YankOfYanked,
  InvalidNamespace, NamespaceAlreadyDefined -> WargInvalidRecord
* bad signature -> WargSignatureError
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from ..._errors import (
    WargChainError,
    WargInvalidRecord,
    WargSignatureError,
    WargTimestampError,
    WargUnauthorized,
    WargUnsupported,
    WargVerificationError,
)
from ._crypto import (
    OPERATOR_SIGNATURE_PREFIX,
    PACKAGE_SIGNATURE_PREFIX,
    BadValue,
    PublicKey,
    parse_hash,
    parse_public_key,
    parse_signature,
    verify_batch,
)
from ._records import (
    OPERATOR_LOG_ID,
    OPERATOR_PERMISSIONS,
    OPERATOR_RECORD_ID_PREFIX,
    PACKAGE_PERMISSIONS,
    PACKAGE_RECORD_ID_PREFIX,
    DefineNamespaceEntry,
    GrantEntry,
    ImportNamespaceEntry,
    InitEntry,
    PublishedRecord,
    ReleaseEntry,
    RevokeEntry,
    Timestamp,
    YankEntry,
    decode_operator_record,
    decode_package_record,
    is_semver,
    is_valid_namespace,
    package_log_id,
)

__all__ = [
    "LogHead",
    "Release",
    "PackageState",
    "OperatorState",
    "PackageLogBuilder",
    "OperatorLogBuilder",
    "validate_package_log",
    "validate_operator_log",
    "StateFormatError",
]

_sha256 = hashlib.sha256
_PACKAGE_PERMISSION_ORDER = tuple(PACKAGE_PERMISSIONS.values())
_OPERATOR_PERMISSION_ORDER = tuple(OPERATOR_PERMISSIONS.values())
_ALL_PACKAGE_PERMISSIONS = frozenset(_PACKAGE_PERMISSION_ORDER)
_ALL_OPERATOR_PERMISSIONS = frozenset(_OPERATOR_PERMISSION_ORDER)
_EMPTY: frozenset[str] = frozenset()
#: flush signature checks at least this often, so a bad record in a huge log surfaces early
_MAX_PENDING = 8192


class StateFormatError(ValueError):
    """A persisted state does not have the expected shape (raised by ``from_json``)."""


# --- immutable states ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogHead:
    """The last validated record of a log."""

    record_id: str
    timestamp: Timestamp
    #: number of records in the log up to and including this one
    length: int
    #: position in the registry log (``None`` when validated outside the HTTP API)
    registry_index: int | None = None
    #: opaque token for ``fetch/logs``; the reference server uses the record ID
    fetch_token: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "recordId": self.record_id,
            "timestamp": [self.timestamp.seconds, self.timestamp.nanos],
            "length": self.length,
            "registryIndex": self.registry_index,
            "fetchToken": self.fetch_token,
        }

    @classmethod
    def from_json(cls, obj: Any) -> LogHead:
        obj = _obj(obj, "head")
        ts = obj.get("timestamp")
        if not (isinstance(ts, list) and len(ts) == 2 and all(type(t) is int for t in ts) and 0 <= ts[1] < 10**9):
            raise StateFormatError("head.timestamp must be [seconds, nanos]")
        index = obj.get("registryIndex")
        if index is not None and (type(index) is not int or index < 0):
            raise StateFormatError("head.registryIndex must be a non-negative integer or null")
        token = obj.get("fetchToken")
        if token is not None and not isinstance(token, str):
            raise StateFormatError("head.fetchToken must be a string or null")
        length = obj.get("length")
        if type(length) is not int or length < 1:
            raise StateFormatError("head.length must be a positive integer")
        return cls(_hash(obj.get("recordId"), "head.recordId"), Timestamp(ts[0], ts[1]), length, index, token)


@dataclass(frozen=True, slots=True)
class Release:
    """A released version of a package, as recorded in its log.

    ``content`` is the digest from the release entry and is kept after a yank (the
    reference state drops it); whether a yanked release may be used is the caller's
    policy. :attr:`available_content` is ``None`` for yanked releases.
    """

    version: str
    content: str
    record_id: str
    by: str
    timestamp: Timestamp
    yanked_by: str | None = None
    yanked_at: Timestamp | None = None

    @property
    def yanked(self) -> bool:
        return self.yanked_by is not None

    @property
    def available_content(self) -> str | None:
        return None if self.yanked_by is not None else self.content

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "content": self.content,
            "recordId": self.record_id,
            "by": self.by,
            "timestamp": [self.timestamp.seconds, self.timestamp.nanos],
            "yanked": None,
        }
        if self.yanked_by is not None and self.yanked_at is not None:
            out["yanked"] = {"by": self.yanked_by, "timestamp": [self.yanked_at.seconds, self.yanked_at.nanos]}
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Release:
        obj = _obj(obj, "release")
        version = obj.get("version")
        if not isinstance(version, str) or not is_semver(version):
            raise StateFormatError(f"release version {version!r} is not SemVer")
        by = obj.get("by")
        if not isinstance(by, str):
            raise StateFormatError("release.by must be a string")
        yanked = obj.get("yanked")
        yanked_by: str | None = None
        yanked_at: Timestamp | None = None
        if yanked is not None:
            yanked = _obj(yanked, "release.yanked")
            if not isinstance(yanked.get("by"), str):
                raise StateFormatError("release.yanked.by must be a string")
            yanked_by = yanked["by"]
            yanked_at = _ts(yanked.get("timestamp"))
        return cls(
            version,
            _hash(obj.get("content"), "release.content"),
            _hash(obj.get("recordId"), "release.recordId"),
            by,
            _ts(obj.get("timestamp")),
            yanked_by,
            yanked_at,
        )


def _frozen_permissions(perms: Mapping[str, Iterable[str]]) -> Mapping[str, frozenset[str]]:
    return MappingProxyType({k: frozenset(v) for k, v in perms.items()})


def _permissions_json(perms: Mapping[str, frozenset[str]], order: tuple[str, ...]) -> dict[str, list[str]]:
    return {k: [p for p in order if p in v] for k, v in perms.items()}


@dataclass(frozen=True, slots=True)
class PackageState:
    """Verified state of one package log."""

    name: str
    log_id: str
    head: LogHead
    #: key ID -> canonical public key text
    keys: Mapping[str, str]
    #: key ID -> permissions (``release``, ``yank``); revoked keys keep an empty set
    permissions: Mapping[str, frozenset[str]]
    #: every release in log order (yanked ones included)
    releases: tuple[Release, ...]
    #: ``logLength`` of the checkpoint at which ``head`` was last proven (0: never)
    verified_at: int = 0

    def release(self, version: str) -> Release | None:
        """The release of exactly ``version`` (build metadata included), if any."""
        for rel in self.releases:
            if rel.version == version:
                return rel
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "logId": self.log_id,
            "head": self.head.to_json(),
            "keys": dict(self.keys),
            "permissions": _permissions_json(self.permissions, _PACKAGE_PERMISSION_ORDER),
            "releases": [r.to_json() for r in self.releases],
            "verifiedAt": self.verified_at,
        }

    @classmethod
    def from_json(cls, obj: Any) -> PackageState:
        obj = _obj(obj, "package state")
        name = obj.get("name")
        if not isinstance(name, str):
            raise StateFormatError("package state has no name")
        try:
            log_id = package_log_id(name)
        except ValueError:
            raise StateFormatError(f"invalid package name {name!r}") from None
        if obj.get("logId") != log_id:
            raise StateFormatError(f"logId of {name} is not {log_id}")
        releases = _list(obj.get("releases"), "releases")
        rels = tuple(Release.from_json(r) for r in releases)
        if len({r.version for r in rels}) != len(rels):
            raise StateFormatError(f"duplicate release versions in {name}")
        return cls(
            name,
            log_id,
            LogHead.from_json(obj.get("head")),
            _keys(obj.get("keys")),
            _perms(obj.get("permissions"), _ALL_PACKAGE_PERMISSIONS),
            rels,
            _nonneg(obj.get("verifiedAt"), "verifiedAt"),
        )


@dataclass(frozen=True, slots=True)
class OperatorState:
    """Verified state of the operator log."""

    head: LogHead
    keys: Mapping[str, str]
    #: key ID -> permissions (``commit``, ``defineNamespace``, ``importNamespace``)
    permissions: Mapping[str, frozenset[str]]
    #: namespace -> ``None`` (defined here) or the registry it is imported from
    namespaces: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    verified_at: int = 0

    @property
    def log_id(self) -> str:
        return OPERATOR_LOG_ID

    def to_json(self) -> dict[str, Any]:
        return {
            "head": self.head.to_json(),
            "keys": dict(self.keys),
            "permissions": _permissions_json(self.permissions, _OPERATOR_PERMISSION_ORDER),
            "namespaces": dict(self.namespaces),
            "verifiedAt": self.verified_at,
        }

    @classmethod
    def from_json(cls, obj: Any) -> OperatorState:
        obj = _obj(obj, "operator state")
        namespaces = _obj(obj.get("namespaces"), "namespaces")
        for ns, reg in namespaces.items():
            if not is_valid_namespace(ns) or not (reg is None or isinstance(reg, str)):
                raise StateFormatError(f"invalid namespace entry {ns!r}")
        return cls(
            LogHead.from_json(obj.get("head")),
            _keys(obj.get("keys")),
            _perms(obj.get("permissions"), _ALL_OPERATOR_PERMISSIONS),
            MappingProxyType(dict(namespaces)),
            _nonneg(obj.get("verifiedAt"), "verifiedAt"),
        )


# --- JSON helpers for from_json ----------------------------------------------------------------


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StateFormatError(f"{what} must be an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise StateFormatError(f"{what} must be a list")
    return value


def _nonneg(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise StateFormatError(f"{what} must be a non-negative integer")
    return value


def _hash(value: Any, what: str) -> str:
    try:
        return parse_hash(value, what)
    except BadValue as exc:
        raise StateFormatError(exc.message) from None


def _ts(value: Any) -> Timestamp:
    if not (isinstance(value, list) and len(value) == 2 and all(type(t) is int for t in value)):
        raise StateFormatError("timestamp must be [seconds, nanos]")
    if not 0 <= value[1] < 10**9:
        raise StateFormatError("timestamp nanos out of range")
    return Timestamp(value[0], value[1])


def _keys(value: Any) -> Mapping[str, str]:
    out: dict[str, str] = {}
    for key_id, text in _obj(value, "keys").items():
        try:
            key = parse_public_key(text) if isinstance(text, str) else None
        except BadValue:
            key = None
        if key is None or key.key_id != key_id or key.text != text:
            raise StateFormatError(f"key {key_id!r} does not match its public key")
        out[key_id] = text
    return MappingProxyType(out)


def _perms(value: Any, allowed: frozenset[str]) -> Mapping[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for key_id, perms in _obj(value, "permissions").items():
        perms = _list(perms, "permissions")
        if not all(isinstance(p, str) and p in allowed for p in perms):
            raise StateFormatError(f"unknown permission for {key_id!r}")
        out[key_id] = frozenset(perms)
    return MappingProxyType(out)


# --- builders (the state machines) ---------------------------------------------------------------


class _LogBuilder:
    """Shared chain/version/time/signature logic of both log kinds."""

    __slots__ = (
        "label",
        "context",
        "keys",
        "permissions",
        "initialized",
        "length",
        "head_id",
        "head_time",
        "head_index",
        "head_token",
        "_pk",
        "_pending",
        "_broken",
    )

    label: str
    _record_prefix: bytes
    _signature_prefix: bytes

    def __init__(self, label: str, head: LogHead | None, keys: Mapping[str, str], permissions: Mapping[str, frozenset[str]]):
        self.label = label
        #: appended to ``label`` in error messages, e.g. `` of example.com`` (set by ``Update``)
        self.context = ""
        self.keys: dict[str, str] = dict(keys)
        self.permissions: dict[str, set[str]] = {k: set(v) for k, v in permissions.items()}
        self.initialized = head is not None
        self.length = head.length if head else 0
        self.head_id: str | None = head.record_id if head else None
        self.head_time: Timestamp | None = head.timestamp if head else None
        self.head_index: int | None = head.registry_index if head else None
        self.head_token: str | None = head.fetch_token if head else None
        self._pk: dict[str, PublicKey] = {}
        # signatures checked in batches: (key, der, envelope, record id, position, signer)
        self._pending: list[tuple[PublicKey, bytes, PublishedRecord, str, int, str]] = []
        self._broken: BaseException | None = None

    # -- helpers --

    @property
    def head(self) -> LogHead | None:
        if self.head_id is None or self.head_time is None:
            return None
        return LogHead(self.head_id, self.head_time, self.length, self.head_index, self.head_token)

    def _error(
        self,
        cls: type[WargVerificationError],
        what: str,
        record_id: str,
        env: PublishedRecord,
        details: Iterable[str] = (),
        position: int | None = None,
    ) -> WargVerificationError:
        where = f"record {self.length if position is None else position}"
        if env.registry_index is not None:
            where += f" (registry index {env.registry_index})"
        return cls(
            f"{self.label}{self.context}: {where} {what}",
            details=[f"record id {record_id}", *details],
            hint="the registry served a log that does not verify; nothing of it was used",
        )

    def _require(self, signer: str, perm: str, action: str, record_id: str, env: PublishedRecord) -> None:
        if perm not in self.permissions.get(signer, _EMPTY):
            raise self._error(
                WargUnauthorized,
                f"{action}, but key {signer} does not hold the {perm!r} permission",
                record_id,
                env,
            )

    def _check_header(self, prev: str | None, version: int, time: Timestamp, record_id: str, env: PublishedRecord) -> None:
        if self.head_id is None:
            if prev is not None:
                raise self._error(WargChainError, "is the first record of the log but has a prev", record_id, env, [f"got prev {prev}"])
        elif prev is None:
            raise self._error(WargChainError, "has no prev although it is not the first record", record_id, env, [f"expected prev {self.head_id}"])
        elif prev != self.head_id:
            raise self._error(
                WargChainError,
                "does not chain to the previous record",
                record_id,
                env,
                [f"expected prev {self.head_id} (record {self.length - 1})", f"got      prev {prev}"],
            )
        if version != 0:
            raise self._error(WargUnsupported, f"has unsupported protocol version {version}", record_id, env, ["expected version 0"])
        if self.head_time is not None and time < self.head_time:
            raise self._error(
                WargTimestampError,
                "is older than the previous record",
                record_id,
                env,
                [f"previous time {self.head_time}", f"record time   {time}"],
            )

    def _finish_record(self, signer: str, record_id: str, time: Timestamp, env: PublishedRecord) -> None:
        if not self.initialized:
            raise self._error(WargInvalidRecord, "does not initialize the log", record_id, env)
        pk = self._pk.get(signer)
        if pk is None:
            text = self.keys.get(signer)
            if text is None:
                raise self._error(WargUnauthorized, f"is signed by key {signer}, which is not a key of this log", record_id, env)
            pk = self._pk[signer] = parse_public_key(text)
        try:
            der = parse_signature(env.signature)
        except BadValue as exc:
            raise self._error(exc.error, f"has a malformed signature: {exc.message}", record_id, env) from None
        self._pending.append((pk, der, env, record_id, self.length, signer))
        self.head_id = record_id
        self.head_time = time
        self.head_index = env.registry_index
        self.head_token = env.fetch_token if env.fetch_token is not None else record_id
        self.length += 1

    def apply(self, env: PublishedRecord) -> str:
        """Validate and apply one envelope; returns its record ID.

        Signatures are checked in batches: call :meth:`flush` after a batch (``freeze``
        does). An error is always reported for the earliest failing record in log order.
        After an error the builder is broken and every further call re-raises it.
        """
        if self._broken is not None:
            raise self._broken
        try:
            record_id = self._apply(env)
            if len(self._pending) >= _MAX_PENDING:
                self._flush()
            return record_id
        except BaseException as exc:
            try:
                self._flush()  # an earlier record's bad signature takes precedence
            except BaseException as earlier:
                exc = earlier
            self._broken = exc
            raise exc from None

    def apply_all(self, envelopes: Iterable[PublishedRecord]) -> None:
        for env in envelopes:
            self.apply(env)
        self.flush()

    def flush(self) -> None:
        """Verify the signatures of all records applied so far."""
        if self._broken is not None:
            raise self._broken
        try:
            self._flush()
        except BaseException as exc:
            self._broken = exc
            raise

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        prefix = self._signature_prefix
        bad = verify_batch([(pk, prefix, env.content, der) for pk, der, env, *_ in pending])
        if bad is not None:
            _, _, env, record_id, position, signer = pending[bad]
            raise self._error(
                WargSignatureError,
                f"has a signature that does not verify with key {signer}",
                record_id,
                env,
                [f"signature {env.signature[:40]}…"],
                position=position,
            )

    def _apply(self, env: PublishedRecord) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_usable(self) -> None:
        self.flush()
        if self.head_id is None:
            raise WargInvalidRecord(f"{self.label}{self.context} has no records")

    def _grant(self, entry: GrantEntry, signer: str, record_id: str, env: PublishedRecord) -> None:
        held = self.permissions.get(signer, _EMPTY)
        for perm in entry.permissions:
            if perm not in held:
                raise self._error(
                    WargUnauthorized,
                    f"grants {perm!r} to {entry.key_id}, but signer {signer} does not hold it",
                    record_id,
                    env,
                )
        key_id = entry.key_id
        self.keys[key_id] = entry.key
        self.permissions.setdefault(key_id, set()).update(entry.permissions)

    def _revoke(self, entry: RevokeEntry, signer: str, record_id: str, env: PublishedRecord) -> None:
        held = self.permissions.get(signer, _EMPTY)
        for perm in entry.permissions:
            if perm not in held:
                raise self._error(
                    WargUnauthorized,
                    f"revokes {perm!r} from {entry.key_id}, but signer {signer} does not hold it",
                    record_id,
                    env,
                )
        target = self.permissions.get(entry.key_id)
        for perm in entry.permissions:
            if target is None or perm not in target:
                raise self._error(
                    WargInvalidRecord,
                    f"revokes {perm!r} from {entry.key_id}, which does not hold it",
                    record_id,
                    env,
                )
            target.remove(perm)


class PackageLogBuilder(_LogBuilder):
    """Validates package log records on top of an optional previous :class:`PackageState`."""

    __slots__ = ("name", "log_id", "releases", "_verified_at")
    _record_prefix = PACKAGE_RECORD_ID_PREFIX
    _signature_prefix = PACKAGE_SIGNATURE_PREFIX

    def __init__(self, name: str, previous: PackageState | None = None) -> None:
        log_id = package_log_id(name)
        if previous is not None:
            if previous.name != name:
                raise ValueError(f"previous state is for {previous.name}, not {name}")
            super().__init__(f"package log {name}", previous.head, previous.keys, previous.permissions)
            self.releases: dict[str, Release] = {r.version: r for r in previous.releases}
            self._verified_at = previous.verified_at
        else:
            super().__init__(f"package log {name}", None, {}, {})
            self.releases = {}
            self._verified_at = 0
        self.name = name
        self.log_id = log_id

    def _apply(self, env: PublishedRecord) -> str:
        content = env.content
        record_id = "sha256:" + _sha256(PACKAGE_RECORD_ID_PREFIX + content).hexdigest()
        try:
            rec = decode_package_record(content)
        except BadValue as exc:
            raise self._error(exc.error, f"cannot be decoded: {exc.message}", record_id, env) from None
        time = rec.time
        self._check_header(rec.prev, rec.version, time, record_id, env)
        signer = env.key_id
        perms = self.permissions
        releases = self.releases
        for entry in rec.entries:
            kind = type(entry)
            if kind is ReleaseEntry:
                if "release" not in perms.get(signer, _EMPTY):
                    self._require(signer, "release", f"releases {entry.version}", record_id, env)
                if not self.initialized:
                    raise self._error(WargInvalidRecord, "has an entry before the log's init entry", record_id, env)
                old = releases.get(entry.version)
                if old is not None:
                    raise self._error(
                        WargInvalidRecord,
                        f"releases {entry.version}, which was already released",
                        record_id,
                        env,
                        [f"earlier release in record {old.record_id}"],
                    )
                releases[entry.version] = Release(entry.version, entry.content, record_id, signer, time)
            elif kind is YankEntry:
                self._require(signer, "yank", f"yanks {entry.version}", record_id, env)
                if not self.initialized:
                    raise self._error(WargInvalidRecord, "has an entry before the log's init entry", record_id, env)
                old = releases.get(entry.version)
                if old is None:
                    raise self._error(WargInvalidRecord, f"yanks {entry.version}, which was never released", record_id, env)
                if old.yanked_by is not None:
                    raise self._error(WargInvalidRecord, f"yanks {entry.version}, which is already yanked", record_id, env)
                releases[entry.version] = replace(old, yanked_by=signer, yanked_at=time)
            elif kind is InitEntry:
                if self.initialized:
                    raise self._error(WargInvalidRecord, "has an init entry but the log is already initialized", record_id, env)
                key_id = entry.key_id
                if key_id != signer:
                    raise self._error(
                        WargUnauthorized,
                        "initializes the log with a key that did not sign it",
                        record_id,
                        env,
                        [f"init key id {key_id}", f"signer      {signer}"],
                    )
                self.initialized = True
                perms[signer] = set(_ALL_PACKAGE_PERMISSIONS)
                self.keys[key_id] = entry.key
            elif not self.initialized:
                raise self._error(WargInvalidRecord, "has an entry before the log's init entry", record_id, env)
            elif kind is GrantEntry:
                self._grant(entry, signer, record_id, env)
            else:
                self._revoke(entry, signer, record_id, env)
        self._finish_record(signer, record_id, time, env)
        return record_id

    def freeze(self, verified_at: int | None = None) -> PackageState:
        """The immutable state after the records applied so far."""
        self._check_usable()
        head = self.head
        assert head is not None
        return PackageState(
            self.name,
            self.log_id,
            head,
            MappingProxyType(dict(self.keys)),
            _frozen_permissions(self.permissions),
            tuple(self.releases.values()),
            self._verified_at if verified_at is None else verified_at,
        )


class OperatorLogBuilder(_LogBuilder):
    """Validates operator log records on top of an optional previous :class:`OperatorState`."""

    __slots__ = ("namespaces", "_verified_at")
    _record_prefix = OPERATOR_RECORD_ID_PREFIX
    _signature_prefix = OPERATOR_SIGNATURE_PREFIX

    def __init__(self, previous: OperatorState | None = None) -> None:
        if previous is not None:
            super().__init__("operator log", previous.head, previous.keys, previous.permissions)
            self.namespaces: dict[str, str | None] = dict(previous.namespaces)
            self._verified_at = previous.verified_at
        else:
            super().__init__("operator log", None, {}, {})
            self.namespaces = {}
            self._verified_at = 0

    def _apply(self, env: PublishedRecord) -> str:
        content = env.content
        record_id = "sha256:" + _sha256(OPERATOR_RECORD_ID_PREFIX + content).hexdigest()
        try:
            rec = decode_operator_record(content)
        except BadValue as exc:
            raise self._error(exc.error, f"cannot be decoded: {exc.message}", record_id, env) from None
        time = rec.time
        self._check_header(rec.prev, rec.version, time, record_id, env)
        signer = env.key_id
        for entry in rec.entries:
            kind = type(entry)
            if kind is InitEntry:
                if self.initialized:
                    raise self._error(WargInvalidRecord, "has an init entry but the log is already initialized", record_id, env)
                self.initialized = True
                self.permissions[signer] = set(_ALL_OPERATOR_PERMISSIONS)
                self.keys[entry.key_id] = entry.key
                continue
            if kind is GrantEntry:
                self._require(signer, "commit", f"grants permissions to {entry.key_id}", record_id, env)
            elif kind is RevokeEntry:
                self._require(signer, "commit", f"revokes permissions of {entry.key_id}", record_id, env)
            elif kind is DefineNamespaceEntry:
                self._require(signer, "defineNamespace", f"defines namespace {entry.namespace!r}", record_id, env)
            else:
                self._require(signer, "importNamespace", f"imports namespace {entry.namespace!r}", record_id, env)
            if not self.initialized:
                raise self._error(WargInvalidRecord, "has an entry before the log's init entry", record_id, env)
            if kind is GrantEntry:
                self._grant(entry, signer, record_id, env)
            elif kind is RevokeEntry:
                self._revoke(entry, signer, record_id, env)
            else:
                ns = entry.namespace
                if not is_valid_namespace(ns):
                    raise self._error(WargInvalidRecord, f"names an invalid namespace {ns[:80]!r}", record_id, env)
                if ns in self.namespaces:
                    raise self._error(WargInvalidRecord, f"defines namespace {ns!r}, which is already defined or imported", record_id, env)
                self.namespaces[ns] = entry.registry if kind is ImportNamespaceEntry else None
        self._finish_record(signer, record_id, time, env)
        return record_id

    def freeze(self, verified_at: int | None = None) -> OperatorState:
        self._check_usable()
        head = self.head
        assert head is not None
        return OperatorState(
            head,
            MappingProxyType(dict(self.keys)),
            _frozen_permissions(self.permissions),
            MappingProxyType(dict(self.namespaces)),
            self._verified_at if verified_at is None else verified_at,
        )


def _envelopes(records: Iterable[PublishedRecord | Mapping[str, Any]], label: str) -> Iterable[PublishedRecord]:
    for i, rec in enumerate(records):
        if isinstance(rec, PublishedRecord):
            yield rec
            continue
        try:
            yield PublishedRecord.from_json(rec)
        except BadValue as exc:
            raise exc.error(f"{label}: envelope {i} is malformed: {exc.message}") from None


def validate_package_log(
    name: str,
    records: Iterable[PublishedRecord | Mapping[str, Any]],
    previous: PackageState | None = None,
) -> PackageState:
    """Validate package log envelopes (JSON objects or :class:`PublishedRecord`) in log order,
    on top of ``previous`` if given. No checkpoint or proofs are involved."""
    builder = PackageLogBuilder(name, previous)
    builder.apply_all(_envelopes(records, builder.label))
    return builder.freeze()


def validate_operator_log(
    records: Iterable[PublishedRecord | Mapping[str, Any]],
    previous: OperatorState | None = None,
) -> OperatorState:
    """Validate operator log envelopes in log order, on top of ``previous`` if given."""
    builder = OperatorLogBuilder(previous)
    builder.apply_all(_envelopes(records, builder.label))
    return builder.freeze()
