"""Bit packing: bit-exact against a pure-Python reference of the little-endian bit stream."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hepslim.codecs._bits import bit_width, pack_bits, packed_nbytes, unpack_bits
from hepslim.errors import CodecInputError, CorruptDataError


def _reference_pack(values: list[int], width: int) -> bytes:
    """Value k at bits [k*width, (k+1)*width) of a little-endian integer."""
    acc = 0
    for k, v in enumerate(values):
        acc |= int(v) << (k * width)
    return acc.to_bytes(packed_nbytes(len(values), width), "little")


@st.composite
def _values_and_width(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    width = draw(st.integers(0, 64))
    n = draw(st.integers(0, 300))
    vals = draw(st.lists(st.integers(0, (1 << width) - 1), min_size=n, max_size=n))
    return np.array(vals, dtype=np.uint64), width


@given(_values_and_width())
@settings(max_examples=150, deadline=None)
def test_pack_matches_reference_and_round_trips(vw: tuple[np.ndarray, int]) -> None:
    values, width = vw
    buf = pack_bits(values, width)
    assert buf == _reference_pack(values.tolist(), width)
    assert len(buf) == packed_nbytes(values.size, width)
    out = unpack_bits(buf, width, values.size)
    assert out.dtype == np.uint64
    np.testing.assert_array_equal(out, values)


@pytest.mark.parametrize("width", [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 63, 64])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int64])
def test_round_trip_many_groups(width: int, dtype: type) -> None:
    rng = np.random.default_rng(width)
    bits = min(width, np.dtype(dtype).itemsize * 8 - (1 if np.dtype(dtype).kind == "i" else 0))
    hi = (1 << bits) - 1
    n = 64 * 1024 * 2 + 37  # more than one internal block, not a multiple of 64
    values = rng.integers(0, hi, n, dtype=np.uint64, endpoint=True).astype(dtype)
    values[:3] = [0, hi, hi]
    out = unpack_bits(pack_bits(values, width), width, n)
    np.testing.assert_array_equal(out, values.astype(np.uint64))


def test_width_zero_is_empty_and_all_zero() -> None:
    assert pack_bits(np.zeros(10, np.uint32), 0) == b""
    np.testing.assert_array_equal(unpack_bits(b"", 0, 10), np.zeros(10, np.uint64))


def test_booleans_pack_at_one_bit() -> None:
    b = np.array([True, False, True, True, False, False, False, False, True])
    buf = pack_bits(b, 1)
    assert buf == bytes([0b00001101, 0b1])
    np.testing.assert_array_equal(unpack_bits(buf, 1, b.size).astype(bool), b)


def test_value_too_wide_or_negative_refused() -> None:
    with pytest.raises(CodecInputError, match="does not fit in 3 bits"):
        pack_bits(np.array([8], np.uint16), 3)
    with pytest.raises(CodecInputError, match="non-negative"):
        pack_bits(np.array([-1, 2]), 4)
    with pytest.raises(CodecInputError, match="0..64"):
        pack_bits(np.array([1]), 65)
    with pytest.raises(CodecInputError, match="integers"):
        pack_bits(np.array([1.0]), 4)


def test_truncated_payload_raises() -> None:
    buf = pack_bits(np.arange(100, dtype=np.uint64), 7)
    with pytest.raises(CorruptDataError, match="truncated"):
        unpack_bits(buf[:-1], 7, 100)


def test_accepts_memoryview_and_ndarray_buffers() -> None:
    v = np.arange(1000, dtype=np.uint64) % 13
    buf = pack_bits(v, 4)
    np.testing.assert_array_equal(unpack_bits(memoryview(buf), 4, 1000), v)
    np.testing.assert_array_equal(unpack_bits(np.frombuffer(buf, np.uint8), 4, 1000), v)
    np.testing.assert_array_equal(unpack_bits(bytearray(buf) + b"\0\0", 4, 1000), v)


@pytest.mark.parametrize(("m", "w"), [(0, 0), (1, 1), (2, 2), (255, 8), (256, 9), (2**64 - 1, 64)])
def test_bit_width(m: int, w: int) -> None:
    assert bit_width(m) == w
