"""Self-describing blocks: damage of any kind raises CorruptDataError, never wrong values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hepslim
from hepslim.block import block_info

X = np.random.default_rng(3).exponential(40.0, 5000).astype(np.float32)
CHAIN = [{"id": "mantissa", "keepbits": 10}, {"id": "bytestreamsplit"}, {"id": "zstd", "level": 5}]


def test_block_is_self_describing():
    blk = hepslim.encode_block(X, CHAIN)
    info = block_info(blk)
    assert [c["id"] for c in info["codecs"]] == ["mantissa", "bytestreamsplit", "zstd"]
    assert info["dtype"] == "<f4" and info["shape"] == [5000]
    y = hepslim.decode_block(blk)
    assert y.dtype == X.dtype
    assert np.all(np.abs(y - X) <= 2.0**-11 * np.abs(X))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_flipped_bit_is_detected(data):
    blk = bytearray(hepslim.encode_block(X[:300], CHAIN))
    pos = data.draw(st.integers(0, len(blk) - 1))
    bit = data.draw(st.integers(0, 7))
    blk[pos] ^= 1 << bit
    with pytest.raises(hepslim.CorruptDataError):
        hepslim.decode_block(bytes(blk))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_truncation_is_detected(data):
    blk = hepslim.encode_block(X[:300], CHAIN)
    cut = data.draw(st.integers(0, len(blk) - 1))
    with pytest.raises(hepslim.CorruptDataError):
        hepslim.decode_block(blk[:cut])


def test_trailing_garbage_is_detected():
    with pytest.raises(hepslim.CorruptDataError):
        hepslim.decode_block(hepslim.encode_block(X, CHAIN) + b"\0")


def test_not_a_block():
    with pytest.raises(hepslim.CorruptDataError, match="not a hepslim block"):
        hepslim.decode_block(b"PAR1" + bytes(100))


def test_errors_are_hepslim_errors_and_builtins():
    assert issubclass(hepslim.CorruptDataError, hepslim.HepslimError)
    assert issubclass(hepslim.CorruptDataError, ValueError)
    assert issubclass(hepslim.UnknownCodecError, KeyError)
