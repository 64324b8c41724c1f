"""``hepslim survey``: what a sample stores that it does not need, and how few bits each branch really uses.

For every branch (and every collection: the name's prefix before ``_``, ``nJet`` belongs to ``Jet``) the
survey measures

* its share of the file's bytes and its bytes/event as stored (per-TBranch sizes from ROOT metadata; an
  estimate where the file does not record them, e.g. baskets embedded in the TTree) and as hepslim would
  store it (the flat content encoded with the pipeline :func:`hepslim.policy.resolve` picks for ``spec``);
* an entropy estimate (bits/value of the empirical distribution; bounded by log2 of the values examined);
* flags: ``constant``, ``near-constant``, ``always-default`` (constant 0 / -1 / false / NaN), ``empty``
  (a jagged branch with no values), ``duplicate`` (identical content to an earlier branch, found by hashing),
  ``derivable`` (equal within float precision to ``a*x + b`` of another branch of the same structure, found
  with one correlation matrix per structure group, or to a standard kinematic function of others:
  pT from (px, py), E from (p, m), ...), ``pre-rounded`` (float branches whose values use fewer mantissa bits
  than their dtype has: NanoAOD rounds e.g. ``Jet_pt`` to 10 bits), ``discrete`` (float branches with at
  least 5% of their values on points repeated 8 or more times that 10-bit rounding would move: species
  masses, jets of one muon; round them with ``mantissa``'s ``keep_repeated`` so those points stay exact);
* the effective precision: the largest number of significant mantissa bits any value uses;
* a suggested codec with the expected saving: drop (constant/duplicate), ``derived:`` (when
  :mod:`hepslim.derived` has the function), or the smallest of a few lossless pipelines, measured.

:func:`survey` returns a :class:`SurveyReport` (``to_dict()`` for JSON, ``table()`` for a terminal,
``write_report(dir)`` for a bar chart and an ``index.md``, ``draft_spec()``/``write_spec(path)`` for a spec
that drops, derives and keeps the precision the data has).

>>> rep = survey("/work/shared/data/nano_tt_v12.root", max_events=50)   # doctest: +SKIP
>>> rep.branch("Jet_pt").effective_bits                                    # doctest: +SKIP
10
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepslim.errors import FormatError, HepslimError, MissingDependencyError

#: Float dtype itemsize -> (unsigned view, mantissa bits, exponent mask after shift, exponent shift).
_FLOAT_LAYOUT: dict[int, tuple[type[np.unsignedinteger], int]] = {2: (np.uint16, 10), 4: (np.uint32, 23),
                                                                   8: (np.uint64, 52)}
_EVENT_IDS = frozenset({"run", "luminosityBlock", "event", "bunchCrossing"})
_COUNTER_RE = re.compile(r"^n([A-Z0-9].*)$")

#: Lossless candidates tried for the suggestion, per dtype kind ("f" floats, "i" integers and booleans).
_LOSSLESS_CANDIDATES: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {
    "f": [("bytestreamsplit+zstd9", [{"id": "bytestreamsplit"}, {"id": "zstd", "level": 9}]),
          ("raw+zstd9", [{"id": "raw"}, {"id": "zstd", "level": 9}])],
    "i": [("bitpack+zstd9", [{"id": "bitpack"}, {"id": "zstd", "level": 9}]),
          ("delta+bitpack+zstd9", [{"id": "delta", "zigzag": True}, {"id": "bitpack"}, {"id": "zstd", "level": 9}]),
          ("bytestreamsplit+zstd9", [{"id": "bytestreamsplit"}, {"id": "zstd", "level": 9}])],
}


# ============================================================================================ reading
@dataclass
class Column:
    """One branch as the survey sees it: its flat leaf content and (for jagged branches) per-event counts."""

    name: str
    values: np.ndarray
    counts: np.ndarray | None
    stored_bytes: float | None = None  # bytes the whole input spends on it (None: unknown)
    uncompressed_bytes: float | None = None
    stored_estimated: bool = False


@dataclass
class Input:
    """What :func:`read_input` returns: the columns of the first ``n_read`` events and file-level facts."""

    path: str
    tree: str | None
    kind: str
    n_events: int
    n_read: int
    file_bytes: int
    compression: str | None
    columns: dict[str, Column]
    skipped: dict[str, str] = field(default_factory=dict)


def _native(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x)
    return x.astype(x.dtype.newbyteorder("=")) if not x.dtype.isnative else x


def _split(arr: Any) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(flat content, counts or None) of a numeric awkward/numpy column; None if it is not one."""
    import awkward as ak

    if isinstance(arr, np.ndarray):
        return (_native(arr.reshape(-1)), None) if arr.ndim == 1 and arr.dtype.kind in "biuf" else None
    a = arr if isinstance(arr, ak.Array) else ak.Array(arr)
    form = a.layout.form
    depth = 0
    while hasattr(form, "content") and not hasattr(form, "contents"):
        if form.__class__.__name__ in ("ListOffsetForm", "ListForm", "RegularForm"):
            depth += 1
        form = form.content
    if getattr(form, "primitive", None) is None or depth > 1:
        return None
    if depth == 0:
        v = np.asarray(ak.to_numpy(a))
        return (_native(v), None) if v.dtype.kind in "biuf" else None
    v = np.asarray(ak.flatten(a, axis=None))
    if v.dtype.kind not in "biuf":
        return None
    return _native(v), np.asarray(ak.num(a, axis=1), dtype=np.int64)


def _default_tree(file: Any, path: str) -> str:
    trees = list(dict.fromkeys(k.split(";")[0] for k, c in file.classnames().items()
                               if c in ("TTree", "ROOT::RNTuple")))
    if "Events" in trees:
        return "Events"
    if len(trees) == 1:
        return trees[0]
    if not trees:
        raise FormatError(f"{path}: no TTree or RNTuple in the file")
    raise FormatError(f"{path}: several trees ({', '.join(trees)}); name one with --tree")


def read_input(path: str | os.PathLike[str], *, tree: str | None = None, branches: Iterable[str] | None = None,
               max_events: int | None = None) -> Input:
    """Read the numeric branches of ``path`` (ROOT TTree or RNTuple, Parquet; other containers through
    ``hepslim.open``) with the bytes each one costs in the input.

    Only the first ``max_events`` events are read; per-branch stored sizes come from the file's metadata
    and cover the whole file. Non-numeric branches are listed in ``Input.skipped`` with the reason.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FormatError(f"{p}: no such file")
    want = set(branches) if branches is not None else None
    if os.path.isdir(p):  # a Zarr store
        return _read_hepslim(p, want, max_events)
    with open(p, "rb") as fh:
        head = fh.read(4)
    if p.endswith((".parquet", ".pq")) and not _hepslim_written(p):
        return _read_parquet(p, want, max_events)
    if head == b"root" and not _hepslim_written(p):
        return _read_root(p, tree, want, max_events)
    return _read_hepslim(p, want, max_events)


def _hepslim_written(path: str) -> bool:
    """Whether ``path`` carries hepslim metadata (read it through ``hepslim.open`` then: derived branches
    come back and checksums are verified); False when the I/O layer is unavailable."""
    try:
        from hepslim.io import select_format

        adapter = select_format(path, None, "r")
        return bool(adapter.metadata(path, tree=None))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - any failure means: read it as a plain file
        return False


def _read_root(path: str, tree: str | None, want: set[str] | None, max_events: int | None) -> Input:
    try:
        import uproot
    except ImportError:
        raise MissingDependencyError("uproot", "root", "reading ROOT files") from None
    f = uproot.open(path)
    name = tree or _default_tree(f, path)
    try:
        obj = f[name]
    except Exception as exc:  # noqa: BLE001 - uproot raises KeyInFileError (a KeyError)
        raise FormatError(f"{path}: no tree {name!r} ({exc})") from None
    n_events = int(obj.num_entries)
    stop = n_events if max_events is None else min(n_events, int(max_events))
    cols: dict[str, Column] = {}
    skipped: dict[str, str] = {}
    compression = None
    if hasattr(obj, "branches"):  # TTree
        import uproot.interpretation.jagged as jagged
        import uproot.interpretation.numerical as numerical

        names = []
        for b in obj.branches:
            if want is not None and b.name not in want:
                continue
            it = b.interpretation
            ok = (isinstance(it, jagged.AsJagged) and isinstance(it.content, numerical.AsDtype)
                  and it.content.to_dtype.fields is None) or \
                 (isinstance(it, numerical.AsDtype) and it.to_dtype.fields is None and it.to_dtype.shape == ())
            if ok:
                names.append(b.name)
            else:
                skipped[b.name] = f"type {b.typename} is not a numeric (jagged) leaf"
        arrays = obj.arrays(names, entry_stop=stop, library="ak", how=dict) if names else {}
        for nm in names:
            b = obj[nm]
            split = _split(arrays[nm])
            if split is None:
                skipped[nm] = "not a numeric leaf"
                continue
            values, counts = split
            code = b.member("fCompress") if b.has_member("fCompress") else None
            if not code or code < 0:  # 0 / -1: the file's setting
                code = getattr(f.file, "fCompress", None)
            comp = uproot.compression.Compression.from_code(code) if code and code > 0 else None
            if compression is None and comp is not None:
                compression = f"{type(comp).__name__}({comp.level})"
            col = Column(nm, values, counts)
            if b.compressed_bytes > 0:
                col.stored_bytes, col.uncompressed_bytes = float(b.compressed_bytes), float(b.uncompressed_bytes)
            else:  # baskets embedded in the TTree object: estimate with the branch's own compression
                col.stored_bytes, col.uncompressed_bytes = _estimate_root_bytes(values, counts, comp, n_events,
                                                                                stop)
                col.stored_estimated = True
            cols[nm] = col
        kind = "root-ttree"
    else:  # RNTuple: read fields; per-field sizes are not exposed, estimate them
        fields = [x for x in obj.keys() if want is None or x in want] if want is not None else None
        arr = obj.arrays(fields, entry_stop=stop) if fields else obj.arrays(entry_stop=stop)
        for fld in arr.fields:
            if want is not None and fld not in want:
                continue
            split = _split(arr[fld])
            if split is None:
                skipped[fld] = "not a numeric (jagged) leaf (RNTuple record/collection field)"
                continue
            values, counts = split
            col = Column(fld, values, counts)
            col.stored_bytes, col.uncompressed_bytes = _estimate_root_bytes(values, counts, None, n_events, stop)
            col.stored_estimated = True
            cols[fld] = col
        kind = "root-rntuple"
    return Input(path, name, kind, n_events, stop, os.path.getsize(path), compression, cols, skipped)


def _estimate_root_bytes(values: np.ndarray, counts: np.ndarray | None, comp: Any, n_events: int,
                         n_read: int) -> tuple[float, float]:
    """(stored, uncompressed) bytes for the whole file from the ``n_read`` events read: big-endian content
    plus ROOT's 4-byte entry offsets for jagged branches, compressed with ``comp`` (zlib-1 if unknown)."""
    import zlib

    raw = values.astype(values.dtype.newbyteorder(">")).tobytes()
    if counts is not None:
        raw += np.cumsum(counts, dtype=np.int64).astype(">i4").tobytes()
    if comp is not None and int(getattr(comp, "level", 0) or 0) > 0:
        import uproot

        stored = len(uproot.compression.compress(raw, comp))
    else:
        stored = len(zlib.compress(raw, 1))
    scale = n_events / n_read if n_read else 0.0
    return stored * scale, len(raw) * scale


def _read_parquet(path: str, want: set[str] | None, max_events: int | None) -> Input:
    try:
        import awkward as ak
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "parquet", "reading Parquet files") from None
    md = pq.ParquetFile(path).metadata
    sizes: dict[str, list[float]] = {}
    for rg in range(md.num_row_groups):
        g = md.row_group(rg)
        for c in range(g.num_columns):
            cc = g.column(c)
            top = cc.path_in_schema.split(".")[0]
            s = sizes.setdefault(top, [0.0, 0.0])
            s[0] += cc.total_compressed_size
            s[1] += cc.total_uncompressed_size
    arr = ak.from_parquet(path, columns=sorted(want) if want is not None else None)
    n_events = len(arr)
    stop = n_events if max_events is None else min(n_events, int(max_events))
    arr = arr[:stop]
    cols: dict[str, Column] = {}
    skipped: dict[str, str] = {}
    for fld in arr.fields:
        split = _split(arr[fld])
        if split is None:
            skipped[fld] = "not a numeric (jagged) leaf"
            continue
        st = sizes.get(fld)
        cols[fld] = Column(fld, split[0], split[1], st[0] if st else None, st[1] if st else None)
    return Input(path, None, "parquet", n_events, stop, os.path.getsize(path), None, cols, skipped)


def _read_hepslim(path: str, want: set[str] | None, max_events: int | None) -> Input:
    """Any other container: through ``hepslim.open`` (stored sizes unknown)."""
    try:
        from hepslim.io import open as hs_open  # type: ignore[import-not-found]
    except ImportError:
        raise FormatError(f"{path}: not a ROOT or Parquet file, and hepslim.open is not available") from None
    arr = hs_open(path, branches=sorted(want) if want is not None else None)
    sizes: dict[str, tuple[float, float]] = {}
    try:
        from hepslim.io import inspect

        for r in inspect(path)["branches"]:
            sizes[r["name"]] = (float(r["bytes"]), float(r["raw_bytes"]))
    except Exception:  # noqa: BLE001 - sizes are optional: the survey still measures everything else
        pass
    n_events = len(arr)
    stop = n_events if max_events is None else min(n_events, int(max_events))
    arr = arr[:stop]
    cols: dict[str, Column] = {}
    skipped: dict[str, str] = {}
    for fld in arr.fields:
        split = _split(arr[fld])
        if split is None:
            skipped[fld] = "not a numeric (jagged) leaf"
            continue
        st = sizes.get(fld)
        cols[fld] = Column(fld, split[0], split[1], st[0] if st else None, st[1] if st else None)
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) if os.path.isdir(path) \
        else os.path.getsize(path)
    return Input(path, None, "hepslim", n_events, stop, size, None, cols, skipped)


# ========================================================================================== statistics
def collection_of(name: str, known_prefixes: Iterable[str] = ()) -> str:
    """The collection a branch belongs to: the prefix before ``_`` (``Jet_pt`` -> ``Jet``); a counter
    ``nJet`` belongs to ``Jet`` when that collection exists; other names to ``event``."""
    m = _COUNTER_RE.match(name)
    if m:  # nJet, and per-branch counters such as nJet_pt
        base = m.group(1).split("_", 1)[0]
        if base in set(known_prefixes):
            return base
    if "_" in name.strip("_"):
        return name.strip("_").split("_", 1)[0]
    return "event"


def _is_protected(name: str) -> bool:
    return name in _EVENT_IDS or bool(_COUNTER_RE.match(name)) or "Idx" in name


def _bits_view(values: np.ndarray) -> np.ndarray:
    """An unsigned-integer view of ``values`` (so NaNs compare, hash and count by bit pattern)."""
    if values.dtype.kind == "b":
        return values.view(np.uint8)
    return values.view(f"u{values.dtype.itemsize}")


def effective_mantissa_bits(values: np.ndarray) -> int | None:
    """The most significant mantissa bits any normal finite value of a float array uses (None for other
    dtypes or when no value is normal): 10 for NanoAOD's ``Jet_pt`` (rounded to 10 bits in production).

    A value's used bits are the mantissa width minus its trailing zero bits; zero, subnormals, inf and NaN
    do not count.

    >>> effective_mantissa_bits(np.float32([1.0, 1.5, 1.25]))
    2
    """
    if values.dtype.kind != "f" or values.dtype.itemsize not in _FLOAT_LAYOUT:
        return None
    utype, mbits = _FLOAT_LAYOUT[values.dtype.itemsize]
    u = _native(values).reshape(-1).view(utype)
    one = utype(1)
    mmask = utype((1 << mbits) - 1)
    emax = (1 << (values.dtype.itemsize * 8 - 1 - mbits)) - 1
    exp = (u >> utype(mbits)) & utype(emax)
    normal = (exp != 0) & (exp != emax)
    if not np.any(normal):
        return None
    m = u[normal] & mmask
    m = m[m != 0]
    if m.size == 0:
        return 0
    low = m & (~m + one)  # lowest set bit
    tz = np.frexp(low.astype(np.float64))[1] - 1  # exact: low is a power of two <= 2**52
    return int(mbits - tz.min())


def entropy_bits(values: np.ndarray) -> float:
    """Shannon entropy (bits/value) of the empirical distribution of ``values`` (by bit pattern).

    A plug-in estimate: it cannot exceed log2(len(values)), so for continuous values it says "at least
    this many bits are needed to tell the values seen apart", not the bits of the underlying density.
    """
    if values.size == 0:
        return 0.0
    _, counts = np.unique(_bits_view(values), return_counts=True)
    p = counts / values.size
    return float(-(p * np.log2(p)).sum())


def _content_key(values: np.ndarray, counts: np.ndarray | None) -> str:
    """A hash of a branch's content: equal keys for identical values and structure, whatever the dtype
    (values that fit float64 exactly are hashed as float64)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(b"flat" if counts is None else np.asarray(counts, np.int64).tobytes())
    if values.dtype.kind == "f" or values.dtype.itemsize <= 4:
        canon = values.astype(np.float64)
        canon[canon == 0] = 0.0  # +0 and -0 are the same content
        h.update(canon.tobytes())
    else:
        h.update(values.astype(np.int64).tobytes() if values.dtype.kind == "i" else values.tobytes())
    return h.hexdigest()


def _encoded_size(values: np.ndarray, configs: Sequence[Mapping[str, Any]]) -> int | None:
    from hepslim.pipeline import Pipeline

    try:
        return len(Pipeline.from_configs([dict(c) for c in configs]).encode(values))
    except HepslimError:
        return None


# ======================================================================================= derivations
@dataclass(frozen=True)
class Relation:
    """How a branch follows from others: ``function`` (a :mod:`hepslim.derived` name when ``registered``)
    of ``inputs``, reproducing the branch within ``max_rel_error`` on the values examined."""

    function: str
    inputs: tuple[str, ...]
    max_rel_error: float
    registered: bool
    params: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"function": self.function, "inputs": list(self.inputs), "max_rel_error": self.max_rel_error,
                "registered": self.registered, "params": dict(self.params)}

    def describe(self) -> str:
        if self.function == "linear":
            a, b = self.params["a"], self.params["b"]
            return f"{a:.6g}*{self.inputs[0]}{b:+.6g}"
        return f"{self.function}({', '.join(self.inputs)})"


def _tolerance(dtype: np.dtype, eff_bits: Sequence[int | None]) -> float:
    """Relative agreement that counts as "equal within float precision": a few ulps of the dtype, or the
    precision the (pre-rounded) branches actually carry, whichever is coarser."""
    dt = np.dtype(dtype)
    eps = float(np.finfo(dt).eps) if dt.kind == "f" else 2.0**-52
    tol = 8 * eps
    bits = [b for b in eff_bits if b is not None]
    if bits:
        tol = max(tol, 2.0 * 2.0 ** -max(min(bits), 1))
    return tol


def _rel_error(y: np.ndarray, f: np.ndarray) -> float:
    """max |y - f| / max(|y|, |f|) over values (0/0 counts as exact; NaN in both as exact)."""
    y = y.astype(np.float64)
    f = np.asarray(f, dtype=np.float64)
    both_nan = np.isnan(y) & np.isnan(f)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.abs(y - f)
        scale = np.maximum(np.abs(y), np.abs(f))
        # an absolute floor for values at zero (e.g. a mass computed as sqrt(E^2 - p^2)), robust to the
        # garbage outliers some files carry (1e31 in PFNano's DeepCSV track variables)
        nz = np.abs(y[np.isfinite(y) & (y != 0)])
        floor = 1e-6 * float(np.median(nz)) if nz.size else 0.0
        r = np.where(d == 0, 0.0, d / np.maximum(scale, floor if floor > 0 else np.finfo(np.float64).tiny))
    r[both_nan] = 0.0
    if r.size == 0:
        return 0.0
    m = float(np.max(r))
    return m if math.isfinite(m) else float("inf")


def _linear_relations(cols: Mapping[str, Column], candidates: Sequence[str], eff: Mapping[str, int | None],
                      *, max_values: int = 4096, min_values: int = 10,
                      min_distinct: int = 8) -> dict[str, Relation]:
    """Branches equal to ``a*x + b`` of an earlier branch with the same structure.

    One correlation matrix per structure group (standardised values of a sample, one matrix product) finds
    the candidate pairs (|r| > 1 - 1e-6); each is then fitted and checked value by value on all values.
    """
    groups: dict[str, list[str]] = {}
    for n in candidates:
        c = cols[n]
        if c.values.size < min_values or not np.all(np.isfinite(c.values.astype(np.float64))):
            continue
        key = "flat" if c.counts is None else hashlib.blake2b(c.counts.tobytes(), digest_size=12).hexdigest()
        groups.setdefault(key, []).append(n)
    out: dict[str, Relation] = {}
    for names in groups.values():
        if len(names) < 2:
            continue
        n_vals = cols[names[0]].values.size
        idx = np.arange(n_vals) if n_vals <= max_values else \
            np.random.default_rng(0).choice(n_vals, max_values, replace=False)
        z = np.empty((len(names), idx.size))
        for i, n in enumerate(names):
            v = cols[n].values[idx].astype(np.float64)
            v = v - v.mean()
            s = np.sqrt(np.mean(v * v))
            z[i] = v / s if s > 0 else 0.0
        corr = (z @ z.T) / idx.size
        ii, jj = np.nonzero(np.triu(np.abs(corr) > 1 - 1e-6, k=1))
        for i, j in zip(ii.tolist(), jj.tolist()):  # over candidate pairs only (few)
            src, dst = names[i], names[j]  # the later branch is expressed through the earlier one
            if dst in out or src in out:
                continue
            x = cols[src].values.astype(np.float64)
            y = cols[dst].values.astype(np.float64)
            # a relation between two step functions of the same pattern (defaults, flags) is chance:
            # ask for enough distinct values that a straight line through them means something
            if np.unique(x[: min(x.size, 4096)]).size < min_distinct:
                continue
            a, b = np.polyfit(x, y, 1)
            a, b = float(a), float(b)
            f = a * x + b
            tol = _tolerance(cols[dst].values.dtype, [eff.get(dst), eff.get(src)])
            if cols[dst].values.dtype.kind != "f":  # integers: exact after rounding
                ok = np.array_equal(np.round(f), y)
                err = 0.0 if ok else float("inf")
            else:
                err = _rel_error(y, f)
                ok = err <= tol
            if ok:
                # a clean identity / sign flip prints as such
                for cand in (1.0, -1.0):
                    if abs(a - cand) <= tol:
                        a = cand
                if abs(b) <= tol * float(np.max(np.abs(y))):
                    b = 0.0
                out[dst] = Relation("linear", (src,), err, False, {"a": a, "b": b})
    return out


def _pt(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    return np.hypot(px, py)


def _p(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    return np.sqrt(px * px + py * py + pz * pz)


def _eta(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    return np.arcsinh(pz / np.hypot(px, py))


#: Kinematic relations tried per collection: (target field, input fields, function name, registered in
#: hepslim.derived, callable on float64 arrays). Field names match case-insensitively with aliases below.
_KINEMATICS: list[tuple[str, tuple[str, ...], str, bool, Callable[..., np.ndarray] | None]] = [
    ("pt", ("px", "py"), "pt_from_pxpy", True, None),
    ("energy", ("px", "py", "pz", "mass"), "energy_from_pxpypz_mass", True, None),
    ("energy", ("px", "py", "pz", "pid"), "energy_from_pxpypz_pid", True, None),
    ("energy", ("pt", "eta", "phi", "mass"), "energy_from_ptetaphimass", True, None),
    ("mass", ("px", "py", "pz", "energy"), "mass_from_pxpypze", True, None),
    ("mass", ("pid",), "mass_from_pid", True, None),
    ("p", ("px", "py", "pz"), "p_from_pxpypz", False, _p),
    ("eta", ("px", "py", "pz"), "eta_from_pxpypz", False, _eta),
    ("phi", ("px", "py"), "phi_from_pxpy", False, lambda px, py: np.arctan2(py, px)),
    ("px", ("pt", "phi"), "px_from_ptphi", False, lambda pt, phi: pt * np.cos(phi)),
    ("py", ("pt", "phi"), "py_from_ptphi", False, lambda pt, phi: pt * np.sin(phi)),
    ("pz", ("pt", "eta"), "pz_from_pteta", False, lambda pt, eta: pt * np.sinh(eta)),
]
_ALIASES = {"energy": ("energy", "e"), "pid": ("pid", "pdgid"), "mass": ("mass", "m"), "pt": ("pt",),
            "px": ("px",), "py": ("py",), "pz": ("pz",), "eta": ("eta",), "phi": ("phi",), "p": ("p",)}


def _kinematic_relations(cols: Mapping[str, Column], candidates: Iterable[str],
                         eff: Mapping[str, int | None]) -> dict[str, Relation]:
    """Per collection, targets that follow from standard kinematics of sibling branches (same structure)."""
    from hepslim.derived import FUNCTIONS

    by_prefix: dict[str, dict[str, str]] = {}
    for n in cols:
        if "_" in n:
            pre, rest = n.rsplit("_", 1)
            by_prefix.setdefault(pre, {})[rest.lower()] = n
    cand = set(candidates)
    out: dict[str, Relation] = {}
    used: set[str] = set()
    for fields in by_prefix.values():
        def look(key: str) -> str | None:
            return next((fields[a] for a in _ALIASES[key] if a in fields), None)

        for target, inputs, fname, registered, fn in _KINEMATICS:
            t = look(target)
            if t is None or t not in cand or t in out or t in used:
                continue
            ins = [look(k) for k in inputs]
            # no cycles: an accepted target is never an input, an input is never a target
            if any(i is None or i == t or i in out for i in ins):
                continue
            ct = cols[t]
            if ct.values.dtype.kind != "f" or any(
                    cols[i].values.size != ct.values.size  # type: ignore[index]
                    or (cols[i].counts is None) != (ct.counts is None)  # type: ignore[index]
                    or (ct.counts is not None and not np.array_equal(cols[i].counts, ct.counts))  # type: ignore[index, arg-type]
                    for i in ins):
                continue
            if ct.values.size == 0:
                continue
            args = [cols[i].values for i in ins]  # type: ignore[index]
            with np.errstate(all="ignore"):
                try:
                    f = FUNCTIONS[fname].func(*args) if registered else fn(*[a.astype(np.float64) for a in args])  # type: ignore[misc]
                except HepslimError:
                    continue
            err = _rel_error(ct.values, f)
            tol = _tolerance(ct.values.dtype, [eff.get(t), *[eff.get(i) for i in ins]])  # type: ignore[arg-type]
            if err <= tol:
                out[t] = Relation(fname, tuple(ins), err, registered)  # type: ignore[arg-type]
                used.update(ins)  # type: ignore[arg-type]
    return out


# ============================================================================================ results
@dataclass
class BranchSurvey:
    """The survey of one branch (sizes in bytes/event; ``stored`` covers the whole input)."""

    name: str
    collection: str
    dtype: str
    jagged: bool
    n_values: int
    stored_bytes_per_event: float | None
    stored_estimated: bool
    uncompressed_bytes_per_event: float | None
    hepslim_bytes_per_event: float | None
    entropy_bits: float
    effective_bits: int | None
    mantissa_bits: int | None
    flags: list[str]
    duplicate_of: str | None
    derivable: Relation | None
    constant_value: float | None
    suggestion: str
    suggested_codecs: list[dict[str, Any]] | None
    suggested_bytes_per_event: float
    saving_bytes_per_event: float
    share: float = 0.0  # of the bytes all surveyed branches occupy as stored

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["derivable"] = self.derivable.to_dict() if self.derivable else None
        return d


@dataclass
class SurveyReport:
    """Everything :func:`survey` found; ``branches`` sorted by potential saving (largest first)."""

    path: str
    tree: str | None
    kind: str
    n_events: int
    events_examined: int
    file_bytes: int
    compression: str | None
    spec: str
    container: str
    branches: list[BranchSurvey]
    collections: list[dict[str, Any]]
    skipped: dict[str, str]

    def branch(self, name: str) -> BranchSurvey:
        for b in self.branches:
            if b.name == name:
                return b
        raise KeyError(name)

    def flagged(self, flag: str) -> list[str]:
        """Names of the branches carrying ``flag`` (``constant``, ``duplicate``, ``derivable``, ...)."""
        return [b.name for b in self.branches if flag in b.flags]

    @property
    def totals(self) -> dict[str, float]:
        def tot(attr: str) -> float:
            return float(sum(getattr(b, attr) or 0.0 for b in self.branches))

        return {"stored_bytes_per_event": tot("stored_bytes_per_event"),
                "hepslim_bytes_per_event": tot("hepslim_bytes_per_event"),
                "suggested_bytes_per_event": tot("suggested_bytes_per_event"),
                "saving_bytes_per_event": tot("saving_bytes_per_event"),
                "file_bytes_per_event": self.file_bytes / self.n_events if self.n_events else 0.0}

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "tree": self.tree, "kind": self.kind, "n_events": self.n_events,
                "events_examined": self.events_examined, "file_bytes": self.file_bytes,
                "compression": self.compression, "spec": self.spec, "container": self.container,
                "totals": self.totals,
                "flag_counts": {f: len(self.flagged(f)) for f in _FLAGS},
                "collections": self.collections, "branches": [b.to_dict() for b in self.branches],
                "skipped": self.skipped}

    # ---- text table
    def table(self, top: int | None = 40) -> str:
        """A terminal table: totals, collections by stored size, branches by potential saving."""
        t = self.totals
        lines = [f"{self.path}  [{self.kind}{', ' + self.tree if self.tree else ''}]  {self.n_events} events "
                 f"({self.events_examined} examined), {self.file_bytes / 1e6:.3f} MB, compression "
                 f"{self.compression or 'unknown'}",
                 f"bytes/event: file {t['file_bytes_per_event']:.1f}, branches as stored "
                 f"{t['stored_bytes_per_event']:.1f}, hepslim ({self.spec}, {self.container}) "
                 f"{t['hepslim_bytes_per_event']:.1f}, suggested {t['suggested_bytes_per_event']:.1f} "
                 f"(saving {t['saving_bytes_per_event']:.1f})",
                 "flags: " + ", ".join(f"{f} {len(self.flagged(f))}" for f in _FLAGS), ""]
        lines.append(f"{'collection':<24} {'branches':>8} {'share':>7} {'stored B/evt':>12} {'hepslim B/evt':>13} "
                     f"{'suggested':>10}")
        for c in self.collections[: top or None]:
            lines.append(f"{c['collection']:<24} {c['branches']:>8} {100 * c['share']:>6.1f}% "
                         f"{c['stored_bytes_per_event']:>12.2f} {c['hepslim_bytes_per_event']:>13.2f} "
                         f"{c['suggested_bytes_per_event']:>10.2f}")
        lines.append("")
        rows = self.branches[: top or None]
        w = max([len(b.name) for b in rows] + [6])
        lines.append(f"{'branch':<{w}} {'type':<9} {'stored':>8} {'hepslim':>8} {'bits':>5} {'H':>5}  "
                     f"{'saving':>8}  suggestion [flags]")
        for b in rows:
            typ = b.dtype + ("[]" if b.jagged else "")
            bits = "" if b.effective_bits is None else f"{b.effective_bits}/{b.mantissa_bits}"
            st = "?" if b.stored_bytes_per_event is None else f"{b.stored_bytes_per_event:.2f}"
            hs = "?" if b.hepslim_bytes_per_event is None else f"{b.hepslim_bytes_per_event:.2f}"
            flags = f" [{', '.join(b.flags)}]" if b.flags else ""
            lines.append(f"{b.name:<{w}} {typ:<9} {st:>8} {hs:>8} {bits:>5} {b.entropy_bits:>5.1f}  "
                         f"{b.saving_bytes_per_event:>8.2f}  {b.suggestion}{flags}")
        if top and len(self.branches) > top:
            lines.append(f"... {len(self.branches) - top} more branches (--top 0 shows all)")
        lines.append("(sizes in bytes/event; bits = effective/dtype mantissa bits; H = entropy, bits/value)")
        return "\n".join(lines)

    # ---- report directory
    def write_report(self, directory: str | os.PathLike[str], top: int = 30) -> list[str]:
        """Bar charts (PNG, matplotlib Agg) and an ``index.md`` in ``directory``; returns the files written."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise MissingDependencyError("matplotlib", "report", "survey report plots") from None
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        written = []
        rows = [b for b in self.branches if b.saving_bytes_per_event > 0][:top][::-1]
        fig, ax = plt.subplots(figsize=(9, 0.28 * max(len(rows), 4) + 1.2))
        y = np.arange(len(rows))
        ax.barh(y, [b.stored_bytes_per_event or 0 for b in rows], color="#999999", label="as stored")
        ax.barh(y, [b.suggested_bytes_per_event for b in rows], color="#1f77b4", label="suggested")
        ax.set_yticks(y, [f"{b.name} ({b.suggestion.split(':')[0]})" for b in rows], fontsize=7)
        ax.set_xlabel("bytes / event")
        ax.set_title(f"Largest potential savings: {Path(self.path).name}")
        ax.legend(loc="lower right")
        fig.tight_layout()
        written.append(_save_fig(fig, d / "savings.png"))
        plt.close(fig)
        cols = self.collections[:top][::-1]
        fig, ax = plt.subplots(figsize=(9, 0.28 * max(len(cols), 4) + 1.2))
        y = np.arange(len(cols))
        ax.barh(y - 0.2, [c["stored_bytes_per_event"] for c in cols], 0.4, color="#999999", label="as stored")
        ax.barh(y + 0.2, [c["suggested_bytes_per_event"] for c in cols], 0.4, color="#1f77b4", label="suggested")
        ax.set_yticks(y, [c["collection"] for c in cols], fontsize=7)
        ax.set_xlabel("bytes / event")
        ax.set_title("Collections by stored size")
        ax.legend(loc="lower right")
        fig.tight_layout()
        written.append(_save_fig(fig, d / "collections.png"))
        plt.close(fig)
        t = self.totals
        md = [f"# hepslim survey: `{Path(self.path).name}`", "",
              f"{self.n_events} events ({self.events_examined} examined), {self.file_bytes} bytes, "
              f"{self.kind}, compression {self.compression or 'unknown'}.", "",
              "| | bytes/event |", "|---|---:|",
              f"| file | {t['file_bytes_per_event']:.1f} |",
              f"| branches as stored | {t['stored_bytes_per_event']:.1f} |",
              f"| hepslim `{self.spec}` ({self.container}) | {t['hepslim_bytes_per_event']:.1f} |",
              f"| suggested (drops, derived, lossless codecs) | {t['suggested_bytes_per_event']:.1f} |", "",
              "Flags: " + ", ".join(f"{f} {len(self.flagged(f))}" for f in _FLAGS), "",
              "![savings](savings.png)", "", "![collections](collections.png)", "",
              "## Branches by potential saving", "",
              "| branch | type | stored B/evt | hepslim B/evt | eff. bits | entropy | suggestion | flags |",
              "|---|---|---:|---:|---:|---:|---|---|"]
        for b in self.branches[:200]:
            md.append(f"| `{b.name}` | {b.dtype}{'[]' if b.jagged else ''} | "
                      f"{_fmt(b.stored_bytes_per_event)} | {_fmt(b.hepslim_bytes_per_event)} | "
                      f"{'' if b.effective_bits is None else b.effective_bits} | {b.entropy_bits:.1f} | "
                      f"{b.suggestion} | {', '.join(b.flags)} |")
        (d / "index.md").write_text("\n".join(md) + "\n", encoding="utf-8")
        written.append(str(d / "index.md"))
        return written

    # ---- draft spec
    def draft_spec(self, name: str | None = None, extends: str | None = None) -> str:
        """A draft spec (YAML text with comments): drop constant/empty/duplicate branches (never event ids,
        counters or indices), ``derived:`` entries for registered kinematic relations, and -- unless it
        ``extends`` a lossy spec, which then decides precision -- ``mantissa`` rules keeping exactly the
        precision pre-rounded float branches already have (lossless on this data)."""
        name = name or re.sub(r"[^A-Za-z0-9_]+", "_", Path(self.path).stem) + "_survey"
        drops: list[tuple[str, str]] = []
        derived: list[tuple[str, Relation]] = []
        for b in self.branches:
            if b.suggestion.startswith("drop"):
                drops.append((b.name, b.suggestion))
            elif b.suggestion.startswith("derive") and b.derivable is not None:
                derived.append((b.name, b.derivable))
        by_bits: dict[int, list[str]] = {}
        for b in sorted(self.branches, key=lambda x: x.name):
            if not _lossless_parent(extends):
                break  # a lossy parent decides the precision; the draft only drops and derives
            if "pre-rounded" in b.flags and not b.suggestion.startswith(("drop", "derive")):
                by_bits.setdefault(max(1, int(b.effective_bits or 1)), []).append(b.name)
        out = [f"# Draft spec written by `hepslim survey` from {Path(self.path).name} "
               f"({self.events_examined} of {self.n_events} events examined).",
               "# Review before use: a branch that is constant or a duplicate in this sample may not be in others.",
               f"name: {json.dumps(name)}",
               f"description: {json.dumps('survey draft for ' + Path(self.path).name)}"]
        if extends:
            out.append(f"extends: {json.dumps(extends)}")
        if self.tree:
            out.append(f"tree: {json.dumps(self.tree)}")
        if drops:
            out.append("drop:")
            for n, why in drops:
                out.append(f"  - {json.dumps(n)}  # {why}")
        out.append("rules:" if by_bits else "rules: []")
        for k in sorted(by_bits):
            out.append(f"  # values already carry at most {k} mantissa bits: rounding to {k} is lossless here")
            out.append(f"  - match: {json.dumps(by_bits[k])}")
            out.append(f"    codecs: [{{id: mantissa, keepbits: {k}}}]")
        if derived:
            out.append("derived:")
            for n, rel in derived:
                tol = min(0.5, max(2.0 * rel.max_rel_error, 1e-6))
                out.append(f"  # reproduced within {rel.max_rel_error:.2g} (relative) on the values examined")
                out.append(f"  - {{name: {json.dumps(n)}, function: {rel.function}, "
                           f"inputs: {json.dumps(list(rel.inputs))}, tolerance: {tol:.3e}}}")  # PyYAML: floats need a dot
        return "\n".join(out) + "\n"

    def write_spec(self, path: str | os.PathLike[str], *, name: str | None = None, extends: str | None = None,
                   force: bool = False) -> str:
        """Write :meth:`draft_spec` atomically to ``path`` after checking it loads (``hepslim spec check``)."""
        from hepslim.policy import load_spec

        p = Path(path)
        if p.exists() and not force:
            raise HepslimError(f"{p} exists; pass force=True (--force) to overwrite it")
        if p.exists() and p.resolve() == Path(self.path).resolve():
            raise HepslimError(f"{p} is the input file")
        text = self.draft_spec(name=name, extends=extends)
        _atomic_write(p, text, check=load_spec)
        return str(p)


def _lossless_parent(extends: str | None) -> bool:
    if extends is None:
        return True
    from hepslim.policy import load_spec

    sp = load_spec(extends)
    d = sp.effective_default
    return all(r.lossless for r in sp.all_rules) and (d is None or d.lossless)


_FLAGS = ("constant", "near-constant", "always-default", "empty", "duplicate", "derivable", "pre-rounded", "discrete")
_DISCRETE_COUNT = 8  # a value repeated this often is a point, not a coincidence (see mantissa.keep_repeated)
_DISCRETE_SHARE = 0.05


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f}"


def _save_fig(fig: Any, path: Path) -> str:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return str(path)


def _atomic_write(path: Path, text: str, check: Callable[[str], Any] | None = None) -> None:
    """Write ``text`` to a temp file next to ``path``, run ``check(tmp)``, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ============================================================================================= survey
def survey(path: str | os.PathLike[str] | Input, *, tree: str | None = None, branches: Iterable[str] | None = None,
           max_events: int | None = 20000, spec: Any = "lossless", container: str = "zarr",
           near_constant: float = 0.99, progress: bool = False) -> SurveyReport:
    """Survey ``path``: per-branch/per-collection sizes, entropy, flags, effective precision, suggestions.

    ``max_events`` bounds the events examined (stored sizes still cover the whole file); ``spec`` and
    ``container`` choose the pipeline whose size is reported as "hepslim"; a branch whose most common value
    covers at least ``near_constant`` of its values is flagged near-constant.
    """
    from hepslim.policy import is_counter_name, is_index_name, load_spec, resolve

    inp = path if isinstance(path, Input) else read_input(path, tree=tree, branches=branches, max_events=max_events)
    spec_obj = load_spec(spec)
    cols = inp.columns
    n_ev = max(inp.n_events, 1)
    n_read = max(inp.n_read, 1)
    prefixes = {n.split("_", 1)[0] for n in cols if "_" in n}

    eff = {n: effective_mantissa_bits(c.values) for n, c in cols.items()}
    const: dict[str, float | None] = {}
    near: set[str] = set()
    ent: dict[str, float] = {}
    for n, c in cols.items():
        v = c.values
        ent[n] = entropy_bits(v)
        if v.size == 0:
            continue
        bv = _bits_view(v)
        if np.all(bv == bv[0]):
            const[n] = float(v[0])
        else:
            _, counts = np.unique(bv, return_counts=True)
            if counts.max() >= near_constant * v.size:
                near.add(n)

    # duplicates: identical content (hash, then confirmed) to an earlier, non-constant branch
    dup: dict[str, str] = {}
    seen: dict[str, str] = {}
    for n, c in cols.items():
        if n in const or c.values.size == 0:
            continue
        k = _content_key(c.values, c.counts)
        first = seen.get(k)
        if first is None:
            seen[k] = n
        elif np.array_equal(c.values.astype(np.float64), cols[first].values.astype(np.float64), equal_nan=True):
            dup[n] = first

    # derivable: kinematics first (registered functions can become `derived:` entries), then linear
    open_ = [n for n in cols if n not in const and n not in dup and cols[n].values.dtype.kind in "iuf"
             and cols[n].values.size > 0]
    rel = _kinematic_relations(cols, open_, eff)
    lin = _linear_relations(cols, [n for n in open_ if n not in rel], eff)
    rel.update({k: v for k, v in lin.items() if k not in rel})

    # which relations can become spec entries: registered, inputs stored (not dropped / derived themselves)
    rows: list[BranchSurvey] = []
    iterator: Iterable[str] = cols
    if progress:
        try:
            from tqdm import tqdm

            iterator = tqdm(list(cols), desc="survey", unit="branch")
        except ImportError:
            pass
    derived_targets: set[str] = set()
    dropped: set[str] = set()
    for n in cols:
        if _is_protected(n):
            continue
        if n in const or (cols[n].counts is not None and cols[n].values.size == 0) or n in dup:
            dropped.add(n)
    for n, r in rel.items():
        if r.registered and not _is_protected(n) and not any(i in dropped or i in rel for i in r.inputs):
            derived_targets.add(n)

    for n in iterator:
        c = cols[n]
        v = c.values
        dt = v.dtype
        flags: list[str] = []
        empty = c.counts is not None and v.size == 0
        if empty:
            flags.append("empty")
        if n in const:
            flags.append("constant")
            cv = const[n]
            if cv is not None and (cv in (0.0, -1.0) or math.isnan(cv)):
                flags.append("always-default")
        if n in near:
            flags.append("near-constant")
        if n in dup:
            flags.append("duplicate")
        if n in rel:
            flags.append("derivable")
        mbits = _FLOAT_LAYOUT[dt.itemsize][1] if dt.kind == "f" and dt.itemsize in _FLOAT_LAYOUT else None
        if mbits is not None and eff[n] is not None and eff[n] < mbits:  # type: ignore[operator]
            flags.append("pre-rounded")
        if mbits is not None and n not in const and v.size >= 20 * _DISCRETE_COUNT:
            from hepslim.codecs.mantissa import Mantissa, repeated_mask

            nv = np.ascontiguousarray(_native(v))
            hot = repeated_mask(nv.view(_FLOAT_LAYOUT[dt.itemsize][0]), _DISCRETE_COUNT)
            if hot is not None:  # only points that rounding would move (not 0, 1, small integers, ...)
                hot &= Mantissa(keepbits=min(10, mbits - 1)).encode(nv) != nv
                if hot.mean() >= _DISCRETE_SHARE:
                    flags.append("discrete")
        stored = c.stored_bytes / n_ev if c.stored_bytes is not None else None
        role = "counter" if is_counter_name(n) else "index" if is_index_name(n) else "values"
        hs = None
        if not (spec_obj.is_dropped(n) or spec_obj.derived_for(n) is not None):
            try:
                pipe = resolve(spec_obj, n, dt, role=role, container=container)
                hs = len(pipe.encode(v)) / n_read
            except HepslimError:
                hs = None
        else:
            hs = 0.0
        # suggestion
        sugg_codecs: list[dict[str, Any]] | None = None
        if n in dropped and not _is_protected(n):
            why = "empty" if empty else "constant" if n in const else f"duplicate of {dup[n]}"
            suggestion, sugg = f"drop: {why}", 0.0
        elif n in derived_targets:
            suggestion, sugg = f"derive: {rel[n].describe()}", 0.0
        else:
            kind = "f" if dt.kind == "f" else "i"
            best_name: str | None = None
            best = math.inf
            for cname, cfg in _LOSSLESS_CANDIDATES[kind]:
                size = _encoded_size(v, cfg)
                if size is not None and size < best:
                    best_name, best, sugg_codecs = cname, size, cfg
            if "pre-rounded" in flags:
                kb = max(1, int(eff[n] or 1))
                sugg_codecs = [{"id": "mantissa", "keepbits": kb}, *(sugg_codecs or [])]
                best_name = f"mantissa{kb} (lossless here)+{best_name}"
            sugg = best / n_read if math.isfinite(best) else (hs or 0.0)
            suggestion = f"keep: {best_name}"
            if "discrete" in flags:
                suggestion += f" (discrete: if rounded, mantissa keep_repeated: {_DISCRETE_COUNT})"
            if n in rel:
                suggestion += f" (derivable: {rel[n].describe()})"
        ref = stored if stored is not None else hs
        saving = max(0.0, (ref or 0.0) - sugg)
        rows.append(BranchSurvey(
            name=n, collection=collection_of(n, prefixes), dtype=str(dt), jagged=c.counts is not None,
            n_values=int(v.size), stored_bytes_per_event=stored, stored_estimated=c.stored_estimated,
            uncompressed_bytes_per_event=c.uncompressed_bytes / n_ev if c.uncompressed_bytes is not None else None,
            hepslim_bytes_per_event=hs, entropy_bits=ent[n], effective_bits=eff[n], mantissa_bits=mbits,
            flags=flags, duplicate_of=dup.get(n), derivable=rel.get(n), constant_value=const.get(n),
            suggestion=suggestion, suggested_codecs=sugg_codecs, suggested_bytes_per_event=sugg,
            saving_bytes_per_event=saving))
    rows.sort(key=lambda b: (-b.saving_bytes_per_event, b.name))
    total_stored = sum(b.stored_bytes_per_event or 0.0 for b in rows) or 1.0
    for b in rows:
        b.share = (b.stored_bytes_per_event or 0.0) / total_stored
    colls: dict[str, dict[str, Any]] = {}
    for b in rows:
        cs = colls.setdefault(b.collection, {"collection": b.collection, "branches": 0, "stored_bytes_per_event": 0.0,
                                            "hepslim_bytes_per_event": 0.0, "suggested_bytes_per_event": 0.0,
                                            "saving_bytes_per_event": 0.0, "flags": {}})
        cs["branches"] += 1
        cs["stored_bytes_per_event"] += b.stored_bytes_per_event or 0.0
        cs["hepslim_bytes_per_event"] += b.hepslim_bytes_per_event or 0.0
        cs["suggested_bytes_per_event"] += b.suggested_bytes_per_event
        cs["saving_bytes_per_event"] += b.saving_bytes_per_event
        for f in b.flags:
            cs["flags"][f] = cs["flags"].get(f, 0) + 1
    for cs in colls.values():
        cs["share"] = cs["stored_bytes_per_event"] / total_stored
    collections = sorted(colls.values(), key=lambda c: -c["stored_bytes_per_event"])
    return SurveyReport(inp.path, inp.tree, inp.kind, inp.n_events, inp.n_read, inp.file_bytes, inp.compression,
                        spec_obj.name, container, rows, collections, inp.skipped)
