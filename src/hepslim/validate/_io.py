"""Reading both files of a comparison, behind one function, and the error bounds a container declares.

``read`` uses :func:`hepslim.open` when the I/O layer is installed, else uproot / awkward directly, so
any container (ROOT TTree or RNTuple, Parquet, hepslim's own) reads the same way: an awkward record array
with the original flat branch names (``Jet_pt``), jagged where the input was.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from hepslim.errors import FormatError, MissingDependencyError


def _has_hepslim_io() -> bool:
    return importlib.util.find_spec("hepslim.io") is not None


def read(path: str | os.PathLike[str], branches: list[str] | None = None) -> Any:
    """All (or the named) branches of ``path`` as one awkward record array, one row per event/jet."""
    if _has_hepslim_io():
        try:
            import hepslim.io as hio

            opener = hio.open
        except (ImportError, AttributeError):  # the I/O layer is not complete in this installation
            return _read_direct(path, branches)
        return opener(path, branches=branches)
    return _read_direct(path, branches)


def _read_direct(path: str | os.PathLike[str], branches: list[str] | None) -> Any:
    try:
        import awkward as ak
    except ImportError as exc:
        raise MissingDependencyError("awkward", "root") from exc
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return ak.from_parquet(p, columns=branches)
    if suffix == ".root":
        try:
            import uproot
        except ImportError as exc:
            raise MissingDependencyError("uproot", "root") from exc
        with uproot.open(p) as f:
            names = [k.split(";")[0] for k, c in f.classnames().items() if c in ("TTree", "ROOT::RNTuple")]
            if not names:
                raise FormatError(f"{p}: no TTree or RNTuple found")
            tree = f["Events"] if "Events" in names else f[names[0]]
            return tree.arrays(branches, library="ak") if branches else tree.arrays(library="ak")
    raise FormatError(f"cannot read {p}: unknown extension {suffix!r} (hepslim.io is not available)")


def declared_bounds(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Branch -> declared error bound ``{"kind", "value"}`` from the container's stored codec configs
    (through :func:`hepslim.io.inspect`). Empty for a plain ROOT/Parquet file or an all-lossless one."""
    if not _has_hepslim_io():
        return {}
    try:
        import hepslim.io as hio

        info = hio.inspect(path)
    except Exception:  # no hepslim metadata (plain file) or an I/O layer without inspect
        return {}
    out: dict[str, dict[str, Any]] = {}
    for row in info.get("branches", []):
        b = row.get("error_bound")
        if b is None:
            continue
        if hasattr(b, "to_json"):
            b = b.to_json()
        if isinstance(b, dict) and "kind" in b and "value" in b:
            out[row["name"]] = {"kind": b["kind"], "value": float(b["value"])}
    return out
