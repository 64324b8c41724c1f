"""Numba kernels of the negative-weight resampling: event distances, a vantage-point tree, the cell loop.

Events are stored flat (CSR-like): ``offs[e, t]:offs[e, t+1]`` are the rows of ``data`` holding the objects
of type ``t`` in event ``e``. Two metrics share one tree and one cell loop:

* ``METRIC_CELLS`` (cres, arXiv:2109.07851): rows are ``(px, py, pz, tau*pT)``, so the object distance
  sqrt(|p-q|^2 + tau^2 (pT-qT)^2) is the Euclidean distance of rows and an unmatched object costs its norm;
  per type the optimal matching (brute force up to 3 objects, Hungarian from 4) is summed over types.
* ``METRIC_EMD``: one type, rows are ``(pT, y, phi, 0)``; the Energy Mover's Distance with ground distance
  min(dR/R, 2) and the pT imbalance paid at cost 1 per GeV (a metric, IRC safe), solved exactly by successive
  shortest paths.
"""

from __future__ import annotations

import numba as nb
import numpy as np

METRIC_CELLS = 0
METRIC_EMD = 1

_INF = np.inf


# ------------------------------------------------------------------------------------------ cells metric
@nb.njit(cache=True, inline="always")
def _rowdist(data, i, j):
    s = 0.0
    for k in range(4):
        d = data[i, k] - data[j, k]
        s += d * d
    return np.sqrt(s)


@nb.njit(cache=True, inline="always")
def _rownorm(data, i):
    s = 0.0
    for k in range(4):
        s += data[i, k] * data[i, k]
    return np.sqrt(s)


@nb.njit(cache=True)
def _pair_cost(data, a0, n, b0, m, ia, ib):
    # cost of pairing object ia of A with ib of B; an index past the end is the zero vector (unmatched)
    if ia >= n:
        return _rownorm(data, b0 + ib)
    if ib >= m:
        return _rownorm(data, a0 + ia)
    return _rowdist(data, a0 + ia, b0 + ib)


@nb.njit(cache=True)
def _hungarian(c):
    # minimal assignment cost of a square matrix (O(k^3), potentials; e-maxx formulation)
    k = c.shape[0]
    u = np.zeros(k + 1)
    v = np.zeros(k + 1)
    p = np.zeros(k + 1, np.int64)
    way = np.zeros(k + 1, np.int64)
    minv = np.empty(k + 1)
    used = np.empty(k + 1, np.bool_)
    for i in range(1, k + 1):
        p[0] = i
        j0 = 0
        minv[:] = _INF
        used[:] = False
        while True:
            used[j0] = True
            i0 = p[j0]
            delta = _INF
            j1 = 0
            for j in range(1, k + 1):
                if not used[j]:
                    cur = c[i0 - 1, j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(k + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    total = 0.0
    for j in range(1, k + 1):
        total += c[p[j] - 1, j - 1]
    return total


@nb.njit(cache=True)
def _match_cost(data, a0, n, b0, m):
    if n == 0 and m == 0:
        return 0.0
    if n == 0:
        s = 0.0
        for j in range(m):
            s += _rownorm(data, b0 + j)
        return s
    if m == 0:
        s = 0.0
        for i in range(n):
            s += _rownorm(data, a0 + i)
        return s
    if n == 1 and m == 1:
        return _rowdist(data, a0, b0)
    k = max(n, m)
    if k == 2:
        c1 = _pair_cost(data, a0, n, b0, m, 0, 0) + _pair_cost(data, a0, n, b0, m, 1, 1)
        c2 = _pair_cost(data, a0, n, b0, m, 0, 1) + _pair_cost(data, a0, n, b0, m, 1, 0)
        return min(c1, c2)
    if k == 3:
        c = np.empty((3, 3))
        for i in range(3):
            for j in range(3):
                c[i, j] = _pair_cost(data, a0, n, b0, m, i, j)
        best = c[0, 0] + c[1, 1] + c[2, 2]
        best = min(best, c[0, 0] + c[1, 2] + c[2, 1])
        best = min(best, c[0, 1] + c[1, 0] + c[2, 2])
        best = min(best, c[0, 1] + c[1, 2] + c[2, 0])
        best = min(best, c[0, 2] + c[1, 0] + c[2, 1])
        best = min(best, c[0, 2] + c[1, 1] + c[2, 0])
        return best
    c = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            c[i, j] = _pair_cost(data, a0, n, b0, m, i, j)
    return _hungarian(c)


@nb.njit(cache=True)
def _cells_dist(e1, e2, offs, data):
    ntypes = offs.shape[1] - 1
    s = 0.0
    for t in range(ntypes):
        a0 = offs[e1, t]
        b0 = offs[e2, t]
        s += _match_cost(data, a0, offs[e1, t + 1] - a0, b0, offs[e2, t + 1] - b0)
    return s


# -------------------------------------------------------------------------------------------- EMD metric
@nb.njit(cache=True)
def _ground(data, i, j, radius):
    dy = data[i, 1] - data[j, 1]
    dphi = abs(data[i, 2] - data[j, 2])
    if dphi > np.pi:
        dphi = 2.0 * np.pi - dphi
    return min(np.sqrt(dy * dy + dphi * dphi) / radius, 2.0)


@nb.njit(cache=True)
def _transport(c, sup, dem):
    # exact min-cost transport (balanced supplies) by successive shortest paths with Bellman-Ford
    n, m = c.shape
    f = np.zeros((n, m))
    total = 0.0
    for i in range(n):
        total += sup[i]
    eps = 1e-13 * max(total, 1e-300)
    dist_s = np.empty(n)
    dist_t = np.empty(m)
    pred_s = np.empty(n, np.int64)
    pred_t = np.empty(m, np.int64)
    for _aug in range(4 * (n + m) + 8):
        for i in range(n):
            dist_s[i] = 0.0 if sup[i] > eps else _INF
            pred_s[i] = -1
        dist_t[:] = _INF
        pred_t[:] = -1
        for _it in range(n + m + 2):
            changed = False
            for i in range(n):
                if dist_s[i] < _INF:
                    for j in range(m):
                        nd = dist_s[i] + c[i, j]
                        if nd < dist_t[j] - 1e-15:
                            dist_t[j] = nd
                            pred_t[j] = i
                            changed = True
            for j in range(m):
                if dist_t[j] < _INF:
                    for i in range(n):
                        if f[i, j] > eps:
                            nd = dist_t[j] - c[i, j]
                            if nd < dist_s[i] - 1e-15:
                                dist_s[i] = nd
                                pred_s[i] = j
                                changed = True
            if not changed:
                break
        jstar = -1
        best = _INF
        for j in range(m):
            if dem[j] > eps and dist_t[j] < best:
                best = dist_t[j]
                jstar = j
        if jstar < 0:
            break
        delta = dem[jstar]
        j = jstar
        for _s in range(n + m + 2):
            i = pred_t[j]
            if pred_s[i] == -1:
                delta = min(delta, sup[i])
                break
            j2 = pred_s[i]
            delta = min(delta, f[i, j2])
            j = j2
        j = jstar
        for _s in range(n + m + 2):
            i = pred_t[j]
            f[i, j] += delta
            if pred_s[i] == -1:
                sup[i] -= delta
                break
            j2 = pred_s[i]
            f[i, j2] -= delta
            j = j2
        dem[jstar] -= delta
    cost = 0.0
    for i in range(n):
        for j in range(m):
            cost += f[i, j] * c[i, j]
    return cost


@nb.njit(cache=True)
def _emd_dist(e1, e2, offs, data, radius):
    a0 = offs[e1, 0]
    n = offs[e1, 1] - a0
    b0 = offs[e2, 0]
    m = offs[e2, 1] - b0
    sa = 0.0
    sb = 0.0
    for i in range(n):
        sa += data[a0 + i, 0]
    for j in range(m):
        sb += data[b0 + j, 0]
    if n == 0 or m == 0:
        return abs(sa - sb)
    extra_a = 1 if sb > sa else 0  # a dummy on the lighter side takes the imbalance at ground cost 1
    extra_b = 1 if sa > sb else 0
    nn = n + extra_a
    mm = m + extra_b
    c = np.empty((nn, mm))
    sup = np.empty(nn)
    dem = np.empty(mm)
    for i in range(nn):
        for j in range(mm):
            if i >= n or j >= m:
                c[i, j] = 1.0
            else:
                c[i, j] = _ground(data, a0 + i, b0 + j, radius)
    for i in range(n):
        sup[i] = data[a0 + i, 0]
    for j in range(m):
        dem[j] = data[b0 + j, 0]
    if extra_a:
        sup[n] = sb - sa
    if extra_b:
        dem[m] = sa - sb
    return _transport(c, sup, dem)


@nb.njit(cache=True)
def event_distance(e1, e2, metric, offs, data, param):
    """Distance between events ``e1`` and ``e2`` for ``metric`` (``param``: EMD radius R)."""
    if metric == METRIC_CELLS:
        return _cells_dist(e1, e2, offs, data)
    return _emd_dist(e1, e2, offs, data, param)


@nb.njit(cache=True)
def lower_bound(e1, e2, metric, offs, data):
    """A cheap lower bound of the distance (EMD >= |pT sum difference|; 0 for the cells metric)."""
    if metric != METRIC_EMD:
        return 0.0
    sa = 0.0
    for i in range(offs[e1, 0], offs[e1, 1]):
        sa += data[i, 0]
    for j in range(offs[e2, 0], offs[e2, 1]):
        sa -= data[j, 0]
    return abs(sa)


# -------------------------------------------------------------------------------------- vantage-point tree
@nb.njit(cache=True)
def build_vptree(n, metric, offs, data, param, seed, leaf_size):
    """Build a VP-tree over events 0..n-1; returns (perm, node_start, node_end, node_mu, node_left, node_right)."""
    np.random.seed(seed)
    perm = np.arange(n)
    cap = 2 * (n // max(leaf_size, 1)) + 8 + n // 2
    node_start = np.empty(cap, np.int64)
    node_end = np.empty(cap, np.int64)
    node_mu = np.zeros(cap)
    node_left = np.full(cap, -1, np.int64)
    node_right = np.full(cap, -1, np.int64)
    stack = np.empty(cap, np.int64)
    nnodes = 1
    node_start[0] = 0
    node_end[0] = n
    sp = 0
    stack[sp] = 0
    sp += 1
    dtmp = np.empty(n)
    ptmp = np.empty(n, np.int64)
    while sp > 0:
        sp -= 1
        k = stack[sp]
        s = node_start[k]
        e = node_end[k]
        if e - s <= leaf_size:
            continue
        r = s + np.random.randint(0, e - s)
        tmp = perm[s]
        perm[s] = perm[r]
        perm[r] = tmp
        v = perm[s]
        cnt = e - s - 1
        for q in range(cnt):
            dtmp[q] = event_distance(v, perm[s + 1 + q], metric, offs, data, param)
        order = np.argsort(dtmp[:cnt], kind="mergesort")
        for q in range(cnt):
            ptmp[q] = perm[s + 1 + order[q]]
        for q in range(cnt):
            perm[s + 1 + q] = ptmp[q]
        half = cnt // 2
        node_mu[k] = dtmp[order[half]]
        left = nnodes
        right = nnodes + 1
        nnodes += 2
        node_start[left] = s + 1
        node_end[left] = s + 1 + half
        node_start[right] = s + 1 + half
        node_end[right] = e
        node_left[k] = left
        node_right[k] = right
        stack[sp] = left
        sp += 1
        stack[sp] = right
        sp += 1
    return perm, node_start[:nnodes], node_end[:nnodes], node_mu[:nnodes], node_left[:nnodes], node_right[:nnodes]


@nb.njit(cache=True)
def _insert(best_d, best_i, d, idx):
    k = best_d.shape[0]
    last = k - 1
    if d > best_d[last] or (d == best_d[last] and idx >= best_i[last]):
        return
    pos = last
    while pos > 0 and (best_d[pos - 1] > d or (best_d[pos - 1] == d and best_i[pos - 1] > idx)):
        best_d[pos] = best_d[pos - 1]
        best_i[pos] = best_i[pos - 1]
        pos -= 1
    best_d[pos] = d
    best_i[pos] = idx


@nb.njit(cache=True)
def knn(q, k, tree, metric, offs, data, param, best_d, best_i):
    """The k nearest events of event q (itself included), sorted by (distance, index): exact."""
    perm, node_start, node_end, node_mu, node_left, node_right = tree
    best_d[:k] = _INF
    best_i[:k] = np.iinfo(np.int64).max
    bd = best_d[:k]
    bi = best_i[:k]
    use_lb = metric == METRIC_EMD
    stack_n = np.empty(256, np.int64)
    stack_lb = np.empty(256)
    sp = 0
    stack_n[0] = 0
    stack_lb[0] = 0.0
    sp = 1
    while sp > 0:
        sp -= 1
        node = stack_n[sp]
        lb = stack_lb[sp]
        if lb > bd[k - 1]:
            continue
        s = node_start[node]
        e = node_end[node]
        if node_left[node] < 0:
            for p in range(s, e):
                x = perm[p]
                if use_lb and lower_bound(q, x, metric, offs, data) > bd[k - 1]:
                    continue
                _insert(bd, bi, event_distance(q, x, metric, offs, data, param), x)
            continue
        v = perm[s]
        mu = node_mu[node]
        if use_lb:
            lbv = lower_bound(q, v, metric, offs, data)
            if lbv - mu > bd[k - 1]:
                # d >= lbv > mu + tau: v and the inner ball are out of reach, the outer ball gets no tighter bound
                stack_n[sp] = node_right[node]
                stack_lb[sp] = lb
                sp += 1
                continue
        d = event_distance(q, v, metric, offs, data, param)
        _insert(bd, bi, d, v)
        lb_in = max(lb, d - mu)
        lb_out = max(lb, mu - d)
        if sp + 2 > stack_n.shape[0]:
            stack_n = np.concatenate((stack_n, np.empty(stack_n.shape[0], np.int64)))
            stack_lb = np.concatenate((stack_lb, np.empty(stack_lb.shape[0])))
        if d < mu:  # nearer child is popped first
            stack_n[sp] = node_right[node]
            stack_lb[sp] = lb_out
            stack_n[sp + 1] = node_left[node]
            stack_lb[sp + 1] = lb_in
        else:
            stack_n[sp] = node_left[node]
            stack_lb[sp] = lb_in
            stack_n[sp + 1] = node_right[node]
            stack_lb[sp + 1] = lb_out
        sp += 2
    n_found = 0
    for j in range(k):
        if bd[j] < _INF:
            n_found += 1
    return n_found


@nb.njit(cache=True, parallel=True)
def knn_many_parallel(queries, k, tree, metric, offs, data, param):
    nq = queries.shape[0]
    out_d = np.empty((nq, k))
    out_i = np.empty((nq, k), np.int64)
    for t in nb.prange(nq):
        knn(queries[t], k, tree, metric, offs, data, param, out_d[t], out_i[t])
    return out_d, out_i


@nb.njit(cache=True)
def knn_many_serial(queries, k, tree, metric, offs, data, param):
    nq = queries.shape[0]
    out_d = np.empty((nq, k))
    out_i = np.empty((nq, k), np.int64)
    for t in range(nq):
        knn(queries[t], k, tree, metric, offs, data, param, out_d[t], out_i[t])
    return out_d, out_i


# ----------------------------------------------------------------------------------------------- cells
@nb.njit(cache=True)
def _neumaier_add(s, c, x):
    t = s + x
    if abs(s) >= abs(x):
        c += (s - t) + x
    else:
        c += (x - t) + s
    return t, c


@nb.njit(cache=True)
def run_cells(seeds, nb_d, nb_i, w, max_radius, abs_rule, tree, metric, offs, data, param, requery=True):
    """Resample ``w`` in place cell by cell (seeds in order); returns the cells for replay and diagnostics.

    A seed is used once and skipped when its current weight is already >= 0. The cell grows through the
    seed's nearest neighbours (by distance, then index) until its weight sum is >= 0 or the next neighbour
    lies farther than ``max_radius``; its members then share the sum equally (``abs_rule``: in proportion
    to |w|). Neighbour lists ``nb_*`` were computed beforehand (in parallel); longer ones are fetched here
    from the tree, or (``requery=False``) the loop stops before the seed whose list ran out and returns its
    position as ``stop_at`` (-1 when all seeds were processed).
    """
    n_seeds = seeds.shape[0]
    cap = max(16, 4 * n_seeds)
    members = np.empty(cap, np.int64)
    cell_off = np.zeros(n_seeds + 1, np.int64)
    cell_radius = np.empty(n_seeds)
    cell_seed = np.empty(n_seeds, np.int64)
    cell_closed = np.empty(n_seeds, np.bool_)
    ncell = 0
    nm = 0
    k0 = nb_d.shape[1]
    buf_d = np.empty(k0)
    buf_i = np.empty(k0, np.int64)
    for si in range(n_seeds):
        s = seeds[si]
        if w[s] >= 0.0:
            continue
        total, comp = w[s], 0.0
        start = nm
        if nm + 1 > members.shape[0]:
            members = np.concatenate((members, np.empty(members.shape[0], np.int64)))
        members[nm] = s
        nm += 1
        radius = 0.0
        closed = False
        k = k0
        cur_d = nb_d[si]
        cur_i = nb_i[si]
        pos = 0
        while True:
            if pos >= k:
                if k >= w.shape[0]:
                    break
                if not requery:
                    nm = start
                    return (cell_off[: ncell + 1], members[:nm].copy(), cell_radius[:ncell], cell_seed[:ncell],
                            cell_closed[:ncell], si)
                k = min(2 * k, w.shape[0])
                if buf_d.shape[0] < k:
                    buf_d = np.empty(k)
                    buf_i = np.empty(k, np.int64)
                knn(s, k, tree, metric, offs, data, param, buf_d, buf_i)
                cur_d = buf_d[:k]
                cur_i = buf_i[:k]
                continue
            x = cur_i[pos]
            dx = cur_d[pos]
            pos += 1
            if x == s:
                continue
            if dx == _INF:
                break
            if dx > max_radius:
                break
            if nm + 1 > members.shape[0]:
                members = np.concatenate((members, np.empty(members.shape[0], np.int64)))
            members[nm] = x
            nm += 1
            radius = dx
            total, comp = _neumaier_add(total, comp, w[x])
            if total + comp >= 0.0:
                closed = True
                break
        _apply_cell(w, members[start:nm], abs_rule)
        cell_off[ncell + 1] = nm
        cell_radius[ncell] = radius
        cell_seed[ncell] = s
        cell_closed[ncell] = closed
        ncell += 1
    return cell_off[: ncell + 1], members[:nm].copy(), cell_radius[:ncell], cell_seed[:ncell], cell_closed[:ncell], -1


@nb.njit(cache=True)
def _apply_cell(w, mem, abs_rule):
    s, c = 0.0, 0.0
    sa, ca = 0.0, 0.0
    for x in mem:
        s, c = _neumaier_add(s, c, w[x])
        sa, ca = _neumaier_add(sa, ca, abs(w[x]))
    total = s + c
    if abs_rule and sa + ca > 0.0:
        norm = sa + ca
        for x in mem:
            w[x] = abs(w[x]) / norm * total
    else:
        mean = total / mem.shape[0]
        for x in mem:
            w[x] = mean


@nb.njit(cache=True)
def replay_cells(cell_off, members, w, var, abs_rule):
    """Apply recorded cells, in order, to the central weights ``w`` and every column of ``var`` (in place)."""
    nvar = var.shape[1]
    for c in range(cell_off.shape[0] - 1):
        mem = members[cell_off[c] : cell_off[c + 1]]
        nmem = mem.shape[0]
        if abs_rule:
            sa, ca = 0.0, 0.0
            for x in mem:
                sa, ca = _neumaier_add(sa, ca, abs(w[x]))
            norm = sa + ca
        for v in range(nvar):
            s, cc = 0.0, 0.0
            for x in mem:
                s, cc = _neumaier_add(s, cc, var[x, v])
            total = s + cc
            for x in mem:
                if abs_rule and norm > 0.0:
                    var[x, v] = abs(w[x]) / norm * total
                else:
                    var[x, v] = total / nmem
        _apply_cell(w, mem, abs_rule)
