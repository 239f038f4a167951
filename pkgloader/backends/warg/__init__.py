"""Verified, read-only warg registry support: the pure (no I/O) verification core.

The HTTP backend fetches JSON and feeds it to an :class:`Update`; what comes back is a
:class:`VerifiedState` (checkpoint, operator log, package logs with their releases) that
can be persisted with ``to_json()`` and reloaded with ``VerifiedState.from_json()``.
See ``_verify.py`` for the request/response loop and ``warg-protocol.md`` for the protocol.

Terminology follows the spec: a *log* is the record chain of one package (or of the
operator); the *registry log* is the global Merkle log of all records; a *checkpoint*
commits to the registry log root and the map root at a *log length*.
"""

from ._checkpoint import Checkpoint, SignedCheckpoint
from ._records import OPERATOR_LOG_ID, PublishedRecord, Timestamp, package_log_id, validate_package_name
from ._state import (
    LogHead,
    OperatorState,
    PackageState,
    Release,
    validate_operator_log,
    validate_package_log,
)
from ._verify import STATE_FORMAT, Update, VerifiedState, verify_update

__all__ = [
    "Checkpoint",
    "LogHead",
    "OPERATOR_LOG_ID",
    "OperatorState",
    "PackageState",
    "PublishedRecord",
    "Release",
    "STATE_FORMAT",
    "SignedCheckpoint",
    "Timestamp",
    "Update",
    "VerifiedState",
    "package_log_id",
    "validate_operator_log",
    "validate_package_log",
    "validate_package_name",
    "verify_update",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and getattr(_obj, "__module__", "").startswith(__name__ + "._"):
        try:
            _obj.__module__ = __name__
        except (AttributeError, TypeError):  # pragma: no cover - builtins
            pass
del _name, _obj
