"""Derived-branch functions: quantities a spec does not store because they follow from stored ones.

A spec's ``derived:`` entry names one of these functions and its input branches; the writer drops the
branch only if recomputing it from the (decoded) inputs reproduces the original within the declared
tolerance, and the reader recomputes it, so ``hepslim.open`` still returns every input branch.

Each function takes flat numpy arrays (one per input, same length) and returns a flat float array; jagged
awkward inputs are handled by :func:`compute` (flatten, compute, restore the first input's structure).

>>> import numpy as np
>>> float(compute("pt_from_pxpy", [np.array([3.0]), np.array([4.0])])[0])
5.0
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepslim.errors import SpecError

# PDG masses in GeV (PDG 2024) for the particle ids a reconstructed candidate list carries. Particle-flow
# and Delphes candidates only ever use these few ids; others are looked up in the `particle` package.
_PDG_MASS_GEV: dict[int, float] = {
    0: 0.0,  # unidentified / neutral tower: massless by convention
    1: 0.0,  # h_HF (hadronic HF deposit in CMS PF): massless
    2: 0.0,  # egamma_HF: massless
    11: 0.51099895e-3,
    12: 0.0,  # neutrinos: massless at collider precision
    13: 0.1056583755,
    14: 0.0,
    15: 1.77686,
    16: 0.0,
    22: 0.0,
    111: 0.1349768,
    130: 0.497611,
    211: 0.13957039,
    310: 0.497611,
    321: 0.493677,
    2112: 0.93956542052,
    2212: 0.93827208816,
    3122: 1.115683,
    3112: 1.197449,
    3222: 1.18937,
    3312: 1.32171,
    3334: 1.67245,
}


def pdg_mass(pid: np.ndarray) -> np.ndarray:
    """Mass in GeV for each PDG id (sign ignored). Vectorised over the few distinct ids.

    Raises :class:`SpecError` for an id neither in the built-in table nor known to ``particle``.
    """
    pid = np.asarray(pid)
    if pid.dtype.kind == "f":  # ML layouts often store ids as floats
        if not np.all(np.isfinite(pid)) or np.any(pid != np.round(pid)):
            raise SpecError("pdg_mass: particle ids must be integers")
    ids = np.abs(pid.astype(np.int64))
    uniq, inverse = np.unique(ids, return_inverse=True)
    masses = np.empty(len(uniq), dtype=np.float64)
    for i, u in enumerate(uniq.tolist()):  # over distinct ids only (a handful), never over particles
        m = _PDG_MASS_GEV.get(u)
        if m is None:
            m = _mass_from_particle_package(u)
        masses[i] = m
    return masses[inverse].reshape(pid.shape)


def _mass_from_particle_package(pid: int) -> float:
    try:
        from particle import Particle
    except ImportError:
        raise SpecError(
            f"pdg_mass: no mass for PDG id {pid} in the built-in table and the 'particle' package is not "
            "installed to look it up"
        ) from None
    try:
        m = Particle.from_pdgid(pid).mass
    except Exception:  # noqa: BLE001 - the package raises its own types for unknown ids
        m = None
    if m is None:
        raise SpecError(f"pdg_mass: PDG id {pid} has no known mass")
    return float(m) / 1000.0  # MeV -> GeV


def _float_dtype(*xs: np.ndarray) -> np.dtype:
    dt = np.result_type(*[x.dtype if x.dtype.kind == "f" else np.float32 for x in xs])
    return np.dtype(dt)


_NEUTRAL_IDS = np.array([0, 1, 2, 12, 14, 16, 22, 111, 130, 310, 2112, 3122], dtype=np.int64)


def charge_from_pid(pid: np.ndarray) -> np.ndarray:
    """Electric charge (float32, as ML layouts store it) implied by a particle-flow / Delphes id:
    0 for photons, neutral hadrons and neutrinos; -1 for e-, mu- (positive ids 11, 13); +1 for positive
    ids of charged hadrons (211, 321, 2212); the opposite sign for antiparticles."""
    pid = np.asarray(pid).astype(np.int64)
    a = np.abs(pid)
    sign = np.sign(pid)
    lepton = (a == 11) | (a == 13) | (a == 15)
    q = np.where(lepton, -sign, sign)
    return np.where(np.isin(a, _NEUTRAL_IDS), 0, q).astype(np.float32)


def mass_from_pid(pid: np.ndarray) -> np.ndarray:
    """The PDG mass of each particle id, as float32 (generator candidates store exactly this)."""
    return pdg_mass(pid).astype(np.float32)


def energy_from_pxpypz_pid(px: np.ndarray, py: np.ndarray, pz: np.ndarray, pid: np.ndarray) -> np.ndarray:
    """E = sqrt(px² + py² + pz² + m²) with m the PDG mass of ``pid`` (computed in float64)."""
    out = _float_dtype(px, py, pz)
    p2 = np.square(px, dtype=np.float64) + np.square(py, dtype=np.float64) + np.square(pz, dtype=np.float64)
    m = pdg_mass(pid)
    return np.sqrt(p2 + m * m).astype(out)


def energy_from_pxpypz_mass(px: np.ndarray, py: np.ndarray, pz: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """E = sqrt(px² + py² + pz² + m²) (a negative stored mass enters as -m², as in ROOT's TLorentzVector)."""
    out = _float_dtype(px, py, pz, mass)
    m = np.asarray(mass, dtype=np.float64)
    p2 = np.square(px, dtype=np.float64) + np.square(py, dtype=np.float64) + np.square(pz, dtype=np.float64)
    return np.sqrt(np.maximum(p2 + np.sign(m) * m * m, 0.0)).astype(out)


def energy_from_ptetaphimass(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """E = sqrt((pt·cosh η)² + m²); φ does not enter but is an input so the signature is the 4-vector's."""
    out = _float_dtype(pt, eta, mass)
    p = np.asarray(pt, dtype=np.float64) * np.cosh(np.asarray(eta, dtype=np.float64))
    m = np.asarray(mass, dtype=np.float64)
    return np.sqrt(p * p + m * m).astype(out)


def pt_from_pxpy(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """pT = hypot(px, py)."""
    out = _float_dtype(px, py)
    return np.hypot(np.asarray(px, dtype=np.float64), np.asarray(py, dtype=np.float64)).astype(out)


def mass_from_pxpypze(px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """m = sqrt(max(E² - p², 0)) (computed in float64)."""
    out = _float_dtype(px, py, pz, energy)
    e = np.asarray(energy, dtype=np.float64)
    p2 = np.square(px, dtype=np.float64) + np.square(py, dtype=np.float64) + np.square(pz, dtype=np.float64)
    return np.sqrt(np.maximum(e * e - p2, 0.0)).astype(out)


def _eta(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    pt = np.hypot(np.asarray(px, dtype=np.float64), np.asarray(py, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.arcsinh(np.asarray(pz, dtype=np.float64) / pt)


def deta_from_pxpypz(px: np.ndarray, py: np.ndarray, pz: np.ndarray, jet_eta: np.ndarray) -> np.ndarray:
    """eta(px, py, pz) - jet_eta: a constituent's pseudorapidity relative to its jet axis."""
    out = _float_dtype(px, py, pz)
    return (_eta(px, py, pz) - np.asarray(jet_eta, dtype=np.float64)).astype(out)


def dphi_from_pxpy(px: np.ndarray, py: np.ndarray, jet_phi: np.ndarray) -> np.ndarray:
    """phi(px, py) - jet_phi wrapped into [-pi, pi): a constituent's azimuth relative to its jet axis."""
    out = _float_dtype(px, py)
    d = np.arctan2(np.asarray(py, dtype=np.float64), np.asarray(px, dtype=np.float64)) - np.asarray(
        jet_phi, dtype=np.float64)
    return ((d + np.pi) % (2.0 * np.pi) - np.pi).astype(out)


@dataclass(frozen=True)
class DerivedFunction:
    """A registered derived-branch function: its callable, input names (documentation) and doc line."""

    name: str
    func: Callable[..., np.ndarray]
    inputs: tuple[str, ...]
    doc: str

    @property
    def arity(self) -> int:
        return len(self.inputs)


#: name -> function. A plain dict built at import from pure functions (no I/O, no plugins).
FUNCTIONS: dict[str, DerivedFunction] = {
    f.name: f
    for f in (
        DerivedFunction("energy_from_pxpypz_pid", energy_from_pxpypz_pid, ("px", "py", "pz", "pid"),
                        "energy from momentum and the PDG mass of the particle id"),
        DerivedFunction("energy_from_pxpypz_mass", energy_from_pxpypz_mass, ("px", "py", "pz", "mass"),
                        "energy from momentum and mass"),
        DerivedFunction("energy_from_ptetaphimass", energy_from_ptetaphimass, ("pt", "eta", "phi", "mass"),
                        "energy from (pt, eta, phi, mass)"),
        DerivedFunction("pt_from_pxpy", pt_from_pxpy, ("px", "py"), "transverse momentum from px, py"),
        DerivedFunction("mass_from_pid", mass_from_pid, ("pid",), "the PDG mass of the particle id"),
        DerivedFunction("charge_from_pid", charge_from_pid, ("pid",), "electric charge implied by the id"),
        DerivedFunction("deta_from_pxpypz", deta_from_pxpypz, ("px", "py", "pz", "jet_eta"),
                        "pseudorapidity relative to the jet axis (jet_eta broadcast over constituents)"),
        DerivedFunction("dphi_from_pxpy", dphi_from_pxpy, ("px", "py", "jet_phi"),
                        "azimuth relative to the jet axis, wrapped (jet_phi broadcast over constituents)"),
        DerivedFunction("mass_from_pxpypze", mass_from_pxpypze, ("px", "py", "pz", "energy"),
                        "invariant mass from the four-momentum"),
    )
}


def get_function(name: str) -> DerivedFunction:
    """The derived function called ``name``; :class:`SpecError` with near matches when unknown."""
    try:
        return FUNCTIONS[name]
    except (KeyError, TypeError):
        near = difflib.get_close_matches(str(name), FUNCTIONS, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        raise SpecError(
            f"unknown derived function {name!r}{hint} Known: {', '.join(sorted(FUNCTIONS))}."
        ) from None


def _structure(x: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """Flat values of ``x`` and the per-level counts needed to rebuild its (jagged) structure."""
    if isinstance(x, np.ndarray):
        return x.reshape(-1), []
    import awkward as ak

    arr = ak.Array(x) if not isinstance(x, ak.Array) else x
    depth = arr.ndim
    counts = [np.asarray(ak.flatten(ak.num(arr, axis=d), axis=None)) for d in range(1, depth)]
    return np.asarray(ak.flatten(arr, axis=None)), counts


def _broadcast(inputs: list[Any]) -> list[Any]:
    """Broadcast shallower awkward inputs (one value per jet) over the first input's inner lists."""
    if all(isinstance(x, np.ndarray) for x in inputs):
        return inputs
    import awkward as ak

    arrs = [x if isinstance(x, ak.Array) else ak.Array(x) for x in inputs]
    depth = arrs[0].ndim
    if all(a.ndim == depth for a in arrs):
        return arrs
    return [a if a.ndim == depth else ak.broadcast_arrays(arrs[0], a)[1] for a in arrs]


def compute(name: str, inputs: Sequence[Any]) -> Any:
    """Apply derived function ``name`` to ``inputs`` (numpy arrays, or awkward arrays of equal structure).

    Returns a numpy array for numpy inputs, else an awkward array with the first input's jagged structure;
    shallower awkward inputs (per-jet values) are broadcast over the first input's inner lists.
    """
    fn = get_function(name)
    if len(inputs) != fn.arity:
        raise SpecError(f"derived function {name!r} takes {fn.arity} inputs ({', '.join(fn.inputs)}), "
                        f"got {len(inputs)}")
    inputs = _broadcast(list(inputs))
    flats, structures = [], []
    for x in inputs:
        flat, counts = _structure(x)
        flats.append(flat)
        structures.append(counts)
    ref = structures[0]
    for i, counts in enumerate(structures[1:], start=1):
        if len(counts) != len(ref) or any(
            len(a) != len(b) or not np.array_equal(a, b) for a, b in zip(counts, ref, strict=True)
        ) or len(flats[i]) != len(flats[0]):
            raise SpecError(
                f"derived function {name!r}: input {i} ({fn.inputs[i]}) does not have the same jagged "
                f"structure as input 0 ({fn.inputs[0]})"
            )
    result = fn.func(*flats)
    if all(isinstance(x, np.ndarray) for x in inputs):
        return result.reshape(np.asarray(inputs[0]).shape)
    import awkward as ak

    out = ak.Array(result)
    for counts in reversed(ref):
        out = ak.unflatten(out, counts)
    return out
