"""The Python API: open, write and compress event files in any container, compressed or plain.

>>> import hepslim                                                      # doctest: +SKIP
>>> report = hepslim.compress("nano.root", "nano.slim.root", spec="nanoaod")
>>> events = hepslim.open("nano.slim.root", branches=["run", "event", "Jet_pt"])
>>> events.Jet_pt                                # jagged, with the input's flat branch names

The container is chosen by the ``hepslim_select_format`` hook from the requested format name, the path's
extension or its first bytes (``root``, ``PAR1``, a Zarr directory). Writes are atomic (a temporary file or
directory renamed into place); an existing output is replaced only with ``force=True`` and the input never.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hepslim.errors import FormatError, OutputExistsError, UnknownFormatError
from hepslim.formats import _layout as L

if TYPE_CHECKING:
    import awkward as ak

    from hepslim.abc import FormatAdapter

PathLike = str | os.PathLike[str]


# ------------------------------------------------------------------------------------------- selection
def select_format(path: PathLike, format: str | None = None, mode: str = "r") -> FormatAdapter:
    """The format adapter for ``path`` (by ``format`` name, extension, or magic bytes when reading)."""
    from hepslim.plugins import plugin_manager

    head = L.read_head(path) if mode == "r" else b""
    pm = plugin_manager()
    adapter = pm.hook.hepslim_select_format(path=str(path), format=format, mode=mode, head=head)
    if adapter is None:
        known = [cls.format_id for impl in pm.hook.hepslim_register_formats() for cls in impl or ()]
        raise UnknownFormatError(format or Path(path).suffix or str(path), known)
    return adapter


def _default_mode(adapter: Any) -> str:
    return str(getattr(adapter, "default_mode", "transparent"))


# ---------------------------------------------------------------------------------------------- reading
def open(  # noqa: A001 - the natural name, as in uproot.open
    path: PathLike,
    branches: Iterable[str] | str | None = None,
    *,
    tree: str | None = None,
    format: str | None = None,
    verify: bool = True,
) -> ak.Array:
    """Read events as an awkward array whose fields are the input's branch names.

    Only the requested ``branches`` (names or globs) are read from disk; derived branches are recomputed
    from their stored inputs. Works for any ROOT (TTree/RNTuple), Parquet or Zarr file, hepslim-written or
    not. Checksums are verified (``CorruptDataError`` on damage) unless ``verify=False``.
    """
    adapter = select_format(path, format, "r")
    return adapter.read(str(path), branches=branches, tree=tree, verify=verify)


def iterate(
    path: PathLike,
    branches: Iterable[str] | str | None = None,
    *,
    step_size: int | None = None,
    tree: str | None = None,
    format: str | None = None,
) -> Iterator[ak.Array]:
    """Yield the events in chunks (bounded memory), like :func:`open` otherwise."""
    adapter = select_format(path, format, "r")
    yield from adapter.iterate(str(path), branches=branches, step_size=step_size, tree=tree)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------- writing
@dataclass
class WriteReport:
    """What a write or compress produced: sizes per branch, the spec and mode, timing."""

    output: str
    format: str
    mode: str
    spec: str | None
    num_entries: int
    output_bytes: int
    input: str | None = None
    input_bytes: int | None = None
    raw_bytes: int = 0
    seconds: float = 0.0
    dropped: list[str] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)
    #: derived branches the spec declares but that were stored, each with the reason
    derived_kept: list[dict[str, Any]] = field(default_factory=list)
    branches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """input bytes / output bytes (None without an input file)."""
        return self.input_bytes / self.output_bytes if self.input_bytes and self.output_bytes else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        d["bytes_per_event"] = self.output_bytes / self.num_entries if self.num_entries else None
        return d


def _progress(total: int | None, desc: str, enabled: bool | None) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="ev", leave=False)


def write(
    events: Any,
    path: PathLike,
    *,
    spec: Any = None,
    format: str | None = None,
    mode: str | None = None,
    force: bool = False,
    step_size: int = 100_000,
    tree: str = "Events",
    progress: bool | None = None,
) -> WriteReport:
    """Write events (an awkward record array, a dict of arrays, or an iterable of such chunks) to ``path``.

    ``spec`` (name, YAML path or Spec; default ``lossless``) chooses each branch's codecs; ``mode`` is
    ``transparent`` (standard dtypes, readable without hepslim; ROOT's only mode) or ``packed``.
    """
    ak = L._ak()
    if isinstance(events, Mapping):
        events = ak.zip(dict(events), depth_limit=1)
    if isinstance(events, ak.Array):
        arr = events

        def chunks() -> Iterator[Any]:
            return L.iter_chunks(arr, step_size)

        factory: Callable[[], Iterator[Any]] | None = chunks
        total: int | None = len(arr)
        first_iter = chunks()
    else:
        factory, total, first_iter = None, None, iter(events)
    return _write(first_iter, factory, path, spec=spec, format=format, mode=mode, force=force, tree=tree,
                  total=total, progress=progress, source=None)


def compress(
    src: PathLike,
    dst: PathLike,
    *,
    spec: Any = None,
    format: str | None = None,
    mode: str | None = None,
    tree: str | None = None,
    force: bool = False,
    branches: Iterable[str] | None = None,
    step_size: int | None = None,
    progress: bool | None = None,
) -> WriteReport:
    """Rewrite ``src`` (any readable container) into ``dst`` with ``spec``, chunk by chunk.

    ``format`` defaults to ``dst``'s extension (else the input's format); ``mode`` to the container's
    default (``transparent`` for ROOT, ``packed`` for Parquet and Zarr).
    """
    from hepslim.policy import load_spec

    src_p, dst_p = Path(src), Path(dst)
    if not src_p.exists():
        raise FileNotFoundError(f"input {src} does not exist")
    if dst_p.exists() and _same(src_p, dst_p):
        raise FormatError(f"output {dst} is the input: hepslim never overwrites its input")
    reader = select_format(src_p, None, "r")
    the_spec = load_spec(spec)
    if tree is None:
        tree = getattr(the_spec, "tree", None)
    if format is None:
        try:
            select_format(dst_p, None, "w")
        except UnknownFormatError:
            format = reader.format_id
    total = reader.num_entries(str(src_p), tree=tree)  # type: ignore[attr-defined]

    def factory() -> Iterator[Any]:
        return reader.iterate(str(src_p), branches=branches, step_size=step_size, tree=tree)  # type: ignore[attr-defined]

    in_bytes = L.path_size(src_p)
    source: dict[str, Any] = {
        "path": src_p.name,
        "format": reader.format_id,
        "bytes": in_bytes,
        "tree": tree,
    }
    out_tree = tree or "Events"
    if hasattr(reader, "tree_name"):  # keep the input's tree name (``events`` stays ``events``)
        out_tree = reader.tree_name(str(src_p), tree=tree)
    report = _write(factory(), factory, dst_p, spec=the_spec, format=format, mode=mode, force=force,
                    tree=out_tree, total=total, progress=progress, source=source)
    report.input = str(src_p)
    report.input_bytes = in_bytes
    return report


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def _write(
    chunks: Iterator[Any],
    factory: Callable[[], Iterator[Any]] | None,
    path: PathLike,
    *,
    spec: Any,
    format: str | None,
    mode: str | None,
    force: bool,
    tree: str,
    total: int | None,
    progress: bool | None,
    source: Mapping[str, Any] | None,
) -> WriteReport:
    from hepslim.policy import load_spec

    t0 = time.perf_counter()
    dst = Path(path)
    if (dst.exists() or dst.is_symlink()) and not force:
        raise OutputExistsError(f"{dst} exists; use force=True (--force) to replace it")
    adapter = select_format(dst, format, "w")
    mode = mode or _default_mode(adapter)
    modes = getattr(adapter, "modes", L.MODES)
    if mode not in modes:
        raise FormatError(f"format {adapter.format_id!r} supports mode {' or '.join(modes)}, not {mode!r}")
    the_spec = load_spec(spec)

    try:
        first = next(chunks)
    except StopIteration:
        raise FormatError("no events to write (an empty iterable of chunks)") from None
    plan = L.make_plan(L.describe(first), the_spec, adapter.format_id, mode)
    plan.num_entries_hint = total
    _plan_derived(plan, factory)

    tmp = L.tmp_path_for(dst)
    L.remove(tmp)
    writer = adapter.open_writer(tmp, plan, tree=tree)  # type: ignore[attr-defined]
    bounds = [0]
    crcs: dict[str, list[int]] = {n: [] for n in plan.branches}
    raw: dict[str, int] = {n: 0 for n in plan.branches}
    bar = _progress(total, f"hepslim {adapter.format_id}", progress)
    try:
        for chunk in _chain(first, chunks):
            n, prepared = L.prepare_chunk(chunk, plan)
            if n == 0 and bounds[-1] > 0:
                continue
            writer.append(n, prepared)
            for name, p in prepared.items():
                crcs[name].append(p.crc)
                raw[name] += p.raw_nbytes
            bounds.append(bounds[-1] + n)
            if bar is not None:
                bar.update(n)
        meta = L.build_metadata(
            plan, num_entries=bounds[-1], chunks=bounds, crcs=crcs, raw=raw, source=source,
            container_lib=str(getattr(adapter, "library", adapter.format_id)),
        )
        writer.close(meta)
    except BaseException:
        writer.abort()
        L.remove(tmp)
        raise
    finally:
        if bar is not None:
            bar.close()
    L.commit(tmp, dst, force=force)
    return WriteReport(
        output=str(dst),
        format=adapter.format_id,
        mode=mode,
        spec=getattr(the_spec, "name", None),
        num_entries=bounds[-1],
        output_bytes=L.path_size(dst),
        raw_bytes=sum(raw.values()),
        seconds=time.perf_counter() - t0,
        dropped=list(plan.dropped),
        derived=[d["name"] for d in plan.derived],
        derived_kept=list(plan.derived_kept),
    )


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _plan_derived(plan: L.WritePlan, factory: Callable[[], Iterator[Any]] | None) -> None:
    """Drop a spec's derived branches from storage when recomputing them from the stored (decoded) inputs
    reproduces every chunk of the original within the declared tolerance; otherwise keep them stored."""
    derived = getattr(plan.spec, "all_derived", None) or getattr(plan.spec, "derived", ()) or ()
    cands = [
        d for d in derived
        if d.name in plan.branches and all(i in plan.branches and i != d.name for i in d.inputs)
    ]
    if not cands:
        return
    if factory is None:  # a one-shot iterable cannot be scanned twice: store them
        for d in cands:
            plan.derived_kept.append({"name": d.name, "reason": "input given as a one-shot iterable"})
        return
    ak = L._ak()
    from hepslim.derived import compute

    worst: dict[str, float] = {d.name: 0.0 for d in cands}
    failed: dict[str, str] = {}
    for chunk in factory():
        layout = (chunk if isinstance(chunk, ak.Array) else ak.Array(chunk)).layout
        for d in cands:
            if d.name in failed:
                continue
            ins = []
            for i in d.inputs:
                bp = plan.branches[i]
                off, data = L.split(layout.content(i), bp.branch)
                ins.append(L.join(bp.branch, off, bp.pipeline.apply_values(data) if not bp.lossless else data))
            orig_b = plan.branches[d.name].branch
            o_off, orig = L.split(layout.content(d.name), orig_b)
            try:
                res = ak.Array(compute(d.function, ins))
            except Exception as exc:  # noqa: BLE001 - recorded as the reason it is stored
                failed[d.name] = f"recompute failed: {exc}"
                continue
            r_b = L.describe_layout(d.name, res.layout)
            r_off, r = L.split(res.layout, r_b)
            if (o_off is None) != (r_off is None) or (
                o_off is not None and r_off is not None and not np.array_equal(o_off, r_off)
            ):
                failed[d.name] = "jagged structure differs from the stored branch"
                continue
            r = r.astype(np.float64)
            o = orig.astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                err = np.abs(r - o)
            # the spec's own rule: relative tolerance plus an absolute one for values that are zero up to
            # packing noise; NaN matches NaN
            if not d.matches(o, r):
                abs_tol = getattr(d, "abs_tolerance", 0.0)
                failed[d.name] = (f"recomputed values exceed the tolerance (rel {d.tolerance}"
                                  + (f", abs {abs_tol}" if abs_tol else "") + ")")
                continue
            rel = err[o != 0] / np.abs(o[o != 0])
            worst[d.name] = max(worst[d.name], float(rel.max()) if rel.size else 0.0)
    for d in cands:
        if d.name in failed:
            plan.derived_kept.append({"name": d.name, "reason": failed[d.name]})
            continue
        bp = plan.branches.pop(d.name)
        plan.derived.append({
            "name": d.name,
            "function": d.function,
            "inputs": list(d.inputs),
            "tolerance": float(d.tolerance),
            "worst_rel_error": worst[d.name],
            "branch": bp.branch.to_json(),
        })


# ------------------------------------------------------------------------------------------- decompress
def decompress(
    src: PathLike, dst: PathLike, *, format: str | None = None, force: bool = False,
    tree: str | None = None, progress: bool | None = None,
) -> WriteReport:
    """Rewrite a hepslim container as a plain ROOT or Parquet file (lossless, transparent: the decoded
    values in standard columns, readable without hepslim)."""
    fmt = format
    if fmt is None:
        fmt = select_format(dst, None, "w").format_id
    if fmt not in ("root", "parquet"):
        raise FormatError(f"decompress writes plain ROOT or Parquet, not {fmt!r}")
    return compress(src, dst, spec="lossless", format=fmt, mode="transparent", force=force, tree=tree,
                    progress=progress)


# ---------------------------------------------------------------------------------------------- inspect
def _codec_label(configs: list[dict[str, Any]] | None) -> str:
    if not configs:
        return "-"
    parts = []
    for c in configs:
        params = [f"{v}" for k, v in c.items() if k != "id" and v is not None and k not in ("typesize",)]
        parts.append(f"{c['id']}({','.join(params)})" if params else c["id"])
    return "+".join(parts)


def _collection(name: str) -> str:
    """``Jet`` for ``Jet_pt``, ``nJet`` and ``nJet_pt`` (a counter belongs to what it counts)."""
    if len(name) > 1 and name[0] in "nN" and name[1].isupper():
        name = name[1:]
    return name.split("_", 1)[0]


def inspect(path: PathLike, *, tree: str | None = None, format: str | None = None) -> dict[str, Any]:
    """Per-branch and per-collection bytes, bytes/event, codec and ratio (uncompressed / stored)."""
    adapter = select_format(path, format, "r")
    p = str(path)
    meta = adapter.metadata(p, tree=tree)  # type: ignore[attr-defined]
    sizes = adapter.branch_bytes(p, tree=tree)  # type: ignore[attr-defined]
    n = int(meta["num_entries"]) if meta else adapter.num_entries(p, tree=tree)  # type: ignore[attr-defined]
    names = list(meta["order"]) if meta else list(sizes) or adapter.branch_names(p, tree=tree)  # type: ignore[attr-defined]
    rows = []
    plain_codec = "-"
    if meta is None and hasattr(adapter, "file_codec"):
        plain_codec = adapter.file_codec(p)
    derived = {d["name"] for d in meta.get("derived", [])} if meta else set()
    for name in names:
        rec = (meta or {}).get("branches", {}).get(name, {})
        stored, unc = sizes.get(name, (0, 0))
        raw = int(rec.get("raw_bytes", 0)) or unc
        if name in derived:
            codec = "derived"
        elif meta:
            codec = _codec_label(L.branch_codecs(meta, name))
            if meta.get("mode") == "transparent" and meta.get("container") in ("root", "parquet", "zarr"):
                codec = f"{codec} [transparent]"
        else:
            codec = plain_codec
        rows.append({
            "name": name,
            "collection": _collection(name),
            "bytes": int(stored),
            "bytes_per_event": stored / n if n else 0.0,
            "raw_bytes": int(raw),
            "ratio": raw / stored if stored else None,
            "codec": codec,
            "lossless": rec.get("lossless", True),
            "error_bound": rec.get("error_bound"),
        })
    cols: dict[str, dict[str, Any]] = {}
    for r in rows:
        c = cols.setdefault(r["collection"], {"name": r["collection"], "branches": 0, "bytes": 0, "raw_bytes": 0})
        c["branches"] += 1
        c["bytes"] += r["bytes"]
        c["raw_bytes"] += r["raw_bytes"]
    for c in cols.values():
        c["bytes_per_event"] = c["bytes"] / n if n else 0.0
        c["ratio"] = c["raw_bytes"] / c["bytes"] if c["bytes"] else None
    file_bytes = L.path_size(path)
    raw_total = sum(r["raw_bytes"] for r in rows)
    return {
        "path": p,
        "format": adapter.format_id,
        "mode": meta.get("mode") if meta else "plain",
        "spec": meta.get("spec_name") if meta else None,
        "num_entries": n,
        "file_bytes": file_bytes,
        "bytes_per_event": file_bytes / n if n else None,
        "raw_bytes": raw_total,
        "ratio": raw_total / file_bytes if file_bytes else None,
        "writer_info": meta.get("writer_info") if meta else None,
        "source": meta.get("source") if meta else None,
        "dropped": meta.get("dropped", []) if meta else [],
        "branches": sorted(rows, key=lambda r: -r["bytes"]),
        "collections": sorted(cols.values(), key=lambda c: -c["bytes"]),
    }
