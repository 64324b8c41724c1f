"""hepslim validate on generated samples: a lossless rewrite passes, crude rounding is caught."""

from __future__ import annotations

import json
import re
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hepslim.samples._write import write_table
from hepslim.validate import validate
from hepslim.validate._io import read

MOMENTA = ("part_px", "part_py", "part_pz", "part_energy")


def _table(arr: ak.Array) -> dict[str, ak.Array]:
    counters = {f for f in arr.fields if f.startswith("n") and f"{f[1:]}_" in "".join(arr.fields)}
    return {f: arr[f] for f in arr.fields if f not in counters}


def _keep3(x: np.ndarray) -> np.ndarray:
    try:
        import hepslim

        return hepslim.get_codec({"id": "mantissa", "keepbits": 3}).encode(x)
    except Exception:  # the mantissa codec is not installed: round to nearest with a bit mask
        u = x.astype(np.float32).view(np.uint32)
        return ((u + np.uint32(1 << 19)) & np.uint32(0xFFF00000)).view(np.float32)


@pytest.fixture(scope="session")
def jetclass_copy(jetclass_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("v") / "copy.parquet"
    write_table([_table(read(jetclass_file))], out)
    return out


@pytest.fixture(scope="session")
def jetclass_m3(jetclass_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    arr = read(jetclass_file)
    t = _table(arr)
    for k in MOMENTA:
        flat = ak.to_numpy(ak.flatten(arr[k])).astype(np.float32)
        t[k] = ak.unflatten(_keep3(flat), ak.num(arr[k]))
    out = tmp_path_factory.mktemp("v") / "m3.parquet"
    write_table([t], out)
    return out


def test_lossless_rewrite_is_indistinguishable(jetclass_file: Path, jetclass_copy: Path, tmp_path: Path) -> None:
    rep = validate(jetclass_file, jetclass_copy, tagger="reduced", report_dir=tmp_path / "rep", max_plots=8)
    assert rep["verdict"] == "indistinguishable"
    b = rep["benchmarks"]
    assert {k: v["verdict"] for k, v in b.items()} == dict.fromkeys(b, "indistinguishable")
    assert b["branches"]["n_changed"] == 0
    assert all(r["frac_unchanged"] == 1.0 and r["max_abs"] == 0.0 for r in b["branches"]["per_branch"].values())
    assert all(o["chi2_ndf"] == 0 and o["ks"] == 0 for o in b["observables"]["per_observable"].values())
    assert "derived:jet_tau32_from_constituents" in b["observables"]["per_observable"]
    assert all(t.get("identical") for t in b["classifier"]["tests"].values())
    # identical inputs and seeds: the tagger cells agree exactly, over >= 3 seeds
    cells = b["tagger"]["cells"]
    assert len(cells) == 4
    for c in cells.values():
        assert len(c["auc"]["values"]) >= 3 and c["auc"]["delta"] == 0.0
    json.dumps(rep)  # JSON-serialisable as is
    # the report page links existing plots
    index = Path(rep["report"])
    links = re.findall(r"\]\((plots/[^)]+)\)", index.read_text())
    assert any("roc_tagger" in ln for ln in links) and any("jet_mass_from_constituents" in ln for ln in links)
    assert all((index.parent / ln).is_file() for ln in links)
    assert (index.parent / "index.html").is_file() and json.loads((index.parent / "report.json").read_text())["verdict"]


def test_three_mantissa_bits_on_constituent_momenta_is_distinguishable(jetclass_file: Path, jetclass_m3: Path) -> None:
    rep = validate(jetclass_file, jetclass_m3, tagger="off", network="reduced")
    assert rep["verdict"] == "distinguishable"
    b = rep["benchmarks"]
    per = b["branches"]["per_branch"]
    assert sorted(k for k, r in per.items() if r["frac_unchanged"] < 1) == sorted(MOMENTA)
    for k in MOMENTA:
        assert per[k]["max_rel"] <= 2.0**-4 * (1 + 1e-6)  # nearest rounding to 3 bits: <= 2^-4 relative
        assert per[k]["max_rel"] > 2.0**-6
    cl = b["classifier"]
    assert cl["verdict"] == "distinguishable" and "part" in cl["distinguishable"]
    assert cl["tests"]["part"]["auc"] > 0.6
    assert cl["tests"]["event"].get("identical")  # jet-level branches were not touched


def test_hepslim_container_lossless(jetclass_file: Path, tmp_path: Path) -> None:
    hio = pytest.importorskip("hepslim.io")
    out = tmp_path / "ll.parquet"
    hio.compress(jetclass_file, out, spec="lossless")
    rep = validate(jetclass_file, out, tagger="off", classifier=False)
    assert rep["verdict"] == "indistinguishable"
    assert rep["benchmarks"]["branches"]["n_changed"] == 0


def test_pfnano_constituents_rebuild_the_jets(pfnano_file: Path) -> None:
    from hepslim.validate.observables import jet_constituents

    arr = read(pfnano_file)
    cons, radius, layout = jet_constituents(arr)
    assert (radius, layout) == (0.4, "pfnano")
    pt = ak.to_numpy(np.hypot(ak.sum(cons.px, axis=1), ak.sum(cons.py, axis=1)))
    np.testing.assert_allclose(pt, ak.to_numpy(ak.flatten(arr.Jet_pt)), rtol=1e-3, atol=0.05)


def test_nanoaod_derived_observables(nanoaod_file: Path) -> None:
    from hepslim.validate.observables import derived_observables

    arr = read(nanoaod_file)
    d = derived_observables(arr)
    for k in ("diJet_mass", "diJet_deltaR", "FatJet_tau21", "dilepton_mass", "mT_lepton_MET", "MET_x"):
        assert k in d, k
    assert np.all(d["diJet_mass"] >= 0) and np.all(d["diJet_deltaR"] > 0)
    np.testing.assert_allclose(np.hypot(d["MET_x"], d["MET_y"]), ak.to_numpy(arr.MET_pt), rtol=1e-5)


def test_tagger_skipped_without_torch(jetclass_file: Path, jetclass_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hepslim.validate._torch as T

    monkeypatch.setattr(T, "torch_or_none", lambda: None)
    rep = validate(jetclass_file, jetclass_copy, tagger="reduced", classifier=False)
    assert rep["benchmarks"]["tagger"]["verdict"] == "skipped"
    assert any("hepslim[ml]" in n for n in rep["notes"])
    assert rep["verdict"] == "indistinguishable"


def test_different_event_counts_refused(jetclass_file: Path, tmp_path: Path) -> None:
    from hepslim.errors import HepslimError

    arr = read(jetclass_file)
    short = tmp_path / "short.parquet"
    write_table([{k: v[:10] for k, v in _table(arr).items()}], short)
    with pytest.raises(HepslimError, match="different numbers of rows"):
        validate(jetclass_file, short, tagger="off")


def test_cli_validate_json(jetclass_file: Path, jetclass_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hepslim.cli import main

    assert main(["validate", str(jetclass_file), str(jetclass_copy), "--json", "--tagger", "off", "--no-classifier"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["verdict"] == "indistinguishable" and rep["benchmarks"]["tagger"]["verdict"] == "skipped"
