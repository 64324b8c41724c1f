"""A validated chain of codec stages: array->array*, exactly one array->bytes, bytes->bytes*.

>>> import numpy as np
>>> from hepslim.pipeline import Pipeline
>>> p = Pipeline.from_configs([{"id": "mantissa", "keepbits": 12}, {"id": "zstd", "level": 3}])
>>> [c["id"] for c in p.get_config()]      # the missing serializer was filled in
['mantissa', 'raw', 'zstd']
>>> x = np.float32([1.0, 3.14159, -2.5e3])
>>> bool(np.allclose(p.decode(p.encode(x)), x, rtol=2.0**-13, atol=0))
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepslim.abc import ArrayArrayCodec, ArrayBytesCodec, BytesBytesCodec, BytesLike, Codec, ErrorBound
from hepslim.errors import CodecInputError, PipelineError

CodecLike = Codec | Mapping[str, Any] | str


@dataclass(frozen=True)
class Pipeline:
    """Codec stages in a checked order; encodes an array to bytes and back."""

    array_array: tuple[ArrayArrayCodec, ...]
    serializer: ArrayBytesCodec
    bytes_bytes: tuple[BytesBytesCodec, ...]

    @classmethod
    def from_configs(
        cls, configs: Iterable[CodecLike], *, serializer: CodecLike | None = None
    ) -> Pipeline:
        """Build from codec configs (or codec objects); ``serializer`` fills a missing array->bytes stage
        (default ``raw``). Raises :class:`PipelineError` if the stages are out of order."""
        from hepslim.registry import get_codec

        codecs = [get_codec(c) for c in configs]
        kinds = [c.kind for c in codecs]
        order = {"array->array": 0, "array->bytes": 1, "bytes->bytes": 2}
        ranks = [order[k] for k in kinds]
        if ranks != sorted(ranks) or kinds.count("array->bytes") > 1:
            chain = " -> ".join(f"{c.codec_id} ({k})" for c, k in zip(codecs, kinds))
            raise PipelineError(
                "codec stages must be ordered array->array*, exactly one array->bytes, bytes->bytes*; "
                f"got {chain}"
            )
        aa = tuple(c for c in codecs if c.kind == "array->array")
        ab = [c for c in codecs if c.kind == "array->bytes"]
        bb = tuple(c for c in codecs if c.kind == "bytes->bytes")
        ser = ab[0] if ab else get_codec(serializer if serializer is not None else "raw")
        if ser.kind != "array->bytes":
            raise PipelineError(f"serializer {ser.codec_id!r} is a {ser.kind} codec, not array->bytes")
        pipe = cls(aa, ser, bb)  # type: ignore[arg-type]
        pipe._check_bounds()
        return pipe

    @property
    def stages(self) -> tuple[Codec, ...]:
        return (*self.array_array, self.serializer, *self.bytes_bytes)

    def get_config(self) -> list[dict[str, Any]]:
        return [c.get_config() for c in self.stages]

    @property
    def lossless(self) -> bool:
        return all(c.lossless for c in self.stages)

    def _lossy_bounds(self) -> list[ErrorBound]:
        out = []
        for c in self.stages:
            if not c.lossless:
                b = c.error_bound()
                if b is None:
                    raise PipelineError(f"lossy codec {c.codec_id!r} declares no error bound")
                out.append(b)
        return out

    def _check_bounds(self) -> None:
        kinds = {b.kind for b in self._lossy_bounds()}
        if len(kinds) > 1:
            raise PipelineError(
                "lossy stages with different kinds of error bound cannot be combined "
                f"({', '.join(sorted(kinds))}); use one lossy codec per branch"
            )

    def error_bound(self) -> ErrorBound | None:
        """The pipeline's guaranteed bound (stages of one kind compose), or ``None`` when bit-exact."""
        bounds = self._lossy_bounds()
        if not bounds:
            return None
        if bounds[0].kind == "rel":
            total = 1.0
            for b in bounds:
                total *= 1.0 + b.value
            return ErrorBound("rel", total - 1.0)
        return ErrorBound(bounds[0].kind, sum(b.value for b in bounds))

    def accepts(self, dtype: np.dtype) -> bool:
        first = self.array_array[0] if self.array_array else self.serializer
        return first.accepts(np.dtype(dtype))

    def check_input(self, x: np.ndarray) -> None:
        for c in (*self.array_array, self.serializer):
            if not c.accepts(x.dtype):
                raise CodecInputError(
                    f"codec {c.codec_id!r} cannot encode dtype {x.dtype}"
                    + (" (lossy codecs take floats only)" if not c.lossless else "")
                )

    def encode(self, x: np.ndarray) -> bytes:
        x = np.asarray(x)
        self.check_input(x)
        for c in self.array_array:
            x = c.encode(x)
        data: bytes = self.serializer.encode(x)
        for b in self.bytes_bytes:
            data = b.encode(data)
        return data

    def decode(self, data: BytesLike) -> np.ndarray:
        for b in reversed(self.bytes_bytes):
            data = b.decode(data)
        x = self.serializer.decode(data)
        for c in reversed(self.array_array):
            x = c.decode(x)
        return x

    def apply_values(self, x: np.ndarray) -> np.ndarray:
        """The values this pipeline would give back, in the input's dtype: for "transparent" storage,
        where only the value change is kept and a standard container stores the result."""
        x = np.asarray(x)
        if self.lossless:
            return x
        self.check_input(x)
        y = x
        for c in self.array_array:
            y = c.encode(y)
        if not self.serializer.lossless:
            fast = getattr(self.serializer, "apply_values", None)
            y = fast(y) if fast is not None else self.serializer.decode(self.serializer.encode(y))
        for c in reversed(self.array_array):
            y = c.decode(y)
        return np.asarray(y).astype(x.dtype.newbyteorder("="), copy=False)

    def __repr__(self) -> str:
        return "Pipeline(" + " -> ".join(repr(c) for c in self.stages) + ")"


def as_pipeline(p: Pipeline | Sequence[CodecLike]) -> Pipeline:
    return p if isinstance(p, Pipeline) else Pipeline.from_configs(p)
