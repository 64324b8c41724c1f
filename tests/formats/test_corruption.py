"""Damaged containers raise CorruptDataError: a flipped byte never turns into wrong values."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import hepslim
from hepslim.errors import CorruptDataError

from formats_helpers import EXT, HZZ, LOSSY_SPEC, data_file


def _flip(path, pos: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(pos)
        b = fh.read(1)
        fh.seek(pos)
        fh.write(bytes([b[0] ^ 0x5A]))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    d = tmp_path_factory.mktemp("corrupt")
    out = {}
    for fmt, mode in [("root", "transparent"), ("parquet", "transparent"), ("parquet", "packed"),
                      ("zarr", "transparent"), ("zarr", "packed")]:
        p = d / f"hzz_{mode}{EXT[fmt]}"
        hepslim.compress(data_file(HZZ), p, spec=LOSSY_SPEC, format=fmt, mode=mode, step_size=1000)
        out[(fmt, mode)] = p
    return out


def _copy(src, dst):
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
    return dst


def test_root_basket_flips(written, tmp_path):
    """A flipped byte in any basket payload of any branch (three chunks each) is detected."""
    import uproot

    src = written[("root", "transparent")]
    t = uproot.open(src)["events"]
    rng = np.random.default_rng(1)
    names = [b.name for b in t.branches]
    for name in rng.choice(names, size=8, replace=False):
        br = t[name]
        seeks = br.member("fBasketSeek")[: br.num_baskets]
        sizes = br.member("fBasketBytes")[: br.num_baskets]
        k = int(rng.integers(len(seeks)))
        bad = _copy(src, tmp_path / f"bad_{name}.root")
        _flip(bad, int(seeks[k]) + int(sizes[k]) - 1 - int(rng.integers(max(1, min(4, int(sizes[k]) - 80)))))
        with pytest.raises(CorruptDataError):
            hepslim.open(bad, [str(name)])


def test_root_metadata_flip(written, tmp_path):
    import uproot

    src = written[("root", "transparent")]
    key = uproot.open(src).key("hepslim")
    bad = _copy(src, tmp_path / "badmeta.root")
    _flip(bad, int(key.fSeekKey) + int(key.fKeylen) + (int(key.fNbytes) - int(key.fKeylen)) // 2)
    with pytest.raises(CorruptDataError):
        hepslim.open(bad)


@pytest.mark.parametrize("mode", ["transparent", "packed"])
def test_parquet_column_flip(written, tmp_path, mode):
    import pyarrow.parquet as pq

    src = written[("parquet", mode)]
    md = pq.ParquetFile(src).metadata
    rg = md.row_group(1)
    for j in range(rg.num_columns):
        col = rg.column(j)
        if col.path_in_schema.startswith("Muon_Px"):
            break
    bad = _copy(src, tmp_path / "bad.parquet")
    _flip(bad, int(col.data_page_offset) + int(col.total_compressed_size) // 2)
    with pytest.raises(CorruptDataError):
        hepslim.open(bad, ["Muon_Px"])
    assert len(hepslim.open(bad, ["Jet_Px"])) == 2421  # other columns are untouched and still readable


@pytest.mark.parametrize("mode", ["transparent", "packed"])
def test_zarr_chunk_flip(written, tmp_path, mode):
    src = written[("zarr", mode)]
    bad = _copy(src, tmp_path / "bad.zarr")
    chunk = next(p for p in (bad / "Muon_Px-data").rglob("*") if p.is_file() and p.name != "zarr.json")
    _flip(chunk, chunk.stat().st_size // 2)
    with pytest.raises(CorruptDataError):
        hepslim.open(bad, ["Muon_Px"])


def test_random_flips_never_give_wrong_values(written, tmp_path):
    """Anywhere in a packed Parquet file: either an error or exactly the original values."""
    import awkward as ak

    src = written[("parquet", "packed")]
    good = hepslim.open(src)
    size = src.stat().st_size
    rng = np.random.default_rng(7)
    for i, pos in enumerate(rng.integers(4, size - 8, size=12)):
        bad = _copy(src, tmp_path / f"r{i}.parquet")
        _flip(bad, int(pos))
        try:
            back = hepslim.open(bad)
        except (CorruptDataError, hepslim.FormatError):
            continue
        for f in good.fields:
            assert ak.array_equal(back[f], good[f], equal_nan=True), f"flip at {pos} changed {f}"
