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


# Commands, in the order `hepslim --help` lists them. Each feature adds its own `_cmd_*` above.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _cmd_codecs,
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
