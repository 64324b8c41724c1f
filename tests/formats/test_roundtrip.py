"""Item 7 guarantees on the shared files, in every container and mode.

The default run covers every container/mode on the HZZ ntuple (flat + jagged, lossy spec) and on one
NanoAOD file; the full matrix over every shared file (1500-branch NanoAODs, PFNano, the RNTuple) is slow.
"""

from __future__ import annotations

import pytest

import hepslim
from hepslim.io import select_format

from formats_helpers import COMBOS, EXT, HZZ, LOSSY_SPEC, NANO, ROOT_FILES, RNTUPLE, check_roundtrip, data_file, original

FAST = [(HZZ, fmt, mode) for fmt, mode in COMBOS] + [(NANO, "root", "transparent"), (NANO, "parquet", "packed")]
SLOW = [(f, fmt, mode) for f in ROOT_FILES for fmt, mode in COMBOS if (f, fmt, mode) not in FAST]


def _roundtrip(tmp_path, name, fmt, mode, spec=LOSSY_SPEC, **kw):
    src = data_file(name)
    out = tmp_path / f"out{EXT[fmt]}"
    rep = hepslim.compress(src, out, spec=spec, format=fmt, mode=mode, **kw)
    assert rep.num_entries == len(original(name))
    meta = select_format(out).metadata(str(out))
    assert meta["mode"] == mode and meta["container"] == fmt
    back = hepslim.open(out)
    counts = check_roundtrip(original(name), back, meta)
    return rep, meta, back, counts


@pytest.mark.parametrize(("name", "fmt", "mode"), FAST)
def test_roundtrip_fast(tmp_path, name, fmt, mode):
    rep, meta, back, counts = _roundtrip(tmp_path, name, fmt, mode)
    assert counts["exact"] > 0 and counts["lossy"] > 0  # both kinds of branch were exercised
    assert meta["writer_info"]["hepslim"] == hepslim.__version__
    assert meta["spec_name"] == "formats-test"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "fmt", "mode"), SLOW)
def test_roundtrip_all_files(tmp_path, name, fmt, mode):
    _roundtrip(tmp_path, name, fmt, mode)


@pytest.mark.parametrize(("fmt", "mode"), COMBOS)
def test_multichunk_and_iterate(tmp_path, fmt, mode):
    """Small chunks: offsets are stitched across chunks, and iterate() yields chunk by chunk."""
    import awkward as ak

    rep, meta, back, _ = _roundtrip(tmp_path, HZZ, fmt, mode, step_size=700)
    assert len(meta["chunks"]) == 5  # 2421 events in chunks of 700
    chunks = list(hepslim.io.iterate(rep.output, ["Jet_Px", "NPrimaryVertices"]))
    assert [len(c) for c in chunks] == [700, 700, 700, 321]
    joined = ak.concatenate(chunks)
    assert ak.all(joined.NPrimaryVertices == back.NPrimaryVertices)
    assert ak.all(ak.num(joined.Jet_Px) == ak.num(back.Jet_Px))


def test_rntuple_input(tmp_path):
    """An RNTuple reads with flat NanoAOD names and compresses like a TTree (a branch subset: fast)."""
    src = data_file(RNTUPLE)
    out = tmp_path / "rn.parquet"
    want = ["run", "luminosityBlock", "event", "nJet", "Jet_*", "nMuon", "Muon_pt", "HLT_IsoMu2*"]
    hepslim.compress(src, out, spec=LOSSY_SPEC, format="parquet", mode="packed", branches=want)
    back = hepslim.open(out)
    import uproot

    orig = uproot.open(src)["Events"].arrays(filter_name=lambda n: n in set(back.fields))
    orig = orig[[f for f in orig.fields if f in back.fields]]
    assert len(back.fields) > 20 and "Jet_pt" in back.fields
    check_roundtrip(orig, back, select_format(out).metadata(str(out)))


@pytest.mark.parametrize("spec", [pytest.param("lossless", marks=pytest.mark.slow), "nanoaod"])
def test_shipped_spec_on_nanoaod(tmp_path, spec):
    _, meta, _, counts = _roundtrip(tmp_path, NANO, "parquet", "packed", spec=spec)
    assert meta["spec_name"] == spec
    if spec == "lossless":
        assert counts["lossy"] == 0


def test_open_only_requested_branches(tmp_path):
    src = data_file(HZZ)
    for fmt, mode in COMBOS:
        out = tmp_path / f"sel_{mode}{EXT[fmt]}"
        hepslim.compress(src, out, spec=LOSSY_SPEC, format=fmt, mode=mode)
        ev = hepslim.open(out, ["Muon_Px", "NJet", "Jet_*"])
        assert ev.fields == [f for f in original(HZZ).fields if f in ("Muon_Px", "NJet") or f.startswith("Jet_")]
        with pytest.raises(hepslim.FormatError, match="did you mean 'Muon_Px'"):
            hepslim.open(out, ["Muon_Pxx"])


def test_plain_inputs_read_without_hepslim_metadata(tmp_path):
    """hepslim.open reads files hepslim did not write (ROOT here; Parquet via awkward)."""
    import awkward as ak

    src = data_file(HZZ)
    ev = hepslim.open(src, ["Jet_Px", "NJet"])
    assert ak.all(ak.num(ev.Jet_Px) == ev.NJet)
    pq = tmp_path / "plain.parquet"
    ak.to_parquet(original(HZZ)[["Jet_Px", "NJet", "MET_px"]], pq)
    back = hepslim.open(pq)
    assert back.fields == ["Jet_Px", "NJet", "MET_px"]
    assert ak.all(back.MET_px == original(HZZ).MET_px)
    assert str(back.Jet_Px.type) == str(original(HZZ).Jet_Px.type)
