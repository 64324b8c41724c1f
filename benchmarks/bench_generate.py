"""Sample-generation throughput: events (jets) per second per layout, file size per row.

    python benchmarks/bench_generate.py [--n 500] [--jobs 1] [--out /tmp/hepslim-bench] [--json]

Pythia8 (13.6 TeV, MPI and hadronisation on) + FastJet + the layout builders, written to ROOT.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from hepslim.samples import generate

CASES = [
    ("nanoaod", "ttbar", "events"),
    ("pfnano", "ttbar", "events"),
    ("jetclass", "top", "jets"),
    ("jetclass", "qcd", "jets"),
]


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the --jobs workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="events (jets for jetclass) per case")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="directory for the files (default: a temporary one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="hepslim-bench-gen-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for layout, process, unit in CASES:
        path = out / f"{layout}-{process}-{args.n}.root"
        cpu0 = _cpu()
        info = generate(layout, args.n, path, seed=args.seed, jobs=args.jobs, process=process, progress=False)
        info["cpu_seconds"] = _cpu() - cpu0
        info["rows_per_cpu_s"] = info["rows"] / info["cpu_seconds"]
        info["unit"] = unit
        info["bytes_per_row"] = os.path.getsize(path) / info["rows"]
        rows.append(info)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'layout':<10} {'process':<7} {'rows':>7} {'unit':<6} {'seconds':>8} {'rows/s':>8} {'rows/CPU-s':>10} {'bytes/row (ROOT)':>17}")
    for r in rows:
        print(f"{r['layout']:<10} {r['process']:<7} {r['rows']:>7} {r['unit']:<6} {r['seconds']:>8.1f} "
              f"{r['rows_per_s']:>8.1f} {r['rows_per_cpu_s']:>10.1f} {r['bytes_per_row']:>17.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
