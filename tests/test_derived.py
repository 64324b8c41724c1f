"""Derived-branch functions: physics values against independent references, jagged structure, errors."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hepslim.derived import FUNCTIONS, charge_from_pid, compute, get_function, pdg_mass
from hepslim.errors import SpecError
from hepslim.policy import Derived, load_spec, resolve

PIDS = np.array([22, 211, -211, 130, 11, -11, 13, -13, 2212, -2212, 321, 2112])


def jetclass_like(n_jets: int = 300, seed: int = 7) -> dict[str, ak.Array]:
    """Jets of constituents with PF-style ids and energies built (in float64) from the ids' masses."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(5, 80, n_jets)
    n = int(counts.sum())
    pid = rng.choice(PIDS, n, p=[0.35, 0.2, 0.2, 0.1, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.01])
    pt = rng.exponential(8.0, n) + 0.3
    eta = rng.normal(0, 1.2, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    m = {22: 0, 211: 0.13957039, 130: 0.497611, 11: 0.00051099895, 13: 0.1056583755, 2212: 0.93827208816,
         321: 0.493677, 2112: 0.93956542052}
    ids = np.abs(PIDS)
    mass = np.array([m[int(i)] for i in ids])[np.argmax(np.abs(pid)[:, None] == ids[None, :], axis=1)]
    e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    f32 = lambda x: ak.unflatten(x.astype(np.float32), counts)  # noqa: E731
    return {"part_px": f32(px), "part_py": f32(py), "part_pz": f32(pz), "part_energy": f32(e),
            "part_pid": ak.unflatten(pid.astype(np.int32), counts), "mass": mass}


def test_energy_from_pxpypz_pid_reproduces_jetclass_like_energies():
    a = jetclass_like()
    e = compute("energy_from_pxpypz_pid", [a["part_px"], a["part_py"], a["part_pz"], a["part_pid"]])
    assert ak.all(ak.num(e) == ak.num(a["part_energy"]))
    x, y = ak.flatten(a["part_energy"]).to_numpy(), ak.flatten(e).to_numpy()
    assert y.dtype == np.float32
    assert np.max(np.abs(y - x) / x) < 3e-7  # float32 rounding of the inputs only
    d = Derived("part_energy", "energy_from_pxpypz_pid", ("part_px", "part_py", "part_pz", "part_pid"), 1e-6)
    assert d.matches(a["part_energy"], d.compute(a))


def test_energy_from_rounded_momenta_stays_within_the_rounding_bound():
    a = jetclass_like()
    p = resolve("jetclass", "part_px", "float32")
    rounded = {k: ak.unflatten(p.apply_values(ak.flatten(a[k]).to_numpy()), ak.num(a[k]))
               for k in ("part_px", "part_py", "part_pz")}
    rounded["part_pid"] = a["part_pid"]
    d = load_spec("jetclass").derived_for("part_energy")
    bound = p.error_bound().value
    e = ak.flatten(d.compute(rounded)).to_numpy().astype(np.float64)
    x = ak.flatten(a["part_energy"]).to_numpy()
    # each component has |dp_i| <= b |p_i|, so |dE| <= b E (plus float32 rounding)
    assert np.all(np.abs(e - x) <= (bound + 1e-6) * x)
    assert d.matches(a["part_energy"], d.compute(rounded))


def test_wrong_mass_hypothesis_is_detected():
    a = jetclass_like()
    pid = ak.flatten(a["part_pid"]).to_numpy().copy()
    pid[np.abs(pid) == 321] = 211 * np.sign(pid[np.abs(pid) == 321])  # kaons labelled as pions
    bad = dict(a, part_pid=ak.unflatten(pid, ak.num(a["part_pid"])))
    d = load_spec("jetclass").derived_for("part_energy")
    assert not d.matches(a["part_energy"], d.compute(bad))


def test_energy_from_ptetaphimass_against_vector():
    vector = pytest.importorskip("vector")
    rng = np.random.default_rng(3)
    pt, eta = rng.exponential(30, 1000) + 1, rng.normal(0, 2, 1000)
    phi, m = rng.uniform(-np.pi, np.pi, 1000), rng.exponential(5, 1000)
    ref = vector.array({"pt": pt, "eta": eta, "phi": phi, "mass": m}).energy
    got = compute("energy_from_ptetaphimass", [pt, eta, phi, m])
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(compute("pt_from_pxpy", [pt * np.cos(phi), pt * np.sin(phi)]), pt, rtol=1e-12)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    np.testing.assert_allclose(compute("mass_from_pxpypze", [px, py, pz, ref]), m, rtol=1e-6, atol=1e-4)


def test_pdg_masses_and_charges():
    np.testing.assert_allclose(pdg_mass(np.array([211, -211, 22, 13, 2212, 12])),
                               [0.13957039, 0.13957039, 0, 0.1056583755, 0.93827208816, 0])
    assert charge_from_pid(np.array([22, 211, -211, 11, -11, 13, -13, 130, 2212, -321])).tolist() == [
        0, 1, -1, -1, 1, -1, 1, 0, 1, -1]
    # ids outside the built-in table come from the `particle` package
    pytest.importorskip("particle")
    assert abs(pdg_mass(np.array([443]))[0] - 3.0969) < 1e-3  # J/psi
    with pytest.raises(SpecError, match="integers"):
        pdg_mass(np.array([211.5]))


def test_deta_dphi_broadcast_the_jet_axis():
    rng = np.random.default_rng(5)
    counts = np.array([3, 0, 5, 1])
    jet_eta, jet_phi = np.array([0.5, -1.0, 2.0, 0.0]), np.array([3.0, 0.0, -3.1, 1.0])
    deta = rng.normal(0, 0.2, counts.sum())
    dphi = rng.normal(0, 0.2, counts.sum())
    eta, phi = np.repeat(jet_eta, counts) + deta, np.repeat(jet_phi, counts) + dphi
    pt = rng.uniform(1, 50, counts.sum())
    px, py, pz = (ak.unflatten(v, counts) for v in (pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)))
    got_eta = compute("deta_from_pxpypz", [px, py, pz, ak.Array(jet_eta)])
    got_phi = compute("dphi_from_pxpy", [px, py, ak.Array(jet_phi)])
    assert ak.all(ak.num(got_eta) == counts)
    np.testing.assert_allclose(ak.flatten(got_eta).to_numpy(), deta, atol=1e-12)
    np.testing.assert_allclose(ak.flatten(got_phi).to_numpy(), dphi, atol=1e-12)  # wrapped across +-pi


def test_generated_jetclass_sample(tmp_path):
    """hepslim's Pythia jetclass layout: angles and charges are reproduced from the stored momenta."""
    pytest.importorskip("pythia8mc")
    uproot = pytest.importorskip("uproot")
    from hepslim.samples import generate

    path = tmp_path / "jc.root"
    generate("jetclass", 10, str(path), seed=3)
    a = uproot.open(path)["Events"].arrays()
    spec = load_spec("jetclass")
    for name in ("part_deta", "part_dphi", "part_charge"):
        d = spec.derived_for(name)
        assert d.matches(a[name], d.compute({k: a[k] for k in a.fields})), name


def test_registry_errors():
    assert {"energy_from_pxpypz_pid", "energy_from_ptetaphimass", "pt_from_pxpy"} <= set(FUNCTIONS)
    with pytest.raises(SpecError, match="did you mean 'pt_from_pxpy'"):
        get_function("pt_from_pxyp")
    with pytest.raises(SpecError, match="takes 2 inputs"):
        compute("pt_from_pxpy", [np.ones(3)])
    with pytest.raises(SpecError, match="same jagged structure"):
        compute("pt_from_pxpy", [ak.Array([[1.0, 2.0], [3.0]]), ak.Array([[1.0], [2.0, 3.0]])])
    d = Derived("x", "pt_from_pxpy", ("a", "b"), 0.0)
    with pytest.raises(SpecError, match="needs b"):
        d.compute({"a": np.ones(2)})


def test_matches_uses_relative_and_absolute_tolerance():
    d = Derived("m", "mass_from_pid", ("pid",), tolerance=1e-3, abs_tolerance=1e-4)
    orig = np.array([0.13952637, 6e-5, -3e-5, np.nan], np.float32)
    assert d.matches(orig, np.array([0.13957039, 0.0, 0.0, np.nan], np.float32))
    assert not d.matches(orig, np.array([0.1400, 0.0, 0.0, np.nan], np.float32))
    assert not Derived("m", "mass_from_pid", ("pid",), 1e-3).matches(orig[1:2], np.zeros(1, np.float32))
