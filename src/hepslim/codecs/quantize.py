"""``quantize``: floats -> small integers with a guaranteed error bound (an array->bytes serializer).

Modes (all guarantees are checked value by value at encode time, see below):

* ``linear`` (``abs_error``): ``x' = offset + q * step``, ``|x' - x| <= abs_error``. The range is
  ``[min, max]`` when given (values outside it follow ``out_of_range``; with ``clip`` the bound holds
  against the clipped value), else the data's own range. Decoded values never leave the range.
* ``log`` (``rel_error``, for pT / energy / mass): ``|x'| = 2**(q * h)``, ``|x' - x| <= rel_error * |x|``.
  Zero is a reserved code (0), the sign is one extra bit (only when the block has negatives or -0),
  so zeros, negative values and -0 come back exactly (never a negative pT from a positive one).
* ``angle`` (``abs_error``): ``N`` equal bins on the circle, codes ``q mod N``; the periodic distance
  ``|x' - x| mod 2pi <= abs_error``, decoded values lie in ``(-pi, pi]``. Inputs must satisfy
  ``|x| <= pi`` (within float rounding); ``out_of_range="clip"`` instead wraps them onto the circle.
* ``dither`` (linear and angle): subtractive dither ``u`` in [-0.5, 0.5), seeded by ``seed`` and
  regenerated at decode from the element index: ``q = rint(x/step + u)``, ``x' = (q - u) step``. It
  removes the binning pattern from histograms; the error is still at most ``step/2``, so the same step
  keeps the declared bound.

**The bound is a guarantee, not an approximation**: after choosing the codes the encoder reconstructs each
value exactly as :meth:`Quantize.decode` will (same function, in the final dtype) and stores every value
that misses the bound (float rounding, overflow, subnormals) as an *escape*: its index and its original
bits. NaN and +-inf are always escapes (stored exactly, never "out of range").

The bytes are self-describing (little-endian)::

    magic "HSQZ" | version u8 | mode u8 | flags u8 | width u8 | dtype "<f4" (4 bytes) | ndim u8 | shape u64*
    step f64 | offset f64 | lo f64 | hi f64 | iaux i64 | seed u64 | n_escapes u64
    codes (bit-packed at `width` bits, or uint8/16/32/64) | escape indices u64* | escape values (dtype)*

Steps are chosen with a margin for the final dtype's rounding (e.g. ``step = 2 (abs_error - ulp/2)``),
so escapes stay rare (none in typical data). Speed (~200 MB/s encode for float32 on one core): the work
runs in cache-sized blocks of 64 Ki values; float64 arithmetic, the verification pass, bit packing and, in
log mode, ``log2``/``exp2`` dominate.

>>> import numpy as np
>>> q = Quantize(mode="angle", abs_error=1e-3)
>>> x = np.array([3.1415925, -3.1415925, 0.5], np.float32)
>>> bool(np.all(np.abs(np.angle(np.exp(1j * (q.decode(q.encode(x)) - x)))) <= 1e-3))
True
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hepslim.abc import ArrayBytesCodec, BytesLike, ErrorBound, as_buffer, as_ndarray, param
from hepslim.codecs._bits import bit_width, pack_bits, packed_nbytes, unpack_bits
from hepslim.codecs._header import check_codec_header
from hepslim.errors import CodecInputError, CodecParameterError, CorruptDataError, OutOfRangeError

MAGIC = b"HSQZ"
VERSION = 1
_MODES = ("linear", "log", "angle")
_POLICIES = ("error", "clip", "escape")
_PACKS = ("bits", "bytes")
_HEAD = struct.Struct("<4sBBBB4sB")
_PARAMS = struct.Struct("<ddddqQQ")
_F_BYTES, _F_DITHER, _F_SIGNED = 1, 2, 4
_BLOCK = 1 << 16  # values per work block; a multiple of 64 (packed blocks stay byte-aligned)
_TWO_PI = 2.0 * math.pi
_DITHER_PERIOD = 1 << 16  # part of the format: see _dither
_MAX_CODE_BITS = 52  # codes are computed in float64: keep them exact integers


def _pi_bounds(dtype: np.dtype) -> tuple[float, float]:
    """(largest dtype value <= pi, smallest dtype value >= pi) as float64."""
    p = dtype.type(math.pi)
    if float(p) > math.pi:
        return float(np.nextafter(p, dtype.type(0))), float(p)
    if float(p) < math.pi:
        return float(p), float(np.nextafter(p, dtype.type(4)))
    return float(p), float(p)


def _inward(v: float, dtype: np.dtype, up: bool) -> float:
    """The dtype value nearest to ``v`` on the inside of a range bound (``up``: the smallest >= v)."""
    with np.errstate(over="ignore"):
        d = dtype.type(v)
    if up and float(d) < v:
        d = np.nextafter(d, dtype.type(np.inf))
    elif not up and float(d) > v:
        d = np.nextafter(d, dtype.type(-np.inf))
    return float(d)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, in place on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def _mix(seed: int, stream: int, idx: np.ndarray) -> np.ndarray:
    z = idx.astype(np.uint64) + np.uint64(1)
    with np.errstate(over="ignore"):
        z *= np.uint64(0x9E3779B97F4A7C15)
        z += np.uint64((seed * 0xD1B54A32D192ED03 + stream * 0xA0761D6478BD642F) & 0xFFFFFFFFFFFFFFFF)
    return _splitmix64(z)


@functools.lru_cache(maxsize=8)
def _dither_table(seed: int) -> np.ndarray:
    """Per seed: ``_DITHER_PERIOD`` uniform values in [-0.5, 0.5) (read-only; cached: a pure function)."""
    u = (_mix(seed, 0, np.arange(_DITHER_PERIOD)) >> np.uint64(11)).astype(np.float64)
    u *= 2.0**-53
    u -= 0.5
    u.flags.writeable = False
    return u


def _dither(start: int, count: int, seed: int) -> np.ndarray:
    """Subtractive dither of elements ``start..start+count``: uniform in [-0.5, 0.5), stable forever.

    ``u[i] = T[(i + r(i // P)) mod P]`` with ``T`` a splitmix64 table of ``P`` values and ``r`` a
    splitmix64 rotation per period: a table lookup instead of a hash per value (5x cheaper), and no
    visible period. Part of the format (decode regenerates it from ``seed``).
    """
    table = _dither_table(seed)
    p = _DITHER_PERIOD
    out = np.empty(count, dtype=np.float64)
    i = start
    while i < start + count:
        period, j = divmod(i, p)
        rot = int(_mix(seed, 1, np.array([period]))[0] % np.uint64(p))
        take = min(p - j, start + count - i)
        k = (j + rot) % p  # position in the table of element i
        first = min(take, p - k)
        out[i - start : i - start + first] = table[k : k + first]
        if first < take:
            out[i - start + first : i - start + take] = table[: take - first]
        i += take
    return out


def _code_dtype(width: int) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32):
        if width <= np.dtype(dt).itemsize * 8:
            return np.dtype(dt)
    return np.dtype(np.uint64)


@dataclass(frozen=True)
class _Layout:
    """Everything decode needs besides the codes: parsed from / written to the header."""

    mode: int
    dtype: np.dtype
    shape: tuple[int, ...]
    width: int
    flags: int
    step: float  # linear/angle: bin width; log: h (log2 step)
    offset: float  # linear: value of code 0
    lo: float  # linear: decoded values are clamped into [lo, hi] (dtype values)
    hi: float
    iaux: int  # angle: number of bins N; log: qmin - 1
    seed: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def reconstruct(self, codes: np.ndarray, start: int, y: np.ndarray | None = None) -> np.ndarray:
        """Values of ``codes`` (elements ``start...``) in the native final dtype: THE decoder.

        The encoder calls this very function to check the bound, so what it checks is what decode gives.
        ``y`` is an optional float64 scratch buffer of ``codes.size``.
        """
        mode = _MODES[self.mode]
        nat = self.dtype.newbyteorder("=")
        if y is None:
            y = np.empty(codes.size, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            if mode == "log":
                signed = bool(self.flags & _F_SIGNED)
                k = codes >> codes.dtype.type(1) if signed else codes
                np.copyto(y, k, casting="unsafe")
                y += float(self.iaux)
                y *= self.step
                np.exp2(y, out=y)
                y[k == 0] = 0.0
                if signed:  # multiply by +-1 (a masked np.negative is ~10x slower on random masks)
                    sgn = (codes & codes.dtype.type(1)).astype(np.float64)
                    sgn *= -2.0
                    sgn += 1.0
                    y *= sgn
                return y.astype(nat)
            np.copyto(y, codes, casting="unsafe")
            if self.flags & _F_DITHER:
                y -= _dither(start, y.size, self.seed)
            y *= self.step
            if mode == "linear":
                y += self.offset
                out = y.astype(nat)
                np.clip(out, nat.type(self.lo), nat.type(self.hi), out=out)
                return out
            y -= (y > math.pi) * _TWO_PI  # into (-pi, pi]; a masked subtract is ~10x slower
            out = y.astype(nat)
            pi_down = nat.type(_pi_bounds(nat)[0])
            np.clip(out, -pi_down, pi_down, out=out)
            return out


@dataclass(frozen=True)
class Quantize(ArrayBytesCodec):
    """Quantize floats to bit-packed integers with a guaranteed abs/rel/periodic error bound."""

    codec_id: ClassVar[str] = "quantize"
    family: ClassVar[str] = "lossy"

    mode: str = param("linear", allowed="linear | log | angle",
                      doc="linear (abs_error), log (rel_error; pT/E/mass), angle (abs_error, periodic)")
    abs_error: float | None = param(None, allowed="> 0",
                                    doc="max |x'-x| (linear) or periodic distance (angle)")
    rel_error: float | None = param(None, doc="max |x'-x|/|x| (log mode)", allowed="0 < rel_error < 1")
    min: float | None = param(None, allowed="finite",
                              doc="linear mode: lower end of the value range (with max)")
    max: float | None = param(None, allowed="> min",
                              doc="linear mode: upper end of the value range (with min)")
    out_of_range: str = param("error", doc="values outside [min,max] (angle: |x|>pi): raise, clip (angle: "
                              "wrap) or store losslessly", allowed="error | clip | escape")
    dither: bool = param(False, doc="subtractive dither (linear/angle), regenerated at decode from seed",
                         allowed="true | false")
    seed: int = param(0, doc="dither seed", allowed="0..2**64-1")
    pack: str = param("bits", doc="bits: minimal-width bit packing; bytes: smallest uint8/16/32/64",
                      allowed="bits | bytes")

    def __post_init__(self) -> None:
        def bad(msg: str) -> CodecParameterError:
            return CodecParameterError(f"quantize: {msg}")

        if self.mode not in _MODES:
            raise bad(f"mode must be one of {', '.join(_MODES)}, got {self.mode!r}")
        if self.out_of_range not in _POLICIES:
            raise bad(f"out_of_range must be one of {', '.join(_POLICIES)}, got {self.out_of_range!r}")
        if self.pack not in _PACKS:
            raise bad(f"pack must be one of {', '.join(_PACKS)}, got {self.pack!r}")
        if not isinstance(self.dither, bool):
            raise bad(f"dither must be true or false, got {self.dither!r}")
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
            raise bad(f"seed must be an integer in 0..2**64-1, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))

        def number(name: str) -> float | None:
            v = getattr(self, name)
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise bad(f"{name} must be a number, got {v!r}")
            if not math.isfinite(float(v)):
                raise bad(f"{name} must be finite, got {v!r}")
            object.__setattr__(self, name, float(v))
            return float(v)

        ae, re_, lo, hi = (number(n) for n in ("abs_error", "rel_error", "min", "max"))
        if self.mode == "log":
            if re_ is None:
                raise bad("mode 'log' needs rel_error (0 < rel_error < 1)")
            if not 0 < re_ < 1:
                raise bad(f"rel_error must be in (0, 1), got {re_!r}")
            for name in ("abs_error", "min", "max"):
                if getattr(self, name) is not None:
                    raise bad(f"mode 'log' takes rel_error, not {name}")
            if self.dither:
                raise bad("dither is for modes 'linear' and 'angle', not 'log'")
        else:
            if ae is None:
                raise bad(f"mode {self.mode!r} needs abs_error (> 0)")
            if not ae > 0:
                raise bad(f"abs_error must be > 0, got {ae!r}")
            if re_ is not None:
                raise bad(f"mode {self.mode!r} takes abs_error, not rel_error")
            if self.mode == "angle":
                if lo is not None or hi is not None:
                    raise bad("mode 'angle' has the fixed range (-pi, pi]; do not set min/max")
                if ae >= math.pi:
                    raise bad(f"abs_error must be < pi in mode 'angle', got {ae!r}")
            elif (lo is None) != (hi is None):
                raise bad("set both min and max (or neither, to use the data's range)")
            elif lo is not None and hi is not None:
                if not lo < hi:
                    raise bad(f"min must be < max, got min={lo!r}, max={hi!r}")
                if (hi - lo) / ae > 2.0 ** (_MAX_CODE_BITS + 1):
                    raise bad(f"range [{lo!r}, {hi!r}] at abs_error={ae!r} needs more than "
                              f"{_MAX_CODE_BITS} bits per value")

    # ---- public API -------------------------------------------------------------------------------------
    def accepts(self, dtype: np.dtype) -> bool:
        dtype = np.dtype(dtype)
        return dtype.kind == "f" and dtype.itemsize in (2, 4, 8)

    def error_bound(self) -> ErrorBound:
        if self.mode == "log":
            return ErrorBound("rel", float(self.rel_error))  # type: ignore[arg-type]
        kind = "abs" if self.mode == "linear" else "angle"
        return ErrorBound(kind, float(self.abs_error))  # type: ignore[arg-type]

    def encode(self, x: np.ndarray) -> bytes:
        x = as_ndarray(x)
        self._check_dtype(x)
        layout, payload, esc_idx, _ = self._quantize(x, want_values=False)
        flat = x.reshape(-1)
        esc_vals = flat[esc_idx].tobytes()
        head = _HEAD.pack(MAGIC, VERSION, layout.mode, layout.flags, layout.width,
                          x.dtype.str.encode("ascii").ljust(4, b"\0"), x.ndim)
        shape = struct.pack(f"<{x.ndim}Q", *x.shape)
        params = _PARAMS.pack(layout.step, layout.offset, layout.lo, layout.hi, layout.iaux, layout.seed,
                              esc_idx.size)
        return b"".join([head, shape, params, payload, esc_idx.astype("<u8", copy=False).tobytes(), esc_vals])

    def decode(self, y: BytesLike) -> np.ndarray:
        layout, code_bytes, esc_idx, esc_vals = _parse(y)
        n = layout.size
        nat = layout.dtype.newbyteorder("=")
        out = np.empty(n, dtype=nat)
        scratch = np.empty(min(n, _BLOCK), dtype=np.float64)
        for s in range(0, n, _BLOCK):
            m = min(_BLOCK, n - s)
            out[s : s + m] = layout.reconstruct(_codes_block(layout, code_bytes, s, m), s, scratch[:m])
        if esc_idx.size:
            out[esc_idx] = esc_vals.astype(nat)
        return out.astype(layout.dtype, copy=False).reshape(layout.shape)

    def apply_values(self, x: np.ndarray) -> np.ndarray:
        """``decode(encode(x))`` without packing and header: the value change only ("transparent" mode)."""
        x = as_ndarray(x)
        self._check_dtype(x)
        layout, _, esc_idx, values = self._quantize(x, want_values=True)
        assert values is not None
        if esc_idx.size:
            values[esc_idx] = x.reshape(-1)[esc_idx].astype(values.dtype)
        return values.astype(x.dtype, copy=False).reshape(x.shape)

    # ---- encoder ----------------------------------------------------------------------------------------
    def _blocks(self, flat: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        for s in range(0, flat.size, _BLOCK):
            yield s, flat[s : s + _BLOCK].astype(np.float64)

    def _scan(self, flat: np.ndarray) -> dict[str, Any]:
        """First pass: data range, signs, out-of-range count and first offender."""
        mode = self.mode
        lo, hi = math.inf, -math.inf
        signed = False
        n_oor, first_oor = 0, None
        pi_up = _pi_bounds(flat.dtype)[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            for s, c in self._blocks(flat):
                fin = np.isfinite(c)
                allfin = bool(fin.all())
                cf = c if allfin else c[fin]
                if mode == "log":
                    signed = signed or bool(np.signbit(cf).any())
                    a = np.abs(cf)
                    a = a[a > 0]
                    if a.size:
                        lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
                    continue
                if mode == "linear" and self.min is None:
                    if cf.size:
                        lo, hi = min(lo, float(cf.min())), max(hi, float(cf.max()))
                    continue
                oor = ~((c >= self.min) & (c <= self.max)) if mode == "linear" else ~(np.abs(c) <= pi_up)
                if not allfin:
                    oor &= fin
                k = int(np.count_nonzero(oor))
                if k:
                    if first_oor is None:
                        i = int(np.argmax(oor))
                        first_oor = (s + i, float(c[i]))
                    n_oor += k
        return {"lo": lo, "hi": hi, "signed": signed, "n_oor": n_oor, "first_oor": first_oor}

    def _layout(self, x: np.ndarray, scan: dict[str, Any]) -> tuple[_Layout, int]:
        """Choose step/offset/width; returns the layout and the largest code."""
        dt = x.dtype
        nat = dt.newbyteorder("=")
        fi = np.finfo(dt)
        flags = (_F_BYTES if self.pack == "bytes" else 0) | (_F_DITHER if self.dither else 0)
        if self.mode == "log":
            r = float(self.rel_error)  # type: ignore[arg-type]
            r_eff = max(r - 2.0 * float(fi.epsneg), r / 2) * (1 - 2.0**-40)
            h = 2.0 * math.log2(1.0 + r_eff)
            if scan["signed"]:
                flags |= _F_SIGNED
            if scan["hi"] < scan["lo"]:  # no finite non-zero values
                qmin = qmax = 0
            else:
                # one spare code each side: the block loop's vectorised log2 may round differently
                qmin = int(np.rint(np.log2(scan["lo"]) / h)) - 1
                qmax = int(np.rint(np.log2(scan["hi"]) / h)) + 1
            kmax = qmax - qmin + 1
            maxcode = 2 * kmax + 1 if scan["signed"] else kmax
            lay = _Layout(mode=_MODES.index("log"), dtype=dt, shape=x.shape, width=bit_width(maxcode),
                          flags=flags, step=h, offset=0.0, lo=0.0, hi=0.0, iaux=qmin - 1, seed=self.seed)
            return lay, maxcode
        ae = float(self.abs_error)  # type: ignore[arg-type]
        if self.mode == "angle":
            ulp = float(np.spacing(nat.type(math.pi)))
            eff = max(ae - ulp / 2, ae / 2) * (1 - 2.0**-40)
            nbins = max(1, math.ceil(_TWO_PI / (2.0 * eff)))
            if nbins >= 2**_MAX_CODE_BITS:
                raise CodecParameterError(f"quantize: abs_error={ae!r} is too small for angles")
            lay = _Layout(mode=_MODES.index("angle"), dtype=dt, shape=x.shape, width=bit_width(nbins - 1),
                          flags=flags, step=_TWO_PI / nbins, offset=0.0, lo=0.0, hi=0.0, iaux=nbins,
                          seed=self.seed)
            return lay, nbins - 1
        if self.min is not None:
            lo = _inward(self.min, nat, up=True)
            hi = _inward(self.max, nat, up=False)  # type: ignore[arg-type]
        elif scan["hi"] < scan["lo"]:
            lo = hi = 0.0
        else:
            lo, hi = scan["lo"], scan["hi"]
        with np.errstate(over="ignore"):
            ulp = float(np.spacing(nat.type(max(abs(lo), abs(hi)))))  # inf at the dtype's max: fine
        eff = max(ae - ulp / 2, ae / 2) * (1 - 2.0**-40)
        step = 2.0 * eff
        span = (hi - lo) / step
        if not span < 2.0**_MAX_CODE_BITS:
            raise CodecInputError(
                f"quantize: the data range [{lo!r}, {hi!r}] at abs_error={ae!r} needs more than "
                f"{_MAX_CODE_BITS} bits per value; set min/max with out_of_range='escape', or use mode='log'"
            )
        maxcode = int(math.ceil(span + (0.5 if self.dither else 0.0)))
        lay = _Layout(mode=_MODES.index("linear"), dtype=dt, shape=x.shape, width=bit_width(maxcode),
                      flags=flags, step=step, offset=lo, lo=lo, hi=hi, iaux=0, seed=self.seed)
        return lay, maxcode

    def _quantize(self, x: np.ndarray, want_values: bool
                  ) -> tuple[_Layout, bytes, np.ndarray, np.ndarray | None]:
        """Packed codes (unless ``want_values``), escape indices and (if asked) the decoded values.

        Works block by block (``_BLOCK`` values, a multiple of 64 so packed blocks are byte-aligned and
        simply concatenate), keeping every temporary in the CPU cache."""
        flat = x.reshape(-1)
        scan = self._scan(flat)
        if scan["n_oor"] and self.out_of_range == "error":
            i, v = scan["first_oor"]
            rng = f"[{self.min!r}, {self.max!r}]" if self.mode == "linear" else "(-pi, pi]"
            raise OutOfRangeError(
                f"quantize: {scan['n_oor']} value(s) outside {rng}, the first at flat index {i}: {v!r}; "
                "set out_of_range to 'escape' (store them losslessly) or 'clip'"
            )
        lay, maxcode = self._layout(x, scan)
        n = flat.size
        cdt = _code_dtype(lay.width)
        parts: list[bytes] = []
        values = np.empty(n, dtype=x.dtype.newbyteorder("=")) if want_values else None
        escapes: list[np.ndarray] = []
        mode = self.mode
        bound = self.error_bound().value
        escape_oor = self.out_of_range == "escape"
        wrap = mode == "angle" and scan["n_oor"] > 0  # angles beyond pi, to wrap ("clip") or escape
        pi_up = _pi_bounds(x.dtype)[1]
        inv_step = 1.0 / lay.step
        signed = bool(lay.flags & _F_SIGNED)
        kmax = float(maxcode >> 1 if signed else maxcode)
        bs = min(_BLOCK, n)
        c, t, y = (np.empty(bs, dtype=np.float64) for _ in range(3))
        qbuf = np.empty(bs, dtype=cdt)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            for s in range(0, n, _BLOCK):
                xb = flat[s : s + _BLOCK]
                m = xb.size
                cb, tb, yb = c[:m], t[:m], y[:m]
                np.copyto(cb, xb, casting="unsafe")
                esc = ~np.isfinite(cb)
                any_nonfinite = bool(esc.any())
                if mode == "linear" and self.min is not None and scan["n_oor"]:
                    oor = (cb < lay.lo) | (cb > lay.hi)
                    if escape_oor:
                        esc |= oor
                    else:  # clip: the bound then holds against the clipped value
                        np.clip(cb, lay.lo, lay.hi, out=cb)
                elif wrap and escape_oor:
                    esc |= np.abs(cb) > pi_up
                # -- codes --------------------------------------------------------------------------
                if mode == "log":
                    np.abs(cb, out=tb)
                    np.log2(tb, out=tb)  # zero -> -inf -> clipped to code 0 below
                    tb *= 1.0 / lay.step
                    np.rint(tb, out=tb)
                    tb -= float(lay.iaux)
                    if any_nonfinite:
                        tb[esc] = 0.0
                    np.clip(tb, 0.0, kmax, out=tb)
                    if signed:
                        tb *= 2.0
                        tb += np.signbit(cb)
                else:
                    if mode == "linear":
                        np.subtract(cb, lay.offset, out=tb)
                        tb *= inv_step
                    else:
                        np.multiply(cb, inv_step, out=tb)
                    if lay.flags & _F_DITHER:
                        tb += _dither(s, m, lay.seed)
                    np.rint(tb, out=tb)
                    if mode == "angle":
                        if wrap:
                            np.mod(tb, float(lay.iaux), out=tb)
                        else:  # |x| <= pi: one period at most
                            tb += (tb < 0) * float(lay.iaux)
                    if any_nonfinite:
                        tb[esc] = 0.0
                    np.clip(tb, 0.0, float(maxcode), out=tb)
                q = qbuf[:m]
                np.copyto(q, tb, casting="unsafe")
                # -- check the bound on exactly what decode will return ------------------------------
                back = lay.reconstruct(q, s, yb)
                np.copyto(tb, back, casting="unsafe")
                tb -= cb
                np.abs(tb, out=tb)
                if mode == "log":
                    np.abs(cb, out=cb)
                    cb *= bound - 2.0**-50
                    ok = tb <= cb
                elif mode == "angle":
                    if wrap:
                        np.remainder(tb, _TWO_PI, out=tb)
                    np.minimum(tb, _TWO_PI - tb, out=tb)
                    ok = tb <= bound
                else:
                    ok = tb <= bound
                esc |= ~ok
                if esc.any():
                    idx = np.flatnonzero(esc)
                    q[idx] = 0
                    escapes.append(idx + s)
                if values is not None:
                    values[s : s + m] = back
                elif lay.width == 0:
                    pass
                elif lay.flags & _F_BYTES:
                    parts.append(q.astype(cdt.newbyteorder("<"), copy=False).tobytes())
                else:
                    parts.append(pack_bits(q, lay.width))
        esc_idx = np.concatenate(escapes) if escapes else np.zeros(0, dtype=np.int64)
        return lay, b"".join(parts), esc_idx.astype(np.int64, copy=False), values


def _parse(y: BytesLike) -> tuple[_Layout, np.ndarray, np.ndarray, np.ndarray]:
    """Header, the code bytes, escape indices and escape values of an encoded block."""
    buf = as_buffer(y)
    nbytes = buf.nbytes
    if nbytes < _HEAD.size:
        raise CorruptDataError(f"quantize: block of {nbytes} bytes is shorter than its header")
    magic, version, mode, flags, width, dts, ndim = _HEAD.unpack_from(buf, 0)
    dtype = check_codec_header("quantize", magic, MAGIC, version, VERSION, dts)
    if mode >= len(_MODES) or width > 64:
        raise CorruptDataError(f"quantize: bad header (mode {mode}, width {width})")
    pos = _HEAD.size
    if nbytes < pos + 8 * ndim + _PARAMS.size:
        raise CorruptDataError("quantize: truncated header")
    shape = struct.unpack_from(f"<{ndim}Q", buf, pos)
    pos += 8 * ndim
    step, offset, lo, hi, iaux, seed, n_esc = _PARAMS.unpack_from(buf, pos)
    pos += _PARAMS.size
    layout = _Layout(mode=mode, dtype=dtype, shape=tuple(int(s) for s in shape), width=width, flags=flags,
                     step=step, offset=offset, lo=lo, hi=hi, iaux=iaux, seed=seed)
    n = layout.size
    if flags & _F_BYTES:
        cdt = _code_dtype(width).newbyteorder("<")
        ncode = n * cdt.itemsize if width else 0
    else:
        ncode = packed_nbytes(n, width)
    need = pos + ncode + n_esc * (8 + dtype.itemsize)
    if nbytes != need:
        raise CorruptDataError(f"quantize: block is {nbytes} bytes, its header says {need}")
    raw = np.frombuffer(buf, dtype=np.uint8)
    code_bytes = raw[pos : pos + ncode]
    pos += ncode
    esc_idx = raw[pos : pos + 8 * n_esc].view("<u8").astype(np.int64)
    pos += 8 * n_esc
    esc_vals = raw[pos:].view(dtype)
    if esc_idx.size and (esc_idx.min() < 0 or esc_idx.max() >= n):
        raise CorruptDataError("quantize: escape index out of range")
    return layout, code_bytes, esc_idx, esc_vals


def _codes_block(layout: _Layout, code_bytes: np.ndarray, start: int, count: int) -> np.ndarray:
    """Codes of elements ``start..start+count`` (``start`` a multiple of 64: byte-aligned when packed)."""
    w = layout.width
    if w == 0:
        return np.zeros(count, dtype=np.uint8)
    if layout.flags & _F_BYTES:
        cdt = _code_dtype(w).newbyteorder("<")
        return code_bytes[start * cdt.itemsize : (start + count) * cdt.itemsize].view(cdt)
    return unpack_bits(code_bytes[start * w // 8 : packed_nbytes(start + count, w)], w, count)
