"""Vectorised kinematics, jet clustering and substructure shared by the generator and ``hepslim validate``.

Everything works on flat numpy buffers or awkward arrays; no per-particle Python loops.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import numpy as np

from hepslim.errors import MissingDependencyError


def _ak() -> Any:
    try:
        import awkward as ak
    except ImportError as exc:  # pragma: no cover - awkward is in every data extra
        raise MissingDependencyError("awkward", "samples") from exc
    return ak


def _fastjet() -> Any:
    try:
        import fastjet
    except ImportError as exc:
        raise MissingDependencyError("fastjet", "samples", "jet clustering") from exc
    _swallow_banner(fastjet)
    return fastjet


@functools.cache
def _swallow_banner(fastjet: Any) -> None:
    """FastJet prints a banner on stdout at its first clustering in a process; that would corrupt
    ``--json`` output, so the first (tiny) clustering runs with file descriptor 1 sent to /dev/null."""
    ak = _ak()
    one = ak.Array([[{"px": 1.0, "py": 0.0, "pz": 0.0, "E": 2.0}]], with_name="Momentum4D")
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            fastjet.ClusterSequence(one, fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4)).inclusive_jets(0.0)
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def pt_eta_phi_m(px: Any, py: Any, pz: Any, e: Any) -> tuple[Any, Any, Any, Any]:
    """(pt, eta, phi, mass) from Cartesian four-momenta; works on numpy and awkward arrays alike.

    The mass is sqrt(max(E^2 - p^2, 0)); eta is clipped at |eta| = 20 for particles along the beam.
    """
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    eta = np.minimum(np.maximum(eta, -20.0), 20.0)
    phi = np.arctan2(py, px)
    m2 = e * e - px * px - py * py - pz * pz
    m = np.sqrt(np.maximum(m2, 0.0))
    return pt, eta, phi, m


def px_py_pz_e(pt: Any, eta: Any, phi: Any, m: Any) -> tuple[Any, Any, Any, Any]:
    """Cartesian four-momentum from (pt, eta, phi, mass)."""
    px = pt * np.cos(phi)
    py = pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    e = np.sqrt(px * px + py * py + pz * pz + m * m)
    return px, py, pz, e


def delta_phi(a: Any, b: Any) -> Any:
    """Signed azimuthal difference a - b wrapped into [-pi, pi)."""
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    return np.hypot(eta1 - eta2, delta_phi(phi1, phi2))


def cluster(px: Any, py: Any, pz: Any, e: Any, radius: float, ptmin: float, algorithm: str = "antikt"):
    """Cluster every event (jagged lists of particles) with FastJet; jets sorted by decreasing pT.

    Returns ``(jets, index)``: ``jets`` a record array {px, py, pz, E} of shape events * jets and
    ``index`` of shape events * jets * constituents, the positions of each jet's constituents in the
    event's particle list. One C++ call for all events (fastjet's multi-event interface).
    """
    ak = _ak()
    fj = _fastjet()
    algo = {"antikt": fj.antikt_algorithm, "kt": fj.kt_algorithm, "ca": fj.cambridge_algorithm}[algorithm]
    parts = ak.zip(
        {
            "px": ak.values_astype(px, np.float64),
            "py": ak.values_astype(py, np.float64),
            "pz": ak.values_astype(pz, np.float64),
            "E": ak.values_astype(e, np.float64),
        },
        with_name="Momentum4D",
    )
    parts = ak.to_packed(parts)
    cs = fj.ClusterSequence(parts, fj.JetDefinition(algo, radius))
    jets = cs.inclusive_jets(ptmin)
    index = cs.constituent_index(ptmin)
    order = ak.argsort(np.hypot(jets.px, jets.py), axis=1, ascending=False)
    jets = ak.zip({f: jets[f][order] for f in ("px", "py", "pz", "E")})
    return jets, index[order]


def substructure(px: Any, py: Any, pz: Any, e: Any, radius: float = 0.8) -> dict[str, np.ndarray]:
    """N-subjettiness tau1..tau4 (normalised measure, one-pass kT axes, beta = 1) and the soft-drop mass
    (beta = 0, z_cut = 0.1) for a flat list of jets given their constituents (jets * constituents).

    Jets with fewer than N constituents get tau_N = 0. Returns flat numpy arrays, one value per jet.
    """
    ak = _ak()
    fj = _fastjet()
    parts = ak.to_packed(
        ak.zip(
            {
                "px": ak.values_astype(px, np.float64),
                "py": ak.values_astype(py, np.float64),
                "pz": ak.values_astype(pz, np.float64),
                "E": ak.values_astype(e, np.float64),
            },
            with_name="Momentum4D",
        )
    )
    n = len(parts)
    out = {f"tau{k}": np.zeros(n) for k in (1, 2, 3, 4)}
    out["msoftdrop"] = np.zeros(n)
    if n == 0:
        return out
    nconst = ak.to_numpy(ak.num(parts, axis=1))
    ok = nconst >= 1
    sub = parts[ok]
    if len(sub):
        kt = fj.ClusterSequence(sub, fj.JetDefinition(fj.kt_algorithm, radius))
        taus = ak.to_numpy(kt.njettiness(njets=[1, 2, 3, 4], R0=radius)).reshape(len(sub), 4)
        for k in range(4):
            vals = np.where(nconst[ok] > k, taus[:, k], 0.0)
            out[f"tau{k + 1}"][ok] = vals
        ca = fj.ClusterSequence(sub, fj.JetDefinition(fj.cambridge_algorithm, radius))
        sd = ca.exclusive_jets_softdrop_grooming(njets=1, beta=0.0, symmetry_cut=0.1, R0=radius)
        out["msoftdrop"][ok] = np.nan_to_num(ak.to_numpy(sd.msoftdrop))
    return out


def _digit(a: np.ndarray, k: int) -> np.ndarray:
    return (a // 10**k) % 10


def is_b_hadron(pid: np.ndarray) -> np.ndarray:
    a = np.abs(pid)
    return (a > 100) & ((_digit(a, 2) == 5) | (_digit(a, 3) == 5))


def is_c_hadron(pid: np.ndarray) -> np.ndarray:
    a = np.abs(pid)
    return (a > 100) & ~is_b_hadron(a) & ((_digit(a, 2) == 4) | (_digit(a, 3) == 4))
