"""From final-state particles to the flat object tables the distance kernels use.

``cells``: IRC-safe objects. Charged leptons are dressed with photons within ``dressing_radius``; photons
with pT >= ``photon_ptmin`` that are isolated (other activity within dR < 0.4 below 10% of their pT) are
objects of their own; neutrinos are objects only if asked; everything else (partons, hadrons, remaining
photons) is clustered into jets (anti-kT / kT / C-A, radius, pT min). Non-jet objects are grouped by signed
PDG id. When no two clusterable particles of an event lie within the jet radius, clustering cannot merge
anything and the particles are the jets (exact for the whole kT family); only other events go to FastJet.

``ot``: all visible final-state particles as (pT, y, phi).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from hepslim.errors import CodecParameterError, MissingDependencyError

JET_TYPE = 0  # type key of jets (no PDG id is 0)
_CLS_HAD, _CLS_LEP, _CLS_PHOTON, _CLS_NU, _CLS_DROP, _CLS_USED = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class FlatParticles:
    """Final-state particles of n events, flat: event e owns rows ``starts[e]:starts[e+1]``."""

    starts: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pid: np.ndarray

    @property
    def n_events(self) -> int:
        return len(self.starts) - 1

    @classmethod
    def from_awkward(cls, particles: Any) -> FlatParticles:
        """From ``var * {px, py, pz, e, pid}`` (final-state particles only)."""
        import awkward as ak

        counts = np.asarray(ak.num(particles), dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        col = lambda f: np.ascontiguousarray(ak.to_numpy(ak.flatten(particles[f])), dtype=np.float64)  # noqa: E731
        return cls(starts, col("px"), col("py"), col("pz"), col("e"),
                   np.ascontiguousarray(ak.to_numpy(ak.flatten(particles["pid"])), dtype=np.int64))


@dataclass(frozen=True)
class EventTable:
    """Objects of n events for one metric: ``offs[e, t]:offs[e, t+1]`` index rows of ``data``."""

    offs: np.ndarray
    data: np.ndarray
    type_keys: np.ndarray  # type index -> key (0 jets, else signed PDG id); EMD: [-1]

    @property
    def n_events(self) -> int:
        return self.offs.shape[0]


def _rap_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        ee = np.maximum(e, np.abs(pz) * (1 + 1e-15))
        y = 0.5 * np.log((ee + pz) / (ee - pz))
    y = np.where(np.isfinite(y), y, np.sign(pz) * 1e3)
    return y, np.arctan2(py, px)


@nb.njit(cache=True)
def _dr2(y1, p1, y2, p2):
    dp = abs(p1 - p2)
    if dp > np.pi:
        dp = 2 * np.pi - dp
    return (y1 - y2) ** 2 + dp * dp


@nb.njit(cache=True)
def _classify(starts, px, py, pz, e, pid, y, phi, pt, dress_r, photon_ptmin, include_nu):
    n = px.shape[0]
    cls = np.empty(n, np.int64)
    opx, opy, opz, oe = px.copy(), py.copy(), pz.copy(), e.copy()
    for i in range(n):
        a = abs(pid[i])
        if a == 11 or a == 13 or a == 15:
            cls[i] = _CLS_LEP
        elif a == 22:
            cls[i] = _CLS_PHOTON
        elif a == 12 or a == 14 or a == 16:
            cls[i] = _CLS_NU if include_nu else _CLS_DROP
        elif pt[i] <= 0.0:
            cls[i] = _CLS_DROP
        else:
            cls[i] = _CLS_HAD
    r2 = dress_r * dress_r
    for ev in range(starts.shape[0] - 1):
        s, t = starts[ev], starts[ev + 1]
        for g in range(s, t):  # dressing: each photon to its nearest charged lepton within dress_r
            if cls[g] != _CLS_PHOTON or dress_r <= 0.0:
                continue
            best, bl = r2, -1
            for l in range(s, t):
                if cls[l] == _CLS_LEP and abs(pid[l]) != 15:
                    d = _dr2(y[g], phi[g], y[l], phi[l])
                    if d < best:
                        best, bl = d, l
            if bl >= 0:
                opx[bl] += px[g]
                opy[bl] += py[g]
                opz[bl] += pz[g]
                oe[bl] += e[g]
                cls[g] = _CLS_USED
        for g in range(s, t):  # isolated photons stay objects, the others are clustered
            if cls[g] != _CLS_PHOTON:
                continue
            if pt[g] < photon_ptmin:
                cls[g] = _CLS_HAD
                continue
            act = 0.0
            for h in range(s, t):
                if h != g and (cls[h] == _CLS_HAD or cls[h] == _CLS_PHOTON) and _dr2(y[g], phi[g], y[h], phi[h]) < 0.16:
                    act += pt[h]
            if act > 0.1 * pt[g]:
                cls[g] = _CLS_HAD
    return cls, opx, opy, opz, oe


@nb.njit(cache=True)
def _needs_clustering(starts, had, y, phi, radius):
    ne = starts.shape[0] - 1
    out = np.zeros(ne, np.bool_)
    r2 = radius * radius
    for ev in range(ne):
        s, t = starts[ev], starts[ev + 1]
        for i in range(s, t):
            if not had[i]:
                continue
            for j in range(i + 1, t):
                if had[j] and _dr2(y[i], phi[i], y[j], phi[j]) < r2:
                    out[ev] = True
                    break
            if out[ev]:
                break
    return out


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """FastJet prints its banner to C++ stdout; keep it off ours (``--json`` must stay parseable)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _cluster(starts: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray,
             algorithm: str, radius: float) -> tuple[np.ndarray, ...]:
    """Cluster every event (rows starts[e]:starts[e+1]) with FastJet; returns jet counts and flat 4-momenta."""
    try:
        import awkward as ak
        import fastjet
    except ImportError as exc:  # pragma: no cover - fastjet is a declared dependency of the extra
        raise MissingDependencyError("fastjet", "samples", "jet clustering") from exc
    algos = {"antikt": fastjet.antikt_algorithm, "kt": fastjet.kt_algorithm,
             "cambridge": fastjet.cambridge_algorithm}
    counts = np.diff(starts)
    arr = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": e}), counts)
    with _quiet_stdout():
        cs = fastjet.ClusterSequence(arr, fastjet.JetDefinition(algos[algorithm], radius))
        jets = cs.inclusive_jets()
    jc = np.asarray(ak.num(jets), dtype=np.int64)
    f = lambda k: np.asarray(ak.flatten(jets[k]), dtype=np.float64)  # noqa: E731
    return jc, f("px"), f("py"), f("pz"), f("E")


from hepslim.plugins.negweights.core import JET_ALGORITHMS  # noqa: E402


def cell_objects(parts: FlatParticles, *, jet_algorithm: str = "antikt", jet_radius: float = 0.4,
                 jet_ptmin: float = 20.0, tau: float = 0.0, dressing_radius: float = 0.1,
                 photon_ptmin: float = 20.0, include_neutrinos: bool = False) -> EventTable:
    """The cres objects of every event as rows (px, py, pz, tau*pT), grouped by type (jets first)."""
    if jet_algorithm not in JET_ALGORITHMS:
        raise CodecParameterError(f"jet_algorithm must be one of {JET_ALGORITHMS}, got {jet_algorithm!r}")
    ne = parts.n_events
    pt = np.hypot(parts.px, parts.py)
    y, phi = _rap_phi(parts.px, parts.py, parts.pz, parts.e)
    cls, px, py, pz, e = _classify(parts.starts, parts.px, parts.py, parts.pz, parts.e, parts.pid, y, phi, pt,
                                   float(dressing_radius), float(photon_ptmin), bool(include_neutrinos))
    ev_of = np.repeat(np.arange(ne), np.diff(parts.starts))
    had = cls == _CLS_HAD
    need = _needs_clustering(parts.starts, had, y, phi, float(jet_radius))
    # jets: particles of events that need no clustering, FastJet output for the others
    direct = had & ~need[ev_of]
    j_ev = [ev_of[direct]]
    j_p = [np.stack([px[direct], py[direct], pz[direct]], axis=1)]
    if need.any():
        sel = had & need[ev_of]
        evs = np.flatnonzero(need)
        cnt = np.bincount(np.searchsorted(evs, ev_of[sel]), minlength=len(evs))
        st = np.concatenate([[0], np.cumsum(cnt)])
        jc, jx, jy, jz, _ = _cluster(st, px[sel], py[sel], pz[sel], e[sel], jet_algorithm, float(jet_radius))
        j_ev.append(np.repeat(evs, jc))
        j_p.append(np.stack([jx, jy, jz], axis=1))
    jev = np.concatenate(j_ev)
    jp = np.concatenate(j_p)
    keep = np.hypot(jp[:, 0], jp[:, 1]) >= jet_ptmin
    jev, jp = jev[keep], jp[keep]
    other = (cls == _CLS_LEP) | (cls == _CLS_PHOTON) | (cls == _CLS_NU)
    o_ev = ev_of[other]
    o_p = np.stack([px[other], py[other], pz[other]], axis=1)
    o_key = parts.pid[other]
    ev_all = np.concatenate([jev, o_ev])
    p_all = np.concatenate([jp, o_p]) if len(ev_all) else np.zeros((0, 3))
    key_all = np.concatenate([np.full(len(jev), JET_TYPE, np.int64), o_key])
    keys = np.unique(key_all)
    if JET_TYPE not in keys:
        keys = np.concatenate([[JET_TYPE], keys])
    keys = np.concatenate([[JET_TYPE], keys[keys != JET_TYPE]])
    srt = np.argsort(keys)
    rank = srt[np.searchsorted(keys[srt], key_all)]  # type index in `keys` order
    # sort objects by (event, type, -pT) so the layout is canonical
    ptv = np.hypot(p_all[:, 0], p_all[:, 1]) if len(p_all) else np.zeros(0)
    order = np.lexsort((-ptv, rank, ev_all))
    ev_all, rank, p_all, ptv = ev_all[order], rank[order], p_all[order], ptv[order]
    nt = len(keys)
    cnt = np.bincount(ev_all * nt + rank, minlength=ne * nt).reshape(ne, nt)
    flat = np.concatenate([[0], np.cumsum(cnt.ravel())])
    offs = np.empty((ne, nt + 1), np.int64)
    offs[:, :nt] = flat[:-1].reshape(ne, nt)
    offs[:, nt] = flat[1:].reshape(ne, nt)[:, -1] if ne else 0
    data = np.empty((len(p_all), 4))
    data[:, :3] = p_all
    data[:, 3] = tau * ptv
    return EventTable(offs, np.ascontiguousarray(data), keys)


def emd_objects(parts: FlatParticles, *, include_neutrinos: bool = False) -> EventTable:
    """All visible final-state particles as rows (pT, y, phi, 0), one type."""
    a = np.abs(parts.pid)
    pt = np.hypot(parts.px, parts.py)
    vis = pt > 0
    if not include_neutrinos:
        vis &= ~np.isin(a, (12, 14, 16))
    ne = parts.n_events
    ev_of = np.repeat(np.arange(ne), np.diff(parts.starts))[vis]
    y, phi = _rap_phi(parts.px[vis], parts.py[vis], parts.pz[vis], parts.e[vis])
    cnt = np.bincount(ev_of, minlength=ne)
    st = np.concatenate([[0], np.cumsum(cnt)])
    offs = np.stack([st[:-1], st[1:]], axis=1).astype(np.int64)
    data = np.zeros((len(y), 4))
    data[:, 0], data[:, 1], data[:, 2] = pt[vis], y, phi
    return EventTable(np.ascontiguousarray(offs), data, np.array([-1]))
