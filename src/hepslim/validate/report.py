"""The ``--report DIR`` output: mplhep-style plots and an index (Markdown and HTML) linking them."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from hepslim.errors import MissingDependencyError
from hepslim.validate.branches import error_sample, flat_values

_MAX_OVERLAYS = 40
_DPI = 72
_MAX_ERROR_PLOTS = 24


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "plots", "validation plots") from exc
    try:
        import mplhep

        plt.style.use(mplhep.style.CMS)
    except ImportError:
        pass
    return plt


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _overlay(plt: Any, name: str, o: np.ndarray, c: np.ndarray, stats: dict[str, Any], path: Path) -> None:
    fin = np.isfinite(o)
    if not fin.any():
        return
    lo, hi = np.quantile(o[fin], [0.005, 0.995])
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, 51)
    ho, _ = np.histogram(o, edges)
    hc, _ = np.histogram(c, edges)
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    ax.stairs(ho, edges, label="original", color="black")
    ax.stairs(hc, edges, label="compressed", color="tab:red", linestyle="--")
    ax.set_ylabel("entries")
    ax.legend(title=f"$\\chi^2$/ndf={stats['chi2_ndf']:.2f}  KS={stats['ks']:.2g} (exp. {stats['ks_expected']:.2g})", fontsize=12, title_fontsize=12)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ho > 0, hc / ho, np.nan)
        err = np.where(ho > 0, np.sqrt(hc) / ho, np.nan)
    centers = (edges[1:] + edges[:-1]) / 2
    rax.errorbar(centers, ratio, yerr=err, fmt="o", color="tab:red", markersize=3)
    rax.axhline(1.0, color="black", linewidth=1)
    typical = float(np.nanmedian(err)) if np.isfinite(err).any() else 0.1
    half = min(max(3 * typical, 0.05), 0.5)
    rax.set_ylim(1 - half, 1 + half)
    rax.set_ylabel("comp./orig.")
    rax.set_xlabel(name)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")  # mplhep fonts are large: keep axis labels in the frame
    plt.close(fig)


def _roc(plt: Any, rocs: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(8, 7))
    for key, (y, s) in rocs.items():
        fpr, tpr, _ = roc_curve(y, s)
        with np.errstate(divide="ignore"):
            ax.plot(tpr, np.where(fpr > 0, 1 / fpr, np.nan), label=key.replace("_", " "))
    ax.set_yscale("log")
    ax.set_xlabel(r"signal efficiency $\varepsilon_S$")
    ax.set_ylabel(r"background rejection $1/\varepsilon_B$")
    ax.legend(fontsize=12)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")  # mplhep fonts are large: keep axis labels in the frame
    plt.close(fig)


def _error_hist(plt: Any, name: str, err: np.ndarray, bounded: bool, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 6))
    err = err[np.isfinite(err)]
    if bounded:
        ax.hist(err, bins=np.linspace(0, max(1.05, float(err.max()) if err.size else 1.0), 60), histtype="step", color="tab:blue")
        ax.axvline(1.0, color="tab:red", linestyle="--", label="declared bound")
        ax.set_xlabel(f"{name}: |error| / bound")
        ax.legend(fontsize=12)
    else:
        pos = err[err > 0]
        if pos.size:
            ax.hist(np.log10(pos), bins=60, histtype="step", color="tab:blue")
        ax.set_xlabel(f"{name}: log10 relative error (changed values)")
    ax.set_ylabel("values")
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")  # mplhep fonts are large: keep axis labels in the frame
    plt.close(fig)


def write_report(out_dir: str | os.PathLike[str], result: dict[str, Any], orig: Any, comp: Any,
                 samples: dict[str, tuple[np.ndarray, np.ndarray]], rocs: dict[str, Any] | None,
                 max_plots: int = _MAX_OVERLAYS) -> Path:  # fmt: skip
    """Write plots, ``report.json``, ``index.md`` and ``index.html`` into ``out_dir``; returns the index."""
    plt = _plt()
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    obs = result["benchmarks"].get("observables", {}).get("per_observable", {})
    derived = [k for k in obs if k.startswith("derived:")]
    others = sorted((k for k in obs if not k.startswith("derived:")), key=lambda k: -obs[k]["ks"])
    chosen = derived + [k for k in others if obs[k]["distinguishable"]]
    chosen += [k for k in others if k not in chosen][: max(0, max_plots - len(chosen))]
    chosen = chosen[:max_plots]
    items = []
    for k in chosen:
        if k in samples:
            fn = f"plots/overlay_{_safe(k)}.png"
            _overlay(plt, k.removeprefix("derived:"), samples[k][0], samples[k][1], obs[k], out / fn)
            items.append((k + (" (distinguishable)" if obs[k]["distinguishable"] else ""), fn))
    sections.append(("Distributions: original vs compressed", items))
    if rocs:
        fn = "plots/roc_tagger.png"
        _roc(plt, rocs, out / fn)
        sections.append(("Jet tagger ROC curves (seed 0)", [("ROC", fn)]))
    br = result["benchmarks"].get("branches", {}).get("per_branch", {})
    changed = sorted((k for k, r in br.items() if r.get("structure_equal") and r.get("frac_unchanged", 1) < 1),
                     key=lambda k: -br[k].get("worst_over_bound", br[k].get("max_rel", 0)))[:min(_MAX_ERROR_PLOTS, max_plots)]  # fmt: skip
    items = []
    for k in changed:
        bound = br[k].get("bound")
        err = error_sample(flat_values(orig[k]), flat_values(comp[k]), bound)
        fn = f"plots/error_{_safe(k)}.png"
        _error_hist(plt, k, err, bound is not None, out / fn)
        items.append((k, fn))
    sections.append(("Per-branch errors (vs declared bound where recorded)", items))
    clean = {k: v for k, v in result.items() if not k.startswith("_")}
    (out / "report.json").write_text(json.dumps(clean, indent=2, default=_json_default))
    md = [f"# hepslim validate: **{result['verdict']}**", "",
          f"original: `{result['original']}`  ", f"compressed: `{result['compressed']}`  ",
          f"size ratio (original/compressed): {result.get('size_ratio', float('nan')):.3f}", "",
          "| benchmark | verdict |", "|---|---|"]  # fmt: skip
    for name, b in result["benchmarks"].items():
        md.append(f"| {name} | {b.get('verdict')} |")
    for note in result.get("notes", []):
        md.append(f"\n> {note}")
    hs = [f"<h1>hepslim validate: {html.escape(result['verdict'])}</h1>",
          f"<p>original: <code>{html.escape(str(result['original']))}</code><br>compressed: <code>{html.escape(str(result['compressed']))}</code></p>",
          "<table><tr><th>benchmark</th><th>verdict</th></tr>"]  # fmt: skip
    hs += [f"<tr><td>{html.escape(n)}</td><td>{html.escape(str(b.get('verdict')))}</td></tr>" for n, b in result["benchmarks"].items()]
    hs.append("</table>")
    hs += [f"<p><em>{html.escape(n)}</em></p>" for n in result.get("notes", [])]
    for title, its in sections:
        md += ["", f"## {title}", ""]
        md += [f"- [{label}]({fn})" for label, fn in its] or ["(none)"]
        hs.append(f"<h2>{html.escape(title)}</h2>")
        hs += [f'<figure><a href="{fn}"><img src="{fn}" width="420"></a><figcaption>{html.escape(label)}</figcaption></figure>' for label, fn in its] or ["<p>(none)</p>"]
    md += ["", "Full numbers: [report.json](report.json)", ""]
    (out / "index.md").write_text("\n".join(md))
    (out / "index.html").write_text("<!doctype html><html><head><meta charset='utf-8'><title>hepslim validate</title>"
                                    "<style>figure{display:inline-block;margin:6px}</style></head><body>" + "\n".join(hs) + "</body></html>\n")  # fmt: skip
    return out / "index.md"


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
