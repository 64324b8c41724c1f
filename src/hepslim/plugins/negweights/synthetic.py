"""A synthetic NLO-like Drell-Yan sample (Z -> e+e- [+ jet]) with a known truth and negative weights.

The construction is an FKS-like subtraction with three kinds of events:

* Born: Z at pT = 0 (no jet), weight B / N_born (> 0);
* real: Z + one gluon at pT drawn log-uniformly in [pt_min, pt_max], weight R(pT)/q(pT) (> 0) with
  R(pT) = A / pT / (1 + (pT/p0)^2);
* counter: the same Z (mass, rapidity, decay angles) projected to Born kinematics (pT = 0, no jet) with
  weight -S(pT)/q(pT) (< 0), S(pT) = A / pT * exp(-pT/p1), the soft limit of R.

Each real event has its counter event, so the fraction of negative weights is the fraction of pairs
(``neg_fraction``). The weighted sum of any IRC-safe observable is unbiased for the truth: sigma in a Z-pT
bin [a, b) is the integral of R over it, plus B - integral(S) for the bin holding pT = 0
(:func:`nlo_truth`). Four scale-like weight variations rescale the Born and the real/counter parts.

>>> ev = generate_nlo(1000, seed=1)
>>> float(np.mean(np.asarray(ev.weight) < 0)) > 0.15
True
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hepslim.errors import CodecParameterError

MZ = 91.1876
GZ = 2.4952
#: Weight variation ids and their (Born, real/counter) factors.
NLO_VARIATIONS: tuple[tuple[str, float, float], ...] = (
    ("muR0.5", 1.02, 1.12),
    ("muR2.0", 0.98, 0.90),
    ("muF0.5", 1.01, 1.05),
    ("muF2.0", 0.99, 0.96),
)
_PT_MIN, _PT_MAX, _P0, _P1 = 1.0, 500.0, 20.0, 10.0
_SIGMA_B = 1000.0  # pb
_Y_SIGMA, _Y_MAX = 1.6, 4.0


def _model(neg_fraction: float) -> tuple[float, float]:
    """(B, A): the Born cross-section and the real-emission normalisation for a negative fraction."""
    f_born = 1.0 - 2.0 * neg_fraction
    log_range = np.log(_PT_MAX / _PT_MIN)
    # per-event |weights| of Born, real and counter events are of the same order at low pT
    a = _SIGMA_B * (neg_fraction / f_born) / log_range
    return _SIGMA_B, a


def _sample_y(rng: np.random.Generator, n: int) -> np.ndarray:
    y = rng.normal(0.0, _Y_SIGMA, size=n)
    bad = np.abs(y) > _Y_MAX
    while bad.any():
        y[bad] = rng.normal(0.0, _Y_SIGMA, size=int(bad.sum()))
        bad = np.abs(y) > _Y_MAX
    return y


def _decay(m: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray,
           cth: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Massless two-body decay, isotropic in the rest frame; returns (n, 4) lepton and antilepton (px,py,pz,E)."""
    sth = np.sqrt(1.0 - cth**2)
    half = m / 2.0
    rest = np.stack([half * sth * np.cos(phi), half * sth * np.sin(phi), half * cth, half], axis=1)
    bx, by, bz = px / e, py / e, pz / e
    b2 = bx**2 + by**2 + bz**2
    gamma = 1.0 / np.sqrt(1.0 - b2)
    out = []
    for sgn in (1.0, -1.0):
        vx, vy, vz, ve = sgn * rest[:, 0], sgn * rest[:, 1], sgn * rest[:, 2], rest[:, 3]
        bp = bx * vx + by * vy + bz * vz
        g2 = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
        out.append(np.stack([vx + g2 * bp * bx + gamma * bx * ve,
                             vy + g2 * bp * by + gamma * by * ve,
                             vz + g2 * bp * bz + gamma * bz * ve,
                             gamma * (ve + bp)], axis=1))
    return out[0], out[1]


def generate_nlo(n: int, seed: int, *, neg_fraction: float = 0.25, sqrt_s: float = 13000.0) -> Any:
    """``n`` synthetic NLO-like Z -> e+e- (+ jet) events as an awkward array (LHE-like layout).

    Fields: ``weight`` (float64), ``variations`` (n x 4 float64, ids in :data:`NLO_VARIATIONS`),
    ``kind`` (0 Born, 1 real, 2 counter), and ``particles`` (var * {pid, status, mother1, mother2,
    color1, color2, px, py, pz, e, m}: two incoming partons (status -1), the Z (status 2), e-, e+ and for
    real events a gluon). Weights are in pb per event (sum = cross-section estimate). Deterministic in
    ``seed``. ``neg_fraction`` (0 < f < 0.5) is the expected fraction of negative weights.
    """
    import awkward as ak

    if not (0.0 < neg_fraction < 0.5):
        raise CodecParameterError(f"neg_fraction must be in (0, 0.5), got {neg_fraction}")
    if n < 0:
        raise CodecParameterError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    big_b, big_a = _model(neg_fraction)
    log_range = np.log(_PT_MAX / _PT_MIN)
    # kinds in random order: pairs are (real, counter) adjacent, Born events alone
    n_pairs = min(int(rng.binomial(n, neg_fraction)), n // 2)
    n_born = n - 2 * n_pairs
    n_z = n_born + n_pairs  # distinct Z configurations
    # Z kinematics
    m = MZ + GZ / 2.0 * np.tan(rng.uniform(np.arctan(2 * (60 - MZ) / GZ), np.arctan(2 * (120 - MZ) / GZ), n_z))
    y = _sample_y(rng, n_z)
    cth = rng.uniform(-1.0, 1.0, n_z)
    dphi = rng.uniform(-np.pi, np.pi, n_z)
    pt = np.zeros(n_z)
    pt[n_born:] = _PT_MIN * np.exp(rng.uniform(0.0, log_range, n_pairs))
    phij = rng.uniform(-np.pi, np.pi, n_z)
    yj = y + rng.normal(0.0, 1.2, n_z)
    # weights
    w_born = np.full(n_born, big_b / max(n_born, 1))
    p = pt[n_born:]
    w_real = big_a * log_range / (1.0 + (p / _P0) ** 2) / max(n_pairs, 1)
    w_cnt = -big_a * log_range * np.exp(-p / _P1) / max(n_pairs, 1)
    # event list: Born (i < n_born), then real and counter for each pair
    src = np.concatenate([np.arange(n_born), np.repeat(np.arange(n_born, n_z), 2)])
    kind = np.concatenate([np.zeros(n_born, np.int8), np.tile(np.array([1, 2], np.int8), n_pairs)])
    weight = np.concatenate([w_born, np.stack([w_real, w_cnt], axis=1).ravel()])
    order = rng.permutation(n)
    src, kind, weight = src[order], kind[order], weight[order]
    real = kind == 1
    ev_pt = np.where(real, pt[src], 0.0)
    ev_m, ev_y = m[src], y[src]
    mt = np.sqrt(ev_m**2 + ev_pt**2)
    zpx = -ev_pt * np.cos(phij[src])
    zpy = -ev_pt * np.sin(phij[src])
    zpz = mt * np.sinh(ev_y)
    ze = mt * np.cosh(ev_y)
    lm, lp = _decay(ev_m, zpx, zpy, zpz, ze, cth[src], dphi[src])
    gpx, gpy = ev_pt * np.cos(phij[src]), ev_pt * np.sin(phij[src])
    gpz = ev_pt * np.sinh(yj[src])
    ge = ev_pt * np.cosh(yj[src])
    tot_e = ze + np.where(real, ge, 0.0)
    tot_pz = zpz + np.where(real, gpz, 0.0)
    x1e, x2e = (tot_e + tot_pz) / 2.0, (tot_e - tot_pz) / 2.0
    # variations
    fac_b = np.array([v[1] for v in NLO_VARIATIONS])
    fac_r = np.array([v[2] for v in NLO_VARIATIONS])
    variations = weight[:, None] * np.where(kind[:, None] == 0, fac_b[None, :], fac_r[None, :])
    # particles, built as a fixed 6-slot table then trimmed (Born/counter events have no gluon)
    nslot = 6
    zero = np.zeros(n)
    cols = {
        "pid": np.stack([np.full(n, 2), np.full(n, -2), np.full(n, 23), np.full(n, 11), np.full(n, -11),
                         np.full(n, 21)], axis=1),
        "status": np.stack([np.full(n, -1), np.full(n, -1), np.full(n, 2), np.ones(n), np.ones(n),
                            np.ones(n)], axis=1).astype(np.int64),
        "mother1": np.stack([zero, zero, np.ones(n), np.full(n, 3), np.full(n, 3), np.ones(n)], axis=1),
        "mother2": np.stack([zero, zero, np.full(n, 2), np.full(n, 3), np.full(n, 3), np.full(n, 2)], axis=1),
        "color1": np.stack([np.full(n, 501), zero, zero, zero, zero, np.full(n, 502)], axis=1),
        "color2": np.stack([zero, np.where(real, 502, 501), zero, zero, zero, np.full(n, 501)], axis=1),
        "px": np.stack([zero, zero, zpx, lm[:, 0], lp[:, 0], gpx], axis=1),
        "py": np.stack([zero, zero, zpy, lm[:, 1], lp[:, 1], gpy], axis=1),
        "pz": np.stack([x1e, -x2e, zpz, lm[:, 2], lp[:, 2], gpz], axis=1),
        "e": np.stack([x1e, x2e, ze, lm[:, 3], lp[:, 3], ge], axis=1),
        "m": np.stack([zero, zero, ev_m, zero, zero, zero], axis=1),
    }
    counts = np.where(real, nslot, nslot - 1)
    keep = (np.arange(nslot)[None, :] < counts[:, None]).ravel()
    fields = {}
    for name, tab in cols.items():
        flat = tab.ravel()[keep]
        flat = flat.astype(np.int64) if name in ("pid", "status", "mother1", "mother2", "color1", "color2") else flat
        fields[name] = ak.unflatten(flat, counts)
    particles = ak.zip(fields)
    return ak.zip(
        {"weight": weight, "variations": variations, "kind": kind, "particles": particles}, depth_limit=1
    )


def nlo_truth(observable: str, edges: np.ndarray, *, neg_fraction: float = 0.25,
              variation: str | None = None) -> np.ndarray:
    """The exact expected sigma (pb) per bin of ``observable`` ("z_pt" or "z_y") for :func:`generate_nlo`."""
    from scipy.special import exp1, ndtr

    edges = np.asarray(edges, dtype=np.float64)
    big_b, big_a = _model(neg_fraction)
    fb, fr = 1.0, 1.0
    if variation is not None:
        table = {v[0]: (v[1], v[2]) for v in NLO_VARIATIONS}
        if variation not in table:
            raise CodecParameterError(f"unknown variation {variation!r}; known: {sorted(table)}")
        fb, fr = table[variation]

    def r_int(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = np.clip(a, _PT_MIN, _PT_MAX), np.clip(b, _PT_MIN, _PT_MAX)
        prim = lambda x: np.log(x) - 0.5 * np.log1p((x / _P0) ** 2)  # noqa: E731
        return big_a * (prim(b) - prim(a))

    s_total = big_a * (exp1(_PT_MIN / _P1) - exp1(_PT_MAX / _P1))
    sigma0 = fb * big_b - fr * s_total  # what sits at pT = 0 (Born + counter)
    sigma = sigma0 + fr * float(r_int(np.array(_PT_MIN), np.array(_PT_MAX)))
    lo, hi = edges[:-1], edges[1:]
    if observable == "z_pt":
        out = fr * r_int(lo, hi)
        out = out + np.where((lo <= 0.0) & (0.0 < hi), sigma0, 0.0)
        return out
    if observable == "z_y":
        norm = ndtr(_Y_MAX / _Y_SIGMA) - ndtr(-_Y_MAX / _Y_SIGMA)
        cdf = lambda x: (ndtr(np.clip(x, -_Y_MAX, _Y_MAX) / _Y_SIGMA) - ndtr(-_Y_MAX / _Y_SIGMA)) / norm  # noqa: E731
        return sigma * (cdf(hi) - cdf(lo))
    raise CodecParameterError(f"observable must be 'z_pt' or 'z_y', got {observable!r}")


def nlo_sigma(*, neg_fraction: float = 0.25) -> float:
    """The exact total cross-section (pb) of :func:`generate_nlo`."""
    return float(nlo_truth("z_y", np.array([-np.inf, np.inf]), neg_fraction=neg_fraction).sum())


def _fmt(x: float) -> str:
    return f"{x: .10E}"


def write_nlo_lhe(events: Any, path: str | os.PathLike[str], *, sqrt_s: float = 13000.0) -> Path:
    """Write :func:`generate_nlo` events as an LHE 3.0 file (``.lhe`` or ``.lhe.gz``), atomically.

    XWGTUP is the central weight, ``<rwgt>`` holds the variations (declared in ``<initrwgt>``), and the
    ``<init>`` block uses weighting strategy -4 (signed weights summing to the cross-section).
    """
    import awkward as ak

    path = Path(path)
    w = np.asarray(events.weight, dtype=np.float64)
    var = np.asarray(events.variations, dtype=np.float64)
    p = events.particles
    counts = np.asarray(ak.num(p))
    cols = {k: np.asarray(ak.flatten(p[k])) for k in p.fields}
    sigma = float(w.sum())
    err = float(np.sqrt((w**2).sum()))
    head = [
        '<LesHouchesEvents version="3.0">',
        "<!-- hepslim synthetic NLO-like sample: Born + real + counter events (generate_nlo) -->",
        "<header>",
        "<initrwgt>",
        "<weightgroup name='scale_variations' combine='envelope'>",
        *[f"<weight id='{vid}'> {vid} </weight>" for vid, _, _ in NLO_VARIATIONS],
        "</weightgroup>",
        "</initrwgt>",
        "</header>",
        "<init>",
        f" 2212 2212 {sqrt_s / 2:.8E} {sqrt_s / 2:.8E} 0 0 0 0 -4 1",
        f" {_fmt(sigma)} {_fmt(err)} {_fmt(1.0)} 1",
        "</init>",
    ]
    lines = ["\n".join(head)]
    # particle lines, formatted in one vectorised pass
    pl = np.char.add
    parts = [
        np.char.mod("%9d", cols["pid"]), np.char.mod("%5d", cols["status"]), np.char.mod("%5d", cols["mother1"]),
        np.char.mod("%5d", cols["mother2"]), np.char.mod("%5d", cols["color1"]), np.char.mod("%5d", cols["color2"]),
        np.char.mod(" %+.10E", cols["px"]), np.char.mod(" %+.10E", cols["py"]), np.char.mod(" %+.10E", cols["pz"]),
        np.char.mod(" %.10E", cols["e"]), np.char.mod(" %.10E", cols["m"]),
    ]
    pline = parts[0]
    for q in parts[1:]:
        pline = pl(pl(pline, ""), q)
    pline = pl(pline, " 0.0000E+00 9.0000E+00")
    scale = np.char.mod(" %.8E", np.full(len(w), MZ))
    evhead = pl(pl(pl(np.char.mod("%3d", counts), "      1"), np.char.mod(" %+.10E", w)), scale)
    evhead = pl(evhead, " 7.54677100E-03 1.18000000E-01")
    rw = np.full(len(w), "<rwgt>", dtype=object)
    for k, (vid, _, _) in enumerate(NLO_VARIATIONS):
        rw = rw + np.char.add(np.char.add(f"\n<wgt id='{vid}'>", np.char.mod(" %+.10E", var[:, k])), " </wgt>").astype(object)
    rw = rw + "\n</rwgt>"
    starts = np.concatenate([[0], np.cumsum(counts)])
    pline = pline.astype(object)
    body = []
    for i in range(len(w)):  # text assembly per event (I/O-bound); formatting above is vectorised
        body.append("<event>\n" + evhead[i] + "\n" + "\n".join(pline[starts[i]:starts[i + 1]]) + "\n" + rw[i] + "\n</event>")
    lines.extend(body)
    lines.append("</LesHouchesEvents>\n")
    text = "\n".join(lines).encode()
    _atomic_write(path, gzip.compress(text, compresslevel=6) if path.name.endswith(".gz") else text)
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    from hepslim.plugins.negweights.io import atomic_write_bytes

    atomic_write_bytes(path, data)


def generate(n: int, out: str | os.PathLike[str], *, seed: int = 1, jobs: int = 1,
             neg_fraction: float = 0.25) -> dict[str, Any]:
    """``hepslim generate nlo``: write :func:`generate_nlo` events to ``out`` (.lhe, .lhe.gz or .parquet).

    ``jobs`` is accepted for the common ``generate`` signature; generation is vectorised numpy (one job).
    Returns the summary the ``generate`` command prints: layout, process, rows, path, seconds, rows_per_s,
    plus neg_fraction, sum_w and the exact sigma_true (pb).
    """
    import time

    import awkward as ak

    t0 = time.perf_counter()
    path = Path(out)
    events = generate_nlo(n, seed, neg_fraction=neg_fraction)
    name = path.name.lower()
    if name.endswith((".lhe", ".lhe.gz")):
        write_nlo_lhe(events, path)
    elif name.endswith(".parquet"):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".parquet")
        os.close(fd)
        try:
            ak.to_parquet(events, tmp)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    else:
        raise CodecParameterError(f"{out}: the nlo layout writes .lhe, .lhe.gz or .parquet")
    dt = time.perf_counter() - t0
    w = np.asarray(events.weight)
    return {"layout": "nlo", "process": "z_ee_nlo_toy", "rows": int(n), "path": str(path), "seconds": dt,
            "rows_per_s": n / dt if dt > 0 else 0.0, "neg_fraction": float(np.mean(w < 0)) if n else 0.0,
            "sum_w": float(w.sum()), "sigma_true": nlo_sigma(neg_fraction=neg_fraction)}
