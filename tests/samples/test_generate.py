"""The Pythia8 + FastJet generator: reproducibility, layouts, cross-references and physics properties."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepslim.errors import HepslimError
from hepslim.samples import generate


def _read(path: Path) -> ak.Array:
    if path.suffix == ".root":
        return uproot.open(path)["Events"].arrays()
    return ak.from_parquet(path)


def test_same_seed_same_file_different_seed_different(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"
    generate("jetclass", 8, a, seed=5, process="qcd", progress=False)
    generate("jetclass", 8, b, seed=5, process="qcd", progress=False)
    generate("jetclass", 8, c, seed=6, process="qcd", progress=False)
    x, y, z = _read(a), _read(b), _read(c)
    assert ak.array_equal(x, y)
    assert not np.array_equal(ak.to_numpy(x.jet_pt), ak.to_numpy(z.jet_pt))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet", "c.parquet"]  # no temp files


def test_jobs_use_seed_plus_k(tmp_path: Path) -> None:
    """Job k of a parallel run generates exactly what a single job with seed + k generates."""
    two = tmp_path / "two.parquet"
    generate("jetclass", 6, two, seed=21, jobs=2, process="qcd", progress=False)
    one = tmp_path / "one.parquet"
    generate("jetclass", 3, one, seed=22, process="qcd", progress=False)
    t, o = _read(two), _read(one)
    assert len(t) == 6
    assert ak.array_equal(t[3:], o)


def test_jetclass_jets(jetclass_file: Path) -> None:
    a = _read(jetclass_file)
    assert len(a) == 300
    pt = ak.to_numpy(a.jet_pt)
    assert np.all((pt > 500) & (pt < 650)) and np.all(np.abs(ak.to_numpy(a.jet_eta)) < 2.0)
    top, qcd = ak.to_numpy(a.label_Tbqq), ak.to_numpy(a.label_QCD)
    assert np.all(top ^ qcd) and top.sum() == 150
    # the jet is the E-scheme sum of its constituents
    for comp, jet in (("px", None), ("py", None)):
        s = ak.to_numpy(ak.sum(a[f"part_{comp}"], axis=1))
        ref = pt * (np.cos(ak.to_numpy(a.jet_phi)) if comp == "px" else np.sin(ak.to_numpy(a.jet_phi)))
        np.testing.assert_allclose(s, ref, rtol=1e-3, atol=0.05)
    np.testing.assert_allclose(ak.to_numpy(ak.sum(a.part_energy, axis=1)), ak.to_numpy(a.jet_energy), rtol=1e-4)
    assert np.array_equal(ak.to_numpy(ak.num(a.part_px)), ak.to_numpy(a.jet_nparticles))
    # constituents sit on the mass shell of their PF type: E = sqrt(p^2 + m(pid)^2)
    from hepslim.derived import pdg_mass

    p2 = ak.to_numpy(ak.flatten(a.part_px**2 + a.part_py**2 + a.part_pz**2)).astype(np.float64)
    m = pdg_mass(ak.to_numpy(ak.flatten(a.part_pid)))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(a.part_energy)), np.sqrt(p2 + m * m), rtol=2e-6)
    assert set(np.abs(np.unique(ak.to_numpy(ak.flatten(a.part_pid))))) <= {11, 13, 22, 130, 211}
    # FastJet clusters in rapidity: every constituent lies within about R = 0.8 of the axis in (y, phi)
    y = 0.5 * np.log((a.part_energy + a.part_pz) / (a.part_energy - a.part_pz))
    jpz = ak.sum(a.part_pz, axis=1)
    yj = 0.5 * np.log((a.jet_energy + jpz) / (a.jet_energy - jpz))
    assert ak.max(np.hypot(y - yj, a.part_dphi)) < 1.0
    # physics: top jets are heavy and three-pronged, QCD jets light and one-pronged
    m = ak.to_numpy(a.jet_sdmass)
    assert 140 < np.median(m[top]) < 200 and np.median(m[qcd]) < 100
    t32 = ak.to_numpy(a.jet_tau3) / ak.to_numpy(a.jet_tau2)
    assert np.median(t32[top]) < np.median(t32[qcd])
    # neutral candidates carry no impact parameter; charged ones do
    charged = ak.flatten(a.part_charge) != 0
    d0 = ak.to_numpy(ak.flatten(a.part_d0))
    assert np.all(d0[~ak.to_numpy(charged)] == 0) and np.all(d0[ak.to_numpy(charged)] != 0)


def test_nanoaod_cross_references(nanoaod_file: Path) -> None:
    a = _read(nanoaod_file)
    assert len(a) == 120
    assert np.array_equal(ak.to_numpy(a.event), np.arange(1, 121))
    for coll in ("Jet", "GenJet", "GenPart", "Muon", "Electron", "FatJet"):
        assert np.array_equal(ak.to_numpy(a[f"n{coll}"]), ak.to_numpy(ak.num(a[f"{coll}_pt"])))
    gj = a.Jet_genJetIdx
    assert ak.all((gj >= -1) & (gj < ak.num(a.GenJet_pt)))
    assert ak.mean(gj >= 0) > 0.5
    mother = a.GenPart_genPartIdxMother
    assert ak.all((mother >= -1) & (mother < ak.local_index(mother)))  # mothers come first
    mu = a.Muon_genPartIdx
    assert ak.all((mu >= -1) & (mu < ak.num(a.GenPart_pt)))
    ids = a.GenPart_pdgId[ak.where(mu >= 0, mu, 0)]
    assert ak.all(ak.where(mu >= 0, abs(ids) == 13, True))
    assert ak.all(ak.num(a.Jet_pt) >= 1)
    assert set(np.unique(ak.to_numpy(ak.flatten(a.Jet_hadronFlavour)))) <= {0, 4, 5}
    assert ak.all(a.Jet_pt[:, :-1] >= a.Jet_pt[:, 1:])  # pT-ordered
    # ttbar: every event has two tops in GenPart
    top = ak.sum((abs(a.GenPart_pdgId) == 6) & (a.GenPart_status == 22), axis=1)
    assert ak.all(top == 2)
    # MET balances the visible PF candidates; the neutrinos' GenMET is of the same order
    assert 10 < np.median(ak.to_numpy(a.GenMET_pt)) < 200


def test_pfnano_candidates_and_vertices(pfnano_file: Path) -> None:
    a = _read(pfnano_file)
    jet, cand = a.JetPFCands_jetIdx, a.JetPFCands_pFCandsIdx
    assert ak.all((jet >= 0) & (jet < ak.num(a.Jet_pt)))
    # every PF candidate belongs to exactly one jet
    assert ak.all(ak.num(cand) == ak.num(a.PFCands_pt))
    assert ak.all(ak.sort(cand, axis=1) == ak.local_index(cand))
    # the jet is the vector sum of its candidates
    px = a.PFCands_pt * np.cos(a.PFCands_phi)
    njet = ak.to_numpy(ak.num(a.Jet_pt))
    key = np.repeat(np.concatenate([[0], np.cumsum(njet)])[:-1], ak.to_numpy(ak.num(jet))) + ak.to_numpy(ak.flatten(jet))
    sums = np.bincount(key, weights=ak.to_numpy(ak.flatten(px[cand])), minlength=njet.sum())
    ref = ak.to_numpy(ak.flatten(a.Jet_pt * np.cos(a.Jet_phi)))
    np.testing.assert_allclose(sums, ref, rtol=1e-3, atol=0.05)
    # secondary vertices: >= 2 tracks, displaced
    assert ak.all(a.SV_ntracks >= 2) and ak.all(a.SV_dlen > 0)
    assert ak.all((a.JetSVs_sVIdx >= 0) & (a.JetSVs_sVIdx < ak.num(a.SV_pt)))
    # physics: tracks in b jets are more displaced than in light jets
    fl = a.Jet_hadronFlavour[jet]
    sig = abs(a.PFCands_d0[cand]) / ak.where(a.PFCands_d0Err[cand] > 0, a.PFCands_d0Err[cand], 1.0)
    charged = a.PFCands_charge[cand] != 0
    frac_b = ak.mean(sig[charged & (fl == 5)] > 3)
    frac_l = ak.mean(sig[charged & (fl == 0)] > 3)
    assert frac_b > 2 * frac_l


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(HepslimError, match="unknown layout"):
        generate("minbias", 1, tmp_path / "x.root")
    with pytest.raises(HepslimError, match="process"):
        generate("jetclass", 1, tmp_path / "x.root", process="ttbar")
    with pytest.raises(HepslimError, match=r"\.root, \.parquet"):
        generate("jetclass", 1, tmp_path / "x.csv", process="qcd")


def test_nlo_layout_is_dispatched(tmp_path: Path) -> None:
    pytest.importorskip("hepslim.plugins.negweights.synthetic")
    info = generate("nlo", 50, tmp_path / "nlo.parquet", seed=3)
    assert info["rows"] == 50 and Path(info["path"]).exists()


def test_cli_generate_json_is_clean(tmp_path: Path) -> None:
    """FastJet's banner must not corrupt --json output (it writes to file descriptor 1)."""
    out = tmp_path / "j.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "hepslim.cli", "generate", "jetclass", "-n", "3", "--process", "qcd",
         "-o", str(out), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    info = json.loads(proc.stdout)
    assert info["rows"] == 3 and len(_read(out)) == 3
