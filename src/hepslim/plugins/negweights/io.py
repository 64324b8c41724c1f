"""Reading weighted events (LHE, NanoAOD-like ROOT, Parquet) and writing them back with new weights.

LHE out is a text-level rewrite of the input: only XWGTUP and the ``<wgt>`` values change, every other byte
(header, init, particle lines, comments) is copied as is. ROOT out rewrites the whole ``Events`` TTree with
``genWeight`` and the LHE weights replaced (other trees are copied). Parquet out stores the event records.
"""

from __future__ import annotations

import gzip
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepslim.errors import FormatError

LHE_SUFFIXES = (".lhe", ".lhe.gz")
ROOT_SUFFIXES = (".root",)
PARQUET_SUFFIXES = (".parquet",)


def kind_of(path: str | os.PathLike[str]) -> str:
    """'lhe', 'root' or 'parquet' from the file name."""
    name = str(path).lower()
    if name.endswith(LHE_SUFFIXES):
        return "lhe"
    if name.endswith(ROOT_SUFFIXES):
        return "root"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.rstrip("/").endswith(".zarr"):
        return "zarr"
    raise FormatError(f"{path}: unknown file type (expected .lhe, .lhe.gz, .root, .parquet or .zarr)")


@dataclass
class Source:
    """One input file: where its events sit in the joint sample and what is needed to write it back."""

    path: Path
    kind: str
    start: int
    stop: int
    payload: Any = None  # ROOT: dict of all Events arrays; parquet/lhe: the awkward events
    var_cols: list[int] = field(default_factory=list)  # columns of the joint variation table


@dataclass
class Sample:
    """Weighted events of one or more files, jointly: final-state particles, central weight, variations.

    ``variations`` hold absolute weights (ratio-type NanoAOD branches are multiplied out on reading).
    """

    particles: Any  # awkward: var * {px, py, pz, e, pid}
    weights: np.ndarray
    variations: np.ndarray  # (n, n_var)
    variation_names: list[str]
    sources: list[Source]

    @property
    def n_events(self) -> int:
        return len(self.weights)


# ------------------------------------------------------------------------------------------------ reading
def _final_state(px: Any, py: Any, pz: Any, e: Any, pid: Any) -> Any:
    import awkward as ak

    return ak.zip({"px": px, "py": py, "pz": pz, "e": e, "pid": pid})


def read_lhe(path: Path) -> tuple[Any, np.ndarray, dict[str, np.ndarray], Any]:
    """(final-state particles, central weights, {variation id: weights}, pylhe events) of an LHE file."""
    try:
        import pylhe
    except ImportError as exc:
        from hepslim.errors import MissingDependencyError

        raise MissingDependencyError("pylhe", "lhe", "reading LHE files") from exc
    import awkward as ak

    arr = pylhe.to_awkward(pylhe.LHEFile.fromfile(str(path)).events)
    if len(arr) == 0:
        raise FormatError(f"{path}: no events")
    p = arr.particles
    fs = p[p.status == 1]
    parts = _final_state(fs.vector.px, fs.vector.py, fs.vector.pz, fs.vector.e, fs.id)
    w = np.asarray(arr.eventinfo.weight, dtype=np.float64)
    variations: dict[str, np.ndarray] = {}
    if "weights" in arr.fields:
        for f in arr.weights.fields:
            variations[f] = np.asarray(ak.fill_none(arr.weights[f], np.nan), dtype=np.float64)
    return parts, w, variations, arr


_NANO_RATIO_BRANCHES = ("LHEScaleWeight", "LHEPdfWeight", "LHEReweightingWeight", "PSWeight")


def _pt_eta_phi_m(pt: Any, eta: Any, phi: Any, m: Any, pid: Any) -> Any:
    import numpy as _np

    px, py, pz = pt * _np.cos(phi), pt * _np.sin(phi), pt * _np.sinh(eta)
    e = _np.sqrt(px**2 + py**2 + pz**2 + m**2)
    return _final_state(px, py, pz, e, pid)


def read_root(path: Path, objects: str = "auto", tree: str = "Events") -> tuple[Any, np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """NanoAOD-like ROOT: (particles, genWeight, absolute variations, every Events array)."""
    import uproot

    with uproot.open(path) as f:
        if tree not in f:
            raise FormatError(f"{path}: no TTree {tree!r}")
        t = f[tree]
        names = [k for k in t.keys() if not isinstance(t[k].interpretation, uproot.AsGrouped)]
        arrays = t.arrays(names, library="ak", how=dict)
    return nano_from_arrays(path, arrays, objects)


def read_container(path: Path, objects: str = "auto") -> tuple[Any, np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """A NanoAOD-like hepslim container (any format hepslim.io reads, packed or transparent)."""
    from hepslim import io as hio

    ev = hio.open(path)
    return nano_from_arrays(path, {f: ev[f] for f in ev.fields}, objects)


def nano_from_arrays(path: Any, arrays: dict[str, Any], objects: str = "auto") -> tuple[
        Any, np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """Particles, genWeight and absolute variations from NanoAOD-style branches."""
    import awkward as ak

    if "genWeight" not in arrays:
        raise FormatError(f"{path}: no genWeight branch (not a generator-level NanoAOD file)")
    w = np.asarray(arrays["genWeight"], dtype=np.float64)
    variations: dict[str, np.ndarray] = {}
    for k in arrays:
        if k.startswith("LHEWeight_"):
            variations[k] = np.asarray(arrays[k], dtype=np.float64)
    base = variations.get("LHEWeight_originalXWGTUP", w)
    for k in _NANO_RATIO_BRANCHES:
        if k not in arrays:
            continue
        counts = np.asarray(ak.num(arrays[k]))
        if len(counts) == 0 or counts.max() == 0:
            continue
        if counts.min() != counts.max():
            warnings.warn(f"{path}: {k} has a varying length per event; it is left unchanged", stacklevel=3)
            continue
        reg = np.asarray(ak.to_numpy(ak.flatten(arrays[k])), dtype=np.float64).reshape(len(w), counts[0])
        for j in range(counts[0]):
            variations[f"{k}[{j}]"] = reg[:, j] * base
    mode = objects
    if mode == "auto":
        mode = "lhe" if "LHEPart_pt" in arrays else "gen"
    if mode == "lhe":
        a = arrays
        sel = a["LHEPart_pt"] > 0
        if "LHEPart_status" in a:
            sel = sel & (a["LHEPart_status"] == 1)
        parts = _pt_eta_phi_m(a["LHEPart_pt"][sel], a["LHEPart_eta"][sel], a["LHEPart_phi"][sel],
                              a["LHEPart_mass"][sel], a["LHEPart_pdgId"][sel])
    elif mode == "gen":
        a = arrays
        pieces = []
        if "GenJet_pt" in a:
            pieces.append(_pt_eta_phi_m(a["GenJet_pt"], a["GenJet_eta"], a["GenJet_phi"], a["GenJet_mass"],
                                        ak.zeros_like(a["GenJet_pt"], dtype=np.int64) + 81))
        if "GenDressedLepton_pt" in a:
            pieces.append(_pt_eta_phi_m(a["GenDressedLepton_pt"], a["GenDressedLepton_eta"],
                                        a["GenDressedLepton_phi"], a["GenDressedLepton_mass"],
                                        a["GenDressedLepton_pdgId"]))
        if "GenPart_pt" in a:
            nu = (a["GenPart_status"] == 1) & np.isin(np.abs(a["GenPart_pdgId"]), [12, 14, 16])
            pieces.append(_pt_eta_phi_m(a["GenPart_pt"][nu], a["GenPart_eta"][nu], a["GenPart_phi"][nu],
                                        a["GenPart_mass"][nu], a["GenPart_pdgId"][nu]))
        if not pieces:
            raise FormatError(f"{path}: no LHEPart_*, GenJet_* or GenDressedLepton_* branches to build events from")
        parts = ak.concatenate(pieces, axis=1)
    else:
        raise FormatError(f"objects must be 'auto', 'lhe' or 'gen', got {objects!r}")
    return parts, w, variations, arrays


def _is_event_records(path: Path) -> bool:
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    return "weight" in names and "particles" in names


def read_parquet(path: Path) -> tuple[Any, np.ndarray, dict[str, np.ndarray], Any]:
    """Parquet in the :func:`~hepslim.plugins.negweights.synthetic.generate_nlo` layout."""
    import awkward as ak

    ev = ak.from_parquet(path)
    if "weight" not in ev.fields or "particles" not in ev.fields:
        raise FormatError(f"{path}: expected fields 'weight' and 'particles', found {ev.fields}")
    return _from_event_records(ev, path)


def _from_event_records(ev: Any, where: Any = "events") -> tuple[Any, np.ndarray, dict[str, np.ndarray], Any]:
    p = ev.particles
    for need in ("px", "py", "pz", "e", "pid"):
        if need not in p.fields:
            raise FormatError(f"{where}: particles need fields px, py, pz, e, pid (and optionally status)")
    fs = p[p.status == 1] if "status" in p.fields else p
    parts = _final_state(fs.px, fs.py, fs.pz, fs.e, fs.pid)
    w = np.asarray(ev.weight, dtype=np.float64)
    variations: dict[str, np.ndarray] = {}
    if "variations" in ev.fields:
        import awkward as ak

        reg = np.asarray(ak.to_numpy(ev.variations), dtype=np.float64).reshape(len(w), -1)
        for j in range(reg.shape[1]):
            variations[f"variations[{j}]"] = reg[:, j]
    return parts, w, variations, ev


def read_inputs(paths: list[str | os.PathLike[str]], *, objects: str = "auto") -> Sample:
    """Read and join several inputs (variations are matched by name; a name missing in a file is an error)."""
    import awkward as ak

    if not paths:
        raise FormatError("no input files")
    parts_l, w_l, var_l, sources = [], [], [], []
    start = 0
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise FormatError(f"{path}: no such file")
        kind = kind_of(path)
        if kind == "lhe":
            parts, w, var, payload = read_lhe(path)
        elif kind == "root":
            parts, w, var, payload = read_root(path, objects)
        elif kind == "parquet" and _is_event_records(path):
            parts, w, var, payload = read_parquet(path)
        else:  # NanoAOD-like branches in a (hepslim) Parquet or Zarr container
            kind = "root"
            parts, w, var, payload = read_container(path, objects)
        parts_l.append(parts)
        w_l.append(w)
        var_l.append(var)
        sources.append(Source(path, kind, start, start + len(w), payload))
        start += len(w)
    names = list(var_l[0])
    for v, s in zip(var_l[1:], sources[1:]):
        if list(v) != names:
            raise FormatError(f"{s.path}: weight variations {list(v)} differ from {sources[0].path}'s {names}")
    n = start
    table = np.empty((n, len(names)))
    for v, s in zip(var_l, sources):
        for j, k in enumerate(names):
            table[s.start:s.stop, j] = v[k]
        s.var_cols = list(range(len(names)))
    particles = parts_l[0] if len(parts_l) == 1 else ak.concatenate(parts_l, axis=0)
    return Sample(particles, np.concatenate(w_l), table, names, sources)


# ------------------------------------------------------------------------------------------------ writing
def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _tmp_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes))
    os.close(fd)
    return Path(tmp)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("latin-1")  # byte-transparent


_EVENT_RE = re.compile(r"<event(?:\s[^>]*)?>.*?</event>[ \t]*\r?\n?", re.S)
_XWGT_RE = re.compile(r"(<event(?:\s[^>]*)?>\s*\S+\s+\S+\s+)(\S+)")
_WGT_RE = re.compile(r"(<wgt\s+id\s*=\s*['\"]([^'\"]+)['\"][^>]*>\s*)([^<\s]+)")
_WEIGHTS_RE = re.compile(r"(<weights(?:\s[^>]*)?>)(.*?)(</weights>)", re.S)
_TOKEN_RE = re.compile(r"\S+")


def _fmt(x: float) -> str:
    return f"{x:.10E}"


def _num(old: str, new: float) -> str:
    """The new value as text, or the old text when it already reads as that value (unchanged weights)."""
    try:
        if float(old.replace("d", "e").replace("D", "E")) == new:
            return old
    except ValueError:
        pass
    return _fmt(new)


def lhe_rewrite(texts: list[str], weights: np.ndarray, variations: dict[str, np.ndarray], keep: np.ndarray,
                where: str = "LHE") -> str:
    """Join LHE texts (header of the first) with XWGTUP and ``<wgt>`` values replaced; drop ``~keep`` events."""
    out: list[str] = []
    i = 0
    for n_file, text in enumerate(texts):
        spans = [m.span() for m in _EVENT_RE.finditer(text)]
        if not spans:
            raise FormatError(f"{where}: no <event> blocks")
        if n_file == 0:
            out.append(text[: spans[0][0]])
        if i + len(spans) > len(weights):
            raise FormatError(f"{where}: more <event> blocks than events read")
        for a, b in spans:
            if keep[i]:
                block = text[a:b]
                wi = weights[i]
                block = _XWGT_RE.sub(lambda m: m.group(1) + _num(m.group(2), wi), block, count=1)
                if variations and "<weights" in block:
                    block = _WEIGHTS_RE.sub(lambda m: _old_style(m, variations, i, where), block)
                if variations:
                    ii = i
                    block = _WGT_RE.sub(
                        lambda m: m.group(1) + (_num(m.group(3), variations[m.group(2)][ii]) if m.group(2) in variations
                                                else m.group(3)),
                        block)
                out.append(block)
            i += 1
        if n_file == len(texts) - 1:
            out.append(text[spans[-1][1]:])
    if i != len(weights):
        raise FormatError(f"{where}: {i} <event> blocks but {len(weights)} events read")
    return "".join(out)


def _old_style(m: re.Match[str], variations: dict[str, np.ndarray], i: int, where: str) -> str:
    """An old-style ``<weights> w1 w2 ... </weights>`` block: values in the order of ``<initrwgt>`` ids."""
    names = list(variations)
    toks = _TOKEN_RE.findall(m.group(2))
    if len(toks) != len(names):
        raise FormatError(f"{where}: a <weights> block has {len(toks)} values for {len(names)} weight ids")
    it = iter(names)
    inner = _TOKEN_RE.sub(lambda t: _num(t.group(0), variations[next(it)][i]), m.group(2))
    return m.group(1) + inner + m.group(3)


def write_lhe(sources: list[Source], output: Path, weights: np.ndarray, variations: dict[str, np.ndarray],
              keep: np.ndarray) -> None:
    text = lhe_rewrite([_read_text(s.path) for s in sources], weights, variations, keep, str(sources[0].path))
    data = text.encode("latin-1")
    if output.name.lower().endswith(".gz"):
        data = gzip.compress(data, compresslevel=6)
    atomic_write_bytes(output, data)


def _root_tree_dict(arrays: dict[str, Any]) -> dict[str, Any]:
    """Group NanoAOD-style jagged branches ``X_*`` sharing the counter ``nX`` into one record per collection."""
    import awkward as ak

    jagged = {k for k, v in arrays.items() if getattr(v, "ndim", 1) > 1}
    groups: dict[str, list[str]] = {}
    for k in sorted(jagged):
        if "_" in k:
            groups.setdefault(k.split("_", 1)[0], []).append(k)
    out: dict[str, Any] = {}
    covered: set[str] = set()
    for prefix, names in groups.items():
        counter = f"n{prefix}"
        if counter not in arrays or prefix in arrays:
            continue
        counts = np.asarray(arrays[counter])
        ok = [k for k in names if np.array_equal(np.asarray(ak.num(arrays[k])), counts)]
        if ok:
            out[prefix] = ak.zip({k.split("_", 1)[1]: arrays[k] for k in ok})
            covered.update(ok)
            covered.add(counter)
    for k in sorted(jagged - covered):
        out[k] = arrays[k]
        covered.update((k, f"n{k}"))  # uproot writes the counter of a bare jagged branch itself
    for k, v in arrays.items():
        if k not in covered and k not in jagged:
            out[k] = v
    return out


def write_root(sources: list[Source], output: Path, weights: np.ndarray, variations: dict[str, np.ndarray],
               keep: np.ndarray, names: list[str]) -> None:
    """Write the Events tree(s) of ROOT inputs (joined) with genWeight and LHE weights replaced."""
    import uproot

    joined = nano_arrays_out(sources, weights, variations, keep)
    tree = _root_tree_dict(joined)
    tmp = _tmp_path(output)
    try:
        with uproot.recreate(tmp) as f:
            data = {k: _as_writable(v) for k, v in tree.items()}
            f.mktree("Events", data, counter_name=lambda counted: f"n{counted}",
                     field_name=lambda outer, inner: f"{outer}_{inner}")
            if sources[0].path.name.lower().endswith(".root"):
                _copy_other_trees(sources[0].path, f)
        os.replace(tmp, output)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def _copy_other_trees(src_path: Path, f: Any) -> None:
    import uproot

    with uproot.open(src_path) as src:
        for name in src.keys(cycle=False):
            obj = src[name]
            if name == "Events" or not isinstance(obj, uproot.TTree):
                continue
            try:
                f[name] = {k: obj[k].array(library="ak") for k in obj.keys()}
            except Exception as exc:  # noqa: BLE001 - auxiliary trees are best effort
                warnings.warn(f"tree {name!r} not copied: {exc}", stacklevel=3)


def cast_keeping_sum(x: np.ndarray, dtype: Any) -> np.ndarray:
    """``x`` in a narrower float type (NanoAOD stores weights as float32), with the rounding of the sum put
    back on the largest entry so the stored values still sum to sum(x) within one ulp of that entry."""
    import math

    out = np.asarray(x).astype(dtype)
    if out.dtype == np.asarray(x).dtype or out.dtype.kind != "f" or len(out) == 0:
        return out
    target = math.fsum(np.asarray(x, dtype=np.float64))
    i = int(np.argmax(np.abs(out)))
    for _ in range(3):
        diff = target - math.fsum(out.astype(np.float64))
        if diff == 0.0:
            break
        out[i] = out.dtype.type(float(out[i]) + diff)
    return out


def nano_arrays_out(sources: list[Source], weights: np.ndarray, variations: dict[str, np.ndarray],
                    keep: np.ndarray) -> dict[str, Any]:
    """The NanoAOD-style branches of the inputs (joined) with genWeight and the LHE weights replaced."""
    import awkward as ak

    pieces = []
    for s in sources:
        if s.kind == "lhe" or s.kind == "parquet":
            arrays = _lhe_like_branches(s)
        else:
            arrays = dict(s.payload)
        sl = slice(s.start, s.stop)
        arrays["genWeight"] = cast_keeping_sum(weights[sl], np.asarray(arrays["genWeight"]).dtype)
        if s.kind in ("lhe", "parquet"):
            for k, v in variations.items():
                name = f"LHEWeight_{k}" if s.kind == "lhe" else f"LHEWeight_variations{k[len('variations['):-1]}"
                arrays[name] = v[sl]
            m = keep[sl]
            pieces.append({k: v[m] for k, v in arrays.items()} if not m.all() else arrays)
            continue
        base_new = variations.get("LHEWeight_originalXWGTUP", weights)[sl]
        for k, v in variations.items():
            if k.startswith("LHEWeight_"):
                arrays[k] = cast_keeping_sum(v[sl], np.asarray(arrays[k]).dtype)
        for b in _NANO_RATIO_BRANCHES:
            cols = sorted((int(k[len(b) + 1:-1]), k) for k in variations if k.startswith(b + "["))
            if not cols:
                continue
            absw = np.stack([variations[k][sl] for _, k in cols], axis=1)
            ratio = np.divide(absw, base_new[:, None], out=np.ones_like(absw), where=base_new[:, None] != 0)
            dt = np.asarray(ak.flatten(arrays[b])).dtype
            arrays[b] = ak.unflatten(ratio.astype(dt).ravel(), np.full(len(ratio), ratio.shape[1]))
        m = keep[sl]
        if not m.all():
            arrays = {k: v[m] for k, v in arrays.items()}
        pieces.append(arrays)
    if len(pieces) > 1:
        keys = list(pieces[0])
        return {k: ak.concatenate([p[k] for p in pieces]) for k in keys}
    return pieces[0]


def _lhe_like_branches(s: Source) -> dict[str, Any]:
    """LHE or generator-layout events as NanoAOD-style branches: LHEPart_*, genWeight, LHEWeight_<id>."""
    import awkward as ak

    ev = s.payload
    if s.kind == "lhe":
        p = ev.particles
        px, py, pz, e = p.vector.px, p.vector.py, p.vector.pz, p.vector.e
        pid, status, m = p.id, p.status, p.m
        w = ev.eventinfo.weight
        var = {f"LHEWeight_{k}": ev.weights[k] for k in (ev.weights.fields if "weights" in ev.fields else [])}
    else:
        p = ev.particles
        px, py, pz, e, pid = p.px, p.py, p.pz, p.e, p.pid
        status = p.status if "status" in p.fields else ak.ones_like(pid)
        m = p.m if "m" in p.fields else np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0))
        w = ev.weight
        var = {}
        if "variations" in ev.fields:
            reg = np.asarray(ak.to_numpy(ev.variations)).reshape(len(ev), -1)
            var = {f"LHEWeight_variations{j}": reg[:, j] for j in range(reg.shape[1])}
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(pz / pt)
    eta = ak.where(pt > 0, eta, ak.where(pz >= 0, 1e4, -1e4))
    out = {"LHEPart_pt": pt, "LHEPart_eta": eta, "LHEPart_phi": np.arctan2(py, px), "LHEPart_mass": m,
           "LHEPart_pdgId": pid, "LHEPart_status": status, "genWeight": np.asarray(w, dtype=np.float64),
           "nLHEPart": np.asarray(ak.num(pid), dtype=np.uint32)}
    out.update({k: np.asarray(v, dtype=np.float64) for k, v in var.items()})
    return out


def _as_writable(v: Any) -> Any:
    import awkward as ak

    if isinstance(v, np.ndarray):
        return v
    if v.ndim == 1 and not v.fields:
        return ak.to_numpy(v)
    return v


def write_parquet(sources: list[Source], output: Path, weights: np.ndarray, variations: dict[str, np.ndarray],
                  keep: np.ndarray, names: list[str]) -> None:
    """Parquet: the event records (generator layout, the pylhe layout, or the NanoAOD branches as columns)."""
    import awkward as ak

    pieces = []
    for s in sources:
        sl = slice(s.start, s.stop)
        if s.kind == "root":
            arrays = dict(s.payload)
            ev = ak.zip({k: v for k, v in arrays.items()}, depth_limit=1)
            ev = ak.with_field(ev, weights[sl], "genWeight")
            for k, v in variations.items():
                if k.startswith("LHEWeight_"):
                    ev = ak.with_field(ev, v[sl], k)
        elif s.kind == "lhe":
            ev = s.payload
            ev = ak.with_field(ev, weights[sl], ["eventinfo", "weight"])
            for k, v in variations.items():
                if "weights" in ev.fields and k in ev.weights.fields:
                    ev = ak.with_field(ev, v[sl], ["weights", k])
            ev = ak.without_parameters(ev)
        else:
            ev = s.payload
            ev = ak.with_field(ev, weights[sl], "weight")
            cols = sorted((int(k[len("variations["):-1]), k) for k in variations if k.startswith("variations["))
            if cols:
                ev = ak.with_field(ev, np.stack([variations[k][sl] for _, k in cols], axis=1), "variations")
        pieces.append(ev[keep[sl]])
    ev = pieces[0] if len(pieces) == 1 else ak.concatenate(pieces)
    tmp = _tmp_path(output)
    try:
        ak.to_parquet(ev, tmp)
        os.replace(tmp, output)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
