"""Candidate pre-selection for ``method="ot"``: a Euclidean embedding, a k-d tree, exact EMD re-ranking.

Each event becomes the vector of its ``m`` hardest particles, (pT, pT*y/R, pT*cos(phi)/R, pT*sin(phi)/R)
each (zero-padded): moving a particle by dR costs about pT*dR/R in both the EMD and this vector, so
Euclidean neighbours are good EMD candidates ("linearised" transport). The ``K`` Euclidean neighbours of
each seed are re-ranked by their exact EMD. The cell then grows through that list; a seed whose cell needs
more than ``K`` neighbours is re-queried with 4K candidates (then 16K ...). This is approximate: an EMD
neighbour missing from the Euclidean candidates is not seen (the exact alternative is the VP-tree).
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from hepslim.plugins.negweights._kernels import _emd_dist


@nb.njit(cache=True)
def embed(offs, data, m, radius):
    n = offs.shape[0]
    out = np.zeros((n, 4 * m))
    for e in range(n):
        a0, a1 = offs[e, 0], offs[e, 1]
        cnt = a1 - a0
        order = np.argsort(-data[a0:a1, 0])
        for r in range(min(m, cnt)):
            i = a0 + order[r]
            pt = data[i, 0]
            out[e, 4 * r] = pt
            out[e, 4 * r + 1] = pt * data[i, 1] / radius
            out[e, 4 * r + 2] = pt * np.cos(data[i, 2]) / radius
            out[e, 4 * r + 3] = pt * np.sin(data[i, 2]) / radius
    return out


@nb.njit(cache=True, parallel=True)
def rerank(queries, cand, offs, data, radius):
    """Exact EMD from each query to its candidates, rows sorted by (distance, index); the query comes first."""
    nq, k = cand.shape
    out_d = np.empty((nq, k))
    out_i = np.empty((nq, k), np.int64)
    for t in nb.prange(nq):
        q = queries[t]
        d = np.empty(k)
        for j in range(k):
            c = cand[t, j]
            d[j] = 0.0 if c == q else _emd_dist(q, c, offs, data, radius)
        # lexicographic (d, index) order
        order = np.argsort(cand[t], kind="mergesort")
        d2 = d[order]
        c2 = cand[t][order]
        o2 = np.argsort(d2, kind="mergesort")
        for j in range(k):
            out_d[t, j] = d2[o2[j]]
            out_i[t, j] = c2[o2[j]]
    return out_d, out_i


def candidates(emb: np.ndarray, queries: np.ndarray, k: int, workers: int, offs: np.ndarray, data: np.ndarray,
               radius: float, tree: Any = None) -> tuple[np.ndarray, np.ndarray, Any]:
    """(distances, indices) of the k best EMD candidates of each query (k-d tree pre-selection)."""
    from scipy.spatial import cKDTree

    if tree is None:
        tree = cKDTree(emb)
    k = int(min(k, len(emb)))
    _, cand = tree.query(emb[queries], k=k, workers=workers)
    cand = np.asarray(cand, dtype=np.int64).reshape(len(queries), k)
    # make sure the query itself is in its list (duplicates in embedding space may push it out)
    has_self = (cand == queries[:, None]).any(axis=1)
    cand[~has_self, -1] = queries[~has_self]
    d, i = rerank(np.asarray(queries, np.int64), cand, offs, data, float(radius))
    return d, i, tree
