"""Timestamped checkpoints and their signatures (spec §6)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final, Mapping

from ..._errors import WargSignatureError, WargUnauthorized
from . import _proto
from ._crypto import CHECKPOINT_SIGNATURE_PREFIX, BadValue, parse_hash, parse_public_key, parse_signature
from ._state import OperatorState

__all__ = ["Checkpoint", "SignedCheckpoint"]

_TIMESTAMPED_PREFIX: Final = b"WARG-TIMESTAMPED-CHECKPOINT-V0"
_CHECKPOINT_ID_PREFIX: Final = b"WARG-CHECKPOINT-V0"
_MAX_U32: Final = 0xFFFFFFFF
_MAX_U64: Final = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a registry commits to: the log root and map root after ``log_length`` leaves."""

    log_length: int
    log_root: str
    map_root: str
    timestamp: int

    def timestamped_encoding(self) -> bytes:
        """The signed payload: prefix || LEB(len) || PSTR(logRoot) || PSTR(mapRoot) || LEB(ts)."""
        return (
            _TIMESTAMPED_PREFIX
            + _proto.leb128(self.log_length)
            + _proto.pstr(self.log_root)
            + _proto.pstr(self.map_root)
            + _proto.leb128(self.timestamp)
        )

    def checkpoint_id(self) -> str:
        """The server-side checkpoint hash (not needed for verification)."""
        data = _CHECKPOINT_ID_PREFIX + _proto.leb128(self.log_length) + _proto.pstr(self.log_root) + _proto.pstr(self.map_root)
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"logRoot": self.log_root, "logLength": self.log_length, "mapRoot": self.map_root, "timestamp": self.timestamp}

    @classmethod
    def from_json(cls, obj: Any) -> Checkpoint:
        if not isinstance(obj, Mapping):
            raise BadValue("checkpoint contents must be a JSON object")
        length = obj.get("logLength")
        if type(length) is not int or not 0 <= length <= _MAX_U32:
            raise BadValue(f"checkpoint logLength must be a 32-bit unsigned integer, got {length!r}")
        timestamp = obj.get("timestamp")
        if type(timestamp) is not int or not 0 <= timestamp <= _MAX_U64:
            raise BadValue(f"checkpoint timestamp must be a non-negative integer, got {timestamp!r}")
        return cls(length, parse_hash(obj.get("logRoot"), "logRoot"), parse_hash(obj.get("mapRoot"), "mapRoot"), timestamp)


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint as served by ``GET v1/fetch/checkpoint``."""

    checkpoint: Checkpoint
    key_id: str
    signature: str

    @classmethod
    def from_json(cls, obj: Any) -> SignedCheckpoint:
        """Parse ``{"contents": {...}, "keyId", "signature"}``; raises ``WargInvalidRecord``
        (or ``WargUnsupported`` for an unknown hash algorithm)."""
        try:
            if not isinstance(obj, Mapping):
                raise BadValue("checkpoint must be a JSON object")
            contents = Checkpoint.from_json(obj.get("contents"))
            key_id = obj.get("keyId")
            signature = obj.get("signature")
            if not isinstance(key_id, str) or not isinstance(signature, str):
                raise BadValue("checkpoint needs string keyId and signature")
        except BadValue as exc:
            raise exc.error(f"malformed checkpoint: {exc.message}") from None
        return cls(contents, key_id, signature)

    def to_json(self) -> dict[str, Any]:
        return {"contents": self.checkpoint.to_json(), "keyId": self.key_id, "signature": self.signature}

    def verify(self, operator: OperatorState, *, registry: str | None = None) -> None:
        """Check the signature with a key of the validated operator log that holds ``commit``.

        The reference client only requires the key to be known; servers and monitors also
        require ``commit``, and so do we (stricter, same verdict on honest registries).
        """
        where = f"checkpoint at log length {self.checkpoint.log_length}" + (f" of {registry}" if registry else "")
        text = operator.keys.get(self.key_id)
        if text is None:
            raise WargUnauthorized(
                f"{where} is signed by key {self.key_id}, which is not in the operator log",
                details=[f"operator keys: {', '.join(operator.keys) or 'none'}"],
            )
        if "commit" not in operator.permissions.get(self.key_id, frozenset()):
            raise WargUnauthorized(f"{where} is signed by key {self.key_id}, which does not hold the 'commit' permission")
        try:
            der = parse_signature(self.signature)
        except BadValue as exc:
            raise exc.error(f"{where} has a malformed signature: {exc.message}") from None
        if not parse_public_key(text).verify(CHECKPOINT_SIGNATURE_PREFIX, self.checkpoint.timestamped_encoding(), der):
            raise WargSignatureError(
                f"{where} has a signature that does not verify with key {self.key_id}",
                details=[f"logRoot {self.checkpoint.log_root}", f"mapRoot {self.checkpoint.map_root}"],
            )

