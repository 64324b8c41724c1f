"""Turn generated Pythia events into the branch tables of the three layouts.

Detector model (simple, documented, not a full simulation):

* **PF candidates** are the visible final-state particles (no neutrinos) with |eta| < 5 above thresholds
  (charged pT > 0.4 GeV, photons E > 0.5 GeV, neutral hadrons E > 1 GeV). Resolutions: tracks
  sigma(pT)/pT = 1% (+) 1e-4 pT, sigma(eta, phi) = 5e-4; photons sigma(E)/E = 5%/sqrt(E) (+) 0.5%;
  neutral hadrons 100%/sqrt(E) (+) 5%; neutrals sigma(eta, phi) = 0.01. PF ids: +-11, +-13, 22,
  +-211 (other charged), 130 (other neutral), each with the mass of that id (the PF hypothesis: a kaon
  reconstructed as a charged hadron carries the pion mass), so E = sqrt(p^2 + m(id)^2).
* **Impact parameters** of charged candidates from Pythia production vertices (beam spot at the origin):
  d0 = (x py - y px)/pT and dz = z - (x px + y py)/pT * pz/pT, in cm, smeared by
  sigma(d0) = 20 um (+) 100 um/pT[GeV], sigma(dz) = 30 um (+) 120 um/pT; neutrals have d0 = dz = 0.
* **Secondary vertices**: charged candidates with pT > 0.8 GeV that share a displaced (> 100 um) true
  production vertex, at least two of them; position smeared by 50 um per coordinate.
* **Reco jets** are anti-kT clusters of PF candidates (R = 0.4 with pT > 15 GeV; fat jets R = 0.8 with
  pT > 170 GeV); **GenJets** are anti-kT 0.4 clusters of the unsmeared visible particles (pT > 10 GeV).
  Hadron flavour: 5 if a b hadron with pT > 5 GeV lies within Delta R < R of the jet, else 4 for a c
  hadron, else 0. ``Jet_btagDeepFlavB`` is a parametrised tagger response drawn from a Beta
  distribution per flavour (b: Beta(6, 1.2), c: Beta(1.2, 3), light: Beta(0.4, 10)).
* **Leptons** are PF muons (pT > 3 GeV, |eta| < 2.4) and electrons (pT > 5 GeV, |eta| < 2.5) with
  relative PF isolation in Delta R < 0.3; ``tightId`` = iso < 0.15 and |dxy| < 0.05 cm.
* **MET** is minus the vector sum of all PF candidates; GenMET the sum of the neutrinos.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepslim.derived import pdg_mass
from hepslim.samples._physics import (
    cluster,
    delta_phi,
    delta_r,
    is_b_hadron,
    is_c_hadron,
    pt_eta_phi_m,
    px_py_pz_e,
    substructure,
)

Table = dict[str, Any]  # flat branch name -> numpy (one value per row) or awkward (jagged) array


def _ak() -> Any:
    import awkward as ak

    return ak


def _flat(x: Any) -> np.ndarray:
    ak = _ak()
    return ak.to_numpy(ak.flatten(x, axis=None))


def _unflat(values: np.ndarray, counts: Any) -> Any:
    return _ak().unflatten(values, counts)


def _f32(x: Any) -> Any:
    return _ak().values_astype(x, np.float32)


# ------------------------------------------------------------------------------------ particle lists
def _with_kin(p: Any) -> Any:
    ak = _ak()
    pt, eta, phi, m = pt_eta_phi_m(p.px, p.py, p.pz, p.e)
    return ak.with_field(ak.with_field(ak.with_field(p, pt, "pt"), eta, "eta"), phi, "phi")


def gen_visible(part: Any) -> Any:
    """Final-state visible particles (no neutrinos) with |eta| < 5, with pt/eta/phi fields."""
    ak = _ak()
    fin = part[part.status > 0]
    aid = np.abs(fin.id)
    fin = fin[(aid != 12) & (aid != 14) & (aid != 16)]
    fin = _with_kin(fin)
    return fin[np.abs(fin.eta) < 5.0]


def pf_candidates(part: Any, rng: np.random.Generator) -> Any:
    """Smeared PF candidates (see the module docstring) as events * candidates records."""
    ak = _ak()
    vis = gen_visible(part)
    counts = ak.num(vis)
    f = {k: _flat(vis[k]) for k in ("idx", "id", "px", "py", "pz", "e", "m", "vx", "vy", "vz", "charge", "pt", "eta", "phi")}
    n = len(f["px"])
    charged = f["charge"] != 0
    aid = np.abs(f["id"])
    photon = aid == 22
    e = f["e"]
    sig = np.where(
        charged,
        np.hypot(0.01, 1e-4 * f["pt"]),
        np.where(photon, np.hypot(0.05 / np.sqrt(np.maximum(e, 1e-3)), 0.005), np.hypot(1.0 / np.sqrt(np.maximum(e, 1e-3)), 0.05)),
    )
    scale = np.maximum(1.0 + sig * rng.standard_normal(n), 0.05)
    sang = np.where(charged, 5e-4, 0.01)
    pt = f["pt"] * scale
    eta = f["eta"] + sang * rng.standard_normal(n)
    phi = delta_phi(f["phi"] + sang * rng.standard_normal(n), 0.0)
    pdg = np.where(
        (aid == 11) | (aid == 13),
        f["id"],
        np.where(photon, 22, np.where(charged, 211 * np.sign(f["charge"]).astype(np.int64), 130)),
    ).astype(np.int32)
    m = pdg_mass(pdg)  # the PF mass hypothesis of the candidate's type, as a PF reconstruction assigns
    px, py, pz, en = px_py_pz_e(pt, eta, phi, m)
    # impact parameters from the true production vertex (mm -> cm), smeared; zero for neutrals
    x, y, z = f["vx"] / 10.0, f["vy"] / 10.0, f["vz"] / 10.0
    tpt = np.maximum(f["pt"], 1e-9)
    d0 = (x * f["py"] - y * f["px"]) / tpt
    dz = z - (x * f["px"] + y * f["py"]) / tpt * (f["pz"] / tpt)
    d0err = np.hypot(0.0020, 0.010 / np.maximum(pt, 1e-3))
    dzerr = np.hypot(0.0030, 0.012 / np.maximum(pt, 1e-3))
    d0 = np.where(charged, d0 + d0err * rng.standard_normal(n), 0.0)
    dz = np.where(charged, dz + dzerr * rng.standard_normal(n), 0.0)
    d0err = np.where(charged, d0err, 0.0)
    dzerr = np.where(charged, dzerr, 0.0)
    keep = np.where(charged, pt > 0.4, np.where(photon, en > 0.5, en > 1.0))
    rec = {
        "idx": f["idx"], "pt": pt, "eta": eta, "phi": phi, "mass": m, "px": px, "py": py, "pz": pz,
        "e": en, "charge": f["charge"], "pdgId": pdg, "d0": d0, "dz": dz, "d0Err": d0err, "dzErr": dzerr,
        "vx": x, "vy": y, "vz": z,
    }  # fmt: skip
    evt = np.repeat(np.arange(len(counts)), ak.to_numpy(counts))
    newcounts = np.bincount(evt[keep], minlength=len(counts))
    return ak.unflatten(ak.zip({k: v[keep] for k, v in rec.items()}), newcounts)


def _jets_from(parts: Any, radius: float, ptmin: float, etamax: float) -> tuple[Any, Any]:
    """Cluster ``parts`` and keep jets with |eta| < etamax; returns (jets with kinematics, constituent index)."""
    ak = _ak()
    jets, idx = cluster(parts.px, parts.py, parts.pz, parts.e, radius, ptmin)
    pt, eta, phi, m = pt_eta_phi_m(jets.px, jets.py, jets.pz, jets.E)
    jets = ak.zip({"px": jets.px, "py": jets.py, "pz": jets.pz, "e": jets.E, "pt": pt, "eta": eta, "phi": phi, "mass": m})
    sel = np.abs(jets.eta) < etamax
    return jets[sel], idx[sel]


def _flavour(jets: Any, part: Any, radius: float) -> Any:
    """Hadron flavour 5/4/0 by Delta R matching to b/c hadrons with pT > 5 GeV."""
    ak = _ak()
    had = _with_kin(part)
    had = had[had.pt > 5.0]
    pid_flat = _flat(had.id)
    isb = _unflat(is_b_hadron(pid_flat), ak.num(had))
    isc = _unflat(is_c_hadron(pid_flat), ak.num(had))
    pairs = ak.cartesian({"j": jets, "h": ak.zip({"eta": had.eta, "phi": had.phi, "b": isb, "c": isc})}, nested=True)
    close = delta_r(pairs.j.eta, pairs.j.phi, pairs.h.eta, pairs.h.phi) < radius
    hasb = ak.any(close & pairs.h.b, axis=-1)
    hasc = ak.any(close & pairs.h.c, axis=-1)
    return ak.values_astype(ak.where(hasb, 5, ak.where(hasc, 4, 0)), np.uint8)


def _constituent_fields(pf: Any, idx: Any) -> Any:
    """Per jet, its constituents' PF records (events * jets * constituents)."""
    ak = _ak()
    nj = ak.num(idx, axis=1)
    flat_idx = ak.flatten(idx, axis=2)  # events * (all constituents)
    cons = pf[flat_idx]
    per_jet = ak.num(idx, axis=2)
    return ak.unflatten(cons, ak.flatten(per_jet), axis=1) if len(pf) else cons, nj


def _jet_table(prefix: str, jets: Any, cons: Any, flav: Any, rng: np.random.Generator) -> Table:
    ak = _ak()
    ej = jets.e
    t: Table = {}
    for k in ("pt", "eta", "phi", "mass"):
        t[f"{prefix}_{k}"] = _f32(jets[k])
    a = np.abs(cons.pdgId)

    def frac(mask: Any) -> Any:
        return _f32(ak.sum(ak.where(mask, cons.e, 0.0), axis=-1) / ej)

    t[f"{prefix}_chHEF"] = frac(a == 211)
    t[f"{prefix}_neHEF"] = frac(a == 130)
    t[f"{prefix}_chEmEF"] = frac(a == 11)
    t[f"{prefix}_neEmEF"] = frac(a == 22)
    t[f"{prefix}_muEF"] = frac(a == 13)
    ncon = ak.num(cons, axis=-1)
    t[f"{prefix}_nConstituents"] = ak.values_astype(np.minimum(ncon, 255), np.uint8)
    good = (t[f"{prefix}_neHEF"] < 0.9) & (t[f"{prefix}_neEmEF"] < 0.9) & (ncon > 1)
    t[f"{prefix}_jetId"] = ak.values_astype(ak.where(good, 6, 0), np.uint8)
    t[f"{prefix}_hadronFlavour"] = flav
    ff = _flat(flav)
    alpha = np.select([ff == 5, ff == 4], [6.0, 1.2], 0.4)
    beta = np.select([ff == 5, ff == 4], [1.2, 3.0], 10.0)
    t[f"{prefix}_btagDeepFlavB"] = _unflat(rng.beta(alpha, beta).astype(np.float32), ak.num(flav))
    return t


def _match_index(a: Any, b: Any, dr_max: float) -> Any:
    """For each object of ``a``, the index of the nearest ``b`` within dr_max, else -1 (int16)."""
    ak = _ak()
    pairs = ak.cartesian({"a": a, "b": b}, nested=True)
    dr = delta_r(pairs.a.eta, pairs.a.phi, pairs.b.eta, pairs.b.phi)
    best = ak.argmin(dr, axis=-1, keepdims=True)
    dmin = ak.firsts(dr[best], axis=-1)
    best = ak.firsts(best, axis=-1)
    out = ak.where(ak.fill_none(dmin, 99.0) < dr_max, ak.fill_none(best, -1), -1)
    return ak.values_astype(out, np.int16)


# --------------------------------------------------------------------------------------- event-level
def _event_branches(ev: Any, first_event: int) -> Table:
    n = len(ev)
    number = np.arange(first_event, first_event + n, dtype=np.uint64) + 1
    return {
        "run": np.ones(n, np.uint32),
        "luminosityBlock": (1 + (number - 1) // 500).astype(np.uint32),
        "event": number,
        "genWeight": np.asarray(ev.weight, np.float32),
    }


def _full_index_map(ev: Any) -> tuple[np.ndarray, np.ndarray]:
    """(offsets into a flat per-full-record map, map full-record index -> flat kept position or -1)."""
    ak = _ak()
    nfull = np.asarray(ev.nfull, np.int64)
    off = np.concatenate([[0], np.cumsum(nfull)])
    counts = ak.to_numpy(ak.num(ev.part))
    evt = np.repeat(np.arange(len(ev)), counts)
    table = np.full(off[-1], -1, np.int64)
    table[off[evt] + _flat(ev.part.idx)] = np.arange(len(evt))
    return off, table


def _genpart(ev: Any) -> tuple[Table, tuple[np.ndarray, np.ndarray]]:
    ak = _ak()
    part = _with_kin(ev.part)
    a = np.abs(part.id)
    sa = np.abs(part.status)
    fin = part.status > 0
    keep = ((sa >= 21) & (sa <= 29)) | (a == 6) | (a == 15) | (a == 23) | (a == 24) | (a == 25)
    keep = keep | (fin & (a >= 11) & (a <= 16) & (part.pt > 3.0))
    g = part[keep]
    counts = ak.to_numpy(ak.num(g))
    evt = np.repeat(np.arange(len(ev)), counts)
    nfull = np.asarray(ev.nfull, np.int64)
    off = np.concatenate([[0], np.cumsum(nfull)])
    local = ak.to_numpy(ak.flatten(ak.local_index(g)))
    table = np.full(off[-1], -1, np.int64)
    table[off[evt] + _flat(g.idx)] = local
    m1 = _flat(g.m1)
    mother = np.where(m1 > 0, table[off[evt] + np.maximum(m1, 0)], -1)
    st = _flat(g.status)
    sta = np.abs(st)
    status = np.where(st > 0, 1, np.where((sta >= 21) & (sta <= 29), sta, 2))
    return {
        "GenPart_pt": _f32(g.pt),
        "GenPart_eta": _f32(g.eta),
        "GenPart_phi": _f32(g.phi),
        "GenPart_mass": _f32(g.m),
        "GenPart_pdgId": ak.values_astype(g.id, np.int32),
        "GenPart_status": _unflat(status.astype(np.int32), counts),
        "GenPart_genPartIdxMother": _unflat(mother.astype(np.int16), counts),
    }, (off, table)


def _leptons(pf: Any, genmap: tuple[np.ndarray, np.ndarray]) -> Table:
    ak = _ak()
    off, table = genmap
    out: Table = {}
    for name, pid, ptmin, etamax in (("Muon", 13, 3.0, 2.4), ("Electron", 11, 5.0, 2.5)):
        lep = pf[(np.abs(pf.pdgId) == pid) & (pf.pt > ptmin) & (np.abs(pf.eta) < etamax)]
        pairs = ak.cartesian({"l": lep, "c": pf[["eta", "phi", "pt"]]}, nested=True)
        dr = delta_r(pairs.l.eta, pairs.l.phi, pairs.c.eta, pairs.c.phi)
        cone = ak.sum(ak.where((dr < 0.3) & (dr > 1e-9), pairs.c.pt, 0.0), axis=-1)
        iso = cone / lep.pt
        counts = ak.to_numpy(ak.num(lep))
        evt = np.repeat(np.arange(len(lep)), counts)
        gidx = table[off[evt] + _flat(lep.idx)]
        out.update(
            {
                f"{name}_pt": _f32(lep.pt),
                f"{name}_eta": _f32(lep.eta),
                f"{name}_phi": _f32(lep.phi),
                f"{name}_mass": _f32(lep.mass),
                f"{name}_charge": ak.values_astype(lep.charge, np.int32),
                f"{name}_pdgId": ak.values_astype(lep.pdgId, np.int32),
                f"{name}_pfRelIso03_all": _f32(iso),
                f"{name}_dxy": _f32(lep.d0),
                f"{name}_dxyErr": _f32(lep.d0Err),
                f"{name}_dz": _f32(lep.dz),
                f"{name}_dzErr": _f32(lep.dzErr),
                f"{name}_tightId": (iso < 0.15) & (np.abs(lep.d0) < 0.05),
                f"{name}_genPartIdx": _unflat(gidx.astype(np.int16), counts),
            }
        )
    return out


def _met(pf: Any, part: Any) -> Table:
    ak = _ak()
    mx = -ak.sum(pf.px, axis=1)
    my = -ak.sum(pf.py, axis=1)
    fin = part[part.status > 0]
    a = np.abs(fin.id)
    nu = fin[(a == 12) | (a == 14) | (a == 16)]
    gx, gy = ak.sum(nu.px, axis=1), ak.sum(nu.py, axis=1)
    return {
        "MET_pt": ak.to_numpy(np.hypot(mx, my)).astype(np.float32),
        "MET_phi": ak.to_numpy(np.arctan2(my, mx)).astype(np.float32),
        "MET_sumEt": ak.to_numpy(ak.sum(pf.pt, axis=1)).astype(np.float32),
        "GenMET_pt": ak.to_numpy(np.hypot(gx, gy)).astype(np.float32),
        "GenMET_phi": ak.to_numpy(np.arctan2(gy, gx)).astype(np.float32),
    }


def _secondary_vertices(pf: Any, rng: np.random.Generator) -> Any:
    """Secondary vertices from displaced true production vertices shared by >= 2 tracks (pT > 0.8)."""
    ak = _ak()
    trk = pf[(pf.charge != 0) & (pf.pt > 0.8)]
    counts = ak.to_numpy(ak.num(trk))
    evt = np.repeat(np.arange(len(trk)), counts)
    vx, vy, vz = _flat(trk.vx), _flat(trk.vy), _flat(trk.vz)
    r = np.sqrt(vx * vx + vy * vy + vz * vz)
    disp = r > 0.01
    evt, vx, vy, vz = evt[disp], vx[disp], vy[disp], vz[disp]
    px, py, pz, e = (_flat(trk[k])[disp] for k in ("px", "py", "pz", "e"))
    order = np.lexsort((vz, vy, vx, evt))
    evt, vx, vy, vz, px, py, pz, e = (a[order] for a in (evt, vx, vy, vz, px, py, pz, e))
    if len(evt):
        new = np.ones(len(evt), bool)
        new[1:] = (evt[1:] != evt[:-1]) | (vx[1:] != vx[:-1]) | (vy[1:] != vy[:-1]) | (vz[1:] != vz[:-1])
        starts = np.flatnonzero(new)
    else:
        starts = np.zeros(0, np.int64)
    ntrk = np.diff(np.append(starts, len(evt)))
    sums = [np.add.reduceat(a, starts) if len(starts) else np.zeros(0) for a in (px, py, pz, e)]
    good = ntrk >= 2
    s = starts[good]
    ntrk = ntrk[good]
    spx, spy, spz, se = (a[good] for a in sums)
    sev = evt[s]
    sig = 0.005
    x = vx[s] + sig * rng.standard_normal(len(s))
    y = vy[s] + sig * rng.standard_normal(len(s))
    z = vz[s] + sig * rng.standard_normal(len(s))
    pt, eta, phi, m = pt_eta_phi_m(spx, spy, spz, se)
    dlen = np.sqrt(x * x + y * y + z * z)
    dxy = np.hypot(x, y)
    cosang = (x * spx + y * spy + z * spz) / np.maximum(dlen * np.sqrt(spx**2 + spy**2 + spz**2), 1e-12)
    ndof = (2 * ntrk - 3).astype(np.float32)
    chi2 = rng.chisquare(ndof) / ndof
    order = np.lexsort((-pt, sev))
    nsv = np.bincount(sev, minlength=len(pf))
    cols = {
        "x": x, "y": y, "z": z, "pt": pt, "eta": eta, "phi": phi, "mass": m, "dlen": dlen,
        "dlenSig": dlen / (sig * np.sqrt(3.0)), "dxy": dxy, "dxySig": dxy / (sig * np.sqrt(2.0)),
        "pAngle": np.arccos(np.clip(cosang, -1, 1)), "chi2": chi2, "ndof": ndof,
    }  # fmt: skip
    rec = {k: v[order].astype(np.float32) for k, v in cols.items()}
    rec["ntracks"] = ntrk[order].astype(np.uint8)
    return ak.unflatten(ak.zip(rec), nsv)


# ------------------------------------------------------------------------------------------- layouts
def build_nanoaod(ev: Any, rng: np.random.Generator, first_event: int) -> Table:
    """NanoAOD-like event table: GenPart, GenJet, Jet, FatJet, Muon, Electron, MET, GenMET."""
    ak = _ak()
    t = _event_branches(ev, first_event)
    gp, genmap = _genpart(ev)
    t.update(gp)
    gvis = gen_visible(ev.part)
    gvis = ak.with_field(gvis, gvis.e, "e")
    gjets, _ = _jets_from(gvis, 0.4, 10.0, 5.0)
    t.update({f"GenJet_{k}": _f32(gjets[k]) for k in ("pt", "eta", "phi", "mass")})
    t["GenJet_hadronFlavour"] = _flavour(gjets, ev.part, 0.4)
    pf = pf_candidates(ev.part, rng)
    jets, idx = _jets_from(pf, 0.4, 15.0, 4.7)
    cons, _ = _constituent_fields(pf, idx)
    t.update(_jet_table("Jet", jets, cons, _flavour(jets, ev.part, 0.4), rng))
    t["Jet_genJetIdx"] = _match_index(jets, gjets, 0.2)
    fat, fidx = _jets_from(pf, 0.8, 170.0, 2.5)
    fcons, _ = _constituent_fields(pf, fidx)
    t.update({f"FatJet_{k}": _f32(fat[k]) for k in ("pt", "eta", "phi", "mass")})
    flat_cons = ak.flatten(fcons, axis=1)
    sub = substructure(flat_cons.px, flat_cons.py, flat_cons.pz, flat_cons.e, 0.8)
    nf = ak.num(fat)
    for k in ("msoftdrop", "tau1", "tau2", "tau3"):
        t[f"FatJet_{k}"] = _unflat(sub[k].astype(np.float32), nf)
    t["FatJet_nConstituents"] = ak.values_astype(np.minimum(ak.num(fcons, axis=-1), 255), np.uint8)
    t["FatJet_hadronFlavour"] = _flavour(fat, ev.part, 0.8)
    t.update(_leptons(pf, genmap))
    t.update(_met(pf, ev.part))
    return t


def build_pfnano(ev: Any, rng: np.random.Generator, first_event: int) -> Table:
    """PFNano-like event table: Jet (+ flavour), PFCands of the jets, JetPFCands, SV, JetSVs, GenJet."""
    ak = _ak()
    t = _event_branches(ev, first_event)
    pf = pf_candidates(ev.part, rng)
    jets, idx = _jets_from(pf, 0.4, 15.0, 2.5)
    cons, nj = _constituent_fields(pf, idx)
    t.update(_jet_table("Jet", jets, cons, _flavour(jets, ev.part, 0.4), rng))
    gvis = gen_visible(ev.part)
    gjets, _ = _jets_from(gvis, 0.4, 10.0, 5.0)
    t.update({f"GenJet_{k}": _f32(gjets[k]) for k in ("pt", "eta", "phi", "mass")})
    t["GenJet_hadronFlavour"] = _flavour(gjets, ev.part, 0.4)
    t["Jet_genJetIdx"] = _match_index(jets, gjets, 0.2)
    # PF candidates of the jets, sorted by decreasing pT; JetPFCands maps jet <-> candidate
    cand = ak.flatten(cons, axis=2)
    jet_of = ak.flatten(ak.broadcast_arrays(ak.local_index(idx, axis=1), idx)[0], axis=2)
    order = ak.argsort(cand.pt, axis=1, ascending=False)
    inv = ak.argsort(order, axis=1)
    cand = cand[order]
    for k in ("pt", "eta", "phi", "mass", "d0", "dz", "d0Err", "dzErr"):
        t[f"PFCands_{k}"] = _f32(cand[k])
    t["PFCands_charge"] = ak.values_astype(cand.charge, np.int32)
    t["PFCands_pdgId"] = cand.pdgId
    t["PFCands_puppiWeight"] = _f32(ak.ones_like(cand.pt))
    t["JetPFCands_jetIdx"] = ak.values_astype(jet_of, np.int32)
    t["JetPFCands_pFCandsIdx"] = ak.values_astype(inv, np.int32)
    sv = _secondary_vertices(pf, rng)
    for k in sv.fields:
        t[f"SV_{k}"] = sv[k]
    jsv = _match_index(sv, jets, 0.4)  # per SV, its jet
    svi = ak.local_index(jsv)
    has = jsv >= 0
    t["JetSVs_jetIdx"] = ak.values_astype(jsv[has], np.int32)
    t["JetSVs_sVIdx"] = ak.values_astype(svi[has], np.int32)
    return t


def _top_quarks(ev: Any) -> Any:
    """Per event the hard-process quarks of top decays: eta, phi and slot (+1 top, -1 antitop)."""
    ak = _ak()
    off, table = _full_index_map(ev)
    p = ev.part
    counts = ak.to_numpy(ak.num(p))
    evt = np.repeat(np.arange(len(ev)), counts)
    pid, st, m1 = _flat(p.id), _flat(p.status), _flat(p.m1)
    px, py, pz, e = (_flat(p[k]) for k in ("px", "py", "pz", "e"))
    q = (np.abs(st) == 23) & (np.abs(pid) <= 5)
    pos = np.where(q & (m1 > 0), table[off[evt] + np.maximum(m1, 0)], -1)
    for _ in range(50):  # walk up the W's shower copies (W -> W -> ... -> t); vectorised over quarks
        isw = (pos >= 0) & (np.abs(pid[np.maximum(pos, 0)]) == 24)
        if not isw.any():
            break
        up = m1[np.maximum(pos, 0)]
        pos = np.where(isw, np.where(up > 0, table[off[evt] + np.maximum(up, 0)], -1), pos)
    top = (pos >= 0) & (np.abs(pid[np.maximum(pos, 0)]) == 6)
    sel = q & top
    _, eta, phi, _ = pt_eta_phi_m(px[sel], py[sel], pz[sel], e[sel])
    slot = np.sign(pid[pos[sel]])
    n = np.bincount(evt[sel], minlength=len(ev))
    return ak.unflatten(ak.zip({"eta": eta, "phi": phi, "slot": slot}), n)


def build_jetclass(ev: Any, rng: np.random.Generator, first_event: int, *, process: str) -> Table:
    """JetClass-style jet table (one row per jet): anti-kT 0.8 jets with 500 < pT < 650 GeV and
    |eta| < 2; for ``top`` only jets containing all three quarks of a t -> b q q' decay (Delta R < 0.8)."""
    ak = _ak()
    pf = pf_candidates(ev.part, rng)
    jets, idx = _jets_from(pf, 0.8, 400.0, 2.0)
    win = (jets.pt > 500.0) & (jets.pt < 650.0)
    if process == "top":
        quarks = _top_quarks(ev)
        pairs = ak.cartesian({"j": jets, "q": quarks}, nested=True)
        inside = delta_r(pairs.j.eta, pairs.j.phi, pairs.q.eta, pairs.q.phi) < 0.8
        full = (ak.sum(inside & (pairs.q.slot > 0), axis=-1) == 3) | (ak.sum(inside & (pairs.q.slot < 0), axis=-1) == 3)
        win = win & full
    jets, idx = jets[win], idx[win]
    cons, _ = _constituent_fields(pf, idx)
    jets = ak.flatten(jets)
    cons = ak.flatten(cons, axis=1)
    cons = cons[ak.argsort(cons.pt, axis=1, ascending=False)]
    t: Table = {}
    for k, src_name in (("px", "px"), ("py", "py"), ("pz", "pz"), ("energy", "e"), ("d0", "d0"), ("dz", "dz"),
                   ("d0err", "d0Err"), ("dzerr", "dzErr"), ("charge", "charge")):  # fmt: skip
        t[f"part_{k}"] = _f32(cons[src_name])
    t["part_deta"] = _f32(cons.eta - jets.eta)
    t["part_dphi"] = _f32(delta_phi(cons.phi, jets.phi))
    t["part_pid"] = ak.values_astype(cons.pdgId, np.int32)
    t["jet_pt"] = ak.to_numpy(jets.pt).astype(np.float32)
    t["jet_eta"] = ak.to_numpy(jets.eta).astype(np.float32)
    t["jet_phi"] = ak.to_numpy(jets.phi).astype(np.float32)
    t["jet_energy"] = ak.to_numpy(jets.e).astype(np.float32)
    t["jet_mass"] = ak.to_numpy(jets.mass).astype(np.float32)
    t["jet_nparticles"] = ak.to_numpy(ak.num(cons)).astype(np.int32)
    sub = substructure(cons.px, cons.py, cons.pz, cons.e, 0.8)
    t["jet_sdmass"] = sub["msoftdrop"].astype(np.float32)
    for i in (1, 2, 3, 4):
        t[f"jet_tau{i}"] = sub[f"tau{i}"].astype(np.float32)
    n = len(jets)
    t["label_QCD"] = np.full(n, process == "qcd")
    t["label_Tbqq"] = np.full(n, process == "top")
    return t
