"""Lossless codecs: bit-exact round trips for every dtype they accept, configs, errors, fixtures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hepslim
from hepslim.codecs.lossless import LZ4, LZMA, BitPack, Blosc, ByteStreamSplit, Delta, Raw, Zlib, Zstd
from hepslim.testing import check_codec, roundtrip

LOSSLESS = [
    Zstd(), Zstd(level=19), Zstd(level=-3), LZ4(), LZ4(acceleration=8), Zlib(), Zlib(level=9), LZMA(preset=1), Blosc(), Blosc(cname="zstd", clevel=9, shuffle="bit", typesize=4),
    Blosc(shuffle="none", typesize=8), Raw(), ByteStreamSplit(), Delta(), Delta(zigzag=False), BitPack(),
]


@pytest.mark.parametrize("codec", LOSSLESS, ids=repr)
def test_conformance(codec):
    check_codec(codec)


dtypes = st.sampled_from(["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", ">i4", ">f8", "?"])


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(dtype=dtypes, shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=20)))
def test_any_array_bit_exact_through_full_pipelines(x):
    """Every dtype through every serializer it accepts plus a compressor, bit-exact."""
    for ser in (Raw(), ByteStreamSplit(), BitPack()):
        if not ser.accepts(x.dtype):
            continue
        pre = [Delta()] if x.dtype.kind in "iu" else []
        for comp in (Zstd(), Blosc(shuffle="bit")):
            y = hepslim.decode_block(hepslim.encode_block(x, [*pre, ser, comp]))
            assert y.shape == x.shape and y.dtype == x.dtype
            assert np.ascontiguousarray(y).tobytes() == np.ascontiguousarray(x).tobytes()


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=5000))
def test_bytes_codecs_accept_any_bytes(data):
    for c in (Zstd(), LZ4(), Zlib(), LZMA(preset=0), Blosc()):
        assert c.decode(c.encode(data)) == data
        assert c.decode(c.encode(memoryview(data))) == data


def test_ten_million_elements():
    x = np.cumsum(np.random.default_rng(0).integers(0, 3, 10_000_000)).astype(np.int64)
    for chain in ([Delta(), BitPack(), Zstd()], [ByteStreamSplit(), LZ4()]):
        y = hepslim.decode_block(hepslim.encode_block(x, chain))
        assert np.array_equal(x, y)
    # non-negative steps 0..2 need 2 bits each without zigzag (0, 2, 4: 3 bits with it)
    assert len(BitPack().encode(Delta(zigzag=False).encode(x))) <= 10_000_000 * 2 // 8 + 64
    assert len(BitPack().encode(Delta().encode(x))) <= 10_000_000 * 3 // 8 + 64


def test_delta_wraps_extremes():
    x = np.array([np.iinfo("i8").min, np.iinfo("i8").max, 0, -1, 5], dtype="i8")
    assert np.array_equal(roundtrip(Delta(), x), x)
    u = np.array([0, 2**64 - 1, 3], dtype="u8")
    assert np.array_equal(roundtrip(Delta(), u), u)


def test_bitpack_constant_array_has_empty_payload():
    x = np.full(100_000, 42, dtype=np.int32)
    enc = BitPack().encode(x)
    assert len(enc) < 64
    assert np.array_equal(BitPack().decode(enc), x)


def test_bitpack_booleans_take_one_bit():
    x = np.random.default_rng(1).integers(0, 2, 8000).astype(bool)
    assert len(BitPack().encode(x)) < 8000 // 8 + 64


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"id": "zstd", "level": 99}, "level=99"),
        ({"id": "zlib", "level": -1}, "0..9"),
        ({"id": "blosc", "shuffle": "bits"}, "none, byte, bit"),
        ({"id": "blosc", "typesize": 3}, "typesize"),
        ({"id": "zstd", "lvl": 3}, "unknown parameter"),
        ({"id": "delta", "zigzag": "yes"}, "zigzag"),
    ],
)
def test_parameter_errors_name_the_parameter(config, fragment):
    with pytest.raises(hepslim.CodecParameterError, match=fragment) as info:
        hepslim.get_codec(config)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("codec", [Delta(), BitPack(), ByteStreamSplit()], ids=repr)
def test_unsupported_dtypes_are_refused(codec):
    bad = np.array(["a", "b"]) if codec.accepts(np.dtype("f4")) else np.ones(3, np.float32)
    with pytest.raises(hepslim.CodecInputError):
        codec.encode(bad)


def test_corrupt_stream_raises():
    for c in (Zstd(), LZ4(), Zlib(), LZMA(), Blosc()):
        enc = c.encode(np.arange(1000, dtype=np.float64).tobytes())
        with pytest.raises(hepslim.CorruptDataError):
            c.decode(enc[: len(enc) // 2])


def test_config_is_json():
    for c in LOSSLESS:
        assert hepslim.get_codec(json.dumps(c.get_config())) == c


FIXTURES = sorted((__import__("pathlib").Path(__file__).parent / "fixtures").glob("lossless_*.blk"))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_committed_fixtures_keep_decoding(path):
    expected = np.load(path.with_suffix(".npy"))
    got = hepslim.decode_block(path.read_bytes())
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


def test_fixtures_exist():
    assert len(FIXTURES) >= 5


def test_lzma_preset_9_round_trip():
    # preset 9 (NanoAOD's production setting) allocates a 64 MiB dictionary per call: one check suffices
    x = np.random.default_rng(2).exponential(20.0, 50_000).astype(np.float32)
    c = LZMA(preset=9)
    assert c.decode(c.encode(x)) == x.tobytes()
