"""Sans-I/O verification of a registry update (spec §9) and the persisted verified state.

The HTTP backend drives an :class:`Update`::

    update = Update(checkpoint_json, ["wasi:http"], previous=stored_state, registry="example.com")
    while True:                                      # POST v1/fetch/logs until more is false
        body = post("v1/fetch/logs", update.fetch_logs_request(limit=100))
        if not update.add_fetch_logs_response(body):
            break
    inclusion = update.inclusion_request()           # None: nothing new to prove
    consistency = update.consistency_request()       # None: no older checkpoint to link
    state = update.finish(
        post("v1/proof/inclusion", inclusion) if inclusion else None,
        post("v1/proof/consistency", consistency) if consistency else None,
    )
    save(state.to_json())

Every record is validated as it arrives (envelopes, chain, timestamps, permissions,
signatures); ``finish`` verifies the checkpoint signature with the operator log, the
consistency of the previously verified checkpoint with the new one, and the log and map
inclusion of every log head. Only then is a :class:`VerifiedState` returned. Any error
leaves ``previous`` untouched and poisons the update.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, ParamSpec, Sequence, TypeVar

from ..._errors import (
    PackageNotFound,
    PkgLoaderError,
    RegistryError,
    WargFork,
    WargInvalidRecord,
    WargProofError,
    WargRewind,
    WargRootMismatch,
    WargVerificationError,
)
from ..._log import get_logger
from ._checkpoint import SignedCheckpoint
from ._crypto import BadValue, b64decode, hash_raw
from ._merkle import (
    LogProofBundle,
    MapProofBundle,
    ProofError,
    evaluate_log_inclusion,
    evaluate_map_inclusion,
    leaf_hash,
    log_leaf_bytes,
    verify_log_consistency,
)
from ._records import OPERATOR_LOG_ID, PublishedRecord, validate_package_name
from ._state import (
    OperatorLogBuilder,
    OperatorState,
    PackageLogBuilder,
    PackageState,
    Release,
    StateFormatError,
    _LogBuilder,
)

__all__ = ["VerifiedState", "Update", "verify_update", "STATE_FORMAT"]

logger = get_logger()

_T = TypeVar("_T")
_P = ParamSpec("_P")

#: ``format`` tag of :meth:`VerifiedState.to_json`; bump on incompatible changes.
STATE_FORMAT = "pkgloader-warg-state/1"


@dataclass(frozen=True, slots=True)
class VerifiedState:
    """Everything verified about one registry: its latest checkpoint, its operator log, and
    the package logs fetched so far (each proven at ``PackageState.verified_at``)."""

    checkpoint: SignedCheckpoint
    operator: OperatorState
    packages: Mapping[str, PackageState]
    #: the registry domain this state belongs to (a label for messages; not verified)
    registry: str | None = None

    @property
    def log_length(self) -> int:
        return self.checkpoint.checkpoint.log_length

    def package(self, name: str) -> PackageState | None:
        return self.packages.get(name)

    def releases(self, name: str) -> tuple[Release, ...]:
        """Releases of ``name`` in log order (yanked ones included); empty if unknown."""
        state = self.packages.get(name)
        return state.releases if state is not None else ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-serializable form for the cache dir (see :meth:`from_json`)."""
        return {
            "format": STATE_FORMAT,
            "registry": self.registry,
            "checkpoint": self.checkpoint.to_json(),
            "operator": self.operator.to_json(),
            "packages": {name: state.to_json() for name, state in sorted(self.packages.items())},
        }

    @classmethod
    def from_json(cls, obj: Any) -> VerifiedState:
        """Load a state written by :meth:`to_json`.

        The stored data is checked for shape and internal consistency (key IDs match keys,
        log IDs match names, heads lie below their checkpoint) and the stored checkpoint's
        signature is verified again with the stored operator keys. A malformed or foreign
        file raises ``WargInvalidRecord``; a checkpoint that no longer verifies raises
        ``WargSignatureError``/``WargUnauthorized``. On any ``WargVerificationError`` callers
        should discard the file and start from scratch (``previous=None``).
        """
        registry = obj.get("registry") if isinstance(obj, Mapping) else None
        try:
            if not isinstance(obj, Mapping):
                raise StateFormatError("not a JSON object")
            if obj.get("format") != STATE_FORMAT:
                raise StateFormatError(f"format is {obj.get('format')!r}, expected {STATE_FORMAT!r}")
            if registry is not None and not isinstance(registry, str):
                raise StateFormatError("registry must be a string or null")
            try:
                checkpoint = SignedCheckpoint.from_json(obj.get("checkpoint"))
            except WargVerificationError as exc:
                raise StateFormatError(exc.message) from None
            length = checkpoint.checkpoint.log_length
            operator = OperatorState.from_json(obj.get("operator"))
            if operator.verified_at != length:
                raise StateFormatError("operator log was not verified at the stored checkpoint")
            raw_packages = obj.get("packages")
            if not isinstance(raw_packages, Mapping):
                raise StateFormatError("packages must be an object")
            packages: dict[str, PackageState] = {}
            for name, raw in raw_packages.items():
                state = PackageState.from_json(raw)
                if state.name != name:
                    raise StateFormatError(f"package entry {name!r} holds the state of {state.name!r}")
                if not 0 < state.verified_at <= length:
                    raise StateFormatError(f"{name} was verified at length {state.verified_at}, beyond the checkpoint")
                packages[name] = state
            for label, head, verified_at in [("operator log", operator.head, operator.verified_at)] + [
                (n, s.head, s.verified_at) for n, s in packages.items()
            ]:
                if head.registry_index is None or head.registry_index >= verified_at or head.fetch_token is None:
                    raise StateFormatError(f"head of {label} has no registry index below its checkpoint")
        except StateFormatError as exc:
            raise WargInvalidRecord(
                f"stored warg state{f' for {registry}' if isinstance(registry, str) else ''} is not valid: {exc}",
                hint="delete the cached state; it will be rebuilt from the registry",
            ) from None
        checkpoint.verify(operator, registry=registry)
        return cls(checkpoint, operator, MappingProxyType(packages), registry)


def _bad_response(what: str, problem: str, registry: str = "the warg registry") -> RegistryError:
    return RegistryError(f"{registry} sent a malformed {what} response: {problem}")


class Update:
    """One sans-I/O verification round against a new checkpoint; see the module docstring.

    ``checkpoint`` is the JSON of ``GET v1/fetch/checkpoint`` (or a :class:`SignedCheckpoint`),
    ``packages`` the names whose logs to fetch and prove, ``previous`` the state persisted by
    an earlier round (records up to its heads are not fetched or validated again).
    """

    def __init__(
        self,
        checkpoint: SignedCheckpoint | Mapping[str, Any],
        packages: Iterable[str] = (),
        previous: VerifiedState | None = None,
        *,
        registry: str | None = None,
    ) -> None:
        self.checkpoint = checkpoint if isinstance(checkpoint, SignedCheckpoint) else SignedCheckpoint.from_json(checkpoint)
        self.previous = previous
        self.registry = registry if registry is not None else (previous.registry if previous else None)
        names = list(dict.fromkeys(validate_package_name(n) for n in packages))
        self._where = f" of {self.registry}" if self.registry else ""  # after a log label
        self._reg = f"warg registry {self.registry}" if self.registry else "the warg registry"
        new = self.checkpoint.checkpoint
        if previous is not None:
            old = previous.checkpoint.checkpoint
            if old.log_length > new.log_length:
                raise WargRewind(
                    f"{self._reg} went back in time: its checkpoint has log length "
                    f"{new.log_length}, but length {old.log_length} was verified earlier",
                    details=[f"verified earlier: length {old.log_length}, root {old.log_root}", f"served now:       length {new.log_length}, root {new.log_root}"],
                    hint="the registry may be rolled back or compromised; nothing was updated",
                )
            if old.log_length == new.log_length and (old.log_root, old.map_root) != (new.log_root, new.map_root):
                raise WargRootMismatch(
                    f"{self._reg} changed its roots at log length {new.log_length}",
                    details=[
                        f"verified earlier: logRoot {old.log_root} mapRoot {old.map_root}",
                        f"served now:       logRoot {new.log_root} mapRoot {new.map_root}",
                    ],
                    hint="a registry never rewrites history; it may be compromised. Nothing was updated",
                )
        self._operator = OperatorLogBuilder(previous.operator if previous else None)
        self._packages: dict[str, PackageLogBuilder] = {
            name: PackageLogBuilder(name, previous.packages.get(name) if previous else None) for name in names
        }
        self._by_log_id: dict[str, PackageLogBuilder] = {b.log_id: b for b in self._packages.values()}
        for builder in (self._operator, *self._packages.values()):
            builder.context = self._where  # record errors name the registry too
        self._changed: set[str] = set()
        self._more = False
        self._broken: BaseException | None = None
        self._done = False

    # -- introspection --

    @property
    def package_names(self) -> tuple[str, ...]:
        return tuple(self._packages)

    def package_log_ids(self) -> dict[str, str]:
        """log ID -> package name, for mapping ``packages`` keys of responses."""
        return {log_id: b.name for log_id, b in self._by_log_id.items()}

    def drop_package(self, name: str) -> None:
        """Stop tracking ``name`` (e.g. after a 404 ``log`` answer) before any of its
        records were applied in this update."""
        builder = self._packages.get(name)
        if builder is None:
            return
        if builder.log_id in self._changed:
            raise PkgLoaderError(f"cannot drop {name}: records of it were already applied")
        del self._packages[name]
        del self._by_log_id[builder.log_id]

    # -- fetching logs --

    def fetch_logs_request(self, limit: int | None = None) -> dict[str, Any]:
        """The JSON body of the next ``POST v1/fetch/logs``."""
        self._check_alive()
        body: dict[str, Any] = {"logLength": self.checkpoint.checkpoint.log_length}
        if limit is not None:
            body["limit"] = limit
        if self._operator.head_token is not None:
            body["operator"] = self._operator.head_token
        body["packages"] = {b.log_id: b.head_token for b in self._packages.values()}
        return body

    def add_fetch_logs_response(self, body: Any) -> bool:
        """Validate the records of one ``fetch/logs`` response; returns its ``more`` flag
        (true: send :meth:`fetch_logs_request` again)."""
        self._check_alive()
        try:
            if not isinstance(body, Mapping):
                raise _bad_response("fetch/logs", registry=self._reg, problem="not a JSON object")
            more = body.get("more", False)
            if not isinstance(more, bool):
                raise _bad_response("fetch/logs", registry=self._reg, problem="'more' is not a boolean")
            operator = body.get("operator")
            operator = [] if operator is None else operator
            packages = body.get("packages")
            packages = {} if packages is None else packages
            if not isinstance(operator, list) or not isinstance(packages, Mapping):
                raise _bad_response("fetch/logs", registry=self._reg, problem="'operator' must be a list and 'packages' an object")
            for warning in body.get("warnings") or []:
                if isinstance(warning, Mapping):
                    logger.warning("%s: %s", self._reg, str(warning.get("message"))[:500])
            applied = self._feed(self._operator, operator)
            for log_id, records in packages.items():
                builder = self._by_log_id.get(log_id)
                if builder is None:
                    continue  # a log we did not ask for
                if not isinstance(records, list):
                    raise _bad_response("fetch/logs", registry=self._reg, problem=f"records of {log_id} are not a list")
                applied += self._feed(builder, records)
            if more and not applied:
                raise _bad_response("fetch/logs", registry=self._reg, problem="'more' is true but no new records were sent")
        except BaseException as exc:
            self._broken = exc
            raise
        self._more = more
        return more

    def add_operator_records(self, records: Sequence[PublishedRecord | Mapping[str, Any]]) -> None:
        """Validate operator records (envelopes as in fetch/logs) directly."""
        self._guarded(self._feed, self._operator, records)

    def add_package_records(self, name: str, records: Sequence[PublishedRecord | Mapping[str, Any]]) -> None:
        """Validate records of package ``name`` (which must be one of the update's packages)."""
        builder = self._packages.get(name)
        if builder is None:
            raise PkgLoaderError(f"{name} is not one of the packages of this update")
        self._guarded(self._feed, builder, records)

    def _guarded(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``fn``; any exception poisons the update."""
        self._check_alive()
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            self._broken = exc
            raise

    def _feed(self, builder: _LogBuilder, records: Iterable[PublishedRecord | Mapping[str, Any]]) -> int:
        length = self.checkpoint.checkpoint.log_length
        key = builder.log_id if isinstance(builder, PackageLogBuilder) else OPERATOR_LOG_ID
        applied = 0
        for obj in records:
            if isinstance(obj, PublishedRecord):
                env = obj
            else:
                try:
                    env = PublishedRecord.from_json(obj)
                except BadValue as exc:
                    raise exc.error(
                        f"{builder.label}{self._where}: record {builder.length} has a malformed envelope: {exc.message}"
                    ) from None
            index = env.registry_index
            if index is None:
                raise WargInvalidRecord(f"{builder.label}{self._where}: record {builder.length} has no registryIndex")
            if builder.head_index is not None and index <= builder.head_index:
                continue  # already validated (overlapping page)
            if index >= length:
                raise WargInvalidRecord(
                    f"{builder.label}{self._where}: record {builder.length} has registry index {index}, "
                    f"beyond the checkpoint's log length {length}"
                )
            builder.apply(env)
            applied += 1
        builder.flush()
        if applied:
            self._changed.add(key)
        return applied

    # -- proofs --

    def _check_alive(self) -> None:
        if self._broken is not None:
            raise self._broken
        if self._done:
            raise PkgLoaderError("this warg update has already finished")

    def _leaves(self) -> list[tuple[str, str, str, int, int]]:
        """(label, log_id, head record id, head registry index, verified_at) per log."""
        length = self.checkpoint.checkpoint.log_length
        out = []
        op = self._operator
        if op.head_id is None or op.head_index is None:
            raise WargInvalidRecord(f"operator log{self._where} has no records at checkpoint length {length}")
        verified = self.previous.operator.verified_at if self.previous else 0
        out.append(("operator log", OPERATOR_LOG_ID, op.head_id, op.head_index, verified))
        for b in self._packages.values():
            if b.head_id is None or b.head_index is None:
                raise PackageNotFound(
                    f"package {b.name} does not exist in {self._reg} "
                    f"(no records up to checkpoint length {length})"
                )
            prev = self.previous.packages.get(b.name) if self.previous else None
            out.append((f"package log {b.name}", b.log_id, b.head_id, b.head_index, prev.verified_at if prev else 0))
        return out

    def _ready(self) -> list[tuple[str, str, str, int, int]]:
        self._check_alive()
        if self._more:
            raise PkgLoaderError("fetch/logs is not complete: the last response had more=true")
        return self._leaves()

    def _needs_inclusion(self, leaves: list[tuple[str, str, str, int, int]]) -> bool:
        length = self.checkpoint.checkpoint.log_length
        return bool(self._changed) or any(verified != length for *_, verified in leaves)

    def inclusion_request(self) -> dict[str, Any] | None:
        """Body of ``POST v1/proof/inclusion`` for the operator head and every package head,
        in that order; ``None`` when everything is already proven at this checkpoint."""
        leaves = self._guarded(self._ready)
        if not self._needs_inclusion(leaves):
            return None
        return {"logLength": self.checkpoint.checkpoint.log_length, "leafs": [leaf[3] for leaf in leaves]}

    def consistency_request(self) -> dict[str, int] | None:
        """Body of ``POST v1/proof/consistency`` from the previously verified checkpoint,
        or ``None`` if there is none or it has the same length."""
        self._check_alive()
        if self.previous is None:
            return None
        old = self.previous.checkpoint.checkpoint.log_length
        new = self.checkpoint.checkpoint.log_length
        return {"from": old, "to": new} if old < new else None

    def verify_consistency(self, consistency: Mapping[str, Any]) -> None:
        """Verify the ``proof/consistency`` response before the logs are complete, e.g. to
        tell a fork from a lost fetch token; :meth:`finish` still needs it. Raises
        ``WargFork`` when the registry's log does not extend the previously verified one."""
        self._check_alive()
        if self.consistency_request() is None:
            raise PkgLoaderError("there is no earlier checkpoint to check consistency with")
        self._guarded(self._verify_consistency, consistency)

    def finish(self, inclusion: Mapping[str, Any] | None = None, consistency: Mapping[str, Any] | None = None) -> VerifiedState:
        """Verify checkpoint signature, consistency and inclusion; return the new state."""
        leaves = self._guarded(self._ready)
        state = self._guarded(self._finish, leaves, inclusion, consistency)
        self._done = True
        return state

    def _finish(
        self,
        leaves: list[tuple[str, str, str, int, int]],
        inclusion: Mapping[str, Any] | None,
        consistency: Mapping[str, Any] | None,
    ) -> VerifiedState:
        length = self.checkpoint.checkpoint.log_length
        operator = self._operator.freeze(verified_at=length)
        self.checkpoint.verify(operator, registry=self.registry)
        if self.consistency_request() is not None:
            if consistency is None:
                raise WargProofError(f"no consistency proof was given for {self._reg}")
            self._verify_consistency(consistency)
        if self._needs_inclusion(leaves):
            if inclusion is None:
                raise WargProofError(f"no inclusion proof was given for {self._reg}")
            self._verify_inclusion(inclusion, leaves)
        packages = dict(self.previous.packages) if self.previous else {}
        for name, builder in self._packages.items():
            packages[name] = builder.freeze(verified_at=length)
        logger.debug(
            "%s verified at log length %d (%d logs updated)", self._reg, length, len(self._changed)
        )
        return VerifiedState(self.checkpoint, operator, MappingProxyType(packages), self.registry)

    def _bundle(self, response: Mapping[str, Any], field: str, what: str) -> bytes:
        if not isinstance(response, Mapping):
            raise WargProofError(f"{what} response from {self._reg} is not a JSON object")
        try:
            return b64decode(response.get(field), f"{what} field {field!r}")
        except BadValue as exc:
            raise WargProofError(f"{what} response from {self._reg} is malformed: {exc.message}") from None

    def _verify_consistency(self, response: Mapping[str, Any]) -> None:
        assert self.previous is not None
        old = self.previous.checkpoint.checkpoint
        new = self.checkpoint.checkpoint
        what = f"consistency proof {old.log_length}->{new.log_length}"
        try:
            bundle = LogProofBundle.decode(self._bundle(response, "proof", "consistency proof"))
            if bundle.log_length != new.log_length or bundle.consistent_lengths != (old.log_length,) or bundle.included_indices:
                raise ProofError(
                    f"bundle is for log length {bundle.log_length} from {list(bundle.consistent_lengths)} "
                    f"with {len(bundle.included_indices)} inclusions"
                )
            old_root, new_root = verify_log_consistency(bundle.hashes, old.log_length, new.log_length)
        except ProofError as exc:
            raise WargProofError(f"{what} of {self._reg} does not verify: {exc}") from None
        if new_root != hash_raw(new.log_root):
            raise WargProofError(
                f"{what} of {self._reg} does not lead to the new checkpoint's log root",
                details=[f"expected {new.log_root}", f"got      sha256:{new_root.hex()}"],
            )
        if old_root != hash_raw(old.log_root):
            raise WargFork(
                f"{self._reg} forked: its log at length {new.log_length} does not extend "
                f"the log at length {old.log_length} verified earlier",
                details=[f"verified earlier: logRoot {old.log_root}", f"proof implies:    logRoot sha256:{old_root.hex()}"],
                hint="the registry may be compromised or serving different views to different clients",
            )

    def _verify_inclusion(self, response: Mapping[str, Any], leaves: list[tuple[str, str, str, int, int]]) -> None:
        cp = self.checkpoint.checkpoint
        where = f"inclusion proof for checkpoint length {cp.log_length} of {self._reg}"
        try:
            log_bundle = LogProofBundle.decode(self._bundle(response, "log", "inclusion proof"))
            map_bundle = MapProofBundle.decode(self._bundle(response, "map", "inclusion proof"))
        except ProofError as exc:
            raise WargProofError(f"{where} is malformed: {exc}") from None
        if log_bundle.log_length != cp.log_length or log_bundle.consistent_lengths:
            raise WargProofError(
                f"{where} is for the wrong log",
                details=[f"bundle log length {log_bundle.log_length}, consistency entries {list(log_bundle.consistent_lengths)}"],
            )
        if len(log_bundle.included_indices) != len(leaves) or len(map_bundle.proofs) != len(leaves):
            raise WargProofError(
                f"{where} has {len(log_bundle.included_indices)} log and {len(map_bundle.proofs)} map proofs "
                f"for {len(leaves)} requested heads"
            )
        log_root = hash_raw(cp.log_root)
        map_root = hash_raw(cp.map_root)
        for k, (label, log_id, record_id, index, _) in enumerate(leaves):
            if log_bundle.included_indices[k] != 2 * index:
                raise WargProofError(
                    f"{where}: proof {k} ({label}) is for log node {log_bundle.included_indices[k]}, "
                    f"expected node {2 * index} (registry index {index})"
                )
            try:
                got = evaluate_log_inclusion(log_bundle.hashes, 2 * index, cp.log_length, leaf_hash(log_leaf_bytes(log_id, record_id)))
                got_map = evaluate_map_inclusion(map_bundle.proofs[k], hash_raw(log_id), record_id)
            except ProofError as exc:
                raise WargProofError(f"{where}: proof for the head of {label} does not verify: {exc}") from None
            if got != log_root:
                raise WargProofError(
                    f"{label}{self._where}: head record {record_id} at registry index {index} "
                    f"is not in the registry log of checkpoint length {cp.log_length}",
                    details=[f"expected logRoot {cp.log_root}", f"proof yields     sha256:{got.hex()}"],
                )
            if got_map != map_root:
                raise WargProofError(
                    f"{label}{self._where}: head record {record_id} is not the latest record of the log "
                    f"according to the map of checkpoint length {cp.log_length}",
                    details=[f"expected mapRoot {cp.map_root}", f"proof yields     sha256:{got_map.hex()}"],
                )


def verify_update(
    checkpoint: SignedCheckpoint | Mapping[str, Any],
    operator_records: Sequence[PublishedRecord | Mapping[str, Any]],
    package_records: Mapping[str, Sequence[PublishedRecord | Mapping[str, Any]]],
    inclusion: Mapping[str, Any] | None,
    consistency: Mapping[str, Any] | None = None,
    previous: VerifiedState | None = None,
    *,
    registry: str | None = None,
) -> VerifiedState:
    """One-shot form of :class:`Update` for already-fetched data: the new records of the
    operator log and of each package (name -> envelopes, in log order, possibly empty), the
    ``proof/inclusion`` response for ``[operator head, package heads…]`` in the order of
    ``package_records``, and the ``proof/consistency`` response if ``previous`` is older."""
    update = Update(checkpoint, package_records.keys(), previous, registry=registry)
    update.add_operator_records(operator_records)
    for name, records in package_records.items():
        update.add_package_records(name, records)
    return update.finish(inclusion, consistency)

