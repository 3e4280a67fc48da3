"""Codecs for Triton's raw tensor contents (no numpy on the hot path).

BYTES tensors are a concatenation of (uint32 little-endian length, bytes) per element;
BOOL is one byte per element; numbers are little-endian fixed-width values.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

_LENGTH = struct.Struct("<I")

_NUMERIC_FORMATS = {
    "BOOL": "?",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "FP32": "f",
    "FP64": "d",
}


def encode_bytes(values: Iterable[bytes]) -> bytes:
    """Serialize a BYTES tensor."""
    return b"".join(_LENGTH.pack(len(value)) + value for value in values)


def encode_one_bytes(value: bytes) -> bytes:
    """Serialize a one-element BYTES tensor."""
    return _LENGTH.pack(len(value)) + value


def decode_bytes(raw: bytes) -> list[bytes]:
    """Deserialize a BYTES tensor into its elements."""
    elements = []
    offset = 0
    end = len(raw)
    while offset < end:
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        elements.append(raw[offset : offset + length])
        offset += length
    return elements


def decode_first_bytes(raw: bytes) -> bytes:
    """Element 0 of a BYTES tensor (b"" when the tensor is empty)."""
    if len(raw) < 4:
        return b""
    (length,) = _LENGTH.unpack_from(raw, 0)
    return raw[4 : 4 + length]


def encode_numbers(values: Iterable[float | int | bool], datatype: str) -> bytes:
    items = list(values)
    return struct.pack(f"<{len(items)}{_NUMERIC_FORMATS[datatype]}", *items)


def decode_numbers(raw: bytes, datatype: str) -> list[float | int | bool]:
    code = _NUMERIC_FORMATS[datatype]
    count = len(raw) // struct.calcsize(code)
    return list(struct.unpack(f"<{count}{code}", raw[: count * struct.calcsize(code)]))


def _first_int(code: str) -> Callable[[bytes], int | None]:
    scalar = struct.Struct(f"<{code}")  # compiled once per datatype
    unpack, size = scalar.unpack_from, scalar.size

    def decode(raw: bytes) -> int | None:
        return int(unpack(raw)[0]) if len(raw) >= size else None

    return decode


_FIRST_INTS = {datatype: _first_int(code) for datatype, code in _NUMERIC_FORMATS.items()}


def decode_first_int(raw: bytes, datatype: str) -> int | None:
    """Element 0 of an integer tensor, or None when the tensor is empty."""
    return _FIRST_INTS[datatype](raw)


def first_int_decoder(datatype: str) -> Callable[[bytes], int | None]:
    """`decode_first_int` for one datatype, looked up once (for a per-token read)."""
    return _FIRST_INTS[datatype]
