"""ROOT files through uproot: read any TTree or RNTuple; write TTrees (transparent mode only).

Writing uses ``file.mktree`` and NanoAOD-style counters: jagged branches ``Jet_*`` whose lengths equal an
input counter ``nJet`` are written as one record so uproot creates the single counter ``nJet`` and the
branches ``Jet_pt``, ``Jet_eta`` ... exactly as NanoAOD has them (ROOT, uproot and coffea's NanoAODSchema
read the file without hepslim). Each branch gets the ROOT compression of its pipeline's lossless stage.
The hepslim metadata (spec, codec configs, form, writer_info, CRC per branch and chunk) is a TObjString
named ``hepslim`` next to the tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hepslim.abc import FormatAdapter
from hepslim.errors import CorruptDataError, FormatError, HepslimError, MissingDependencyError
from hepslim.formats import _layout as L

DEFAULT_STEP_BYTES = "100 MB"


def _uproot() -> Any:
    try:
        import uproot
    except ImportError:
        raise MissingDependencyError("uproot", "root", "ROOT files") from None
    return uproot


def _compression(algorithm: str, level: int) -> Any:
    uproot = _uproot()
    level = int(level)
    if algorithm == "zstd":
        return uproot.ZSTD(min(max(level, 1), 22))
    if algorithm == "lzma":
        return uproot.LZMA(min(max(level, 1), 9))
    if algorithm == "lz4":
        return uproot.LZ4(min(max(level, 1), 12))
    return uproot.ZLIB(min(max(level, 1), 9))


class RootFormat(FormatAdapter):
    """ROOT TTree / RNTuple (read) and TTree (write) through uproot."""

    format_id: ClassVar[str] = "root"
    extensions: ClassVar[tuple[str, ...]] = (".root",)
    modes: ClassVar[tuple[str, ...]] = ("transparent",)
    default_mode: ClassVar[str] = "transparent"
    library: ClassVar[str] = "uproot"

    @classmethod
    def claims(cls, path: str, head: bytes) -> bool:
        return head[:4] == b"root" or super().claims(path, head)

    def __init__(self) -> None:
        # parsing a 1500-branch TTree header takes ~1 s: keep what this adapter instance already opened
        self._opened: dict[tuple[str, int, int], tuple[Any, dict[str, Any]]] = {}

    # ------------------------------------------------------------------------------------------ reading
    def _file(self, path: str) -> Any:
        st = Path(path).stat()
        key = (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
        hit = self._opened.get(key)
        if hit is None:
            self._opened.clear()
            hit = self._opened[key] = (_uproot().open(path), {})
        return _Cached(*hit)

    @staticmethod
    def _tree_key(f: Any, tree: str | None) -> str:
        classes = {k.split(";")[0]: v for k, v in f.classnames().items()}
        trees = [k for k, v in classes.items() if v in ("TTree", "ROOT::RNTuple", "ROOT::Experimental::RNTuple")]
        if tree is not None:
            if tree not in trees:
                raise FormatError(f"no TTree or RNTuple {tree!r} in {f.file_path}; it has {', '.join(trees) or 'none'}")
            return tree
        if "Events" in trees:
            return "Events"
        if len(trees) == 1:
            return trees[0]
        raise FormatError(
            f"{f.file_path} holds several trees ({', '.join(trees)}); say which with tree= (--tree)"
        )

    def metadata(self, path: str, *, tree: str | None = None) -> dict[str, Any] | None:
        """The hepslim metadata of a file hepslim wrote, or ``None`` for any other ROOT file."""
        try:
            f = self._file(path)
            keys = {k.split(";")[0] for k in f.keys(recursive=False)}
        except Exception as exc:  # noqa: BLE001 - any failure to parse the file header
            raise CorruptDataError(f"{path}: not a readable ROOT file ({type(exc).__name__}: {exc})") from exc
        if L.METADATA_KEY not in keys:
            return None
        try:
            text = str(f[L.METADATA_KEY])
        except Exception as exc:  # noqa: BLE001
            raise CorruptDataError(f"{path}: hepslim metadata unreadable ({exc})") from exc
        return L.load_metadata(text)

    def _names(self, obj: Any) -> list[str]:
        if _is_rntuple(obj):
            return [k for k in obj.keys(recursive=False) if not k.startswith("_collection")]
        return [b.name for b in obj.branches]

    def tree_name(self, path: str, *, tree: str | None = None) -> str:
        """The TTree/RNTuple that ``tree`` (or the default choice) names in this file."""
        meta = self.metadata(path)
        if meta is not None:
            return str(meta.get("tree", "Events"))
        return self._tree_key(self._file(path), tree)

    def branch_names(self, path: str, *, tree: str | None = None) -> list[str]:
        meta = self.metadata(path)
        if meta is not None:
            return list(meta["order"])
        f = self._file(path)
        return self._names(f[self._tree_key(f, tree)])

    def num_entries(self, path: str, *, tree: str | None = None) -> int:
        meta = self.metadata(path)
        if meta is not None:
            return int(meta["num_entries"])
        f = self._file(path)
        return int(f[self._tree_key(f, tree)].num_entries)

    def read(
        self,
        path: str,
        *,
        branches: Iterable[str] | None = None,
        tree: str | None = None,
        verify: bool = True,
        **options: Any,
    ) -> Any:
        """The events as an awkward record array with the original branch names."""
        meta = self.metadata(str(path))
        if meta is None:
            return self._read_plain(str(path), branches, tree)
        names = L.select_names(meta["order"], branches)
        need = L.needed_for(meta, names)
        try:
            f = self._file(str(path))
            obj = f[meta.get("tree", "Events")]
            wanted = set(need)
            arrays = obj.arrays(filter_name=lambda n: n in wanted, library="ak") if need else None
        except HepslimError:
            raise
        except Exception as exc:  # noqa: BLE001 - uproot raises many types on damaged bytes
            raise CorruptDataError(f"{path}: damaged ROOT data ({type(exc).__name__}: {exc})") from exc
        stored = {n: arrays[n] for n in need} if arrays is not None else {}
        return self._finish(meta, stored, names, verify)

    @staticmethod
    def _finish(meta: Mapping[str, Any], stored: dict[str, Any], names: list[str], verify: bool) -> Any:
        ak = L._ak()
        for n in list(stored):
            b = L.Branch.from_json(n, meta["branches"][n])
            if L._leaf_dtype(stored[n]) != b.dtype:
                stored[n] = ak.values_astype(stored[n], b.dtype)
            if verify:
                L.verify(meta, n, stored[n])
        return L.assemble(meta, stored, names)

    def _read_plain(self, path: str, branches: Iterable[str] | None, tree: str | None,
                    entry_start: int | None = None, entry_stop: int | None = None) -> Any:
        f = self._file(path)
        obj = f[self._tree_key(f, tree)]
        names = L.select_names(self._names(obj), branches)
        wanted = set(names)
        arr = obj.arrays(filter_name=lambda n: n in wanted, entry_start=entry_start, entry_stop=entry_stop,
                         library="ak")
        return L.assemble(None, {n: arr[n] for n in names}, names)

    def iterate(
        self,
        path: str,
        *,
        branches: Iterable[str] | None = None,
        step_size: int | None = None,
        tree: str | None = None,
        **options: Any,
    ) -> Iterator[Any]:
        """Chunks of events (``step_size`` events, default about 100 MB), bounded memory."""
        path = str(path)
        meta = self.metadata(path)
        if meta is not None:
            # a hepslim file: read chunk by chunk as written, so each chunk's CRC can be checked
            names = L.select_names(meta["order"], branches)
            need = L.needed_for(meta, names)
            f = self._file(path)
            obj = f[meta.get("tree", "Events")]
            wanted = set(need)
            bounds = meta["chunks"]
            for i in range(len(bounds) - 1):
                sub = dict(meta)
                sub["chunks"] = [0, bounds[i + 1] - bounds[i]]
                sub["num_entries"] = bounds[i + 1] - bounds[i]
                sub["branches"] = {
                    n: {**r, "crc32": r["crc32"][i : i + 1]} if r.get("crc32") else r
                    for n, r in meta["branches"].items()
                }
                try:
                    arr = obj.arrays(filter_name=lambda n: n in wanted, entry_start=bounds[i],
                                     entry_stop=bounds[i + 1], library="ak")
                except Exception as exc:  # noqa: BLE001
                    raise CorruptDataError(f"{path}: damaged ROOT data ({exc})") from exc
                yield self._finish(sub, {n: arr[n] for n in need}, names, True)
            return
        f = self._file(path)
        obj = f[self._tree_key(f, tree)]
        names = L.select_names(self._names(obj), branches)
        n_total = int(obj.num_entries)
        if step_size is None:
            if _is_rntuple(obj):
                size = max(1, Path(path).stat().st_size)
                step_size = max(1000, int(n_total * 20e6 / size))  # ~100 MB uncompressed at ~5x
            else:
                wanted = set(names)
                step_size = max(1, int(obj.num_entries_for(DEFAULT_STEP_BYTES, filter_name=lambda n: n in wanted)))
        if n_total == 0:
            yield self._read_plain(path, names, tree)
            return
        for start in range(0, n_total, int(step_size)):
            yield self._read_plain(path, names, tree, start, min(n_total, start + int(step_size)))

    # ------------------------------------------------------------------------------------------ writing
    def open_writer(self, path: Path, plan: L.WritePlan, *, tree: str = "Events") -> RootWriter:
        if plan.mode != "transparent":
            raise FormatError(
                "ROOT output supports mode='transparent' only (files stay readable by ROOT without hepslim); "
                "use format='parquet' or 'zarr' for packed mode"
            )
        return RootWriter(path, plan, tree)

    def write(self, events: Any, path: str, **options: Any) -> Any:
        from hepslim.io import write

        return write(events, path, format=self.format_id, **options)

    # ------------------------------------------------------------------------------------------ inspect
    def file_codec(self, path: str) -> str:
        """The file's default compression as ROOT records it, e.g. ``ROOT LZMA-9``."""
        code = int(self._file(str(path))._f.file.fCompress)
        algo = {0: "ZLIB", 1: "ZLIB", 2: "LZMA", 4: "LZ4", 5: "ZSTD"}.get(code // 100, "?")
        return f"ROOT {algo}-{code % 100}" if code else "ROOT none"

    def branch_bytes(self, path: str, *, tree: str | None = None) -> dict[str, tuple[int, int]]:
        """Branch -> (bytes on disk, uncompressed bytes), counters folded into their collection's."""
        f = self._file(str(path))
        meta = self.metadata(str(path))
        obj = f[meta.get("tree", "Events") if meta else self._tree_key(f, tree)]
        if _is_rntuple(obj):
            return {}
        out: dict[str, tuple[int, int]] = {}
        for b in obj.branches:
            out[b.name] = (int(b.compressed_bytes), int(b.uncompressed_bytes))
        if meta is not None:
            for extra, owner in meta.get("root_counters", {}).items():
                if extra in out and owner in out:
                    c, u = out.pop(extra)
                    out[owner] = (out[owner][0] + c, out[owner][1] + u)
        return out


def _offsets(p: L.Prepared) -> np.ndarray:
    assert p.offsets is not None
    return p.offsets


class _Cached:
    """An uproot file whose ``f[name]`` objects are remembered."""

    def __init__(self, f: Any, objs: dict[str, Any]) -> None:
        self._f, self._objs = f, objs
        self.file_path = f.file_path

    def __getitem__(self, name: str) -> Any:
        if name not in self._objs:
            self._objs[name] = self._f[name]
        return self._objs[name]

    def keys(self, **kw: Any) -> Any:
        return self._f.keys(**kw)

    def classnames(self, **kw: Any) -> Any:
        return self._f.classnames(**kw)


def _is_rntuple(obj: Any) -> bool:
    return "RNTuple" in type(obj).__name__


class RootWriter:
    """Writes prepared chunks into a TTree with NanoAOD-style counters and per-branch compression."""

    def __init__(self, path: Path, plan: L.WritePlan, tree: str) -> None:
        from hepslim.policy import container_compression

        uproot = _uproot()
        self.plan = plan
        self.tree_name = tree
        cc = container_compression(plan.spec, "root") or {"algorithm": "ZSTD", "level": 5}
        self.file_compression = _compression(str(cc.get("algorithm", "zstd")).lower(), int(cc.get("level", 5)))
        self.file = uproot.recreate(str(path), compression=self.file_compression)
        self.tree: Any = None
        self.groups: dict[str, list[str]] = {}  # record name -> member branches
        self.group_counter: dict[str, str] = {}  # record name -> counter branch name
        self.single_counter: dict[str, str] = {}  # ungrouped jagged branch -> its added counter

    def _decide_groups(self, prepared: Mapping[str, L.Prepared]) -> None:
        plans = self.plan.branches
        names = set(plans)
        by_prefix: dict[str, list[str]] = {}
        for n, bp in plans.items():
            if bp.branch.jagged and "_" in n:
                by_prefix.setdefault(n.split("_", 1)[0], []).append(n)
        for x, members in by_prefix.items():
            counter = next(
                (c for c in (f"n{x}", f"N{x}") if c in plans and plans[c].branch.role == "counter"), None
            )
            if counter is None or x in names:
                continue
            cnt = prepared[counter].data
            ok = [m for m in members if np.array_equal(np.diff(_offsets(prepared[m])), cnt)]
            if ok and len(ok) == len(members):
                self.groups[x] = ok
                self.group_counter[x] = counter
        grouped = {m for ms in self.groups.values() for m in ms}
        used = set(names) | set(self.groups)
        for n, bp in plans.items():
            if bp.branch.jagged and n not in grouped:
                c = f"n{n}"
                while c in used:
                    c += "_"
                used.add(c)
                self.single_counter[n] = c

    def _data(self, prepared: Mapping[str, L.Prepared]) -> dict[str, Any]:
        ak = L._ak()
        grouped_counters = set(self.group_counter.values())
        grouped = {m for ms in self.groups.values() for m in ms}
        out: dict[str, Any] = {}
        for x, members in self.groups.items():
            cnt = prepared[self.group_counter[x]].data
            fields = {}
            for m in members:
                p = prepared[m]
                if not np.array_equal(np.diff(_offsets(p)), cnt):
                    raise FormatError(
                        f"counter {self.group_counter[x]!r} disagrees with the length of {m!r} in a later chunk"
                    )
                fields[m[len(x) + 1 :]] = L.join(self.plan.branches[m].branch, p.offsets, p.data)
            out[x] = ak.zip(fields, depth_limit=2)
        for n, bp in self.plan.branches.items():
            if n in grouped or n in grouped_counters:
                continue
            p = prepared[n]
            out[n] = L.join(bp.branch, p.offsets, p.data) if bp.branch.jagged else p.data
        return out

    def append(self, n: int, prepared: Mapping[str, L.Prepared]) -> None:
        if self.tree is None:
            self._decide_groups(prepared)
            data = self._data(prepared)
            types = {k: (v.type.content if hasattr(v, "layout") else v.dtype) for k, v in data.items()}
            counters = {x: c for x, c in self.group_counter.items()} | self.single_counter
            # uproot stores the TTree header uncompressed with room for this many baskets per branch
            # (20 bytes each); size it to the expected chunk count (it grows by itself if exceeded)
            total = self.plan.num_entries_hint
            expected = -(-total // n) if total and n else 10
            self.tree = self.file.mktree(
                self.tree_name,
                types,
                counter_name=lambda counted: counters.get(counted, "n" + counted),
                field_name=lambda outer, inner: inner if outer == "" else f"{outer}_{inner}",
                initial_basket_capacity=max(2, min(10, expected + 1)),
            )
            from hepslim.policy import container_compression

            for name in self.plan.branches:
                cc = container_compression(self.plan.spec, "root", branch=name)
                comp = _compression(str(cc["algorithm"]).lower(), int(cc["level"]))
                self.tree[name].compression = comp
                if name in self.single_counter:
                    self.tree[self.single_counter[name]].compression = comp
        else:
            data = self._data(prepared)
        if n:
            self.tree.extend(data)

    def close(self, meta: dict[str, Any]) -> None:
        meta["tree"] = self.tree_name
        meta["root_counters"] = {c: n for n, c in self.single_counter.items()}
        if self.tree is None:  # no chunk at all: an empty tree with no branches
            self.file.mktree(self.tree_name, {})
        self.file[L.METADATA_KEY] = L.dump_metadata(meta)
        self.file.close()

    def abort(self) -> None:
        try:
            self.file.close()
        except Exception:  # noqa: BLE001
            pass
