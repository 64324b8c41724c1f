"""``hepslim tune``: the fewest mantissa bits (or coarsest quantization step) each float branch can take
while the sample stays indistinguishable from the original.

How (events are split at random, with a seed, into a *search* half and a *held-back* half):

1. **Per branch** (float branches the base spec stores, collection by collection): a ladder of candidate
   codecs from coarse to fine -- ``mantissa`` keepbits 1..B, where B is the precision the data actually
   carries (:func:`hepslim.survey.effective_mantissa_bits`; rounding to B bits is lossless on this data),
   or, when the base rule quantizes, the base step times 2**8 ... 2**-6 -- and a bisection for the
   coarsest candidate that passes. A candidate passes when, on the search events, the branch's
   distribution is statistically unchanged with a safety margin: the validation engine's
   :func:`hepslim.validate.observables.compare_distributions` (chi2 of quantile bins, KS) must show a
   distortion below ``margin`` times its 2-sigma statistical fluctuation (``chi2 <= margin * 2 sqrt(2 ndf)``,
   ``KS <= margin * 1.36 sqrt(2/n)``), and, where a resolution is declared, the largest error must stay below
   ``resolution_fraction`` of it.
2. **Per collection**: the two-sample classifier test and the observables benchmark of
   :mod:`hepslim.validate` on the collection with all its tuned branches applied together (errors add up);
   a failing collection gets 2 more bits on every tuned branch (up to 3 times), else falls back to the base.
3. **Held back**: the whole tuned spec is validated once on the held-back events, never used while
   searching (validate's observables and classifier benchmarks, plus the per-branch check without margin).
   A branch failing there is reverted to the base spec's codecs (conservative; no bits are chosen from
   held-back events), and the verdict is recomputed.

``budget`` caps the validation calls and/or the seconds spent; branches not reached keep the base codecs.
The result reports bytes/event under the base and the tuned spec and writes a spec that ``extends`` the base
(``TuneResult.write_spec``), so drops and derived branches of the base still apply.

>>> res = tune("sample.root", "nanoaod", budget="300")   # doctest: +SKIP
>>> res.write_spec("tuned.yaml")                          # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepslim.errors import HepslimError, SpecError
from hepslim.survey import Column, Input, _atomic_write, _is_protected, collection_of, effective_mantissa_bits, \
    read_input

TARGETS = ("indistinguishable",)
_MBITS = {2: 10, 4: 23, 8: 52}
_KS_C = 1.36  # two-sample KS critical value factor at alpha = 0.05


# ============================================================================================ inputs
@dataclass(frozen=True)
class Resolution:
    """A declared detector resolution: ``rel`` (fraction of the value) or ``abs`` (branch units)."""

    kind: str
    value: float

    @classmethod
    def parse(cls, v: Any) -> Resolution:
        """From ``{"rel": 0.1}``, ``{"abs": 0.01}``, ``"rel:0.1"`` or a Resolution."""
        if isinstance(v, Resolution):
            return v
        if isinstance(v, str) and ":" in v:
            k, _, x = v.partition(":")
            v = {k.strip(): x.strip()}
        if isinstance(v, Mapping) and len(v) == 1:
            (k, x), = v.items()
            try:
                val = float(x)
            except (TypeError, ValueError):
                val = float("nan")
            if k in ("rel", "abs") and val > 0 and math.isfinite(val):
                return cls(str(k), val)
        raise SpecError(f"a resolution is {{rel: <fraction>}} or {{abs: <value>}} with a positive value, got {v!r}")


@dataclass
class Budget:
    """Validation calls and/or seconds the tuner may spend (None: unlimited)."""

    calls: int | None = None
    seconds: float | None = None
    used: int = 0
    start: float = field(default_factory=time.perf_counter)

    @classmethod
    def parse(cls, text: str | int | float | Budget | None) -> Budget:
        """``200`` (calls), ``90s`` / ``5m`` (time), or both: ``200,5m``."""
        if isinstance(text, Budget):
            return text
        b = cls()
        if text is None:
            return b
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            b.calls = int(text)
            return b
        for part in str(text).split(","):
            part = part.strip().lower()
            m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|h)?", part)
            if not m:
                raise HepslimError(f"budget: expected CALLS, SECONDS's', MINUTES'm' or both ('200,5m'), got {text!r}")
            x, unit = float(m.group(1)), m.group(2)
            if unit is None:
                b.calls = int(x)
            else:
                b.seconds = x * {"s": 1, "m": 60, "h": 3600}[unit]
        return b

    def spend(self) -> bool:
        """Take one call from the budget; False when it is exhausted."""
        if self.calls is not None and self.used >= self.calls:
            return False
        if self.seconds is not None and time.perf_counter() - self.start >= self.seconds:
            return False
        self.used += 1
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "seconds": self.seconds, "used_calls": self.used,
                "elapsed_s": time.perf_counter() - self.start}


def spec_resolutions(spec: Any) -> dict[str, Resolution]:
    """Glob -> resolution from the spec's rules (a rule's optional ``resolution:`` key), child first."""
    out: dict[str, Resolution] = {}
    for rule in spec.all_rules:
        r = getattr(rule, "resolution", None)
        if r is None:
            continue
        for pat in rule.match:
            out.setdefault(pat, Resolution.parse(r.to_dict() if hasattr(r, "to_dict") else r))
    return out


# ========================================================================================= results
@dataclass
class BranchTune:
    """The outcome for one float branch."""

    name: str
    collection: str
    dtype: str
    effective_bits: int | None
    base_codecs: list[dict[str, Any]]
    tuned_codecs: list[dict[str, Any]]
    status: str  # tuned | unchanged | budget | reverted | backed-off | not-tunable
    family: str  # mantissa | quantize
    setting: float | None  # keepbits or error of the tuned lossy stage
    base_setting: float | None
    calls: int = 0
    search: dict[str, Any] = field(default_factory=dict)
    held_back: dict[str, Any] = field(default_factory=dict)
    base_bytes_per_event: float | None = None
    tuned_bytes_per_event: float | None = None
    resolution: dict[str, Any] | None = None
    switched: bool = False  # quantize base replaced by a mantissa precision
    base_family: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class TuneResult:
    """Everything :func:`tune` found; ``spec_text()`` / ``write_spec(path)`` give the tuned spec."""

    path: str
    base_spec: str
    base_ref: str
    target: str
    seed: int
    n_events: int
    n_search: int
    n_held_back: int
    margin: float
    resolution_fraction: float
    branches: list[BranchTune]
    collections: dict[str, Any]
    held_back: dict[str, Any]
    base_held_back: dict[str, Any]
    verdict: str
    budget: dict[str, Any]
    container: str
    totals: dict[str, float]
    notes: list[str]

    def branch(self, name: str) -> BranchTune:
        for b in self.branches:
            if b.name == name:
                return b
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "branches"}
        d["branches"] = [b.to_dict() for b in self.branches]
        return d

    def spec_text(self, name: str | None = None, extends: str | None = None) -> str:
        """The tuned spec (YAML): ``extends`` the base, one rule per distinct tuned codec list, naming the
        branches exactly, so they win over the base's rules; unchanged branches are not listed."""
        name = name or f"{self.base_spec}_tuned"
        groups: dict[str, list[BranchTune]] = {}
        for b in self.branches:
            if b.tuned_codecs != b.base_codecs:
                groups.setdefault(json.dumps(b.tuned_codecs, sort_keys=True), []).append(b)
        lines = [f"# Tuned by `hepslim tune` on {Path(self.path).name}: {self.n_search} search events, "
                 f"{self.n_held_back} held-back events (seed {self.seed}).",
                 f"# Held-back validation of the tuned spec: {self.verdict}; bytes/event (float branches, "
                 f"{self.container}) {self.totals['base_float_bytes_per_event']:.1f} (base) -> "
                 f"{self.totals['tuned_float_bytes_per_event']:.1f} (tuned).",
                 f"name: {json.dumps(name)}",
                 f"description: {json.dumps(f'{self.base_spec} with per-branch precision tuned on ' + Path(self.path).name)}",
                 f"extends: {json.dumps(extends or self.base_ref)}"]
        if not groups:
            lines.append("rules: []")
        else:
            lines.append("rules:")
        for key, bs in sorted(groups.items(), key=lambda kv: sorted(b.name for b in kv[1])[0]):
            what = ", ".join(f"{b.name} {_setting_text(b)}" for b in sorted(bs, key=lambda b: b.name)[:6])
            more = f" (+{len(bs) - 6} more)" if len(bs) > 6 else ""
            lines.append(f"  # {what}{more}")
            lines.append(f"  - match: {json.dumps(sorted(b.name for b in bs))}")
            lines.append(f"    codecs: {json.dumps(json.loads(key))}")
        return "\n".join(lines) + "\n"

    def write_spec(self, path: str | os.PathLike[str], *, name: str | None = None, force: bool = False) -> str:
        """Write :meth:`spec_text` atomically, after checking that it loads (``hepslim spec check``).

        A base given as a file path is referenced relative to the output's directory."""
        from hepslim.policy import load_spec

        p = Path(path)
        if p.exists() and not force:
            raise HepslimError(f"{p} exists; pass force=True (--force) to overwrite it")
        if p.exists() and p.resolve() == Path(self.path).resolve():
            raise HepslimError(f"{p} is the input file")
        ext = self.base_ref
        if os.path.isfile(ext):
            ext = os.path.relpath(os.path.abspath(ext), os.path.abspath(p.parent or "."))
        text = self.spec_text(name=name, extends=ext)
        # the temp file sits next to the output, so a relative 'extends' resolves the same way
        _atomic_write(p, text, check=load_spec)
        return str(p)

    def summary(self) -> str:
        t = self.totals
        lines = [f"tune {Path(self.path).name} from spec {self.base_spec!r}: {self.n_search} search / "
                 f"{self.n_held_back} held-back events, target {self.target}",
                 f"held-back verdict: tuned {self.verdict}; base {self.base_held_back.get('verdict', '?')}",
                 f"bytes/event, float branches ({self.container}): base {t['base_float_bytes_per_event']:.1f} -> "
                 f"tuned {t['tuned_float_bytes_per_event']:.1f} ({100 * t['float_saving_fraction']:.1f}% saved); "
                 f"all branches {t['base_bytes_per_event']:.1f} -> {t['tuned_bytes_per_event']:.1f}",
                 f"validation calls {self.budget['used_calls']}, {self.budget['elapsed_s']:.1f} s", ""]
        w = max([len(b.name) for b in self.branches] + [6])
        lines.append(f"{'branch':<{w}} {'base':>12} {'tuned':>12} {'B/evt base':>10} {'tuned':>7}  status")
        for b in self.branches:
            lines.append(f"{b.name:<{w}} {_setting_text(b, base=True):>12} {_setting_text(b):>12} "
                         f"{_f(b.base_bytes_per_event):>10} {_f(b.tuned_bytes_per_event):>7}  {b.status}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _f(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f}"


def _setting_text(b: BranchTune, base: bool = False) -> str:
    s = b.base_setting if base else b.setting
    fam = (b.base_family or b.family) if base else b.family
    if s is None:
        return "lossless"
    if fam == "mantissa":
        return f"{int(s)} bits"
    return f"err {s:.3g}"


# ========================================================================================== ladders
def _lossy_stage(codecs: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    from hepslim.registry import get_codec

    for c in codecs:
        if not get_codec(dict(c)).lossless:
            return dict(c)
    return None


def _ladder(rule_codecs: Sequence[Mapping[str, Any]], eff_bits: int | None, mbits: int
            ) -> tuple[str, list[list[dict[str, Any]]], list[float], float | None]:
    """(family, candidate codec lists coarse -> fine, their settings, the base setting)."""
    from hepslim.registry import get_codec

    built = [(dict(c), get_codec(dict(c))) for c in rule_codecs]
    tail = [c for c, k in built if k.lossless and k.kind == "bytes->bytes"]
    lossy = _lossy_stage(rule_codecs)
    if lossy is not None and lossy["id"] == "quantize":
        key = "rel_error" if lossy.get("mode") == "log" else "abs_error"
        base = float(lossy[key])
        settings = [base * 2.0**i for i in range(8, -7, -1)]
        if key == "rel_error":
            settings = [s for s in settings if s < 0.5]
        if lossy.get("mode") == "angle":
            settings = [s for s in settings if s < 1.0]
        ok = []
        for s in settings:  # a very fine step over a wide fixed range may need too many bits: skip it
            try:
                get_codec({**lossy, key: s})
            except HepslimError:
                continue
            ok.append(s)
        cands = [[{**lossy, key: s}, *tail] for s in ok]
        return "quantize", cands, ok, base
    return _mantissa_ladder(rule_codecs, eff_bits, mbits)


def _mantissa_ladder(rule_codecs: Sequence[Mapping[str, Any]], eff_bits: int | None, mbits: int
                     ) -> tuple[str, list[list[dict[str, Any]]], list[float], float | None]:
    """keepbits 1 .. (the bits the data carries): the finest candidate is exact on this data."""
    from hepslim.registry import get_codec

    built = [(dict(c), get_codec(dict(c))) for c in rule_codecs]
    lossy = _lossy_stage(rule_codecs)
    tail = [c for c, k in built if k.lossless and k.kind == "bytes->bytes"]
    ser = [c for c, k in built if k.lossless and k.kind == "array->bytes"]
    if not ser and lossy is not None and lossy["id"] == "quantize":
        ser = [{"id": "bytestreamsplit"}]
    top = min(mbits, eff_bits) if eff_bits is not None else mbits
    top = max(top, 1)
    settings = [float(k) for k in range(1, top + 1)]
    cands = [[{"id": "mantissa", "keepbits": int(k)}, *ser, *tail] for k in settings]
    base_set = float(lossy["keepbits"]) if lossy is not None and lossy["id"] == "mantissa" else None
    return "mantissa", cands, settings, base_set


# ============================================================================================ checks
def _paired_check(x: np.ndarray, y: np.ndarray, margin: float, resolution: Resolution | None,
                  fraction: float, seed: int) -> tuple[bool, dict[str, Any]]:
    """Whether replacing ``x`` by ``y`` (same values, changed) is statistically invisible, with ``margin``:
    chi2 <= margin * 2 sqrt(2 ndf) and KS <= margin * 1.36 sqrt(2/n) (validate's compare_distributions),
    and the resolution condition when one is declared."""
    from hepslim.validate.observables import compare_distributions

    xo = x.astype(np.float64)
    yo = y.astype(np.float64)
    fin = np.isfinite(xo) & np.isfinite(yo)
    st: dict[str, Any] = {}
    ok = True
    if resolution is not None and np.any(fin):
        d = np.abs(yo[fin] - xo[fin])
        if resolution.kind == "rel":
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(d == 0, 0.0, d / np.abs(xo[fin]))
            worst = float(np.max(r))
        else:
            worst = float(np.max(d))
        st["max_error_over_resolution"] = worst / resolution.value
        ok &= worst <= fraction * resolution.value
    if np.array_equal(xo[fin], yo[fin]):
        st.update(chi2=0.0, ndf=1, ks=0.0, n=int(fin.sum()), identical=True)
        return bool(ok), st
    n = int(fin.sum())
    nbins = int(min(200, max(40, n // 100)))
    cd = compare_distributions(xo[fin], yo[fin], np.random.default_rng(seed), nbins=nbins)
    chi2 = cd["chi2_ndf"] * cd.get("ndf", 1)
    ndf = cd.get("ndf", 1)
    ks_crit = _KS_C * math.sqrt(2.0 / max(n, 1))
    st.update(chi2=chi2, ndf=ndf, chi2_allowed=margin * 2 * math.sqrt(2 * ndf), ks=cd["ks"],
              ks_allowed=margin * ks_crit, n=n, chi2_p=cd["chi2_p"], ks_p=cd["ks_p"])
    ok &= chi2 <= st["chi2_allowed"] and cd["ks"] <= st["ks_allowed"]
    return bool(ok), st


def _awkward(cols: Mapping[str, Column], names: Sequence[str], events: np.ndarray,
             owner: Mapping[str, np.ndarray], override: Mapping[str, np.ndarray] | None = None) -> Any:
    """An awkward record array of ``names`` for ``events`` (sorted indices); ``override`` replaces the
    flat content of some branches (already restricted to those events)."""
    import awkward as ak

    out: dict[str, Any] = {}
    for n in names:
        c = cols[n]
        vals = override[n] if override and n in override else _subset(c, events, owner)
        out[n] = vals if c.counts is None else ak.unflatten(vals, c.counts[events])
    return ak.zip(out, depth_limit=1)


def _subset(c: Column, events: np.ndarray, owner: Mapping[str, np.ndarray]) -> np.ndarray:
    if c.counts is None:
        return c.values[events]
    return c.values[owner["_mask_" + c.name]] if ("_mask_" + c.name) in owner else c.values[_value_mask(c, events)]


def _value_mask(c: Column, events: np.ndarray) -> np.ndarray:
    """Boolean mask over a jagged column's flat values: those belonging to ``events``."""
    assert c.counts is not None
    sel = np.zeros(c.counts.size, bool)
    sel[events] = True
    return np.repeat(sel, c.counts)


def _has_finite(col: Any) -> bool:
    import awkward as ak

    v = np.asarray(ak.flatten(col, axis=None))
    return v.dtype.kind != "f" or v.size == 0 or bool(np.any(np.isfinite(v)))


def _collection_check(orig: Any, comp: Any, seed: int, *, max_rows: int = 50_000,
                      max_values: int = 1_000_000) -> dict[str, Any]:
    """validate's classifier and observables benchmarks on one (sub-)sample; verdict indistinguishable
    when both are."""
    from hepslim.validate.classifier import classifier_test
    from hepslim.validate.observables import compare_observables

    notes: list[str] = []
    obs, _ = compare_observables(orig, comp, seed=seed, notes=notes, max_values=max_values)
    # scikit-learn's binning fails on a feature with no finite value (e.g. HTXS_Higgs_y, all NaN in
    # NanoAOD ttbar): such a branch carries nothing to classify on, leave it out of the classifier
    keep = [f for f in orig.fields if _has_finite(orig[f])]
    if len(keep) < len(orig.fields):
        notes.append(f"classifier: {len(orig.fields) - len(keep)} branch(es) without finite values left out")
        orig, comp = orig[keep], comp[keep]
    try:  # many small fits: one thread each avoids OpenMP oversubscription on a shared machine
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        cls = classifier_test(orig, comp, seed=seed, mode=None, notes=notes, max_rows=max_rows)
    else:
        with threadpool_limits(limits=1):
            cls = classifier_test(orig, comp, seed=seed, mode=None, notes=notes, max_rows=max_rows)
    verdict = "distinguishable" if "distinguishable" in (obs["verdict"], cls["verdict"]) else "indistinguishable"
    return {"verdict": verdict,
            "observables": {"verdict": obs["verdict"], "flagged": obs["distinguishable"],
                            "n_observables": obs["n_observables"]},
            "classifier": {"verdict": cls["verdict"], "flagged": cls["distinguishable"],
                           "tests": {k: {kk: t.get(kk) for kk in ("auc", "sigma", "z", "identical")}
                                     for k, t in cls["tests"].items()}},
            "notes": notes}


# ============================================================================================== tune
def split_events(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The (search, held-back) event indices :func:`tune` uses: a seeded random half each, sorted."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def tune(path: str | os.PathLike[str] | Input, spec: Any = "lossless", *, target: str = "indistinguishable",
         budget: str | int | Budget | None = None, resolutions: Mapping[str, Any] | None = None,
         resolution_fraction: float = 0.1, margin: float = 0.5, max_events: int | None = None,
         branches: Sequence[str] | None = None, seed: int = 0, container: str = "zarr", tree: str | None = None,
         progress: bool = False) -> TuneResult:
    """Tune the float branches of ``path`` starting from ``spec`` (see the module docstring).

    ``resolutions`` maps branch globs to ``{rel: x}`` / ``{abs: x}`` (added to those the spec declares);
    ``margin`` (0 < margin <= 1) is the fraction of the statistical fluctuation a single branch's distortion
    may reach while searching; ``branches`` restricts tuning to these names/globs.
    """
    from hepslim.policy import load_spec, resolve

    if target not in TARGETS:
        raise HepslimError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if not 0 < margin <= 1:
        raise HepslimError(f"margin must be in (0, 1], got {margin!r}")
    if not 0 < resolution_fraction <= 1:
        raise HepslimError(f"resolution_fraction must be in (0, 1], got {resolution_fraction!r}")
    base = load_spec(spec)
    base_ref = spec if isinstance(spec, str) else (base.source or base.name)
    if isinstance(spec, os.PathLike):
        base_ref = os.fspath(spec)
    bud = Budget.parse(budget)
    res_map = dict(spec_resolutions(base))
    for k, v in (resolutions or {}).items():
        res_map[k] = Resolution.parse(v)
    inp = path if isinstance(path, Input) else read_input(path, tree=tree, max_events=max_events)
    cols = inp.columns
    n = inp.n_read
    if n < 4:
        raise HepslimError(f"{inp.path}: {n} events is too few to split into search and held-back halves")
    search, held = split_events(n, seed)
    owner_s: dict[str, np.ndarray] = {}
    owner_h: dict[str, np.ndarray] = {}
    for nm, c in cols.items():
        if c.counts is not None:
            owner_s["_mask_" + nm] = _value_mask(c, search)
            owner_h["_mask_" + nm] = _value_mask(c, held)
    prefixes = {nm.split("_", 1)[0] for nm in cols if "_" in nm}
    want = None if branches is None else list(branches)
    notes: list[str] = []

    # ---- which branches to tune
    from hepslim.pipeline import Pipeline

    results: dict[str, BranchTune] = {}
    ladders: dict[str, tuple[str, list[list[dict[str, Any]]], list[float], float | None]] = {}
    for nm, c in cols.items():
        dt = c.values.dtype
        if dt.kind != "f" or _is_protected(nm) or base.is_dropped(nm) or base.derived_for(nm) is not None:
            continue
        if want is not None and not any(fnmatch.fnmatchcase(nm, p) for p in want):
            continue
        if c.values.size == 0:
            continue
        rule = base.rule_for(nm)
        rule_codecs = [dict(x) for x in rule.codecs] if rule is not None else []
        eff = effective_mantissa_bits(c.values)
        mbits = _MBITS[dt.itemsize]
        family, cands, settings, base_set = _ladder(rule_codecs, eff, mbits)
        base_pipe = resolve(base, nm, dt, container=container)
        bt = BranchTune(nm, collection_of(nm, prefixes), str(dt), eff, rule_codecs, rule_codecs, "unchanged",
                        family, base_set, base_set, base_family=family)
        res = next((r for p, r in res_map.items() if fnmatch.fnmatchcase(nm, p)), None)
        bt.resolution = {"kind": res.kind, "value": res.value} if res else None
        results[nm] = bt
        ladders[nm] = (family, cands, settings, base_set)
        del base_pipe

    def check(nm: str, codecs: list[dict[str, Any]], events_owner: Mapping[str, np.ndarray],
              events: np.ndarray, m: float) -> tuple[bool, dict[str, Any], np.ndarray]:
        c = cols[nm]
        x = _subset(c, events, events_owner)
        y = Pipeline.from_configs(codecs).apply_values(x)
        rd = results[nm].resolution
        res = Resolution(**rd) if rd else None
        ok, st = _paired_check(x, y, m, res, resolution_fraction, seed)
        return ok, st, y

    # ---- 1. per-branch bisection on the search events
    order = sorted(results, key=lambda k: (results[k].collection, k))
    it: Any = order
    if progress:
        try:
            from tqdm import tqdm

            it = tqdm(order, desc="tune", unit="branch")
        except ImportError:
            pass
    exhausted = False
    for nm in it:
        bt = results[nm]
        family, cands, settings, base_set = ladders[nm]
        if exhausted:
            bt.status = "budget"
            continue
        lo, hi = 0, len(cands) - 1
        # the finest mantissa candidate keeps every bit the data has: it passes without a test
        best: int | None = hi if family == "mantissa" and (bt.effective_bits or 0) <= int(settings[hi]) else None
        stats: dict[str, Any] = {}
        if best is None:
            if not bud.spend():
                bt.status, exhausted = "budget", True
                continue
            bt.calls += 1
            ok, st, _ = check(nm, cands[hi], owner_s, search, margin)
            if not ok:
                # even the finest quantization step changes the distribution (e.g. values clustered
                # below the step, like scores at -0.9999999 or factors at 1e-8): switch to a relative
                # (mantissa) precision, whose finest rung is exact on this data
                bt.search = {"quantize_finest": settings[hi], **st}
                rule = base.rule_for(nm)
                family, cands, settings, _ = _mantissa_ladder([dict(x) for x in rule.codecs] if rule else [],
                                                              bt.effective_bits, _MBITS[cols[nm].values.dtype.itemsize])
                ladders[nm] = (family, cands, settings, ladders[nm][3])
                bt.family, bt.switched = "mantissa", True
                lo, hi = 0, len(cands) - 1
                stats = {}
            best = hi if best is None and family == "mantissa" else best
            if best is None:
                best, stats = hi, st
        hi = best - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            if not bud.spend():
                exhausted = True
                break
            bt.calls += 1
            ok, st, _ = check(nm, cands[mid], owner_s, search, margin)
            if ok:
                best, stats = mid, st
                hi = mid - 1
            else:
                lo = mid + 1
        bt.tuned_codecs = cands[best]
        bt.setting = settings[best]
        bt.search = {**bt.search, "setting": settings[best], **stats}
        bt.status = "tuned" if bt.tuned_codecs != bt.base_codecs else "unchanged"
        if exhausted and lo <= hi:
            bt.status += " (budget: search stopped early)"

    def tuned_values(nm: str, events: np.ndarray, owner: Mapping[str, np.ndarray]) -> np.ndarray:
        bt = results[nm]
        return Pipeline.from_configs(bt.tuned_codecs).apply_values(_subset(cols[nm], events, owner))

    def is_exact(x: str) -> bool:
        bt = results[x]
        return (Pipeline.from_configs(bt.tuned_codecs).lossless if bt.tuned_codecs else True) or (
            bt.family == "mantissa" and bt.setting is not None and bt.setting >= (bt.effective_bits or 0))

    def make_exact(x: str, status: str) -> None:
        """The safe fallback: mantissa at the bits the data carries, i.e. the values unchanged."""
        bt = results[x]
        rule = base.rule_for(x)
        fam, cands, settings, _ = _mantissa_ladder([dict(c) for c in rule.codecs] if rule else [],
                                                   bt.effective_bits, _MBITS[cols[x].values.dtype.itemsize])
        ladders[x] = (fam, cands, settings, ladders[x][3])
        bt.family, bt.tuned_codecs, bt.setting, bt.status = fam, cands[-1], settings[-1], status
        bt.switched = bt.switched or (bt.base_codecs and _lossy_stage(bt.base_codecs) or {}).get("id") == "quantize"

    # ---- 2. per collection, all tuned branches together (search events), with back-off
    coll_report: dict[str, Any] = {}
    by_coll: dict[str, list[str]] = {}
    for nm, bt in results.items():
        if bt.status.startswith("tuned"):
            by_coll.setdefault(bt.collection, []).append(nm)
    for coll, names in sorted(by_coll.items()):
        members = [x for x in cols if collection_of(x, prefixes) == coll and cols[x].values.dtype.kind in "biuf"]
        attempts = []
        for attempt in range(4):
            if not bud.spend():
                notes.append(f"budget exhausted before the collection check of {coll}")
                break
            over = {x: tuned_values(x, search, owner_s) for x in names}
            orig = _awkward(cols, members, search, owner_s)
            comp = _awkward(cols, members, search, owner_s, over)
            rep = _collection_check(orig, comp, seed)
            attempts.append(rep["verdict"])
            if rep["verdict"] == "indistinguishable":
                break
            if attempt == 3:  # give up: every tuned branch of the collection exact at the data's precision
                for x in names:
                    make_exact(x, "exact (collection check)")
                break
            for x in names:  # 2 more bits (one finer step x2) on every tuned branch of the collection
                bt = results[x]
                fam, cands, settings, _ = ladders[x]
                i = settings.index(bt.setting) if bt.setting in settings else len(settings) - 1
                j = min(len(settings) - 1, i + 2)
                bt.tuned_codecs, bt.setting, bt.status = cands[j], settings[j], "backed-off"
        coll_report[coll] = {"attempts": attempts, "branches": sorted(names)}

    # ---- 3. held-back validation of the whole tuned spec (and of the base, for comparison)
    float_names = sorted(results)
    all_numeric = [x for x in cols if cols[x].values.dtype.kind in "biuf"]

    def held_check(use_tuned: bool) -> tuple[dict[str, Any], list[str]]:
        over: dict[str, np.ndarray] = {}
        failing: list[str] = []
        per: dict[str, Any] = {}
        for x in float_names:
            bt = results[x]
            codecs = bt.tuned_codecs if use_tuned else bt.base_codecs
            if not codecs or Pipeline.from_configs(codecs).lossless:
                continue
            ok, st, y = check(x, codecs, owner_h, held, 1.0)
            over[x] = y
            per[x] = {"pass": ok, **{k: st.get(k) for k in ("chi2", "chi2_allowed", "ks", "ks_allowed",
                                                            "max_error_over_resolution")}}
            if not ok:
                failing.append(x)
        orig = _awkward(cols, all_numeric, held, owner_h)
        comp = _awkward(cols, all_numeric, held, owner_h, over)
        rep = _collection_check(orig, comp, seed + 1)
        rep["per_branch"] = per
        rep["branches_failing"] = failing
        if failing:
            rep["verdict"] = "distinguishable"
        return rep, failing

    held_rep, failing = held_check(True)
    first_held = {"verdict": held_rep["verdict"], "branches_failing": list(failing),
                  "observables_flagged": list(held_rep["observables"]["flagged"]),
                  "classifier_flagged": list(held_rep["classifier"]["flagged"])}
    if held_rep["verdict"] != "indistinguishable":
        # no bits are chosen from held-back events: failing branches only fall back to exact values
        flagged_colls = set(held_rep["classifier"]["flagged"])
        flagged_obs = set(held_rep["observables"]["flagged"])
        derived_colls = {c for o in flagged_obs if o.startswith("derived:") for c in by_coll
                         if c.lower() in o.lower() or (c == "Jet" and ("dijet" in o or "jet_" in o))}
        revert = set(failing) | (flagged_obs & set(float_names)) | {
            x for x in float_names if results[x].collection in flagged_colls | derived_colls}
        revert = {x for x in revert if not is_exact(x)}
        for x in sorted(revert):
            results[x].held_back = held_rep["per_branch"].get(x, {})
            make_exact(x, "exact (held-back check)")
        if revert:
            notes.append(f"held-back validation failed; {len(revert)} branch(es) set to exact values "
                         "(mantissa at the data's own precision)")
            held_rep, failing = held_check(True)
    held_rep["first_pass"] = first_held
    for x, st in held_rep.get("per_branch", {}).items():
        results[x].held_back = st
    base_rep, _ = held_check(False)
    verdict = held_rep["verdict"]

    # ---- 4. bytes per event, base vs tuned, every stored branch of the events read
    base_total = tuned_total = base_float = tuned_float = 0.0
    for nm, c in cols.items():
        if base.is_dropped(nm) or base.derived_for(nm) is not None or c.values.size == 0:
            continue
        from hepslim.policy import is_counter_name, is_index_name

        role = "counter" if is_counter_name(nm) else "index" if is_index_name(nm) else "values"
        try:
            bsize = len(resolve(base, nm, c.values.dtype, role=role, container=container).encode(c.values)) / n
        except HepslimError:
            continue
        tsize = bsize
        if nm in results:
            bt = results[nm]
            if bt.tuned_codecs != bt.base_codecs:
                tsize = len(_complete_pipeline(bt.tuned_codecs, c.values.dtype, container).encode(c.values)) / n
            bt.base_bytes_per_event, bt.tuned_bytes_per_event = bsize, tsize
            base_float += bsize
            tuned_float += tsize
        base_total += bsize
        tuned_total += tsize
    totals = {"base_bytes_per_event": base_total, "tuned_bytes_per_event": tuned_total,
              "base_float_bytes_per_event": base_float, "tuned_float_bytes_per_event": tuned_float,
              "float_saving_fraction": 1 - tuned_float / base_float if base_float else 0.0,
              "saving_fraction": 1 - tuned_total / base_total if base_total else 0.0}
    if search.size < 1000:
        notes.append(f"only {search.size} search events: the statistical tests have little power at this size, so "
                     "bits can go very low; declare resolutions (--resolution) or tune on a larger sample")
    notes.append("held-back validation runs hepslim.validate's observables and classifier benchmarks in memory "
                 "(transparent-mode values); the jet-tagger benchmark is not part of tuning")
    return TuneResult(inp.path, base.name, str(base_ref), target, seed, n, int(search.size), int(held.size), margin,
                      resolution_fraction, [results[k] for k in order], coll_report,
                      _strip(held_rep), _strip(base_rep), verdict, bud.to_dict(), container, totals, notes)


def _strip(rep: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(rep, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _complete_pipeline(codecs: Sequence[Mapping[str, Any]], dtype: np.dtype, container: str) -> Any:
    """The pipeline a spec rule with ``codecs`` gives a branch of ``dtype`` in ``container`` (resolved
    through a one-rule spec, so it is completed exactly as the tuned spec will be)."""
    from hepslim.policy import load_spec, resolve

    text = f"name: probe\nrules:\n  - match: x\n    codecs: {json.dumps([dict(c) for c in codecs])}\n"
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "probe.yaml"
        p.write_text(text, encoding="utf-8")
        spec = load_spec(str(p))
    return resolve(spec, "x", dtype, container=container)


def evaluate(path: str | os.PathLike[str] | Input, spec: Any, *, events: np.ndarray | None = None,
             container: str = "zarr", seed: int = 0, max_events: int | None = None,
             tree: str | None = None) -> dict[str, Any]:
    """What ``spec`` does to a sample: bytes/event of every branch it stores (pipelines completed for
    ``container``, measured on all events read) and validation of its transparent-mode values on ``events``
    (default: the held-back half of :func:`split_events`) with validate's observables and classifier
    benchmarks. Dropped and derived branches cost 0 bytes and are left out of the comparison.

    Used by ``benchmarks/bench_survey_tune.py`` to put the CMS production precisions, a shipped spec and a
    tuned spec side by side.
    """
    from hepslim.pipeline import Pipeline
    from hepslim.policy import is_counter_name, is_index_name, load_spec, resolve

    s = load_spec(spec)
    inp = path if isinstance(path, Input) else read_input(path, tree=tree, max_events=max_events)
    cols = inp.columns
    n = max(inp.n_read, 1)
    if events is None:
        events = split_events(inp.n_read, seed)[1]
    owner = {"_mask_" + k: _value_mask(c, events) for k, c in cols.items() if c.counts is not None}
    total = 0.0
    per: dict[str, float] = {}
    over: dict[str, np.ndarray] = {}
    kept: list[str] = []
    for nm, c in cols.items():
        if s.is_dropped(nm) or s.derived_for(nm) is not None:
            continue
        kept.append(nm) if c.values.dtype.kind in "biuf" else None
        role = "counter" if is_counter_name(nm) else "index" if is_index_name(nm) else "values"
        pipe: Pipeline = resolve(s, nm, c.values.dtype, role=role, container=container)
        size = len(pipe.encode(c.values)) / n if c.values.size else 0.0
        per[nm] = size
        total += size
        if c.values.dtype.kind == "f" and not pipe.lossless:
            over[nm] = pipe.apply_values(_subset(c, events, owner))
    orig = _awkward(cols, kept, events, owner)
    comp = _awkward(cols, kept, events, owner, over)
    rep = _collection_check(orig, comp, seed + 1)
    return {"spec": s.name, "bytes_per_event": total, "branch_bytes_per_event": per, "verdict": rep["verdict"],
            "observables_flagged": rep["observables"]["flagged"], "classifier_flagged": rep["classifier"]["flagged"],
            "n_events_validated": int(len(events)), "n_lossy_branches": len(over)}
