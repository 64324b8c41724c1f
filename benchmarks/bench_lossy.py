"""Lossy codecs alone: best-of-5 one-core CPU-time MB/s of ``mantissa`` and ``quantize`` on 100 MB of
float32 per distribution (pT-like exponential, eta-like normal, phi uniform), with the ratio and the
number of escapes (quantize). CPU time, not wall time, so a busy machine disturbs the figures less.

    OMP_NUM_THREADS=1 python benchmarks/bench_lossy.py [n_values]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from hepslim.codecs.mantissa import Mantissa  # noqa: E402
from hepslim.codecs.quantize import Quantize, _parse  # noqa: E402


def best(f: Callable[[], Any], k: int = 5) -> tuple[float, Any]:
    ts, r = [], None
    for _ in range(k):
        t = time.process_time()
        r = f()
        ts.append(time.process_time() - t)
    return min(ts), r


def main(n: int = 25_000_000) -> None:
    rng = np.random.default_rng(0)
    data = {"pt(exp)": rng.exponential(30, n).astype(np.float32),
            "eta(normal)": rng.normal(0, 2, n).astype(np.float32),
            "phi(uniform)": rng.uniform(-np.pi, np.pi, n).astype(np.float32)}
    cases: list[tuple[str, Any, str | None]] = [
        ("mantissa k=10", Mantissa(10), None),
        ("mantissa k=10 trunc", Mantissa(10, "truncate"), None),
        ("quantize log 1e-3", Quantize(mode="log", rel_error=1e-3), "pt(exp)"),
        ("quantize linear 1e-3", Quantize(abs_error=1e-3), "eta(normal)"),
        ("quantize linear [-5,5] esc",
         Quantize(abs_error=1e-3, min=-5, max=5, out_of_range="escape"), "eta(normal)"),
        ("quantize angle 1e-3", Quantize(mode="angle", abs_error=1e-3), "phi(uniform)"),
        ("quantize angle 1e-3 bytes", Quantize(mode="angle", abs_error=1e-3, pack="bytes"), "phi(uniform)"),
        ("quantize angle 1e-3 dither",
         Quantize(mode="angle", abs_error=1e-3, dither=True, seed=1), "phi(uniform)"),
    ]
    print(f"{n * 4 / 1e6:g} MB of float32 per distribution")
    print(f"{'codec':30s} {'data':13s} {'enc MB/s':>9s} {'dec MB/s':>9s} {'apply MB/s':>10s} "
          f"{'ratio':>6s} {'escapes':>8s}")
    for name, c, only in cases:
        for dname, x in data.items():
            if only and dname != only:
                continue
            te, enc = best(lambda: c.encode(x))
            mb = x.nbytes / 1e6
            if isinstance(enc, bytes):  # quantize: the serializer
                td = best(lambda: c.decode(enc))[0]
                ta = best(lambda: c.apply_values(x))[0]
                cols = f"{mb / td:9.0f} {mb / ta:10.0f} {x.nbytes / len(enc):6.2f} {_parse(enc)[2].size:8d}"
            else:  # mantissa: decode is the identity; the gain comes from the compressor after it
                cols = f"{'identity':>9s} {'-':>10s} {'-':>6s} {'-':>8s}"
            print(f"{name:30s} {dname:13s} {mb / te:9.0f} {cols}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 25_000_000)
