"""autoencoder: the declared bound is a guarantee, decode needs numpy only (exact fixed-point decoder),
encode is deterministic, the bytes are checked, and on correlated features it beats per-column quantize."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hepslim
from hepslim.block import decode_block, encode_block
from hepslim.codecs.autoencoder import _A_MAX, _W_MAX, Autoencoder, _forward, _parse
from hepslim.codecs.quantize import Quantize
from hepslim.errors import CodecInputError, CodecParameterError, CorruptDataError, MissingDependencyError
from hepslim.testing import check_codec, check_config_roundtrip

pytest.importorskip("torch")  # encoding needs the 'ml' extra; decoding does not (tested below)

FIXTURES = Path(__file__).parent / "fixtures"
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}
FAST = {"hidden": 8, "epochs": 2}
NET = {"latent": 1, "hidden": 8, "epochs": 20}  # on `correlated` data: the network is kept


def jets(n: int, seed: int = 0, dtype: type = np.float32) -> np.ndarray:
    """(pt, eta, phi, mass, energy)-like rows with the physical correlations (E from pt, eta, mass)."""
    rng = np.random.default_rng(seed)
    pt = 20 + rng.exponential(40, n)
    eta = rng.normal(0, 1.5, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    mass = pt * rng.uniform(0.05, 0.2, n)
    energy = np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)
    return np.stack([pt, eta, phi, mass, energy], axis=1).astype(dtype)


def correlated(n: int, seed: int = 0) -> np.ndarray:
    """Five features driven by one hidden variable: a network (``NET``) pays for its weights here."""
    t = np.random.default_rng(seed).normal(size=(n, 1))
    return np.hstack([t, 2 * t + 1, -0.5 * t, 3 * t - 2, np.abs(t)]).astype(np.float32)


def with_specials(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[3, 1], x[7, 0], x[11, 2], x[12] = np.nan, np.inf, -np.inf, np.nan  # a whole NaN row too
    x[20, 3], x[21, 3] = 0.0, -0.0
    x[30, 0] = np.finfo(x.dtype).max / 4  # far outside what the net predicts: an escape
    x[31, 1] = np.finfo(x.dtype).smallest_subnormal
    return x


def assert_within(codec: Autoencoder, x: np.ndarray, data: bytes | None = None) -> np.ndarray:
    """Same dtype/shape, non-finite values bit for bit, finite ones within the bound (per feature for a
    list of abs_error). Returns the decoded array."""
    data = codec.encode(x) if data is None else data
    y = codec.decode(data)
    assert y.dtype == x.dtype and y.shape == x.shape
    ut = UINT[x.dtype.itemsize]
    xb = x.astype(x.dtype.newbyteorder("=")).reshape(-1)
    yb = y.astype(y.dtype.newbyteorder("=")).reshape(-1)
    fin = np.isfinite(xb)
    np.testing.assert_array_equal(yb[~fin].view(ut), xb[~fin].view(ut))
    assert np.isfinite(yb[fin]).all()
    xf, yf = xb.astype(np.float64), yb.astype(np.float64)
    with np.errstate(invalid="ignore"):
        d = np.abs(yf - xf)
    if codec.rel_error is not None:
        tol = codec.rel_error * np.abs(xf)
    else:
        ae = np.asarray(codec.abs_error, np.float64)
        tol = np.broadcast_to(ae, x.shape).reshape(-1) if ae.ndim else np.full(x.size, float(ae))
    assert (d[fin] <= tol[fin]).all(), f"worst excess {np.max(d[fin] - tol[fin])}"
    return y


# ---- round trips ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_abs_bound_with_nan_inf_and_correlated_features(dtype):
    x = with_specials(jets(3000, dtype=dtype))
    assert_within(Autoencoder(abs_error=1e-3, latent=3, **FAST), x)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_rel_bound_zeros_and_signs_exact(dtype):
    x = with_specials(jets(2000, seed=1, dtype=dtype))
    x[:, 1] = np.where(np.abs(x[:, 1]) < 0.05, 0, x[:, 1])  # signed feature with exact zeros
    codec = Autoencoder(rel_error=2e-3 if dtype == np.float16 else 1e-4, latent=3, **FAST)
    y = assert_within(codec, x)
    zero = x == 0
    np.testing.assert_array_equal(np.signbit(y[zero]), np.signbit(x[zero]))  # -0.0 stays -0.0
    assert np.array_equal(np.sign(y[np.isfinite(x)]), np.sign(x[np.isfinite(x)]))


def test_per_feature_abs_error():
    x = jets(2000, seed=2)
    bounds = [0.05, 1e-3, 1e-3, 0.05, 0.1]
    codec = Autoencoder(abs_error=bounds, latent=3, **FAST)
    assert codec.error_bound() == hepslim.abc.ErrorBound("abs", 0.1)
    assert_within(codec, x)
    with pytest.raises(CodecInputError, match="5 values but the array has 4 features"):
        codec.encode(x[:, :4])


@pytest.mark.parametrize("shape", [(0,), (0, 4), (3, 0), (1,), (1, 5), (2, 3, 4), (257,), ()])
def test_shapes_and_empty(shape):
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape).astype(np.float32)
    codec = Autoencoder(abs_error=1e-2, **FAST)
    assert_within(codec, x)


def test_rare_outliers_are_patched_not_widening_every_code():
    x = jets(4000, seed=15)
    x[::500, 1] += 300.0  # 8 far outliers in eta: codes ~ 2**18, the rest ~ 2**10
    codec = Autoencoder(abs_error=1e-3, **FAST)
    data = codec.encode(x)
    lay = _parse(data)[0]
    assert lay.n_over[1] >= 8 and lay.width[1] < lay.owidth[1]
    assert_within(codec, x, data)


def test_the_network_must_pay_for_its_weights():
    """A small block (or one without redundancy) is stored without a network: no worse than per-column
    codes plus a small header; a large correlated one keeps its network."""
    x = jets(60, seed=17)
    codec = Autoencoder(abs_error=1e-3, **FAST)
    data = codec.encode(x)
    lay = _parse(data)[0]
    assert lay.latent == 0 and lay.layers == ()
    assert_within(codec, x, data)
    q = sum(len(Quantize(abs_error=1e-3).encode(np.ascontiguousarray(x[:, j]))) for j in range(5))
    assert len(data) < q + 200
    assert _parse(Autoencoder(abs_error=1e-3, **NET).encode(correlated(2000, seed=17)))[0].latent == 1


def test_big_endian_input_keeps_its_dtype():
    x = jets(500, seed=4).astype(">f4")
    y = assert_within(Autoencoder(abs_error=1e-3, **FAST), x)
    assert y.dtype == np.dtype(">f4")


def test_constant_and_all_nonfinite_columns():
    x = np.zeros((300, 3), np.float64)
    x[:, 1] = 7.25
    x[:, 2] = np.nan
    assert_within(Autoencoder(abs_error=1e-6, **FAST), x)
    assert_within(Autoencoder(rel_error=1e-6, **FAST), x)


@settings(max_examples=12, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, max_side=40),
                  elements=st.floats(width=32, allow_nan=True, allow_infinity=True)),
       st.sampled_from([1e-4, 0.5]), st.booleans())
def test_bound_property(x, err, rel):
    codec = Autoencoder(rel_error=err, hidden=4, epochs=1) if rel else Autoencoder(abs_error=err, hidden=4,
                                                                                 epochs=1)
    assert_within(codec, x)


# ---- numpy-only, exact, deterministic ------------------------------------------------------------------
def test_decode_works_without_torch(monkeypatch):
    x = with_specials(jets(1000, seed=5))
    codec = Autoencoder(abs_error=1e-3, **FAST)
    data = codec.encode(x)
    expected = codec.decode(data)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    got = codec.decode(data)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    blk = encode_block(x[:0], [codec.get_config()])  # empty: no training, no torch
    assert decode_block(blk).shape == (0, 5)
    with pytest.raises(MissingDependencyError, match=r"hepslim\[ml\]"):
        codec.encode(x)


def test_encode_is_deterministic_for_a_seed():
    x = correlated(2000, seed=6)
    a = Autoencoder(abs_error=1e-3, seed=11, **NET)
    assert a.encode(x) == a.encode(x)
    assert _parse(a.encode(x))[0].latent == 1
    b = Autoencoder(abs_error=1e-3, seed=12, **NET)
    assert b.encode(x) != a.encode(x)  # another initialisation, another (valid) encoding
    assert_within(b, x)


def test_torch_settings_and_rng_are_left_as_found():
    import torch

    x = jets(800, seed=16)
    codec = Autoencoder(abs_error=1e-3, **FAST)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        state = torch.random.get_rng_state()
        a = codec.encode(x)
        assert torch.get_num_threads() == 2 and not torch.are_deterministic_algorithms_enabled()
        assert torch.equal(torch.random.get_rng_state(), state)
        torch.set_num_threads(1)
        assert codec.encode(x) == a  # the caller's thread count does not change the bytes
    finally:
        torch.set_num_threads(threads)


def test_decoder_arithmetic_is_exact():
    """On its fixed-point grid the decoder's float64 matmul is exact: any summation order (here: BLAS,
    reversed term by term, and exact rational arithmetic via math.fsum) gives the same bits."""
    import math

    rng = np.random.default_rng(7)
    h = 256  # the widest layer allowed
    g = 2.0**14
    layers = [(np.rint(rng.uniform(-_W_MAX, _W_MAX, (a, b)) * g) / g, np.rint(rng.normal(0, 4, b) * g) / g)
              for a, b in ((3, h), (h, h), (h, 5))]
    z = np.rint(rng.uniform(-_A_MAX, _A_MAX, (64, 3)) * g) / g
    out = _forward(z, layers)
    a = z
    for i, (w, b) in enumerate(layers):
        rev = np.full((a.shape[0], w.shape[1]), 0.0) + b
        for k in reversed(range(w.shape[0])):
            rev += a[:, k : k + 1] * w[k]
        exact = np.array([[math.fsum([*(a[r] * w[:, c]), b[c]]) for c in range(w.shape[1])]
                          for r in range(3)])
        np.testing.assert_array_equal(rev[:3], exact)
        a = np.minimum(np.rint(np.maximum(rev, 0) * g), _A_MAX * g) / g if i < 2 else rev
    np.testing.assert_array_equal(out, a)


def test_stored_bytes_decode_bit_exactly():
    """Committed fixture: bytes written by this codec must keep decoding to the very same values."""
    data = (FIXTURES / "autoencoder_abs_f32.bin").read_bytes()
    assert _parse(data)[0].latent == 1
    x = np.load(FIXTURES / "autoencoder_abs_f32.input.npy")
    want = np.load(FIXTURES / "autoencoder_abs_f32.decoded.npy")
    cfg = json.loads((FIXTURES / "autoencoder_abs_f32.json").read_text())
    codec = hepslim.get_codec(cfg)
    y = codec.decode(data)
    np.testing.assert_array_equal(y.view(np.uint32), want.view(np.uint32))
    assert_within(codec, x, data)


# ---- config, registry, pipeline, conformance ---------------------------------------------------------------
def test_config_json_round_trip_through_the_registry():
    for codec in (Autoencoder(abs_error=[0.1, 0.01], latent=1, hidden=16, epochs=3, seed=5),
                  Autoencoder(rel_error=1e-3, standardize=False, latent_bits=10, max_rows_train=1000,
                              target="packed")):
        cfg = json.loads(json.dumps(codec.get_config()))
        assert hepslim.get_codec(cfg) == codec
        check_config_roundtrip(codec)
    assert Autoencoder(abs_error=[0.1, 0.01]).get_config()["abs_error"] == [0.1, 0.01]
    assert Autoencoder.family == "learned" and not Autoencoder(abs_error=1).lossless


def test_in_a_checked_block_with_zstd():
    x = with_specials(jets(1500, seed=8))
    cfgs = [{"id": "autoencoder", "abs_error": 1e-3, **FAST}, {"id": "zstd", "level": 3}]
    y = decode_block(encode_block(x, cfgs))
    assert y.dtype == x.dtype and y.shape == x.shape
    fin = np.isfinite(x)
    d = np.abs(y[fin].astype(np.float64) - x[fin])
    assert (d <= 1e-3).all() and np.array_equal(np.isnan(y), np.isnan(x))


@pytest.mark.parametrize("codec", [Autoencoder(abs_error=1e-3, latent=1, **FAST),
                                   Autoencoder(rel_error=1e-3, latent=1, **FAST)], ids=["abs", "rel"])
def test_conformance(codec):
    check_codec(codec)  # sample arrays of every float dtype, special values, rejected dtypes
    check_codec(codec, [jets(400, seed=9), with_specials(jets(400, seed=10, dtype=np.float64))])


# ---- it learns -----------------------------------------------------------------------------------------
def test_beats_per_column_quantize_on_strongly_correlated_features():
    """Five features driven by one hidden variable: latent + narrow residuals beat 5 full-range codes."""
    x = correlated(20000, seed=12)
    ae = Autoencoder(abs_error=1e-3, latent=1, hidden=16, epochs=8).encode(x)
    q = sum(len(Quantize(abs_error=1e-3).encode(np.ascontiguousarray(x[:, j]))) for j in range(5))
    assert len(ae) < 0.8 * q, (len(ae), q)


# ---- corruption and parameters ------------------------------------------------------------------------
def test_corrupt_bytes_are_refused():
    x = correlated(2000, seed=13)
    codec = Autoencoder(abs_error=1e-3, **NET)
    data = codec.encode(x)
    for cut in (0, 3, 10, 40, 200, len(data) // 2, len(data) - 1):
        with pytest.raises(CorruptDataError):
            codec.decode(data[:cut])
    with pytest.raises(CorruptDataError, match="bad magic"):
        _parse(b"XXXX" + data[4:])
    with pytest.raises(CorruptDataError):
        _parse(data + b"\0")
    with pytest.raises(CorruptDataError, match="version"):
        _parse(data[:4] + bytes([99]) + data[5:])
    lay = _parse(data)[0]
    assert lay.layers
    # a decoder weight off the fixed-point grid would break the exactness guarantee: refused
    pos = data.index(np.float32(lay.layers[0][0][0, 0]).tobytes())
    bad = data[:pos] + np.float32(lay.layers[0][0][0, 0] + 2.0**-20).tobytes() + data[pos + 4 :]
    with pytest.raises(CorruptDataError, match="grid"):
        _parse(bad)


@pytest.mark.parametrize("kwargs, match", [
    ({}, "exactly one of abs_error and rel_error"),
    ({"abs_error": 1e-3, "rel_error": 1e-3}, "exactly one"),
    ({"abs_error": 0}, "abs_error must be > 0"),
    ({"abs_error": [1e-3, -1]}, "abs_error must be > 0"),
    ({"abs_error": []}, "empty"),
    ({"abs_error": float("nan")}, "finite"),
    ({"abs_error": "0.1"}, "number"),
    ({"rel_error": 1.0}, r"rel_error must be in \(0, 1\)"),
    ({"abs_error": 1, "latent": 0}, "latent must be an integer in 1..256"),
    ({"abs_error": 1, "hidden": 257}, "hidden must be an integer in 1..256"),
    ({"abs_error": 1, "epochs": -1}, "epochs"),
    ({"abs_error": 1, "seed": True}, "seed"),
    ({"abs_error": 1, "max_rows_train": 0}, "max_rows_train"),
    ({"abs_error": 1, "latent_bits": 25}, "latent_bits must be an integer in 1..24"),
    ({"abs_error": 1, "standardize": "yes"}, "standardize must be true or false"),
    ({"abs_error": 1, "target": "lz4"}, "target must be zstd or packed"),
])
def test_parameter_validation(kwargs, match):
    with pytest.raises(CodecParameterError, match=match):
        Autoencoder(**kwargs)


def test_integers_are_refused():
    with pytest.raises(CodecInputError, match="floats only"):
        Autoencoder(abs_error=1).encode(np.arange(10, dtype=np.int32))


def _make_fixture() -> None:  # python tests/codecs/test_autoencoder.py: (re)writes the committed fixture
    x = with_specials(correlated(2000, seed=14))
    codec = Autoencoder(abs_error=1e-3, seed=1, **NET)
    data = codec.encode(x)
    assert _parse(data)[0].latent == 1  # the fixture exercises the network path
    (FIXTURES / "autoencoder_abs_f32.bin").write_bytes(data)
    np.save(FIXTURES / "autoencoder_abs_f32.input.npy", x)
    np.save(FIXTURES / "autoencoder_abs_f32.decoded.npy", codec.decode(data))
    (FIXTURES / "autoencoder_abs_f32.json").write_text(json.dumps(codec.get_config()) + "\n")


if __name__ == "__main__":
    _make_fixture()
