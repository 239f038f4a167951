"""Minimal protobuf wire-format reader and writer (spec §2.2, §7.1, §7.2).

Only what the warg messages need: varints (wire type 0), length-delimited fields
(wire type 2), and skipping of unknown fixed32/fixed64 fields. Decoding follows
``prost`` (the reference decoder): scalar fields keep the last value, a repeated
singular *message* field is merged (which, on the wire, equals decoding the
concatenation of its occurrences), ``uint32``/``int32`` values are truncated from
64 bits, a wrong wire type for a known field is an error, unknown fields are skipped.

Nothing here knows about warg semantics; message-specific decoders live next to the
types they build (``_records.py``, ``_merkle.py``). Errors are :class:`ProtoError`,
which callers turn into the right ``Warg*`` error with context.
"""

from __future__ import annotations

from typing import Iterator

__all__ = [
    "ProtoError",
    "read_varint",
    "iter_fields",
    "as_uint32",
    "as_int32",
    "as_int64",
    "unpack_varints",
    "utf8",
    "leb128",
    "pstr",
    "field_varint",
    "field_bytes",
    "field_packed_varints",
]

WIRE_VARINT = 0
WIRE_FIXED64 = 1
WIRE_LEN = 2
WIRE_FIXED32 = 5

_U64_LIMIT = 1 << 64


class ProtoError(ValueError):
    """Malformed protobuf bytes (truncated data, bad varint, bad wire type, bad UTF-8)."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one unsigned LEB128 varint of at most 10 bytes (< 2**64) at ``pos``."""
    try:
        b = buf[pos]
    except IndexError:
        raise ProtoError(f"truncated varint at byte {pos}") from None
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    end = len(buf)
    start = pos
    pos += 1
    while True:
        if pos >= end:
            raise ProtoError(f"truncated varint at byte {start}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise ProtoError(f"varint longer than 10 bytes at byte {start}")
    if result >= _U64_LIMIT:
        raise ProtoError(f"varint does not fit in 64 bits at byte {start}")
    return result, pos


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field_number, wire_type, value)``; value is an int (wire type 0) or bytes.

    Fixed-width fields (wire types 1 and 5) are yielded as bytes so callers can skip them.
    Groups (wire types 3/4, deprecated and unused by warg) are rejected.
    """
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        if key > 0xFFFFFFFF:
            raise ProtoError(f"invalid field key {key}")
        field = key >> 3
        wire = key & 7
        if field == 0:
            raise ProtoError("invalid field number 0")
        if wire == WIRE_VARINT:
            value, pos = read_varint(buf, pos)
            yield field, wire, value
        elif wire == WIRE_LEN:
            length, pos = read_varint(buf, pos)
            stop = pos + length
            if stop > end:
                raise ProtoError(f"field {field}: length {length} runs past the end of the message")
            yield field, wire, buf[pos:stop]
            pos = stop
        elif wire == WIRE_FIXED64 or wire == WIRE_FIXED32:
            size = 8 if wire == WIRE_FIXED64 else 4
            if pos + size > end:
                raise ProtoError(f"field {field}: truncated fixed-width value")
            yield field, wire, buf[pos : pos + size]
            pos += size
        else:
            raise ProtoError(f"field {field}: unsupported wire type {wire}")


def as_uint32(value: int) -> int:
    """prost ``uint32``: the low 32 bits of the decoded varint."""
    return value & 0xFFFFFFFF


def as_int32(value: int) -> int:
    """prost ``int32``/enum: the low 32 bits, two's complement."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def as_int64(value: int) -> int:
    """prost ``int64``: the 64-bit varint read as two's complement."""
    return value - _U64_LIMIT if value & (1 << 63) else value


def unpack_varints(data: bytes) -> list[int]:
    """Decode a packed repeated varint field."""
    out: list[int] = []
    pos = 0
    end = len(data)
    while pos < end:
        value, pos = read_varint(data, pos)
        out.append(value)
    return out


def utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtoError(f"{what} is not valid UTF-8") from None


# --- writing ---------------------------------------------------------------------------


def leb128(value: int) -> bytes:
    """Unsigned LEB128 (the protobuf varint encoding)."""
    if value < 0:
        raise ValueError("leb128 of a negative number")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pstr(text: str) -> bytes:
    """``LEB(len(utf8(s))) || utf8(s)`` (spec conventions)."""
    raw = text.encode("utf-8")
    return leb128(len(raw)) + raw


def field_varint(field: int, value: int) -> bytes:
    """A varint field; negative values use the 10-byte two's complement form."""
    if value < 0:
        value += _U64_LIMIT
    return leb128(field << 3 | WIRE_VARINT) + leb128(value)


def field_bytes(field: int, data: bytes) -> bytes:
    return leb128(field << 3 | WIRE_LEN) + leb128(len(data)) + data


def field_packed_varints(field: int, values: list[int] | tuple[int, ...]) -> bytes:
    return field_bytes(field, b"".join(leb128(v) for v in values))
