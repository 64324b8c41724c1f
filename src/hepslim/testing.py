"""Conformance checks for codec authors: the checks hepslim runs on its own codecs, importable.

A third-party package tests its codec with one call::

    from hepslim.testing import check_codec
    def test_my_codec():
        check_codec(MyCodec(param=3))

or subclasses :class:`CodecConformance` in a pytest module (``codec`` is the instance under test)::

    class TestMyCodec(CodecConformance):
        codec = MyCodec(param=3)

Every check raises ``AssertionError`` with a message that says which property failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from hepslim.abc import ArrayArrayCodec, ArrayBytesCodec, BytesBytesCodec, Codec, ErrorBound

_ALL_DTYPES = ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?", ">f4", ">i4")


def sample_arrays(dtype: np.dtype | str, seed: int = 0) -> list[np.ndarray]:
    """Arrays that stress a codec: empty, one element, special values, extremes, multi-dim, random."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = [np.zeros(0, dt), np.ones(1, dt), np.zeros((3, 0), dt)]
    if dt.kind == "f":
        fi = np.finfo(dt)
        special = np.array(
            [0.0, -0.0, np.inf, -np.inf, np.nan, fi.max, -fi.max, fi.tiny, fi.smallest_subnormal,
             -fi.smallest_subnormal, 1.0, -1.0, np.pi, 1e-3, 123.456],
            dtype=dt,
        )
        out += [special, rng.standard_normal(1000).astype(dt),
                rng.exponential(30.0, (20, 50)).astype(dt), rng.uniform(-np.pi, np.pi, 999).astype(dt)]
    elif dt.kind in "iu":
        ii = np.iinfo(dt)
        out += [np.array([ii.min, ii.max, 0, 1, ii.max - 1], dtype=dt),
                rng.integers(ii.min, ii.max, 1000, dtype=dt.newbyteorder("="), endpoint=True).astype(dt),
                np.cumsum(rng.integers(0, 4, 500)).astype(dt), rng.integers(0, 3, (10, 10)).astype(dt)]
    elif dt.kind == "b":
        out += [rng.integers(0, 2, 777).astype(bool), np.ones(64, bool)]
    return out


def check_config_roundtrip(codec: Codec) -> None:
    """``get_config`` is JSON-serialisable and ``from_config``/the registry rebuild an equal codec."""
    cfg = codec.get_config()
    assert cfg.get("id") == codec.codec_id, f"get_config() must start with id={codec.codec_id!r}: {cfg}"
    text = json.dumps(cfg)
    again = type(codec).from_config(json.loads(text))
    assert again == codec, f"from_config(get_config()) gave {again!r}, not {codec!r}"
    assert again.get_config() == cfg, "config changed after a round trip"
    try:
        from hepslim.registry import get_codec

        registered = get_codec(json.loads(text))
    except KeyError:
        return  # not registered (yet): from_config is enough
    assert registered == codec, f"get_codec({cfg}) gave {registered!r}"


def _within(codec: Codec, x: np.ndarray, y: np.ndarray, bound: ErrorBound | None) -> None:
    assert y.shape == x.shape, f"{codec!r}: shape {x.shape} came back as {y.shape}"
    if bound is None:
        assert y.dtype == x.dtype or y.dtype == x.dtype.newbyteorder("="), (
            f"{codec!r}: dtype {x.dtype} came back as {y.dtype}"
        )
        xb = np.ascontiguousarray(x.astype(x.dtype.newbyteorder("="), copy=False)).view(np.uint8)
        yb = np.ascontiguousarray(y.astype(x.dtype.newbyteorder("="), copy=False)).view(np.uint8)
        assert np.array_equal(xb, yb), f"{codec!r} is declared lossless but did not round-trip bit-exactly"
        return
    xf, yf = x.astype(np.float64), y.astype(np.float64)
    fin = np.isfinite(xf)
    assert np.array_equal(np.isnan(xf), np.isnan(yf)), f"{codec!r}: NaNs not preserved"
    assert np.array_equal(xf[np.isinf(xf)], yf[np.isinf(xf)]), f"{codec!r}: infinities not preserved"
    assert np.all(np.isfinite(yf[fin])), f"{codec!r}: a finite value became non-finite"
    d = np.abs(yf[fin] - xf[fin])
    if bound.kind == "angle":
        d = np.minimum(d, 2 * np.pi - d)
        tol: float | np.ndarray = bound.value
    elif bound.kind == "rel":
        tol = bound.value * np.abs(xf[fin])
    else:
        tol = bound.value
    bad = d > tol
    assert not np.any(bad), (
        f"{codec!r}: {int(bad.sum())} value(s) exceed the declared bound {bound}; worst "
        f"x={xf[fin][bad][0]!r} -> {yf[fin][bad][0]!r}"
    )


def roundtrip(codec: Any, x: np.ndarray) -> np.ndarray:
    """encode then decode with a stage of any kind (bytes->bytes codecs see the array's bytes)."""
    if isinstance(codec, BytesBytesCodec):
        raw = np.ascontiguousarray(x).tobytes()
        enc = codec.encode(x)
        assert isinstance(enc, bytes), f"{codec!r}.encode must return bytes"
        back = codec.decode(enc)
        assert bytes(back) == raw, f"{codec!r} did not give back the same bytes"
        assert bytes(codec.decode(codec.encode(memoryview(raw)))) == raw, "memoryview input"
        assert bytes(codec.decode(codec.encode(bytearray(raw)))) == raw, "bytearray input"
        return x
    enc = codec.encode(x)
    if isinstance(codec, ArrayBytesCodec):
        assert isinstance(enc, bytes), f"{codec!r}.encode must return bytes, got {type(enc).__name__}"
    elif isinstance(codec, ArrayArrayCodec):
        assert isinstance(enc, np.ndarray), f"{codec!r}.encode must return an ndarray"
    return np.asarray(codec.decode(enc))


def check_roundtrip(codec: Codec, arrays: Iterable[np.ndarray] | None = None) -> None:
    """``decode(encode(x))`` is bit-exact (lossless) or within ``error_bound()`` for accepted dtypes."""
    bound = codec.error_bound()
    assert (bound is None) == codec.lossless, f"{codec!r}: lossless codecs declare no bound, lossy ones must"
    if arrays is None:
        arrays = [a for dt in _ALL_DTYPES if codec.accepts(np.dtype(dt)) for a in sample_arrays(dt)]
    n = 0
    for x in arrays:
        if not codec.accepts(x.dtype):
            continue
        _within(codec, x, roundtrip(codec, x), bound)
        n += 1
    assert n > 0, f"{codec!r} accepted none of the sample arrays"


def check_rejects(codec: Any) -> None:
    """Dtypes a codec does not accept raise a hepslim error instead of giving silently wrong values."""
    from hepslim.errors import HepslimError

    if isinstance(codec, BytesBytesCodec):
        return
    for dt in _ALL_DTYPES:
        if codec.accepts(np.dtype(dt)):
            continue
        try:
            codec.encode(np.ones(4, dtype=dt))
        except HepslimError:
            continue
        raise AssertionError(f"{codec!r} says it does not accept {dt} but encoded it without an error")


def check_codec(codec: Codec, arrays: Iterable[np.ndarray] | None = None) -> None:
    """All conformance checks for one codec instance."""
    assert isinstance(codec, Codec), f"{codec!r} is not a hepslim Codec"
    check_config_roundtrip(codec)
    check_roundtrip(codec, arrays)
    check_rejects(codec)


class CodecConformance:
    """Subclass in a pytest module and set ``codec``; pytest collects one test per property."""

    codec: Any = None

    def test_config_roundtrip(self) -> None:
        check_config_roundtrip(self.codec)

    def test_roundtrip(self) -> None:
        check_roundtrip(self.codec)

    def test_rejects_unsupported_dtypes(self) -> None:
        check_rejects(self.codec)
