"""Shared helpers for the format tests: the shared ROOT files and their contents read independently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
LOSSY_SPEC = Path(__file__).with_name("lossy_test.yaml")

ROOT_FILES = sorted(p.name for p in DATA.glob("*.root")) if DATA.is_dir() else []
HZZ = "uproot-HZZ.root"
NANO = "nano_tt_v12.root"
RNTUPLE = "cmsopendata2015_ttbar_19980_NANOAOD_RNTupleImporter_rntuple_v1-0-0-1.root"
COMBOS = [("root", "transparent"), ("parquet", "transparent"), ("parquet", "packed"),
          ("zarr", "transparent"), ("zarr", "packed")]
EXT = {"root": ".root", "parquet": ".parquet", "zarr": ".zarr"}


def data_file(name: str) -> Path:
    p = DATA / name
    if not p.is_file():
        pytest.skip(f"shared test file {name} not available")
    return p


_ORIGINALS: dict[str, object] = {}


def original(name: str):
    """The events of a shared file, read with uproot directly (not through hepslim)."""
    import uproot

    if name not in _ORIGINALS:
        f = uproot.open(data_file(name))
        key = "Events" if "Events" in {k.split(";")[0] for k in f.keys()} else "events"
        obj = f[key]
        arr = obj.arrays()
        if "RNTuple" in type(obj).__name__:
            arr = arr[[k for k in arr.fields if not k.startswith("_collection")]]
        _ORIGINALS[name] = arr
    return _ORIGINALS[name]


def flat(x) -> np.ndarray:
    import awkward as ak

    return np.asarray(ak.flatten(x, axis=None))


def assert_same_bits(a: np.ndarray, b: np.ndarray, name: str) -> None:
    assert a.dtype == b.dtype, f"{name}: dtype {a.dtype} != {b.dtype}"
    assert a.shape == b.shape, f"{name}: shape {a.shape} != {b.shape}"
    assert np.array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8)), \
        f"{name}: not bit-exact"


def within_bound(x: np.ndarray, y: np.ndarray, bound: dict) -> bool:
    """Independent check of a declared error bound (NaN/inf must be kept exactly)."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    fin = np.isfinite(x)
    if not np.array_equal(x[~fin], y[~fin], equal_nan=True):
        return False
    x, y = x[fin], y[fin]
    kind, v = bound["kind"], float(bound["value"])
    if kind == "abs":
        return bool(np.all(np.abs(y - x) <= v))
    if kind == "rel":
        return bool(np.all(np.abs(y - x) <= v * np.abs(x)))
    d = np.abs(y - x) % (2 * np.pi)
    return bool(np.all(np.minimum(d, 2 * np.pi - d) <= v * (1 + 1e-12)))


def check_roundtrip(orig, back, meta: dict) -> dict[str, int]:
    """Every guarantee of item 7 on one file: names, order, structure, exact ints, bounds on floats."""
    import awkward as ak

    dropped = set(meta.get("dropped", []))
    expected = [f for f in orig.fields if f not in dropped]
    assert back.fields == expected
    assert len(back) == len(orig)
    counts = {"exact": 0, "lossy": 0}
    for name in expected:
        a, b = orig[name], back[name]
        assert str(a.type) == str(b.type), f"{name}: type {a.type} != {b.type}"
        if a.ndim > 1:
            assert np.array_equal(np.asarray(ak.num(a, axis=1)), np.asarray(ak.num(b, axis=1))), name
        x, y = flat(a), flat(b)
        rec = meta["branches"].get(name)
        if rec is None:  # derived: checked by its own test
            continue
        if x.dtype.kind in "biu" or rec["lossless"]:
            assert rec["lossless"], f"{name}: an integer/boolean branch got a lossy pipeline"
            assert_same_bits(x, y, name)
            counts["exact"] += 1
        else:
            assert within_bound(x, y, rec["error_bound"]), f"{name}: outside {rec['error_bound']}"
            counts["lossy"] += 1
    return counts
