"""Single-branch two-sample AUC against mantissa bits: how many bits can a branch lose before
``hepslim validate``'s classifier tells it apart? (The scan behind the full-size spec fixes in
BENCHMARKS.md, "Physics validation -> Full size".)

    python benchmarks/bench_bits_scan.py FILE BRANCH[,BRANCH...] [--bits 7,9,10,11,12,23] [--keep-repeated 8]

The events are split in two halves as ``validate`` does; the first half stays original, the second is
rounded, and the event-split gradient-boosting test of :mod:`hepslim.validate.classifier` is trained on
that one feature. ``23`` bits (float32) is the unrounded reference: the AUC the two halves give by
themselves. ``--keep-repeated N`` adds a column per bit count with ``mantissa``'s ``keep_repeated=N``.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

import hepslim
from hepslim.validate._io import read
from hepslim.validate.classifier import _hgb_test, _matrix


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("branches", help="comma-separated float branches")
    ap.add_argument("--bits", default="7,9,10,11,12,23")
    ap.add_argument("--keep-repeated", type=int, default=0)
    ap.add_argument("--max-rows", type=int, default=1_000_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    branches = args.branches.split(",")
    bits = [int(b) for b in args.bits.split(",")]
    arr = read(args.input, branches)
    n = len(arr)
    perm = np.random.default_rng(0).permutation(n)
    half_a, half_b = np.sort(perm[: n // 2]), np.sort(perm[n // 2 : 2 * (n // 2)])
    out: dict[str, dict[str, dict[str, float]]] = {}
    for br in branches:
        xo, eo = _matrix(arr, [br], half_a)
        xb, eb = _matrix(arr, [br], half_b)
        flat = xb[:, 0].astype(np.float32)
        row: dict[str, dict[str, float]] = {}
        for k in bits:
            variants = [(str(k), {"id": "mantissa", "keepbits": k})]
            if args.keep_repeated and k < 23:
                variants.append((f"{k}+r{args.keep_repeated}", {"id": "mantissa", "keepbits": k, "keep_repeated": args.keep_repeated}))
            for label, cfg in variants:
                xc = flat if k >= 23 else hepslim.get_codec(cfg).encode(flat)
                r = _hgb_test(xo, xc.astype(np.float64)[:, None], 0, args.max_rows, eo, eb)
                row[label] = {"auc": r["auc"], "sigma": r["sigma"]}
        out[br] = row
        if not args.json:
            print(f"{br} ({len(xo)} values per side): " + ", ".join(f"{lab} bits {v['auc']:.4f}+-{v['sigma']:.4f}" for lab, v in row.items()), flush=True)
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
