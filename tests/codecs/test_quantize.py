"""quantize: the declared bound is a guarantee (escapes), modes, range policies, format stability."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hepslim
from hepslim.codecs.quantize import Quantize, _dither, _parse
from hepslim.errors import CodecInputError, CodecParameterError, CorruptDataError, OutOfRangeError
from hepslim.testing import check_codec

FIXTURES = Path(__file__).parent / "fixtures"
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _periodic(d: np.ndarray) -> np.ndarray:
    d = np.remainder(np.abs(d), 2 * np.pi)
    return np.minimum(d, 2 * np.pi - d)


def assert_round_trip(codec: Quantize, x: np.ndarray) -> np.ndarray:
    """decode(encode(x)) has x's dtype and shape, keeps non-finite values bit for bit, meets the bound,
    and apply_values gives the very same bits. Returns the decoded array."""
    data = codec.encode(x)
    y = codec.decode(data)
    assert y.dtype == x.dtype and y.shape == x.shape
    ut = UINT[x.dtype.itemsize]
    xb = x.astype(x.dtype.newbyteorder("=")).reshape(-1)
    yb = y.astype(y.dtype.newbyteorder("=")).reshape(-1)
    fin = np.isfinite(xb)
    np.testing.assert_array_equal(yb[~fin].view(ut), xb[~fin].view(ut))  # NaN payloads, +-inf
    xf, yf = xb[fin].astype(np.float64), yb[fin].astype(np.float64)
    assert np.isfinite(yf).all()
    bound = codec.error_bound()
    if bound.kind == "abs":
        assert (np.abs(yf - xf) <= bound.value).all()
    elif bound.kind == "rel":
        assert (np.abs(yf - xf) <= bound.value * np.abs(xf)).all()
    else:
        assert (_periodic(yf - xf) <= bound.value).all()
    v = codec.apply_values(x)
    assert v.dtype == x.dtype
    np.testing.assert_array_equal(v.astype(v.dtype.newbyteorder("=")).reshape(-1).view(ut), yb.view(ut))
    return y


def _arrays(dtype: np.dtype, elements: st.SearchStrategy[float] | None = None) -> st.SearchStrategy[np.ndarray]:
    width = dtype.itemsize * 8
    fi = np.finfo(dtype)
    special = st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, float(fi.max), -float(fi.max),
                               float(fi.smallest_subnormal), float(fi.smallest_normal), math.pi, -math.pi])
    if elements is None:
        elements = st.floats(width=width, allow_nan=True, allow_infinity=True, allow_subnormal=True)
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=10),
                      elements=st.one_of(elements, special.map(lambda v: dtype.type(v))))


DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), np.dtype(">f4")]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_log_mode_any_values(dtype: np.dtype, data: st.DataObject) -> None:
    x = data.draw(_arrays(dtype))
    rel = data.draw(st.sampled_from([1e-1, 1e-3, 3e-5, 1e-7]))
    assert_round_trip(Quantize(mode="log", rel_error=rel, pack=data.draw(st.sampled_from(["bits", "bytes"]))), x)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_linear_mode_with_range_and_escapes(dtype: np.dtype, data: st.DataObject) -> None:
    x = data.draw(_arrays(dtype))
    ae = data.draw(st.sampled_from([1e-4, 0.01, 0.5, 7.0]))
    lo = data.draw(st.floats(-1e3, 1e3))
    codec = Quantize(abs_error=ae, min=lo, max=lo + data.draw(st.floats(1.0, 1e3)), out_of_range="escape",
                     dither=data.draw(st.booleans()), seed=data.draw(st.integers(0, 2**64 - 1)))
    assert_round_trip(codec, x)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_linear_mode_data_range(dtype: np.dtype, data: st.DataObject) -> None:
    fi = np.finfo(dtype)
    lim = float(fi.max) / 4
    x = data.draw(_arrays(dtype, st.floats(-lim, lim, width=dtype.itemsize * 8)))
    ae = data.draw(st.sampled_from([1e-3, 0.25, 1e3]))
    codec = Quantize(abs_error=ae)
    try:
        assert_round_trip(codec, x)
    except CodecInputError as exc:  # a range too wide for 52-bit codes is refused, never mangled
        assert "needs more than 52 bits" in str(exc)
        fin = x[np.isfinite(x)].astype(np.float64)  # float64: no overflow in the check itself
        with np.errstate(over="ignore"):
            assert (fin.max() - fin.min()) / ae > 2**51


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_angle_mode(dtype: np.dtype, data: st.DataObject) -> None:
    x = data.draw(_arrays(dtype, st.floats(-math.pi, math.pi)))
    ae = data.draw(st.sampled_from([3e-3, 1e-3, 1e-5, 0.3]))
    codec = Quantize(mode="angle", abs_error=ae, out_of_range="escape", dither=data.draw(st.booleans()),
                     seed=data.draw(st.integers(0, 1000)))
    y = assert_round_trip(codec, x)
    xf, yf = x.astype(np.float64), y.astype(np.float64)
    inside = np.isfinite(xf) & (np.abs(xf) <= math.pi)
    assert ((yf[inside] > -math.pi) & (yf[inside] <= math.pi)).all()


def test_angle_wraps_at_pi() -> None:
    for dt in (np.float32, np.float64):
        pi = dt(np.pi)  # float32(pi) is slightly above pi: accepted ("within float rounding")
        x = np.array([pi, -pi, np.pi - 1e-4, -np.pi + 1e-4, np.nextafter(pi, dt(0)), np.nextafter(-pi, dt(0)),
                      0.0, 1e-7], dtype=dt)
        codec = Quantize(mode="angle", abs_error=1e-3)
        y = assert_round_trip(codec, x).astype(np.float64)
        assert ((y > -np.pi) & (y <= np.pi)).all()
        assert _parse(codec.encode(x))[2].size == 0  # no escapes needed at the seam
        # both sides of the seam land on the same or neighbouring bins across it, not 2pi apart
        assert _periodic(y[2] - y[3]) <= 2e-4 + 2e-3
    # clip == wrap onto the circle for angles
    x = np.array([1.5 * np.pi, -2.5 * np.pi, 7 * np.pi + 0.1], np.float64)
    y = Quantize(mode="angle", abs_error=1e-3, out_of_range="clip").decode(
        Quantize(mode="angle", abs_error=1e-3, out_of_range="clip").encode(x))
    assert (_periodic(y - x) <= 1e-3).all()
    np.testing.assert_allclose(y, [-0.5 * np.pi, -0.5 * np.pi, -np.pi + 0.1], atol=1e-3)


def test_angle_out_of_range_error_by_default() -> None:
    x = np.array([0.1, 4.0, -3.5, 0.2], np.float32)
    with pytest.raises(OutOfRangeError, match=r"2 value\(s\) outside \(-pi, pi\], the first at flat index 1: 4\.0"):
        Quantize(mode="angle", abs_error=1e-3).encode(x)


def test_log_mode_zeros_negatives_exact() -> None:
    x = np.array([0.0, -0.0, 5.0, -5.0, 1e-30, -1e30, 3.4e38, -1.2e-38, 0.0], np.float32)
    codec = Quantize(mode="log", rel_error=1e-3)
    y = assert_round_trip(codec, x)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(x))
    np.testing.assert_array_equal(y.view(np.uint32)[[0, 1, 8]], x.view(np.uint32)[[0, 1, 8]])
    # all-positive data spends no sign bit
    pos = np.abs(np.random.default_rng(0).exponential(30, 1000)).astype(np.float32)
    signed = np.concatenate([pos, [-1.0]]).astype(np.float32)
    assert _parse(codec.encode(signed))[0].width == _parse(codec.encode(pos))[0].width + 1


def test_linear_out_of_range_policies() -> None:
    x = np.array([-1.0, 0.5, 12.0, 3.0, -7.5, np.nan, np.inf], np.float64)
    kw = dict(abs_error=0.01, min=-5.0, max=5.0)
    with pytest.raises(OutOfRangeError, match=r"2 value\(s\) outside \[-5\.0, 5\.0\], the first at flat index 2: 12\.0"):
        Quantize(**kw).encode(x)  # NaN/inf are escapes, not "out of range"
    esc = Quantize(**kw, out_of_range="escape")
    y = esc.decode(esc.encode(x))
    np.testing.assert_array_equal(y[[2, 4, 6]], x[[2, 4, 6]])
    assert np.isnan(y[5])
    assert (np.abs(y[[0, 1, 3]] - x[[0, 1, 3]]) <= 0.01).all()
    clip = Quantize(**kw, out_of_range="clip")
    y = clip.decode(clip.encode(x))
    assert (np.abs(y[[0, 1, 3]] - x[[0, 1, 3]]) <= 0.01).all()
    assert abs(y[2] - 5.0) <= 0.01 and abs(y[4] + 5.0) <= 0.01
    assert ((y[:5] >= -5.0) & (y[:5] <= 5.0)).all()  # decoded values never leave [min, max]
    # the range decides the width: [-5, 5] at 0.01 -> 500 bins -> 9 bits
    assert _parse(esc.encode(np.zeros(100)))[0].width == 9


def test_bound_holds_where_float_rounding_bites() -> None:
    """abs_error close to the float32 spacing: codes alone would miss the bound; escapes save it."""
    rng = np.random.default_rng(3)
    x = (1e6 + rng.uniform(0, 100, 100_000)).astype(np.float32)  # spacing 0.0625
    for ae in (0.03, 0.04, 0.05, 0.07, 0.1):
        assert_round_trip(Quantize(abs_error=ae), x)
        assert_round_trip(Quantize(abs_error=ae, min=1e6, max=1e6 + 100, dither=True, seed=5), x)
    big = np.array([3.3e38, 3.4e38, np.finfo(np.float32).max], np.float32)
    assert_round_trip(Quantize(mode="log", rel_error=1e-2), big)


def test_dither_seeded_and_decorrelated() -> None:
    rng = np.random.default_rng(11)
    x = rng.uniform(-np.pi, np.pi, 200_000).astype(np.float32)
    plain = Quantize(mode="angle", abs_error=1e-2)
    d1 = Quantize(mode="angle", abs_error=1e-2, dither=True, seed=1)
    d2 = Quantize(mode="angle", abs_error=1e-2, dither=True, seed=2)
    assert d1.encode(x) == Quantize.from_config(d1.get_config()).encode(x)  # deterministic
    y0, y1, y2 = (assert_round_trip(c, x) for c in (plain, d1, d2))
    assert np.unique(y0).size <= 316  # the grid of 2pi / (2 * 1e-2) bins
    assert np.unique(y1).size > 100_000  # dithered values are off the grid
    assert not np.array_equal(y1, y2)
    err = (y1.astype(np.float64) - x)
    assert abs(err.mean()) < 5 * err.std() / np.sqrt(err.size)


def test_dither_sequence_is_chunk_independent_and_uniform() -> None:
    whole = _dither(0, 300_000, seed=9)
    parts = np.concatenate([_dither(0, 1000, 9), _dither(1000, 130_000, 9), _dither(131_000, 169_000, 9)])
    np.testing.assert_array_equal(whole, parts)
    assert whole.min() >= -0.5 and whole.max() < 0.5
    assert abs(whole.mean()) < 0.01 and abs(whole.var() - 1 / 12) < 0.002
    assert not np.array_equal(whole[:65536], whole[65536:131072])  # no visible period
    assert not np.array_equal(whole[:1000], _dither(0, 1000, 10))


def test_pack_bytes_and_bits_decode_alike() -> None:
    x = np.random.default_rng(4).normal(0, 2, (37, 11)).astype(np.float32)
    a = Quantize(abs_error=1e-3, pack="bits")
    b = Quantize(abs_error=1e-3, pack="bytes")
    ea, eb = a.encode(x), b.encode(x)
    np.testing.assert_array_equal(a.decode(ea), b.decode(eb))
    w = _parse(ea)[0].width
    assert 9 < w <= 16 and len(eb) - len(ea) == x.size * 2 - (x.size * w + 7) // 8


@pytest.mark.parametrize("shape", [(0,), (3, 0), (), (1,), (2, 3, 4)])
def test_shapes(shape: tuple[int, ...]) -> None:
    x = np.full(shape, 1.25, np.float64)
    for codec in (Quantize(abs_error=0.1), Quantize(mode="log", rel_error=0.01),
                  Quantize(mode="angle", abs_error=0.01)):
        assert_round_trip(codec, x)


def test_big_endian_input_keeps_its_dtype() -> None:
    x = np.random.default_rng(2).normal(0, 1, 1000).astype(">f4")
    codec = Quantize(abs_error=1e-3)
    y = codec.decode(codec.encode(x))
    assert y.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(y, codec.decode(codec.encode(x.astype("<f4"))))


def test_corrupt_blocks_raise() -> None:
    data = Quantize(abs_error=1e-3).encode(np.linspace(0, 1, 100))
    for bad in (data[:-1], data[:10], b"XXXX" + data[4:], data + b"\0"):
        with pytest.raises(CorruptDataError):
            Quantize(abs_error=1e-3).decode(bad)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint16, np.bool_])
def test_integers_refused(dtype: type) -> None:
    with pytest.raises(CodecInputError, match="floats only"):
        Quantize(abs_error=1.0).encode(np.ones(5, dtype=dtype))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "cubic", "abs_error": 1}, "mode must be one of linear, log, angle"),
        ({"mode": "linear"}, "needs abs_error"),
        ({"abs_error": 0.0}, "abs_error must be > 0"),
        ({"abs_error": -1}, "abs_error must be > 0"),
        ({"abs_error": float("nan")}, "abs_error must be finite"),
        ({"mode": "log"}, "needs rel_error"),
        ({"mode": "log", "rel_error": 1.5}, r"rel_error must be in \(0, 1\)"),
        ({"mode": "log", "rel_error": 0.1, "abs_error": 1}, "takes rel_error, not abs_error"),
        ({"mode": "log", "rel_error": 0.1, "dither": True}, "dither is for modes"),
        ({"abs_error": 1, "rel_error": 0.1}, "takes abs_error, not rel_error"),
        ({"abs_error": 1, "min": 0}, "set both min and max"),
        ({"abs_error": 1, "min": 2, "max": 1}, "min must be < max"),
        ({"abs_error": 1e-30, "min": 0, "max": 1e30}, "needs more than 52 bits"),
        ({"mode": "angle", "abs_error": 0.1, "min": 0, "max": 1}, "fixed range"),
        ({"mode": "angle", "abs_error": 4.0}, "abs_error must be < pi"),
        ({"abs_error": 1, "out_of_range": "wrap"}, "out_of_range must be one of error, clip, escape"),
        ({"abs_error": 1, "pack": "nibbles"}, "pack must be one of bits, bytes"),
        ({"abs_error": 1, "dither": 1}, "dither must be true or false"),
        ({"abs_error": 1, "seed": -1}, "seed must be an integer"),
        ({"abs_error": "1"}, "abs_error must be a number"),
    ],
)
def test_parameter_validation_messages(kwargs: dict, match: str) -> None:
    with pytest.raises(CodecParameterError, match=match):
        Quantize(**kwargs)


CONFIGS = [
    {"id": "quantize", "mode": "linear", "abs_error": 0.01},
    {"id": "quantize", "mode": "linear", "abs_error": 0.5, "min": -5, "max": 5, "out_of_range": "clip",
     "pack": "bytes"},
    {"id": "quantize", "mode": "log", "rel_error": 1e-3},
    {"id": "quantize", "mode": "angle", "abs_error": 1e-3, "dither": True, "seed": 42, "out_of_range": "escape"},
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["mode"])
def test_config_json_round_trip(cfg: dict) -> None:
    codec = hepslim.get_codec(cfg)
    assert isinstance(codec, Quantize) and codec.family == "lossy"
    again = hepslim.get_codec(json.loads(json.dumps(codec.get_config())))
    assert again == codec and again.get_config() == codec.get_config()
    assert codec.error_bound().kind == {"linear": "abs", "log": "rel", "angle": "angle"}[cfg["mode"]]


@pytest.mark.parametrize("codec", [
    Quantize(mode="log", rel_error=1e-3),
    Quantize(mode="angle", abs_error=1e-3, out_of_range="escape", dither=True),
    Quantize(abs_error=1e-2, min=-10, max=200, out_of_range="escape"),
], ids=repr)
def test_conformance_suite(codec: Quantize) -> None:
    check_codec(codec)


def _nanoaod_float_leaves(path: str) -> dict[str, np.ndarray]:
    uproot = pytest.importorskip("uproot")
    ak = pytest.importorskip("awkward")
    arrays = uproot.open(path)["Events"].arrays(library="ak")
    out = {}
    for name in arrays.fields:
        a = arrays[name]
        a = ak.flatten(a) if a.ndim > 1 else a
        try:
            x = ak.to_numpy(a)
        except ValueError:
            continue
        if x.dtype.kind == "f":
            out[name] = x
    return out


def test_real_nanoaod_branches() -> None:
    """Every float leaf of a real NanoAOD file: phi in angle mode, everything else in log mode."""
    leaves = _nanoaod_float_leaves("/work/shared/data/nano_tt_v12.root")
    assert len(leaves) > 200
    raw = packed = escapes = 0
    for name, x in leaves.items():
        codec = Quantize(mode="angle", abs_error=1e-3) if name.endswith("_phi") else \
            Quantize(mode="log", rel_error=1e-3)
        data = codec.encode(x)  # NanoAOD phi stays within [-pi, pi]: no OutOfRangeError
        assert_round_trip(codec, x)
        n_esc = _parse(data)[2].size
        escapes += n_esc - int(np.count_nonzero(~np.isfinite(x)))
        raw, packed = raw + x.nbytes, packed + len(data)
    assert escapes == 0  # only non-finite values needed escapes
    assert packed < 0.6 * raw


def test_large_array() -> None:
    rng = np.random.default_rng(9)
    n = 10_000_000
    x = rng.exponential(30.0, n).astype(np.float32)
    x[rng.integers(0, n, 100)] = np.nan
    codec = Quantize(mode="log", rel_error=2e-3)
    data = codec.encode(x)
    y = codec.decode(data)
    fin = np.isfinite(x)
    assert (np.abs(y[fin].astype(np.float64) - x[fin]) <= 2e-3 * x[fin].astype(np.float64)).all()
    assert np.isnan(y[~fin]).all()
    assert len(data) < x.nbytes * 0.45  # ~12 bits per value instead of 32


@pytest.mark.parametrize("name", ["quantize_angle_f32_bits", "quantize_angle_dither_f32",
                                  "quantize_linear_escape_be_f4", "quantize_log_f64"])
def test_committed_fixtures(name: str) -> None:
    """Blocks written by earlier versions must keep decoding to the same values."""
    cfg = json.loads((FIXTURES / f"{name}.json").read_text())
    codec = hepslim.get_codec(cfg)
    data = (FIXTURES / f"{name}.bin").read_bytes()
    expected = np.load(FIXTURES / f"{name}.decoded.npy")
    x = np.load(FIXTURES / f"{name}.input.npy")
    y = codec.decode(data)
    assert y.dtype == expected.dtype and y.shape == expected.shape
    ut = UINT[y.dtype.itemsize]
    np.testing.assert_array_equal(y.view(ut), expected.view(ut))
    # and they still meet the bound against the original input
    fin = np.isfinite(x)
    xf, yf = x[fin].astype(np.float64), y[fin].astype(np.float64)
    b = codec.error_bound()
    tol = b.value * np.abs(xf) if b.kind == "rel" else b.value
    d = _periodic(yf - xf) if b.kind == "angle" else np.abs(yf - xf)
    assert (d <= tol).all()
