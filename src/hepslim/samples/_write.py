"""Write a branch table to ROOT (TTree ``Events`` with NanoAOD counters) or Parquet, atomically.

Until :func:`hepslim.write` exists this is the generator's own writer; the output is chosen by extension.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hepslim.errors import FormatError, MissingDependencyError

ROOT_SUFFIXES = (".root",)
PARQUET_SUFFIXES = (".parquet", ".pq")


def _groups(table: dict[str, Any]) -> dict[str, Any]:
    """Group jagged branches by collection prefix (``Jet_pt`` -> ``Jet``) into awkward records; counters
    ``n<Collection>`` are dropped because uproot writes them itself."""
    import awkward as ak

    jagged: dict[str, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for name, arr in table.items():
        if isinstance(arr, ak.Array) and arr.ndim > 1:
            coll, _, field = name.partition("_")
            jagged.setdefault(coll, {})[field] = arr
        else:
            out[name] = np.asarray(arr)
    for coll in jagged:
        out.pop(f"n{coll}", None)
    for coll, fields in jagged.items():
        out[coll] = ak.zip(fields)
    return out


def add_counters(table: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``table`` with an ``n<Collection>`` counter (int32) before each collection."""
    import awkward as ak

    out: dict[str, Any] = {}
    for name, arr in table.items():
        if isinstance(arr, ak.Array) and arr.ndim > 1:
            coll = name.partition("_")[0]
            if f"n{coll}" not in out and f"n{coll}" not in table:
                out[f"n{coll}"] = ak.to_numpy(ak.num(arr)).astype(np.int32)
        out[name] = arr
    return out


def _atomic_target(out: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    return Path(tmp)


def write_table(tables: list[dict[str, Any]], out: str | os.PathLike[str], tree: str = "Events") -> Path:
    """Write chunks (same branches each) to ``out``; ROOT for ``.root``, Parquet for ``.parquet``/``.pq``."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in ROOT_SUFFIXES + PARQUET_SUFFIXES:
        raise FormatError(f"cannot tell the output format of {out}: use .root, .parquet or .pq")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _atomic_target(out)
    try:
        if suffix in ROOT_SUFFIXES:
            try:
                import uproot
            except ImportError as exc:
                raise MissingDependencyError("uproot", "root") from exc
            import awkward as ak

            with uproot.recreate(tmp) as f:
                t = None
                for chunk in tables:
                    g = _groups(chunk)
                    if t is None:
                        types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in g.items()}
                        t = f.mktree(tree, types)
                    if len(next(iter(g.values()))):
                        t.extend(g)
        else:
            import awkward as ak

            whole = {k: ak.concatenate([c[k] for c in tables]) for k in tables[0]}
            ak.to_parquet(ak.zip(add_counters(whole), depth_limit=1), tmp, compression="zstd")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
