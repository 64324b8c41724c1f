"""The few interfaces everything in hepslim is built from.

* Codecs come in three stage kinds, chained by :class:`hepslim.pipeline.Pipeline` in the order
  array->array*, exactly one array->bytes, bytes->bytes*:

  - :class:`ArrayArrayCodec` changes values but keeps an array (e.g. ``mantissa`` rounding, ``delta``);
  - :class:`ArrayBytesCodec` serializes an array into a self-describing byte string (``raw``,
    ``bytestreamsplit``, ``bitpack``, ``quantize``): its output carries dtype and shape, so ``decode`` needs
    nothing but the bytes;
  - :class:`BytesBytesCodec` compresses bytes (``zstd``, ``lz4``, ``blosc`` ...).

  A codec is a small frozen dataclass whose fields are its parameters; ``get_config()`` gives
  ``{"id": codec_id, **params}`` and ``from_config`` rebuilds it, so the stored config is the contract.
* :class:`FormatAdapter` reads and writes one container format (ROOT, Parquet, Zarr, ...).
* :class:`EventTransform` changes a whole sample at the event level (e.g. negative-weight resampling).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from hepslim.errors import CodecInputError, CodecParameterError

StageKind = Literal["array->array", "array->bytes", "bytes->bytes"]
BytesLike = bytes | bytearray | memoryview | np.ndarray


@dataclass(frozen=True)
class ErrorBound:
    """A codec's declared, guaranteed error bound.

    ``kind`` is ``"abs"`` (|x' - x| <= value), ``"rel"`` (|x' - x| <= value * |x|) or ``"angle"``
    (periodic distance on (-pi, pi] <= value).
    """

    kind: Literal["abs", "rel", "angle"]
    value: float

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}


def param(default: Any = dataclasses.MISSING, *, doc: str, allowed: str = "") -> Any:
    """A codec parameter: a dataclass field documented for ``hepslim codecs`` and for error messages."""
    return dataclasses.field(default=default, metadata={"doc": doc, "allowed": allowed})


class Codec(ABC):
    """Common base of the three stage kinds. Subclasses are frozen dataclasses."""

    codec_id: ClassVar[str]
    kind: ClassVar[StageKind]
    #: "lossless" (bit-exact), "lossy" (bounded error) or "learned"
    family: ClassVar[str] = "lossless"

    @property
    def lossless(self) -> bool:
        return self.family == "lossless"

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable config: ``{"id": codec_id, **params}``."""
        cfg: dict[str, Any] = {"id": self.codec_id}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            cfg[f.name] = getattr(self, f.name)
        return cfg

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Codec:
        """Rebuild a codec from :meth:`get_config`'s output."""
        params = dict(config)
        cid = params.pop("id", cls.codec_id)
        if cid != cls.codec_id:
            raise CodecParameterError(f"config id {cid!r} given to codec {cls.codec_id!r}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(params) - names)
        if unknown:
            raise CodecParameterError(
                f"codec {cls.codec_id!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"it takes {', '.join(sorted(names)) or 'no parameters'}"
            )
        return cls(**params)

    @classmethod
    def parameters(cls) -> dict[str, dict[str, Any]]:
        """Parameter name -> {default, doc, allowed}, for ``hepslim codecs`` and documentation."""
        out: dict[str, dict[str, Any]] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            default = None if f.default is dataclasses.MISSING else f.default
            out[f.name] = {
                "default": default,
                "doc": f.metadata.get("doc", ""),
                "allowed": f.metadata.get("allowed", ""),
            }
        return out

    def accepts(self, dtype: np.dtype) -> bool:
        """Whether this codec can encode arrays of ``dtype`` (lossy codecs accept floats only)."""
        return True

    def error_bound(self) -> ErrorBound | None:
        """The guaranteed error bound, or ``None`` when the codec is bit-exact."""
        return None

    def _check_dtype(self, x: np.ndarray) -> None:
        if not self.accepts(x.dtype):
            raise CodecInputError(
                f"codec {self.codec_id!r} cannot encode dtype {x.dtype} "
                f"({'floats only' if self.family != 'lossless' else 'unsupported dtype'})"
            )


class ArrayArrayCodec(Codec):
    """array -> array stage. ``decode(encode(x))`` returns ``x`` within :meth:`error_bound`."""

    kind: ClassVar[StageKind] = "array->array"

    @abstractmethod
    def encode(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def decode(self, y: np.ndarray) -> np.ndarray: ...


class ArrayBytesCodec(Codec):
    """array -> bytes stage (the serializer). Its bytes carry dtype and shape."""

    kind: ClassVar[StageKind] = "array->bytes"

    @abstractmethod
    def encode(self, x: np.ndarray) -> bytes: ...

    @abstractmethod
    def decode(self, y: BytesLike) -> np.ndarray: ...


class BytesBytesCodec(Codec):
    """bytes -> bytes stage (a compressor). Accepts any bytes-like object."""

    kind: ClassVar[StageKind] = "bytes->bytes"

    @abstractmethod
    def encode(self, x: BytesLike) -> bytes: ...

    @abstractmethod
    def decode(self, y: BytesLike) -> bytes: ...


class FormatAdapter(ABC):
    """Reads and writes one container format.

    Adapters are chosen by the ``hepslim_select_format`` hook (first non-``None`` answer wins) from the
    requested format name, the path's extension and its first bytes.
    """

    format_id: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def claims(cls, path: str, head: bytes) -> bool:
        """Whether this adapter recognises ``path`` (by extension or magic bytes ``head``)."""
        return any(str(path).lower().endswith(ext) for ext in cls.extensions)

    @abstractmethod
    def read(self, path: str, *, branches: Iterable[str] | None = None, **options: Any) -> Any:
        """Return the events as an awkward array with the original branch names."""

    @abstractmethod
    def write(self, events: Any, path: str, **options: Any) -> Any:
        """Write events (an awkward array or an iterable of chunks) atomically to ``path``."""


class EventTransform(ABC):
    """A sample-level transform applied to whole events before writing (not invertible in general).

    Transforms are registered through the ``hepslim_register_transforms`` hook and recorded in provenance.
    """

    transform_id: ClassVar[str]
    invertible: ClassVar[bool] = False

    @abstractmethod
    def apply(self, events: Any) -> Any:
        """Return the transformed events (same layout as the input unless documented otherwise)."""

    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"id": self.transform_id}
        if dataclasses.is_dataclass(self):
            for f in dataclasses.fields(self):
                cfg[f.name] = getattr(self, f.name)
        return cfg


def as_ndarray(x: Any) -> np.ndarray:
    """View any array-like as an ndarray without copying when possible."""
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(x)


def as_buffer(x: BytesLike) -> memoryview:
    """A flat byte view of any bytes-like object (C-contiguous arrays are not copied)."""
    if isinstance(x, np.ndarray):
        x = np.ascontiguousarray(x)
        return memoryview(x.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    mv = memoryview(x)
    if not mv.c_contiguous:
        raise CodecInputError("bytes-like input must be contiguous")
    return mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv
