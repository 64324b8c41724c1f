"""mantissa: the declared relative bound, special values, no overflow to inf, unbiased rounding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hepslim
from hepslim.codecs.mantissa import Mantissa
from hepslim.errors import CodecInputError, CodecParameterError

FIXTURES = Path(__file__).parent / "fixtures"
MBITS = {np.dtype(np.float16): 10, np.dtype(np.float32): 23, np.dtype(np.float64): 52}
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _float_arrays(dtype: np.dtype) -> st.SearchStrategy[np.ndarray]:
    width = dtype.itemsize * 8
    finfo = np.finfo(dtype)
    special = st.sampled_from(
        [0.0, -0.0, np.inf, -np.inf, np.nan, float(finfo.max), -float(finfo.max),
         float(finfo.smallest_subnormal), float(finfo.smallest_normal), float(finfo.max) * 0.9999]
    )
    elements = st.one_of(st.floats(width=width, allow_nan=True, allow_infinity=True, allow_subnormal=True),
                         special.map(lambda v: dtype.type(v)))
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12),
                      elements=elements)


def _reference(x: np.ndarray, k: int, rounding: str) -> np.ndarray:
    """Element-by-element Python integer rounding of the bit pattern: the specification."""
    utype = UINT[x.dtype.itemsize]
    mbits = MBITS[x.dtype]
    nbits = x.dtype.itemsize * 8
    drop = mbits - k
    sign = 1 << (nbits - 1)
    expmask = ((1 << (nbits - 1 - mbits)) - 1) << mbits
    out = []
    for u in x.reshape(-1).view(utype).tolist():
        a, s = u & ~sign, u & sign
        if a < (1 << mbits) or a >= expmask or drop == 0:
            out.append(u)
            continue
        q, r = divmod(a, 1 << drop)
        if rounding == "nearest" and drop > 0:
            half = 1 << (drop - 1)
            if r > half or (r == half and q & 1):
                q += 1
        res = q << drop
        if res >= expmask:
            res = expmask - (1 << drop)
        out.append(res | s)
    return np.array(out, dtype=utype).view(x.dtype).reshape(x.shape)


def _assert_within_bound(x: np.ndarray, y: np.ndarray, codec: Mantissa) -> None:
    assert y.shape == x.shape and y.dtype == x.dtype.newbyteorder("=")
    xf, yf = x.astype(np.float64).reshape(-1), y.astype(np.float64).reshape(-1)
    finite = np.isfinite(xf)
    assert np.isfinite(yf[finite]).all(), "a finite value became inf/NaN"
    # |x'-x| is exact by Sterbenz (same or adjacent binade); the scaling by 2**k is exact too.
    k = codec.keepbits + (1 if codec.rounding == "nearest" else 0)
    err = np.abs(yf[finite] - xf[finite])
    assert (np.ldexp(err, k) <= np.abs(xf[finite])).all()
    nonfinite = ~finite
    ux, uy = x.reshape(-1).view(UINT[x.itemsize]), y.reshape(-1).view(UINT[x.itemsize])
    np.testing.assert_array_equal(uy[nonfinite], ux[nonfinite])  # NaN payloads and inf kept bit for bit


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("rounding", ["nearest", "truncate"])
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_round_trip_within_bound_and_matches_reference(dtype: type, rounding: str, data: st.DataObject) -> None:
    dt = np.dtype(dtype)
    x = data.draw(_float_arrays(dt))
    k = data.draw(st.integers(1, MBITS[dt]))
    codec = Mantissa(keepbits=k, rounding=rounding)
    y = codec.decode(codec.encode(x))
    _assert_within_bound(x, y, codec)
    ref = _reference(x, k, rounding)
    np.testing.assert_array_equal(y.view(UINT[dt.itemsize]), ref.view(UINT[dt.itemsize]))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_special_values_bit_exact(dtype: type) -> None:
    dt = np.dtype(dtype)
    ut = UINT[dt.itemsize]
    f = np.finfo(dt)
    x = np.array([0.0, -0.0, np.inf, -np.inf, f.smallest_subnormal, -f.smallest_subnormal,
                  f.smallest_normal * 0.75], dtype=dt)
    nbits = dt.itemsize * 8
    mbits = MBITS[dt]
    nan_payload = (((1 << (nbits - 1 - mbits)) - 1) << mbits) | 0b1011  # a signalling-ish NaN, low payload
    nans = np.array([nan_payload, nan_payload | (1 << (nbits - 1)), (1 << nbits) - 1], dtype=ut).view(dt)
    x = np.concatenate([x, nans])
    for k in (1, 3, mbits - 1):
        for rounding in ("nearest", "truncate"):
            y = Mantissa(k, rounding).encode(x)
            np.testing.assert_array_equal(y.view(ut), x.view(ut))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_largest_finite_values_never_become_inf(dtype: type) -> None:
    dt = np.dtype(dtype)
    f = np.finfo(dt)
    x = np.array([f.max, -f.max, np.nextafter(f.max, 0, dtype=dt), f.max / 2 * 1.999], dtype=dt)
    for k in range(1, MBITS[dt]):
        codec = Mantissa(k)
        y = codec.encode(x)
        _assert_within_bound(x, y, codec)
        largest = np.ldexp(2.0 - 2.0**-k, int(f.maxexp) - 1)  # 2**E (2 - 2**-k)
        assert float(np.abs(y[0])) == largest


def test_rounding_examples() -> None:
    x = np.array([1.0, 1.0625, 1.1875, 1.125 + 1 / 32, -1.1875, 3.0], np.float32)
    # keepbits=3 -> grid step 1/8 in [1, 2): 1.0625 is a tie -> even (1.0); 1.1875 tie -> even (1.25)
    np.testing.assert_array_equal(Mantissa(3).encode(x), [1.0, 1.0, 1.25, 1.125, -1.25, 3.0])
    np.testing.assert_array_equal(Mantissa(3, "truncate").encode(x), [1.0, 1.0, 1.125, 1.125, -1.125, 3.0])


def test_nearest_is_unbiased_truncate_is_not() -> None:
    rng = np.random.default_rng(2024)
    k = 7
    # continuous pT-like values
    x = rng.exponential(25.0, 2_000_000).astype(np.float32) + np.float32(1e-3)
    rel = (Mantissa(k).encode(x).astype(np.float64) - x) / x
    sem = rel.std() / np.sqrt(rel.size)
    assert abs(rel.mean()) < 5 * sem + 2.0 ** -(2 * k)  # ~0 within statistics
    rel_t = (Mantissa(k, "truncate").encode(x).astype(np.float64) - x) / x
    assert rel_t.mean() < -0.5 * 2.0 ** -(k + 1)  # truncation biases towards zero
    # exact ties: half-to-even splits them evenly; NanoAOD-style half-up would bias every one upwards
    m = rng.integers(0, 2**k, 100_000)
    e = rng.integers(-10, 10, 100_000)
    half_ulp = np.ldexp(1.0, e - k - 1)
    ties = ((1.0 + m / 2**k) * np.ldexp(1.0, e) + half_ulp).astype(np.float32)  # exactly half-way
    d = (Mantissa(k).encode(ties).astype(np.float64) - ties) / half_ulp
    np.testing.assert_array_equal(d, np.where(m % 2 == 1, 1.0, -1.0))  # to even: odd m up, even m down
    assert abs(np.mean(np.sign(d))) < 0.02


def test_big_endian_input_gives_native_same_values() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 3, 1000).astype(np.float32)
    be = x.astype(">f4")
    codec = Mantissa(8)
    y = codec.encode(be)
    assert y.dtype == np.dtype("=f4")
    np.testing.assert_array_equal(y, codec.encode(x))
    assert codec.decode(be).dtype.isnative


def test_input_not_modified_and_noncontiguous() -> None:
    x = np.arange(1, 41, dtype=np.float64).reshape(5, 8) * 1.01
    x_copy = x.copy()
    y = Mantissa(4).encode(x[:, ::2])
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(y, Mantissa(4).encode(np.ascontiguousarray(x[:, ::2])))


def test_decode_is_identity() -> None:
    y = Mantissa(5).encode(np.linspace(-3, 3, 101))
    np.testing.assert_array_equal(Mantissa(5).decode(y), y)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex64])
def test_integers_refused(dtype: type) -> None:
    with pytest.raises(CodecInputError, match="floats only"):
        Mantissa(5).encode(np.ones(4, dtype=dtype))


def test_parameter_validation_messages() -> None:
    for bad in (0, 53, -1, 2.5, True, "7"):
        with pytest.raises(CodecParameterError, match="keepbits"):
            Mantissa(bad)  # type: ignore[arg-type]
    with pytest.raises(CodecParameterError, match="rounding"):
        Mantissa(5, "up")
    with pytest.raises(CodecParameterError, match=r"keepbits=30 exceeds the 23 mantissa bits of float32"):
        Mantissa(30).encode(np.ones(3, np.float32))
    with pytest.raises(CodecParameterError, match="keepbits=11 exceeds the 10"):
        Mantissa(11).encode(np.ones(3, np.float16))
    # the dtype's full width is allowed and is the identity
    x = np.random.default_rng(0).normal(size=50)
    np.testing.assert_array_equal(Mantissa(52).encode(x), x)


def test_config_json_round_trip_and_registry() -> None:
    for codec in (Mantissa(10), Mantissa(3, "truncate")):
        again = hepslim.get_codec(json.loads(json.dumps(codec.get_config())))
        assert again == codec and isinstance(again, Mantissa)
    c = hepslim.get_codec({"id": "mantissa", "keepbits": 10})
    assert c == Mantissa(10) and c.family == "lossy" and not c.lossless
    assert c.error_bound().to_json() == {"kind": "rel", "value": 2.0**-11}
    assert Mantissa(10, "truncate").error_bound().value == 2.0**-10


def test_real_nanoaod_branches() -> None:
    """Every float leaf of a real NanoAOD file (already rounded by NanoAOD's own mantissa cut)."""
    uproot = pytest.importorskip("uproot")
    ak = pytest.importorskip("awkward")
    arrays = uproot.open("/work/shared/data/nano_tt_v12.root")["Events"].arrays(library="ak")
    n = 0
    for name in arrays.fields:
        a = arrays[name]
        try:
            x = ak.to_numpy(ak.flatten(a) if a.ndim > 1 else a)
        except ValueError:
            continue
        if x.dtype.kind != "f":
            continue
        for codec in (Mantissa(10), Mantissa(5, "truncate")):
            _assert_within_bound(x, codec.encode(x), codec)
        # rounding is idempotent: already-rounded data does not move again
        y = Mantissa(10).encode(x)
        np.testing.assert_array_equal(Mantissa(10).encode(y).view(np.uint32), y.view(np.uint32))
        n += 1
    assert n > 200


def test_large_array() -> None:
    rng = np.random.default_rng(7)
    x = rng.exponential(30.0, 10_000_000).astype(np.float32)
    codec = Mantissa(10)
    y = codec.encode(x)
    assert (np.abs(y.astype(np.float64) - x) <= 2.0**-11 * np.abs(x.astype(np.float64))).all()
    assert (y.view(np.uint32) & 0x1FFF == 0).all()  # the 13 dropped bits are zero


@pytest.mark.parametrize("name", ["mantissa_f32_k7", "mantissa_f64_k20_trunc", "mantissa_f16_k4"])
def test_committed_fixtures(name: str) -> None:
    """The rounding of stored data must never change between versions."""
    cfg = json.loads((FIXTURES / f"{name}.json").read_text())
    x = np.load(FIXTURES / f"{name}.input.npy")
    expected = np.load(FIXTURES / f"{name}.encoded.npy")
    codec = hepslim.get_codec(cfg)
    y = codec.encode(x)
    ut = UINT[x.itemsize]
    np.testing.assert_array_equal(y.view(ut), expected.view(ut))
    np.testing.assert_array_equal(codec.decode(expected).view(ut), expected.view(ut))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keep_repeated_keeps_point_values_exact(dtype: type) -> None:
    """Discrete values (a species' mass, sentinels) stay bit-exact; the continuum is rounded within bound."""
    rng = np.random.default_rng(7)
    pion, kaon = dtype(0.13957039), dtype(0.493677)
    cont = rng.exponential(20.0, 5000).astype(dtype)
    x = np.concatenate([cont, np.full(300, pion), np.full(40, kaon), np.full(3, dtype(-999.0)), np.full(2, dtype(1.2345678))])
    x = x[rng.permutation(x.size)]
    c = Mantissa(keepbits=6, keep_repeated=3)
    y = c.encode(x)
    repeated = (x == pion) | (x == kaon) | (x == dtype(-999.0))
    assert np.array_equal(y[repeated].view(np.uint8), x[repeated].view(np.uint8))
    # values seen fewer than 3 times are rounded like the plain codec does
    plain = Mantissa(keepbits=6).encode(x)
    assert np.array_equal(y[~repeated], plain[~repeated])
    assert (x == dtype(1.2345678)).sum() == 2 and np.all(y[x == dtype(1.2345678)] != dtype(1.2345678))
    assert np.all(np.abs(y - x) <= c.error_bound().value * np.abs(x))
    assert not np.array_equal(plain[x == pion], x[x == pion])  # without it the point mass moves
    # a block round trip carries the parameter
    from hepslim.block import decode_block, encode_block

    blk = encode_block(x, [c.get_config(), {"id": "bytestreamsplit"}, {"id": "zstd", "level": 3}])
    assert np.array_equal(decode_block(blk), y)


def test_keep_repeated_validation() -> None:
    for bad in (1, -2, 2.5, True):
        with pytest.raises(CodecParameterError, match="keep_repeated"):
            Mantissa(keepbits=7, keep_repeated=bad)
    assert Mantissa.from_config({"id": "mantissa", "keepbits": 7}).keep_repeated == 0  # older configs
    x = np.arange(10, dtype=np.float32) + 0.1
    assert np.array_equal(Mantissa(keepbits=4, keep_repeated=2).encode(x), Mantissa(keepbits=4).encode(x))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("count", [2, 3, 8])
def test_repeated_detection_is_exact(dtype: type, count: int) -> None:
    """The hash-count shortcut finds exactly the values np.unique counts >= ``count`` times."""
    from hepslim.codecs.mantissa import repeated_mask

    rng = np.random.default_rng(count)
    points = rng.normal(0, 100, 300).astype(dtype)
    x = np.concatenate([rng.normal(0, 100, 50_000).astype(dtype), np.repeat(points, rng.integers(1, 12, points.size))])
    u = x[rng.permutation(x.size)].view({2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize])
    _, inv, cnt = np.unique(u, return_inverse=True, return_counts=True)
    ref = (cnt >= count)[inv.reshape(-1)]
    got = repeated_mask(u, count)
    assert np.array_equal(ref, np.zeros_like(ref) if got is None else got)
