"""Survey and tune, side by side: CMS production precisions vs the shipped ``nanoaod`` spec vs a spec tuned
by ``hepslim tune`` (from ``nanoaod``), on real NanoAOD files and a generated NanoAOD-like sample.

For each file: the survey's totals and flags, then per spec the bytes/event of every stored branch (each
branch's pipeline completed for Zarr, measured on all events) and the validation verdict of its values on
the held-back half of the events (hepslim.validate's observables + classifier benchmarks; the tuner never
looked at those events). "CMS production" rounds as NanoAOD does (10 mantissa bits for jet pt/mass/tags, 12
for eta/phi, 6 for energy fractions, 8 for GenPart) and compresses with LZMA-9, no byte-stream split.

    python benchmarks/bench_survey_tune.py /work/shared/data/nano_tt_v12.root ... [--budget 400] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

CMS_PRODUCTION = """\
# NanoAOD's production precisions (PhysicsTools/NanoAOD: `precision = 10` etc.) and LZMA-9.
name: cms_production
rules:
  - match: ["GenPart_*", "GenJet*_eta", "GenJet*_phi", "LHEPart_*"]
    floats_only: true
    codecs: [{id: mantissa, keepbits: 8}, {id: raw}, {id: lzma, preset: 9}]
  - match: ["*EF", "*_*EF[A-Z]*", "*_rawFactor", "*_muonSubtrFactor"]
    floats_only: true
    codecs: [{id: mantissa, keepbits: 6}, {id: raw}, {id: lzma, preset: 9}]
  - match: ["*_eta", "*_phi"]
    floats_only: true
    codecs: [{id: mantissa, keepbits: 12}, {id: raw}, {id: lzma, preset: 9}]
  - match: ["*_pt", "*_mass", "*_btag*", "*_qgl", "*_mva*", "*_particleNet*", "*_deepTag*"]
    floats_only: true
    codecs: [{id: mantissa, keepbits: 10}, {id: raw}, {id: lzma, preset: 9}]
default:
  codecs: [{id: raw}, {id: lzma, preset: 9}]
"""


def run_file(path: str, budget: str, workdir: Path, max_events: int | None) -> dict:
    from hepslim.survey import read_input, survey
    from hepslim.tune import evaluate, tune

    t0 = time.perf_counter()
    inp = read_input(path, max_events=max_events)
    sv = survey(inp)
    row: dict = {"file": Path(path).name, "events": inp.n_read, "file_bytes_per_event": inp.file_bytes / inp.n_events,
                 "survey": {**sv.totals, "flags": {f: len(sv.flagged(f)) for f in
                                                   ("constant", "duplicate", "derivable", "pre-rounded")}},
                 "specs": {}}
    cms = workdir / "cms_production.yaml"
    cms.write_text(CMS_PRODUCTION, encoding="utf-8")
    tuned_path = workdir / f"{Path(path).stem}_tuned.yaml"
    t1 = time.perf_counter()
    res = tune(inp, "nanoaod", budget=budget)
    res.write_spec(tuned_path, force=True)
    row["tune"] = {"seconds": time.perf_counter() - t1, "calls": res.budget["used_calls"], "verdict": res.verdict,
                   "status": {s: sum(b.status.startswith(s) for b in res.branches)
                              for s in ("tuned", "unchanged", "backed-off", "exact", "budget")},
                   "notes": res.notes}
    for label, spec in (("lossless", "lossless"), ("cms_production", str(cms)), ("nanoaod", "nanoaod"),
                        ("tuned", str(tuned_path))):
        ev = evaluate(inp, spec, seed=res.seed)
        row["specs"][label] = {k: ev[k] for k in ("bytes_per_event", "verdict", "observables_flagged",
                                                  "classifier_flagged", "n_events_validated")}
    row["seconds"] = time.perf_counter() - t0
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--budget", default="400", help="tune budget (calls and/or time), default 400")
    ap.add_argument("--max-events", type=int, default=None)
    ap.add_argument("--json", help="write all figures to this JSON file")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for f in args.files:
            print(f"... {f}", file=sys.stderr, flush=True)
            rows.append(run_file(f, args.budget, Path(d), args.max_events))
    print("| file | events | file B/evt | lossless | CMS production (LZMA-9) | nanoaod | tuned (from nanoaod) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = []
        for k in ("lossless", "cms_production", "nanoaod", "tuned"):
            s = r["specs"][k]
            mark = "" if s["verdict"] == "indistinguishable" else " ✗"
            cells.append(f"{s['bytes_per_event']:.0f}{mark}")
        print(f"| {r['file']} | {r['events']} | {r['file_bytes_per_event']:.0f} | " + " | ".join(cells) + " |")
    print()
    print("✗ = distinguishable on the held-back events (hepslim.validate observables/classifier)")
    for r in rows:
        t = r["tune"]
        print(f"{r['file']}: survey flags {r['survey']['flags']}; tune {t['seconds']:.0f} s, {t['calls']} calls, "
              f"held-back {t['verdict']}, statuses {t['status']}")
        for k, s in r["specs"].items():
            if s["verdict"] != "indistinguishable":
                print(f"    {k}: flagged observables {s['observables_flagged'][:8]}, classifier {s['classifier_flagged']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
