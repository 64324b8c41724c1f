"""Self-describing, checksummed blocks: one array encoded by a pipeline, with everything needed to decode.

Layout (little endian)::

    b"HSLB" | version u8 | 3 reserved bytes | header length u32 | header (UTF-8 JSON) |
    payload length u64 | payload | CRC-32 u32 of everything before it

The header holds the codec configs, the array's dtype and shape, and the writer's version. A block that is
truncated, has a flipped bit, or decodes to another dtype/shape raises :class:`CorruptDataError`: wrong
values are never returned.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from hepslim.abc import BytesLike, as_buffer
from hepslim.errors import CorruptDataError, HepslimError
from hepslim.pipeline import CodecLike, Pipeline

MAGIC = b"HSLB"
VERSION = 1
_PRE = struct.Struct("<4sB3xI")


def encode_block(array: Any, configs: Iterable[CodecLike] | Pipeline) -> bytes:
    """Encode ``array`` with the codec chain ``configs`` into one self-describing, checksummed block.

    >>> import numpy as np
    >>> blk = encode_block(np.arange(10, dtype=np.int32), [{"id": "delta"}, {"id": "bitpack"}])
    >>> decode_block(blk).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    from hepslim import __version__

    x = np.asarray(array)
    pipe = configs if isinstance(configs, Pipeline) else Pipeline.from_configs(configs)
    payload = pipe.encode(x)
    header = json.dumps(
        {
            "codecs": pipe.get_config(),
            "dtype": x.dtype.str,
            "shape": list(x.shape),
            "writer": f"hepslim {__version__}",
        },
        separators=(",", ":"),
    ).encode()
    head = _PRE.pack(MAGIC, VERSION, len(header)) + header + struct.pack("<Q", len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return b"".join((head, payload, struct.pack("<I", crc)))


def _parse(data: BytesLike) -> tuple[dict[str, Any], memoryview]:
    mv = as_buffer(data)
    if len(mv) < _PRE.size + 12:
        raise CorruptDataError(f"block is truncated ({len(mv)} bytes)")
    magic, version, hlen = _PRE.unpack_from(mv, 0)
    if magic != MAGIC:
        raise CorruptDataError(f"not a hepslim block (magic {bytes(magic)!r})")
    if version != VERSION:
        raise CorruptDataError(f"hepslim block format version {version} is not supported (this reads {VERSION})")
    pos = _PRE.size + hlen
    if len(mv) < pos + 12:
        raise CorruptDataError("block is truncated inside its header")
    (plen,) = struct.unpack_from("<Q", mv, pos)
    end = pos + 8 + plen
    if len(mv) != end + 4:
        raise CorruptDataError(f"block is truncated or has trailing bytes ({len(mv)} bytes, expected {end + 4})")
    (crc,) = struct.unpack_from("<I", mv, end)
    if zlib.crc32(mv[:end]) != crc:
        raise CorruptDataError("block checksum mismatch: the data is corrupted")
    try:
        header = json.loads(bytes(mv[_PRE.size : _PRE.size + hlen]))
    except ValueError as exc:
        raise CorruptDataError(f"block header is not valid JSON: {exc}") from None
    return header, mv[pos + 8 : end]


def block_info(data: BytesLike) -> dict[str, Any]:
    """The header of a block (codecs, dtype, shape, writer) after verifying its checksum."""
    header, payload = _parse(data)
    return {**header, "payload_bytes": len(payload)}


def decode_block(data: BytesLike) -> np.ndarray:
    """Decode a block written by :func:`encode_block`; raises :class:`CorruptDataError` on any damage."""
    header, payload = _parse(data)
    try:
        pipe = Pipeline.from_configs(header["codecs"])
        x = pipe.decode(payload)
    except CorruptDataError:
        raise
    except HepslimError:
        raise
    except Exception as exc:  # noqa: BLE001 - a checksum-valid block that fails to decode is still damage
        raise CorruptDataError(f"block failed to decode: {type(exc).__name__}: {exc}") from exc
    dtype, shape = np.dtype(header["dtype"]), tuple(header["shape"])
    if x.shape != shape or x.dtype.newbyteorder("=") != dtype.newbyteorder("="):
        raise CorruptDataError(f"block decoded to {x.dtype}{x.shape}, header says {dtype}{shape}")
    return x.astype(dtype, copy=False)
