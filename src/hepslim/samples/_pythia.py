"""Pythia8 event generation: one ``Pythia`` per process, events extracted into flat numpy columns.

Only the particles a layout can use are read out of the event record (final state, hard process,
t/W/Z/H/tau copies, b/c hadrons), which halves the Python-side cost per event.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepslim.errors import HepslimError, MissingDependencyError

#: Pythia settings per physics process (13.6 TeV pp; particles with c*tau0 > 10 mm are left undecayed,
#: as a detector sees K0S, Lambda, pions and kaons; b and c hadrons decay with displaced vertices).
PROCESSES: dict[str, tuple[str, ...]] = {
    # inclusive ttbar: leptons, b jets, MET; for NanoAOD/PFNano-like samples
    "ttbar": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on"),
    # boosted hadronic tops (t -> b W, W -> q q'), top pT around 500-650 GeV, for top-tagging jets
    "top": (
        "Top:gg2ttbar = on",
        "Top:qqbar2ttbar = on",
        "PhaseSpace:pTHatMin = 475.",
        "PhaseSpace:pTHatMax = 700.",
        "24:onMode = off",
        "24:onIfAny = 1 2 3 4 5",
    ),
    # QCD dijets in the same pT window (the top-tagging background)
    "qcd": ("HardQCD:all = on", "PhaseSpace:pTHatMin = 450.", "PhaseSpace:pTHatMax = 700."),
}

_COMMON = (
    "Beams:eCM = 13600.",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Random:setSeed = on",
    "ParticleDecays:limitTau0 = on",
    "ParticleDecays:tau0Max = 10.",
)

#: columns read for every kept particle; vertices are in mm, momenta in GeV
COLUMNS = ("m1", "px", "py", "pz", "e", "m", "vx", "vy", "vz", "charge")
_MAX_SEED = 900_000_000


def make_pythia(process: str, seed: int) -> Any:
    """An initialised, quiet Pythia for ``process`` with the given seed (0 <= seed <= 900000000)."""
    try:
        import pythia8mc as pythia8
    except ImportError as exc:
        raise MissingDependencyError("pythia8mc", "samples", "sample generation") from exc
    if process not in PROCESSES:
        raise HepslimError(f"unknown process {process!r}; known: {', '.join(PROCESSES)}")
    if not 0 <= seed <= _MAX_SEED:
        raise HepslimError(f"seed must be in [0, {_MAX_SEED}] (Pythia's range), got {seed}")
    py = pythia8.Pythia("", False)
    for s in (*_COMMON, f"Random:seed = {seed}", *PROCESSES[process]):
        if not py.readString(s):
            raise HepslimError(f"Pythia rejected setting {s!r}")
    if not py.init():
        raise HepslimError(f"Pythia failed to initialise process {process!r}")
    return py


def _keep_mask(pid: np.ndarray, status: np.ndarray) -> np.ndarray:
    from hepslim.samples._physics import is_b_hadron, is_c_hadron

    a = np.abs(pid)
    sa = np.abs(status)
    return (
        (status > 0)
        | ((sa >= 21) & (sa <= 29))
        | np.isin(a, (6, 15, 23, 24, 25))
        | is_b_hadron(pid)
        | is_c_hadron(pid)
    )


def generate_events(pythia: Any, n: int, progress: Any = None) -> Any:
    """Generate ``n`` events; returns an awkward array of events with a jagged ``part`` record
    (idx, id, status and :data:`COLUMNS`) and ``weight``, ``nfull`` (size of Pythia's record)."""
    import awkward as ak

    ids: list[np.ndarray] = []
    sts: list[np.ndarray] = []
    idxs: list[np.ndarray] = []
    rows: list[list[tuple[float, ...]]] = []
    counts = np.zeros(n, np.int64)
    nfull = np.zeros(n, np.int64)
    weight = np.zeros(n, np.float64)
    i = 0
    failures = 0
    while i < n:
        if not pythia.next():
            failures += 1
            if failures > 100:
                raise HepslimError("Pythia failed to generate 100 events in a row")
            continue
        parts = pythia.event.particles()
        pid = np.fromiter((q.id() for q in parts), np.int32, len(parts))
        st = np.fromiter((q.status() for q in parts), np.int32, len(parts))
        sel = np.flatnonzero(_keep_mask(pid, st))
        rows.append(
            [
                (q.mother1(), q.px(), q.py(), q.pz(), q.e(), q.m(), q.xProd(), q.yProd(), q.zProd(), q.charge())
                for q in (parts[j] for j in sel)
            ]
        )
        ids.append(pid[sel])
        sts.append(st[sel])
        idxs.append(sel.astype(np.int32))
        counts[i] = len(sel)
        nfull[i] = len(parts)
        weight[i] = pythia.infoPython().weight()
        i += 1
        if progress is not None:
            progress(1)
    flat = np.array([r for ev in rows for r in ev], dtype=np.float64).reshape(-1, len(COLUMNS))
    cols: dict[str, Any] = {
        "idx": np.concatenate(idxs) if idxs else np.zeros(0, np.int32),
        "id": np.concatenate(ids) if ids else np.zeros(0, np.int32),
        "status": np.concatenate(sts) if sts else np.zeros(0, np.int32),
    }
    for k, name in enumerate(COLUMNS):
        cols[name] = flat[:, k].astype(np.int32) if name == "m1" else flat[:, k]
    part = ak.unflatten(ak.zip(cols), counts)
    return ak.zip({"part": part, "weight": weight, "nfull": nfull}, depth_limit=1)
