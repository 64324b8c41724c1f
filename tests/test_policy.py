"""Spec validation (every rule of it, with the message checked), extends, resolve and plan."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hepslim.errors import SpecError, UnknownSpecError
from hepslim.policy import (
    CONTAINER_DEFAULTS,
    Spec,
    container_compression,
    is_counter_name,
    is_index_name,
    load_spec,
    plan,
    resolve,
)


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


GOOD = """
name: mylayout
extends: lossless
tree: Events
drop: ["HLT_*", "L1_*"]
rules:
  - match: ["Jet_pt", "Jet_mass"]
    codecs: [{id: mantissa, keepbits: 10}]
  - match: "Jet_*Idx*"
    codecs: [{id: delta}, {id: bitpack}]
default:
  codecs: [{id: zstd, level: 5}]
derived:
  - {name: Jet_energy, function: energy_from_ptetaphimass, inputs: [Jet_pt, Jet_eta, Jet_phi, Jet_mass],
     tolerance: 1.0e-3}
"""


# ------------------------------------------------------------------------------------------ valid spec
def test_good_spec_loads_into_frozen_dataclasses(tmp_path):
    s = load_spec(write(tmp_path, GOOD))
    assert s.name == "mylayout" and s.parent is not None and s.parent.name == "lossless"
    assert s.tree == "Events" and s.drop == ("HLT_*", "L1_*")
    assert s.rules[0].match == ("Jet_pt", "Jet_mass")
    assert s.rules[0].codecs == ({"id": "mantissa", "keepbits": 10, "rounding": "nearest"},)
    assert s.rules[1].lossless and not s.rules[0].lossless
    with pytest.raises(AttributeError):
        s.name = "x"  # type: ignore[misc]
    assert s.is_dropped("HLT_IsoMu24") and not s.is_dropped("Jet_pt")
    assert s.rule_for("Jet_mass") is s.rules[0]
    assert s.rule_for("Muon_pt") is s.default  # no rule: the nearest default
    assert [d.name for d in s.all_derived] == ["Jet_energy"]
    assert len(s.sha256) == 64


def test_hash_ignores_location_but_not_content(tmp_path):
    a = load_spec(write(tmp_path, GOOD, "a.yaml"))
    b = load_spec(write(tmp_path, GOOD, "b.yaml"))
    c = load_spec(write(tmp_path, GOOD.replace("keepbits: 10", "keepbits: 11"), "c.yaml"))
    assert a.sha256 == b.sha256 != c.sha256
    assert a == b and a != c


def test_to_dict_is_json_and_round_trips(tmp_path):
    s = load_spec(write(tmp_path, GOOD))
    d = json.loads(json.dumps(s.to_dict()))
    assert d["parent"]["name"] == "lossless"
    back = Spec.from_dict(d)
    assert back.sha256 == s.sha256
    assert back.rules == s.rules or [r.to_dict() for r in back.rules] == [r.to_dict() for r in s.rules]
    assert back.all_derived == s.all_derived


def test_child_rules_before_parent_rules(tmp_path):
    parent = write(tmp_path, """
        name: parent
        rules:
          - match: "*_pt"
            codecs: [{id: mantissa, keepbits: 8}]
          - match: "*_eta"
            codecs: [{id: mantissa, keepbits: 8}]
        """, "parent.yaml")
    child = write(tmp_path, """
        name: child
        extends: parent.yaml
        rules:
          - match: "Jet_pt"
            codecs: [{id: mantissa, keepbits: 12}]
        """, "child.yaml")
    s = load_spec(child)
    assert s.rule_for("Jet_pt").codecs[0]["keepbits"] == 12
    assert s.rule_for("Muon_pt").codecs[0]["keepbits"] == 8
    assert s.rule_for("Muon_eta").spec_name == "parent"
    assert s.rule_for("Muon_phi") is None
    assert str(parent) in s.parent.source or s.parent.source == str(parent.resolve())


def test_load_spec_none_is_lossless_and_spec_passthrough():
    s = load_spec(None)
    assert s.name == "lossless"
    assert load_spec(s) is s


# ------------------------------------------------------------------------------------- malformed specs
def check_error(tmp_path, text, *fragments, rule=None):
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as ei:
        load_spec(p)
    msg = str(ei.value)
    assert str(p.resolve()) in msg, msg  # the file is named
    for f in fragments:
        assert f in msg, msg
    if rule is not None:
        assert ei.value.rule is not None and rule in ei.value.rule, msg
    return ei.value


def test_bad_yaml(tmp_path):
    check_error(tmp_path, "name: x\nrules: [ {match: a\n", "not valid YAML", "line")


def test_not_a_mapping(tmp_path):
    check_error(tmp_path, "- a\n- b\n", "must be a YAML mapping")


def test_missing_name(tmp_path):
    check_error(tmp_path, "rules: []\n", "'name' is required")


def test_unknown_top_key_with_suggestion(tmp_path):
    check_error(tmp_path, "name: x\nrulez: []\n", "unknown key 'rulez'", "did you mean 'rules'?")


def test_unknown_rule_key_with_suggestion(tmp_path):
    e = check_error(tmp_path, """
        name: x
        rules:
          - match: Jet_pt
            codec: [{id: zstd}]
        """, "unknown key 'codec'", "did you mean 'codecs'?", rule="#0 'Jet_pt'")
    assert e.file is not None


def test_unknown_codec_keeps_near_match_suggestion(tmp_path):
    e = check_error(tmp_path, """
        name: x
        rules:
          - match: Jet_pt
            codecs: [{id: mantisa, keepbits: 10}]
        """, "unknown codec 'mantisa'", "did you mean 'mantissa'?", rule="#0 'Jet_pt'")
    assert "mantissa" in e.suggestions
    assert isinstance(e.__cause__, KeyError)


def test_bad_codec_parameter(tmp_path):
    check_error(tmp_path, """
        name: x
        rules:
          - match: ["Jet_pt", "Jet_mass"]
            codecs: [{id: mantissa, keepbits: 99}]
        """, "keepbits", "1..52", rule="#0 ['Jet_pt', 'Jet_mass']")


def test_unknown_codec_parameter(tmp_path):
    check_error(tmp_path, """
        name: x
        default:
          codecs: [{id: zstd, levle: 3}]
        """, "unknown parameter(s) levle", rule="default")


def test_codecs_out_of_order(tmp_path):
    check_error(tmp_path, """
        name: x
        rules:
          - match: "*"
            codecs: [{id: zstd}, {id: mantissa, keepbits: 10}]
        """, "must be ordered", rule="#0")


@pytest.mark.parametrize("pattern", ["nJet", "nMuon*", "Jet_genJetIdx", "*Idx*", "event", "run"])
def test_lossy_rule_on_counters_indices_event_ids(tmp_path, pattern):
    check_error(tmp_path, f"""
        name: x
        rules:
          - match: ["{pattern}"]
            codecs: [{{id: mantissa, keepbits: 10}}]
        """, "lossy codec (mantissa)", repr(pattern), "bit-exact", rule="#0")


def test_lossless_rule_on_counters_is_fine(tmp_path):
    s = load_spec(write(tmp_path, """
        name: x
        rules:
          - match: ["n*", "*Idx*"]
            codecs: [{id: delta}, {id: bitpack}, {id: zstd, level: 3}]
        """))
    assert resolve(s, "nJet", "int32", role="counter").get_config()[0]["id"] == "delta"


def test_extends_cycle(tmp_path):
    write(tmp_path, "name: a\nextends: b.yaml\n", "a.yaml")
    write(tmp_path, "name: b\nextends: c.yaml\n", "b.yaml")
    write(tmp_path, "name: c\nextends: a.yaml\n", "c.yaml")
    with pytest.raises(SpecError, match=r"'extends' cycle: .*a\.yaml -> .*b\.yaml -> .*c\.yaml -> .*a\.yaml"):
        load_spec(tmp_path / "a.yaml")


def test_extends_self(tmp_path):
    check_error(tmp_path, "name: x\nextends: s.yaml\n", "'extends' cycle")


def test_missing_parent_file(tmp_path):
    check_error(tmp_path, "name: x\nextends: nothere.yaml\n", "nothere.yaml", "does not exist")


def test_missing_parent_name_suggests(tmp_path):
    check_error(tmp_path, "name: x\nextends: nanoad\n", "'extends'", "unknown spec 'nanoad'",
                "did you mean 'nanoaod'")


def test_unknown_spec_name():
    with pytest.raises(UnknownSpecError, match="did you mean 'jetclass'"):
        load_spec("jetclas")


def test_match_must_be_globs(tmp_path):
    check_error(tmp_path, "name: x\nrules:\n  - {match: [], codecs: [zstd]}\n", "'match' must be a glob")


def test_default_needs_codecs(tmp_path):
    check_error(tmp_path, "name: x\ndefault: {note: hi}\n", "'default' needs 'codecs'", rule="default")


def test_derived_unknown_function_suggests(tmp_path):
    check_error(tmp_path, """
        name: x
        derived:
          - {name: E, function: energy_from_pxpypz_pdg, inputs: [a, b, c, d], tolerance: 0.001}
        """, "unknown derived function", "did you mean 'energy_from_pxpypz_pid'", rule="derived #0 'E'")


def test_derived_wrong_arity(tmp_path):
    check_error(tmp_path, """
        name: x
        derived:
          - {name: pt, function: pt_from_pxpy, inputs: [px], tolerance: 0.001}
        """, "takes 2 inputs", rule="derived #0 'pt'")


def test_derived_bad_tolerance_and_dropped_input(tmp_path):
    check_error(tmp_path, """
        name: x
        derived:
          - {name: pt, function: pt_from_pxpy, inputs: [px, py], tolerance: -1}
        """, "'tolerance'")
    check_error(tmp_path, """
        name: x
        drop: ["p*"]
        derived:
          - {name: ptx, function: pt_from_pxpy, inputs: [px, py], tolerance: 0.001}
        """, "needs 'px', which 'drop' removes")


def test_compression_section(tmp_path):
    s = load_spec(write(tmp_path, "name: x\ncompression:\n  root: {algorithm: lzma, level: 9}\n"))
    assert container_compression(s, "root") == {"algorithm": "LZMA", "level": 9}
    check_error(tmp_path, "name: x\ncompression:\n  rot: {algorithm: lzma}\n", "unknown container 'rot'",
                "did you mean 'root'?")


# -------------------------------------------------------------------------------------------- resolve
@pytest.fixture
def lossy(tmp_path):
    return load_spec(write(tmp_path, """
        name: lossy
        rules:
          - match: "Jet_*"
            codecs: [{id: mantissa, keepbits: 10}]
          - match: "Muon_*"
            codecs: [{id: mantissa, keepbits: 12}, {id: lz4}]
        default:
          codecs: [{id: mantissa, keepbits: 16}, {id: zstd, level: 3}]
        """))


@pytest.mark.parametrize("container", sorted(CONTAINER_DEFAULTS))
def test_resolve_completes_array_array_lists(lossy, container):
    p = resolve(lossy, "Jet_pt", np.float32, container=container)
    ids = [c["id"] for c in p.get_config()]
    assert ids[0] == "mantissa" and p.serializer.kind == "array->bytes"
    if container == "root":
        assert p.bytes_bytes == ()  # ROOT compresses itself
    else:
        assert ids == ["mantissa", CONTAINER_DEFAULTS[container]["serializer"]["id"],
                       CONTAINER_DEFAULTS[container]["compressor"]["id"]]
    assert p.error_bound().kind == "rel" and p.error_bound().value <= 2.0**-11 * 1.0001


def test_resolve_keeps_explicit_compressor(lossy):
    assert [c["id"] for c in resolve(lossy, "Muon_pt", "float32").get_config()] == [
        "mantissa", "bytestreamsplit", "lz4"]


def test_resolve_lossy_rule_on_integer_branch_is_an_error(lossy):
    with pytest.raises(SpecError) as ei:
        resolve(lossy, "Jet_jetId", np.uint8)
    msg = str(ei.value)
    assert "Jet_jetId" in msg and "integer" in msg and "#0 'Jet_*'" in msg and lossy.source in msg
    with pytest.raises(SpecError, match="boolean"):
        resolve(lossy, "Muon_tightId", np.bool_)
    with pytest.raises(SpecError, match="an index"):
        resolve(lossy, "Jet_genJetIdx", np.float32)  # even a float index stays exact


def test_resolve_lossy_default_never_touches_integers(lossy):
    for name, dt, role in [("nElectron", "int32", "counter"), ("HLT_IsoMu24", "bool", "values"),
                           ("event", "uint64", "values"), ("Electron_genPartIdx", "int32", "index")]:
        p = resolve(lossy, name, dt, role=role)
        assert p.lossless, name
    assert not resolve(lossy, "Electron_pt", "float32").lossless


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "bool"])
@pytest.mark.parametrize("container", sorted(CONTAINER_DEFAULTS))
def test_offsets_and_integers_round_trip_bit_exact(lossy, dtype, container):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, 1000).astype(dtype) if dtype == "bool" else rng.integers(
        np.iinfo(dtype).min, np.iinfo(dtype).max, 1000, dtype=dtype, endpoint=True)
    p = resolve(lossy, "Electron_cutBased", dtype, container=container)
    assert p.lossless
    y = p.decode(p.encode(x))
    assert y.dtype == x.dtype and np.array_equal(y, x)
    off = np.cumsum(rng.integers(0, 7, 1001)).astype(np.int64)
    po = resolve(lossy, "Jet_pt", "int64", role="offsets", container=container)
    assert po.lossless and np.array_equal(po.decode(po.encode(off)), off)


def test_resolve_float_round_trip_within_bound(lossy):
    rng = np.random.default_rng(2)
    x = rng.exponential(30, 10000).astype(np.float32)
    p = resolve(lossy, "Jet_pt", "float32")
    y = p.decode(p.encode(x))
    assert np.all(np.abs(y - x) <= p.error_bound().value * np.abs(x))
    assert np.array_equal(p.apply_values(x), y)


def test_resolve_unknown_role_and_dtype(lossy):
    with pytest.raises(SpecError, match="role"):
        resolve(lossy, "Jet_pt", "float32", role="content")
    from hepslim.errors import UnsupportedBranchError

    with pytest.raises(UnsupportedBranchError, match="integers, booleans and floats only"):
        resolve(lossy, "Jet_name", "U4")
    with pytest.raises(SpecError, match="unknown container"):
        resolve(lossy, "Jet_pt", "float32", container="hdf5")


def test_name_classes():
    assert is_counter_name("nJet") and is_counter_name("nMuon_isGlobal") and not is_counter_name("nominal")
    assert not is_counter_name("Pileup_nTrueInt") and not is_counter_name("Jet_nConstituents")
    assert is_index_name("GenPart_genPartIdxMother") and not is_index_name("Jet_idx")


def test_plan_actions(tmp_path):
    s = load_spec(write(tmp_path, GOOD))
    branches = {"HLT_IsoMu24": ("bool", False), "nJet": ("int32", False), "Jet_pt": ("float32", True),
                "Jet_energy": ("float32", True), "Jet_genJetIdx": ("int16", True)}
    rows = {r.branch: r for r in plan(s, branches)}
    assert rows["HLT_IsoMu24"].action == "drop"
    assert rows["Jet_energy"].action == "derive"
    assert rows["nJet"].role == "counter" and rows["nJet"].lossless
    assert rows["Jet_genJetIdx"].role == "index" and rows["Jet_genJetIdx"].codecs[0]["id"] == "delta"
    assert not rows["Jet_pt"].lossless and rows["Jet_pt"].error_bound["kind"] == "rel"
    json.dumps([r.to_dict() for r in rows.values()])


def test_spec_registered_by_a_plugin(tmp_path):
    from hepslim import hookimpl
    from hepslim.plugins import plugin_manager
    from hepslim.policy import registered_specs

    path = write(tmp_path, "name: mine\nextends: nanoaod\nrules:\n  - {match: Jet_pt, codecs: [zstd]}\n")

    class Plugin:
        @hookimpl
        def hepslim_register_specs(self):
            return {"mine": path}

    pm, plugin = plugin_manager(), Plugin()
    pm.register(plugin, name="test-specs-plugin")
    try:
        assert "mine" in registered_specs() and "nanoaod" in registered_specs()
        s = load_spec("mine")
        assert s.parent.name == "nanoaod" and s.rule_for("Jet_pt").codecs == ({"id": "zstd", "level": 3},)
        assert not resolve(s, "Jet_eta", "float32").lossless  # the parent's rules still apply
    finally:
        pm.unregister(plugin)
    with pytest.raises(UnknownSpecError):
        load_spec("mine")


def test_container_compression_per_branch_and_root_cap(tmp_path):
    s = load_spec(write(tmp_path, """
        name: c
        rules:
          - match: "Jet_*"
            codecs: [{id: mantissa, keepbits: 8}, {id: lzma, preset: 9}]
          - match: "Muon_*"
            codecs: [{id: zstd, level: 19}]
        default:
          codecs: [{id: lz4}]
        """))
    assert container_compression(s, "root", branch="Jet_pt") == {"algorithm": "LZMA", "level": 9}
    assert container_compression(s, "root", branch="Muon_pt") == {"algorithm": "ZSTD", "level": 9}  # capped
    assert container_compression(s, "parquet", branch="Muon_pt") == {"algorithm": "ZSTD", "level": 19}
    assert container_compression(s, "root", branch="Tau_pt") == {"algorithm": "LZ4", "level": 4}
    assert container_compression("nanoaod", "root") == {"algorithm": "ZSTD", "level": 9}
    # ROOT pipelines carry no compressor: ROOT compresses the (transparently rounded) values itself
    p = resolve(s, "Jet_pt", "float32", container="root")
    assert p.bytes_bytes == () and [c["id"] for c in p.get_config()] == ["mantissa", "raw"]
