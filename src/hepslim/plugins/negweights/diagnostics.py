"""Diagnostics of a resampling: negative-weight measures, N_eff, cell statistics and a bias check.

The bias check compares weighted histograms before and after for a set of observables (most of them not
used by the distance) with chi2/ndf relative to the original statistical errors, and trains a weighted
two-sample classifier (gradient-boosted trees on the same observables) whose AUC should stay near 0.5.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hepslim.plugins.negweights.objects import FlatParticles

OBSERVABLES = ("ht", "m_vis", "y_vis", "lep1_pt", "lep1_eta", "m_ll", "pt_ll", "had1_pt", "n_had")


def weight_stats(w: np.ndarray, suffix: str) -> dict[str, float]:
    """r_neg, negative fraction, sum of weights and N_eff of ``w`` (keys end with ``suffix``)."""
    w = np.asarray(w, dtype=np.float64)
    absum = math.fsum(np.abs(w))
    s = math.fsum(w)
    s2 = math.fsum(w * w)
    return {
        f"r_neg_{suffix}": (math.fsum(-w[w < 0]) / absum) if absum > 0 else 0.0,
        f"neg_fraction_{suffix}": float(np.mean(w < 0)) if len(w) else 0.0,
        f"sum_w_{suffix}": s,
        f"n_eff_{suffix}": (s * s / s2) if s2 > 0 else 0.0,
        f"n_zero_{suffix}": int(np.count_nonzero(w == 0)),
    }


def observables(parts: FlatParticles) -> dict[str, np.ndarray]:
    """Per-event observables from final-state particles (leptons: e, mu; hadronic: the rest but photons, nu)."""
    ne = parts.n_events
    ev = np.repeat(np.arange(ne), np.diff(parts.starts))
    a = np.abs(parts.pid)
    pt = np.hypot(parts.px, parts.py)
    nu = np.isin(a, (12, 14, 16))
    vis = ~nu
    lep = np.isin(a, (11, 13))
    had = vis & ~lep & (a != 22)

    def seg_sum(x: np.ndarray, m: np.ndarray) -> np.ndarray:
        return np.bincount(ev[m], weights=x[m], minlength=ne)

    out: dict[str, np.ndarray] = {}
    out["ht"] = seg_sum(pt, vis)
    sx, sy, sz, se = (seg_sum(v, vis) for v in (parts.px, parts.py, parts.pz, parts.e))
    out["m_vis"] = np.sqrt(np.maximum(se**2 - sx**2 - sy**2 - sz**2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["y_vis"] = np.nan_to_num(0.5 * np.log((se + sz) / (se - sz)), nan=0.0, posinf=0.0, neginf=0.0)
    # leading two leptons by pT
    li = np.flatnonzero(lep)
    order = li[np.lexsort((-pt[li], ev[li]))]
    first = np.full(ne, -1)
    second = np.full(ne, -1)
    if len(order):
        e_ord = ev[order]
        starts = np.flatnonzero(np.r_[True, e_ord[1:] != e_ord[:-1]])
        first[e_ord[starts]] = order[starts]
        has2 = np.r_[starts[1:], len(order)] - starts > 1
        second[e_ord[starts[has2]]] = order[starts[has2] + 1]
    f_ok = first >= 0
    out["lep1_pt"] = np.where(f_ok, pt[first], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.divide(parts.pz, pt, out=np.zeros_like(pt), where=pt > 0))
    out["lep1_eta"] = np.where(f_ok, eta[first], 0.0)
    s_ok = f_ok & (second >= 0)
    lx = np.where(s_ok, parts.px[first] + parts.px[second], 0.0)
    ly = np.where(s_ok, parts.py[first] + parts.py[second], 0.0)
    lz = np.where(s_ok, parts.pz[first] + parts.pz[second], 0.0)
    le = np.where(s_ok, parts.e[first] + parts.e[second], 0.0)
    out["m_ll"] = np.sqrt(np.maximum(le**2 - lx**2 - ly**2 - lz**2, 0.0))
    out["pt_ll"] = np.hypot(lx, ly)
    hmax = np.zeros(ne)
    np.maximum.at(hmax, ev[had], pt[had])
    out["had1_pt"] = hmax
    out["n_had"] = np.bincount(ev[had & (pt > 20.0)], minlength=ne).astype(np.float64)
    return out


def _edges(x: np.ndarray, w: np.ndarray, nbins: int) -> np.ndarray:
    aw = np.abs(w)
    order = np.argsort(x, kind="stable")
    cw = np.cumsum(aw[order])
    if len(x) == 0 or cw[-1] <= 0:
        return np.array([0.0, 1.0])
    qs = np.interp(np.linspace(0.005, 0.995, nbins + 1) * cw[-1], cw, x[order])
    edges = np.unique(qs)
    if len(edges) < 2:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    return edges


def chi2_ndf(x: np.ndarray, w0: np.ndarray, w1: np.ndarray, nbins: int = 20) -> tuple[float, np.ndarray,
                                                                                         np.ndarray, np.ndarray, np.ndarray]:
    """chi2/ndf of the after-histogram against the before-histogram with the before statistical errors."""
    edges = _edges(x, w0, nbins)
    xc = np.clip(x, edges[0], edges[-1])
    h0, _ = np.histogram(xc, edges, weights=w0)
    v0, _ = np.histogram(xc, edges, weights=w0 * w0)
    h1, _ = np.histogram(xc, edges, weights=w1)
    ok = v0 > 0
    ndf = int(ok.sum())
    chi2 = float(np.sum((h1[ok] - h0[ok]) ** 2 / v0[ok])) / ndf if ndf else 0.0
    return chi2, edges, h0, h1, np.sqrt(v0)


def weighted_auc(score: np.ndarray, label: np.ndarray, w: np.ndarray) -> float:
    """Area under the ROC curve with (signed) event weights; ties count one half."""
    order = np.argsort(score, kind="stable")
    s, y, ww = score[order], label[order], w[order]
    wp = np.where(y == 1, ww, 0.0)
    wn = np.where(y == 0, ww, 0.0)
    # group ties
    uniq, idx = np.unique(s, return_index=True)
    bounds = np.r_[idx, len(s)]
    gp = np.add.reduceat(wp, idx) if len(s) else np.zeros(0)
    gn = np.add.reduceat(wn, idx) if len(s) else np.zeros(0)
    cum_n = np.cumsum(gn) - gn
    num = np.sum(gp * (cum_n + 0.5 * gn))
    den = gp.sum() * gn.sum()
    del uniq, bounds
    return float(num / den) if den != 0 else 0.5


def classifier_auc(features: np.ndarray, w0: np.ndarray, w1: np.ndarray, seed: int = 0,
                   max_events: int = 200_000) -> float:
    """Weighted AUC of a classifier separating (events, w0) from (events, w1); ~0.5 means no visible bias.

    Trained on one half of the events with the signed weights, evaluated on the other half.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    n = len(w0)
    idx = rng.permutation(n)[: min(n, max_events)]
    half = len(idx) // 2
    if half < 10:
        return 0.5
    tr, te = idx[:half], idx[half:]
    x = np.concatenate([features[tr], features[tr]])
    y = np.r_[np.zeros(len(tr)), np.ones(len(tr))]
    sw = np.r_[w0[tr], w1[tr]]
    scale = np.mean(np.abs(sw)) or 1.0
    clf = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, learning_rate=0.1,
                                         min_samples_leaf=50, random_state=seed)
    clf.fit(x, y, sample_weight=sw / scale)
    s = clf.predict_proba(features[te])[:, 1]
    score = np.r_[s, s]
    label = np.r_[np.zeros(len(te)), np.ones(len(te))]
    return weighted_auc(score, label, np.r_[w0[te], w1[te]])


def bias_check(parts: FlatParticles, w0: np.ndarray, w1: np.ndarray, *, seed: int = 0,
               with_classifier: bool = True) -> tuple[dict[str, float], float | None, dict[str, Any]]:
    """chi2/ndf per observable, the classifier AUC, and the histograms (for plots)."""
    obs = observables(parts)
    chi: dict[str, float] = {}
    hists: dict[str, Any] = {}
    for name in OBSERVABLES:
        c, edges, h0, h1, e0 = chi2_ndf(obs[name], w0, w1)
        chi[name] = c
        hists[name] = (edges, h0, h1, e0)
    auc = None
    if with_classifier and len(w0) >= 200:
        feats = np.stack([obs[k] for k in OBSERVABLES], axis=1)
        auc = classifier_auc(feats, w0, w1, seed=seed)
    return chi, auc, hists


def plot_report(directory: Any, hists: dict[str, Any], radius: np.ndarray, w0: np.ndarray, w1: np.ndarray,
                chi: dict[str, float]) -> list[str]:
    """Write observables.png, cell_radius.png and weights.png to ``directory``; returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    files = []
    names = list(hists)
    ncol = 3
    nrow = math.ceil(len(names) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        edges, h0, h1, e0 = hists[name]
        c = 0.5 * (edges[1:] + edges[:-1])
        width = np.diff(edges)  # |w|-quantile bins have very different widths: plot densities
        ax.stairs(h0 / width, edges, label="before", color="k")
        ax.errorbar(c, h0 / width, yerr=e0 / width, fmt="none", color="k", lw=0.8)
        ax.stairs(h1 / width, edges, label="after", color="tab:red")
        ax.set_yscale("symlog", linthresh=max(float(np.abs(h0 / width).max()) * 1e-3, 1e-300))
        ax.set_title(f"{name}  chi2/ndf={chi[name]:.2f}", fontsize=9)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(d / "observables.png", dpi=90)
    plt.close(fig)
    files.append("observables.png")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if len(radius):
        ax.hist(radius, bins=50, color="tab:blue")
    ax.set_xlabel("cell radius")
    ax.set_ylabel("cells")
    fig.tight_layout()
    fig.savefig(d / "cell_radius.png", dpi=90)
    plt.close(fig)
    files.append("cell_radius.png")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    lim = np.percentile(np.abs(w0), 99.5) if len(w0) else 1.0
    bins = np.linspace(-lim, lim, 81).tolist()
    ax.hist(np.clip(w0, -lim, lim), bins=bins, histtype="step", label="before", color="k")
    ax.hist(np.clip(w1, -lim, lim), bins=bins, histtype="step", label="after", color="tab:red")
    ax.set_yscale("log")
    ax.set_xlabel("event weight")
    ax.legend()
    fig.tight_layout()
    fig.savefig(d / "weights.png", dpi=90)
    plt.close(fig)
    files.append("weights.png")
    return files
