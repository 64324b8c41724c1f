"""The ``hepslim`` command line: argument parsing only; every command is a thin call into the library.

Each command has one ``_cmd_<name>(sub)`` function that declares its arguments and sets ``func`` to a
small runner calling the library. Commands that report numbers take ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hepslim import __version__
from hepslim.errors import HepslimError


def _print_json(obj: Any) -> None:
    from hepslim.validate.report import _json_default

    json.dump(obj, sys.stdout, indent=2, default=_json_default)
    sys.stdout.write("\n")


# --------------------------------------------------------------------------------------------- codecs
def _cmd_codecs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("codecs", help="list every registered codec with its parameters and origin")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    def run(args: argparse.Namespace) -> int:
        from hepslim.registry import describe_codecs

        rows = describe_codecs()
        if args.json:
            _print_json(rows)
            return 0
        for r in rows:
            print(f"{r['id']:<16} {r['kind']:<13} {r['family']:<9} [{r['origin']}]  {r['doc']}")
            for name, info in r["parameters"].items():
                allowed = f"  ({info['allowed']})" if info["allowed"] else ""
                print(f"    {name} = {info['default']!r}{allowed}  {info['doc']}")
        return 0

    p.set_defaults(func=run)


# ----------------------------------------------------------------------------------------- spec, specs
def _codecs_text(codecs: Any) -> str:
    return " -> ".join(
        c["id"] + (f"({params})" if (params := ", ".join(
            f"{k}={v}" for k, v in c.items() if k != "id" and v is not None)) else "")
        for c in codecs
    )


def _cmd_spec(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spec", help="check a spec file, or show what a spec does (to each branch of an input)")
    ssub = p.add_subparsers(dest="spec_command", metavar="ACTION", required=True)
    pc = ssub.add_parser("check", help="validate spec files (YAML, keys, codecs, rules, extends, derived)")
    pc.add_argument("files", nargs="+", metavar="FILE", help="spec YAML file(s) or registered names")
    pc.add_argument("--json", action="store_true", help="machine-readable output")
    ps = ssub.add_parser("show", help="a spec's rules, or the pipeline each branch of --input gets")
    ps.add_argument("spec", metavar="NAME|FILE", help="registered spec name or YAML file")
    ps.add_argument("--input", metavar="FILE", help="ROOT or Parquet file: show every branch's pipeline")
    ps.add_argument("--tree", help="tree / RNTuple name in --input (default: the spec's, else Events)")
    ps.add_argument("--container", default="zarr", choices=["zarr", "parquet", "root"],
                    help="container whose serializer/compressor complete the pipelines (default zarr)")
    ps.add_argument("--json", action="store_true", help="machine-readable output")

    def run_check(args: argparse.Namespace) -> int:
        from hepslim.policy import load_spec

        rows = []
        for f in args.files:
            s = load_spec(f)  # raises SpecError naming file, rule and reason
            rows.append({"file": f, "name": s.name, "sha256": s.sha256, "rules": len(s.all_rules),
                         "extends": s.parent.name if s.parent else None,
                         "derived": [d.name for d in s.all_derived]})
        if args.json:
            _print_json(rows)
        else:
            for r in rows:
                ext = f", extends {r['extends']}" if r["extends"] else ""
                print(f"ok  {r['file']}: spec {r['name']!r}, {r['rules']} rules{ext}, "
                      f"{len(r['derived'])} derived, sha256 {r['sha256'][:12]}")
        return 0

    def run_show(args: argparse.Namespace) -> int:
        from hepslim.policy import container_compression, input_branches, load_spec, plan

        s = load_spec(args.spec)
        if args.input is None:
            if args.json:
                _print_json(s.to_dict())
                return 0
            print(f"spec {s.name!r}  ({s.source})  sha256 {s.sha256[:12]}")
            if s.description:
                print(f"  {s.description}")
            for anc in s.chain():
                print(f"[{anc.name}]" + (f" tree={anc.tree}" if anc.tree else ""))
                if anc.drop:
                    print(f"  drop: {', '.join(anc.drop)}")
                for r in anc.rules:
                    print(f"  {r.label:<48} {_codecs_text(r.codecs)}")
                if anc.default is not None:
                    print(f"  {'default':<48} {_codecs_text(anc.default.codecs)}")
                for d in anc.derived:
                    print(f"  derived {d.name} = {d.function}({', '.join(d.inputs)})  tol {d.tolerance:g}")
            print(f"container compression ({args.container}): {container_compression(s, args.container)}")
            return 0
        types = input_branches(args.input, args.tree, prefer=s.effective_tree)
        rows = [bp.to_dict() for bp in plan(s, types, container=args.container)]
        if args.json:
            _print_json({"spec": s.name, "sha256": s.sha256, "input": args.input, "container": args.container,
                         "branches": rows})
            return 0
        width = max((len(row["branch"]) for row in rows), default=10)
        for row in rows:
            typ = row["dtype"] + ("[]" if row["jagged"] else "")
            if row["action"] == "store":
                b = row["error_bound"]
                bound = "exact" if b is None else f"{b['kind']} {b['value']:.3g}"
                what = f"{_codecs_text(row['codecs'])}  [{bound}; {row['rule'] or 'container default'}]"
            elif row["action"] == "drop":
                what = "dropped"
            else:
                what = f"not stored: {row['rule']}"
            print(f"{row['branch']:<{width}}  {typ:<10} {what}")
        n = {a: sum(row["action"] == a for row in rows) for a in ("store", "drop", "derive")}
        lossy = sum(row["action"] == "store" and not row["lossless"] for row in rows)
        print(f"{len(rows)} branches: {n['store']} stored ({lossy} lossy), {n['drop']} dropped, "
              f"{n['derive']} derived")
        return 0

    pc.set_defaults(func=run_check)
    ps.set_defaults(func=run_show)


def _cmd_specs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("specs", help="list the shipped and plugin-registered specs")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    def run(args: argparse.Namespace) -> int:
        from hepslim.policy import specs_table

        rows = specs_table()
        if args.json:
            _print_json(rows)
            return 0
        for r in rows:
            if r["error"]:
                print(f"{r['name']:<10} BROKEN: {r['error']}")
                continue
            ext = f" (extends {r['extends']})" if r["extends"] else ""
            der = f"; derived: {', '.join(r['derived'])}" if r["derived"] else ""
            print(f"{r['name']:<10} {r['rules']:>3} rules{ext}  {r['description']}{der}")
        return 0

    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------- generate
def _cmd_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate a reproducible Pythia8 sample (nanoaod, pfnano, jetclass, nlo)"
    )
    p.add_argument("layout", help="nanoaod | pfnano | jetclass | nlo")
    p.add_argument("-n", type=int, required=True, help="events (jets per class for jetclass)")
    p.add_argument("-o", "--output", required=True, help="output file (.root or .parquet)")
    p.add_argument("--seed", type=int, default=1, help="job k uses seed + k (default 1)")
    p.add_argument("--jobs", type=int, default=1, help="parallel Pythia processes (default 1)")
    p.add_argument("--process", default=None, help="ttbar | top | qcd | both (jetclass: default both)")
    p.add_argument("--json", action="store_true", help="machine-readable summary")

    def run(args: argparse.Namespace) -> int:
        from hepslim.samples import generate

        info = generate(
            args.layout, args.n, args.output, seed=args.seed, jobs=args.jobs, process=args.process
        )
        if args.json:
            _print_json(info)
        else:
            print(
                f"wrote {info.get('rows')} rows of {args.layout} to {info.get('path', args.output)}"
                f" in {info.get('seconds', 0):.1f} s ({info.get('rows_per_s', 0):.1f}/s)"
            )
        return 0

    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------- validate
def _at_least(lo: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``lo`` (a usage error otherwise, not a traceback)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        return v

    return parse


def _cmd_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate", help="compare a compressed file with its original: errors, distributions, classifiers"
    )
    p.add_argument("original", help="the original file")
    p.add_argument("compressed", help="the compressed (or rewritten) file holding the same events")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--report", metavar="DIR", default=None, help="write plots and index.md/index.html here")
    p.add_argument("--branches", nargs="+", default=None, help="only these branches")
    p.add_argument(
        "--tagger", choices=["full", "medium", "reduced", "off"], default="full", help="jet-tagger benchmark mode"
    )
    p.add_argument(
        "--tagger-jets", type=_at_least(20), default=None, metavar="N",
        help="labelled jets the tagger uses, train + test (default: the mode's cap: full 200k, medium 20k, reduced 2k)",
    )
    p.add_argument(
        "--max-rows", type=_at_least(20), default=200_000, metavar="N",
        help="objects per side in each gradient-boosting two-sample test (default 200000)",
    )
    p.add_argument("--no-classifier", action="store_true", help="skip the two-sample classifier test")
    p.add_argument(
        "--network", choices=["full", "medium", "reduced", "off"], default=None,
        help="size of the two-sample test's constituent network (default: as --tagger)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the splits and trainings (default 0)")

    def run(args: argparse.Namespace) -> int:
        from hepslim.validate import summary_lines, validate

        rep = validate(
            args.original,
            args.compressed,
            branches=args.branches,
            report_dir=args.report,
            classifier=not args.no_classifier,
            tagger=args.tagger,
            seed=args.seed,
            network=args.network,
            tagger_jets=args.tagger_jets,
            max_rows=args.max_rows,
        )
        if args.json:
            _print_json(rep)
        else:
            print("\n".join(summary_lines(rep)))
        return 0

    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------- resample
def _cmd_resample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resample", help="remove negative event weights by cell resampling (Σw conserved)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".lhe, .lhe.gz, NanoAOD .root or .parquet")
    p.add_argument("-o", "--output", default=None,
                   help="output file (all inputs joined) or existing directory (one file per input)")
    p.add_argument("--method", choices=("cells", "ot"), default="cells", help="distance (default cells)")
    p.add_argument("--jet-algorithm", choices=("antikt", "kt", "cambridge"), default="antikt")
    p.add_argument("--jet-radius", type=float, default=0.4)
    p.add_argument("--jet-ptmin", type=float, default=20.0, help="GeV (default 20)")
    p.add_argument("--tau", type=float, default=0.0, help="weight of pT differences in the distance")
    p.add_argument("--dressing-radius", type=float, default=0.1, help="lepton dressing cone (0: off)")
    p.add_argument("--photon-ptmin", type=float, default=20.0, help="isolated photons above this are objects")
    p.add_argument("--neutrinos", action="store_true", help="neutrinos are objects too")
    p.add_argument("--seeds", choices=("most_negative", "least_negative", "any"), default="most_negative")
    p.add_argument("--max-cell-size", type=float, default=None, help="maximum cell radius in GeV")
    p.add_argument("--cell-mean", choices=("mean", "abs"), default="mean",
                   help="mean: equal share; abs: share proportional to |w|")
    p.add_argument("--minweight", type=float, default=0.0, help="partial unweighting below this |w|")
    p.add_argument("--seed", type=int, default=0, help="seed of the tree and of the unweighting")
    p.add_argument("--jobs", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--ot-radius", type=float, default=1.0, help="EMD radius R (--method ot)")
    p.add_argument("--ot-candidates", type=int, default=32,
                   help="--method ot: EMD candidates pre-selected per seed in a Euclidean embedding "
                        "(default 32; 0: exact VP-tree search, slower)")
    p.add_argument("--objects", choices=("auto", "lhe", "gen"), default="auto",
                   help="NanoAOD: LHEPart_* or GenJet/GenDressedLepton (default: LHEPart if present)")
    p.add_argument("--drop-zero", action="store_true", help="remove events whose weight became 0")
    p.add_argument("--spec", default=None,
                   help="write a hepslim container with this spec (name or YAML); .zarr outputs always are")
    p.add_argument("--no-classifier", action="store_true", help="skip the classifier AUC")
    p.add_argument("--report", default=None, metavar="DIR", help="write report.json and plots here")
    p.add_argument("--json", action="store_true", help="machine-readable report")

    def run(args: argparse.Namespace) -> int:
        from hepslim.plugins.negweights.transform import NegWeights, resample

        tr = NegWeights(
            method=args.method, jet_algorithm=args.jet_algorithm, jet_radius=args.jet_radius,
            jet_ptmin=args.jet_ptmin, tau=args.tau, dressing_radius=args.dressing_radius,
            photon_ptmin=args.photon_ptmin, include_neutrinos=args.neutrinos, seeds=args.seeds,
            max_cell_size=args.max_cell_size, cell_mean=args.cell_mean, minweight=args.minweight,
            seed=args.seed, n_jobs=args.jobs, ot_radius=args.ot_radius, ot_candidates=args.ot_candidates,
        )
        rep = resample(args.inputs, args.output, transform=tr, drop_zero=args.drop_zero,
                       objects=args.objects, report_dir=args.report, classifier=not args.no_classifier,
                       spec=args.spec)
        if args.json:
            _print_json(rep.to_dict())
            return 0
        print(f"{rep.n_events} events, {rep.n_cells} cells ({rep.method}); "
              f"r_neg {rep.r_neg_before:.4f} -> {rep.r_neg_after:.4f}, "
              f"negative {rep.neg_fraction_before:.3f} -> {rep.neg_fraction_after:.3f}")
        print(f"sum w {rep.sum_w_before:.10g} -> {rep.sum_w_after:.10g}; "
              f"N_eff {rep.n_eff_before:.1f} -> {rep.n_eff_after:.1f} (x{rep.n_eff_gain:.2f})")
        if rep.chi2_ndf:
            print("chi2/ndf: " + ", ".join(f"{k} {v:.2f}" for k, v in rep.chi2_ndf.items())
                  + (f"; classifier AUC {rep.classifier_auc:.3f}" if rep.classifier_auc is not None else ""))
        if rep.output:
            print(f"wrote {rep.n_written} events to {rep.output} ({rep.events_per_s:.0f} events/s)")
        return 0

    p.set_defaults(func=run)


# --------------------------------------------------------------------------------------------- survey
def _cmd_survey(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("survey", help="per-branch sizes, entropy, constant/duplicate/derivable branches, "
                                      "effective precision, suggested codecs; draft spec")
    p.add_argument("file", metavar="FILE", help="ROOT (TTree or RNTuple) or Parquet file")
    p.add_argument("--tree", help="tree / RNTuple name (default: Events, or the only one)")
    p.add_argument("--spec", default="lossless", help="spec whose pipelines give the 'hepslim' column "
                                                      "(default lossless)")
    p.add_argument("--container", default="zarr", choices=["zarr", "parquet", "root"],
                   help="container completing those pipelines (default zarr)")
    p.add_argument("--max-events", type=int, default=20000,
                   help="events examined (default 20000; 0 = all); stored sizes always cover the file")
    p.add_argument("--top", type=int, default=40, help="rows of the branch table (default 40; 0 = all)")
    p.add_argument("--report", metavar="DIR", help="write bar charts (PNG) and index.md to DIR")
    p.add_argument("--write-spec", metavar="OUT.yaml", help="write a draft spec (drops, derived, precision)")
    p.add_argument("--extends", help="spec the draft spec extends (e.g. nanoaod)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --write-spec file")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    def run(args: argparse.Namespace) -> int:
        from hepslim.survey import survey

        rep = survey(args.file, tree=args.tree, spec=args.spec, container=args.container,
                     max_events=args.max_events or None, progress=not args.json and sys.stderr.isatty())
        extra: dict[str, Any] = {}
        if args.report:
            extra["report"] = rep.write_report(args.report)
        if args.write_spec:
            extra["spec_file"] = rep.write_spec(args.write_spec, extends=args.extends, force=args.force)
        if args.json:
            _print_json({**rep.to_dict(), **extra})
            return 0
        print(rep.table(args.top or None))
        for f in extra.get("report", []):
            print(f"wrote {f}")
        if "spec_file" in extra:
            print(f"wrote draft spec {extra['spec_file']} (checked with hepslim spec check)")
        return 0

    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------- compress
_EXT = {"root": ".root", "parquet": ".parquet", "zarr": ".zarr"}


def _report_line(r: Any) -> str:
    d = r.to_dict()
    ratio = f"{d['ratio']:.2f}x" if d["ratio"] else "-"
    return (f"{d['input'] or '-'} -> {d['output']}: {d['num_entries']} events, {d['output_bytes']} bytes "
            f"({(d['bytes_per_event'] or 0):.0f} B/event, {ratio} smaller), {d['format']}/{d['mode']}, "
            f"spec {d['spec']}, {d['seconds']:.1f} s")


def _cmd_compress(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="rewrite event files with a spec into ROOT, Parquet or Zarr")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="ROOT (TTree/RNTuple), Parquet or Zarr")
    p.add_argument("-o", "--output", required=True,
                   help="output file; a directory when several inputs are given")
    p.add_argument("--spec", default=None, help="shipped spec name or YAML file (default: lossless)")
    p.add_argument("--format", choices=("root", "parquet", "zarr"), default=None,
                   help="container (default: from OUTPUT's extension, else the input's)")
    p.add_argument("--mode", choices=("transparent", "packed"), default=None,
                   help="transparent: standard dtypes, readable without hepslim (ROOT's only mode); "
                        "packed: smallest (Parquet/Zarr default)")
    p.add_argument("--tree", default=None, help="TTree/RNTuple name (default: the spec's, Events, or the only one)")
    p.add_argument("--step-size", type=int, default=None, help="events per chunk (default: ~100 MB)")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--json", action="store_true", help="machine-readable report")

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from hepslim.io import compress, select_format

        out = Path(args.output)
        jobs: list[tuple[Path, Path]] = []
        if len(args.inputs) > 1:
            if out.exists() and not out.is_dir():
                raise HepslimError(f"{out} is a file; with several inputs OUTPUT must be a directory")
            out.mkdir(parents=True, exist_ok=True)
            for inp in map(Path, args.inputs):
                fmt = args.format or select_format(inp, None, "r").format_id
                jobs.append((inp, out / (inp.name.split(".")[0] + _EXT.get(fmt, inp.suffix))))
            names = [d.name for _, d in jobs]
            if len(set(names)) != len(names):
                raise HepslimError("several inputs would get the same output name; compress them separately")
        else:
            jobs.append((Path(args.inputs[0]), out))
        reports = []
        for src, dst in jobs:
            r = compress(src, dst, spec=args.spec, format=args.format, mode=args.mode, tree=args.tree,
                         force=args.force, step_size=args.step_size)
            reports.append(r)
            if not args.json:
                print(_report_line(r))
        if args.json:
            _print_json([r.to_dict() for r in reports] if len(reports) > 1 else reports[0].to_dict())
        return 0

    p.set_defaults(func=run)


def _cmd_decompress(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decompress", help="rewrite a hepslim file as plain ROOT or Parquet (decoded values)")
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="a .root or .parquet file")
    p.add_argument("--format", choices=("root", "parquet"), default=None, help="default: from OUT's extension")
    p.add_argument("--tree", default=None)
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--json", action="store_true", help="machine-readable report")

    def run(args: argparse.Namespace) -> int:
        from hepslim.io import decompress

        r = decompress(args.input, args.output, format=args.format, force=args.force, tree=args.tree)
        if args.json:
            _print_json(r.to_dict())
        else:
            print(_report_line(r))
        return 0

    p.set_defaults(func=run)


def _cmd_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="bytes per branch and collection, bytes/event, codec and ratio")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--tree", default=None)
    p.add_argument("--top", type=int, default=25, help="branches to list (largest first; 0: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output (every branch)")

    def run(args: argparse.Namespace) -> int:
        from hepslim.io import inspect

        info = inspect(args.file, tree=args.tree)
        if args.json:
            _print_json(info)
            return 0

        def ratio(x: float | None) -> str:
            return f"{x:.2f}x" if x else "-"

        print(f"{info['path']}: {info['format']} ({info['mode']}), spec {info['spec'] or '-'}, "
              f"{info['num_entries']} events, {info['file_bytes']} bytes = "
              f"{(info['bytes_per_event'] or 0):.1f} B/event, {ratio(info['ratio'])} vs uncompressed")
        print(f"\n{'collection':<28} {'branches':>8} {'bytes':>11} {'B/event':>9} {'ratio':>7}")
        for c in info["collections"][: args.top or None]:
            print(f"{c['name'][:28]:<28} {c['branches']:>8} {c['bytes']:>11} {c['bytes_per_event']:>9.1f} "
                  f"{ratio(c['ratio']):>7}")
        print(f"\n{'branch':<36} {'bytes':>10} {'B/event':>9} {'ratio':>7}  codec")
        for b in info["branches"][: args.top or None]:
            print(f"{b['name'][:36]:<36} {b['bytes']:>10} {b['bytes_per_event']:>9.2f} {ratio(b['ratio']):>7}  "
                  f"{b['codec']}")
        hidden = len(info["branches"]) - (args.top or len(info["branches"]))
        if hidden > 0:
            print(f"... {hidden} more branches (--top 0 or --json for all)")
        return 0

    p.set_defaults(func=run)


def _cmd_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="compress a bundled NanoAOD file with `nanoaod` in every container")
    p.add_argument("--input", default=None, help="another NanoAOD file instead of the bundled one")
    p.add_argument("--spec", default="nanoaod", help="spec to demonstrate (default nanoaod)")
    p.add_argument("--keep", default=None, metavar="DIR", help="keep the written files in DIR")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    def run(args: argparse.Namespace) -> int:
        from hepslim.demo import format_demo, run_demo

        res = run_demo(args.input, spec=args.spec, workdir=args.keep)
        if args.json:
            _print_json(res)
        else:
            print(format_demo(res))
        return 0

    p.set_defaults(func=run)


# ----------------------------------------------------------------------------------------------- tune
def _cmd_tune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="fewest mantissa bits / coarsest step per float branch that keeps the "
                                    "sample indistinguishable; writes a tuned spec")
    p.add_argument("file", metavar="FILE", help="ROOT (TTree or RNTuple) or Parquet file to tune on")
    p.add_argument("--spec", default="lossless", help="base spec, name or YAML file (default lossless)")
    p.add_argument("-o", "--output", required=True, metavar="TUNED.yaml", help="tuned spec to write")
    p.add_argument("--target", default="indistinguishable", choices=["indistinguishable"],
                   help="what validation must keep saying (default indistinguishable)")
    p.add_argument("--budget", help="validation calls (200), time (90s, 5m) or both (200,5m); default unlimited")
    p.add_argument("--resolution", action="append", default=[], metavar="GLOB=rel:X|abs:X",
                   help="declared resolution for matching branches (repeatable); errors stay below "
                        "--resolution-fraction of it")
    p.add_argument("--resolution-fraction", type=float, default=0.1, help="default 0.1")
    p.add_argument("--margin", type=float, default=0.5,
                   help="a branch's distortion may reach this fraction of its 2-sigma fluctuation (default 0.5)")
    p.add_argument("--branches", nargs="+", metavar="GLOB", help="tune only these branches")
    p.add_argument("--max-events", type=int, default=0, help="events read (default 0 = all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the search / held-back split (default 0)")
    p.add_argument("--container", default="zarr", choices=["zarr", "parquet", "root"],
                   help="container for the bytes/event figures (default zarr)")
    p.add_argument("--tree", help="tree / RNTuple name")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    def run(args: argparse.Namespace) -> int:
        import os

        from hepslim.tune import tune

        if os.path.exists(args.output) and not args.force:
            raise HepslimError(f"{args.output} exists; pass --force to overwrite it")
        res_map = {}
        for r in args.resolution:
            glob, sep, val = r.partition("=")
            if not sep:
                raise HepslimError(f"--resolution expects GLOB=rel:X or GLOB=abs:X, got {r!r}")
            res_map[glob] = val
        res = tune(args.file, args.spec, target=args.target, budget=args.budget, resolutions=res_map,
                   resolution_fraction=args.resolution_fraction, margin=args.margin, branches=args.branches,
                   max_events=args.max_events or None, seed=args.seed, container=args.container,
                   tree=args.tree, progress=not args.json and sys.stderr.isatty())
        out = res.write_spec(args.output, force=args.force)
        if args.json:
            _print_json({**res.to_dict(), "spec_file": out})
        else:
            print(res.summary())
            print(f"wrote tuned spec {out}")
        return 0

    p.set_defaults(func=run)


# Commands, in the order `hepslim --help` lists them. Each feature adds its own `_cmd_*` above.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _cmd_codecs,
    _cmd_spec,
    _cmd_specs,
    _cmd_generate,
    _cmd_validate,
    _cmd_resample,
    _cmd_survey,
    _cmd_tune,
    _cmd_compress,
    _cmd_decompress,
    _cmd_inspect,
    _cmd_demo,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hepslim", description="Shrink particle-physics event data with per-branch codecs."
    )
    parser.add_argument("--version", action="version", version=f"hepslim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HepslimError as exc:
        print(f"hepslim {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
