"""``mantissa``: keep only the top ``keepbits`` bits of each float's mantissa (an array->array stage).

The zeroed low bits cost nothing after a byte/bit shuffle and a lossless compressor, which is where the
size gain comes from; the values stay ordinary floats, so decoding is the identity.

Guarantees (``k = keepbits``), checked by the tests:

* ``rounding="nearest"`` (default): round half to even on the kept bits, so ``|x' - x| <= 2**-(k+1) |x|``
  and the rounding is unbiased (NanoAOD's C++ rounds half up, which biases ties upwards).
* ``rounding="truncate"``: drop the bits (towards zero), ``|x' - x| < 2**-k |x|``.
* NaN (with its payload), +-inf and +-0 are unchanged.
* ``keep_repeated=n`` (n >= 2): every value occurring at least ``n`` times in the array is left exact
  (discrete values such as particle masses set by the species: rounding would move each point as a
  whole, which a two-sample test sees even far below resolution). Still one array in, one out.
* Subnormals are passed through unchanged: they carry fewer than 24 (53) significant bits, so rounding
  the same low bits would break the *relative* bound (a subnormal can lose all its significant bits);
  they are rare in physics data, so passing them through costs nothing measurable.
* A finite value never becomes inf. Rounding up the largest finite values (top ``k`` mantissa bits all
  ones at the largest exponent, dropped part >= half) would carry into the inf exponent; those are
  rounded *down* to ``L = 2**E (2 - 2**-k)``, the largest ``k``-bit float. The bound still holds: with
  ``x = 2**E (2 - 2**-k + d)``, ``2**-(k+1) <= d < 2**-k``, the error is ``2**E d`` and
  ``d / (2 - 2**-k + d) < 2**-k / 2 = 2**-(k+1)`` because the ratio grows with ``d``.

>>> import numpy as np
>>> Mantissa(keepbits=3).encode(np.array([1.0, 1.0625, 1.2, -0.0], np.float32)).tolist()
[1.0, 1.0, 1.25, -0.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hepslim.abc import ArrayArrayCodec, ErrorBound, as_ndarray, param
from hepslim.errors import CodecInputError, CodecParameterError

#: float dtype itemsize -> (unsigned view dtype, mantissa bits)
_LAYOUT: dict[int, tuple[type[np.unsignedinteger], int]] = {
    2: (np.uint16, 10),
    4: (np.uint32, 23),
    8: (np.uint64, 52),
}
_BLOCK = 1 << 16  # elements per block: the ~10 passes per block stay in the L2 cache
_ROUNDINGS = ("nearest", "truncate")


def _native(x: np.ndarray) -> np.ndarray:
    """``x`` in native byte order (uproot hands out big-endian '>f4')."""
    if not x.dtype.isnative:
        return x.astype(x.dtype.newbyteorder("="))
    return x


@dataclass(frozen=True)
class Mantissa(ArrayArrayCodec):
    """Round floats to ``keepbits`` mantissa bits (nearest-even or truncate); decode is the identity."""

    codec_id: ClassVar[str] = "mantissa"
    family: ClassVar[str] = "lossy"

    keepbits: int = param(
        doc="mantissa bits kept; error <= 2**-(keepbits+1)|x| (nearest)",
        allowed="1..10 float16, 1..23 float32, 1..52 float64",
    )
    rounding: str = param("nearest", doc="nearest: round half to even (unbiased); truncate: towards 0",
                          allowed="nearest | truncate")
    keep_repeated: int = param(
        0, doc="values occurring at least this many times in one array are stored exact (point masses, PDG "
        "masses, sentinels); 0: off", allowed="0 or >= 2",
    )

    def __post_init__(self) -> None:
        k = self.keepbits
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 52:
            raise CodecParameterError(
                f"mantissa: keepbits must be an integer in 1..52 (float32: 1..23, float64: 1..52), got {k!r}"
            )
        object.__setattr__(self, "keepbits", int(k))
        r = self.keep_repeated
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0 or r == 1:
            raise CodecParameterError(
                f"mantissa: keep_repeated must be 0 (off) or an integer >= 2 (the count from which a value is"
                f" kept exact), got {r!r}"
            )
        object.__setattr__(self, "keep_repeated", int(r))
        if self.rounding not in _ROUNDINGS:
            raise CodecParameterError(
                f"mantissa: rounding must be one of {', '.join(_ROUNDINGS)}, got {self.rounding!r}"
            )

    def get_config(self) -> dict[str, object]:
        """As every codec's, but ``keep_repeated`` only when set: configs (and block headers) of the plain
        codec are the same as before the parameter existed."""
        cfg = super().get_config()
        if not self.keep_repeated:
            cfg.pop("keep_repeated")
        return cfg

    def accepts(self, dtype: np.dtype) -> bool:
        dtype = np.dtype(dtype)
        return dtype.kind == "f" and dtype.itemsize in _LAYOUT

    def error_bound(self) -> ErrorBound:
        k = self.keepbits
        return ErrorBound("rel", 2.0 ** -(k + 1) if self.rounding == "nearest" else 2.0**-k)

    def encode(self, x: np.ndarray) -> np.ndarray:
        x = as_ndarray(x)
        self._check_dtype(x)
        utype, mbits = _LAYOUT[x.dtype.itemsize]
        if self.keepbits > mbits:
            raise CodecParameterError(
                f"mantissa: keepbits={self.keepbits} exceeds the {mbits} mantissa bits of {x.dtype.name}"
                f" (allowed 1..{mbits})"
            )
        # exactly one copy: the byte swap of a non-native input is the copy
        out = x.astype(x.dtype.newbyteorder("="), order="C") if not x.dtype.isnative else x.copy(order="C")
        if self.keepbits < mbits:
            flat = out.reshape(-1).view(utype)
            exact = repeated_mask(flat, self.keep_repeated) if self.keep_repeated else None
            if exact is not None:
                saved = flat[exact]
            _round_inplace(flat, mbits, mbits - self.keepbits, self.rounding)
            if exact is not None:
                flat[exact] = saved
        return out

    def decode(self, y: np.ndarray) -> np.ndarray:
        """Identity: the values were already rounded by :meth:`encode`."""
        return _native(as_ndarray(y))


def repeated_mask(u: np.ndarray, count: int) -> np.ndarray | None:
    """Mask of the elements whose bit pattern occurs at least ``count`` times in ``u`` (None: none do).

    Discrete-valued floats -- a particle's mass set by its species, a jet made of one pion, sentinels --
    sit on a few exact values; rounding moves each such point as a whole, which a two-sample classifier
    sees even when the shift is far below any resolution. A continuous float32 quantity repeats a value
    by chance only rarely (a handful of pairs in a million), so a count of a few catches the points only.

    Exact, without sorting the whole array: a multiplicative hash into 1-4 buckets per element counts
    bucket loads; only elements of buckets loaded ``count`` times or more (every repeated value, plus a
    few colliding ones) are counted exactly.
    """
    n = u.size
    if n < count:
        return None
    bits = int(min(max(int(n).bit_length() + 1, 8), 24))
    h = u.astype(np.uint64)
    h *= np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing; wraps modulo 2**64 by design
    h >>= np.uint64(64 - bits)
    hi = h.astype(np.intp)
    del h
    cand = np.bincount(hi, minlength=1 << bits)[hi] >= count
    if not cand.any():
        return None
    cu = u[cand]
    vals, cnt = np.unique(cu, return_counts=True)
    hot = vals[cnt >= count]
    if hot.size == 0:
        return None
    mask = np.zeros(n, dtype=bool)
    mask[cand] = np.isin(cu, hot)
    return mask


def _round_inplace(u: np.ndarray, mbits: int, drop: int, rounding: str) -> None:
    """Round the unsigned view ``u`` of floats in place, block by block (see the module docstring)."""
    t = u.dtype.type
    nbits = u.dtype.itemsize * 8
    sign = t(1 << (nbits - 1))
    expmask = t(((1 << (nbits - 1 - mbits)) - 1) << mbits)  # magnitude >= this: inf / NaN
    min_normal = t(1 << mbits)  # magnitude < this: zero / subnormal
    lowmask = t(~((1 << drop) - 1) & ((1 << nbits) - 1))  # clears the dropped bits
    half_minus_1 = t((1 << (drop - 1)) - 1)
    shift = t(drop)
    largest = t(int(expmask) - (1 << drop))  # largest finite magnitude with `keepbits` bits
    span = t(int(expmask) - int(min_normal))
    one = t(1)
    n = u.size
    bs = min(_BLOCK, n)
    a = np.empty(bs, dtype=u.dtype)
    keep = np.empty(bs, dtype=bool)
    tmp = np.empty(bs, dtype=u.dtype)
    for start in range(0, n, _BLOCK):
        blk = u[start : start + _BLOCK]
        m = blk.size
        av, kv, tv = a[:m], keep[:m], tmp[:m]
        np.bitwise_and(blk, ~sign, out=av)  # magnitude bits
        # keep zeros/subnormals (av < min_normal) and inf/NaN (av >= expmask) in one unsigned compare
        np.subtract(av, min_normal, out=tv)
        np.less(tv, span, out=kv)  # kv: the normal finite values, the only ones rounded
        if rounding == "nearest":
            np.right_shift(av, shift, out=tv)
            tv &= one
            tv += half_minus_1
            av += tv  # magnitude < 2**(nbits-1) + small: no wrap-around
            av &= lowmask
            np.minimum(av, largest, out=av)  # never round a finite value up to inf
            np.bitwise_and(blk, sign, out=tv)
            av |= tv
        else:
            np.bitwise_and(blk, lowmask, out=av)
        np.copyto(blk, av, where=kv)
