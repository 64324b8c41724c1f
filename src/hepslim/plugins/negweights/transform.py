"""The ``negweights`` event transform and the file-level :func:`resample`."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hepslim.abc import EventTransform
from hepslim.errors import CodecParameterError, FormatError
from hepslim.plugins.negweights.core import CELL_MEAN_RULES, JET_ALGORITHMS, SEED_STRATEGIES, Cells

METHODS = ("cells", "ot")


@dataclass(frozen=True)
class NegWeights(EventTransform):
    """Remove negative event weights by cell resampling, conserving Σw exactly (arXiv:2109.07851, 2303.15246).

    ``method="cells"``: cres-equivalent distance between IRC-safe objects (jets, dressed leptons, isolated
    photons, optionally neutrinos). ``method="ot"``: Energy Mover's Distance between the particle sets
    (ground distance min(dR/ot_radius, 2), pT imbalance at cost 1 per GeV). Both: exact nearest neighbours
    through a vantage-point tree (``ot``: or, with ``ot_candidates`` = K > 0, K candidates pre-selected in a
    Euclidean embedding and re-ranked by exact EMD -- faster, approximate), cells grown from negative seeds until their sum is >= 0 or their radius
    would exceed ``max_cell_size`` (GeV; None: unbounded); members share the sum (``cell_mean="mean"``) or
    get it in proportion to |w| (``"abs"``). Weight variations are averaged in the same cells. Optional
    partial unweighting below ``minweight`` (seeded by ``seed``).

    >>> from hepslim.plugins.negweights.synthetic import generate_nlo
    >>> ev = generate_nlo(2000, seed=1)
    >>> out = NegWeights().apply(ev)
    >>> import numpy as np
    >>> bool(np.all(out.weight >= 0)), abs(float(np.sum(out.weight) - np.sum(ev.weight))) < 1e-9
    (True, True)
    """

    transform_id: ClassVar[str] = "negweights"

    method: str = "cells"
    jet_algorithm: str = "antikt"
    jet_radius: float = 0.4
    jet_ptmin: float = 20.0
    tau: float = 0.0
    dressing_radius: float = 0.1
    photon_ptmin: float = 20.0
    include_neutrinos: bool = False
    seeds: str = "most_negative"
    max_cell_size: float | None = None
    cell_mean: str = "mean"
    minweight: float = 0.0
    seed: int = 0
    n_jobs: int | None = None
    ot_radius: float = 1.0
    ot_candidates: int = 32

    def __post_init__(self) -> None:
        checks = [
            ("method", self.method in METHODS, f"one of {METHODS}"),
            ("jet_algorithm", self.jet_algorithm in JET_ALGORITHMS, f"one of {JET_ALGORITHMS}"),
            ("jet_radius", self.jet_radius > 0, "> 0"),
            ("jet_ptmin", self.jet_ptmin >= 0, ">= 0"),
            ("tau", self.tau >= 0, ">= 0"),
            ("dressing_radius", self.dressing_radius >= 0, ">= 0"),
            ("seeds", self.seeds in SEED_STRATEGIES, f"one of {SEED_STRATEGIES}"),
            ("max_cell_size", self.max_cell_size is None or self.max_cell_size > 0, "> 0 or None"),
            ("cell_mean", self.cell_mean in CELL_MEAN_RULES, f"one of {CELL_MEAN_RULES}"),
            ("minweight", self.minweight >= 0, ">= 0"),
            ("n_jobs", self.n_jobs is None or self.n_jobs >= 1, ">= 1 or None (all cores)"),
            ("ot_radius", self.ot_radius > 0, "> 0"),
            ("ot_candidates", self.ot_candidates >= 0, ">= 0 (0: exact VP-tree search)"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise CodecParameterError(f"negweights: {name}={getattr(self, name)!r} must be {allowed}")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NegWeights:
        cfg = dict(config)
        cfg.pop("id", None)
        return cls(**cfg)

    # ---------------------------------------------------------------------------------------- core
    def table(self, particles: Any) -> tuple[Any, int, float]:
        """(object table, metric id, metric parameter) for final-state ``particles`` (var * {px,py,pz,e,pid})."""
        try:
            from hepslim.plugins.negweights import _kernels as K
            from hepslim.plugins.negweights.objects import FlatParticles, cell_objects, emd_objects
        except ImportError as exc:
            from hepslim.errors import MissingDependencyError

            raise MissingDependencyError(exc.name or "numba", "ot", "negative-weight resampling") from exc

        fp = particles if isinstance(particles, FlatParticles) else FlatParticles.from_awkward(particles)
        if self.method == "cells":
            tab = cell_objects(fp, jet_algorithm=self.jet_algorithm, jet_radius=self.jet_radius,
                               jet_ptmin=self.jet_ptmin, tau=self.tau, dressing_radius=self.dressing_radius,
                               photon_ptmin=self.photon_ptmin, include_neutrinos=self.include_neutrinos)
            return tab, K.METRIC_CELLS, 0.0
        return emd_objects(fp, include_neutrinos=self.include_neutrinos), K.METRIC_EMD, float(self.ot_radius)

    def reweight(self, particles: Any, weights: np.ndarray, variations: np.ndarray | None = None,
                 timings: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray | None, Cells, dict[str, Any]]:
        """New (weights, variations) for events given as final-state particles; also the cells and extra info."""
        from hepslim.plugins.negweights.core import _restore_sum, partial_unweight, resample_table

        t = timings if timings is not None else {}
        t0 = time.perf_counter()
        tab, metric, param = self.table(particles)
        t["objects_s"] = time.perf_counter() - t0
        w0 = np.asarray(weights, dtype=np.float64)
        if len(w0) != tab.n_events:
            raise CodecParameterError(f"negweights: {len(w0)} weights for {tab.n_events} events")
        w, var, cells = resample_table(
            tab.offs, tab.data, metric, param, w0, variations, seeds=self.seeds,
            max_cell_size=math.inf if self.max_cell_size is None else float(self.max_cell_size),
            cell_mean=self.cell_mean, n_jobs=self.n_jobs, tree_seed=self.seed,
            candidates=self.ot_candidates if self.method == "ot" else 0, timings=t)
        w, var, info = partial_unweight(w, var, float(self.minweight), self.seed)
        _restore_sum(w, w0)
        return w, var, cells, info

    def apply(self, events: Any) -> Any:
        """The events reweighted, same layout and order.

        Accepts NanoAOD-style branches (``genWeight``, ``LHEWeight_*``, ``LHEPart_*`` or GenJet/
        GenDressedLepton: what ``hepslim.io.open`` returns) or the :func:`generate_nlo` layout (``weight``,
        ``variations``, ``particles``).
        """
        import awkward as ak

        from hepslim.plugins.negweights import io as nio
        from hepslim.plugins.negweights.io import _from_event_records

        if "genWeight" in events.fields:
            arrays = {f: events[f] for f in events.fields}
            parts, w, var, _ = nio.nano_from_arrays("events", arrays)
            names = list(var)
            table = np.stack([var[k] for k in names], axis=1) if names else None
            nw, nvar, _, _ = self.reweight(parts, w, table)
            src = nio.Source(Path("events"), "root", 0, len(w), arrays)
            newvar = {k: nvar[:, j] for j, k in enumerate(names)} if nvar is not None else {}
            out = nio.nano_arrays_out([src], nw, newvar, np.ones(len(nw), bool))
            for k in ["genWeight", *[b for b in out if b.startswith("LHEWeight_")], *nio._NANO_RATIO_BRANCHES]:
                if k in out and k in events.fields:
                    events = ak.with_field(events, out[k], k)
            return events
        parts, w, var, _ = _from_event_records(events)
        table = np.stack(list(var.values()), axis=1) if var else None
        nw, nvar, _, _ = self.reweight(parts, w, table)
        out = ak.with_field(events, nw, "weight")
        if nvar is not None:
            out = ak.with_field(out, nvar, "variations")
        return out


# ---------------------------------------------------------------------------------------------- report
@dataclass
class Report:
    """What a resampling did; ``to_json()`` gives the ``--json`` output of ``hepslim resample``."""

    method: str
    inputs: list[str]
    output: str | None
    n_events: int
    n_variations: int
    r_neg_before: float
    r_neg_after: float
    neg_fraction_before: float
    neg_fraction_after: float
    sum_w_before: float
    sum_w_after: float
    sum_w_rel_diff: float
    n_eff_before: float
    n_eff_after: float
    n_eff_gain: float
    n_zero_after: int
    n_seeds: int
    n_cells: int
    n_cells_capped: int
    cell_size: dict[str, float]
    cell_radius: dict[str, float]
    variation_sum_rel_diff_max: float
    chi2_ndf: dict[str, float] = field(default_factory=dict)
    classifier_auc: float | None = None
    n_unweighted: int = 0
    n_written: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    events_per_s: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), indent=kw.pop("indent", 2), default=_jsonable, **kw)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _quantiles(x: np.ndarray) -> dict[str, float]:
    if len(x) == 0:
        return {"mean": 0.0, "q50": 0.0, "q90": 0.0, "q99": 0.0, "max": 0.0}
    q = np.percentile(x, [50, 90, 99])
    return {"mean": float(np.mean(x)), "q50": float(q[0]), "q90": float(q[1]), "q99": float(q[2]),
            "max": float(np.max(x))}


def summarize(method: str, w0: np.ndarray, w1: np.ndarray, var0: np.ndarray | None, var1: np.ndarray | None,
              cells: Cells, n_seeds: int) -> dict[str, Any]:
    """The weight and cell figures of a :class:`Report` (no bias check)."""
    from hepslim.plugins.negweights.diagnostics import weight_stats

    b = weight_stats(w0, "before")
    a = weight_stats(w1, "after")
    s0 = b["sum_w_before"]
    vdiff = 0.0
    if var0 is not None and var1 is not None and var0.size:
        s_0 = np.array([math.fsum(c) for c in var0.T])
        s_1 = np.array([math.fsum(c) for c in var1.T])
        vdiff = float(np.max(np.abs(s_1 - s_0) / np.maximum(np.abs(s_0), 1e-300)))
    return {
        "method": method,
        "n_events": int(len(w0)),
        "n_variations": 0 if var0 is None else int(var0.shape[1]),
        "r_neg_before": b["r_neg_before"], "r_neg_after": a["r_neg_after"],
        "neg_fraction_before": b["neg_fraction_before"], "neg_fraction_after": a["neg_fraction_after"],
        "sum_w_before": s0, "sum_w_after": a["sum_w_after"],
        "sum_w_rel_diff": abs(a["sum_w_after"] - s0) / abs(s0) if s0 else abs(a["sum_w_after"]),
        "n_eff_before": b["n_eff_before"], "n_eff_after": a["n_eff_after"],
        "n_eff_gain": a["n_eff_after"] / b["n_eff_before"] if b["n_eff_before"] else 0.0,
        "n_zero_after": a["n_zero_after"],
        "n_seeds": int(n_seeds),
        "n_cells": int(cells.n_cells),
        "n_cells_capped": int(np.count_nonzero(~cells.closed)),
        "cell_size": _quantiles(cells.sizes.astype(np.float64)),
        "cell_radius": _quantiles(cells.radius),
        "variation_sum_rel_diff_max": vdiff,
    }


def _default_output_path(output: Path, src: Path, many: bool) -> Path:
    return output / src.name if many else output


def resample(inputs: str | os.PathLike[str] | list[str | os.PathLike[str]], output: str | os.PathLike[str] | None = None,
             *, transform: NegWeights | None = None, drop_zero: bool = False, objects: str = "auto",
             report_dir: str | os.PathLike[str] | None = None, diagnostics: bool = True,
             classifier: bool = True, spec: Any = None, **options: Any) -> Report:
    """Resample the weights of one or more files jointly and write them to ``output``.

    ``output``: a file (.lhe/.lhe.gz from LHE inputs, .root or .parquet from any, .zarr) that receives all
    inputs joined, or an existing directory that receives one file per input (same name). With ``spec``
    (or a .zarr output) the events go through ``hepslim.io.write`` as a hepslim container, NanoAOD-style
    (LHE inputs become ``LHEPart_*``, ``genWeight``, ``LHEWeight_<id>``). Inputs may be LHE, NanoAOD-like
    ROOT, generator-layout Parquet, or NanoAOD-like hepslim containers (read with ``hepslim.io.open``).
    ``None`` computes the report only. ``options`` are :class:`NegWeights` fields (``method="ot"``...).
    Inputs are never overwritten.

    >>> rep = resample("/work/shared/data/nano_dy.root", None, classifier=False)  # doctest: +SKIP
    """
    from hepslim.plugins.negweights import io as nio
    from hepslim.plugins.negweights.core import seed_order
    from hepslim.plugins.negweights.objects import FlatParticles

    tr = transform if transform is not None else NegWeights(**options)
    if transform is not None and options:
        tr = dataclasses.replace(transform, **options)
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    sample = nio.read_inputs(paths, objects=objects)
    timings["read_s"] = time.perf_counter() - t0
    fp = FlatParticles.from_awkward(sample.particles)
    w0 = sample.weights
    var0 = sample.variations if sample.variations.shape[1] else None
    t0 = time.perf_counter()
    w1, var1, cells, info = tr.reweight(fp, w0, var0, timings=timings)
    timings["resample_s"] = time.perf_counter() - t0
    fields = summarize(tr.method, w0, w1, var0, var1, cells, len(seed_order(w0, tr.seeds)))
    keep = (w1 != 0) if drop_zero else np.ones(len(w1), bool)
    n_written = None
    if output is not None:
        t0 = time.perf_counter()
        n_written = _write(sample, Path(output), w1, var1, keep, spec)
        timings["write_s"] = time.perf_counter() - t0
    rep = Report(inputs=[str(p) for p in paths], output=None if output is None else str(output),
                 n_unweighted=int(info.get("n_unweighted", 0)), n_written=n_written, config=tr.get_config(),
                 timings=timings, **fields)
    if diagnostics:
        from hepslim.plugins.negweights.diagnostics import bias_check, plot_report

        t0 = time.perf_counter()
        chi, auc, hists = bias_check(fp, w0, w1, seed=tr.seed, with_classifier=classifier)
        rep.chi2_ndf, rep.classifier_auc = chi, auc
        timings["diagnostics_s"] = time.perf_counter() - t0
        if report_dir is not None:
            rep.plots = plot_report(report_dir, hists, cells.radius, w0, w1, chi)
    rep.timings["total_s"] = time.perf_counter() - t_all
    rep.events_per_s = len(w0) / max(timings["resample_s"], 1e-9)
    if report_dir is not None:
        d = Path(report_dir)
        d.mkdir(parents=True, exist_ok=True)
        nio.atomic_write_bytes(d / "report.json", rep.to_json().encode())
    return rep


def _write(sample: Any, output: Path, w1: np.ndarray, var1: np.ndarray | None, keep: np.ndarray,
           spec: Any = None) -> int:
    from hepslim.plugins.negweights import io as nio

    resolved_inputs = {s.path.resolve() for s in sample.sources}
    names = sample.variation_names
    variations = {k: var1[:, j] for j, k in enumerate(names)} if var1 is not None else {}
    if output.is_dir() and not output.name.lower().endswith(".zarr"):
        groups = [([s], output / s.path.name) for s in sample.sources]
    else:
        groups = [(sample.sources, output)]
    for sources, out in groups:
        if out.resolve() in resolved_inputs:
            raise FormatError(f"{out}: refusing to overwrite an input file")
        kind = nio.kind_of(out)
        if kind == "lhe":
            if any(s.kind != "lhe" for s in sources):
                raise FormatError(f"{out}: LHE output needs LHE inputs (write .parquet instead)")
            lo, hi = sources[0].start, sources[-1].stop
            nio.write_lhe(sources, out, w1[lo:hi], {k: v[lo:hi] for k, v in variations.items()}, keep[lo:hi])
        elif spec is not None or kind == "zarr":
            from hepslim import io as hio

            hio.write(nio.nano_arrays_out(sources, w1, variations, keep), out, spec=spec, force=True)
        elif kind == "root":
            nio.write_root(sources, out, w1, variations, keep, names)
        else:
            nio.write_parquet(sources, out, w1, variations, keep, names)
    return int(keep.sum())
