"""Physics observables (branches plus derived quantities) and their original-vs-compressed distributions.

Each observable is compared as two samples: histogram chi2/ndf (quantile bins of the original, with
under/overflow), Kolmogorov-Smirnov and Wasserstein-1. Their statistical expectation is what two
independent samples of the same size would give: chi2/ndf ~ 1, KS ~ 0.87 sqrt(2/n), and W1 measured
between two random halves of the original (scaled to full size). An observable is distinguishable when
the chi2 or KS p-value falls below ``0.01 / n_observables`` (Bonferroni over all observables).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hepslim.validate.branches import flat_values

Pair = tuple[np.ndarray, np.ndarray]
_KS_MEAN = 0.8687  # mean of the Kolmogorov distribution: E[sqrt(n/2) D] for two independent samples


# ------------------------------------------------------------------------------------ derived physics
def _kin(pt: Any, eta: Any, phi: Any, m: Any) -> tuple[Any, Any, Any, Any]:
    from hepslim.samples._physics import px_py_pz_e

    return px_py_pz_e(pt, eta, phi, m)


def _pair_mass(a: Any, b: Any) -> np.ndarray:
    """Invariant mass of two objects (records with pt, eta, phi, mass)."""
    import awkward as ak

    px1, py1, pz1, e1 = _kin(a.pt, a.eta, a.phi, a.mass)
    px2, py2, pz2, e2 = _kin(b.pt, b.eta, b.phi, b.mass)
    m2 = (e1 + e2) ** 2 - (px1 + px2) ** 2 - (py1 + py2) ** 2 - (pz1 + pz2) ** 2
    return np.sqrt(np.maximum(ak.to_numpy(m2).astype(np.float64), 0.0))


def _collection(arr: Any, name: str, fields: tuple[str, ...] = ("pt", "eta", "phi", "mass")) -> Any:
    import awkward as ak

    if not all(f"{name}_{f}" in arr.fields for f in fields):
        return None
    return ak.zip({f: arr[f"{name}_{f}"] for f in fields})


def _leading_two(coll: Any) -> tuple[Any, Any]:
    import awkward as ak

    coll = coll[ak.argsort(coll.pt, axis=1, ascending=False)]
    two = coll[ak.num(coll) >= 2]
    return two[:, 0], two[:, 1]


def _dijet(arr: Any, name: str) -> dict[str, np.ndarray]:
    from hepslim.samples._physics import delta_r

    c = _collection(arr, name)
    if c is None:
        return {}
    import awkward as ak

    j1, j2 = _leading_two(c)
    return {
        f"di{name}_mass": _pair_mass(j1, j2),
        f"di{name}_deltaR": ak.to_numpy(delta_r(j1.eta, j1.phi, j2.eta, j2.phi)).astype(np.float64),
    }


def _dilepton(arr: Any) -> dict[str, np.ndarray]:
    import awkward as ak

    parts = [c for c in (_collection(arr, "Muon"), _collection(arr, "Electron")) if c is not None]
    if not parts:
        return {}
    leps = ak.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    out: dict[str, np.ndarray] = {}
    l1, l2 = _leading_two(leps)
    out["dilepton_mass"] = _pair_mass(l1, l2)
    if "MET_pt" in arr.fields and "MET_phi" in arr.fields:
        has = ak.num(leps) >= 1
        lead = leps[has][ak.argmax(leps.pt[has], axis=1, keepdims=True)][:, 0]
        met, mphi = arr.MET_pt[has], arr.MET_phi[has]
        mt = np.sqrt(np.maximum(2 * lead.pt * met * (1 - np.cos(lead.phi - mphi)), 0.0))
        out["mT_lepton_MET"] = ak.to_numpy(mt).astype(np.float64)
    return out


def _met(arr: Any) -> dict[str, np.ndarray]:
    if "MET_pt" not in arr.fields or "MET_phi" not in arr.fields:
        return {}
    mx = np.asarray(arr.MET_pt, np.float64) * np.cos(np.asarray(arr.MET_phi, np.float64))
    my = np.asarray(arr.MET_pt, np.float64) * np.sin(np.asarray(arr.MET_phi, np.float64))
    return {"MET_x": mx, "MET_y": my}


def _fatjet_ratios(arr: Any, name: str = "FatJet") -> dict[str, np.ndarray]:
    f = arr.fields
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for num, den, key in (("tau2", "tau1", "tau21"), ("tau3", "tau2", "tau32")):
            if f"{name}_{num}" in f and f"{name}_{den}" in f:
                a = flat_values(arr[f"{name}_{num}"]).astype(np.float64)
                b = flat_values(arr[f"{name}_{den}"]).astype(np.float64)
                out[f"{name}_{key}"] = np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)
    return out


def jet_constituents(arr: Any) -> tuple[Any, float, str] | None:
    """Constituents per jet as a flat list of jets of records {px, py, pz, e, ...}, the jet radius and the
    source layout (``part_*`` JetClass-style, or ``PFCands`` + ``JetPFCands`` PFNano-style); else None."""
    import awkward as ak

    f = set(arr.fields)
    if {"part_px", "part_py", "part_pz", "part_energy"} <= f:
        cons = ak.zip({"px": arr.part_px, "py": arr.part_py, "pz": arr.part_pz, "e": arr.part_energy})
        extra = {k[5:]: arr[k] for k in ("part_deta", "part_dphi", "part_d0", "part_dz", "part_charge") if k in f}
        for k, v in extra.items():
            cons = ak.with_field(cons, v, k)
        return cons, 0.8, "jetclass"
    need = {"PFCands_pt", "PFCands_eta", "PFCands_phi", "PFCands_mass", "JetPFCands_jetIdx", "JetPFCands_pFCandsIdx"}
    if need <= f and "Jet_pt" in f:
        from hepslim.samples._physics import delta_phi

        idx = arr.JetPFCands_pFCandsIdx
        jet = arr.JetPFCands_jetIdx
        njet = ak.to_numpy(ak.num(arr.Jet_pt))
        joff = np.concatenate([[0], np.cumsum(njet)])
        npair = ak.to_numpy(ak.num(jet))
        evt = np.repeat(np.arange(len(arr)), npair)
        key = joff[evt] + ak.to_numpy(ak.flatten(jet)).astype(np.int64)
        order = np.argsort(key, kind="stable")
        counts = np.bincount(key, minlength=joff[-1])
        pt, eta, phi, m = (ak.to_numpy(ak.flatten(arr[f"PFCands_{k}"][idx])).astype(np.float64)
                           for k in ("pt", "eta", "phi", "mass"))  # fmt: skip
        px, py, pz, e = _kin(pt, eta, phi, m)
        jeta = ak.to_numpy(ak.flatten(arr.Jet_eta)).astype(np.float64)[key]
        jphi = ak.to_numpy(ak.flatten(arr.Jet_phi)).astype(np.float64)[key]
        rec = {"px": px, "py": py, "pz": pz, "e": e, "deta": eta - jeta, "dphi": delta_phi(phi, jphi)}
        for k in ("d0", "dz", "charge"):
            if f"PFCands_{k}" in f:
                rec[k] = ak.to_numpy(ak.flatten(arr[f"PFCands_{k}"][idx])).astype(np.float64)
        cons = ak.unflatten(ak.zip({k: v[order] for k, v in rec.items()}), counts)
        return cons, 0.4, "pfnano"
    return None


def _constituent_observables(arr: Any, notes: list[str]) -> dict[str, np.ndarray]:
    import awkward as ak

    got = jet_constituents(arr)
    if got is None:
        return {}
    cons, radius, _ = got
    px, py, pz, e = (ak.sum(cons[k], axis=1) for k in ("px", "py", "pz", "e"))
    out = {
        "jet_pt_from_constituents": ak.to_numpy(np.hypot(px, py)).astype(np.float64),
        "jet_mass_from_constituents": np.sqrt(np.maximum(ak.to_numpy(e * e - px * px - py * py - pz * pz), 0.0)),
        "constituent_pt": ak.to_numpy(ak.flatten(np.hypot(cons.px, cons.py))).astype(np.float64),
    }
    try:
        from hepslim.samples._physics import substructure

        sub = substructure(cons.px, cons.py, cons.pz, cons.e, radius)
    except ImportError:
        notes.append("fastjet is not installed: tau21/tau32/soft-drop mass from constituents skipped")
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        out["jet_tau21_from_constituents"] = np.where(sub["tau1"] > 0, sub["tau2"] / np.where(sub["tau1"] > 0, sub["tau1"], 1), 0.0)
        out["jet_tau32_from_constituents"] = np.where(sub["tau2"] > 0, sub["tau3"] / np.where(sub["tau2"] > 0, sub["tau2"], 1), 0.0)
    out["jet_sdmass_from_constituents"] = sub["msoftdrop"]
    return out


DERIVERS: tuple[Callable[[Any], dict[str, np.ndarray]], ...] = (
    lambda a: _dijet(a, "Jet"),
    lambda a: _dijet(a, "FatJet"),
    _fatjet_ratios,
    _dilepton,
    _met,
)


def derived_observables(arr: Any, notes: list[str] | None = None) -> dict[str, np.ndarray]:
    """Derived physics observables available in ``arr``: dijet mass and Delta R, dilepton mass,
    transverse mass of the leading lepton and MET, MET components, fat-jet tau21/tau32, and from
    constituents the jet pT, mass, soft-drop mass and tau21/tau32 (FastJet)."""
    notes = notes if notes is not None else []
    out: dict[str, np.ndarray] = {}
    for fn in DERIVERS:
        out.update(fn(arr))
    out.update(_constituent_observables(arr, notes))
    return out


# ------------------------------------------------------------------------------ two-sample comparison
def _edges(o: np.ndarray, nbins: int) -> np.ndarray:
    u = np.unique(o)
    if u.size <= nbins:  # discrete: one bin per value
        mids = (u[1:] + u[:-1]) / 2 if u.size > 1 else np.zeros(0)
        return np.concatenate([[-np.inf], mids, [np.inf]])
    q = np.unique(np.quantile(o, np.linspace(0.005, 0.995, nbins + 1)))
    # Quantiles of piled-up data (production NanoAOD rounds to a grid: scores at 1 - 2**-11, fractions at
    # exactly 0 or 1) land on the piles themselves; a sub-resolution shift of a pile would then cross an
    # edge. Put every edge halfway between two distinct values of the original instead.
    i = np.clip(np.searchsorted(u, q, side="right"), 1, u.size - 1)
    q = np.unique((u[i - 1] + u[i]) / 2)
    return np.concatenate([[-np.inf], q, [np.inf]])


def compare_distributions(o: np.ndarray, c: np.ndarray, rng: np.random.Generator, nbins: int = 40) -> dict[str, Any]:
    """chi2/ndf, KS and W1 between two samples, with their statistical expectations and p-values."""
    from scipy import stats

    ok = np.isfinite(o) & np.isfinite(c) if o.size == c.size else None
    if ok is not None:
        o, c = o[ok], c[ok]
    else:
        o, c = o[np.isfinite(o)], c[np.isfinite(c)]
    n = min(o.size, c.size)
    res: dict[str, Any] = {"n": int(n)}
    if n < 2:
        res.update(chi2_ndf=0.0, chi2_p=1.0, ks=0.0, ks_p=1.0, ks_expected=0.0, w1=0.0, w1_expected=0.0)
        return res
    edges = _edges(o, nbins)
    ho, _ = np.histogram(o, edges)
    hc, _ = np.histogram(c, edges)
    s = ho + hc
    nz = s > 0
    chi2 = float(np.sum((ho[nz] - hc[nz]) ** 2 / s[nz]))
    ndf = max(int(nz.sum()) - 1, 1)
    res["chi2_ndf"] = chi2 / ndf
    res["ndf"] = ndf
    res["chi2_p"] = float(stats.chi2.sf(chi2, ndf))
    if np.array_equal(o, c):
        res.update(ks=0.0, ks_p=1.0)
    else:
        ks = stats.ks_2samp(o, c)
        res.update(ks=float(ks.statistic), ks_p=float(ks.pvalue))
    res["ks_expected"] = _KS_MEAN * float(np.sqrt(2.0 / n))
    res["w1"] = float(stats.wasserstein_distance(o, c)) if not np.array_equal(o, c) else 0.0
    perm = rng.permutation(o.size)
    half = o.size // 2
    w_half = float(stats.wasserstein_distance(o[perm[:half]], o[perm[half : 2 * half]])) if half else 0.0
    res["w1_expected"] = w_half / np.sqrt(2.0)
    res["w1_over_expected"] = res["w1"] / res["w1_expected"] if res["w1_expected"] > 0 else 0.0
    return res


def compare_observables(
    orig: Any, comp: Any, *, max_values: int = 1_000_000, seed: int = 0, notes: list[str] | None = None,
    include_branches: bool = True,
) -> tuple[dict[str, Any], dict[str, Pair]]:
    """The ``observables`` benchmark over all numeric branches plus derived observables.

    Returns (result, samples) where ``samples`` maps observable -> (original, compressed) values for plots.
    """
    notes = notes if notes is not None else []
    rng = np.random.default_rng(seed)
    pairs: dict[str, Pair] = {}
    if include_branches:
        for name in sorted(set(orig.fields) & set(comp.fields)):
            a, b = flat_values(orig[name]), flat_values(comp[name])
            if a.dtype.kind in "biuf" and a.size == b.size and a.dtype.kind != "b":
                pairs[name] = (a.astype(np.float64), b.astype(np.float64))
    do = derived_observables(orig, notes)
    dc = derived_observables(comp, [])
    for k in do:
        if k in dc:
            pairs[f"derived:{k}"] = (do[k], dc[k])
    for k, (a, b) in list(pairs.items()):
        if a.size > max_values and a.size == b.size:
            pick = np.sort(rng.choice(a.size, max_values, replace=False))
            pairs[k] = (a[pick], b[pick])
    alpha = 0.01 / max(len(pairs), 1)
    per: dict[str, Any] = {}
    flagged: list[str] = []
    for k, (a, b) in pairs.items():
        r = compare_distributions(a, b, rng)
        r["distinguishable"] = bool(r["chi2_p"] < alpha or r["ks_p"] < alpha)
        per[k] = r
        if r["distinguishable"]:
            flagged.append(k)
    result = {
        "verdict": "distinguishable" if flagged else "indistinguishable",
        "alpha": alpha,
        "n_observables": len(per),
        "distinguishable": flagged,
        "derived": sorted(k for k in per if k.startswith("derived:")),
        "per_observable": per,
    }
    return result, pairs
