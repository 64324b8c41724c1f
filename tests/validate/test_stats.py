"""The statistics behind the verdicts, on synthetic numbers with known answers."""

from __future__ import annotations

import awkward as ak
import numpy as np

from hepslim.validate.branches import branch_errors, compare_branches
from hepslim.validate.classifier import auc_sigma, z_threshold
from hepslim.validate.observables import compare_distributions
from hepslim.validate.tagger import roc_metrics


def test_branch_errors_known_values() -> None:
    o = np.array([1.0, 2.0, -4.0, 0.0, np.nan], np.float32)
    c = np.array([1.0, 2.5, -4.0, 0.0, np.nan], np.float32)
    r = branch_errors(o, c, {"kind": "rel", "value": 0.5})
    assert r["max_abs"] == 0.5 and r["max_rel"] == 0.25
    assert r["frac_unchanged"] == 0.8 and r["nan_mismatch"] == 0
    assert r["bias"] == 0.5 / 4
    assert r["worst_over_bound"] == 0.5
    assert branch_errors(o, o)["frac_unchanged"] == 1.0


def test_angle_bound_is_periodic() -> None:
    o = np.array([np.pi - 0.001], np.float64)
    c = np.array([-np.pi + 0.001], np.float64)
    r = branch_errors(o, c, {"kind": "angle", "value": 0.004})
    assert abs(r["worst_over_bound"] - 0.5) < 1e-6


def test_compare_branches_flags_real_damage() -> None:
    o = ak.Array({"Jet_pt": [[1.0, 2.0], [3.0]], "nJet": [2, 1], "Jet_id": [[1, 2], [3]], "x": [1.0, 2.0]})
    same = compare_branches(o, o)
    assert same["verdict"] == "indistinguishable" and same["n_changed"] == 0
    bad_len = ak.Array({"Jet_pt": [[1.0], [3.0, 4.0]], "nJet": [1, 2], "Jet_id": [[1], [3, 4]], "x": [1.0, 2.0]})
    assert compare_branches(o, bad_len)["verdict"] == "distinguishable"
    bad_int = ak.Array({"Jet_pt": [[1.0, 2.0], [3.0]], "nJet": [2, 1], "Jet_id": [[1, 2], [4]], "x": [1.0, 2.0]})
    assert any("integer" in p for p in compare_branches(o, bad_int)["problems"])
    missing = ak.Array({"Jet_pt": [[1.0, 2.0], [3.0]], "Jet_id": [[1, 2], [3]]})
    res = compare_branches(o, missing)
    assert res["missing"] == ["x"]  # the counter nJet may be implicit, x may not
    over = compare_branches(o, ak.Array({**{f: o[f] for f in o.fields}, "x": [1.5, 2.0]}), {"x": {"kind": "abs", "value": 0.1}})
    assert over["verdict"] == "distinguishable" and over["per_branch"]["x"]["worst_over_bound"] == 5.0


def test_distribution_tests_against_expectation() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=20_000)
    ident = compare_distributions(x, x.copy(), rng)
    assert ident["chi2_ndf"] == 0 and ident["ks"] == 0 and ident["w1"] == 0
    # a tiny perturbation far below the statistical resolution is not visible
    tiny = compare_distributions(x, x * (1 + 1e-4), rng)
    assert tiny["chi2_p"] > 0.01 and tiny["ks_p"] > 0.01
    # a 5% scale shift is, by far
    shifted = compare_distributions(x, x * 1.05 + 0.05, rng)
    assert shifted["ks_p"] < 1e-6 and shifted["w1"] > 3 * shifted["w1_expected"]
    # W1 expectation is the size of the statistical noise between independent samples
    y = rng.normal(size=20_000)
    indep = compare_distributions(x, y, rng)
    assert 0.2 < indep["w1"] / indep["w1_expected"] < 5
    assert 0.2 < indep["ks"] / indep["ks_expected"] < 5


def test_auc_sigma_matches_the_null_variance() -> None:
    # at AUC = 0.5 the Hanley-McNeil variance is (n1 + n0 + 1) / (12 n1 n0) (Mann-Whitney null)
    n1, n0 = 400, 600
    s = auc_sigma(0.5, n1, n0)
    assert abs(s**2 - (n1 + n0 + 1) / (12 * n1 * n0)) / s**2 < 0.01
    rng = np.random.default_rng(0)
    from sklearn.metrics import roc_auc_score

    aucs = [roc_auc_score(np.r_[np.ones(n1), np.zeros(n0)], rng.random(n1 + n0)) for _ in range(400)]
    assert abs(np.std(aucs) / s - 1) < 0.15


def test_z_threshold_keeps_family_wise_rate() -> None:
    assert abs(z_threshold(1) - 2.0) < 1e-9
    assert 2.0 < z_threshold(5) < z_threshold(50)


def test_roc_metrics() -> None:
    y = np.r_[np.ones(100), np.zeros(100)]
    perfect = roc_metrics(y, np.r_[np.ones(100), np.zeros(100)] + np.linspace(0, 0.1, 200))
    assert perfect["auc"] == 1.0 and perfect["rejection_at_0.5"] == 200.0  # lower bound 2 n_bkg
    score = np.r_[np.linspace(0.5, 1.0, 100), np.linspace(0.0, 1.0, 100)]
    r = roc_metrics(y, score)
    # at eps_S = 0.5 the threshold is 0.75: a quarter of the uniform background passes
    assert abs(r["rejection_at_0.5"] - 4.0) < 0.3
