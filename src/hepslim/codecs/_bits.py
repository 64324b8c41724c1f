"""Vectorised fixed-width bit packing of unsigned integers (shared by ``bitpack`` and ``quantize``).

Layout: value ``k`` occupies bits ``[k*width, (k+1)*width)`` of the little-endian bit stream, i.e. bit
``b`` of the stream is bit ``b % 8`` of byte ``b // 8``. The payload is ``ceil(count*width/8)`` bytes.

Why groups of 64: 64 values of ``width`` bits fill exactly ``width`` 64-bit words, so the position of every
value inside its group is the same for all groups. We loop over the 64 positions (a fixed, small loop)
and do each step as one numpy operation over all groups; no per-element Python work.

>>> import numpy as np
>>> buf = pack_bits(np.array([1, 2, 3, 4, 5]), 3)
>>> len(buf), unpack_bits(buf, 3, 5).tolist()
(2, [1, 2, 3, 4, 5])
"""

from __future__ import annotations

import numpy as np

from hepslim.errors import CodecInputError, CorruptDataError

_CHUNK = 1024  # groups of 64 values per block (512 KiB of uint64: fits in L2)
_ALIGNED: dict[int, np.dtype] = {w: np.dtype(f"<u{w // 8}") for w in (8, 16, 32, 64)}


def bit_width(max_value: int) -> int:
    """Number of bits needed to store every integer in ``[0, max_value]`` (0 for ``max_value == 0``)."""
    max_value = int(max_value)
    if max_value < 0:
        raise CodecInputError(f"bit_width needs a non-negative max_value, got {max_value}")
    return max_value.bit_length()


def packed_nbytes(count: int, width: int) -> int:
    """Size in bytes of ``count`` values packed at ``width`` bits."""
    return (int(count) * int(width) + 7) // 8


def _check_width(width: int) -> int:
    if not isinstance(width, (int, np.integer)) or isinstance(width, bool) or not 0 <= width <= 64:
        raise CodecInputError(f"bit width must be an integer in 0..64, got {width!r}")
    return int(width)


def pack_bits(values: np.ndarray, width: int) -> bytes:
    """Pack unsigned integers (any integer dtype, values ``< 2**width``) into a little-endian bit stream.

    Raises :class:`CodecInputError` if a value is negative or does not fit in ``width`` bits (silently
    dropping high bits would corrupt neighbours). ``width == 0`` gives an empty payload (all values 0).
    """
    width = _check_width(width)
    v = np.asarray(values).reshape(-1)
    if v.dtype.kind == "b":
        v = v.view(np.uint8)
    if v.dtype.kind not in "ui":
        raise CodecInputError(f"pack_bits needs integers, got dtype {v.dtype}")
    n = v.size
    if n == 0:
        return b""
    if v.dtype.kind == "i":
        if int(v.min()) < 0:
            raise CodecInputError("pack_bits needs non-negative integers")
        v = v.astype(np.uint64, copy=False) if v.dtype.itemsize == 8 else v
    if width < 64 and v.dtype.itemsize * 8 > width:
        vmax = int(v.max())
        if vmax >> width:
            raise CodecInputError(f"value {vmax} does not fit in {width} bits")
    if width == 0:
        return b""
    aligned = _ALIGNED.get(width)
    if aligned is not None:
        return v.astype(aligned, copy=False).tobytes()

    groups = -(-n // 64)
    if n == groups * 64:
        src = v.reshape(groups, 64)
    else:
        src = np.zeros((groups, 64), dtype=v.dtype)
        src.reshape(-1)[:n] = v
    out = np.empty((groups, width), dtype="<u8")
    # Blocks of _CHUNK groups keep the strided column accesses inside the CPU cache (a full transpose
    # of a large array is ~10x slower than the packing itself).
    for g0 in range(0, groups, _CHUNK):
        blk = src[g0 : g0 + _CHUNK].astype(np.uint64)
        words = np.zeros((width, blk.shape[0]), dtype=np.uint64)  # words[w] = word w of each group
        tmp = np.empty(blk.shape[0], dtype=np.uint64)
        for i in range(64):
            word, shift = divmod(i * width, 64)
            col = blk[:, i]
            if shift == 0:
                words[word] |= col
            else:
                np.left_shift(col, np.uint64(shift), out=tmp)
                words[word] |= tmp
            if shift + width > 64:
                np.right_shift(col, np.uint64(64 - shift), out=tmp)
                words[word + 1] |= tmp
        out[g0 : g0 + _CHUNK] = words.T
    return out.tobytes()[: packed_nbytes(n, width)]


def unpack_bits(buf: bytes | bytearray | memoryview | np.ndarray, width: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``count`` values of ``width`` bits -> ``uint64`` array.

    Raises :class:`CorruptDataError` if ``buf`` is shorter than ``ceil(count*width/8)`` bytes.
    """
    width = _check_width(width)
    count = int(count)
    if count < 0:
        raise CodecInputError(f"count must be >= 0, got {count}")
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.uint64)
    if isinstance(buf, np.ndarray):
        raw = np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
    else:
        raw = np.frombuffer(buf, dtype=np.uint8)
    need = packed_nbytes(count, width)
    if raw.size < need:
        raise CorruptDataError(f"bit-packed payload truncated: {raw.size} bytes, need {need}")
    aligned = _ALIGNED.get(width)
    if aligned is not None:
        return np.ascontiguousarray(raw[:need]).view(aligned).astype(np.uint64)

    groups = -(-count // 64)
    if raw.size >= groups * width * 8:
        words_all = np.ascontiguousarray(raw[: groups * width * 8]).view("<u8")
    else:
        padded = np.zeros(groups * width * 8, dtype=np.uint8)
        padded[:need] = raw[:need]
        words_all = padded.view("<u8")
    words_all = words_all.reshape(groups, width)
    out = np.empty((groups, 64), dtype=np.uint64)
    mask = np.uint64((1 << width) - 1)
    for g0 in range(0, groups, _CHUNK):
        words = np.ascontiguousarray(words_all[g0 : g0 + _CHUNK].T).astype(np.uint64, copy=False)
        blk = np.empty((64, words.shape[1]), dtype=np.uint64)
        tmp = np.empty(words.shape[1], dtype=np.uint64)
        for i in range(64):
            word, shift = divmod(i * width, 64)
            dst = blk[i]
            np.right_shift(words[word], np.uint64(shift), out=dst)
            if shift + width > 64:
                np.left_shift(words[word + 1], np.uint64(64 - shift), out=tmp)
                dst |= tmp
        blk &= mask
        out[g0 : g0 + _CHUNK] = blk.T
    return out.reshape(-1)[:count]
