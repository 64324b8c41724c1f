"""Two-sample classifier test: can a classifier tell original from compressed objects?

Events are split at random into two disjoint halves; objects of the first half are taken from the
original file and objects of the second half from the compressed file, so a classifier cannot pair an
object with its compressed twin. Training and test sets are split by event too (objects of one event are
not independent), and the AUC's uncertainty includes a bootstrap over test events. A gradient-boosted classifier (scikit-learn HistGradientBoosting) is
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


def _matrix(arr: Any, names: list[str], events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows of the given events and, per row, the event it belongs to."""
    import awkward as ak

    sub = arr[events]
    cols = [flat_values(sub[n]).astype(np.float64) for n in names]
    x = np.stack(cols, axis=1) if cols else np.zeros((0, 0))
    first = sub[names[0]] if names else None
    if first is not None and first.ndim > 1:
        ev = np.repeat(np.asarray(events), ak.to_numpy(ak.num(first)))
    else:
        ev = np.asarray(events)
    return x, ev


def _finite_columns(xo: np.ndarray, xc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """+-inf become NaN (which the classifier handles as missing); columns with no finite value in either
    sample are left out (they carry no information, and HistGradientBoosting's binning fails on them)."""
    xo, xc = xo.copy(), xc.copy()
    xo[np.isinf(xo)] = np.nan
    xc[np.isinf(xc)] = np.nan
    keep = np.isfinite(xo).any(axis=0) | np.isfinite(xc).any(axis=0)
    return xo[:, keep], xc[:, keep], keep


def _threads(n: int | None) -> Any:
    from contextlib import nullcontext

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        return nullcontext()
    return threadpool_limits(limits=n) if n else nullcontext()


def _hgb_test(
    xo: np.ndarray, xc: np.ndarray, seed: int, max_rows: int,
    eo: np.ndarray | None = None, ec: np.ndarray | None = None,
) -> dict[str, Any]:
    """Train on half of the *events* of each sample, test on the other half.

    Objects of one event share event-level structure (the same parents, the same pile of rounded values),
    so splitting objects at random would let the classifier recognise events it saw in training, and
    through them the sample: the split is by event, and the AUC's uncertainty is the larger of the
    Hanley-McNeil error and a bootstrap over test events (objects of one event are not independent).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    eo = np.arange(len(xo)) if eo is None else eo
    ec = np.arange(len(xc)) + (int(eo.max()) + 1 if eo.size else 0) if ec is None else ec
    xo, xc, _ = _finite_columns(xo, xc)
    if xo.shape[1] == 0:
        return {"auc": 0.5, "sigma": float("inf"), "n_train": 0, "n_test": 0, "skipped": "no finite feature"}

    def split(e: np.ndarray) -> np.ndarray:
        u = np.unique(e)
        train_ev = rng.choice(u, u.size // 2, replace=False)
        return np.isin(e, train_ev)

    to, tc = split(eo), split(ec)

    def cap(x: np.ndarray, e: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        if len(x) > limit:
            sel = np.sort(rng.choice(len(x), limit, replace=False))
            return x[sel], e[sel]
        return x, e

    half_rows = max(max_rows // 2, 1)
    xo_tr, _ = cap(xo[to], eo[to], half_rows)
    xc_tr, _ = cap(xc[tc], ec[tc], half_rows)
    xo_te, eo_te = cap(xo[~to], eo[~to], half_rows)
    xc_te, ec_te = cap(xc[~tc], ec[~tc], half_rows)
    x_tr = np.concatenate([xo_tr, xc_tr])
    y_tr = np.concatenate([np.zeros(len(xo_tr)), np.ones(len(xc_tr))])
    x_te = np.concatenate([xo_te, xc_te])
    y_te = np.concatenate([np.zeros(len(xo_te)), np.ones(len(xc_te))])
    # comp events get their own ids so that the bootstrap below treats the two samples' events apart
    g_te = np.concatenate([eo_te * 2, ec_te * 2 + 1])
    if len(y_tr) < 4 or not (0 < y_tr.sum() < len(y_tr)) or not (0 < y_te.sum() < len(y_te)):
        return {"auc": 0.5, "sigma": float("inf"), "n_train": len(y_tr), "n_test": len(y_te),
                "skipped": "too few rows"}
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
    # OpenMP threads only pay off on very large inputs; on smaller ones (and busy machines) they cost 10-30x
    with _threads(1 if len(y_tr) < 1_000_000 else None):
        clf.fit(x_tr, y_tr)
        p = clf.predict_proba(x_te)[:, 1]
    auc = float(roc_auc_score(y_te, p))
    sigma = auc_sigma(auc, int(y_te.sum()), int(len(y_te) - y_te.sum()))
    groups, inv = np.unique(g_te, return_inverse=True)
    if groups.size < len(y_te):  # several objects per event: bootstrap over events
        boots = []
        for _ in range(50):
            w = np.bincount(rng.integers(0, groups.size, groups.size), minlength=groups.size)[inv]
            if 0 < (w * y_te).sum() < w.sum():
                boots.append(roc_auc_score(y_te, p, sample_weight=w))
        if len(boots) > 10:
            sigma = max(sigma, float(np.std(boots, ddof=1)))
    return {"auc": auc, "sigma": sigma, "n_train": len(y_tr), "n_test": len(y_te),
            "n_test_events": int(groups.size)}


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
        xo, eo = _matrix(orig, names, half_a)
        xc, ec = _matrix(comp, names, half_b)
        if len(xo) < 20 or len(xc) < 20:
            tests[g] = {"auc": 0.5, "sigma": float("inf"), "skipped": "too few rows", "features": names}
            continue
        r = _hgb_test(xo, xc, seed, max_rows, eo, ec)
        r["features"] = names
        r["model"] = "HistGradientBoosting"
        if abs(r["auc"] - 0.5) > 2 * r["sigma"] and len(names) > 1:
            # attribution: which branches give it away on their own (single-feature classifiers)
            r["per_feature_auc"] = {
                nm: round(_hgb_test(xo[:, [i]], xc[:, [i]], seed, min(max_rows, 50_000), eo, ec)["auc"], 4)
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
