"""Jet-tagger benchmark: does a tagger trained or evaluated on decompressed data perform the same?

The same Particle Flow Network (fixed seeds and budget) is trained on the original and on the
decompressed training jets, and each is evaluated on the original and on the decompressed test jets (the
same jets, split once with a fixed seed). Metrics: AUC and background rejection 1/eps_B at signal
efficiencies 0.3 and 0.5, each as mean and standard deviation over the seeds. A cell is indistinguishable
from the original->original baseline when the difference of the means is within twice the larger
seed-to-seed standard deviation.

Tasks: top vs QCD (``label_Tbqq`` / ``label_QCD``, JetClass-style files) or b vs light jets
(``Jet_hadronFlavour``, PFNano-style files).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

MODES: dict[str, dict[str, Any]] = {
    "full": {"seeds": 3, "epochs": 15, "hidden": 100, "latent": 128, "max_particles": 64, "max_jets": 200_000},
    "medium": {"seeds": 3, "epochs": 5, "hidden": 32, "latent": 32, "max_particles": 48, "max_jets": 20_000},
    "reduced": {"seeds": 3, "epochs": 3, "hidden": 16, "latent": 16, "max_particles": 32, "max_jets": 2_000},
}
METRICS = ("auc", "rejection_at_0.3", "rejection_at_0.5")


def _labels(arr: Any, layout: str) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(label 0/1 per jet, mask of jets used, task name) or None."""
    import awkward as ak

    f = arr.fields
    if layout == "jetclass" and "label_Tbqq" in f:
        y = np.asarray(arr.label_Tbqq).astype(np.int64)
        use = y.astype(bool) | (np.asarray(arr.label_QCD).astype(bool) if "label_QCD" in f else ~y.astype(bool))
        return y, use, "top vs QCD"
    if layout == "pfnano" and "Jet_hadronFlavour" in f:
        fl = ak.to_numpy(ak.flatten(arr.Jet_hadronFlavour)).astype(np.int64)
        return (fl == 5).astype(np.int64), (fl == 5) | (fl == 0), "b vs light"
    return None


def roc_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUC and 1/eps_B at eps_S = 0.3 and 0.5 (a lower bound n_bkg/0.5 when no background passes)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, score)
    out = {"auc": float(roc_auc_score(y, score))}
    n_bkg = int((y == 0).sum())
    for eff in (0.3, 0.5):
        i = int(np.searchsorted(tpr, eff, side="left"))
        eb = float(fpr[min(i, len(fpr) - 1)])
        out[f"rejection_at_{eff}"] = 1.0 / eb if eb > 0 else 2.0 * n_bkg
    return out


def tagger_benchmark(
    orig: Any, comp: Any, *, mode: str = "full", seed: int = 0, notes: list[str] | None = None, max_jets: int | None = None
) -> dict[str, Any]:
    """The ``tagger`` benchmark; ``{"verdict": "skipped", "reason": ...}`` when it cannot run.

    ``max_jets`` overrides the mode's cap on the labelled jets used (train + test): e.g. the medium network
    on every jet of a large sample. Trainings are cached in-process by a hash of their data and settings, so
    validating several compressed files against one original trains the baseline once (and a lossless file,
    whose data are the original's, costs no training at all)."""
    from hepslim.validate._torch import constituent_tensor, torch_or_none, train_and_predict
    from hepslim.validate.observables import jet_constituents

    notes = notes if notes is not None else []
    cfg = dict(MODES[mode])
    if max_jets is not None:
        if max_jets < 20:
            raise ValueError(f"max_jets must be at least 20, got {max_jets}")
        cfg["max_jets"] = int(max_jets)
    go, gc = jet_constituents(orig), jet_constituents(comp)
    if go is None or gc is None:
        return {"verdict": "skipped", "reason": "no jet constituents in the files"}
    lab = _labels(orig, go[2])
    if lab is None:
        return {"verdict": "skipped", "reason": "no jet labels (label_Tbqq/label_QCD or Jet_hadronFlavour)"}
    if torch_or_none() is None or importlib.util.find_spec("sklearn") is None:
        msg = "torch or scikit-learn is not installed (pip install 'hepslim[ml]'): jet-tagger benchmark skipped"
        notes.append(msg)
        return {"verdict": "skipped", "reason": msg}
    y, use, task = lab
    idx = np.flatnonzero(use)
    rng = np.random.default_rng(12345 + seed)
    idx = rng.permutation(idx)[: cfg["max_jets"]]
    if len(idx) < 20 or y[idx].sum() < 5 or (1 - y[idx]).sum() < 5:
        return {"verdict": "skipped", "reason": f"too few labelled jets for {task} ({len(idx)})"}
    ntr = int(0.7 * len(idx))
    tr, te = np.sort(idx[:ntr]), np.sort(idx[ntr:])
    xo, mo = constituent_tensor(go[0], cfg["max_particles"])
    xc, mc = constituent_tensor(gc[0], cfg["max_particles"])
    data = {"original": (xo, mo), "compressed": (xc, mc)}
    runs: dict[str, list[dict[str, float]]] = {}
    scores: dict[str, np.ndarray] = {}
    for train_on in ("original", "compressed"):
        x, mask = data[train_on]
        for s in range(cfg["seeds"]):
            outs = train_and_predict(
                x[tr], mask[tr], y[tr], [(data[e][0][te], data[e][1][te]) for e in ("original", "compressed")],
                seed=seed + s, epochs=cfg["epochs"], hidden=cfg["hidden"], latent=cfg["latent"],
                reuse=True,  # identical training data (a lossless file) is trained once too
            )  # fmt: skip
            for ev_on, sc in zip(("original", "compressed"), outs):
                key = f"train_{train_on}/eval_{ev_on}"
                runs.setdefault(key, []).append(roc_metrics(y[te], sc))
                if s == 0:
                    scores[key] = sc
    cells: dict[str, Any] = {}
    for key, rs in runs.items():
        cells[key] = {m: {"mean": float(np.mean([r[m] for r in rs])), "std": float(np.std([r[m] for r in rs], ddof=1)),
                          "values": [r[m] for r in rs]} for m in METRICS}  # fmt: skip
    base = cells["train_original/eval_original"]
    flagged: list[str] = []
    for key, c in cells.items():
        for m in METRICS:
            d = c[m]["mean"] - base[m]["mean"]
            tol = 2.0 * max(c[m]["std"], base[m]["std"])
            c[m]["delta"] = d
            c[m]["within_spread"] = bool(abs(d) <= tol)
            if not c[m]["within_spread"]:
                flagged.append(f"{key}: {m}")
    return {
        "verdict": "distinguishable" if flagged else "indistinguishable",
        "task": task,
        "mode": mode,
        "config": cfg,
        "n_train": int(len(tr)),
        "n_test": int(len(te)),
        "distinguishable": flagged,
        "cells": cells,
        "_roc": {k: (y[te], v) for k, v in scores.items()},
    }
