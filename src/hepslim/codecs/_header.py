"""The small binary header that makes a serializer's bytes self-describing (dtype and shape).

Layout: ``b"HA"``, version (u8), dtype-string length (u8), ndim (u8), the dtype string (ASCII, with byte
order, e.g. ``<f4``), the shape (u64 each), zero padding to a multiple of 8 bytes so that what follows stays
aligned for element-wise shuffling (blosc, byte-stream-split) downstream.
"""

from __future__ import annotations

import struct

import numpy as np

from hepslim.errors import CorruptDataError

_MAGIC = b"HA"
_VERSION = 1


def pack_header(dtype: np.dtype, shape: tuple[int, ...], extra: bytes = b"") -> bytes:
    """Header for an array of ``dtype``/``shape``; ``extra`` is codec-specific and padded along with it."""
    ds = np.dtype(dtype).str.encode("ascii")
    head = _MAGIC + struct.pack("<BBBH", _VERSION, len(ds), len(shape), len(extra)) + ds
    head += struct.pack(f"<{len(shape)}Q", *shape) + extra
    return head + b"\0" * (-len(head) % 8)


def unpack_header(buf: memoryview | bytes) -> tuple[np.dtype, tuple[int, ...], bytes, int]:
    """Inverse of :func:`pack_header`: (dtype, shape, extra, offset of the payload)."""
    mv = memoryview(buf)
    if len(mv) < 7 or bytes(mv[:2]) != _MAGIC:
        raise CorruptDataError("serialized array has no valid header (wrong magic or truncated)")
    version, nds, ndim, nextra = struct.unpack_from("<BBBH", mv, 2)
    if version != _VERSION:
        raise CorruptDataError(f"serialized array header version {version} is not supported")
    pos = 7
    end = pos + nds + 8 * ndim + nextra
    if len(mv) < end:
        raise CorruptDataError("serialized array header is truncated")
    try:
        dtype = np.dtype(bytes(mv[pos : pos + nds]).decode("ascii"))
    except (TypeError, UnicodeDecodeError) as exc:
        raise CorruptDataError(f"serialized array header has an invalid dtype: {exc}") from None
    pos += nds
    shape = struct.unpack_from(f"<{ndim}Q", mv, pos)
    pos += 8 * ndim
    extra = bytes(mv[pos : pos + nextra])
    pos += nextra
    pos += -pos % 8
    return dtype, tuple(int(s) for s in shape), extra, pos


def check_codec_header(codec: str, magic: bytes, expected_magic: bytes, version: int, expected_version: int,
                       dts: bytes) -> np.dtype:
    """Shared checks of a codec's own fixed header (quantize, autoencoder): magic, format version and a
    float dtype string (NUL-padded ASCII). Returns the dtype; any mismatch is a :class:`CorruptDataError`
    naming the codec."""
    if magic != expected_magic:
        raise CorruptDataError(f"{codec}: bad magic {magic!r} (not a {codec} block)")
    if version != expected_version:
        raise CorruptDataError(f"{codec}: format version {version} is not supported (this is {expected_version})")
    try:
        dtype = np.dtype(dts.rstrip(b"\0").decode("ascii"))
    except (TypeError, UnicodeDecodeError) as exc:
        raise CorruptDataError(f"{codec}: bad dtype {dts!r} in header") from exc
    if dtype.kind != "f" or dtype.itemsize not in (2, 4, 8):
        raise CorruptDataError(f"{codec}: header dtype {dtype} is not a float")
    return dtype
