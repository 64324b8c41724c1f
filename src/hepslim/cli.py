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
    json.dump(obj, sys.stdout, indent=2, default=_json_default)
    sys.stdout.write("\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


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
        c["id"] + ("(" + ", ".join(f"{k}={v}" for k, v in c.items() if k != "id") + ")" if len(c) > 1 else "")
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
        tree = args.tree or s.effective_tree
        rows = [r.to_dict() for r in plan(s, input_branches(args.input, tree), container=args.container)]
        if args.json:
            _print_json({"spec": s.name, "sha256": s.sha256, "input": args.input, "container": args.container,
                         "branches": rows})
            return 0
        width = max((len(r["branch"]) for r in rows), default=10)
        for r in rows:
            typ = r["dtype"] + ("[]" if r["jagged"] else "")
            if r["action"] == "store":
                b = r["error_bound"]
                bound = "exact" if b is None else f"{b['kind']} {b['value']:.3g}"
                what = f"{_codecs_text(r['codecs'])}  [{bound}; {r['rule'] or 'container default'}]"
            elif r["action"] == "drop":
                what = "dropped"
            else:
                what = f"not stored: {r['rule']}"
            print(f"{r['branch']:<{width}}  {typ:<10} {what}")
        n = {a: sum(r["action"] == a for r in rows) for a in ("store", "drop", "derive")}
        lossy = sum(r["action"] == "store" and not r["lossless"] for r in rows)
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


# Commands, in the order `hepslim --help` lists them. Each feature adds its own `_cmd_*` above.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _cmd_codecs,
    _cmd_spec,
    _cmd_specs,
    _cmd_generate,
    _cmd_survey,
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
