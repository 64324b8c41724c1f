"""Codec throughput and ratio, side by side in one run, on realistic float32 and int32 arrays.

Every codec is measured on the same arrays as the baselines (memcpy, raw zstd-3, blosc-lz4), single
threaded, best of N repetitions. Usage::

    python benchmarks/bench_codecs.py [--mb 100] [--repeat 3] [--json]

Figures are MB/s of uncompressed input (1 MB = 1e6 bytes) and ratio = input bytes / encoded bytes.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hepslim.pipeline import Pipeline


def make_arrays(mb: float, seed: int = 1) -> dict[str, np.ndarray]:
    n = int(mb * 1e6 / 4)
    rng = np.random.default_rng(seed)
    third = n // 3
    floats = np.concatenate(
        [
            rng.exponential(30.0, third) + 15.0,  # pT-like (GeV), falling spectrum above a threshold
            rng.normal(0.0, 1.6, third).clip(-4.7, 4.7),  # eta-like
            rng.uniform(-np.pi, np.pi, n - 2 * third),  # phi, uniform
        ]
    ).astype(np.float32)
    # index arrays: per-event object indices into a collection (small, sorted within events) and
    # cumulative offsets (sorted counters)
    counts = rng.poisson(8, n // 8 + 1)
    idx = (np.arange(n) % 11).astype(np.int32)
    offsets = np.cumsum(counts)[: n].astype(np.int32)
    ints = np.concatenate([idx[: n // 2], offsets[: n - n // 2]])
    return {"float32 (pT/eta/phi)": floats, "int32 (indices/offsets)": ints}


def timeit(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


FLOAT_CHAINS: dict[str, list] = {
    "memcpy (baseline)": None,  # type: ignore[dict-item]
    "zstd-3 (baseline)": [{"id": "zstd", "level": 3}],
    "blosc-lz4 (baseline)": [{"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": "byte"}],
    "lz4": [{"id": "lz4"}],
    "zlib-6": [{"id": "zlib", "level": 6}],
    "bytestreamsplit+zstd-3": [{"id": "bytestreamsplit"}, {"id": "zstd", "level": 3}],
    "mantissa-10 (alone)": [{"id": "mantissa", "keepbits": 10}],
    "mantissa-10+bitshuffle+zstd": [
        {"id": "mantissa", "keepbits": 10},
        {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": "bit", "typesize": 4},
    ],
    "mantissa-10+bytestreamsplit+zstd-3": [
        {"id": "mantissa", "keepbits": 10}, {"id": "bytestreamsplit"}, {"id": "zstd", "level": 3}
    ],
    "mantissa-10 keep_repeated=8 (alone)": [{"id": "mantissa", "keepbits": 10, "keep_repeated": 8}],
    "quantize linear 1e-3 (alone)": [{"id": "quantize", "mode": "linear", "abs_error": 1e-3}],
    "quantize log 1e-3 (alone)": [{"id": "quantize", "mode": "log", "rel_error": 1e-3}],
    "quantize log 1e-3+zstd-3": [{"id": "quantize", "mode": "log", "rel_error": 1e-3}, {"id": "zstd", "level": 3}],
}
ANGLE_CHAINS = {
    "quantize angle 1e-3 (alone)": [{"id": "quantize", "mode": "angle", "abs_error": 1e-3}],
}
INT_CHAINS: dict[str, list] = {
    "memcpy (baseline)": None,  # type: ignore[dict-item]
    "zstd-3 (baseline)": [{"id": "zstd", "level": 3}],
    "blosc-lz4 (baseline)": [{"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": "byte"}],
    "bitpack": [{"id": "bitpack"}],
    "delta+bitpack": [{"id": "delta"}, {"id": "bitpack"}],
    "delta+bitpack+zstd-3": [{"id": "delta"}, {"id": "bitpack"}, {"id": "zstd", "level": 3}],
    "delta+zstd-3": [{"id": "delta"}, {"id": "zstd", "level": 3}],
}


def run_chain(name: str, chain, x: np.ndarray, repeat: int) -> dict:
    if chain is None:
        buf = np.empty_like(x)
        t = timeit(lambda: np.copyto(buf, x), repeat)
        return {"codec": name, "encode_MBps": x.nbytes / t / 1e6, "decode_MBps": x.nbytes / t / 1e6, "ratio": 1.0}
    try:
        pipe = Pipeline.from_configs(chain)
    except KeyError as exc:  # a codec that is not installed: say so in the table
        return {"codec": f"{name} [n/a: {exc}]", "encode_MBps": float("nan"), "decode_MBps": float("nan"),
                "ratio": float("nan"), "encode_s": float("nan")}
    enc = pipe.encode(x)
    te = timeit(lambda: pipe.encode(x), repeat)
    td = timeit(lambda: pipe.decode(enc), repeat)
    return {
        "codec": name,
        "encode_MBps": x.nbytes / te / 1e6,
        "decode_MBps": x.nbytes / td / 1e6,
        "ratio": x.nbytes / len(enc),
        "encode_s": te,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="size of each test array in MB")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    arrays = make_arrays(args.mb)
    floats, ints = arrays["float32 (pT/eta/phi)"], arrays["int32 (indices/offsets)"]
    phi = floats[2 * (floats.size // 3):]
    results: dict[str, list] = {}
    results["float32 (pT/eta/phi)"] = [run_chain(k, v, floats, args.repeat) for k, v in FLOAT_CHAINS.items()]
    results["float32 phi only"] = [run_chain(k, v, phi, args.repeat) for k, v in ANGLE_CHAINS.items()]
    results["int32 (indices/offsets)"] = [run_chain(k, v, ints, args.repeat) for k, v in INT_CHAINS.items()]
    # LZMA is ~100x slower: measured on a 10 MB slice, said so in the name
    sl = floats[: min(floats.size, 2_500_000)]
    results["float32 (pT/eta/phi)"].append(run_chain("lzma-9 (10 MB slice)", [{"id": "lzma", "preset": 9}], sl, 1))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for group, rows in results.items():
        print(f"\n### {group}, {args.mb:g} MB per array, one core\n")
        print("| codec | encode MB/s | decode MB/s | ratio |")
        print("|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['codec']} | {r['encode_MBps']:.0f} | {r['decode_MBps']:.0f} | {r['ratio']:.2f} |")
    rows = {r["codec"]: r for r in results["float32 (pT/eta/phi)"]}
    t_pipe = rows["mantissa-10+bitshuffle+zstd"]["encode_s"]
    t_zstd = rows["zstd-3 (baseline)"]["encode_s"]
    print(f"\nmantissa+bitshuffle+zstd encode time / raw zstd-3 encode time = {t_pipe / t_zstd:.2f}x")


if __name__ == "__main__":
    main()
