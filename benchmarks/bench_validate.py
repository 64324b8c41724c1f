"""Physics fidelity of every shipped spec on JetClass-style jets: tagger AUC / rejection, two-sample AUC,
compression ratio, side by side with the original.

    python benchmarks/bench_validate.py JETCLASS.root [--specs lossless jetclass ...] [--tagger medium]
        [--format parquet] [--out DIR] [--json]

JETCLASS.root comes from ``hepslim generate jetclass -n N --process both``. Each spec rewrites it with
``hepslim.compress`` and ``hepslim.validate`` compares the result with the original. ``original`` is the
tagger trained and evaluated on original jets (the baseline of every run).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hepslim
from hepslim.validate import validate


def _row(name: str, rep: dict[str, Any], size: int, lossless_size: int | None) -> dict[str, Any]:
    b = rep["benchmarks"]
    tg = b["tagger"]
    cl = b["classifier"]
    worst = None
    for k, t in cl.get("tests", {}).items():
        if t.get("identical"):
            continue
        if worst is None or abs(t["z"]) > abs(worst[1]["z"]):
            worst = (k, t)
    cell = tg.get("cells", {}).get("train_compressed/eval_compressed") if tg["verdict"] != "skipped" else None
    return {
        "name": name,
        "bytes": size,
        "ratio_vs_input": rep["size_original"] / size if size else None,
        "ratio_vs_lossless": (lossless_size / size) if lossless_size and size else None,
        "verdict": rep["verdict"],
        "verdicts": {k: v["verdict"] for k, v in b.items()},
        "tagger": {m: (cell[m]["mean"], cell[m]["std"]) for m in ("auc", "rejection_at_0.3", "rejection_at_0.5")} if cell else None,
        "tagger_cross": {k: {m: c[m]["mean"] for m in ("auc", "rejection_at_0.5")} for k, c in tg.get("cells", {}).items()},
        "two_sample": {"collection": worst[0], "auc": worst[1]["auc"], "sigma": worst[1]["sigma"]} if worst else {"auc": 0.5, "sigma": 0.0, "collection": "identical"},
        "observables_flagged": b["observables"]["distinguishable"],
        "branch_problems": b["branches"]["problems"][:5],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="a jetclass file (original)")
    ap.add_argument("--specs", nargs="+", default=None, help="spec names (default: every registered spec)")
    ap.add_argument("--tagger", default="medium", choices=["full", "medium", "reduced", "off"])
    ap.add_argument("--tagger-jets", type=int, default=None, help="jets the tagger uses (default: the mode's cap)")
    ap.add_argument("--max-rows", type=int, default=200_000, help="objects per side in each two-sample BDT test")
    ap.add_argument("--format", default="parquet", help="container of the compressed files (extension)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--report", action="store_true", help="write a plot report per spec under OUT")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from hepslim.policy import registered_specs

    specs = args.specs or sorted(registered_specs())
    if "lossless" in specs:
        specs = ["lossless"] + [s for s in specs if s != "lossless"]
    out = Path(args.out or tempfile.mkdtemp(prefix="hepslim-bench-val-"))
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    baseline = None
    lossless_size = None
    for spec in specs:
        label = Path(spec).stem if spec.endswith((".yaml", ".yml")) else spec
        dst = out / f"{Path(args.input).stem}.{label}.{args.format}"
        if dst.exists():
            dst.unlink()
        t0 = time.perf_counter()
        try:
            hepslim.compress(args.input, dst, spec=spec)
            seconds_compress = time.perf_counter() - t0
        except hepslim.HepslimError as exc:
            rows.append({"name": label, "error": str(exc)})
            continue
        size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file()) if dst.is_dir() else dst.stat().st_size
        rep = validate(args.input, dst, tagger=args.tagger, tagger_jets=args.tagger_jets, max_rows=args.max_rows, report_dir=(out / f"report-{spec}") if args.report else None)
        rep["seconds_compress"] = seconds_compress
        (out / f"validate-{label}.json").write_text(json.dumps(rep, indent=1, default=str))  # full report, per spec
        if spec == "lossless":
            lossless_size = size
        row = _row(label, rep, size, lossless_size)
        rows.append(row)
        if baseline is None and rep["benchmarks"]["tagger"]["verdict"] != "skipped":
            c = rep["benchmarks"]["tagger"]["cells"]["train_original/eval_original"]
            baseline = {
                "name": "original",
                "bytes": rep["size_original"],
                "tagger": {m: (c[m]["mean"], c[m]["std"]) for m in ("auc", "rejection_at_0.3", "rejection_at_0.5")},
                "n_train": rep["benchmarks"]["tagger"]["n_train"],
                "n_test": rep["benchmarks"]["tagger"]["n_test"],
            }
        print(f"done {label}: {row['verdict']} (compress {seconds_compress:.0f} s, validate {rep['seconds']:.0f} s)", file=sys.stderr)
    result = {"input": args.input, "tagger_mode": args.tagger, "baseline": baseline, "specs": rows}
    if args.json:
        json.dump(result, sys.stdout, indent=2, default=str)
        print()
        return 0
    if baseline:
        print(f"tagger: PFN ({args.tagger} mode), {baseline['n_train']} train / {baseline['n_test']} test jets, 3 seeds")
    hdr = f"{'sample':<10} {'MB':>7} {'ratio':>6} {'AUC':>15} {'1/eB@0.3':>14} {'1/eB@0.5':>14} {'2-sample AUC':>20}  verdict"
    print(hdr)
    print("-" * len(hdr))

    def fmt(t: tuple[float, float] | None, d: int) -> str:
        return f"{t[0]:.{d}f}+-{t[1]:.{d}f}" if t else "-"

    if baseline:
        tg = baseline["tagger"]
        print(f"{'original':<10} {baseline['bytes'] / 1e6:>7.1f} {'1.00':>6} {fmt(tg['auc'], 4):>15} {fmt(tg['rejection_at_0.3'], 1):>14} {fmt(tg['rejection_at_0.5'], 1):>14} {'-':>20}")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<10} ERROR {r['error']}")
            continue
        tg = r["tagger"] or {}
        ts = r["two_sample"]
        two = f"{ts['auc']:.4f}+-{ts['sigma']:.4f}" if ts["collection"] != "identical" else "identical"
        print(f"{r['name']:<10} {r['bytes'] / 1e6:>7.1f} {r['ratio_vs_input']:>6.2f} {fmt(tg.get('auc'), 4):>15} {fmt(tg.get('rejection_at_0.3'), 1):>14} "
              f"{fmt(tg.get('rejection_at_0.5'), 1):>14} {two:>20}  {r['verdict']} {r['verdicts']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
