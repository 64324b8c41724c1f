"""``autoencoder``: a learned codec for correlated float features, with a guaranteed error bound.

An array->bytes serializer for 2-D float arrays ``(n_rows, n_features)``: a collection's
``(pt, eta, phi, mass)`` stacked, jet constituents' features, ... (1-D input is ``(n, 1)``; more
dimensions are ``(shape[0], prod(shape[1:]))``). As in the HEP autoencoder-compression studies (e.g. the
ATLAS jet four-vector autoencoder of Wulff et al.), a small MLP autoencoder is trained with torch on the
data itself at encode time; unlike them, the error is bounded:

1. train ``encoder: F -> hidden -> hidden -> latent`` and ``decoder: latent -> hidden -> hidden -> F``
   (ReLU) on per-feature centred and scaled data (mean and std of the central 99.8%; ``rel_error``:
   of ``log2|x|``), CPU, seeded, deterministic, one thread; the decoder's weights are rounded onto a
   fixed-point grid (below);
2. quantize the latent codes uniformly (``latent_bits``, or the cheapest of a few widths when ``None``).
   The network must pay for its own weights and latents: when storing the residuals from the
   per-feature centre alone is cheaper (small blocks, features without redundancy), the block is stored
   without a network. "Cheaper" means (``target``) after zstd (default: the code streams of up to 16k
   rows compressed with zstd) or the codec's own packed size;
3. run the *stored* decoder on the *quantized* latents, exactly as :meth:`Autoencoder.decode` will, and
   quantize the residual ``x - prediction`` with the declared bound: ``abs_error``:
   ``x' = p + q * step``, ``step ~ 2 * abs_error``; ``rel_error``: ``|x'| = 2**(p + q * h)``, zero a
   reserved code, sign one bit (only for features with negatives);
4. check every value against the bound on what decode returns (final dtype) and store every miss, every
   non-finite value as an *escape* (flat index and original bits). Residual codes are bit-packed at a
   width per feature chosen by cost (patched frame of reference): the rare wider codes go to a patch
   list (row index + code), so a few outliers do not widen every code.

**Decoding needs numpy only, never torch**: the decoder runs in float64 numpy from the stored float32
weights, in exact fixed-point arithmetic (weights, biases, latents and activations on a 2**-14 grid with
bounded magnitudes, so every product and sum of a layer is exact and BLAS, summation order, FMA or threads
cannot change a bit; see ``_forward``). In ``abs_error`` mode decode is therefore bit-reproducible on any
IEEE-754 machine, and the bound checked at encode is the bound everywhere. ``rel_error`` mode needs
``exp2``, whose last float64 bit may differ between math libraries; its check keeps a margin of one
final-dtype ulp so the bound still holds on another machine.
Files written with this codec are readable without torch; only encoding needs the ``ml`` extra.

When it pays (BENCHMARKS.md, "Learned autoencoder codec"): on features with real redundancy, e.g. jet
constituents' (px, py, pz, E), it stores ~20% fewer bytes than per-column ``quantize`` at the same bound;
on nearly independent features (jet pt, eta, phi, m) it only ties. Follow it with ``zstd`` (its residual
codes are peaked at zero; there is no entropy coder inside). Encoding trains a network (seconds per
100k rows); 1-D branch buffers gain nothing (one feature, nothing to learn). ``encode`` is deterministic
for a given ``seed`` on a given machine and torch build.

The bytes (little-endian)::

    magic "HSAE" | version u8 | mode u8 | flags u8 | dtype (4 bytes) | ndim u8 | shape u64*
    n_rows u64 | n_features u32 | latent u32 | hidden u32 | latent_bits u8 | n_escapes u64
    per feature: centre f64, scale f64, step f64, width u8, signed u8, patch width u8, patches u64
    per latent: zmin f64, zstep f64 | decoder weights f32 (3 layers, W (in x out) then b)
    latent codes (bit-packed, one column after another) | per feature: residual codes (its width),
    patch rows (bit_width(n_rows - 1) bits each), patch codes (patch width)
    sign bits (signed features) | escape indices u64* | escape values (dtype)*

A block without a network has latent = hidden = latent_bits = 0 and no latent or weight sections.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> t = rng.normal(size=(2000, 1))
>>> x = np.hstack([t, 2 * t, -t]).astype(np.float32)
>>> ae = Autoencoder(latent=1, hidden=8, epochs=3, abs_error=1e-3)
>>> bool(np.abs(ae.decode(ae.encode(x)) - x).max() <= 1e-3)
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hepslim.abc import ArrayBytesCodec, BytesLike, ErrorBound, as_buffer, as_ndarray, param
from hepslim.codecs._bits import bit_width, pack_bits, packed_nbytes, unpack_bits
from hepslim.codecs._header import check_codec_header
from hepslim.errors import CodecInputError, CodecParameterError, CorruptDataError, MissingDependencyError

MAGIC = b"HSAE"
VERSION = 1
_MODES = ("abs", "rel")
_HEAD = struct.Struct("<4sBBB4sB")
_DIMS = struct.Struct("<QIIIBQ")
_FEAT = struct.Struct("<dddBBBQ")
_LAT = struct.Struct("<dd")
_ROWS = 1 << 14  # rows per decoder block (the hidden activations stay in cache)
_MAX_Q = 2.0**52  # residual codes are computed in float64: keep them exact integers
_AUTO_BITS = (4, 6, 8, 10, 12)  # latent widths tried when latent_bits is None
_AUTO_ROWS = 1 << 14  # rows used to choose the latent width
_BATCH = 256
_LR = 1e-2
_CLIP = 8.0  # standardized encoder inputs are clipped to +-_CLIP (huge outliers go to escapes anyway)


# ---- the decoder: numpy only, exact fixed-point arithmetic ------------------------------------------------
# Latents, hidden activations, weights and biases all lie on the grid 2**-_FRAC with |a| <= _A_MAX,
# |w| <= _W_MAX, |b| <= _B_MAX and fan-in <= _MAX_WIDTH, so every product and partial sum of a layer is an
# integer multiple of 2**-(2 _FRAC) below 2**53 in magnitude: float64 matmul is then EXACT whatever the
# BLAS, its summation order, FMA or thread count, and the decoder gives the same bits on every machine.
_FRAC = 14
_G = 2.0**_FRAC
_A_MAX = 2.0**10
_W_MAX = 2.0**6
_B_MAX = 2.0**9  # weights and biases then have <= 24 significant bits: exact in the stored float32
_MAX_WIDTH = 256  # 10 + 6 + 8 + 2 * 14 = 52 bits


def _grid(v: np.ndarray, vmax: float) -> np.ndarray:
    """``v`` rounded to the 2**-_FRAC grid and clipped to +-vmax (exact power-of-two scalings)."""
    return np.clip(np.rint(np.asarray(v, np.float64) * _G), -vmax * _G, vmax * _G) / _G


def _on_grid(v: np.ndarray, vmax: float) -> bool:
    return bool(np.all(np.abs(v) <= vmax) and np.all(np.rint(v * _G) == v * _G))


def _forward(z: np.ndarray, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The decoder MLP (ReLU between layers, linear output) on on-grid float64 latents; exact (see above)."""
    a = z
    for i, (w, b) in enumerate(layers):
        a = a @ w
        a += b
        if i < len(layers) - 1:
            np.maximum(a, 0.0, out=a)
            a *= _G
            np.rint(a, out=a)
            np.minimum(a, _A_MAX * _G, out=a)
            a *= 1.0 / _G
    return a


def _zigzag(q: np.ndarray) -> np.ndarray:
    """Signed int64 -> uint64 (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...)."""
    return ((q << 1) ^ (q >> 63)).view(np.uint64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.uint64, copy=False)
    return (u >> np.uint64(1)).view(np.int64) ^ -(u & np.uint64(1)).view(np.int64)


@dataclass(frozen=True, eq=False)
class _Layout:
    """Everything decode needs besides the packed codes."""

    mode: int
    dtype: np.dtype
    shape: tuple[int, ...]
    n: int
    f: int
    latent: int
    hidden: int
    latent_bits: int
    mean: np.ndarray  # (f,) float64
    scale: np.ndarray  # (f,)
    step: np.ndarray  # (f,) abs: residual bin width; rel: log2 bin width h
    width: np.ndarray  # (f,) int: residual code bits per feature
    owidth: np.ndarray  # (f,) int: bits of the feature's overflow codes (patches)
    n_over: np.ndarray  # (f,) int: number of overflow codes (patches) of the feature
    signed: np.ndarray  # (f,) bool: rel mode, a sign bit per value
    zmin: np.ndarray  # (latent,)
    zstep: np.ndarray  # (latent,)
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # float64 copies of the stored float32 weights

    def predict(self, zcodes: np.ndarray) -> np.ndarray:
        """Prediction ``p`` (rows x features, float64; rel mode: of ``log2|x|``) from latent codes."""
        if not self.layers:  # no network: the per-feature mean
            return np.repeat(self.mean[None, :], zcodes.shape[0], axis=0)
        z = zcodes.astype(np.float64) * self.zstep + self.zmin  # exact: on the grid
        np.clip(z, -_A_MAX, _A_MAX, out=z)
        out = _forward(z, self.layers)
        out *= self.scale
        out += self.mean
        return out

    def reconstruct(self, p: np.ndarray, codes: np.ndarray, sign: np.ndarray | None) -> np.ndarray:
        """Values (final dtype) from predictions ``p``, residual codes and sign bits: THE decoder.

        The encoder checks the bound on the output of this very function."""
        nat = self.dtype.newbyteorder("=")
        with np.errstate(over="ignore", invalid="ignore"):
            if _MODES[self.mode] == "abs":
                y = _unzigzag(codes).astype(np.float64)
                y *= self.step
                y += p
                return y.astype(nat)
            zero = codes == 0
            y = _unzigzag(np.where(zero, codes, codes - np.uint64(1))).astype(np.float64)  # k>0: zigzag k-1
            y *= self.step
            y += p
            np.exp2(y, out=y)
            y[zero] = 0.0
            if sign is not None:
                y[sign.astype(bool)] *= -1.0
            return y.astype(nat)


def _prepare(x2: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Features the network models (float64; rel mode: ``log2|x|``) and where they are usable."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        f = x2.astype(np.float64)
        if mode == "rel":
            f = np.log2(np.abs(f))
        ok = np.isfinite(f)
    return f, ok


def _stats(f: np.ndarray, ok: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature centre and scale over usable values: mean and standard deviation of the values between
    the 0.1% and 99.9% quantiles (a few huge values, which go to patches or escapes anyway, cannot
    blow them up; heavy tails keep a scale that lets the network see them); 1 where that is 0."""
    nf = f.shape[1]
    mean, scale = np.zeros(nf), np.ones(nf)
    if not standardize:
        return mean, scale
    with np.errstate(over="ignore", invalid="ignore"):
        for j in range(nf):  # a loop over features, not values
            v = f[ok[:, j], j]
            if v.size == 0:
                continue
            lo, hi = np.quantile(v, [0.001, 0.999])
            w = v[(v >= lo) & (v <= hi)]
            v = w if w.size >= max(1, v.size // 2) else v  # tiny samples: no trimming
            m, sd = float(np.mean(v)), float(np.std(v))
            if math.isfinite(m):
                mean[j] = m
            if math.isfinite(sd) and sd > 0:
                scale[j] = sd
    return mean, scale


@contextlib.contextmanager
def _torch_session(seed: int) -> Iterator[Any]:
    """torch, seeded, deterministic and single-threaded; restores the caller's settings and RNG state."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "ml", "the autoencoder codec") from None
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield torch
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=warn_only)


def _train(t: np.ndarray, rows: np.ndarray, latent: int, hidden: int, epochs: int, seed: int
           ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Train on the standardized ``t[rows]``; return the latents of every row of ``t`` (float64) and the
    decoder weights (float32, ``W`` as in x out)."""
    nf = t.shape[1]
    with _torch_session(seed) as torch:
        nn = torch.nn
        enc = nn.Sequential(nn.Linear(nf, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                            nn.Linear(hidden, latent))
        dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                            nn.Linear(hidden, nf))
        data = torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32))
        train = data[torch.from_numpy(rows.astype(np.int64))]
        params = [*enc.parameters(), *dec.parameters()]
        opt = torch.optim.Adam(params, lr=_LR, foreach=True)
        gen = torch.Generator().manual_seed(seed)
        n = train.shape[0]
        if n >= 2:
            steps = epochs * -(-n // _BATCH)
            k = 0
            for _ in range(epochs):
                perm = torch.randperm(n, generator=gen)
                for s in range(0, n, _BATCH):
                    for g in opt.param_groups:  # cosine decay to 0: the last steps polish the fit
                        g["lr"] = _LR * 0.5 * (1.0 + math.cos(math.pi * k / steps))
                    k += 1
                    xb = train[perm[s : s + _BATCH]]
                    opt.zero_grad()
                    loss = torch.mean((dec(enc(xb)) - xb) ** 2)
                    loss.backward()
                    opt.step()
        with torch.no_grad():
            z = torch.cat([enc(data[s : s + 65536]) for s in range(0, data.shape[0], 65536)])
            layers = [(m.weight.detach().numpy().T.astype(np.float64), m.bias.detach().numpy().astype(np.float64))
                      for m in dec if isinstance(m, nn.Linear)]
        z64 = z.numpy().astype(np.float64)
    finite = all(np.isfinite(w).all() and np.isfinite(b).all() for w, b in layers) and np.isfinite(z64).all()
    # onto the decoder's fixed-point grid (the residuals absorb the tiny change)
    layers = [(_grid(w, _W_MAX).astype(np.float32), _grid(b, _B_MAX).astype(np.float32)) for w, b in layers]
    np.clip(z64, -_A_MAX, _A_MAX, out=z64)
    if n < 2 or not finite:
        # nothing learnt (or training diverged): predict the mean; the residuals carry everything
        layers = [(np.zeros_like(w), np.zeros_like(b)) for w, b in layers]
        z64 = np.zeros_like(z64)
    return z64, layers


def _code_streams(lay: _Layout, zcodes: np.ndarray, codes: np.ndarray,
                  patches: list[tuple[np.ndarray, np.ndarray]], sign: np.ndarray | None) -> list[bytes]:
    """The bit-packed sections after the weights: latent codes, per feature residual codes and patches,
    sign bits."""
    n = codes.shape[0]
    parts = [pack_bits(zcodes[:, k], lay.latent_bits) for k in range(zcodes.shape[1])]
    iw = bit_width(n - 1)
    for j in range(codes.shape[1]):
        parts.append(pack_bits(codes[:, j], int(lay.width[j])))
        parts.append(pack_bits(patches[j][0], iw))
        parts.append(pack_bits(patches[j][1], int(lay.owidth[j])))
    if sign is not None:
        for js in np.flatnonzero(lay.signed):
            parts.append(pack_bits(sign[:, js], 1))
    return parts


def _choose_width(u: np.ndarray, fixed_esc: np.ndarray) -> tuple[int, int]:
    """Patched frame of reference for one feature's codes: the width ``w`` minimising
    ``n * w + (codes wider than w) * (row-index bits + overflow width)``, and that overflow width."""
    n = u.size
    live = u[~fixed_esc]
    if live.size == 0:
        return 0, 0
    bl = np.frexp(live.astype(np.float64))[1]  # bit length (exact below 2**53)
    counts = np.bincount(bl, minlength=65)
    ow = int(bl.max())
    wider = live.size - np.cumsum(counts)  # wider[w] = number needing more than w bits
    cost = n * np.arange(counts.size) + wider * (bit_width(n - 1) + ow)
    w = int(np.argmin(cost[: ow + 1]))
    return w, (ow if w < ow else 0)


@dataclass(frozen=True)
class Autoencoder(ArrayBytesCodec):
    """A small MLP autoencoder trained on the data, with residuals quantized to a guaranteed bound."""

    codec_id: ClassVar[str] = "autoencoder"
    family: ClassVar[str] = "learned"

    abs_error: float | tuple[float, ...] | None = param(
        None, allowed="> 0 (one number, or one per feature)",
        doc="max |x'-x| (one bound for all features, or a list with one per feature)")
    rel_error: float | None = param(None, allowed="0 < rel_error < 1", doc="max |x'-x|/|x|")
    latent: int = param(2, allowed="1..256", doc="latent dimensions (capped at n_features-1; 1 for one feature)")
    hidden: int = param(32, allowed="1..256", doc="width of the two hidden layers of encoder and decoder")
    epochs: int = param(20, allowed="0..100000", doc="training epochs (Adam, batches of 256)")
    seed: int = param(0, allowed="0..2**63-1", doc="seeds weight init, shuffling and row subsampling")
    standardize: bool = param(True, allowed="true | false",
                              doc="per-feature centring and scaling (trimmed mean and std) before the net")
    max_rows_train: int = param(65536, allowed=">= 1", doc="rows used for training (a seeded subsample)")
    latent_bits: int | None = param(None, allowed="1..24 or null (auto)",
                                    doc="bits per latent value; null: the cheapest of 4..12")
    target: str = param("zstd", allowed="zstd | packed",
                        doc="choose network/no network and latent bits for the size after zstd "
                            "(measured on a sample), or for this codec's own bit-packed size")

    def __post_init__(self) -> None:
        def bad(msg: str) -> CodecParameterError:
            return CodecParameterError(f"autoencoder: {msg}")

        def number(name: str, v: Any) -> float:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise bad(f"{name} must be a number, got {v!r}")
            if not math.isfinite(float(v)):
                raise bad(f"{name} must be finite, got {v!r}")
            return float(v)

        def integer(name: str, lo: int, hi: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise bad(f"{name} must be an integer in {lo}..{hi}, got {v!r}")
            object.__setattr__(self, name, int(v))

        if (self.abs_error is None) == (self.rel_error is None):
            raise bad("set exactly one of abs_error and rel_error")
        if self.abs_error is not None:
            ae = self.abs_error
            if isinstance(ae, (list, tuple, np.ndarray)):
                vals = tuple(number("abs_error", v) for v in ae)
                if not vals:
                    raise bad("abs_error list is empty")
                if len(vals) == 1:
                    vals = vals[0]  # type: ignore[assignment]
            else:
                vals = number("abs_error", ae)  # type: ignore[assignment]
            if not all(v > 0 for v in np.atleast_1d(vals)):
                raise bad(f"abs_error must be > 0, got {ae!r}")
            object.__setattr__(self, "abs_error", vals)
        else:
            r = number("rel_error", self.rel_error)
            if not 0 < r < 1:
                raise bad(f"rel_error must be in (0, 1), got {r!r}")
            object.__setattr__(self, "rel_error", r)
        integer("latent", 1, _MAX_WIDTH)
        integer("hidden", 1, _MAX_WIDTH)
        integer("epochs", 0, 100000)
        integer("seed", 0, 2**63 - 1)
        integer("max_rows_train", 1, 2**62)
        if self.latent_bits is not None:
            integer("latent_bits", 1, 24)
        if self.target not in ("zstd", "packed"):
            raise bad(f"target must be zstd or packed, got {self.target!r}")
        if not isinstance(self.standardize, bool):
            raise bad(f"standardize must be true or false, got {self.standardize!r}")

    # ---- public API -------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        if isinstance(self.abs_error, tuple):
            cfg["abs_error"] = list(self.abs_error)
        return cfg

    def accepts(self, dtype: np.dtype) -> bool:
        dtype = np.dtype(dtype)
        return dtype.kind == "f" and dtype.itemsize in (2, 4, 8)

    def error_bound(self) -> ErrorBound:
        if self.rel_error is not None:
            return ErrorBound("rel", float(self.rel_error))
        return ErrorBound("abs", float(np.max(self.abs_error)))  # type: ignore[arg-type]

    def encode(self, x: np.ndarray) -> bytes:
        x = as_ndarray(x)
        self._check_dtype(x)
        nat = x.dtype.newbyteorder("=")
        n = x.shape[0] if x.ndim else 1
        nf = int(np.prod(x.shape[1:], dtype=np.int64)) if x.ndim > 1 else 1
        x2 = np.ascontiguousarray(x, dtype=nat).reshape(n, nf)
        mode = "rel" if self.rel_error is not None else "abs"
        if isinstance(self.abs_error, tuple) and len(self.abs_error) != nf:
            raise CodecInputError(f"autoencoder: abs_error has {len(self.abs_error)} values but the array "
                                  f"has {nf} features (shape {x.shape})")
        if n == 0 or nf == 0:
            return self._pack(x, mode, n, nf, 0, 0, None, np.zeros((0, 0), np.uint64), [],
                              np.zeros((n, nf), np.uint64), [], None, np.zeros(0, np.int64))
        latent = min(self.latent, max(nf - 1, 1))
        f, ok = _prepare(x2, mode)
        mean, scale = _stats(f, ok, self.standardize)
        with np.errstate(invalid="ignore", over="ignore"):
            t = (np.where(ok, f, mean) - mean) / scale
        np.clip(t, -_CLIP, _CLIP, out=t)
        t[~ok] = 0.0  # unusable values (non-finite; rel: zeros) enter the net as the mean
        rows = np.flatnonzero(ok.all(axis=1) if mode == "abs" else np.isfinite(x2).all(axis=1))
        if rows.size > self.max_rows_train:
            rows = np.sort(np.random.default_rng(self.seed).choice(rows, self.max_rows_train, replace=False))
        z, w32 = _train(t.astype(np.float32), rows, latent, self.hidden, self.epochs, self.seed)
        layers = tuple((w.astype(np.float64), b.astype(np.float64)) for w, b in w32)
        step, bound = self._steps(x2, nf, mode)
        signed = np.zeros(nf, bool)
        if mode == "rel":
            signed = np.signbit(x2).any(axis=0) & True
        base = dict(mode=_MODES.index(mode), dtype=x.dtype, shape=x.shape, n=n, f=nf, latent=latent,
                    hidden=self.hidden, mean=mean, scale=scale, step=step, signed=signed, layers=layers)
        # candidates: each latent width, and no network at all (predict the mean: the network must pay
        # for its own weights, which it does not on small blocks or features without redundancy)
        cands = _AUTO_BITS if self.latent_bits is None else (self.latent_bits,)
        sub = np.arange(n) if n <= _AUTO_ROWS else np.sort(
            np.random.default_rng(self.seed + 1).choice(n, _AUTO_ROWS, replace=False))
        scale_up = n / sub.size
        weight_bits = 32 * sum(w.size + b.size for w, b in w32) + 128 * latent
        costs = [self._residuals(x2[sub], z[sub], b, base, bound, cost_only=True) * scale_up + weight_bits
                 for b in cands]
        none = {**base, "latent": 0, "hidden": 0, "layers": ()}
        z0 = np.zeros((n, 0))
        if self._residuals(x2[sub], z0[sub], 0, none, bound, cost_only=True) * scale_up <= min(costs):
            lay, zcodes, codes, patches, sign, esc = self._residuals(x2, z0, 0, none, bound)
            return self._pack(x, mode, n, nf, 0, 0, lay, zcodes, [], codes, patches, sign, esc)
        bits = cands[int(np.argmin(costs))]
        lay, zcodes, codes, patches, sign, esc = self._residuals(x2, z, bits, base, bound)
        return self._pack(x, mode, n, nf, latent, bits, lay, zcodes, w32, codes, patches, sign, esc)

    def decode(self, y: BytesLike) -> np.ndarray:
        lay, zcodes, codes, sign, esc_idx, esc_vals = _parse(y)
        nat = lay.dtype.newbyteorder("=")
        if lay.n * lay.f == 0:
            return np.zeros(lay.shape, dtype=lay.dtype)
        out = np.empty((lay.n, lay.f), dtype=nat)
        for s in range(0, lay.n, _ROWS):
            e = min(s + _ROWS, lay.n)
            p = lay.predict(zcodes[s:e])
            out[s:e] = lay.reconstruct(p, codes[s:e], None if sign is None else sign[s:e])
        flat = out.reshape(-1)
        if esc_idx.size:
            flat[esc_idx] = esc_vals.astype(nat)
        return flat.astype(lay.dtype, copy=False).reshape(lay.shape)

    # ---- encoder ----------------------------------------------------------------------------------------
    def _steps(self, x2: np.ndarray, nf: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """Residual bin width per feature (with a margin for the final dtype's rounding) and the bound
        each value is checked against (abs: per feature; rel: a factor of |x|)."""
        dt = x2.dtype
        if mode == "rel":
            r = float(self.rel_error)  # type: ignore[arg-type]
            eps = float(np.finfo(dt).eps)
            margin = eps if r > 4 * eps else 0.0  # one ulp: exp2 may differ in its last bit elsewhere
            r_eff = max(r - 3 * eps, r / 2) * (1 - 2.0**-40)
            h = 2.0 * math.log2(1.0 + r_eff)
            return np.full(nf, h), np.full(nf, r - margin)
        ae = np.broadcast_to(np.asarray(self.abs_error, dtype=np.float64), (nf,)).copy()
        with np.errstate(invalid="ignore", over="ignore"):
            fin = np.where(np.isfinite(x2), np.abs(x2), 0).max(axis=0).astype(dt)
            ulp = np.spacing(fin).astype(np.float64)
        eff = np.maximum(ae - ulp / 2, ae / 2) * (1 - 2.0**-40)
        return 2.0 * eff, ae

    def _residuals(self, x2: np.ndarray, z: np.ndarray, bits: int, base: dict[str, Any],
                   bound: np.ndarray, cost_only: bool = False) -> Any:
        """Latent codes, residual codes, sign bits and escapes for latent width ``bits`` (or the size in
        bits this choice costs, with ``cost_only``)."""
        n, nf = x2.shape
        lat = z.shape[1]
        zmin = np.floor(z.min(axis=0) * _G) / _G  # latents on the decoder's grid: see _forward
        span = z.max(axis=0) - zmin
        levels = float((1 << bits) - 1)
        zstep = np.maximum(np.ceil(span / levels * _G), 1.0) / _G
        zcodes = np.clip(np.rint((z - zmin) / zstep), 0, levels).astype(np.uint32)
        zero = np.zeros(nf, np.int64)
        lay = _Layout(latent_bits=bits, zmin=zmin, zstep=zstep, width=zero, owidth=zero, n_over=zero, **base)
        mode = _MODES[lay.mode]
        esc_bits = 64 + 8 * x2.dtype.itemsize
        codes = np.zeros((n, nf), dtype=np.uint64)
        esc = np.zeros((n, nf), dtype=bool)
        sign = np.signbit(x2) if mode == "rel" and lay.signed.any() else None
        for s in range(0, n, _ROWS):
            e = min(s + _ROWS, n)
            xb = x2[s:e].astype(np.float64)
            p = lay.predict(zcodes[s:e])
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                fin = np.isfinite(xb)
                if mode == "abs":
                    q = np.rint((xb - p) / lay.step)
                else:
                    q = np.rint((np.log2(np.abs(xb)) - p) / lay.step)
                qok = np.isfinite(q) & (np.abs(q) < _MAX_Q)
                qi = np.where(qok, q, 0).astype(np.int64)
                u = _zigzag(qi)
                if mode == "rel":
                    u = u + np.uint64(1)
                    u[xb == 0] = 0
                    qok |= xb == 0
                back = lay.reconstruct(p, u, None if sign is None else sign[s:e]).astype(np.float64)
                d = np.abs(back - xb)
                ok = d <= (bound * np.abs(xb) if mode == "rel" else bound)
            bad = ~(fin & qok & ok)
            u[bad] = 0
            codes[s:e] = u
            esc[s:e] = bad
        ww = np.array([_choose_width(codes[:, j], esc[:, j]) for j in range(nf)], np.int64).reshape(nf, 2)
        width, owidth = ww[:, 0], ww[:, 1]
        patches = []  # per feature: rows whose code is wider than the width, and those codes
        for j in range(nf):  # a loop over features
            rows = np.flatnonzero(codes[:, j] >> np.uint64(width[j]))
            patches.append((rows, codes[rows, j].copy()))
            codes[rows, j] = 0
        n_over = np.array([r.size for r, _ in patches], np.int64)
        n_esc = int(np.count_nonzero(esc))
        if cost_only and self.target == "zstd":  # measured: the code streams through zstd
            from hepslim.codecs.lossless import Zstd

            lay = dataclasses.replace(lay, width=width, owidth=owidth, n_over=n_over)
            streams = b"".join(_code_streams(lay, zcodes, codes, patches, sign))
            return 8 * len(Zstd(level=3).encode(streams)) + n_esc * esc_bits
        if cost_only:
            return (n * (lat * bits + int(width.sum()) + int(lay.signed.sum())) + n_esc * esc_bits
                    + int(np.sum(n_over * (bit_width(n - 1) + owidth))))
        lay = dataclasses.replace(lay, width=width, owidth=owidth, n_over=n_over)
        return lay, zcodes, codes, patches, sign, np.flatnonzero(esc.reshape(-1))

    def _pack(self, x: np.ndarray, mode: str, n: int, nf: int, latent: int, bits: int, lay: _Layout | None,
              zcodes: np.ndarray, w32: list[tuple[np.ndarray, np.ndarray]], codes: np.ndarray,
              patches: list[tuple[np.ndarray, np.ndarray]], sign: np.ndarray | None, esc: np.ndarray) -> bytes:
        parts = [_HEAD.pack(MAGIC, VERSION, _MODES.index(mode), 0,
                            x.dtype.str.encode("ascii").ljust(4, b"\0"), x.ndim),
                 struct.pack(f"<{x.ndim}Q", *x.shape),
                 _DIMS.pack(n, nf, latent, self.hidden if latent else 0, bits, esc.size)]
        if lay is None:
            return b"".join(parts)
        for j in range(nf):
            parts.append(_FEAT.pack(lay.mean[j], lay.scale[j], lay.step[j], int(lay.width[j]),
                                    int(lay.signed[j]), int(lay.owidth[j]), int(lay.n_over[j])))
        for k in range(latent):
            parts.append(_LAT.pack(lay.zmin[k], lay.zstep[k]))
        for w, b in w32:
            parts.append(w.astype("<f4").tobytes())
            parts.append(b.astype("<f4").tobytes())
        parts += _code_streams(lay, zcodes, codes, patches, sign)
        xn = np.ascontiguousarray(x).reshape(-1)
        parts.append(esc.astype("<u8").tobytes())
        parts.append(xn[esc].tobytes())
        return b"".join(parts)


def _parse(y: BytesLike) -> tuple[_Layout, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Layout, latent codes (n x latent), residual codes (n x f), sign bits, escape indices and values."""
    buf = as_buffer(y)
    nbytes = buf.nbytes
    raw = np.frombuffer(buf, dtype=np.uint8)

    def need(pos: int, k: int, what: str) -> None:
        if pos + k > nbytes:
            raise CorruptDataError(f"autoencoder: block of {nbytes} bytes is truncated ({what})")

    need(0, _HEAD.size, "header")
    magic, version, mode, _flags, dts, ndim = _HEAD.unpack_from(buf, 0)
    dtype = check_codec_header("autoencoder", magic, MAGIC, version, VERSION, dts)
    if mode >= len(_MODES):
        raise CorruptDataError(f"autoencoder: bad mode {mode} in header")
    pos = _HEAD.size
    need(pos, 8 * ndim + _DIMS.size, "shape")
    shape = tuple(int(s) for s in struct.unpack_from(f"<{ndim}Q", buf, pos))
    pos += 8 * ndim
    n, nf, latent, hidden, bits, n_esc = _DIMS.unpack_from(buf, pos)
    pos += _DIMS.size
    size = int(np.prod(shape, dtype=np.int64))
    if n * nf != size or bits > 24 or n_esc > size:
        raise CorruptDataError(f"autoencoder: header is inconsistent (shape {shape}, {n} x {nf})")
    empty = np.zeros((n, 0), np.uint64)
    if size == 0:
        if pos != nbytes:
            raise CorruptDataError("autoencoder: trailing bytes after an empty block")
        z0 = np.zeros(0)
        i0 = np.zeros(0, np.int64)
        lay = _Layout(mode, dtype, shape, n, nf, 0, 0, 0, mean=z0, scale=z0, step=z0, width=i0, owidth=i0,
                      n_over=i0, signed=np.zeros(0, bool), zmin=z0, zstep=z0, layers=())
        return lay, empty, np.zeros((n, nf), np.uint64), None, np.zeros(0, np.int64), np.zeros(0, dtype)
    no_net = latent == 0 and hidden == 0 and bits == 0  # a block stored without a network
    if not no_net and (not 1 <= latent <= min(max(nf - 1, 1), _MAX_WIDTH) or not 1 <= hidden <= _MAX_WIDTH
                       or bits < 1):
        raise CorruptDataError(f"autoencoder: bad dimensions (latent {latent}, hidden {hidden}, bits {bits})")
    need(pos, nf * _FEAT.size + latent * _LAT.size, "per-feature parameters")
    feats = [_FEAT.unpack_from(buf, pos + j * _FEAT.size) for j in range(nf)]
    pos += nf * _FEAT.size
    lats = [_LAT.unpack_from(buf, pos + k * _LAT.size) for k in range(latent)]
    pos += latent * _LAT.size
    mean, scale, step = (np.array([ft[i] for ft in feats], np.float64) for i in range(3))
    width = np.array([ft[3] for ft in feats], np.int64)
    signed = np.array([ft[4] for ft in feats], bool)
    owidth = np.array([ft[5] for ft in feats], np.int64)
    n_over = np.array([ft[6] for ft in feats], np.int64)
    if (width > 64).any() or (owidth > 64).any() or (n_over > n).any() or (n_over < 0).any():
        raise CorruptDataError("autoencoder: bad residual widths or patch counts")
    layers = []
    for a, b in ((latent, hidden), (hidden, hidden), (hidden, nf)) if not no_net else ():
        need(pos, 4 * (a * b + b), "decoder weights")
        w = raw[pos : pos + 4 * a * b].view("<f4").reshape(a, b).astype(np.float64)
        pos += 4 * a * b
        bias = raw[pos : pos + 4 * b].view("<f4").astype(np.float64)
        pos += 4 * b
        layers.append((w, bias))
    zmin = np.array([lt[0] for lt in lats], np.float64)
    zstep = np.array([lt[1] for lt in lats], np.float64)
    # the decoder is exact only on its fixed-point grid (see _forward): refuse anything else
    grid_ok = _on_grid(zmin, 2 * _A_MAX) and _on_grid(zstep, 4 * _A_MAX) and all(
        _on_grid(w, _W_MAX) and _on_grid(b, _B_MAX) for w, b in layers)
    if not grid_ok or not (np.isfinite(mean).all() and np.isfinite(scale).all() and np.isfinite(step).all()):
        raise CorruptDataError("autoencoder: decoder parameters are off their fixed-point grid or not finite")
    lay = _Layout(mode, dtype, shape, n, nf, latent, hidden, bits, mean=mean, scale=scale, step=step,
                  width=width, owidth=owidth, n_over=n_over, signed=signed, zmin=zmin, zstep=zstep,
                  layers=tuple(layers))
    iw = bit_width(n - 1)
    rest = latent * packed_nbytes(n, bits) + int(signed.sum()) * packed_nbytes(n, 1) \
        + sum(packed_nbytes(n, int(w)) + packed_nbytes(int(k), iw) + packed_nbytes(int(k), int(o))
              for w, k, o in zip(width, n_over, owidth)) + n_esc * (8 + dtype.itemsize)
    if nbytes != pos + rest:
        raise CorruptDataError(f"autoencoder: block is {nbytes} bytes, its header says {pos + rest}")
    zcodes = np.empty((n, latent), np.uint64)
    for k in range(latent):
        m = packed_nbytes(n, bits)
        zcodes[:, k] = unpack_bits(raw[pos : pos + m], bits, n)
        pos += m
    codes = np.empty((n, nf), np.uint64)
    for j in range(nf):
        m = packed_nbytes(n, int(width[j]))
        codes[:, j] = unpack_bits(raw[pos : pos + m], int(width[j]), n)
        pos += m
        k = int(n_over[j])
        m = packed_nbytes(k, iw)
        rows = unpack_bits(raw[pos : pos + m], iw, k).astype(np.int64)
        pos += m
        m = packed_nbytes(k, int(owidth[j]))
        if k and rows.max() >= n:
            raise CorruptDataError("autoencoder: patch row out of range")
        codes[rows, j] = unpack_bits(raw[pos : pos + m], int(owidth[j]), k)
        pos += m
    sign = None
    if signed.any():
        sign = np.zeros((n, nf), bool)
        for js in np.flatnonzero(signed):
            m = packed_nbytes(n, 1)
            sign[:, js] = unpack_bits(raw[pos : pos + m], 1, n).astype(bool)
            pos += m
    esc_idx = raw[pos : pos + 8 * n_esc].view("<u8").astype(np.int64)
    pos += 8 * n_esc
    esc_vals = raw[pos:].view(dtype)
    if esc_idx.size and (esc_idx.min() < 0 or esc_idx.max() >= size):
        raise CorruptDataError("autoencoder: escape index out of range")
    return lay, zcodes, codes, sign, esc_idx, esc_vals
