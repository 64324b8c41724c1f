"""Two-sample classifier test: can a classifier tell original from compressed objects?

Events are split at random into two disjoint halves; objects of the first half are taken from the
original file and objects of the second half from the compressed file, so a classifier cannot pair an
object with its compressed twin. A gradient-boosted classifier (scikit-learn HistGradientBoosting) is
trained per object collection (events' scalars, each jagged collection's fields per object) and, where
jet constituents exist, a small Particle Flow Network on the constituents. The test AUC carries the
Hanley-McNeil uncertainty; a test is indistinguishable when |AUC - 0.5| <= z sigma with z = 2 for one
test, raised (Bonferroni) to keep the same 4.6% family-wise false-alarm rate over several tests.
Collections whose values are bit-identical in both files are not trained on: their AUC is 0.5 exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepslim.validate.branches import flat_values

_IDS = {"run", "luminosityBlock", "event"}


def auc_sigma(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley-McNeil (1982) standard error of an AUC estimated on n_pos and n_neg examples."""
    if n_pos < 1 or n_neg < 1:
        return float("inf")
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 1e-12)))


def z_threshold(n_tests: int, base_z: float = 2.0) -> float:
    """Per-test z keeping the family-wise two-sided false-alarm rate of a single ``base_z`` test."""
    from scipy import stats

    alpha = 2 * stats.norm.sf(base_z)
    return float(stats.norm.isf(alpha / (2 * max(n_tests, 1))))


def feature_tables(arr: Any) -> dict[str, tuple[list[str], Any]]:
    """Collection -> (field names, per-row values) for the classifier: ``event`` (numeric scalars, no
    run/lumi/event ids) and each jagged collection (its numeric fields, one row per object)."""
    import awkward as ak

    groups: dict[str, list[str]] = {}
    for name in arr.fields:
        if name in _IDS:
            continue
        col = arr[name]
        kind = ak.type(col).content
        if col.ndim == 1:
            if str(kind).lstrip("?") in ("bool",):
                continue
            groups.setdefault("event", []).append(name)
        elif col.ndim == 2:
            groups.setdefault(name.partition("_")[0], []).append(name)
    out: dict[str, tuple[list[str], Any]] = {}
    for g, names in groups.items():
        if g != "event":  # one row per object: keep the fields sharing the first field's list lengths
            ref = ak.to_numpy(ak.num(arr[names[0]]))
            names = [n for n in names if np.array_equal(ak.to_numpy(ak.num(arr[n])), ref)]
        out[g] = (sorted(names), None)
    return out


def _matrix(arr: Any, names: list[str], events: np.ndarray) -> np.ndarray:
    sub = arr[events]
    cols = [flat_values(sub[n]).astype(np.float64) for n in names]
    return np.stack(cols, axis=1) if cols else np.zeros((0, 0))


def _threads(n: int | None) -> Any:
    from contextlib import nullcontext

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        return nullcontext()
    return threadpool_limits(limits=n) if n else nullcontext()


def _hgb_test(xo: np.ndarray, xc: np.ndarray, seed: int, max_rows: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    if len(xo) > max_rows:
        xo = xo[rng.choice(len(xo), max_rows, replace=False)]
    if len(xc) > max_rows:
        xc = xc[rng.choice(len(xc), max_rows, replace=False)]
    x = np.concatenate([xo, xc])
    y = np.concatenate([np.zeros(len(xo)), np.ones(len(xc))])
    perm = rng.permutation(len(y))
    x, y = x[perm], y[perm]
    half = len(y) // 2
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
    # OpenMP threads only pay off on very large inputs; on smaller ones (and busy machines) they cost 10-30x
    with _threads(1 if len(y) < 1_000_000 else None):
        clf.fit(x[:half], y[:half])
        p = clf.predict_proba(x[half:])[:, 1]
    yt = y[half:]
    auc = float(roc_auc_score(yt, p)) if 0 < yt.sum() < len(yt) else 0.5
    return {"auc": auc, "sigma": auc_sigma(auc, int(yt.sum()), int(len(yt) - yt.sum())), "n_train": half, "n_test": len(yt)}


def _pfn_test(orig: Any, comp: Any, half_a: np.ndarray, half_b: np.ndarray, seed: int, mode: dict[str, Any]) -> dict[str, Any] | None:
    from sklearn.metrics import roc_auc_score

    from hepslim.validate._torch import constituent_tensor, train_and_predict
    from hepslim.validate.observables import jet_constituents

    go, gc = jet_constituents(orig[half_a]), jet_constituents(comp[half_b])
    if go is None or gc is None:
        return None
    xo, mo = constituent_tensor(go[0], mode["max_particles"])
    xc, mc = constituent_tensor(gc[0], mode["max_particles"])
    rng = np.random.default_rng(seed)
    cap = mode["max_jets"]
    io = rng.permutation(len(xo))[:cap]
    ic = rng.permutation(len(xc))[:cap]
    x = np.concatenate([xo[io], xc[ic]])
    m = np.concatenate([mo[io], mc[ic]])
    y = np.concatenate([np.zeros(len(io)), np.ones(len(ic))])
    perm = rng.permutation(len(y))
    x, m, y = x[perm], m[perm], y[perm]
    half = len(y) // 2
    (score,) = train_and_predict(x[:half], m[:half], y[:half], [(x[half:], m[half:])], seed=seed,
                                 epochs=mode["epochs"], hidden=mode["hidden"], latent=mode["latent"])  # fmt: skip
    yt = y[half:]
    auc = float(roc_auc_score(yt, score)) if 0 < yt.sum() < len(yt) else 0.5
    return {"auc": auc, "sigma": auc_sigma(auc, int(yt.sum()), int(len(yt) - yt.sum())), "n_train": half, "n_test": len(yt), "model": "PFN"}


def classifier_test(
    orig: Any, comp: Any, *, seed: int = 0, max_rows: int = 200_000, mode: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The ``classifier`` benchmark (see the module docstring)."""
    notes = notes if notes is not None else []
    n = len(orig)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    half_a, half_b = np.sort(perm[: n // 2]), np.sort(perm[n // 2 : 2 * (n // 2)])
    tables = feature_tables(orig)
    tests: dict[str, Any] = {}
    common = set(comp.fields)
    for g, (names, _) in sorted(tables.items()):
        names = [nm for nm in names if nm in common]
        if not names:
            continue
        identical = all(np.array_equal(flat_values(orig[nm]), flat_values(comp[nm]), equal_nan=flat_values(orig[nm]).dtype.kind == "f") for nm in names)
        if identical:
            tests[g] = {"auc": 0.5, "sigma": 0.0, "identical": True, "features": names}
            continue
        xo = _matrix(orig, names, half_a)
        xc = _matrix(comp, names, half_b)
        if len(xo) < 20 or len(xc) < 20:
            tests[g] = {"auc": 0.5, "sigma": float("inf"), "skipped": "too few rows", "features": names}
            continue
        r = _hgb_test(xo, xc, seed, max_rows)
        r["features"] = names
        r["model"] = "HistGradientBoosting"
        if abs(r["auc"] - 0.5) > 2 * r["sigma"] and len(names) > 1:
            # attribution: which branches give it away on their own (single-feature classifiers)
            r["per_feature_auc"] = {
                nm: round(_hgb_test(xo[:, [i]], xc[:, [i]], seed, min(max_rows, 50_000))["auc"], 4)
                for i, nm in enumerate(names)
            }
        tests[g] = r
    if mode is not None:
        from hepslim.validate._torch import torch_or_none
        from hepslim.validate.observables import jet_constituents

        if jet_constituents(orig[:1]) is not None:
            if torch_or_none() is None:
                notes.append("torch is not installed (pip install 'hepslim[ml]'): constituent PFN two-sample test skipped")
            else:
                cons_fields = [f for f in orig.fields if f.startswith(("part_", "PFCands_"))]
                same = all(np.array_equal(flat_values(orig[f]), flat_values(comp[f])) for f in cons_fields if f in common)
                if same:
                    tests["constituents_pfn"] = {"auc": 0.5, "sigma": 0.0, "identical": True, "model": "PFN"}
                else:
                    pfn = _pfn_test(orig, comp, half_a, half_b, seed, mode)
                    if pfn is not None:
                        tests["constituents_pfn"] = pfn
    trained = [k for k, t in tests.items() if not t.get("identical") and not t.get("skipped")]
    z = z_threshold(len(trained))
    flagged = []
    for k, t in tests.items():
        sig = t["sigma"]
        t["z"] = 0.0 if t.get("identical") or not np.isfinite(sig) else (t["auc"] - 0.5) / sig
        t["distinguishable"] = bool(k in trained and abs(t["z"]) > z)
        if t["distinguishable"]:
            flagged.append(k)
    return {
        "verdict": "distinguishable" if flagged else "indistinguishable",
        "z_threshold": z,
        "n_trained": len(trained),
        "distinguishable": flagged,
        "tests": tests,
    }
