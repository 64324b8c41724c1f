"""What every container shares: the branch model, per-branch pipelines, checksums and hepslim metadata.

A *branch* is one field of the events record with the input's flat name (NanoAOD style): either a scalar
per event (``run``, ``MET_pt``) or one level of variable-length list (``Jet_pt: var * float32``). Following
awkward's buffer model (``ak.to_buffers``; the layout planned for Zarr in awkward#4364), a branch is stored
as the buffers ``{name}-data`` and, when jagged, ``{name}-offsets``; the awkward form of the whole record,
with ``form_key = name``, is kept in the metadata so any reader can rebuild it with ``ak.from_buffers``.

The metadata (a JSON object written into every container hepslim produces) holds the spec, per-branch
codec configs, the form, ``writer_info`` and, in transparent mode, a CRC-32 per branch and chunk of the
stored values; it carries its own CRC so a damaged metadata block is detected too.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hepslim.errors import CorruptDataError, FormatError, OutputExistsError, UnsupportedBranchError

if TYPE_CHECKING:
    import awkward as ak

    from hepslim.pipeline import Pipeline

METADATA_KEY = "hepslim"
FORMAT_VERSION = 1
SUPPORTED_KINDS = "biuf"  # bool, signed, unsigned, float
MODES = ("transparent", "packed")


def _ak() -> Any:
    try:
        import awkward as ak
    except ImportError:  # pragma: no cover - awkward is in every container extra
        from hepslim.errors import MissingDependencyError

        raise MissingDependencyError("awkward", "root", "event arrays") from None
    return ak


# ------------------------------------------------------------------------------------------ branch model
@dataclass(frozen=True)
class Branch:
    """One stored branch: flat name, leaf dtype, and whether it is a variable-length list per event."""

    name: str
    dtype: np.dtype
    jagged: bool

    @property
    def role(self) -> str:
        """What the policy needs to know: ``counter`` (n*), ``index`` (*Idx*) or ``values``."""
        if self.dtype.kind in "iu":
            if not self.jagged and re.match(r"^[nN][A-Za-z0-9]", self.name):
                return "counter"
            if "Idx" in self.name or "idx" in self.name.split("_")[-1]:
                return "index"
        return "values"

    @property
    def collection(self) -> str:
        """``Jet`` for ``Jet_pt`` and ``nJet``; the name itself for a standalone branch."""
        if self.role == "counter" and not self.jagged:
            return self.name[1:]
        return self.name.split("_", 1)[0]

    def form(self) -> dict[str, Any]:
        leaf = {"class": "NumpyArray", "primitive": _primitive(self.dtype), "form_key": self.name}
        if not self.jagged:
            return leaf
        return {"class": "ListOffsetArray", "offsets": "i64", "content": leaf, "form_key": self.name}

    @property
    def keys(self) -> tuple[str, ...]:
        """Buffer names, as ``ak.to_buffers`` would call them with ``form_key = name``."""
        return (f"{self.name}-offsets", f"{self.name}-data") if self.jagged else (f"{self.name}-data",)

    def to_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype.str, "jagged": self.jagged}

    @classmethod
    def from_json(cls, name: str, d: Mapping[str, Any]) -> Branch:
        return cls(name, np.dtype(d["dtype"]).newbyteorder("="), bool(d["jagged"]))


def _primitive(dtype: np.dtype) -> str:
    return "bool" if dtype.kind == "b" else np.dtype(dtype).name


def record_form(branches: Sequence[Branch]) -> dict[str, Any]:
    """The awkward form (JSON) of the events record with these branches."""
    return {
        "class": "RecordArray",
        "fields": [b.name for b in branches],
        "contents": [b.form() for b in branches],
    }


def describe_layout(name: str, layout: Any) -> Branch:
    """The :class:`Branch` for one awkward layout, or :class:`UnsupportedBranchError` naming the type."""
    ak = _ak()
    node = layout = _plain_layout(layout)
    jagged = False
    if isinstance(node, ak.contents.ListOffsetArray | ak.contents.ListArray):
        jagged = True
        node = node.content
    if (
        isinstance(node, ak.contents.NumpyArray)
        and node.data.ndim == 1
        and np.dtype(node.dtype).kind in SUPPORTED_KINDS
        and not node.parameter("__array__")
    ):
        return Branch(name, np.dtype(node.dtype).newbyteorder("="), jagged)
    typestr = str(ak.Array(layout).type.content) if hasattr(ak.Array(layout).type, "content") else "?"
    raise UnsupportedBranchError(
        f"branch {name!r} has type {typestr!r}; hepslim stores numbers and booleans per event or in one "
        "level of variable-length lists (NanoAOD layout). Drop it with the spec's `drop:` or convert it."
    )


def _plain_layout(layout: Any) -> Any:
    """Project lazily indexed layouts (``events[idx]``, ListArray) onto plain NumpyArray/ListOffsetArray."""
    ak = _ak()
    ok = isinstance(layout, ak.contents.NumpyArray) or (
        isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray)
    )
    if ok:
        return layout
    if isinstance(layout, ak.contents.IndexedArray | ak.contents.ListArray | ak.contents.ListOffsetArray):
        return ak.to_packed(ak.Array(layout)).layout
    return layout


def describe(events: Any) -> list[Branch]:
    """The branches of an events record array, in field order."""
    ak = _ak()
    arr = events if isinstance(events, ak.Array) else ak.Array(events)
    layout = arr.layout
    if not isinstance(layout, ak.contents.RecordArray) or layout.is_tuple:
        raise FormatError("events must be a record array whose fields are the branch names")
    return [describe_layout(f, layout.content(f)) for f in layout.fields]


def split(layout: Any, branch: Branch) -> tuple[np.ndarray | None, np.ndarray]:
    """(offsets starting at 0 as int64, or None; contiguous data) of one branch's layout."""
    ak = _ak()
    if isinstance(layout, ak.Array):
        layout = layout.layout
    layout = _plain_layout(layout)
    if branch.jagged:
        if isinstance(layout, ak.contents.ListArray):
            layout = layout.to_ListOffsetArray64(True)
        offsets = np.asarray(layout.offsets, dtype=np.int64)
        data = np.asarray(layout.content.data)[offsets[0] : offsets[-1]]
        offsets = offsets - offsets[0]
        return offsets, np.ascontiguousarray(data)
    return None, np.ascontiguousarray(np.asarray(layout.data))


def join(branch: Branch, offsets: np.ndarray | None, data: np.ndarray) -> ak.Array:
    """The awkward array of one branch from its buffers (offsets may start anywhere)."""
    ak = _ak()
    data = np.asarray(data)
    if data.dtype != branch.dtype:
        data = data.astype(branch.dtype)
    content = ak.contents.NumpyArray(data)
    if not branch.jagged:
        return ak.Array(content)
    assert offsets is not None
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(np.asarray(offsets, np.int64)), content))


def crc(offsets: np.ndarray | None, data: np.ndarray) -> int:
    """CRC-32 of a branch chunk: its list lengths (int64 LE) then its values (LE bytes)."""
    value = 0
    if offsets is not None:
        counts = np.diff(np.asarray(offsets, dtype=np.int64)).astype("<i8", copy=False)
        value = zlib.crc32(np.ascontiguousarray(counts).data, value)
    d = np.ascontiguousarray(data)
    if d.dtype.byteorder == ">":
        d = d.astype(d.dtype.newbyteorder("<"))
    return zlib.crc32(d.reshape(-1).view(np.uint8).data if d.size else b"", value)


def raw_nbytes(offsets: np.ndarray | None, data: np.ndarray) -> int:
    """Uncompressed size as NanoAOD counts it: values plus a 4-byte counter per event when jagged."""
    return int(data.nbytes) + (4 * (len(offsets) - 1) if offsets is not None else 0)


# ------------------------------------------------------------------------------------------------ plan
@dataclass
class BranchPlan:
    """How one branch is written: its pipelines (values, offsets) and the container compression."""

    branch: Branch
    pipeline: Pipeline
    offsets_pipeline: Pipeline | None

    @property
    def lossless(self) -> bool:
        return self.pipeline.lossless

    def compression(self) -> tuple[str, int]:
        """(algorithm, level) of the pipeline's last lossless compressor, e.g. ("zstd", 9)."""
        return compression_of(self.pipeline)

    def to_json(self, pipelines: list[list[dict[str, Any]]]) -> dict[str, Any]:
        """The branch record; codec chains go to the shared ``pipelines`` table (indices ``p``/``po``)."""
        bound = self.pipeline.error_bound()
        out = {
            **self.branch.to_json(),
            "role": self.branch.role,
            "p": _intern(pipelines, self.pipeline.get_config()),
            "lossless": self.pipeline.lossless,
            "error_bound": bound.to_json() if bound is not None else None,
        }
        if self.offsets_pipeline is not None:
            out["po"] = _intern(pipelines, self.offsets_pipeline.get_config())
        return out


def _intern(table: list[list[dict[str, Any]]], configs: list[dict[str, Any]]) -> int:
    for i, t in enumerate(table):
        if t == configs:
            return i
    table.append(configs)
    return len(table) - 1


def branch_codecs(meta: Mapping[str, Any], name: str, *, offsets: bool = False) -> list[dict[str, Any]] | None:
    """The codec configs recorded for a stored branch's values (or offsets)."""
    rec = meta.get("branches", {}).get(name)
    if rec is None:
        return None
    idx = rec.get("po" if offsets else "p")
    return list(meta["pipelines"][idx]) if idx is not None else None


def compression_of(pipeline: Pipeline) -> tuple[str, int]:
    """The container-level (algorithm, level) equivalent of a pipeline's bytes->bytes stages."""
    for codec in reversed(pipeline.bytes_bytes):
        cfg = codec.get_config()
        cid = cfg["id"]
        if cid == "zstd":
            return "zstd", int(cfg.get("level", 3))
        if cid == "lzma":
            return "lzma", int(cfg.get("preset", 9))
        if cid == "zlib":
            return "zlib", int(cfg.get("level", 6))
        if cid == "lz4":
            return "lz4", 4
        if cid == "blosc":
            inner = str(cfg.get("cname", "zstd"))
            level = int(cfg.get("clevel", 5))
            return ("zstd", level) if inner in ("zstd", "blosclz") else ("lz4", 4) if "lz4" in inner else ("zlib", level)
    return "zstd", 5


@dataclass
class WritePlan:
    """Everything the writer decided before the first byte: branches, pipelines, drops, derived."""

    container: str
    mode: str
    spec: Any
    branches: dict[str, BranchPlan]
    order: list[str]  # every branch hepslim.open returns (stored and derived), in input order
    dropped: list[str]
    derived: list[dict[str, Any]] = field(default_factory=list)  # recomputed on read, not stored
    derived_kept: list[dict[str, Any]] = field(default_factory=list)  # stored: outside tolerance
    num_entries_hint: int | None = None  # total events when known (chunk sizing)

    @property
    def stored(self) -> list[Branch]:
        return [p.branch for p in self.branches.values()]


def make_plan(
    branches: Sequence[Branch], spec: Any, container: str, mode: str
) -> WritePlan:
    """Resolve one pipeline per branch buffer from the spec (policy), applying the spec's drops."""
    from hepslim.policy import resolve

    if mode not in MODES:
        raise FormatError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    plans: dict[str, BranchPlan] = {}
    dropped: list[str] = []
    order: list[str] = []
    for b in branches:
        if spec.is_dropped(b.name):
            dropped.append(b.name)
            continue
        order.append(b.name)
        pipe = resolve(spec, b.name, b.dtype, role=b.role, container=container)
        off = (
            resolve(spec, b.name, np.dtype(np.int64), role="offsets", container=container) if b.jagged else None
        )
        plans[b.name] = BranchPlan(b, pipe, off)
    return WritePlan(container, mode, spec, plans, order, dropped)


# ------------------------------------------------------------------------------------------- chunks
@dataclass
class Prepared:
    """One branch of one chunk, ready for a container: local offsets, values as stored, CRC, raw size."""

    offsets: np.ndarray | None
    data: np.ndarray
    crc: int
    raw_nbytes: int


def prepare_chunk(chunk: Any, plan: WritePlan) -> tuple[int, dict[str, Prepared]]:
    """Split a chunk into per-branch buffers; in transparent mode apply the lossy value change here."""
    ak = _ak()
    arr = chunk if isinstance(chunk, ak.Array) else ak.Array(chunk)
    layout = arr.layout
    fields = set(layout.fields)
    out: dict[str, Prepared] = {}
    for name, bp in plan.branches.items():
        if name not in fields:
            raise FormatError(f"branch {name!r} is missing from a later chunk of the input")
        sub = layout.content(name)
        b = describe_layout(name, sub)
        if b.dtype != bp.branch.dtype or b.jagged != bp.branch.jagged:
            raise FormatError(f"branch {name!r} changed type between chunks ({bp.branch} -> {b})")
        offsets, data = split(sub, bp.branch)
        raw = raw_nbytes(offsets, data)
        if plan.mode == "transparent" and not bp.lossless:
            data = np.ascontiguousarray(bp.pipeline.apply_values(data))
        elif plan.mode == "packed" and not bp.lossless:
            bp.pipeline.check_input(data)
        out[name] = Prepared(offsets, data, crc(offsets, data) if plan.mode == "transparent" else 0, raw)
    return len(arr), out


def iter_chunks(events: Any, step: int) -> Iterator[Any]:
    """Chunks of at most ``step`` events from an awkward array, or the items of an iterable of chunks."""
    ak = _ak()
    if isinstance(events, Mapping):
        events = ak.zip(dict(events), depth_limit=1)
    if isinstance(events, ak.Array):
        n = len(events)
        if n == 0:
            yield events
            return
        for start in range(0, n, step):
            yield events[start : start + step]
        return
    yield from events


# --------------------------------------------------------------------------------------------- metadata
def dump_metadata(meta: Mapping[str, Any]) -> str:
    """The metadata as JSON text, wrapped with its own CRC-32."""
    body = json.dumps(meta, sort_keys=True, separators=(",", ":"), default=_json_default)
    return json.dumps({"crc32": zlib.crc32(body.encode()), "metadata": json.loads(body)}, separators=(",", ":"))


def load_metadata(text: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """Parse and verify :func:`dump_metadata` output (or the same object already parsed)."""
    try:
        outer = json.loads(text) if isinstance(text, str | bytes) else dict(text)
        meta = outer["metadata"]
        body = json.dumps(meta, sort_keys=True, separators=(",", ":"))
        ok = zlib.crc32(body.encode()) == int(outer["crc32"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptDataError(f"hepslim metadata is unreadable: {exc}") from None
    if not ok:
        raise CorruptDataError("hepslim metadata checksum mismatch: the file is corrupted")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise FormatError(
            f"written by a newer hepslim (format version {meta['format_version']}); upgrade hepslim"
        )
    return meta


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def writer_info(container_lib: str | None = None) -> dict[str, str]:
    """Versions of hepslim and of the libraries that encoded the data."""
    from importlib.metadata import PackageNotFoundError, version

    from hepslim import __version__

    info = {"hepslim": __version__, "python": sys.version.split()[0]}
    for dist in ("numpy", "numcodecs", "awkward", container_lib):
        if dist:
            try:
                info[dist] = version(dist)
            except PackageNotFoundError:
                pass
    return info


def spec_json(spec: Any) -> dict[str, Any]:
    try:
        return dict(spec.to_dict())
    except Exception:  # noqa: BLE001 - provenance only
        return {"name": getattr(spec, "name", str(spec))}


def build_metadata(
    plan: WritePlan,
    *,
    num_entries: int,
    chunks: list[int],
    crcs: Mapping[str, list[int]],
    raw: Mapping[str, int],
    source: Mapping[str, Any] | None,
    container_lib: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata object every hepslim container stores."""
    order_branches = []
    for name in plan.order:
        if name in plan.branches:
            order_branches.append(plan.branches[name].branch)
        else:
            d = next(d for d in plan.derived if d["name"] == name)
            order_branches.append(Branch.from_json(name, d["branch"]))
    branches = {}
    pipelines: list[list[dict[str, Any]]] = []
    for name, bp in plan.branches.items():
        rec = bp.to_json(pipelines)
        rec["raw_bytes"] = int(raw.get(name, 0))
        if plan.mode == "transparent":
            rec["crc32"] = [int(c) for c in crcs.get(name, [])]
        branches[name] = rec
    meta = {
        "format_version": FORMAT_VERSION,
        "container": plan.container,
        "mode": plan.mode,
        "num_entries": int(num_entries),
        "chunks": [int(c) for c in chunks],
        "order": list(plan.order),
        "branches": branches,
        "pipelines": pipelines,
        "derived": plan.derived,
        "derived_kept": plan.derived_kept,
        "dropped": list(plan.dropped),
        "form": record_form(order_branches),
        "spec": spec_json(plan.spec),
        "spec_name": getattr(plan.spec, "name", None),
        "spec_sha256": getattr(plan.spec, "sha256", None),
        "writer_info": writer_info(container_lib),
        "source": dict(source or {}),
    }
    if extra:
        meta.update(extra)
    return meta


# ------------------------------------------------------------------------------------ read-side helpers
def select_names(available: Sequence[str], branches: Iterable[str] | str | None) -> list[str]:
    """The requested branch names (globs allowed) in file order; unknown exact names are an error."""
    if branches is None:
        return list(available)
    if isinstance(branches, str):
        branches = [branches]
    wanted = list(branches)
    avail = set(available)
    chosen: set[str] = set()
    for w in wanted:
        if any(ch in w for ch in "*?["):
            hits = fnmatch.filter(available, w)
            if not hits:
                raise FormatError(f"no branch matches {w!r}")
            chosen.update(hits)
        elif w in avail:
            chosen.add(w)
        else:
            import difflib

            near = difflib.get_close_matches(w, list(available), n=3)
            hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
            raise FormatError(f"no branch {w!r} in this file{hint}")
    return [a for a in available if a in chosen]


def verify(meta: Mapping[str, Any], name: str, array: Any) -> None:
    """Check a fully read branch against its per-chunk CRCs (transparent mode); raise CorruptDataError."""
    rec = meta["branches"][name]
    crcs = rec.get("crc32")
    if not crcs:
        return
    b = Branch.from_json(name, rec)
    bounds = meta["chunks"]
    if len(array) != meta["num_entries"]:
        raise CorruptDataError(f"branch {name!r}: {len(array)} entries read, {meta['num_entries']} written")
    offsets, data = split(array.layout if hasattr(array, "layout") else array, b)
    for i, expected in enumerate(crcs):
        a, z = bounds[i], bounds[i + 1]
        if b.jagged:
            assert offsets is not None
            got = crc(offsets[a : z + 1], data[offsets[a] : offsets[z]])
        else:
            got = crc(None, data[a:z])
        if got != expected:
            raise CorruptDataError(
                f"branch {name!r}, entries {a}..{z}: checksum mismatch — the file is corrupted"
            )


def assemble(meta: Mapping[str, Any] | None, arrays: Mapping[str, Any], names: Sequence[str]) -> ak.Array:
    """The events record with fields ``names`` (original dtypes restored, derived branches computed)."""
    ak = _ak()
    out: dict[str, Any] = {}
    if meta is not None:
        derived = {d["name"]: d for d in meta.get("derived", [])}
        for name in names:
            if name in derived:
                out[name] = compute_derived(derived[name], arrays)
            else:
                b = Branch.from_json(name, meta["branches"][name])
                arr = arrays[name]
                if _leaf_dtype(arr) != b.dtype:
                    arr = ak.values_astype(arr, b.dtype)
                out[name] = arr
    else:
        out = {n: arrays[n] for n in names}
    if not out:
        n = int(meta["num_entries"]) if meta else 0
        return ak.Array(ak.contents.RecordArray([], [], length=n))
    return ak.zip(out, depth_limit=1)


def _leaf_dtype(arr: Any) -> np.dtype:
    ak = _ak()
    layout = arr.layout if isinstance(arr, ak.Array) else arr
    while not isinstance(layout, ak.contents.NumpyArray):
        layout = layout.content
    return np.dtype(layout.dtype)


def needed_for(meta: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """The stored branches needed to return ``names`` (derived branches pull their inputs)."""
    derived = {d["name"]: d for d in meta.get("derived", [])}
    need: list[str] = []
    for n in names:
        for m in derived[n]["inputs"] if n in derived else [n]:
            if m not in need:
                need.append(m)
    return need


def compute_derived(d: Mapping[str, Any], arrays: Mapping[str, Any]) -> Any:
    """Recompute one derived branch from stored ones, in its recorded dtype."""
    ak = _ak()
    from hepslim.derived import compute

    res = compute(d["function"], [arrays[i] for i in d["inputs"]])
    b = Branch.from_json(d["name"], d["branch"])
    res = ak.values_astype(ak.Array(res), b.dtype)
    return res


# ------------------------------------------------------------------------------------------ atomic files
def tmp_path_for(path: Path) -> Path:
    """A sibling temporary path (same filesystem, so os.replace is atomic)."""
    return path.with_name(f".{path.name}.hepslim-tmp-{os.getpid()}")


def commit(tmp: Path, dst: Path, *, force: bool) -> None:
    """Move a finished temporary file or directory onto ``dst`` atomically."""
    if dst.exists() or dst.is_symlink():
        if not force:
            remove(tmp)
            raise OutputExistsError(f"{dst} exists; use force=True (--force) to replace it")
        if dst.is_dir() and not dst.is_symlink():
            trash = dst.with_name(f".{dst.name}.hepslim-old-{os.getpid()}")
            os.replace(dst, trash)
            os.replace(tmp, dst)
            shutil.rmtree(trash, ignore_errors=True)
            return
    os.replace(tmp, dst)


def remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def path_size(p: str | os.PathLike[str]) -> int:
    """Bytes on disk of a file, or of every file under a directory."""
    p = Path(p)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def read_head(path: str | os.PathLike[str], n: int = 8) -> bytes:
    p = Path(path)
    try:
        if p.is_dir():
            return b"zarr" if (p / "zarr.json").exists() else b""
        with open(p, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""
