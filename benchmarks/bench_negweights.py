"""Negative-weight resampling benchmark: speed, memory, scaling, max-cell-size, N_eff gain vs bias.

Synthetic Z(->ee)+jet NLO-like events (hepslim.plugins.negweights.synthetic.generate_nlo, ~20% negative
weights). Every (method, n) runs in its own process so the peak RSS is that run's; numba kernels are
compiled (cached) by a small warm-up run first, so the figures exclude JIT time.

    python benchmarks/bench_negweights.py --scan   # 1e4, 1e5, 1e6 cells and ot; ot-exact up to 1e5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

import numpy as np

NEG_FRACTION = 0.2


def _sample(n: int, seed: int = 1):
    from hepslim.plugins.negweights.io import _from_event_records
    from hepslim.plugins.negweights.objects import FlatParticles
    from hepslim.plugins.negweights.synthetic import generate_nlo

    ev = generate_nlo(n, seed, neg_fraction=NEG_FRACTION)
    parts, w, var, _ = _from_event_records(ev)
    return FlatParticles.from_awkward(parts), w, np.stack(list(var.values()), axis=1)


def _bias(fp, w0, w1, classifier: bool) -> dict:
    from hepslim.plugins.negweights.diagnostics import bias_check, observables
    from hepslim.plugins.negweights.synthetic import nlo_truth

    chi, auc, _ = bias_check(fp, w0, w1, with_classifier=classifier)
    obs = observables(fp)
    edges = np.array([0, 10, 25, 50, 100, 200, 500.0])
    truth = nlo_truth("z_pt", edges, neg_fraction=NEG_FRACTION)
    err0 = np.sqrt(np.histogram(obs["pt_ll"], edges, weights=w0**2)[0])
    pulls = {}
    for tag, w in (("before", w0), ("after", w1)):
        h = np.histogram(obs["pt_ll"], edges, weights=w)[0]
        pulls[tag] = float(np.max(np.abs(h - truth) / err0))
    return {"chi2_ndf_mean": float(np.mean(list(chi.values()))), "chi2_ndf_max": float(max(chi.values())),
            "chi2_ndf_pt_ll": chi["pt_ll"], "chi2_ndf_y_vis": chi["y_vis"], "auc": auc,
            "max_pull_truth_zpt_before": pulls["before"], "max_pull_truth_zpt_after": pulls["after"]}


def one(method: str, n: int, cap: float | None, jobs: int | None, bias: bool) -> dict:
    from hepslim.plugins.negweights.diagnostics import weight_stats
    from hepslim.plugins.negweights.transform import NegWeights

    base, cand = ("ot", 0) if method == "ot-exact" else (method, 32)
    tr = NegWeights(method=base, max_cell_size=cap, n_jobs=jobs, jet_ptmin=0.0, ot_candidates=cand)
    fpw, ww, vw = _sample(2000, seed=99)
    tr.reweight(fpw, ww, vw)  # JIT warm-up (cached kernels load here)
    fp, w0, var0 = _sample(n)
    timings: dict = {}
    t0 = time.perf_counter()
    w1, var1, cells, _ = tr.reweight(fp, w0, var0, timings=timings)
    dt = time.perf_counter() - t0
    b, a = weight_stats(w0, "before"), weight_stats(w1, "after")
    out = {
        "method": method, "n": n, "max_cell_size": cap, "seconds": dt, "events_per_s": n / dt,
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "r_neg_before": b["r_neg_before"], "r_neg_after": a["r_neg_after"],
        "neg_fraction_before": b["neg_fraction_before"], "neg_fraction_after": a["neg_fraction_after"],
        "sum_w_rel_diff": abs(a["sum_w_after"] - b["sum_w_before"]) / abs(b["sum_w_before"]),
        "n_eff_gain": a["n_eff_after"] / b["n_eff_before"], "n_cells": cells.n_cells,
        "cell_size_q99": float(np.percentile(cells.sizes, 99)) if cells.n_cells else 0.0,
        "cell_radius_median": float(np.median(cells.radius)) if cells.n_cells else 0.0,
    }
    if bias:
        out.update(_bias(fp, w0, w1, classifier=n <= 200_000))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _spawn(method: str, n: int, cap: float | None, jobs: int | None, bias: bool) -> dict:
    cmd = [sys.executable, __file__, "--one", method, str(n), "none" if cap is None else str(cap),
           str(jobs or 0), "1" if bias else "0"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        method, n, cap, jobs, bias = sys.argv[2:7]
        r = one(method, int(n), None if cap == "none" else float(cap), int(jobs) or None, bias == "1")
        print(json.dumps(r))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--methods", default="cells,ot,ot-exact", help="cells, ot (32 pre-selected EMD candidates), ot-exact (VP-tree)")
    ap.add_argument("--exact-max", type=int, default=100_000, help="largest n for ot-exact")
    ap.add_argument("--scan", action="store_true", help="max-cell-size scan at n=1e5 (cells)")
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write all rows to this file")
    args = ap.parse_args()
    rows = []
    print(f"# {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
    hdr = f"{'method':<8} {'n':>8} {'s':>8} {'ev/s':>9} {'RSS MB':>7} {'r_neg before->after':>22} {'Neff x':>7} {'cells':>7}"
    print(hdr, flush=True)
    for method in args.methods.split(","):
        for n in (int(float(x)) for x in args.sizes.split(",")):
            if method == "ot-exact" and n > args.exact_max:
                continue
            r = _spawn(method, n, None, args.jobs, bias=n <= 100_000)
            rows.append(r)
            print(f"{method:<8} {n:>8} {r['seconds']:>8.1f} {r['events_per_s']:>9.0f} {r['peak_rss_mb']:>7.0f} "
                  f"{r['r_neg_before']:>10.4f} -> {r['r_neg_after']:<9.2e} {r['n_eff_gain']:>7.3f} {r['n_cells']:>7}",
                  flush=True)
        ns = [r["n"] for r in rows if r["method"] == method and r["max_cell_size"] is None]
        ts = [r["seconds"] for r in rows if r["method"] == method and r["max_cell_size"] is None]
        if len(ns) >= 2:
            slope = np.polyfit(np.log(ns), np.log(ts), 1)[0]
            print(f"# {method}: time ~ n^{slope:.2f} over n = {ns}", flush=True)
    if args.scan:
        print("\n# max-cell-size scan, cells, n = 100000 (GeV; none = unbounded)")
        print(f"{'cap':>6} {'r_neg after':>11} {'neg frac':>8} {'Neff x':>7} {'chi2 mean':>9} {'chi2 pt_ll':>10} "
              f"{'AUC':>6} {'pull z_pt':>9} {'s':>6}")
        for cap in (None, 40.0, 20.0, 10.0, 5.0, 2.0):
            r = _spawn("cells", 100_000, cap, args.jobs, bias=True)
            rows.append(r)
            print(f"{'none' if cap is None else cap:>6} {r['r_neg_after']:>11.4f} {r['neg_fraction_after']:>8.4f} "
                  f"{r['n_eff_gain']:>7.3f} {r['chi2_ndf_mean']:>9.2f} {r['chi2_ndf_pt_ll']:>10.2f} "
                  f"{(r['auc'] or math.nan):>6.3f} {r['max_pull_truth_zpt_after']:>9.2f} {r['seconds']:>6.1f}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
