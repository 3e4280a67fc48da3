from __future__ import annotations

import pytest

from gateway.triton import tensors


def test_bytes_round_trip() -> None:
    values = [b"", b"hello", "東京".encode(), b"\x00\xff"]
    raw = tensors.encode_bytes(values)
    assert raw[:4] == b"\x00\x00\x00\x00"
    assert tensors.decode_bytes(raw) == values
    assert tensors.decode_first_bytes(raw) == b""
    assert tensors.decode_first_bytes(tensors.encode_one_bytes(b"abc")) == b"abc"


def test_first_of_an_empty_tensor() -> None:
    assert tensors.decode_first_bytes(b"") == b""
    assert tensors.decode_first_int(b"", "UINT32") is None


@pytest.mark.parametrize(
    ("datatype", "values"),
    [("UINT32", [0, 7, 2**32 - 1]), ("INT32", [-5, 3]), ("UINT64", [2**63]), ("BOOL", [True, False]), ("FP32", [0.5])],
)
def test_numbers_round_trip(datatype: str, values: list[float]) -> None:
    raw = tensors.encode_numbers(values, datatype)
    assert tensors.decode_numbers(raw, datatype) == values
    assert tensors.decode_first_int(raw, datatype) == int(values[0])


def test_uint32_is_little_endian() -> None:
    assert tensors.decode_first_int(b"\x0b\x00\x00\x00", "UINT32") == 11


@pytest.mark.parametrize(
    ("dims", "count", "shape"),
    [
        ((1,), 1, [1]),
        ((1, 1), 1, [1, 1]),
        ((-1,), 3, [3]),
        ((1, -1), 3, [1, 3]),
        ((-1, -1), 2, [1, 2]),
        ((2,), 1, [1]),  # cannot hold it as declared: the plain count
        ((), 1, [1]),
    ],
)
def test_inputs_take_the_declared_shape(dims: tuple[int, ...], count: int, shape: list[int]) -> None:
    from gateway.backends.base import declared_shape

    assert declared_shape(dims, count) == shape
