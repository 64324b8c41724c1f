"""Negative-weight mitigation (cell resampling and its optimal-transport variant) as an event transform.

Public entry points (imported lazily, so importing this package stays cheap):

* :class:`~hepslim.plugins.negweights.transform.NegWeights` -- the ``negweights`` EventTransform;
* :func:`~hepslim.plugins.negweights.transform.resample` -- files in, files out, a :class:`Report`;
* :func:`~hepslim.plugins.negweights.synthetic.generate_nlo` -- a synthetic NLO-like sample with a truth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hepslim.abc import EventTransform

__all__ = ["NegWeights", "Report", "builtin_transforms", "generate_nlo", "resample", "write_nlo_lhe"]


def builtin_transforms() -> list[type[EventTransform]]:
    """The transforms this built-in plugin registers through ``hepslim_register_transforms``."""
    from hepslim.plugins.negweights.transform import NegWeights

    return [NegWeights]


def __getattr__(name: str) -> Any:
    if name in ("NegWeights", "Report", "resample"):
        from hepslim.plugins.negweights import transform

        return getattr(transform, name)
    if name in ("generate_nlo", "write_nlo_lhe", "nlo_truth"):
        from hepslim.plugins.negweights import synthetic

        return getattr(synthetic, name)
    raise AttributeError(name)
