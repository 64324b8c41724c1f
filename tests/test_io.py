"""hepslim.io: atomic writes, input/output protection, unsupported branches, drops, derived branches,
interoperability (coffea, awkward, plain zarr), inspect and the CLI verbs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

import hepslim
from hepslim.errors import FormatError, UnsupportedBranchError
from hepslim.io import inspect, select_format

sys.path.insert(0, str(Path(__file__).with_name("formats")))
from formats_helpers import COMBOS, EXT, HZZ, LOSSY_SPEC, NANO, data_file, flat, original, within_bound  # noqa: E402


def _events(n: int = 50, seed: int = 0) -> ak.Array:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 5, n)
    tot = int(counts.sum())
    px, py, pz = (rng.normal(0, 20, tot).astype(np.float32) for _ in range(3))
    pid = rng.choice(np.array([211, -211, 22, 130, 11], np.int32), tot)
    e = hepslim.derived.energy_from_pxpypz_pid(px, py, pz, pid) if hasattr(hepslim, "derived") else None
    from hepslim.derived import energy_from_pxpypz_pid

    e = energy_from_pxpypz_pid(px, py, pz, pid).astype(np.float32)
    return ak.zip({
        "run": np.full(n, 1, np.uint32),
        "event": np.arange(n, dtype=np.uint64),
        "nPart": counts.astype(np.int32),
        "part_px": ak.unflatten(px, counts),
        "part_py": ak.unflatten(py, counts),
        "part_pz": ak.unflatten(pz, counts),
        "part_pid": ak.unflatten(pid, counts),
        "part_energy": ak.unflatten(e, counts),
        "flag": rng.random(n) > 0.5,
    }, depth_limit=1)


# --------------------------------------------------------------------------------- atomic writes, safety
@pytest.mark.parametrize("fmt", ["root", "parquet", "zarr"])
def test_existing_output_needs_force(tmp_path, fmt):
    ev = _events()
    out = tmp_path / f"x{EXT[fmt]}"
    hepslim.write(ev, out, format=fmt)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(hepslim.errors.OutputExistsError):
        hepslim.write(ev[:10], out, format=fmt)
    assert len(hepslim.open(out)) == 50  # untouched
    hepslim.write(ev[:10], out, format=fmt, force=True)
    assert len(hepslim.open(out)) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary left behind


@pytest.mark.parametrize("fmt", ["root", "parquet", "zarr"])
def test_failed_write_leaves_nothing(tmp_path, fmt):
    ev = _events()
    bad_chunk = ak.zip({f: ev[f][:5] for f in ev.fields if f != "flag"}, depth_limit=1)  # a branch vanishes
    out = tmp_path / f"x{EXT[fmt]}"
    with pytest.raises(FormatError, match="missing from a later chunk"):
        hepslim.write(iter([ev[:20], bad_chunk]), out, format=fmt)
    assert list(tmp_path.iterdir()) == []


def test_never_overwrites_input(tmp_path):
    src = tmp_path / "in.root"
    src.write_bytes(data_file(HZZ).read_bytes())
    with pytest.raises(FormatError, match="never overwrites its input"):
        hepslim.compress(src, src, force=True)
    assert src.read_bytes() == data_file(HZZ).read_bytes()


def test_unsupported_branches_are_refused(tmp_path):
    ev = _events()
    for bad in (ak.Array([["a", "bc"]] * 50), ak.Array([[[1.0], []]] * 50),
                ak.Array([None if i % 2 else 1.0 for i in range(50)])):
        arr = ak.with_field(ev, bad, "weird")
        with pytest.raises(UnsupportedBranchError, match="weird"):
            hepslim.write(arr, tmp_path / "u.parquet")
    assert not (tmp_path / "u.parquet").exists()


def test_root_is_transparent_only(tmp_path):
    with pytest.raises(FormatError, match="transparent"):
        hepslim.write(_events(), tmp_path / "x.root", mode="packed")


# ------------------------------------------------------------------------------------ spec: drop, derived
def _derived_spec(tmp_path, tolerance=1e-5):
    p = tmp_path / "derived.yaml"
    p.write_text(
        "name: derived-test\nextends: lossless\ndrop: [flag]\nderived:\n"
        "  - {name: part_energy, function: energy_from_pxpypz_pid, "
        f"inputs: [part_px, part_py, part_pz, part_pid], tolerance: {tolerance:.1e}}}\n"
    )
    return p


@pytest.mark.parametrize(("fmt", "mode"), COMBOS)
def test_derived_branch_recomputed_and_drop_applied(tmp_path, fmt, mode):
    ev = _events(200)
    out = tmp_path / f"d{EXT[fmt]}"
    rep = hepslim.write(ev, out, spec=_derived_spec(tmp_path), format=fmt, mode=mode, step_size=64)
    assert rep.derived == ["part_energy"] and rep.dropped == ["flag"]
    meta = select_format(out).metadata(str(out))
    assert "part_energy" not in meta["branches"]
    back = hepslim.open(out)
    assert back.fields == [f for f in ev.fields if f != "flag"]
    assert str(back.part_energy.type) == str(ev.part_energy.type)
    assert within_bound(flat(ev.part_energy), flat(back.part_energy), {"kind": "rel", "value": 1e-5})
    only = hepslim.open(out, ["part_energy"])  # pulls its inputs, returns only what was asked
    assert only.fields == ["part_energy"]


def test_derived_branch_kept_when_it_does_not_match(tmp_path):
    ev = _events(100)
    ev = ak.with_field(ev, ev.part_energy * np.float32(1.01), "part_energy")
    out = tmp_path / "k.parquet"
    rep = hepslim.write(ev, out, spec=_derived_spec(tmp_path))
    assert rep.derived == []
    meta = select_format(out).metadata(str(out))
    assert meta["derived_kept"][0]["name"] == "part_energy"
    assert ak.array_equal(hepslim.open(out, ["part_energy"]).part_energy, ev.part_energy)


# ----------------------------------------------------------------------------------------- interop
@pytest.fixture(scope="module")
def nano_transparent(tmp_path_factory):
    d = tmp_path_factory.mktemp("nano")
    out = {}
    for fmt in ("root", "parquet"):
        out[fmt] = d / f"nano{EXT[fmt]}"
        hepslim.compress(data_file(NANO), out[fmt], spec=LOSSY_SPEC, format=fmt, mode="transparent")
    return out


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_coffea_reads_transparent_output(nano_transparent, fmt):
    """coffea NanoEventsFactory + NanoAODSchema: the same Jet.pt as hepslim.open, within the bound."""
    pytest.importorskip("coffea")
    import warnings

    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    path = nano_transparent[fmt]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "root":
            ev = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="virtual").events()
        else:
            ev = NanoEventsFactory.from_parquet(str(path), schemaclass=NanoAODSchema, mode="virtual").events()
    ours = hepslim.open(path, ["Jet_pt"]).Jet_pt
    assert np.array_equal(np.asarray(ak.num(ev.Jet.pt)), np.asarray(ak.num(ours)))
    assert np.array_equal(flat(ev.Jet.pt), flat(ours))  # bit-identical values
    bound = select_format(path).metadata(str(path))["branches"]["Jet_pt"]["error_bound"]
    assert bound["kind"] == "rel"
    assert within_bound(flat(original(NANO).Jet_pt), flat(ev.Jet.pt), bound)
    assert ak.all(ak.num(ev.Jet) == original(NANO).nJet)


def test_plain_readers_read_transparent_output(nano_transparent, tmp_path):
    import uproot

    pq = ak.from_parquet(nano_transparent["parquet"], columns=["Jet_pt", "nJet", "event"])
    ours = hepslim.open(nano_transparent["root"], ["Jet_pt", "nJet", "event"])
    for f in ("Jet_pt", "nJet", "event"):
        assert ak.array_equal(pq[f], ours[f])
    up = uproot.open(nano_transparent["root"])["Events"].arrays(["Jet_pt", "event"])
    assert ak.array_equal(up.Jet_pt, ours.Jet_pt)


def test_zarr_transparent_is_plain_zarr_packed_uses_registered_codec(tmp_path):
    import zarr

    ev = _events(300)
    t, p = tmp_path / "t.zarr", tmp_path / "p.zarr"
    hepslim.write(ev, t, format="zarr", mode="transparent")
    hepslim.write(ev, p, format="zarr", mode="packed")
    g = zarr.open_group(t, mode="r")
    assert g.attrs["awkward"]["length"] == 300
    off = g["part_px-offsets"][:]
    assert np.array_equal(np.diff(off), ak.num(ev.part_px))
    assert np.array_equal(g["part_px-data"][:], flat(ev.part_px))
    names = {c["name"] for c in json.loads((t / "part_px-data" / "zarr.json").read_text())["codecs"]}
    assert not any(n.startswith("hepslim") for n in names)
    meta = json.loads((p / "part_px-data" / "zarr.json").read_text())
    assert "hepslim.pipeline" in json.dumps(meta["codecs"])
    from zarr.registry import get_codec_class

    from hepslim.formats.zarr import HepslimPipelineCodec

    assert get_codec_class("hepslim.pipeline") is HepslimPipelineCodec
    arr = zarr.open_group(p, mode="r")["part_px-data"]
    assert np.array_equal(arr[:], flat(ev.part_px))


# ---------------------------------------------------------------------------------------- inspect, CLI
def test_inspect_sums(tmp_path):
    out = tmp_path / "n.parquet"
    hepslim.compress(data_file(HZZ), out, spec=LOSSY_SPEC, mode="packed")
    info = inspect(out)
    assert info["num_entries"] == 2421 and info["mode"] == "packed"
    total = sum(b["bytes"] for b in info["branches"])
    assert 0 < total <= info["file_bytes"]
    assert sum(c["bytes"] for c in info["collections"]) == total
    jet = next(c for c in info["collections"] if c["name"] == "Jet")
    assert jet["branches"] == 7  # NJet and Jet_Px Py Pz E btag ID
    px = next(b for b in info["branches"] if b["name"] == "Jet_Px")
    assert px["codec"].startswith("mantissa") and px["ratio"] > 1
    plain = inspect(data_file(HZZ))
    assert plain["mode"] == "plain" and plain["num_entries"] == 2421


def test_cli_compress_inspect_decompress(tmp_path, capsys):
    from hepslim.cli import main

    outdir = tmp_path / "out"
    src = data_file(HZZ)
    rc = main(["compress", str(src), str(src), "-o", str(outdir), "--format", "parquet", "--json"])
    assert rc == 1  # two inputs with the same output name: refused
    capsys.readouterr()
    a = tmp_path / "a.root"
    a.write_bytes(src.read_bytes())
    rc = main(["compress", str(src), str(a), "-o", str(outdir), "--format", "zarr", "--spec",
               str(LOSSY_SPEC), "--json"])
    assert rc == 0
    reps = json.loads(capsys.readouterr().out)
    assert [Path(r["output"]).name for r in reps] == ["uproot-HZZ.zarr", "a.zarr"]
    assert all(r["num_entries"] == 2421 and r["mode"] == "packed" for r in reps)
    assert main(["inspect", str(outdir / "a.zarr"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "zarr" and info["spec"] == "formats-test"
    assert main(["inspect", str(outdir / "a.zarr")]) == 0
    text = capsys.readouterr().out
    assert "Jet_Px" in text and "B/event" in text
    plain = tmp_path / "plain.root"
    assert main(["decompress", str(outdir / "a.zarr"), "-o", str(plain)]) == 0
    back, orig = hepslim.open(plain), hepslim.open(outdir / "a.zarr")
    for f in orig.fields:
        assert ak.array_equal(back[f], orig[f], equal_nan=True)
    assert main(["decompress", str(outdir / "a.zarr"), "-o", str(plain)]) == 1  # exists, no --force


def test_demo_runs_on_small_input(tmp_path):
    from hepslim.demo import format_demo, run_demo

    res = run_demo(data_file(HZZ), spec=str(LOSSY_SPEC), workdir=tmp_path)
    assert [(r["container"], r["mode"]) for r in res["results"]] == [
        ("root", "transparent"), ("parquet", "transparent"), ("parquet", "packed"),
        ("zarr", "transparent"), ("zarr", "packed")]
    assert all(0 <= r["worst_error_fraction"] <= 1.0 for r in res["results"])
    assert all(r["lossy_branches"] > 0 for r in res["results"])
    assert "err/bound" in format_demo(res)


@pytest.mark.slow
def test_demo_default():
    from hepslim.demo import run_demo

    res = run_demo()
    assert res["events"] > 0 and all(r["worst_error_fraction"] <= 1.0 for r in res["results"])
