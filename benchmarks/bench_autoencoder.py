"""The learned ``autoencoder`` codec against the hand-made ones, side by side, at the same error bound.

Data (rows x features, float32):

* ``jets``: jet (pt, eta, phi, mass) rows from a quick numpy generator with realistic shapes and the one
  strong correlation (mass ~ 5-20% of pt; pt falling spectrum, eta central, phi flat);
* ``constituents``: jet constituents (px, py, pz, E) of Pythia8 top jets (hepslim.samples ``jetclass``,
  generated on the fly, or ``--jetclass FILE``): E ~ |p|, 4 features with ~3 degrees of freedom.

Codecs, all with ``|x' - x| <= abs_error`` per column (the same bound for every lossy row):

* ``autoencoder`` (whole matrix; alone and followed by zstd);
* ``quantize`` linear, per column (alone and + zstd);
* ``mantissa`` + bytestreamsplit + zstd per column, keepbits chosen per column so that the *relative*
  bound times the column's largest |x| is within abs_error (the same abs guarantee);
* lossless: bytestreamsplit + zstd and plain zstd (upper reference).

Reports bytes per row, ratio to raw float32, encode and decode CPU seconds (process time, one thread, so a
busy machine disturbs the figures less; the autoencoder's encode includes training).

    python benchmarks/bench_autoencoder.py [--rows 200000] [--jets 1000] [--epochs 20] [--jetclass F] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from hepslim.codecs.autoencoder import Autoencoder, _parse  # noqa: E402
from hepslim.pipeline import Pipeline  # noqa: E402


def toy_jets(n: int, seed: int = 0) -> np.ndarray:
    """(pt, eta, phi, mass): pt ~ 30 GeV + Pareto tail, eta ~ N(0, 1.6) cut at 4.7, phi flat,
    mass = pt * (0.05 .. 0.25, larger at high pt), float32 like NanoAOD."""
    rng = np.random.default_rng(seed)
    pt = 30.0 * (1.0 + rng.pareto(3.0, n))
    eta = rng.normal(0.0, 1.6, n)
    eta = np.where(np.abs(eta) > 4.7, rng.uniform(-4.7, 4.7, n), eta)
    phi = rng.uniform(-np.pi, np.pi, n)
    frac = rng.beta(2.0, 8.0, n) * (1 + 0.3 * np.log(pt / 30.0))
    mass = pt * np.clip(frac, 0.01, 0.6)
    return np.stack([pt, eta, phi, mass], axis=1).astype(np.float32)


def constituents(path: str | None, n_jets: int, seed: int) -> np.ndarray:
    """(px, py, pz, E) of every constituent of ``n_jets`` Pythia8 top jets (or of the jets in ``path``)."""
    import awkward as ak

    if path is None:
        from hepslim.samples import generate

        path = os.path.join(tempfile.mkdtemp(prefix="hepslim-bench-ae-"), "top.parquet")
        t = time.perf_counter()
        generate("jetclass", n_jets, path, seed=seed, process="top")
        print(f"(generated {n_jets} Pythia8 top jets in {time.perf_counter() - t:.0f} s)", file=sys.stderr)
    a = ak.from_parquet(path, columns=["part_px", "part_py", "part_pz", "part_energy"])
    cols = [ak.to_numpy(ak.flatten(a[f])) for f in ("part_px", "part_py", "part_pz", "part_energy")]
    return np.stack(cols, axis=1).astype(np.float32)


def mantissa_bits(col: np.ndarray, abs_error: float) -> int:
    """Fewest kept bits with 2**-(k+1) * max|x| <= abs_error (nearest rounding): the same abs bound."""
    m = float(np.max(np.abs(col[np.isfinite(col)]))) if col.size else 0.0
    if m == 0.0:
        return 1
    return int(min(23, max(1, math.ceil(math.log2(m / abs_error)) - 1)))


def timed(f: Any) -> tuple[float, Any]:
    t = time.process_time()
    r = f()
    return time.process_time() - t, r


def per_column(x: np.ndarray, configs: list[list[dict[str, Any]]]) -> dict[str, Any]:
    pipes = [Pipeline.from_configs(c) for c in configs]
    cols = [np.ascontiguousarray(x[:, j]) for j in range(x.shape[1])]
    te, enc = timed(lambda: [p.encode(c) for p, c in zip(pipes, cols)])
    td, dec = timed(lambda: [p.decode(e) for p, e in zip(pipes, enc)])
    err = max(float(np.max(np.abs(d.astype(np.float64) - c))) if c.size else 0.0 for d, c in zip(dec, cols))
    return {"bytes": sum(len(e) for e in enc), "encode_s": te, "decode_s": td, "max_abs_err": err}


def run(name: str, x: np.ndarray, bounds: list[float], epochs: int, latent: int) -> list[dict[str, Any]]:
    n, nf = x.shape
    rows: list[dict[str, Any]] = []

    def add(codec: str, r: dict[str, Any], note: str = "") -> None:
        rows.append({"data": name, "codec": codec, "rows": n, "bytes_per_row": r["bytes"] / n,
                     "ratio": x.nbytes / r["bytes"], "encode_s": r["encode_s"], "decode_s": r["decode_s"],
                     "max_abs_err": r["max_abs_err"], "note": note})

    ae = Autoencoder(abs_error=bounds, latent=latent, hidden=32, epochs=epochs, seed=0)
    te, data = timed(lambda: ae.encode(x))
    td, y = timed(lambda: ae.decode(data))
    lay, _, _, _, esc, _ = _parse(data)
    err = float(np.max(np.abs(y.astype(np.float64) - x)))
    net = (f"latent {lay.latent}x{lay.latent_bits} bits, decoder {4 * sum(w.size + b.size for w, b in lay.layers)} B"
           if lay.latent else "no network (it did not pay for itself)")
    note = f"{net}, residual widths {lay.width.tolist()}, {int(lay.n_over.sum())} patches, {esc.size} escapes"
    add(f"autoencoder (latent {latent})", {"bytes": len(data), "encode_s": te, "decode_s": td,
                                           "max_abs_err": err}, note)
    zs = Pipeline.from_configs([{"id": "zstd", "level": 9}])
    t2, z = timed(lambda: zs.encode(np.frombuffer(data, np.uint8)))
    add("autoencoder + zstd", {"bytes": len(z), "encode_s": te + t2, "decode_s": td, "max_abs_err": err})
    q = [[{"id": "quantize", "abs_error": b}] for b in bounds]
    add("quantize (per column)", per_column(x, q))
    add("quantize + zstd", per_column(x, [[*c, {"id": "zstd", "level": 9}] for c in q]))
    ks = [mantissa_bits(x[:, j], b) for j, b in enumerate(bounds)]
    add("mantissa+bss+zstd", per_column(x, [[{"id": "mantissa", "keepbits": k}, {"id": "bytestreamsplit"},
                                             {"id": "zstd", "level": 9}] for k in ks]),
        f"keepbits {ks}")
    add("bss+zstd (lossless)", per_column(x, [[{"id": "bytestreamsplit"}, {"id": "zstd", "level": 9}]] * nf))
    add("zstd (lossless)", per_column(x, [[{"id": "zstd", "level": 9}]] * nf))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="toy jet rows")
    ap.add_argument("--jets", type=int, default=1000, help="Pythia8 top jets for the constituents data")
    ap.add_argument("--jetclass", help="use this jetclass parquet instead of generating")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    a = ap.parse_args(argv)
    rows = run("jets (pt,eta,phi,m)", toy_jets(a.rows), [0.05, 1e-3, 1e-3, 0.05], a.epochs, latent=3)
    if a.jets > 0 or a.jetclass:
        x = constituents(a.jetclass, a.jets, seed=1)
        rows += run("constituents (px,py,pz,E)", x, [0.01] * 4, a.epochs, latent=3)
    if a.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("bound per column: jets pt,m 0.05 GeV, eta,phi 1e-3; constituents 0.01 GeV. raw float32 = 16 B/row")
    print(f"{'data':26s} {'codec':26s} {'rows':>7s} {'B/row':>7s} {'ratio':>6s} {'enc cpu s':>10s} {'dec cpu s':>9s} "
          f"{'max err':>8s}  note")
    for r in rows:
        print(f"{r['data']:26s} {r['codec']:26s} {r['rows']:7d} {r['bytes_per_row']:7.3f} {r['ratio']:6.2f} "
              f"{r['encode_s']:10.2f} {r['decode_s']:9.3f} {r['max_abs_err']:8.2g}  {r['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
