"""A rule's optional ``resolution:`` key: validated at load time, kept through to_dict/from_dict (container
metadata), read by ``hepslim tune``; the shipped ``nanoaod`` spec declares resolutions its bounds respect."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from hepslim.errors import SpecError
from hepslim.policy import Spec, load_spec, resolve
from hepslim.tune import Resolution, spec_resolutions

SPEC = """\
name: res
rules:
  - match: ["Jet_pt"]
    codecs: [{{id: mantissa, keepbits: 7}}]
    floats_only: true
    resolution: {res}
"""


def _write(tmp_path: Path, res: str) -> Path:
    p = tmp_path / "res.yaml"
    p.write_text(textwrap.dedent(SPEC.format(res=res)))
    return p


@pytest.mark.parametrize(("text", "kind", "value"), [("{rel: 0.05}", "rel", 0.05), ("{abs: 2}", "abs", 2.0)])
def test_resolution_loads_round_trips_and_reaches_tune(tmp_path, text, kind, value):
    s = load_spec(_write(tmp_path, text))
    rule = s.rules[0]
    assert rule.resolution == {kind: value}
    assert rule.to_dict()["resolution"] == {kind: value}
    again = Spec.from_dict(s.to_dict())
    assert again.rules[0].resolution == {kind: value} and again.sha256 == s.sha256
    assert spec_resolutions(s) == {"Jet_pt": Resolution(kind, value)}
    # the codecs are what they were: a resolution documents, it does not change the pipeline
    assert resolve(s, "Jet_pt", np.float32).error_bound().value == 2.0**-8


def test_resolution_changes_the_spec_hash(tmp_path):
    a = load_spec(_write(tmp_path, "{rel: 0.05}"))
    (tmp_path / "b").mkdir()
    b = load_spec(_write(tmp_path / "b", "{rel: 0.1}"))
    assert a.sha256 != b.sha256


@pytest.mark.parametrize("text", ["{rel: 0}", "{rel: 1.5}", "{abs: -1}", "{abs: .inf}", "{abs: .nan}",
                                  "{rel: true}", "{sigma: 0.1}", "{rel: 0.1, abs: 1}", "0.1", "[0.1]",
                                  "{rel: '0.1'}"])
def test_bad_resolution_names_file_rule_and_form(tmp_path, text):
    with pytest.raises(SpecError, match=r"'resolution' must be \{rel:.*res\.yaml.*Jet_pt|res\.yaml.*Jet_pt.*'resolution' must be"):
        load_spec(_write(tmp_path, text))


def test_nanoaod_bounds_sit_below_a_tenth_of_its_declared_resolutions():
    """``hepslim tune`` checks errors against 0.1 x resolution by default: the shipped bounds pass that."""
    s = load_spec("nanoaod")
    checked = 0
    for branch in ("Muon_pt", "Electron_pt", "Photon_pt", "Jet_pt", "Jet_mass", "FatJet_msoftdrop", "MET_pt",
                   "Muon_dxy", "Electron_dz", "SV_dlenSig", "Jet_eta", "Jet_phi", "Jet_btagDeepFlavB"):
        rule = s.rule_for(branch, np.float32)
        if not rule.resolution:
            continue
        (kind, value), = rule.resolution.items()
        bound = resolve(s, branch, np.float32).error_bound()
        assert bound.kind == kind, branch
        assert bound.value <= 0.1 * value, branch
        checked += 1
    assert checked >= 8
