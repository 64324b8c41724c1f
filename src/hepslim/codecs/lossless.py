"""Lossless codecs: bit-exact for every dtype they accept.

bytes->bytes compressors (``zstd``, ``lz4``, ``zlib``, ``lzma``, ``blosc``), serializers (``raw``,
``bytestreamsplit``, ``bitpack``) and the integer transform ``delta`` (+ zigzag).
"""

from __future__ import annotations

import functools
import lzma as _lzma
import struct
import zlib as _zlib
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from hepslim.abc import (
    ArrayArrayCodec,
    ArrayBytesCodec,
    BytesBytesCodec,
    BytesLike,
    as_buffer,
    param,
)
from hepslim.codecs._header import pack_header, unpack_header
from hepslim.errors import CodecInputError, CodecParameterError, CorruptDataError


def _check_int(name: str, value: object, lo: int, hi: int, codec: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise CodecParameterError(f"{codec}: parameter {name}={value!r} must be an integer in {lo}..{hi}")


def _check_choice(name: str, value: object, choices: tuple[str, ...], codec: str) -> None:
    if value not in choices:
        raise CodecParameterError(f"{codec}: parameter {name}={value!r} must be one of {', '.join(map(str, choices))}")


# ------------------------------------------------------------------------------------ bytes -> bytes
@functools.cache
def _empty_frame(codec: BytesBytesCodec) -> bytes:
    return codec.encode(b"")


def _is_empty_frame(codec: BytesBytesCodec, buf: memoryview) -> bool:
    """numcodecs refuses to decode the (valid) frame it writes for an empty input."""
    return len(buf) < 64 and bytes(buf) == _empty_frame(codec)


@dataclass(frozen=True)
class Zstd(BytesBytesCodec):
    """Zstandard: the best speed/ratio balance; level 3 is fast, 19+ approaches LZMA."""

    codec_id: ClassVar[str] = "zstd"
    level: int = param(3, doc="compression level", allowed="-7..22")

    def __post_init__(self) -> None:
        _check_int("level", self.level, -7, 22, self.codec_id)

    def encode(self, x: BytesLike) -> bytes:
        from numcodecs import Zstd as _Z

        return bytes(_Z(level=int(self.level)).encode(as_buffer(x)))

    def decode(self, y: BytesLike) -> bytes:
        from numcodecs import Zstd as _Z

        buf = as_buffer(y)
        if _is_empty_frame(self, buf):
            return b""
        try:
            return bytes(_Z().decode(buf))
        except RuntimeError as exc:
            raise CorruptDataError(f"zstd: corrupt or truncated stream ({exc})") from None


@dataclass(frozen=True)
class LZ4(BytesBytesCodec):
    """LZ4: very fast, modest ratio."""

    codec_id: ClassVar[str] = "lz4"
    acceleration: int = param(1, doc="higher is faster and compresses less", allowed="1..65537")

    def __post_init__(self) -> None:
        _check_int("acceleration", self.acceleration, 1, 65537, self.codec_id)

    def encode(self, x: BytesLike) -> bytes:
        from numcodecs import LZ4 as _L

        return bytes(_L(acceleration=int(self.acceleration)).encode(as_buffer(x)))

    def decode(self, y: BytesLike) -> bytes:
        from numcodecs import LZ4 as _L

        buf = as_buffer(y)
        if _is_empty_frame(self, buf):
            return b""
        try:
            return bytes(_L().decode(buf))
        except (RuntimeError, ValueError) as exc:
            raise CorruptDataError(f"lz4: corrupt or truncated stream ({exc})") from None


@dataclass(frozen=True)
class Zlib(BytesBytesCodec):
    """zlib/DEFLATE: what ROOT files have used for decades."""

    codec_id: ClassVar[str] = "zlib"
    level: int = param(6, doc="compression level", allowed="0..9")

    def __post_init__(self) -> None:
        _check_int("level", self.level, 0, 9, self.codec_id)

    def encode(self, x: BytesLike) -> bytes:
        return _zlib.compress(as_buffer(x), int(self.level))

    def decode(self, y: BytesLike) -> bytes:
        try:
            return _zlib.decompress(as_buffer(y))
        except _zlib.error as exc:
            raise CorruptDataError(f"zlib: corrupt or truncated stream ({exc})") from None


@dataclass(frozen=True)
class LZMA(BytesBytesCodec):
    """LZMA (xz): NanoAOD's production setting is preset 9; slow but strong."""

    codec_id: ClassVar[str] = "lzma"
    preset: int = param(6, doc="compression preset", allowed="0..9")

    def __post_init__(self) -> None:
        _check_int("preset", self.preset, 0, 9, self.codec_id)

    def encode(self, x: BytesLike) -> bytes:
        return _lzma.compress(as_buffer(x), format=_lzma.FORMAT_XZ, preset=int(self.preset))

    def decode(self, y: BytesLike) -> bytes:
        try:
            return _lzma.decompress(as_buffer(y), format=_lzma.FORMAT_XZ)
        except _lzma.LZMAError as exc:
            raise CorruptDataError(f"lzma: corrupt or truncated stream ({exc})") from None


_SHUFFLES = ("none", "byte", "bit")
_CNAMES = ("lz4", "lz4hc", "zstd", "zlib", "blosclz")


@dataclass(frozen=True)
class Blosc(BytesBytesCodec):
    """Blosc: blocked, multithreaded compressor with byte/bit shuffle of ``typesize``-byte elements."""

    codec_id: ClassVar[str] = "blosc"
    cname: str = param("lz4", doc="inner compressor", allowed=", ".join(_CNAMES))
    clevel: int = param(5, doc="compression level", allowed="0..9")
    shuffle: Literal["none", "byte", "bit"] = param("byte", doc="shuffle filter", allowed="none, byte, bit")
    typesize: int = param(4, doc="element size the shuffle works on", allowed="1, 2, 4, 8")
    blocksize: int = param(0, doc="block size in bytes (0: automatic)", allowed=">= 0")

    def __post_init__(self) -> None:
        _check_choice("cname", self.cname, _CNAMES, self.codec_id)
        _check_int("clevel", self.clevel, 0, 9, self.codec_id)
        _check_choice("shuffle", self.shuffle, _SHUFFLES, self.codec_id)
        _check_choice("typesize", self.typesize, (1, 2, 4, 8), self.codec_id)  # type: ignore[arg-type]
        _check_int("blocksize", self.blocksize, 0, 2**31 - 1, self.codec_id)

    def _impl(self) -> object:
        from numcodecs import Blosc as _B

        shuf = {"none": _B.NOSHUFFLE, "byte": _B.SHUFFLE, "bit": _B.BITSHUFFLE}[self.shuffle]
        return _B(cname=self.cname, clevel=int(self.clevel), shuffle=shuf, blocksize=int(self.blocksize))

    def encode(self, x: BytesLike) -> bytes:
        buf = np.frombuffer(as_buffer(x), dtype=np.uint8)
        ts = self.typesize if len(buf) % self.typesize == 0 else 1
        return bytes(self._impl().encode(buf.view(f"u{ts}")))  # type: ignore[attr-defined]

    def decode(self, y: BytesLike) -> bytes:
        buf = as_buffer(y)
        if _is_empty_frame(self, buf):
            return b""
        try:
            return bytes(self._impl().decode(buf))  # type: ignore[attr-defined]
        except (RuntimeError, ValueError) as exc:
            raise CorruptDataError(f"blosc: corrupt or truncated stream ({exc})") from None


# ------------------------------------------------------------------------------------ serializers
def _fixed_width(x: np.ndarray, codec: str) -> None:
    if x.dtype.hasobject or x.dtype.kind not in "biufcmMV" or x.dtype.fields is not None:
        raise CodecInputError(f"{codec}: dtype {x.dtype} is not a fixed-width numeric dtype")


def _payload(y: BytesLike, codec: str) -> tuple[np.dtype, tuple[int, ...], bytes, memoryview]:
    mv = as_buffer(y)
    dtype, shape, extra, pos = unpack_header(mv)
    return dtype, shape, extra, mv[pos:]


def _expect(mv: memoryview, nbytes: int, codec: str) -> None:
    if len(mv) != nbytes:
        raise CorruptDataError(f"{codec}: payload has {len(mv)} bytes, header says {nbytes}")


@dataclass(frozen=True)
class Raw(ArrayBytesCodec):
    """The array's bytes as they are (C order) behind a dtype/shape header: the default serializer."""

    codec_id: ClassVar[str] = "raw"

    def encode(self, x: np.ndarray) -> bytes:
        x = np.asarray(x)
        _fixed_width(x, self.codec_id)
        return pack_header(x.dtype, x.shape) + np.ascontiguousarray(x).tobytes()

    def decode(self, y: BytesLike) -> np.ndarray:
        dtype, shape, _, mv = _payload(y, self.codec_id)
        _expect(mv, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, self.codec_id)
        return np.frombuffer(mv, dtype=dtype).reshape(shape)


@dataclass(frozen=True)
class ByteStreamSplit(ArrayBytesCodec):
    """Byte-stream split (Parquet's BYTE_STREAM_SPLIT): byte k of every element stored together.

    Floats' sign/exponent bytes become long runs a following compressor squeezes well, especially after
    mantissa rounding zeroed the low bytes.
    """

    codec_id: ClassVar[str] = "bytestreamsplit"

    def accepts(self, dtype: np.dtype) -> bool:
        return np.dtype(dtype).kind in "iuf" and np.dtype(dtype).itemsize > 1

    def encode(self, x: np.ndarray) -> bytes:
        x = np.asarray(x)
        self._check_dtype(x)
        k = x.dtype.itemsize
        streams = np.ascontiguousarray(x).reshape(-1).view(np.uint8).reshape(-1, k).T
        return pack_header(x.dtype, x.shape) + streams.tobytes()

    def decode(self, y: BytesLike) -> np.ndarray:
        dtype, shape, _, mv = _payload(y, self.codec_id)
        n = int(np.prod(shape, dtype=np.int64))
        k = dtype.itemsize
        _expect(mv, n * k, self.codec_id)
        planes = np.frombuffer(mv, dtype=np.uint8).reshape(k, n)
        return np.ascontiguousarray(planes.T).view(dtype).reshape(shape)


def _unsigned(dtype: np.dtype) -> np.dtype:
    return np.dtype(f"{dtype.byteorder if dtype.byteorder in '<>' else '='}u{dtype.itemsize}")


@dataclass(frozen=True)
class Delta(ArrayArrayCodec):
    """Delta coding of integers (first value against 0) with optional zigzag, same dtype out.

    Differences are taken modulo 2^bits, so any integer array round-trips bit-exactly. Made for sorted,
    index and counter arrays (awkward offsets): small non-negative steps become small codes that
    ``bitpack`` or a compressor then stores in a few bits.
    """

    codec_id: ClassVar[str] = "delta"
    zigzag: bool = param(True, doc="map signed differences to unsigned codes (0,-1,1,-2 -> 0,1,2,3)")

    def __post_init__(self) -> None:
        if not isinstance(self.zigzag, bool):
            raise CodecParameterError(f"delta: parameter zigzag={self.zigzag!r} must be true or false")

    def accepts(self, dtype: np.dtype) -> bool:
        return np.dtype(dtype).kind in "iu"

    def encode(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self._check_dtype(x)
        native = x.dtype.newbyteorder("=")
        u = np.ascontiguousarray(x, dtype=native).reshape(-1).view(_unsigned(native))
        d = np.empty_like(u)
        if u.size:
            d[0] = u[0]
            np.subtract(u[1:], u[:-1], out=d[1:])
        if self.zigzag:
            s = d.view(native.str.replace("u", "i"))
            bits = 8 * native.itemsize - 1
            d = ((s << 1) ^ (s >> bits)).view(d.dtype)
        return d.view(native).reshape(x.shape)

    def decode(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        native = y.dtype.newbyteorder("=")
        udt = _unsigned(native)
        d = np.ascontiguousarray(y, dtype=native).reshape(-1).view(udt)
        if self.zigzag:
            d = (d >> udt.type(1)) ^ (np.zeros(1, udt) - (d & udt.type(1)))
        return np.cumsum(d, dtype=udt).view(native).reshape(y.shape)


@dataclass(frozen=True)
class BitPack(ArrayBytesCodec):
    """Integers and booleans stored as (value - min) in the fewest bits that hold the range.

    Flags take 1 bit, counters a few; a constant array takes no payload at all.
    """

    codec_id: ClassVar[str] = "bitpack"

    def accepts(self, dtype: np.dtype) -> bool:
        return np.dtype(dtype).kind in "biu"

    def encode(self, x: np.ndarray) -> bytes:
        from hepslim.codecs._bits import bit_width, pack_bits

        x = np.asarray(x)
        self._check_dtype(x)
        flat = np.ascontiguousarray(x).reshape(-1)
        if flat.dtype.kind == "b":
            flat = flat.view(np.uint8)
        flat = flat.astype(flat.dtype.newbyteorder("="), copy=False)
        if flat.size:
            lo = flat.min()
            # modular difference in 64 bits: exact for any integer range
            v = flat.astype(np.int64 if flat.dtype.kind == "i" else np.uint64).view(np.uint64)
            base = np.array(lo, dtype=v.dtype if flat.dtype.kind == "u" else np.int64).view(np.uint64)
            v = v - base
            width = bit_width(int(v.max()))
        else:
            v, base, width = flat.astype(np.uint64), np.zeros((), np.uint64), 0
        extra = struct.pack("<QB", int(base), width)
        return pack_header(x.dtype, x.shape, extra) + pack_bits(v, width)

    def decode(self, y: BytesLike) -> np.ndarray:
        from hepslim.codecs._bits import unpack_bits

        dtype, shape, extra, mv = _payload(y, self.codec_id)
        if len(extra) != 9:
            raise CorruptDataError("bitpack: malformed header")
        base, width = struct.unpack("<QB", extra)
        n = int(np.prod(shape, dtype=np.int64))
        need = (n * width + 7) // 8
        if len(mv) < need:
            raise CorruptDataError(f"bitpack: payload has {len(mv)} bytes, needs {need}")
        v = unpack_bits(mv, width, n) + np.uint64(base)
        native = dtype.newbyteorder("=")
        if native.kind == "b":
            out = v.astype(np.uint8).view(np.bool_)
        elif native.kind == "i":
            out = v.view(np.int64).astype(native)
        else:
            out = v.astype(native)
        return out.astype(dtype, copy=False).reshape(shape)
