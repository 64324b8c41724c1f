"""The shipped specs: they validate, they cover every branch of the real files, and they never put a lossy
codec on an integer, boolean, counter or index; the CLI commands that show them."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from hepslim.cli import main
from hepslim.policy import effective_rule, load_spec, plan, registered_specs, resolve
from hepslim.policy import input_branches as _input_branches

DATA = Path("/work/shared/data")
SPECS_DIR = Path(__file__).resolve().parents[2] / "src" / "hepslim" / "specs"
SHIPPED = ["jetclass", "lossless", "miniaod", "nanoaod", "pfnano"]
NANO_FILES = sorted(
    p for p in DATA.glob("*.root") if p.name != "uproot-HZZ.root"
) if DATA.is_dir() else []
needs_data = pytest.mark.skipif(not NANO_FILES, reason="shared test data not available")


@functools.lru_cache(maxsize=None)
def input_branches(path: Path) -> dict:
    return _input_branches(path)


def test_all_shipped_specs_registered():
    assert sorted(registered_specs()) == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_spec_check_passes(name, capsys):
    assert main(["spec", "check", str(SPECS_DIR / f"{name}.yaml"), name]) == 0
    out = capsys.readouterr().out
    assert out.count("ok  ") == 2 and f"spec {name!r}" in out


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spec_metadata(name):
    s = load_spec(name)
    assert s.description, "every shipped spec says what it is for"
    assert s.name == name and len(s.sha256) == 64
    text = (SPECS_DIR / f"{name}.yaml").read_text()
    assert text.count("#") >= 5, "shipped specs carry their physics reasoning as comments"


def test_lossless_spec_has_no_lossy_codec():
    s = load_spec("lossless")
    assert all(r.lossless for r in s.all_rules) and s.effective_default.lossless
    for dt in ("float32", "float64", "int32", "bool"):
        assert resolve(s, "Jet_pt", dt).lossless


@pytest.mark.parametrize("name", ["nanoaod", "pfnano"])
def test_weights_are_lossless(name):
    s = load_spec(name)
    for b in ("genWeight", "LHEWeight_originalXWGTUP", "LHEPdfWeight", "LHEScaleWeight", "PSWeight",
              "Generator_weight", "btagWeight_CSVV2", "L1PreFiringWeight_Nom"):
        assert resolve(s, b, "float32").lossless, b


@needs_data
@pytest.mark.parametrize("path", NANO_FILES, ids=lambda p: p.name[:30])
@pytest.mark.parametrize("name", ["nanoaod", "pfnano", "lossless"])
def test_every_branch_of_real_files_gets_a_pipeline(path, name):
    s = load_spec(name)
    types = input_branches(path)
    assert len(types) > 600
    rows = plan(s, types)
    assert [r.branch for r in rows] == list(types)
    for r in rows:
        dt = np.dtype(r.dtype)
        assert r.action in ("store", "derive")
        if r.action == "derive":
            continue
        assert r.codecs, r.branch
        assert [c for c in r.codecs if c["id"] in ("raw", "bytestreamsplit", "bitpack", "quantize")]
        protected = dt.kind in "biu" or r.role in ("counter", "index") or r.branch in ("run", "event",
                                                                                          "luminosityBlock")
        if protected:
            assert r.lossless and r.error_bound is None, r.branch
        if name == "lossless":
            assert r.lossless
    if name != "lossless":
        lossy = [r for r in rows if not r.lossless and r.action == "store"]
        assert len(lossy) > 100  # the float branches do get compressed
        assert all(np.dtype(r.dtype).kind == "f" for r in lossy)


@needs_data
def test_nanoaod_physics_choices_on_a_real_file():
    path = DATA / "nano_tt_v12.root"
    s = load_spec("nanoaod")
    rows = {r.branch: r for r in plan(s, input_branches(path))}
    assert rows["Jet_pt"].codecs[0] == {"id": "mantissa", "keepbits": 10, "rounding": "nearest", "keep_repeated": 8}
    assert rows["Muon_pt"].codecs[0]["keepbits"] == 9
    assert rows["Jet_phi"].error_bound == {"kind": "rel", "value": 2.0**-13}
    assert rows["Muon_eta"].error_bound == {"kind": "abs", "value": 5.0e-4}
    assert rows["GenPart_eta"].error_bound["kind"] == "rel"  # incoming partons: |eta| ~ 1e4
    # tagger scores, energy fractions, corrections: kept on production NanoAOD's own mantissa grid
    assert rows["Jet_btagDeepFlavB"].codecs[0] == {"id": "mantissa", "keepbits": 10, "rounding": "nearest"}
    assert rows["Jet_neHEF"].codecs[0]["keepbits"] == 10
    for b in ("Electron_mvaIso", "Muon_mvaTTH", "GenPart_mass", "Muon_mass",  # saturated scores, discrete masses
              "Muon_dxyErr", "Electron_dzErr"):  # IP errors: production's 6 bits already, narrow when unrounded
        assert rows[b].lossless, b
    for b in ("genWeight", "LHEPdfWeight", "run", "event", "nJet", "Jet_jetId", "Jet_genJetIdx",
              "GenPart_genPartIdxMother", "Flag_METFilters"):
        if b in rows:
            assert rows[b].lossless, b
    # a floats_only glob that also matches an integer leaves it exact instead of failing
    assert effective_rule(s, "Muon_mvaId", np.uint8) is s.effective_default
    assert resolve(s, "Muon_mvaId", np.uint8).lossless


@needs_data
def test_nanoaod_bounds_hold_on_real_values():
    import awkward as ak
    import uproot

    path = DATA / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
    s = load_spec("nanoaod")
    tree = uproot.open(path)["Events"]
    for b in ("Jet_pt", "Jet_eta", "Jet_phi", "Muon_eta", "GenPart_eta", "Jet_btagDeepB", "Electron_dxy",
              "MET_phi", "Jet_chHEF"):
        x = np.asarray(ak.flatten(tree[b].array(), axis=None)).astype(np.float32)
        p = resolve(s, b, x.dtype)
        y = p.decode(p.encode(x)).astype(np.float64)
        bound = p.error_bound()
        d = np.abs(y - x)
        if bound.kind == "rel":
            assert np.all(d <= bound.value * np.abs(x)), b
        elif bound.kind == "angle":
            assert np.all(np.minimum(d, 2 * np.pi - d) <= bound.value * (1 + 1e-6)), b
        else:
            assert np.all(d <= bound.value), b
        assert np.array_equal(p.apply_values(x), y.astype(np.float32)), b


@needs_data
def test_rntuple_collections_are_flattened_to_nanoaod_names():
    rnt = DATA / "cmsopendata2015_ttbar_19980_NANOAOD_RNTupleImporter_rntuple_v1-0-0-1.root"
    tt = DATA / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
    a, b = input_branches(rnt), input_branches(tt)
    assert set(a) == set(b)
    assert a["Jet_pt"] == (np.dtype("float32"), True) and a["nJet"][1] is False


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_specs_lists_shipped(capsys):
    assert main(["specs"]) == 0
    out = capsys.readouterr().out
    for name in SHIPPED:
        assert name in out
    assert main(["specs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(SHIPPED)
    assert all(r["error"] is None for r in rows)
    assert next(r for r in rows if r["name"] == "pfnano")["extends"] == "nanoaod"


def test_cli_spec_show_rules(capsys):
    assert main(["spec", "show", "pfnano"]) == 0
    out = capsys.readouterr().out
    assert "[pfnano]" in out and "[nanoaod]" in out
    assert main(["spec", "show", "jetclass"]) == 0
    assert "derived part_energy" in capsys.readouterr().out
    assert main(["spec", "show", "nanoaod", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["name"] == "nanoaod" and d["rules"]


@needs_data
def test_cli_spec_show_input(capsys):
    path = DATA / "nano_dy.root"
    assert main(["spec", "show", "nanoaod", "--input", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert len(d["branches"]) == 1499
    for r in d["branches"]:
        if r["dtype"] in ("bool", "int32", "uint8", "uint32", "uint64", "int16", "int8", "uint16"):
            assert r["lossless"], r
    assert main(["spec", "show", "nanoaod", "--input", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1499 branches" in out and "Jet_pt" in out and "mantissa(keepbits=7" in out


def test_cli_spec_check_reports_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrules:\n  - match: Jet_pt\n    codecs: [{id: mantisa, keepbits: 7}]\n")
    assert main(["spec", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "did you mean 'mantissa'" in err and "bad.yaml" in err and "#0 'Jet_pt'" in err


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spec_round_trips_through_container_metadata(name):
    from hepslim.policy import Spec

    s = load_spec(name)
    back = Spec.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.sha256 == s.sha256 and back == s
    assert back.all_derived == s.all_derived
    assert [r.to_dict() for r in back.all_rules] == [r.to_dict() for r in s.all_rules]


@needs_data
def test_tree_selection(capsys):
    from hepslim.errors import FormatError

    hzz = DATA / "uproot-HZZ.root"
    assert "Muon_Px" in input_branches(hzz)  # the file's only tree ("events"), though the spec says Events
    with pytest.raises(FormatError, match="no tree or RNTuple 'Events'; it has events"):
        _input_branches(hzz, "Events")
    assert main(["spec", "show", "nanoaod", "--input", str(hzz), "--tree", "nope"]) == 1
    assert "no tree or RNTuple 'nope'" in capsys.readouterr().err


@needs_data
def test_nanoaod_is_the_identity_on_what_production_already_rounded():
    """Jet kinematics and PF candidates are stored by production (Pfn)NanoAOD at 10-12 mantissa bits: the
    shipped specs keep at least that many, so they change nothing there (the loss is on full-precision
    branches only)."""
    import awkward as ak
    import uproot

    cases = {
        "nano_tt_v12.root": ("nanoaod", ["Jet_pt", "Jet_mass", "Jet_eta", "Jet_phi", "FatJet_pt", "GenJet_eta", "GenPart_eta"]),
        "pfnano.root": ("pfnano", ["PFCands_pt", "PFCands_mass", "PFCands_d0Err", "PFCands_eta", "Jet_phi"]),
    }
    for fname, (spec_name, branches) in cases.items():
        spec = load_spec(spec_name)
        tree = uproot.open(DATA / fname)["Events"]
        for b in branches:
            x = np.asarray(ak.flatten(tree[b].array(), axis=None)).astype(np.float32)
            pipe = resolve(spec, b, x.dtype)
            assert not pipe.lossless, (fname, b)  # a lossy rule, which is the identity on these values
            y = pipe.apply_values(x)
            assert np.array_equal(x.view(np.uint32), y.view(np.uint32)), (fname, b, pipe)
