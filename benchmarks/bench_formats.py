"""Containers side by side: bytes/event and throughput for each shipped spec in ROOT, Parquet and Zarr.

    python benchmarks/bench_formats.py [--shared] [--synthetic N] [--jetclass N] [--out DIR] [--json]

For every input: the original file, lossless rewrites (ROOT ZSTD-9 and ROOT LZMA-9, NanoAOD's production
setting) and the applicable shipped spec in every container/mode, with compress and read throughput in MB/s
of *uncompressed* data (the in-memory size of the branches: values + 4-byte counters). ``--synthetic N``
builds a large NanoAOD-like sample by resampling whole events of the shared ``nano_tt_v12.root`` (654
branches) with replacement, jittering each float by 1% (additively for angles) and re-rounding it to the
mantissa precision that branch has in the real file (production NanoAOD rounding), clipped to the branch's
observed range; integers, flags and counters are taken from the resampled events unchanged. On samples
above 20 000 events the LZMA-9 reference is measured on the first 20 000 (LZMA-9 runs at ~1 MB/s) and its
bytes/event scaled to the whole sample.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import hepslim
from hepslim.io import compress

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
COMBOS = [("root", "transparent"), ("parquet", "transparent"), ("parquet", "packed"),
          ("zarr", "transparent"), ("zarr", "packed")]
EXT = {"root": ".root", "parquet": ".parquet", "zarr": ".zarr"}


def _spec_file(out: Path, name: str, algorithm: str, level: int) -> Path:
    p = out / f"{name}.yaml"
    p.write_text(f"name: {name}\nextends: lossless\ncompression:\n  root: {{algorithm: {algorithm}, level: {level}}}\n")
    return p


def _mantissa_bits(x: np.ndarray) -> int:
    """Mantissa bits actually used by float32 values (production NanoAOD rounds many to 10-12)."""
    v = x[np.isfinite(x) & (x != 0)].astype(np.float32).view(np.uint32) & 0x7FFFFF
    if v.size == 0:
        return 23
    tz = np.zeros(v.shape, np.int64)
    w = v.copy()
    for _ in range(23):
        z = (w & 1) == 0
        z &= w != 0
        tz += z
        w = np.where(z, w >> 1, w)
    tz[v == 0] = 23
    return int(23 - tz.min())


def _round_bits(x: np.ndarray, bits: int) -> np.ndarray:
    if bits >= 23:
        return x
    u = x.astype(np.float32).view(np.uint32)
    drop = 23 - bits
    half = np.uint32(1 << (drop - 1))
    mask = np.uint32(0xFFFFFFFF ^ ((1 << drop) - 1))
    r = ((u + half) & mask).view(np.float32)
    return np.where(np.isfinite(x), r, x)


def make_nano_like(template: Path, n: int, out: Path, seed: int = 1, chunk: int = 20000) -> Path:
    """A large NanoAOD-like ROOT file (LZMA-9, like production) resampled from a real NanoAOD template."""
    import awkward as ak
    import uproot

    t = uproot.open(template)["Events"].arrays()
    rng = np.random.default_rng(seed)
    info = {}
    for f in t.fields:
        flat = np.asarray(ak.flatten(t[f], axis=None))
        if flat.dtype.kind == "f" and flat.size:
            fin = flat[np.isfinite(flat)]
            info[f] = (_mantissa_bits(flat), float(fin.min()) if fin.size else 0.0, float(fin.max()) if fin.size else 0.0)

    def chunks():
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            idx = rng.integers(0, len(t), m)
            ev = t[idx]
            cols = {}
            for f in t.fields:
                col = ev[f]
                if f in info:
                    bits, lo, hi = info[f]
                    flat = np.asarray(ak.flatten(col, axis=None)).astype(np.float32)
                    if f.endswith("phi"):
                        y = flat + rng.uniform(-0.01, 0.01, flat.size).astype(np.float32)
                        y = np.where(y > np.pi, y - 2 * np.pi, np.where(y <= -np.pi, y + 2 * np.pi, y))
                    else:
                        y = flat * (1 + rng.uniform(-0.01, 0.01, flat.size)).astype(np.float32)
                    y = np.clip(_round_bits(y.astype(np.float32), bits), lo, hi).astype(np.float32)
                    y = np.where(np.isfinite(flat), y, flat)
                    col = ak.unflatten(y, ak.num(col)) if col.ndim > 1 else y
                cols[f] = col
            if "event" in cols:
                cols["event"] = np.arange(start, start + m, dtype=np.uint64)
            yield ak.zip(cols, depth_limit=1)

    spec = _spec_file(out.parent, "lossless-zstd9", "ZSTD", 9)
    hepslim.write(chunks(), out, spec=spec, format="root", force=True)
    return out


def _head(src: Path, k: int, work: Path) -> Path:
    """The first ``k`` events of ``src`` (for the slow LZMA-9 reference on large samples)."""
    out = work / f"{src.stem}.first{k}.root"
    ev = hepslim.open(src)[:k]
    hepslim.write(ev, out, spec=_spec_file(work, "lossless-zstd9", "ZSTD", 9), format="root", force=True)
    return out


def bench_file(src: Path, specs: list[str], work: Path, ref_specs: dict[str, Path],
               lzma_events: int = 20000) -> dict[str, Any]:
    n = hepslim.io.select_format(src).num_entries(str(src))
    rows = [{"variant": "original", "container": "root", "mode": "-", "bytes": src.stat().st_size}]
    raw = None
    for label, spec in ref_specs.items():
        sub, m = src, n
        if label == "lzma-9" and n > lzma_events:  # LZMA-9 runs at ~1 MB/s: measured on the first events
            sub, m = _head(src, lzma_events, work), lzma_events
        out = work / f"{src.stem}.{label}.root"
        t0 = time.perf_counter()
        rep = compress(sub, out, spec=spec, format="root", force=True, progress=False)
        dt = time.perf_counter() - t0
        if sub is src:
            raw = rep.raw_bytes
        rows.append({"variant": label if m == n else f"{label} ({m} ev)", "container": "root",
                     "mode": "transparent", "bytes": rep.output_bytes * n / m,
                     "write_MBps": rep.raw_bytes / dt / 1e6})
    for spec in specs:
        for fmt, mode in COMBOS:
            out = work / f"{src.stem}.{spec}.{mode}{EXT[fmt]}"
            t0 = time.perf_counter()
            try:
                rep = compress(src, out, spec=spec, format=fmt, mode=mode, force=True, progress=False)
            except hepslim.HepslimError as exc:
                rows.append({"variant": spec, "container": fmt, "mode": mode, "error": str(exc)[:200]})
                continue
            dt = time.perf_counter() - t0
            t0 = time.perf_counter()
            hepslim.open(out)
            dr = time.perf_counter() - t0
            rows.append({"variant": spec, "container": fmt, "mode": mode, "bytes": rep.output_bytes,
                         "write_MBps": rep.raw_bytes / dt / 1e6, "read_MBps": rep.raw_bytes / dr / 1e6})
    lzma = next((r["bytes"] for r in rows if r["variant"].startswith("lzma-9")), None)
    zstd = next((r["bytes"] for r in rows if r["variant"] == "zstd-9"), None)
    for r in rows:
        if "bytes" in r:
            r["bytes_per_event"] = r["bytes"] / n
            r["vs_lzma9"] = lzma / r["bytes"] if lzma else None
            r["vs_zstd9"] = zstd / r["bytes"] if zstd else None
    return {"file": src.name, "events": n, "raw_bytes_per_event": (raw or 0) / n, "rows": rows}


def _specs_for(path: Path) -> list[str]:
    name = path.name.lower()
    if "pfnano" in name:
        return ["pfnano"]
    if "jetclass" in name:
        return ["jetclass"]
    if "nano" in name or "rntuple" in name:
        return ["nanoaod"]
    return ["lossless"]


def print_table(res: dict[str, Any]) -> None:
    print(f"\n{res['file']}: {res['events']} events, {res['raw_bytes_per_event']:.0f} B/event uncompressed")
    print(f"  {'variant':<14} {'container':<8} {'mode':<12} {'B/event':>9} {'vs LZMA-9':>9} {'vs ZSTD-9':>9} "
          f"{'write MB/s':>10} {'read MB/s':>9}")
    for r in res["rows"]:
        if "error" in r:
            print(f"  {r['variant']:<14} {r['container']:<8} {r['mode']:<12} error: {r['error']}")
            continue
        f = lambda k, fmt: format(r[k], fmt) if r.get(k) else "-"  # noqa: E731
        print(f"  {r['variant']:<14} {r['container']:<8} {r['mode']:<12} {r['bytes_per_event']:>9.0f} "
              f"{f('vs_lzma9', '>8.2f')}x {f('vs_zstd9', '>8.2f')}x {f('write_MBps', '>10.1f')} {f('read_MBps', '>9.1f')}")


def markdown(results: list[dict[str, Any]]) -> str:
    """The results as Markdown tables (for BENCHMARKS.md)."""
    out = []
    for res in results:
        out.append(f"**{res['file']}** — {res['events']} events, {res['raw_bytes_per_event']:.0f} B/event "
                   "uncompressed\n")
        out.append("| variant | container | mode | B/event | vs LZMA-9 | vs ZSTD-9 | write MB/s | read MB/s |")
        out.append("|---|---|---|---:|---:|---:|---:|---:|")
        for r in res["rows"]:
            if "error" in r:
                out.append(f"| {r['variant']} | {r['container']} | {r['mode']} | error: {r['error'][:80]} | | | | |")
                continue

            def f(k: str, fmt: str, r: dict[str, Any] = r) -> str:
                return format(r[k], fmt) if r.get(k) else "–"

            out.append(f"| {r['variant']} | {r['container']} | {r['mode']} | {r['bytes_per_event']:.0f} | "
                       f"{f('vs_lzma9', '.2f')}× | {f('vs_zstd9', '.2f')}× | {f('write_MBps', '.1f')} | "
                       f"{f('read_MBps', '.1f')} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", action="store_true", help="the .root files of ../shared/data")
    ap.add_argument("--synthetic", type=int, default=0, help="events of the NanoAOD-like sample (0: none)")
    ap.add_argument("--jetclass", type=int, default=0, help="jets per class of a generated jetclass sample")
    ap.add_argument("--file", action="append", default=[], help="any other input file")
    ap.add_argument("--out", default=None, help="work directory (default: temporary)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--markdown", default=None, metavar="JSON", help="render a --json result file as Markdown")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    work = Path(args.out or tempfile.mkdtemp(prefix="hepslim-bench-formats-"))
    work.mkdir(parents=True, exist_ok=True)
    refs = {"zstd-9": _spec_file(work, "lossless-zstd9", "ZSTD", 9),
            "lzma-9": _spec_file(work, "lossless-lzma9", "LZMA", 9)}
    inputs = [Path(f) for f in args.file]
    if args.shared:
        inputs += sorted(SHARED.glob("*.root"))
    if args.synthetic:
        inputs.append(make_nano_like(SHARED / "nano_tt_v12.root", args.synthetic,
                                     work / f"nanolike_{args.synthetic}.root"))
    if args.jetclass:
        from hepslim.samples import generate

        jc = work / f"jetclass_{args.jetclass}.root"
        generate("jetclass", args.jetclass, jc, seed=1, progress=False)
        inputs.append(jc)
    results = []
    for src in inputs:
        res = bench_file(src, _specs_for(src), work, refs)
        results.append(res)
        if not args.json:
            print_table(res)
            sys.stdout.flush()
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
