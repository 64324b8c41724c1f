"""Session-wide Pythia8 samples shared by tests/samples and tests/validate (generated on first use)."""

from __future__ import annotations

from pathlib import Path

import pytest

def sample(factory: pytest.TempPathFactory, layout: str, n: int, process: str | None, suffix: str = ".root") -> Path:
    """Generate once per session (shared by tests/samples and tests/validate through the base temp dir)."""
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    from hepslim.samples import generate

    base = factory.getbasetemp() / "hepslim-samples"
    base.mkdir(exist_ok=True)
    out = base / f"{layout}-{process}-{n}{suffix}"
    if not out.exists():
        generate(layout, n, out, seed=11, process=process, progress=False)
    return out


@pytest.fixture(scope="session")
def jetclass_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample(tmp_path_factory, "jetclass", 150, "both")


@pytest.fixture(scope="session")
def nanoaod_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample(tmp_path_factory, "nanoaod", 120, None)


@pytest.fixture(scope="session")
def pfnano_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample(tmp_path_factory, "pfnano", 120, None)
