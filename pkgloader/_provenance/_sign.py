"""Keyed signing (``publish --sign-key``): a cosign-3-style Sigstore bundle v0.3 holding a
DSSE envelope of an in-toto statement (predicate ``https://sigstore.dev/cosign/sign/v1``)
whose subject is the manifest digest. No transparency log entry (keyed, offline)."""

from __future__ import annotations

import base64
import json
from typing import Any

from ._formats import BUNDLE_V03, COSIGN_SIGN_PREDICATE, INTOTO, intoto_statement, pae
from ._keys import sign_bytes

__all__ = ["keyed_bundle"]


def keyed_bundle(private_key: Any, subject_name: str, digest: str, predicate_type: str = COSIGN_SIGN_PREDICATE,
                 predicate: dict[str, Any] | None = None) -> bytes:
    statement = intoto_statement(subject_name, digest, predicate_type, predicate)
    sig, hint = sign_bytes(private_key, pae(INTOTO, statement))
    bundle = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
        "dsseEnvelope": {"payload": base64.b64encode(statement).decode(), "payloadType": INTOTO,
                         "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}]},
    }
    return json.dumps(bundle, separators=(",", ":")).encode()
