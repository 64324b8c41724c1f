"""Zarr v3 (zarr-python 3) in both modes, following awkward's buffer layout (awkward#4364).

A store is a group whose arrays are the awkward buffers of each branch (``Jet_pt-offsets`` with global
int64 offsets, ``Jet_pt-data``), with ``awkward: {form, length}`` and the hepslim metadata as group
attributes, and consolidated metadata so opening a 1500-branch store reads one JSON document. Arrays are
sharded (many chunks per file), so thousands of branches give a few thousand files, not millions.

* ``transparent``: standard Zarr codecs only (``bytes`` + ``blosc``/zstd with byte shuffle + ``crc32c``):
  any Zarr v3 reader opens it without hepslim.
* ``packed``: each chunk is encoded by the Zarr v3 codec ``hepslim.pipeline`` (registered through the
  ``zarr.codecs`` entry point), whose configuration is the branch's codec chain; chunks are hepslim
  blocks with a CRC-32.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hepslim.abc import FormatAdapter
from hepslim.errors import CorruptDataError, FormatError, HepslimError, MissingDependencyError
from hepslim.formats import _layout as L

if TYPE_CHECKING:
    pass

CODEC_NAME = "hepslim.pipeline"
CHUNK_BYTES = 1 << 20  # target bytes per (inner) chunk
CHUNKS_PER_SHARD = 64


def _zarr() -> Any:
    try:
        import zarr
    except ImportError:
        raise MissingDependencyError("zarr", "zarr", "Zarr stores") from None
    _register_codec()
    return zarr


def _codec_base() -> Any:
    try:
        from zarr.abc.codec import ArrayBytesCodec
    except ImportError:  # pragma: no cover - zarr is optional
        return object
    return ArrayBytesCodec


@dataclass(frozen=True)
class HepslimPipelineCodec(_codec_base()):  # type: ignore[misc]
    """Zarr v3 array->bytes codec running a hepslim pipeline; each chunk becomes a checksummed block.

    Configuration: ``{"codecs": [<hepslim codec configs>]}``; decoding needs only that and hepslim.
    """

    codecs_json: str
    is_fixed_size = False

    def __init__(self, *, codecs: Iterable[Mapping[str, Any]]) -> None:
        object.__setattr__(self, "codecs_json", json.dumps([dict(c) for c in codecs], sort_keys=True))

    @property
    def codecs(self) -> list[dict[str, Any]]:
        return list(json.loads(self.codecs_json))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HepslimPipelineCodec:
        from zarr.core.common import parse_named_configuration

        _, cfg = parse_named_configuration(data, CODEC_NAME)
        return cls(codecs=cfg["codecs"])  # type: ignore[arg-type, index]

    def to_dict(self) -> dict[str, Any]:
        return {"name": CODEC_NAME, "configuration": {"codecs": self.codecs}}

    def _pipeline(self) -> Any:
        from hepslim.pipeline import Pipeline

        return Pipeline.from_configs(self.codecs)

    def _encode_sync(self, chunk_array: Any, chunk_spec: Any) -> Any:
        from hepslim.block import encode_block

        x = np.ascontiguousarray(chunk_array.as_numpy_array()).reshape(-1)
        return chunk_spec.prototype.buffer.from_bytes(encode_block(x, self._pipeline()))

    def _decode_sync(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        from hepslim.block import decode_block

        x = decode_block(chunk_bytes.as_numpy_array())
        want = int(np.prod(chunk_spec.shape))
        if x.size != want:
            raise CorruptDataError(f"hepslim zarr chunk holds {x.size} values, expected {want}")
        return chunk_spec.prototype.nd_buffer.from_numpy_array(x.reshape(chunk_spec.shape))

    async def _encode_single(self, chunk_array: Any, chunk_spec: Any) -> Any:
        return self._encode_sync(chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        return self._decode_sync(chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: Any) -> int:
        raise NotImplementedError


def _register_codec() -> None:
    """Make ``hepslim.pipeline`` known to zarr even when entry points are stale (source checkouts)."""
    from zarr.registry import get_codec_class, register_codec

    try:
        get_codec_class(CODEC_NAME)
    except KeyError:
        register_codec(CODEC_NAME, HepslimPipelineCodec)


def _damaged(path: str, exc: BaseException) -> CorruptDataError:
    return CorruptDataError(f"{path}: damaged Zarr data ({type(exc).__name__}: {exc})")


class ZarrFormat(FormatAdapter):
    """Zarr v3 directory store (awkward buffer layout), transparent or packed."""

    format_id: ClassVar[str] = "zarr"
    extensions: ClassVar[tuple[str, ...]] = (".zarr",)
    modes: ClassVar[tuple[str, ...]] = ("transparent", "packed")
    default_mode: ClassVar[str] = "packed"
    library: ClassVar[str] = "zarr"

    @classmethod
    def claims(cls, path: str, head: bytes) -> bool:
        return head == b"zarr" or super().claims(str(path).rstrip("/"), head)

    def _group(self, path: str) -> Any:
        zarr = _zarr()
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return zarr.open_group(str(path), mode="r", zarr_format=3)
        except Exception as exc:  # noqa: BLE001
            raise _damaged(str(path), exc) from exc

    def metadata(self, path: str, *, tree: str | None = None) -> dict[str, Any] | None:
        attrs = dict(self._group(path).attrs)
        if L.METADATA_KEY not in attrs:
            return None
        return L.load_metadata(attrs[L.METADATA_KEY])

    def _plain_form(self, g: Any) -> tuple[Any, int]:
        aw = dict(g.attrs).get("awkward")
        if not aw or "form" not in aw:
            raise FormatError("this Zarr store has no awkward form/length attributes; it is not an event store")
        return aw["form"], int(aw["length"])

    def num_entries(self, path: str, *, tree: str | None = None) -> int:
        meta = self.metadata(path)
        return int(meta["num_entries"]) if meta else self._plain_form(self._group(path))[1]

    def branch_names(self, path: str, *, tree: str | None = None) -> list[str]:
        meta = self.metadata(path)
        return list(meta["order"]) if meta else list(self._plain_form(self._group(path))[0]["fields"])

    def _load(self, path: str, g: Any, meta: Mapping[str, Any], need: list[str],
              start: int = 0, stop: int | None = None) -> dict[str, Any]:
        """Read the buffers of ``need`` for entries [start, stop), all arrays concurrently."""
        import asyncio

        from zarr.api import asynchronous as za
        from zarr.core.sync import sync

        branches = {n: L.Branch.from_json(n, meta["branches"][n]) for n in need}

        async def one(n: str) -> tuple[str, Any]:
            b = branches[n]
            data_arr = await za.open_array(store=g.store, path=f"{n}-data", zarr_format=3)
            if b.jagged:
                off_arr = await za.open_array(store=g.store, path=f"{n}-offsets", zarr_format=3)
                off = np.asarray(await off_arr.getitem(slice(start, stop + 1 if stop is not None else None)),
                                 np.int64)
                if len(off) == 0:
                    raise CorruptDataError(f"branch {n!r}: empty offsets")
                lo, hi = int(off[0]), int(off[-1])
                data = np.asarray(await data_arr.getitem(slice(lo, hi))) if hi > lo else np.zeros(0, b.dtype)
                if len(data) != hi - lo:
                    raise CorruptDataError(f"branch {n!r}: offsets point past the stored values")
                return n, L.join(b, off - lo, data)
            return n, L.join(b, None, np.asarray(await data_arr.getitem(slice(start, stop))))

        async def run() -> list[tuple[str, Any]]:
            return list(await asyncio.gather(*(one(n) for n in need)))

        try:
            return dict(sync(run()))
        except HepslimError:
            raise
        except Exception as exc:  # noqa: BLE001 - zarr raises ValueError etc. on failed checksums
            raise _damaged(path, exc) from exc

    def read(self, path: str, *, branches: Iterable[str] | None = None, tree: str | None = None,
             verify: bool = True, **options: Any) -> Any:
        ak = L._ak()
        path = str(path)
        g = self._group(path)
        meta = self.metadata(path)
        if meta is None:
            form, length = self._plain_form(g)
            names = L.select_names(form["fields"], branches)
            sub = ak.forms.from_dict(form).select_columns(names)
            keys = _buffer_keys(sub)
            arr = ak.from_buffers(sub, length, {k: g[k][:] for k in keys})
            return L.assemble(None, {n: arr[n] for n in names}, names)
        names = L.select_names(meta["order"], branches)
        need = L.needed_for(meta, names)
        stored = self._load(path, g, meta, need)
        if verify:
            for n in need:
                L.verify(meta, n, stored[n])
        return L.assemble(meta, stored, names)

    def iterate(self, path: str, *, branches: Iterable[str] | None = None, step_size: int | None = None,
                tree: str | None = None, **options: Any) -> Iterator[Any]:
        path = str(path)
        meta = self.metadata(path)
        if meta is None:
            yield self.read(path, branches=branches)
            return
        g = self._group(path)
        names = L.select_names(meta["order"], branches)
        need = L.needed_for(meta, names)
        bounds = meta["chunks"]
        for i in range(len(bounds) - 1):
            stored = self._load(path, g, meta, need, bounds[i], bounds[i + 1])
            sub = dict(meta)
            sub["chunks"] = [0, bounds[i + 1] - bounds[i]]
            sub["num_entries"] = bounds[i + 1] - bounds[i]
            sub["branches"] = {n: {**r, "crc32": r["crc32"][i : i + 1]} if r.get("crc32") else r
                               for n, r in meta["branches"].items()}
            for n in need:
                L.verify(sub, n, stored[n])
            yield L.assemble(sub, stored, names)

    def open_writer(self, path: Path, plan: L.WritePlan, *, tree: str = "Events") -> ZarrWriter:
        return ZarrWriter(path, plan)

    def write(self, events: Any, path: str, **options: Any) -> Any:
        from hepslim.io import write

        return write(events, path, format=self.format_id, **options)

    def branch_bytes(self, path: str, *, tree: str | None = None) -> dict[str, tuple[int, int]]:
        root = Path(path)
        out: dict[str, tuple[int, int]] = {}
        meta = self.metadata(str(path))
        for d in root.iterdir():
            if not d.is_dir():
                continue
            name = d.name.rsplit("-", 1)[0]
            size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            raw = int(meta["branches"].get(name, {}).get("raw_bytes", 0)) if meta else 0
            prev = out.get(name, (0, raw))
            out[name] = (prev[0] + size, prev[1])
        return out


def _buffer_keys(form: Any) -> list[str]:
    keys: list[str] = []

    def walk(f: Any) -> None:
        cls = type(f).__name__
        if cls == "RecordForm":
            for c in f.contents:
                walk(c)
        elif cls in ("ListOffsetForm",):
            keys.append(f"{f.form_key}-offsets")
            walk(f.content)
        elif cls == "NumpyForm":
            keys.append(f"{f.form_key}-data")
        else:
            raise FormatError(f"unsupported awkward node {cls} in a plain Zarr store")

    walk(form)
    return keys


class _ArrayWriter:
    """Appends to one 1-D Zarr array, writing only whole chunks until the end (bounded memory).

    The array is created on its first flush with the right shape; flushes of all arrays run
    concurrently on zarr's event loop (thousands of small arrays would otherwise take seconds each)."""

    def __init__(self, store: Any, key: str, dtype: np.dtype, chunk: int, shard: int | None,
                 fill: Any, codecs: dict[str, Any]) -> None:
        self.store, self.key, self.dtype = store, key, dtype
        self.chunk, self.shard, self.fill, self.codecs = chunk, shard, fill, codecs
        self.arr: Any = None
        self.pending: list[np.ndarray] = []
        self.npending = 0
        self.written = 0

    def add(self, x: np.ndarray) -> None:
        if len(x):
            self.pending.append(x)
            self.npending += len(x)

    def due(self, final: bool) -> bool:
        return (final and (self.npending > 0 or self.arr is None)) or self.npending >= self.chunk

    async def flush(self, *, final: bool) -> None:
        from zarr.api import asynchronous as za

        data = (np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]) if self.pending \
            else np.zeros(0, self.dtype)
        # whole inner chunks only (a partial shard is completed by later flushes): memory per array stays
        # below one chunk plus one input step
        k = len(data) if final else (len(data) // self.chunk) * self.chunk
        if self.arr is None:
            self.arr = await za.create_array(
                self.store, name=self.key, shape=(self.written + k,), dtype=self.dtype, chunks=(self.chunk,),
                shards=(self.shard,) if self.shard else None, fill_value=self.fill,
                config={"write_empty_chunks": True},  # keep NaN payloads bit-exact: store every chunk
                **self.codecs,
            )
        elif k:
            await self.arr.resize((self.written + k,))
        if k:
            await self.arr.setitem(slice(self.written, self.written + k), data[:k])
        self.written += k
        rest = data[k:]
        self.pending = [rest] if len(rest) else []
        self.npending = len(rest)


class ZarrWriter:
    """Writes prepared chunks into a Zarr v3 group, one (sharded when large) array per awkward buffer."""

    def __init__(self, path: Path, plan: L.WritePlan) -> None:
        zarr = _zarr()
        self.zarr, self.path, self.plan = zarr, path, plan
        self.group = zarr.open_group(str(path), mode="w", zarr_format=3)
        self.arrays: dict[str, _ArrayWriter] = {}
        self.offset_base: dict[str, int] = {}
        self.n = 0

    def _codecs(self, pipeline: Any, dtype: np.dtype, compression: tuple[str, int]) -> dict[str, Any]:
        from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec

        if self.plan.mode == "packed":
            return {"serializer": HepslimPipelineCodec(codecs=pipeline.get_config()), "compressors": None,
                    "filters": None}
        algo, level = compression
        cname = {"zstd": "zstd", "lzma": "zstd", "zlib": "zlib", "lz4": "lz4"}.get(algo, "zstd")
        clevel = max(1, min(9, level))
        shuffle = "shuffle" if dtype.itemsize > 1 else "bitshuffle"
        return {
            "serializer": BytesCodec(),
            "compressors": [BloscCodec(cname=cname, clevel=clevel, shuffle=shuffle,  # type: ignore[arg-type]
                                       typesize=dtype.itemsize),
                            Crc32cCodec()],
            "filters": None,
        }

    def _array(self, key: str, dtype: np.dtype, pipeline: Any, compression: tuple[str, int],
               first: np.ndarray, first_events: int) -> _ArrayWriter:
        w = self.arrays.get(key)
        if w is None:
            chunk = max(1, CHUNK_BYTES // dtype.itemsize)
            total = self.plan.num_entries_hint
            est = int(len(first) / first_events * total * 1.05) + 1 if total and first_events else None
            if est is not None:
                chunk = min(chunk, max(est, 1024))
            # shard only arrays that will span several chunks: a lone chunk needs no shard index
            shard = chunk * CHUNKS_PER_SHARD if est is None or est > chunk else None
            # edge chunks are padded with the fill value: use a real value so range-limited lossy codecs
            # (quantize with a declared range) never see an out-of-range pad
            fill = first[0] if len(first) else np.zeros((), dtype)[()]
            w = self.arrays[key] = _ArrayWriter(self.group.store, key, dtype, chunk, shard, fill,
                                                self._codecs(pipeline, dtype, compression))
        return w

    def _flush(self, final: bool) -> None:
        import asyncio

        from zarr.core.sync import sync

        due = [w for w in self.arrays.values() if w.due(final)]
        if due:
            async def run() -> None:
                await asyncio.gather(*(w.flush(final=final) for w in due))

            sync(run())

    def append(self, n: int, prepared: Mapping[str, L.Prepared]) -> None:
        for name, bp in self.plan.branches.items():
            p = prepared[name]
            comp = bp.compression()
            if bp.branch.jagged:
                assert p.offsets is not None and bp.offsets_pipeline is not None
                w = self._array(f"{name}-offsets", np.dtype(np.int64), bp.offsets_pipeline, comp, p.offsets, n)
                base = self.offset_base.get(name)
                if base is None:
                    w.add(p.offsets)
                    base = 0
                else:
                    w.add(p.offsets[1:] + base)
                self.offset_base[name] = base + int(p.offsets[-1])
            w = self._array(f"{name}-data", bp.branch.dtype, bp.pipeline, comp, p.data, n)
            w.add(p.data)
        self.n += n
        self._flush(final=False)

    def close(self, meta: dict[str, Any]) -> None:
        self._flush(final=True)
        self.group.attrs.update({
            "awkward": {"form": L.record_form(self.plan.stored), "length": int(meta["num_entries"])},
            L.METADATA_KEY: json.loads(L.dump_metadata(meta)),
        })
        # no consolidated metadata: it would repeat every array's zarr.json in the root one, and reading
        # only the requested branches opens only their arrays anyway

    def abort(self) -> None:
        pass
