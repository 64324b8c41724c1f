"""Per-branch value errors between the original and the compressed file (same events, same order)."""

from __future__ import annotations

from typing import Any

import numpy as np


def flat_values(arr: Any) -> np.ndarray:
    """All leaf values of a (possibly jagged) branch as a flat numpy array."""
    import awkward as ak

    return np.asarray(ak.to_numpy(ak.flatten(arr, axis=None)))


def structure_equal(a: Any, b: Any) -> bool:
    """Same nesting and list lengths at every level (the offsets/counters round-tripped)."""
    import awkward as ak

    if len(a) != len(b) or a.ndim != b.ndim:
        return False
    x, y = a, b
    for depth in range(1, a.ndim):
        if not np.array_equal(ak.to_numpy(ak.num(x, axis=1)), ak.to_numpy(ak.num(y, axis=1))):
            return False
        x, y = ak.flatten(x, axis=1), ak.flatten(y, axis=1)
    return True


def _angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((b - a + np.pi) % (2 * np.pi) - np.pi)


def branch_errors(orig: np.ndarray, comp: np.ndarray, bound: dict[str, Any] | None = None) -> dict[str, Any]:
    """Error statistics of ``comp`` against ``orig`` (flat arrays of equal length).

    Keys: n, max_abs, rms_abs, max_rel, rms_rel, bias (mean of comp - orig), bias_over_rms (bias relative
    to the branch's spread), frac_unchanged (bit-identical values, NaN == NaN), nan_mismatch, and with a
    declared ``bound``: worst_over_bound (worst error as a fraction of the bound; <= 1 keeps the promise).
    """
    n = int(orig.size)
    out: dict[str, Any] = {"n": n, "dtype": str(orig.dtype)}
    if n == 0:
        out.update(max_abs=0.0, rms_abs=0.0, max_rel=0.0, rms_rel=0.0, bias=0.0, bias_over_rms=0.0,
                   frac_unchanged=1.0, nan_mismatch=0)  # fmt: skip
        return out
    if orig.dtype.kind == "b":
        orig, comp = orig.astype(np.int8), comp.astype(np.int8)
    same_bits = (orig == comp) | (np.isnan(orig) & np.isnan(comp) if orig.dtype.kind == "f" else False)
    out["frac_unchanged"] = float(np.mean(same_bits))
    o = orig.astype(np.float64)
    c = comp.astype(np.float64)
    nan_o, nan_c = np.isnan(o), np.isnan(c)
    out["nan_mismatch"] = int(np.count_nonzero(nan_o != nan_c))
    ok = ~(nan_o | nan_c) & np.isfinite(o) & np.isfinite(c)
    inf_mismatch = int(np.count_nonzero(~np.isfinite(o[~(nan_o | nan_c)]) & (o[~(nan_o | nan_c)] != c[~(nan_o | nan_c)])))
    out["inf_mismatch"] = inf_mismatch
    o, c = o[ok], c[ok]
    d = c - o
    ad = np.abs(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(o != 0, ad / np.abs(o), np.where(ad == 0, 0.0, np.inf))
    finite_rel = rel[np.isfinite(rel)]
    out["max_abs"] = float(ad.max()) if ad.size else 0.0
    out["rms_abs"] = float(np.sqrt(np.mean(ad * ad))) if ad.size else 0.0
    out["max_rel"] = float(rel.max()) if rel.size else 0.0
    out["rms_rel"] = float(np.sqrt(np.mean(finite_rel * finite_rel))) if finite_rel.size else 0.0
    out["bias"] = float(np.mean(d)) if d.size else 0.0
    spread = float(np.std(o)) if o.size else 0.0
    out["bias_over_rms"] = float(out["bias"] / spread) if spread > 0 else 0.0
    if bound:
        kind, value = bound["kind"], float(bound["value"])
        if kind == "abs":
            worst = out["max_abs"]
        elif kind == "rel":
            worst = out["max_rel"]
        else:  # angle: periodic distance
            worst = float(_angle_diff(o, c).max()) if o.size else 0.0
        out["bound"] = dict(bound)
        out["worst_over_bound"] = worst / value if value > 0 else (0.0 if worst == 0 else float("inf"))
    return out


def error_sample(orig: np.ndarray, comp: np.ndarray, bound: dict[str, Any] | None) -> np.ndarray:
    """Per-value error in the unit of the declared bound (or the relative error without one), for plots."""
    o = orig.astype(np.float64)
    c = comp.astype(np.float64)
    ok = np.isfinite(o) & np.isfinite(c)
    o, c = o[ok], c[ok]
    if bound and bound["kind"] == "angle":
        return _angle_diff(o, c) / float(bound["value"])
    ad = np.abs(c - o)
    if bound and bound["kind"] == "abs":
        return ad / float(bound["value"])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(o != 0, ad / np.abs(o), 0.0)
    return rel / float(bound["value"]) if bound else rel


def compare_branches(
    orig: Any, comp: Any, bounds: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The ``branches`` benchmark: per-branch errors, and a verdict.

    Distinguishable when a branch is missing from the compressed file, a list length changed, an
    integer/boolean branch changed, NaN-ness changed, or a declared bound is exceeded.
    """
    bounds = bounds or {}
    fo, fc = set(orig.fields), set(comp.fields)
    counters = {f for f in fo if f.startswith("n") and any(g.startswith(f[1:] + "_") for g in fo)}
    missing = sorted((fo - fc) - counters)
    rows: dict[str, Any] = {}
    problems: list[str] = []
    for name in sorted(fo & fc):
        a, b = orig[name], comp[name]
        if not structure_equal(a, b):
            rows[name] = {"structure_equal": False}
            problems.append(f"{name}: list lengths differ")
            continue
        va, vb = flat_values(a), flat_values(b)
        st = branch_errors(va, vb, bounds.get(name))
        st["structure_equal"] = True
        rows[name] = st
        if va.dtype.kind in "biu" and st["frac_unchanged"] < 1.0:
            problems.append(f"{name}: integer/boolean values changed")
        if st.get("nan_mismatch") or st.get("inf_mismatch"):
            problems.append(f"{name}: NaN/inf values changed")
        if st.get("worst_over_bound", 0.0) > 1.0 + 1e-9:
            problems.append(f"{name}: error {st['worst_over_bound']:.3g} x the declared bound")
    problems += [f"{m}: missing from the compressed file" for m in missing]
    n_lossy = sum(1 for r in rows.values() if r.get("structure_equal") and r["frac_unchanged"] < 1.0)
    return {
        "verdict": "distinguishable" if problems else "indistinguishable",
        "problems": problems,
        "n_branches": len(rows),
        "n_changed": n_lossy,
        "n_with_bounds": sum(1 for r in rows.values() if "bound" in r),
        "missing": missing,
        "extra": sorted(fc - fo),
        "per_branch": rows,
    }
