"""Pipeline: order checks once, serializer filled in, bounds compose, transparent values."""

from __future__ import annotations

import numpy as np
import pytest

import hepslim
from hepslim.abc import ErrorBound
from hepslim.pipeline import Pipeline


def test_order_is_checked():
    with pytest.raises(hepslim.PipelineError, match="ordered"):
        Pipeline.from_configs([{"id": "zstd"}, {"id": "mantissa", "keepbits": 5}])
    with pytest.raises(hepslim.PipelineError, match="exactly one"):
        Pipeline.from_configs([{"id": "raw"}, {"id": "bitpack"}])


def test_missing_serializer_is_raw_or_given():
    p = Pipeline.from_configs([{"id": "delta"}, {"id": "zstd"}])
    assert [c["id"] for c in p.get_config()] == ["delta", "raw", "zstd"]
    p = Pipeline.from_configs([{"id": "delta"}], serializer={"id": "bitpack"})
    assert [c["id"] for c in p.get_config()] == ["delta", "bitpack"]


def test_lossless_and_bounds():
    assert Pipeline.from_configs(["zstd"]).lossless
    assert Pipeline.from_configs(["zstd"]).error_bound() is None
    p = Pipeline.from_configs([{"id": "mantissa", "keepbits": 7}, "zstd"])
    assert not p.lossless
    assert p.error_bound() == ErrorBound("rel", 2.0**-8)


def test_lossy_pipeline_refuses_integers():
    p = Pipeline.from_configs([{"id": "mantissa", "keepbits": 7}, "zstd"])
    with pytest.raises(hepslim.CodecInputError, match="floats only"):
        p.encode(np.arange(10, dtype=np.int32))


def test_apply_values_keeps_dtype_and_matches_decode():
    x = np.random.default_rng(0).normal(size=1000).astype(">f4")
    p = Pipeline.from_configs([{"id": "mantissa", "keepbits": 6}, "bytestreamsplit", "zstd"])
    v = p.apply_values(x)
    assert v.dtype == np.dtype("f4")
    assert np.array_equal(v, p.decode(p.encode(x)))
    assert np.all(np.abs(v - x) <= 2.0**-7 * np.abs(x))


def test_repr_and_config_roundtrip():
    p = Pipeline.from_configs([{"id": "delta"}, "bitpack", {"id": "zstd", "level": 9}])
    assert Pipeline.from_configs(p.get_config()) == p
    assert "Delta" in repr(p)
