"""Negative-weight resampling: conservation, cell rules against a brute-force reference, IRC safety, I/O."""

from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")
pytest.importorskip("fastjet")

from hepslim.errors import CodecParameterError, FormatError  # noqa: E402
from hepslim.plugins.negweights import _kernels as K  # noqa: E402
from hepslim.plugins.negweights.io import _from_event_records  # noqa: E402
from hepslim.plugins.negweights.objects import FlatParticles  # noqa: E402
from hepslim.plugins.negweights.synthetic import generate_nlo, nlo_truth, write_nlo_lhe  # noqa: E402
from hepslim.plugins.negweights.transform import NegWeights, resample  # noqa: E402

DATA = Path("/work/shared/data")
POWHEG = DATA / "pylhe-testfile-powheg-box-v2-W.lhe"
NANO_DY = DATA / "nano_dy.root"


def _sample(n: int, seed: int = 3, neg_fraction: float = 0.3):
    ev = generate_nlo(n, seed, neg_fraction=neg_fraction)
    parts, w, var, _ = _from_event_records(ev)
    return ev, FlatParticles.from_awkward(parts), w, np.stack(list(var.values()), axis=1)


def _reference(tr: NegWeights, fp: FlatParticles, w0: np.ndarray, max_radius: float = math.inf):
    """Pure-Python cell resampling with brute-force neighbours: the rules written out plainly."""
    tab, metric, param = tr.table(fp)
    n = len(w0)
    dist = np.array([[K.event_distance(i, j, metric, tab.offs, tab.data, param) for j in range(n)] for i in range(n)])
    w = w0.copy()
    neg = [i for i in range(n) if w[i] < 0]
    if tr.seeds == "most_negative":
        seeds = sorted(neg, key=lambda i: (w[i], i))
    elif tr.seeds == "least_negative":
        seeds = sorted(neg, key=lambda i: (-w[i], i))
    else:
        seeds = neg
    cells = []
    for s in seeds:
        if w[s] >= 0:
            continue
        order = sorted((j for j in range(n) if j != s), key=lambda j: (dist[s, j], j))
        mem, total = [s], w[s]
        for j in order:
            if dist[s, j] > max_radius:
                break
            mem.append(j)
            total += w[j]
            if total >= 0:
                break
        cells.append(mem)
        w[mem] = math.fsum(w[mem]) / len(mem)
    return w, cells


# ------------------------------------------------------------------------------------------ algorithm
@pytest.mark.parametrize("method", ["cells", "ot"])
def test_matches_brute_force_reference(method):
    _, fp, w0, _ = _sample(250, seed=11)
    tr = NegWeights(method=method, jet_ptmin=0.0, ot_candidates=0)
    w1, _, cells, _ = tr.reweight(fp, w0)
    w_ref, cells_ref = _reference(tr, fp, w0)
    got = [list(cells.members[cells.offsets[c]:cells.offsets[c + 1]]) for c in range(cells.n_cells)]
    assert got == cells_ref
    np.testing.assert_allclose(w1, w_ref, rtol=1e-12, atol=1e-12 * np.abs(w0).max())
    assert len(set(cells.seed.tolist())) == cells.n_cells  # a seed is used at most once


@pytest.mark.parametrize("seeds", ["least_negative", "any"])
def test_seed_strategies_match_reference(seeds):
    _, fp, w0, _ = _sample(200, seed=17)
    tr = NegWeights(seeds=seeds, jet_ptmin=0.0)
    w1, _, cells, _ = tr.reweight(fp, w0)
    w_ref, cells_ref = _reference(tr, fp, w0)
    got = [list(cells.members[cells.offsets[c]:cells.offsets[c + 1]]) for c in range(cells.n_cells)]
    assert got == cells_ref
    np.testing.assert_allclose(w1, w_ref, rtol=1e-12, atol=1e-12 * np.abs(w0).max())


@pytest.fixture(scope="module")
def small_table():
    _, fp, _, _ = _sample(120, seed=23)
    return fp


@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=True), min_size=120, max_size=120),
       st.sampled_from(["mean", "abs"]))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_sum_exact_and_no_negative(small_table, weights, rule):
    w0 = np.array(weights)
    w1, _, cells, _ = NegWeights(cell_mean=rule).reweight(small_table, w0)
    assert math.fsum(w1) == math.fsum(w0) or abs(math.fsum(w1) - math.fsum(w0)) <= 1e-12 * np.abs(w0).sum()
    if math.fsum(w0) > 1e-9 * np.abs(w0).sum():
        assert w1.min() >= 0.0
    assert len(set(cells.seed.tolist())) == cells.n_cells
    assert np.all(w0[cells.seed] < 0)


def test_sum_conserved_and_no_negative_left():
    _, fp, w0, var0 = _sample(3000)
    assert 0.15 < np.mean(w0 < 0) < 0.4
    for rule in ("mean", "abs"):
        w1, var1, cells, _ = NegWeights(cell_mean=rule).reweight(fp, w0, var0)
        assert abs(math.fsum(w1) - math.fsum(w0)) <= 1e-12 * abs(math.fsum(w0))
        for j in range(var0.shape[1]):
            assert abs(math.fsum(var1[:, j]) - math.fsum(var0[:, j])) <= 1e-12 * abs(math.fsum(var0[:, j]))
        assert w1.min() >= 0.0  # no cap and sum(w) > 0: every cell can close
        assert cells.closed.all()


def test_abs_rule_shares_in_proportion_to_abs_weight():
    _, fp, w0, _ = _sample(400, seed=5)
    w1, _, cells, _ = NegWeights(cell_mean="abs").reweight(fp, w0)
    c = 0  # the first cell sees the original weights
    mem = cells.members[cells.offsets[c]:cells.offsets[c + 1]]
    expect = np.abs(w0[mem]) / np.abs(w0[mem]).sum() * w0[mem].sum()
    # later overlapping cells may change members again; check only members no other cell touched
    others = set(cells.members[cells.offsets[1]:].tolist())
    lone = [k for k, m in enumerate(mem) if m not in others]
    np.testing.assert_allclose(w1[mem[lone]], expect[lone], rtol=1e-12)


def test_max_cell_size_caps_radius():
    _, fp, w0, _ = _sample(600, seed=7)
    cap = 5.0
    tr = NegWeights(max_cell_size=cap, jet_ptmin=0.0)
    w1, _, cells, _ = tr.reweight(fp, w0)
    assert cells.radius.max() <= cap
    assert (~cells.closed).any() and (w1 < 0).any()  # some cells could not close within the cap
    assert abs(math.fsum(w1) - math.fsum(w0)) <= 1e-12 * abs(math.fsum(w0))
    w_ref, _ = _reference(tr, fp, w0, max_radius=cap)
    np.testing.assert_allclose(w1, w_ref, rtol=1e-12, atol=1e-12 * np.abs(w0).max())


def test_deterministic_and_parallel_equals_serial():
    _, fp, w0, var0 = _sample(4000, seed=9)
    a = NegWeights(n_jobs=1, minweight=0.5, seed=4).reweight(fp, w0, var0)
    b = NegWeights(n_jobs=2, minweight=0.5, seed=4).reweight(fp, w0, var0)
    c = NegWeights(n_jobs=2, minweight=0.5, seed=4).reweight(fp, w0, var0)
    for x, y in ((a, b), (b, c)):
        assert np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
        assert np.array_equal(x[2].members, y[2].members)


def test_ot_candidate_preselection():
    _, fp, w0, var0 = _sample(3000, seed=13)
    runs = [NegWeights(method="ot", ot_candidates=8, n_jobs=j).reweight(fp, w0, var0) for j in (1, 2)]
    w1, var1, cells, _ = runs[0]
    assert np.array_equal(w1, runs[1][0]) and np.array_equal(cells.members, runs[1][2].members)
    assert w1.min() >= 0 and abs(math.fsum(w1) - math.fsum(w0)) <= 1e-12 * abs(math.fsum(w0))
    assert abs(math.fsum(var1[:, 0]) - math.fsum(var0[:, 0])) <= 1e-12 * abs(math.fsum(var0[:, 0]))
    assert cells.sizes.max() > 8  # some cells outgrew the first candidate list and were re-queried
    tab, metric, param = NegWeights(method="ot").table(fp)
    for c in range(0, cells.n_cells, 50):  # members in increasing exact EMD from the seed
        mem = cells.members[cells.offsets[c]:cells.offsets[c + 1]]
        d = [K.event_distance(mem[0], x, metric, tab.offs, tab.data, param) for x in mem[1:]]
        assert d == sorted(d) and (not d or d[-1] == pytest.approx(cells.radius[c]))


def test_minweight_partial_unweighting():
    _, fp, w0, var0 = _sample(3000, seed=2)
    mw = 0.8
    w1, var1, _, info = NegWeights(minweight=mw, seed=1).reweight(fp, w0, var0)
    w_plain, _, _, _ = NegWeights().reweight(fp, w0, var0)
    small = (w_plain != 0) & (np.abs(w_plain) < mw)
    assert info["n_unweighted"] == int(small.sum()) > 0
    vals = np.unique(np.round(w1[small], 9))
    assert len(vals) <= 2 and 0.0 in vals  # dropped (0) or one common rescaled weight
    assert np.array_equal(w1[~small], w_plain[~small])
    assert abs(math.fsum(w1) - math.fsum(w0)) <= 1e-12 * abs(math.fsum(w0))
    ratio_before = np.divide(var0[:, 0], w0, out=np.zeros_like(w0), where=w0 != 0)
    assert np.all(np.isfinite(ratio_before))


def test_synthetic_truth_before_and_after():
    _, fp, w0, _ = _sample(20000, seed=21, neg_fraction=0.3)
    w1, _, _, _ = NegWeights(jet_ptmin=0.0).reweight(fp, w0)
    from hepslim.plugins.negweights.diagnostics import observables

    obs = observables(fp)
    for name, edges in (("z_pt", np.array([0, 10, 25, 50, 100, 200, 500.0])), ("z_y", np.linspace(-4, 4, 9))):
        x = obs["pt_ll"] if name == "z_pt" else obs["y_vis"]
        truth = nlo_truth(name, edges, neg_fraction=0.3)
        for w in (w0, w1):
            h = np.histogram(x, edges, weights=w)[0]
            err = np.sqrt(np.histogram(x, edges, weights=w0**2)[0])
            assert np.all(np.abs(h - truth) < 4.5 * err), (name, (h - truth) / err)


# ------------------------------------------------------------------------------------------ distances
def _two_events(rows_a, rows_b):
    import awkward as ak

    def rec(rows):
        return [{"px": r[0], "py": r[1], "pz": r[2], "e": float(np.linalg.norm(r[:3])), "pid": int(r[3])} for r in rows]

    return FlatParticles.from_awkward(ak.Array([rec(rows_a), rec(rows_b)]))


@pytest.mark.parametrize("method", ["cells", "ot"])
def test_irc_safety(method):
    lep = [(30.0, 10.0, 5.0, 11), (-25.0, -12.0, 40.0, -11)]
    g = np.array([0.0, -40.0, 20.0])
    base = lep + [(*g, 21), (22.0, 15.0, -3.0, 1)]
    tr = NegWeights(method=method, jet_ptmin=0.0)

    def dist(a, b):
        tab, metric, param = tr.table(_two_events(a, b))
        return K.event_distance(0, 1, metric, tab.offs, tab.data, param)

    eps = 1e-4
    soft = base + [(eps, 0.0, eps, 21)]
    assert dist(base, soft) < 3 * eps
    z = 0.3  # collinear split of the gluon
    split = lep + [(*(z * g), 21), (*((1 - z) * g), 21), (22.0, 15.0, -3.0, 1)]
    assert dist(base, split) < 1e-9
    assert dist(base, base) == 0.0
    far = lep + [(*(2 * g), 21), (22.0, 15.0, -3.0, 1)]
    assert dist(base, far) > 1.0


def test_hungarian_and_emd_against_scipy_and_pot():
    from scipy.optimize import linear_sum_assignment

    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(0)
    for _ in range(30):
        na, nb = rng.integers(0, 7, 2)
        data = rng.normal(size=(na + nb, 4)) * 30
        offs = np.array([[0, na], [na, na + nb]])
        k = max(na, nb)
        a = np.zeros((k, 4))
        a[:na] = data[:na]
        b = np.zeros((k, 4))
        b[:nb] = data[na:]
        c = np.linalg.norm(a[:, None] - b[None], axis=-1)
        r, cidx = linear_sum_assignment(c)
        assert K.event_distance(0, 1, K.METRIC_CELLS, offs, data, 0.0) == pytest.approx(c[r, cidx].sum(), rel=1e-10, abs=1e-10)
        e = np.zeros((na + nb, 4))
        e[:, 0] = rng.exponential(20, na + nb)
        e[:, 1] = rng.normal(0, 2, na + nb)
        e[:, 2] = rng.uniform(-np.pi, np.pi, na + nb)
        A, B = e[:na], e[na:]
        if na and nb:
            dy = A[:, None, 1] - B[None, :, 1]
            dp = np.abs(A[:, None, 2] - B[None, :, 2])
            dp = np.where(dp > np.pi, 2 * np.pi - dp, dp)
            m = np.minimum(np.hypot(dy, dp), 2.0)
            pa, pb = A[:, 0].copy(), B[:, 0].copy()
            if pa.sum() < pb.sum():
                pa = np.append(pa, pb.sum() - pa.sum())
                m = np.vstack([m, np.ones(nb)])
            elif pb.sum() < pa.sum():
                pb = np.append(pb, pa.sum() - pb.sum())
                m = np.hstack([m, np.ones((na, 1))])
            ref = ot.emd2(pa, pb, m)
        else:
            ref = abs(A[:, 0].sum() - B[:, 0].sum())
        assert K.event_distance(0, 1, K.METRIC_EMD, offs, e, 1.0) == pytest.approx(ref, rel=1e-7, abs=1e-9)


def test_knn_is_exact():
    _, fp, _, _ = _sample(800, seed=4)
    tab, metric, param = NegWeights(jet_ptmin=0.0).table(fp)
    tree = K.build_vptree(tab.n_events, metric, tab.offs, tab.data, param, 0, 8)
    q = np.arange(0, 800, 37)
    d, idx = K.knn_many_serial(q, 12, tree, metric, tab.offs, tab.data, param)
    for row, s in enumerate(q):
        full = np.array([K.event_distance(s, j, metric, tab.offs, tab.data, param) for j in range(800)])
        assert np.array_equal(idx[row], np.lexsort((np.arange(800), full))[:12])


# ------------------------------------------------------------------------------------------ plugin, errors
def test_registered_through_hooks():
    from hepslim.registry import get_transform, transform_ids

    assert "negweights" in transform_ids()
    t = get_transform("negweights", method="ot", max_cell_size=50.0)
    assert isinstance(t, NegWeights) and t.method == "ot" and t.get_config()["id"] == "negweights"
    assert NegWeights.from_config(t.get_config()) == t
    with pytest.raises(CodecParameterError, match="method"):
        NegWeights(method="knn")
    with pytest.raises(CodecParameterError, match="max_cell_size"):
        NegWeights(max_cell_size=-1.0)


def test_apply_on_awkward_events():
    ev = generate_nlo(1500, 8)
    out = NegWeights().apply(ev)
    assert np.asarray(out.weight).min() >= 0
    assert math.fsum(np.asarray(out.weight)) == pytest.approx(math.fsum(np.asarray(ev.weight)), rel=1e-12)
    assert out.particles.tolist() == ev.particles.tolist()


# ------------------------------------------------------------------------------------------ I/O
_WGT = re.compile(r"(<wgt[^>]*>)\s*\S+\s*(</wgt>)")


def _strip_weights(text: str) -> list[str]:
    out = []
    lines = text.splitlines()
    in_event = False
    first = False
    for line in lines:
        if line.startswith("<event"):
            in_event, first = True, True
            out.append(line)
            continue
        if in_event and first:
            tok = line.split()
            out.append(" ".join(tok[:2] + tok[3:]))
            first = False
            continue
        if line.startswith("</event"):
            in_event = False
        out.append(_WGT.sub(r"\1\2", line))
    return out


def test_lhe_round_trip_keeps_everything_but_weights(tmp_path):
    import pylhe

    src = tmp_path / "nlo.lhe.gz"
    write_nlo_lhe(generate_nlo(600, 12), src)
    out = tmp_path / "out.lhe.gz"
    rep = resample(src, out, diagnostics=False)
    a = gzip.decompress(src.read_bytes()).decode()
    b = gzip.decompress(out.read_bytes()).decode()
    assert _strip_weights(a) == _strip_weights(b)  # same header, same particle lines, byte for byte
    ea = pylhe.to_awkward(pylhe.LHEFile.fromfile(str(src)).events)
    eb = pylhe.to_awkward(pylhe.LHEFile.fromfile(str(out)).events)
    assert ea.particles.tolist() == eb.particles.tolist()
    wb = np.asarray(eb.eventinfo.weight)
    assert wb.min() >= 0 and rep.r_neg_after == 0.0
    assert math.fsum(wb) == pytest.approx(math.fsum(np.asarray(ea.eventinfo.weight)), rel=1e-9)
    for f in ea.weights.fields:  # variations averaged in the same cells: sums kept
        assert math.fsum(np.asarray(eb.weights[f])) == pytest.approx(math.fsum(np.asarray(ea.weights[f])), rel=1e-9)


def test_powheg_lhe_with_variations(tmp_path):
    out = tmp_path / "w.lhe"
    rep = resample(POWHEG, out, classifier=False)
    assert rep.n_variations == 1 and rep.r_neg_before > 0 and rep.r_neg_after == 0.0
    a = POWHEG.read_text().splitlines()
    b = out.read_text().splitlines()
    assert len(a) == len(b)
    changed = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    assert changed and all("<wgt" in b[i] or b[i - 1].startswith("<event") for i in changed)
    assert rep.sum_w_rel_diff <= 1e-12


@pytest.fixture(scope="module")
def nano_small(tmp_path_factory):
    """nano_dy.root cut down to the generator branches and a few reco collections (uproot writes ~1500
    branches slowly; the full file is exercised by the slow test below)."""
    import uproot

    keep = ("genWeight", "LHEWeight_", "LHEScaleWeight", "LHEPdfWeight", "nLHEScaleWeight", "nLHEPdfWeight",
            "LHEPart_", "nLHEPart", "GenJet_", "nGenJet", "GenDressedLepton_", "nGenDressedLepton",
            "Electron_pt", "Electron_eta", "nElectron", "nJet", "event", "run")
    with uproot.open(NANO_DY) as f:
        t = f["Events"]
        names = [k for k in t.keys() if k.startswith(keep)]
        arrays = t.arrays(names, library="ak", how=dict)
    from hepslim.plugins.negweights.io import _root_tree_dict

    path = tmp_path_factory.mktemp("nano") / "nano_dy_small.root"
    with uproot.recreate(path) as f:
        f.mktree("Events", _root_tree_dict(arrays), counter_name=lambda c: f"n{c}",
                 field_name=lambda o, i: f"{o}_{i}")
    return path


@pytest.mark.slow
def test_nanoaod_full_file_round_trip(tmp_path):
    _check_nano_round_trip(NANO_DY, tmp_path)


def test_nanoaod_root_round_trip(tmp_path, nano_small):
    _check_nano_round_trip(nano_small, tmp_path)


def _check_nano_round_trip(src, tmp_path):
    import uproot

    out = tmp_path / "dy.root"
    rep = resample(src, out, classifier=False, report_dir=tmp_path / "rep")
    assert rep.neg_fraction_before > 0.15 and rep.r_neg_after == 0.0
    assert (tmp_path / "rep" / "report.json").exists() and (tmp_path / "rep" / "observables.png").exists()
    a = uproot.open(src)["Events"]
    b = uproot.open(out)["Events"]
    assert set(a.keys()) == set(b.keys())
    import awkward as ak

    for k in ("Electron_pt", "LHEPart_pt", "nJet", "event", "LHEPdfWeight"):
        x, y = a[k].array(library="ak"), b[k].array(library="ak")
        if k != "LHEPdfWeight":
            assert ak.to_list(x) == ak.to_list(y)
        else:  # a ratio to the (resampled) nominal: same shape, finite
            assert ak.to_list(ak.num(x)) == ak.to_list(ak.num(y)) and np.isfinite(ak.to_numpy(ak.flatten(y))).all()
    g0 = a["genWeight"].array(library="np").astype(np.float64)
    g1 = b["genWeight"].array(library="np").astype(np.float64)
    assert g1.min() >= 0
    assert math.fsum(g1) == pytest.approx(math.fsum(g0), rel=1e-9)  # float32 storage, sum kept
    drop = tmp_path / "dy_drop.root"
    rep2 = resample(src, drop, drop_zero=True, diagnostics=False)
    assert uproot.open(drop)["Events"].num_entries == rep2.n_written == rep.n_events - rep.n_zero_after


def test_joint_inputs_and_refuse_overwrite(tmp_path):
    a, b = tmp_path / "a.lhe", tmp_path / "b.lhe"
    write_nlo_lhe(generate_nlo(300, 1), a)
    write_nlo_lhe(generate_nlo(300, 2), b)
    outdir = tmp_path / "out"
    outdir.mkdir()
    rep = resample([a, b], outdir, diagnostics=False)
    assert rep.n_events == 600 and (outdir / "a.lhe").exists() and (outdir / "b.lhe").exists()
    with pytest.raises(FormatError, match="overwrite"):
        resample([a], a, diagnostics=False)
    pq = tmp_path / "joint.parquet"
    rep = resample([a, b], pq, diagnostics=False)
    import awkward as ak

    ev = ak.from_parquet(pq)
    assert len(ev) == 600 and np.asarray(ev.eventinfo.weight).min() >= 0


def test_cli_json(tmp_path, capsys):
    from hepslim.cli import main

    src = tmp_path / "in.lhe"
    write_nlo_lhe(generate_nlo(500, 3), src)
    assert main(["resample", str(src), "-o", str(tmp_path / "o.lhe"), "--method", "ot", "--json",
                 "--no-classifier"]) == 0
    rep = json.loads(capsys.readouterr().out)
    for key in ("r_neg_before", "r_neg_after", "neg_fraction_before", "neg_fraction_after", "sum_w_before",
                "sum_w_after", "n_eff_before", "n_eff_after", "n_cells", "cell_radius", "chi2_ndf",
                "classifier_auc"):
        assert key in rep
    assert rep["method"] == "ot" and rep["r_neg_after"] == 0.0


def test_lhe_to_root_and_hepslim_container(tmp_path, nano_small):
    import awkward as ak
    import uproot

    import hepslim.io as hio

    root_out = tmp_path / "w.root"
    rep = resample(POWHEG, root_out, diagnostics=False)
    t = uproot.open(root_out)["Events"]
    assert {"nLHEPart", "LHEPart_pt", "LHEPart_pdgId", "LHEPart_status", "genWeight", "LHEWeight_ct10"} <= set(t.keys())
    assert t["genWeight"].array(library="np").min() >= 0
    # the ROOT file is a valid input again and gives the same events
    rep2 = resample(root_out, None, diagnostics=False)
    assert rep2.n_events == rep.n_events and rep2.r_neg_before == 0.0
    # NanoAOD in, hepslim container (Zarr through hepslim.io.write) out, read back with hepslim.io.open
    zout = tmp_path / "dy.zarr"
    rep3 = resample(nano_small, zout, diagnostics=False)
    ev = hio.open(zout)
    g = np.asarray(ev.genWeight, dtype=np.float64)
    assert len(g) == rep3.n_events and g.min() >= 0
    assert math.fsum(g) == pytest.approx(rep3.sum_w_before, rel=1e-6)
    src = uproot.open(nano_small)["Events"]
    assert ak.to_list(ev.LHEPart_pt) == ak.to_list(src["LHEPart_pt"].array())


def test_apply_on_nanoaod_branches(nano_small):
    import awkward as ak
    import uproot

    ev = uproot.open(nano_small)["Events"].arrays()
    out = NegWeights().apply(ev)
    assert out.fields == ev.fields
    g0, g1 = np.asarray(ev.genWeight, np.float64), np.asarray(out.genWeight, np.float64)
    assert g1.min() >= 0 and (g0 < 0).any()
    assert math.fsum(g1) == pytest.approx(math.fsum(g0), rel=1e-6)
    assert ak.to_list(out.LHEPart_pt) == ak.to_list(ev.LHEPart_pt)
    assert ak.to_list(ak.num(out.LHEScaleWeight)) == ak.to_list(ak.num(ev.LHEScaleWeight))


def test_lhe_drop_zero(tmp_path):
    import awkward as ak
    import pylhe

    ev = generate_nlo(400, 31)
    w = np.where(np.asarray(ev.weight) < 0, -1.0, 1.0)  # equal |w|: many cells sum to exactly 0
    ev = ak.with_field(ev, w, "weight")
    ev = ak.with_field(ev, w[:, None] * np.ones((1, 4)), "variations")
    src = tmp_path / "pm.lhe"
    write_nlo_lhe(ev, src)
    full, dropped = tmp_path / "full.lhe", tmp_path / "drop.lhe"
    rep = resample(src, full, diagnostics=False)
    rep2 = resample(src, dropped, drop_zero=True, diagnostics=False)
    assert rep.n_zero_after > 0 and rep2.n_written == rep.n_events - rep.n_zero_after
    a = pylhe.to_awkward(pylhe.LHEFile.fromfile(str(full)).events)
    b = pylhe.to_awkward(pylhe.LHEFile.fromfile(str(dropped)).events)
    keep = np.asarray(a.eventinfo.weight) != 0
    assert len(b) == int(keep.sum())
    assert ak.to_list(b.particles) == ak.to_list(a.particles[keep])
    assert math.fsum(np.asarray(b.eventinfo.weight)) == pytest.approx(math.fsum(w), rel=1e-9)


def test_lhe_old_style_weights_block(tmp_path):
    import awkward as ak
    import pylhe

    src = tmp_path / "rwgt.lhe"
    write_nlo_lhe(generate_nlo(300, 41), src)
    text = src.read_text()

    def to_block(m: re.Match) -> str:
        vals = re.findall(r"<wgt id='[^']*'>\s*(\S+)\s*</wgt>", m.group(0))
        return "<weights> " + " ".join(vals) + " </weights>"

    old = tmp_path / "weights.lhe"
    old.write_text(re.sub(r"<rwgt>.*?</rwgt>", to_block, text, flags=re.S))
    out = tmp_path / "out.lhe"
    resample(old, out, diagnostics=False)
    ref = tmp_path / "ref.lhe"
    resample(src, ref, diagnostics=False)
    a = pylhe.to_awkward(pylhe.LHEFile.fromfile(str(out)).events)
    b = pylhe.to_awkward(pylhe.LHEFile.fromfile(str(ref)).events)
    for f in b.weights.fields:  # same cells, same variations, whichever way they are written
        assert np.allclose(np.asarray(a.weights[f]), np.asarray(b.weights[f]), rtol=1e-9)
    assert ak.to_list(a.particles) == ak.to_list(b.particles)
    assert out.read_text().count("<weights>") == 300
