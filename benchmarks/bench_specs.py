"""Per-branch size of each shipped spec's pipelines against lossless rewrites, container-independent.

For every branch of a ROOT file, encodes the leaf values (and, for jagged branches, the per-event counts)
with the pipeline ``hepslim.policy.resolve`` gives in the "zarr" container, and compares the summed bytes
with the same buffers compressed by LZMA-9 (NanoAOD's production setting) and ZSTD-9, each buffer on its
own (as a columnar container stores them). Also reports the worst error of each lossy branch as a fraction
of its declared bound. Container overheads (metadata, ROOT basket headers) are not included: the format
benchmarks measure real files.

    python benchmarks/bench_specs.py [FILES...] [--spec nanoaod] [--by-collection] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import lzma
import sys
import time

import numpy as np


def _zstd9(b: bytes) -> int:
    from numcodecs import Zstd

    return len(Zstd(level=9).encode(b))


def _lzma9(b: bytes) -> int:
    # preset 9 with the dictionary shrunk to the buffer (identical output size for buffers smaller than
    # preset 9's 64 MiB dictionary, without allocating ~700 MB per call)
    dict_size = max(4096, 1 << max(len(b) - 1, 1).bit_length())
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": min(dict_size, 1 << 26)}]
    return len(lzma.compress(b, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, filters=filters))


def measure(path: str, spec: str, tree: str | None = None, container: str = "zarr") -> dict:
    import awkward as ak
    import uproot

    from hepslim.policy import input_branches, load_spec, plan, resolve

    s = load_spec(spec)
    types = input_branches(path, tree or s.effective_tree)
    rows = plan(s, types, container=container)
    t = uproot.open(path)[tree or s.effective_tree or "Events"]
    n_events = t.num_entries
    arrays = t.arrays(list(types), library="ak")
    per: dict[str, dict] = {}
    t0 = time.perf_counter()
    raw_bytes = 0
    # derived branches: dropped only if recomputing them from the decoded inputs matches (as the writer does)
    decoded: dict[str, object] = {}

    def dec(name: str) -> object:
        if name not in decoded:
            a = arrays[name]
            v = np.asarray(ak.flatten(a, axis=None))
            p = resolve(s, name, v.dtype, container=container)
            y = p.decode(p.encode(v))
            decoded[name] = ak.unflatten(y, ak.num(a, axis=1)) if a.ndim > 1 else y
        return decoded[name]

    from dataclasses import replace as _replace

    for i, r in enumerate(rows):
        d = s.derived_for(r.branch) if r.action == "derive" else None
        if d is not None and not d.matches(arrays[r.branch], d.compute({n: dec(n) for n in d.inputs})):
            pipe = resolve(s, r.branch, np.dtype(r.dtype), container=container)
            rows[i] = _replace(r, action="store", codecs=tuple(pipe.get_config()), lossless=pipe.lossless,
                               rule=f"{r.rule} (no match: stored)")
    for r in rows:
        a = arrays[r.branch]
        values = np.asarray(ak.flatten(a, axis=None))
        counts = np.asarray(ak.num(a, axis=1), dtype=np.int64) if r.jagged else None
        raw = values.tobytes() + (counts.astype(np.int32).tobytes() if counts is not None else b"")
        raw_bytes += len(raw)
        rec = {"lzma9": _lzma9(raw), "zstd9": _zstd9(raw), "n": values.size, "action": r.action,
               "rule": (r.rule or "container default") + (" [integers]" if values.dtype.kind in "biu" else ""),
               "codecs": [c["id"] for c in r.codecs], "worst": None}
        if r.action == "store":
            pipe = resolve(s, r.branch, values.dtype, role=r.role, container=container)
            enc = pipe.encode(values)
            size = len(enc)
            if counts is not None:
                off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
                size += len(resolve(s, r.branch, "int64", role="offsets", container=container).encode(off))
            rec["spec"] = size
            b = pipe.error_bound()
            if b is not None and values.size:
                y = pipe.decode(enc).astype(np.float64)
                x = values.astype(np.float64)
                fin = np.isfinite(x)
                if b.kind == "rel":
                    nz = fin & (x != 0)
                    err = np.abs(y[nz] - x[nz]) / np.abs(x[nz])
                elif b.kind == "angle":
                    d = np.abs(y[fin] - x[fin]) % (2 * np.pi)
                    err = np.minimum(d, 2 * np.pi - d)
                else:
                    err = np.abs(y[fin] - x[fin])
                rec["worst"] = float(err.max() / b.value) if err.size else 0.0
        else:
            rec["spec"] = 0
        per[r.branch] = rec
    dt = time.perf_counter() - t0
    tot = {k: sum(v[k] for v in per.values()) for k in ("lzma9", "zstd9", "spec")}
    worst = max((v["worst"] for v in per.values() if v["worst"] is not None), default=None)
    import os

    return {"file": path, "spec": s.name, "events": n_events, "branches": len(per), "raw_bytes": raw_bytes,
            "file_bytes": os.path.getsize(path), **tot, "ratio_vs_lzma9": tot["lzma9"] / max(tot["spec"], 1),
            "ratio_vs_zstd9": tot["zstd9"] / max(tot["spec"], 1), "worst_error_fraction_of_bound": worst,
            "encode_MBps": raw_bytes / dt / 1e6, "per_branch": per}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", default=[
        "/work/shared/data/nanoAOD_2015_CMS_Open_Data_ttbar.root", "/work/shared/data/nano_dy.root",
        "/work/shared/data/nano_tt_v12.root", "/work/shared/data/pfnano.root"])
    ap.add_argument("--spec", default="nanoaod")
    ap.add_argument("--tree")
    ap.add_argument("--by-collection", action="store_true", help="bytes per collection, largest first")
    ap.add_argument("--by-rule", action="store_true", help="bytes per spec rule (integers separately)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results = [measure(f, args.spec, args.tree) for f in args.files]
    if args.json:
        json.dump([{k: v for k, v in r.items() if k != "per_branch"} for r in results], sys.stdout, indent=2)
        print()
        return 0
    print(f"spec {args.spec}: bytes/event of the same buffers (values + counts), each compressed on its own")
    print(f"{'file':<48} {'events':>6} {'LZMA-9':>9} {'ZSTD-9':>9} {'spec':>9} {'vs LZMA':>8} {'vs ZSTD':>8}"
          f" {'worst/bound':>11}")
    for r in results:
        ev = r["events"]
        w = r["worst_error_fraction_of_bound"]
        print(f"{r['file'].split('/')[-1][:48]:<48} {ev:>6} {r['lzma9'] / ev:>9.1f} {r['zstd9'] / ev:>9.1f} "
              f"{r['spec'] / ev:>9.1f} {r['ratio_vs_lzma9']:>7.2f}x {r['ratio_vs_zstd9']:>7.2f}x "
              f"{'-' if w is None else f'{w:.3f}':>11}")
        if args.by_rule:
            agg: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
            for v in r["per_branch"].values():
                a = agg[v["rule"]]
                a[0] += v["lzma9"]
                a[1] += v["spec"]
                a[2] += 1
            for lab, (lz, sp, nb) in sorted(agg.items(), key=lambda kv: -kv[1][0])[:20]:
                print(f"    {lab[:60]:<60} {nb:>4} br  LZMA-9 {lz / ev:>8.1f} B/ev  spec {sp / ev:>8.1f} B/ev  "
                      f"{lz / max(sp, 1):>5.2f}x")
        if args.by_collection:
            col: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
            for name, v in r["per_branch"].items():
                c = name.split("_")[0] if "_" in name else name
                col[c][0] += v["lzma9"]
                col[c][1] += v["spec"]
                col[c][2] += 1
            for c, (lz, sp, nb) in sorted(col.items(), key=lambda kv: -kv[1][0])[:25]:
                print(f"    {c:<28} {nb:>4} br  LZMA-9 {lz / ev:>8.1f} B/ev  spec {sp / ev:>8.1f} B/ev  "
                      f"{lz / max(sp, 1):>5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
