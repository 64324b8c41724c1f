"""The jet-tagger benchmark's budget knobs: the jet cap and the cache of original-data trainings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from hepslim.validate import _torch, validate  # noqa: E402
from hepslim.validate._io import read  # noqa: E402
from hepslim.validate.observables import jet_constituents  # noqa: E402
from hepslim.validate.tagger import tagger_benchmark  # noqa: E402


def _inputs(jetclass_file: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arr = read(jetclass_file)
    cons = jet_constituents(arr)
    assert cons is not None
    x, m = _torch.constituent_tensor(cons[0], 16)
    return x, m, np.asarray(arr.label_Tbqq).astype(np.int64)


def test_reused_training_equals_a_fresh_one(jetclass_file: Path) -> None:
    x, m, y = _inputs(jetclass_file)
    kw = {"seed": 3, "epochs": 1, "hidden": 8, "latent": 8}
    tests = [(x[-50:], m[-50:])]
    fresh = _torch.train_and_predict(x[:-50], m[:-50], y[:-50], tests, **kw)
    n0 = len(_torch._MODELS)
    first = _torch.train_and_predict(x[:-50], m[:-50], y[:-50], tests, reuse=True, **kw)
    assert len(_torch._MODELS) == min(n0 + 1, _torch._MODELS_MAX)
    again = _torch.train_and_predict(x[:-50], m[:-50], y[:-50], tests, reuse=True, **kw)
    assert len(_torch._MODELS) == min(n0 + 1, _torch._MODELS_MAX)  # served from the cache, not retrained
    np.testing.assert_array_equal(fresh[0], first[0])
    np.testing.assert_array_equal(first[0], again[0])
    # different training data is a different entry
    y2 = y.copy()
    y2[0] = 1 - y2[0]
    other = _torch.train_and_predict(x[:-50], m[:-50], y2[:-50], tests, reuse=True, **kw)
    assert len(_torch._MODELS) == min(n0 + 2, _torch._MODELS_MAX)
    assert other[0].shape == first[0].shape


def test_tagger_jets_overrides_the_mode_cap(jetclass_file: Path) -> None:
    arr = read(jetclass_file)
    rep = tagger_benchmark(arr, arr, mode="reduced", max_jets=60)
    assert rep["n_train"] + rep["n_test"] == 60
    assert rep["config"]["max_jets"] == 60
    # the same jets, the same seeds: every cell equals the baseline exactly
    base = rep["cells"]["train_original/eval_original"]["auc"]["values"]
    for cell in rep["cells"].values():
        assert cell["auc"]["values"] == base
    with pytest.raises(ValueError, match="at least 20"):
        tagger_benchmark(arr, arr, mode="reduced", max_jets=5)


def test_cli_tagger_jets(jetclass_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from hepslim.cli import main

    f = str(jetclass_file)
    assert main(["validate", f, f, "--json", "--tagger", "reduced", "--tagger-jets", "40", "--no-classifier"]) == 0
    tb = json.loads(capsys.readouterr().out)["benchmarks"]["tagger"]
    assert tb["n_train"] + tb["n_test"] == 40 and tb["verdict"] == "indistinguishable"
