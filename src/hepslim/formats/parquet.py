"""Parquet through pyarrow, in both modes.

* ``transparent``: ordinary columns with the input's flat names (``Jet_pt: list<float>``), one row group per
  chunk, per-column compression from the branch's pipeline, BYTE_STREAM_SPLIT for floats, dictionary/RLE
  for integers and booleans, page checksums on. Readable by ``ak.from_parquet``, pandas, coffea ... without
  hepslim; lossy codecs only changed the values.
* ``packed``: one row per chunk, one ``binary`` column per awkward buffer (``Jet_pt-offsets``,
  ``Jet_pt-data``) holding a self-describing, CRC-checked hepslim block; reading a branch reads only its
  columns.

The hepslim metadata is the Parquet key-value metadata entry ``hepslim.json.zlib`` (zlib-compressed JSON).
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hepslim.abc import FormatAdapter
from hepslim.errors import CorruptDataError, FormatError, HepslimError, MissingDependencyError
from hepslim.formats import _layout as L

#: key-value metadata entry: base64 of the zlib-compressed metadata JSON (1500 branches of codec configs
#: would otherwise add ~100 kB of footer to every file)
_KV_KEY = b"hepslim.json.zlib"
_PARQUET_CODEC = {"zstd": "zstd", "lzma": "zstd", "zlib": "gzip", "lz4": "lz4"}


def _pq() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "parquet", "Parquet files") from None
    return pa, pq


def _arrow_type(pa: Any, b: L.Branch) -> Any:
    leaf = pa.from_numpy_dtype(b.dtype)
    return pa.list_(pa.field("element", leaf, nullable=False)) if b.jagged else leaf


def _damaged(path: str, exc: Exception) -> CorruptDataError:
    return CorruptDataError(f"{path}: damaged Parquet data ({type(exc).__name__}: {exc})")


class ParquetFormat(FormatAdapter):
    """Apache Parquet (pyarrow): transparent columns or packed hepslim blocks."""

    format_id: ClassVar[str] = "parquet"
    extensions: ClassVar[tuple[str, ...]] = (".parquet", ".pq")
    modes: ClassVar[tuple[str, ...]] = ("transparent", "packed")
    default_mode: ClassVar[str] = "packed"
    library: ClassVar[str] = "pyarrow"

    @classmethod
    def claims(cls, path: str, head: bytes) -> bool:
        return head[:4] == b"PAR1" or super().claims(path, head)

    # ------------------------------------------------------------------------------------------ reading
    def _file(self, path: str) -> Any:
        _, pq = _pq()
        try:
            return pq.ParquetFile(path, page_checksum_verification=True)
        except Exception as exc:  # noqa: BLE001
            raise _damaged(path, exc) from exc

    def metadata(self, path: str, *, tree: str | None = None) -> dict[str, Any] | None:
        kv = self._file(str(path)).metadata.metadata or {}
        blob = kv.get(_KV_KEY)
        if blob is None:
            return None
        try:
            text = zlib.decompress(base64.b64decode(blob, validate=True))
        except (ValueError, zlib.error) as exc:
            raise CorruptDataError(f"{path}: hepslim metadata unreadable ({exc})") from None
        return L.load_metadata(text)

    def num_entries(self, path: str, *, tree: str | None = None) -> int:
        meta = self.metadata(path)
        return int(meta["num_entries"]) if meta else int(self._file(str(path)).metadata.num_rows)

    def branch_names(self, path: str, *, tree: str | None = None) -> list[str]:
        meta = self.metadata(path)
        return list(meta["order"]) if meta else list(self._file(str(path)).schema_arrow.names)

    def read(self, path: str, *, branches: Iterable[str] | None = None, tree: str | None = None,
             verify: bool = True, **options: Any) -> Any:
        path = str(path)
        pf = self._file(path)
        meta = self.metadata(path)
        if meta is None:
            names = L.select_names(pf.schema_arrow.names, branches)
            return _plain(pf.read(columns=names), names)
        names = L.select_names(meta["order"], branches)
        need = L.needed_for(meta, names)
        stored = self._load(pf, path, meta, need, range(pf.num_row_groups))
        for n in need:
            if verify:
                L.verify(meta, n, stored[n])
        return L.assemble(meta, stored, names)

    def _load(self, pf: Any, path: str, meta: Mapping[str, Any], need: list[str], groups: Iterable[int]) -> dict[str, Any]:
        ak = L._ak()
        groups = list(groups)
        try:
            if meta["mode"] == "transparent":
                table = pf.read_row_groups(groups, columns=need) if need else None
                arr = ak.from_arrow(table) if table is not None else None
                out = {n: _strip(arr[n]) for n in need}  # type: ignore[index]
            else:
                cols = [k for n in need for k in L.Branch.from_json(n, meta["branches"][n]).keys]
                table = pf.read_row_groups(groups, columns=cols) if cols else None
                out = {}
                for n in need:
                    b = L.Branch.from_json(n, meta["branches"][n])
                    out[n] = _decode_packed(b, table)
        except HepslimError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyarrow raises OSError/ArrowException on damage
            raise _damaged(path, exc) from exc
        return out

    def iterate(self, path: str, *, branches: Iterable[str] | None = None, step_size: int | None = None,
                tree: str | None = None, **options: Any) -> Iterator[Any]:
        ak = L._ak()
        path = str(path)
        pf = self._file(path)
        meta = self.metadata(path)
        if meta is None:
            names = L.select_names(pf.schema_arrow.names, branches)
            for batch in pf.iter_batches(batch_size=step_size or 100_000, columns=names):
                yield _plain(batch, names)
            return
        names = L.select_names(meta["order"], branches)
        need = L.needed_for(meta, names)
        bounds = meta["chunks"]
        for i in range(pf.num_row_groups):
            stored = self._load(pf, path, meta, need, [i])
            sub = _sub_meta(meta, i)
            for n in need:
                L.verify(sub, n, stored[n])
            yield L.assemble(sub, stored, names)
        if pf.num_row_groups == 0 and bounds[-1] == 0:
            yield ak.Array(ak.contents.RecordArray([], [], length=0))

    # ------------------------------------------------------------------------------------------ writing
    def open_writer(self, path: Path, plan: L.WritePlan, *, tree: str = "Events") -> ParquetWriter:
        return ParquetWriter(path, plan)

    def write(self, events: Any, path: str, **options: Any) -> Any:
        from hepslim.io import write

        return write(events, path, format=self.format_id, **options)

    def branch_bytes(self, path: str, *, tree: str | None = None) -> dict[str, tuple[int, int]]:
        md = self._file(str(path)).metadata
        out: dict[str, list[int]] = {}
        for i in range(md.num_row_groups):
            rg = md.row_group(i)
            for j in range(rg.num_columns):
                c = rg.column(j)
                top = c.path_in_schema.split(".")[0]
                if top in ("entry_start", "entry_stop"):
                    continue
                name = top.rsplit("-", 1)[0] if top.endswith(("-data", "-offsets")) else top
                acc = out.setdefault(name, [0, 0])
                acc[0] += int(c.total_compressed_size)
                acc[1] += int(c.total_uncompressed_size)
        return {k: (v[0], v[1]) for k, v in out.items()}


def _sub_meta(meta: Mapping[str, Any], i: int) -> dict[str, Any]:
    bounds = meta["chunks"]
    sub = dict(meta)
    sub["chunks"] = [0, bounds[i + 1] - bounds[i]]
    sub["num_entries"] = bounds[i + 1] - bounds[i]
    sub["branches"] = {
        n: {**r, "crc32": r["crc32"][i : i + 1]} if r.get("crc32") else r for n, r in meta["branches"].items()
    }
    return sub


def _strip(arr: Any) -> Any:
    """Drop option types that carry no missing value (Parquet columns are often declared nullable)."""
    ak = L._ak()
    t = str(arr.type.content)
    if "?" not in t:
        return arr
    if ak.any(ak.is_none(arr, axis=-1 if arr.ndim > 1 else 0)) or (arr.ndim > 1 and ak.any(ak.is_none(arr))):
        raise FormatError(f"a column has missing values ({t}); hepslim stores complete numeric branches only")
    return ak.enforce_type(arr, t.replace("?", ""))


def _plain(table: Any, names: list[str]) -> Any:
    ak = L._ak()
    arr = ak.from_arrow(table)
    return L.assemble(None, {n: _strip(arr[n]) for n in names}, names)


def _decode_packed(b: L.Branch, table: Any) -> Any:
    from hepslim.block import decode_block

    datas = [decode_block(v.as_py()) for v in table.column(f"{b.name}-data")]
    data = np.concatenate(datas) if datas else np.zeros(0, b.dtype)
    if not b.jagged:
        return L.join(b, None, data)
    parts = [decode_block(v.as_py()) for v in table.column(f"{b.name}-offsets")]
    offsets = _concat_offsets(parts)
    if offsets[-1] != len(data):
        raise CorruptDataError(f"branch {b.name!r}: offsets end at {offsets[-1]} but there are {len(data)} values")
    return L.join(b, offsets, data)


def _concat_offsets(parts: list[np.ndarray]) -> np.ndarray:
    """Chunk-local offsets (each starting at 0) -> one global offsets array."""
    if not parts:
        return np.zeros(1, np.int64)
    out = [np.asarray(parts[0], np.int64)]
    base = int(out[0][-1])
    for p in parts[1:]:
        p = np.asarray(p, np.int64)
        out.append(p[1:] + base)
        base += int(p[-1])
    return np.concatenate(out)


class ParquetWriter:
    """One row group per chunk; transparent columns or packed hepslim blocks."""

    def __init__(self, path: Path, plan: L.WritePlan) -> None:
        self.pa, self.pq = _pq()
        self.path, self.plan = path, plan
        pa = self.pa
        self.entry = 0
        if plan.mode == "transparent":
            fields = [pa.field(b.name, _arrow_type(pa, b), nullable=False) for b in plan.stored]
            compression: dict[str, str] = {}
            level: dict[str, int] = {}
            bss: list[str] = []
            dictionary: list[str] = []
            for name, bp in plan.branches.items():
                col = f"{name}.list.element" if bp.branch.jagged else name
                algo, lvl = bp.compression()
                compression[col] = _PARQUET_CODEC.get(algo, "zstd")
                level[col] = min(lvl, 22) if algo != "lzma" else 19
                if compression[col] == "lz4":
                    level.pop(col)
                (bss if bp.branch.dtype.kind == "f" else dictionary).append(col)
            self.schema = pa.schema(fields)
            self.writer = self.pq.ParquetWriter(
                str(path), self.schema, compression=compression or "zstd", compression_level=level or None,
                use_byte_stream_split=bss or False, use_dictionary=dictionary or False,
                write_page_checksum=True, write_statistics=False,
            )
        else:
            fields = [pa.field("entry_start", pa.int64(), nullable=False),
                      pa.field("entry_stop", pa.int64(), nullable=False)]
            fields += [pa.field(k, pa.large_binary(), nullable=False) for b in plan.stored for k in b.keys]
            self.schema = pa.schema(fields)
            self.writer = self.pq.ParquetWriter(
                str(path), self.schema, compression="none", use_dictionary=False,
                write_page_checksum=True, write_statistics=False,
            )

    def append(self, n: int, prepared: Mapping[str, L.Prepared]) -> None:
        pa = self.pa
        cols = []
        if self.plan.mode == "transparent":
            for name, bp in self.plan.branches.items():
                p = prepared[name]
                values = pa.array(p.data)
                if bp.branch.jagged:
                    assert p.offsets is not None
                    if p.offsets[-1] >= 2**31:
                        raise FormatError(f"chunk too large for branch {name!r}; use a smaller step_size")
                    cols.append(pa.ListArray.from_arrays(pa.array(p.offsets.astype(np.int32)), values,
                                                         type=self.schema.field(name).type))
                else:
                    cols.append(values)
        else:
            from hepslim.block import encode_block

            cols += [pa.array([self.entry], pa.int64()), pa.array([self.entry + n], pa.int64())]
            for name, bp in self.plan.branches.items():
                p = prepared[name]
                if bp.branch.jagged:
                    assert bp.offsets_pipeline is not None and p.offsets is not None
                    cols.append(pa.array([encode_block(p.offsets, bp.offsets_pipeline)], pa.large_binary()))
                cols.append(pa.array([encode_block(p.data, bp.pipeline)], pa.large_binary()))
        self.writer.write_table(pa.Table.from_arrays(cols, schema=self.schema), row_group_size=max(n, 1))
        self.entry += n

    def close(self, meta: dict[str, Any]) -> None:
        blob = base64.b64encode(zlib.compress(L.dump_metadata(meta).encode(), 9))
        self.writer.add_key_value_metadata({_KV_KEY.decode(): blob.decode()})
        self.writer.close()

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001
            pass
