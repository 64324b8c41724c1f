"""Cell resampling of event weights on a prepared object table (the algorithm, without any I/O)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepslim.errors import CodecParameterError

SEED_STRATEGIES = ("most_negative", "least_negative", "any")
CELL_MEAN_RULES = ("mean", "abs")
JET_ALGORITHMS = ("antikt", "kt", "cambridge")


@dataclass(frozen=True)
class Cells:
    """The cells, in the order they were applied: members of cell c are ``members[offsets[c]:offsets[c+1]]``."""

    offsets: np.ndarray
    members: np.ndarray
    radius: np.ndarray
    seed: np.ndarray
    closed: np.ndarray  # sum reached >= 0 (False: stopped by max_cell_size)

    @property
    def n_cells(self) -> int:
        return len(self.radius)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)


def seed_order(w: np.ndarray, strategy: str) -> np.ndarray:
    """Negative-weight events in the order they seed cells."""
    neg = np.flatnonzero(w < 0)
    if strategy == "most_negative":
        return neg[np.argsort(w[neg], kind="stable")]
    if strategy == "least_negative":
        return neg[np.argsort(-w[neg], kind="stable")]
    if strategy == "any":
        return neg
    raise CodecParameterError(f"seeds must be one of {SEED_STRATEGIES}, got {strategy!r}")


def _chunked(fn: Any, queries: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``fn`` over chunks of the queries, with a progress bar on a terminal (numba loops cannot report)."""
    import sys

    n = len(queries)
    if n < 50_000 or not sys.stderr.isatty():
        return fn(queries)  # type: ignore[no-any-return]
    from tqdm import tqdm

    step = max(10_000, n // 50)
    ds, idx = [], []
    with tqdm(total=n, desc=what, unit="seed", leave=False) as bar:
        for a in range(0, n, step):
            d, i = fn(queries[a:a + step])
            ds.append(d)
            idx.append(i)
            bar.update(len(d))
    return np.concatenate(ds), np.concatenate(idx)


def _max_threads() -> int:
    import numba

    return int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))


def _threads(n_jobs: int | None) -> int:
    if n_jobs is None or n_jobs <= 0:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return int(n_jobs)


def resample_table(offs: np.ndarray, data: np.ndarray, metric: int, param: float, weights: np.ndarray,
                   variations: np.ndarray | None = None, *, seeds: str = "most_negative",
                   max_cell_size: float = math.inf, cell_mean: str = "mean", n_jobs: int | None = None,
                   k0: int = 8, tree_seed: int = 0, leaf_size: int = 8, candidates: int = 0,
                   timings: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray | None, Cells]:
    """Cell-resample ``weights`` (and every column of ``variations`` in the same cells); returns new arrays.

    The result does not depend on ``n_jobs``: neighbour lists are ordered by (distance, index) and cells
    are applied serially in seed order. Neighbours are exact (VP-tree) unless ``candidates`` > 0 (EMD
    only): then they come from a Euclidean pre-selection of that many candidates, re-ranked by exact EMD.
    """
    import time

    import numba

    from hepslim.plugins.negweights import _kernels as K

    if cell_mean not in CELL_MEAN_RULES:
        raise CodecParameterError(f"cell_mean must be one of {CELL_MEAN_RULES}, got {cell_mean!r}")
    if not max_cell_size > 0:
        raise CodecParameterError(f"max_cell_size must be > 0, got {max_cell_size}")
    w = np.array(weights, dtype=np.float64, copy=True)
    n = len(w)
    var = None if variations is None else np.array(variations, dtype=np.float64, copy=True).reshape(n, -1)
    order = seed_order(w, seeds)
    t = timings if timings is not None else {}
    if len(order) == 0 or n < 2:
        return w, var, Cells(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64),
                             np.zeros(0, bool))
    w0 = w.copy()
    nthreads = _threads(n_jobs)
    prev = numba.get_num_threads()
    if candidates > 0:
        if metric != K.METRIC_EMD:
            raise CodecParameterError("candidate pre-selection is implemented for the EMD metric only")
        numba.set_num_threads(min(nthreads, _max_threads()))
        try:
            cells = _cells_preselected(offs, data, float(param), w, order, int(candidates), float(max_cell_size),
                                       cell_mean == "abs", nthreads, t)
        finally:
            numba.set_num_threads(prev)
        if var is not None and var.shape[1]:
            K.replay_cells(cells.offsets, cells.members, w0.copy(), var, cell_mean == "abs")
        _restore_sum(w, w0)
        return w, var, cells
    t0 = time.perf_counter()
    tree = K.build_vptree(n, metric, offs, data, float(param), int(tree_seed), int(leaf_size))
    t["tree_s"] = time.perf_counter() - t0
    k = int(min(k0, n))
    t0 = time.perf_counter()
    if nthreads > 1:
        numba.set_num_threads(min(nthreads, _max_threads()))
        try:
            nb_d, nb_i = _chunked(lambda q: K.knn_many_parallel(q, k, tree, metric, offs, data, float(param)),
                                  order, "neighbours")
        finally:
            numba.set_num_threads(prev)
    else:
        nb_d, nb_i = _chunked(lambda q: K.knn_many_serial(q, k, tree, metric, offs, data, float(param)),
                              order, "neighbours")
    t["neighbours_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    off, mem, rad, sd, closed, _ = K.run_cells(order, nb_d, nb_i, w, float(max_cell_size), cell_mean == "abs",
                                            tree, metric, offs, data, float(param))
    t["cells_s"] = time.perf_counter() - t0
    cells = Cells(off, mem, rad, sd, closed)
    if var is not None and var.shape[1]:
        wr = w0.copy()
        K.replay_cells(off, mem, wr, var, cell_mean == "abs")
    _restore_sum(w, w0)
    return w, var, cells


def _cells_preselected(offs: np.ndarray, data: np.ndarray, radius: float, w: np.ndarray, order: np.ndarray,
                       k: int, max_radius: float, abs_rule: bool, workers: int, t: dict[str, float]) -> Cells:
    import time

    from hepslim.plugins.negweights import _embed as E
    from hepslim.plugins.negweights import _kernels as K

    dummy = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1),
             np.full(1, -1, np.int64), np.full(1, -1, np.int64))
    t0 = time.perf_counter()
    emb = E.embed(offs, data, 4, radius)
    from scipy.spatial import cKDTree

    kdt = cKDTree(emb)
    nb_d, nb_i = _chunked(lambda q: E.candidates(emb, q, k, workers, offs, data, radius, tree=kdt)[:2],
                          order, "EMD candidates")
    t["neighbours_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    parts = []
    pos = 0
    n = len(w)
    while pos < len(order):
        res = K.run_cells(order[pos:], nb_d[pos:], nb_i[pos:], w, max_radius, abs_rule, dummy, K.METRIC_EMD,
                          offs, data, radius, False)
        parts.append(res[:5])
        stop = res[5]
        if stop < 0:
            break
        s = pos + stop
        kk = min(4 * k, n)
        while True:  # this seed needs a longer list: ask the k-d tree for more candidates
            d1, i1, _ = E.candidates(emb, order[s:s + 1], kk, 1, offs, data, radius, tree=kdt)
            res = K.run_cells(order[s:s + 1], d1, i1, w, max_radius, abs_rule, dummy, K.METRIC_EMD,
                              offs, data, radius, False)
            if res[5] < 0:
                parts.append(res[:5])
                break
            kk = min(4 * kk, n)
        pos = s + 1
    t["cells_s"] = time.perf_counter() - t0
    offsets = [np.zeros(1, np.int64)]
    base = 0
    for p in parts:
        offsets.append(p[0][1:] + base)
        base += len(p[1])
    return Cells(np.concatenate(offsets), np.concatenate([p[1] for p in parts]),
                 np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]),
                 np.concatenate([p[4] for p in parts]))


def _restore_sum(w: np.ndarray, w0: np.ndarray) -> None:
    """Put the float rounding left over from the cells back on the largest |w|, so sum(w) == sum(w0)."""
    if len(w) == 0:
        return
    for _ in range(2):
        diff = math.fsum(w0) - math.fsum(w)
        if diff == 0.0:
            return
        i = int(np.argmax(np.abs(w)))
        w[i] += diff


def partial_unweight(w: np.ndarray, variations: np.ndarray | None, minweight: float, seed: int) -> tuple[
        np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Unweight events with 0 < |w| < minweight: kept with probability |w|/minweight at weight ±minweight.

    Kept events are then rescaled by one common factor so the sum over the affected events (hence Σw) stays
    exact; variations follow their central weight (same ratio). Seeded, so reproducible.
    """
    if minweight <= 0:
        return w, variations, {"n_unweighted": 0}
    w = w.copy()
    small = np.flatnonzero((w != 0) & (np.abs(w) < minweight))
    if len(small) == 0:
        return w, variations, {"n_unweighted": 0}
    rng = np.random.default_rng(seed)
    keep = rng.random(len(small)) < np.abs(w[small]) / minweight
    before = math.fsum(w[small])
    new = np.where(keep, np.sign(w[small]) * minweight, 0.0)
    after = math.fsum(new)
    if after != 0.0:
        new *= before / after
    elif before != 0.0:  # nothing survived: keep the largest one carrying the whole sum
        j = int(np.argmax(np.abs(w[small])))
        new[j] = before
    ratio = np.divide(new, w[small], out=np.zeros_like(new), where=w[small] != 0)
    if variations is not None:
        variations = variations.copy()
        variations[small] *= ratio[:, None]
    w[small] = new
    return w, variations, {"n_unweighted": int(len(small)), "n_unweighted_kept": int(np.count_nonzero(new))}
