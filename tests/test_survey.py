"""hepslim survey: planted constant / duplicate / derivable / pre-rounded branches in a real ROOT file written
with uproot (TTree via mktree), and the real NanoAOD files of ../shared/data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hepslim.cli import main
from hepslim.policy import load_spec
from hepslim.survey import effective_mantissa_bits, entropy_bits, survey

DATA = Path("/work/shared/data")
N = 3000


def _round_bits(x: np.ndarray, k: int) -> np.ndarray:
    """Round float32 to k mantissa bits (half up, as NanoAOD does)."""
    d = 23 - k
    u = x.astype(np.float32).view(np.uint32)
    return (((u + np.uint32(1 << (d - 1))) >> np.uint32(d)) << np.uint32(d)).view(np.float32)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A NanoAOD-like TTree with known redundancies."""
    uproot = pytest.importorskip("uproot")
    ak = pytest.importorskip("awkward")
    rng = np.random.default_rng(7)
    nj = rng.poisson(3, N).astype(np.int32)
    tot = int(nj.sum())
    px = rng.normal(0, 40, tot).astype(np.float32)
    py = rng.normal(0, 40, tot).astype(np.float32)
    pz = rng.normal(0, 80, tot).astype(np.float32)
    mass = rng.uniform(2, 20, tot).astype(np.float32)
    pt = np.hypot(px.astype(np.float64), py.astype(np.float64)).astype(np.float32)
    p2 = px.astype(np.float64) ** 2 + py.astype(np.float64) ** 2 + pz.astype(np.float64) ** 2
    energy = np.sqrt(p2 + mass.astype(np.float64) ** 2).astype(np.float32)
    eta = rng.normal(0, 1.5, tot).astype(np.float32)
    met = rng.exponential(30, N).astype(np.float32)
    jets = ak.zip({"px": ak.unflatten(px, nj), "py": ak.unflatten(py, nj), "pz": ak.unflatten(pz, nj),
                   "mass": ak.unflatten(mass, nj), "pt": ak.unflatten(pt, nj), "energy": ak.unflatten(energy, nj),
                   "eta": ak.unflatten(eta, nj), "etaRounded": ak.unflatten(_round_bits(eta, 10), nj),
                   "flag": ak.unflatten(np.zeros(tot, np.int32), nj)})
    path = tmp_path_factory.mktemp("survey") / "planted.root"
    data = {
        "Jet": jets,
        "MET_pt": met,
        "MET_ptCopy": met.copy(),  # duplicate
        "MET_ptScaled": (2.0 * met.astype(np.float64) + 1.0).astype(np.float32),  # linear
        "MET_phi": rng.uniform(-np.pi, np.pi, N).astype(np.float32),
        "Flag_always": np.zeros(N, bool),  # constant, default
        "Const_value": np.full(N, 3.5, np.float32),  # constant, not default
        "Rare_value": np.where(rng.random(N) < 0.002, 1.0, 0.0).astype(np.float32),  # near-constant
        "run": np.ones(N, np.uint32),  # constant but an event id: never dropped
        "event": np.arange(N, dtype=np.uint64),
    }
    with uproot.recreate(path) as f:  # a TTree (mktree), NanoAOD-style: Jet_px, ... with counter nJet
        tree = f.mktree("Events", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()})
        tree.extend(data)
    return path


@pytest.fixture(scope="module")
def report(planted: Path):  # noqa: ANN201
    return survey(planted)


def test_effective_bits_and_entropy_basics() -> None:
    x = np.float32([1.0, 1.5, 1.25, 0.0, np.inf, np.nan])
    assert effective_mantissa_bits(x) == 2  # 1.25 = 1.01b
    rng = np.random.default_rng(0)
    y = rng.normal(size=20000).astype(np.float32)
    assert effective_mantissa_bits(y) == 23
    assert effective_mantissa_bits(_round_bits(y, 10)) == 10
    assert effective_mantissa_bits(_round_bits(y, 6).astype(np.float64)) == 6
    assert effective_mantissa_bits(np.arange(5, dtype=np.int32)) is None
    assert entropy_bits(np.zeros(100, np.float32)) == 0.0
    assert entropy_bits(np.repeat(np.arange(8, dtype=np.int32), 5)) == pytest.approx(3.0)


def test_planted_constants(report) -> None:  # noqa: ANN001
    const = set(report.flagged("constant"))
    assert {"Flag_always", "Const_value", "Jet_flag", "run"} <= const
    assert "MET_pt" not in const
    assert set(report.flagged("always-default")) >= {"Flag_always", "Jet_flag"}
    assert "Const_value" not in report.flagged("always-default")
    assert report.branch("Const_value").constant_value == 3.5
    assert "Rare_value" in report.flagged("near-constant")
    assert report.branch("Flag_always").suggestion.startswith("drop")
    assert not report.branch("run").suggestion.startswith("drop")  # event ids are never dropped


def test_planted_duplicate(report) -> None:  # noqa: ANN001
    b = report.branch("MET_ptCopy")
    assert "duplicate" in b.flags and b.duplicate_of == "MET_pt"
    assert "duplicate" not in report.branch("MET_pt").flags
    assert b.suggestion == "drop: duplicate of MET_pt"


def test_planted_derivable(report) -> None:  # noqa: ANN001
    e = report.branch("Jet_energy").derivable
    assert e is not None and e.registered and e.function == "energy_from_pxpypz_mass"
    assert e.inputs == ("Jet_px", "Jet_py", "Jet_pz", "Jet_mass")
    pt = report.branch("Jet_pt").derivable
    assert pt is not None and pt.function == "pt_from_pxpy" and pt.max_rel_error <= 2.0**-22
    lin = report.branch("MET_ptScaled").derivable
    assert lin is not None and lin.function == "linear" and lin.inputs == ("MET_pt",)
    assert lin.params["a"] == pytest.approx(2.0) and lin.params["b"] == pytest.approx(1.0, abs=1e-4)
    assert report.branch("Jet_energy").suggestion.startswith("derive")
    # independent random branches are not derivable
    assert report.branch("MET_phi").derivable is None and report.branch("Jet_eta").derivable is None


def test_pre_rounded_precision(report) -> None:  # noqa: ANN001
    r = report.branch("Jet_etaRounded")
    assert r.effective_bits == 10 and "pre-rounded" in r.flags
    assert report.branch("Jet_eta").effective_bits == 23
    assert r.suggested_codecs[0] == {"id": "mantissa", "keepbits": 10}


def test_sizes_and_ordering(report, planted: Path) -> None:  # noqa: ANN001
    savings = [b.saving_bytes_per_event for b in report.branches]
    assert savings == sorted(savings, reverse=True)
    assert sum(b.share for b in report.branches) == pytest.approx(1.0)
    assert sum(c["share"] for c in report.collections) == pytest.approx(1.0)
    t = report.totals
    assert t["stored_bytes_per_event"] <= t["file_bytes_per_event"]
    # a dropped branch costs nothing; a kept one costs what its suggested pipeline measured
    assert report.branch("MET_ptCopy").suggested_bytes_per_event == 0.0
    from hepslim.pipeline import Pipeline

    b = report.branch("MET_phi")
    import uproot

    vals = uproot.open(planted)["Events"]["MET_phi"].array(library="np")
    size = len(Pipeline.from_configs(b.suggested_codecs).encode(vals.astype(np.float32)))
    assert b.suggested_bytes_per_event == pytest.approx(size / N)


def test_draft_spec_passes_spec_check(report, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "draft.yaml"
    report.write_spec(out)
    spec = load_spec(str(out))
    assert spec.is_dropped("MET_ptCopy") and spec.is_dropped("Flag_always") and spec.is_dropped("Const_value")
    assert not spec.is_dropped("run") and not spec.is_dropped("MET_pt")
    d = spec.derived_for("Jet_energy")
    assert d is not None and d.function == "energy_from_pxpypz_mass"
    assert spec.rule_for("Jet_etaRounded").codecs[0] == {"id": "mantissa", "keepbits": 10, "rounding": "nearest"}
    assert main(["spec", "check", str(out)]) == 0
    # a lossy parent decides precision: the draft then only drops and derives
    text = report.draft_spec(extends="nanoaod")
    assert "mantissa" not in text and "MET_ptCopy" in text and "energy_from_pxpypz_mass" in text
    with pytest.raises(Exception, match="exists"):
        report.write_spec(out)


def test_cli_json_report_and_spec(planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    assert main(["survey", str(planted), "--json", "--report", str(tmp_path / "rep"), "--write-spec", str(spec),
                 "--extends", "lossless"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["n_events"] == N and d["flag_counts"]["duplicate"] >= 1
    assert {b["name"] for b in d["branches"]} >= {"Jet_pt", "MET_pt", "event"}
    assert (tmp_path / "rep" / "savings.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "savings.png" in (tmp_path / "rep" / "index.md").read_text()
    assert load_spec(str(spec)).parent.name == "lossless"
    assert main(["survey", str(planted), "--top", "5"]) == 0
    assert "MET_ptCopy" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["nano_tt_v12.root", "nanoAOD_2015_CMS_Open_Data_ttbar.root"])
def test_real_nanoaod(name: str) -> None:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    rep = survey(path, max_events=100)
    # production NanoAOD rounds jet pt/mass to 10 mantissa bits and eta/phi to 12
    assert rep.branch("Jet_pt").effective_bits == 10
    assert rep.branch("Jet_mass").effective_bits == 10
    assert rep.branch("Jet_eta").effective_bits == 12
    assert "pre-rounded" in rep.branch("Jet_pt").flags
    assert rep.branch("Jet_pt").collection == "Jet" and rep.branch("nJet").collection == "Jet"
    assert rep.totals["stored_bytes_per_event"] <= rep.totals["file_bytes_per_event"]
    if name == "nano_tt_v12.root":  # NanoAOD stores the muon mass, which the PDG id implies
        rel = rep.branch("Muon_mass").derivable
        assert rel is not None and rel.function == "mass_from_pid" and rel.inputs == ("Muon_pdgId",)
    for b in rep.branches:  # every dropped branch really is constant or a confirmed duplicate
        if b.suggestion.startswith("drop"):
            assert b.constant_value is not None or b.duplicate_of is not None or b.n_values == 0


def test_real_rntuple_subset() -> None:
    path = DATA / "cmsopendata2015_ttbar_19980_NANOAOD_RNTupleImporter_rntuple_v1-0-0-1.root"
    if not path.exists():
        pytest.skip(f"{path} not available")
    rep = survey(path, branches=["Jet_pt", "Jet_eta", "nJet", "MET_pt"])
    assert rep.kind == "root-rntuple"
    assert {b.name for b in rep.branches} == {"Jet_pt", "Jet_eta", "nJet", "MET_pt"}
    assert rep.branch("Jet_pt").effective_bits == 10 and rep.branch("Jet_pt").stored_estimated


@pytest.mark.parametrize("fmt", ["zarr", "parquet"])
def test_hepslim_written_containers(planted: Path, tmp_path: Path, fmt: str) -> None:
    """A file hepslim wrote is read through hepslim.open, with per-branch sizes from hepslim.io.inspect."""
    pytest.importorskip("zarr" if fmt == "zarr" else "pyarrow")
    import hepslim

    out = tmp_path / f"planted.{fmt}"
    hepslim.compress(planted, out, spec="lossless", format=fmt)
    rep = survey(out)
    assert rep.kind == "hepslim" and rep.n_events == N
    assert rep.branch("MET_ptCopy").duplicate_of == "MET_pt"
    assert rep.branch("Jet_etaRounded").effective_bits == 10  # lossless: the precision survives
    assert rep.branch("MET_pt").stored_bytes_per_event is not None
    assert rep.branch("MET_pt").stored_bytes_per_event > 0


def test_discrete_flag_on_candidate_masses(pfnano_file: Path) -> None:
    """Generated PF candidates carry their hypothesis' exact mass: flagged ``discrete`` (rounding would move
    those points), while continuous momenta and the 0/1 pile-ups of energy fractions are not."""
    from hepslim.survey import survey

    rep = survey(pfnano_file)
    mass = rep.branch("PFCands_mass")
    assert "discrete" in mass.flags
    # derivable from the pdgId here (the best suggestion); otherwise the keep suggestion names keep_repeated
    assert mass.suggestion.startswith("derive: mass_from_pid") or "keep_repeated" in mass.suggestion
    for name in ("PFCands_pt", "Jet_pt", "Jet_neEmEF", "PFCands_d0"):
        assert "discrete" not in rep.branch(name).flags, name
    assert "PFCands_mass" in rep.flagged("discrete")
