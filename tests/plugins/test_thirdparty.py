"""A third-party plugin package, installed for real (a dist-info on sys.path), used by id."""

from __future__ import annotations

import importlib
import json
import textwrap
import warnings

import numpy as np
import pytest

import hepslim
from hepslim import plugins, registry
from hepslim.cli import main

PLUGIN_SRC = '''
from __future__ import annotations
from dataclasses import dataclass
from typing import ClassVar
import numpy as np
import hepslim
from hepslim.abc import ArrayArrayCodec, EventTransform, ErrorBound, param

@dataclass(frozen=True)
class Scale(ArrayArrayCodec):
    """Multiply by a power of two (exact in floating point)."""
    codec_id: ClassVar[str] = "acme_scale"
    exponent: int = param(1, doc="scale by 2**exponent", allowed="-8..8")
    def accepts(self, dtype):
        return np.dtype(dtype).kind == "f"
    def encode(self, x):
        self._check_dtype(x)
        return np.ldexp(x, self.exponent).astype(x.dtype)
    def decode(self, y):
        return np.ldexp(y, -self.exponent).astype(y.dtype)

@dataclass(frozen=True)
class Flip(EventTransform):
    transform_id: ClassVar[str] = "acme_flip"
    field: str = "w"
    def apply(self, events):
        out = dict(events)
        out[self.field] = -np.asarray(events[self.field])
        return out

@hepslim.hookimpl
def hepslim_register_transforms():
    return [Flip]
'''

BROKEN_SRC = "raise RuntimeError('acme broken plugin exploded')\n"


@pytest.fixture
def acme(tmp_path, monkeypatch):
    (tmp_path / "acme_hepslim").mkdir()
    (tmp_path / "acme_hepslim" / "__init__.py").write_text(textwrap.dedent(PLUGIN_SRC))
    (tmp_path / "acme_hepslim" / "broken.py").write_text(BROKEN_SRC)
    dist = tmp_path / "acme_hepslim-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-hepslim\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text(
        "[hepslim.codecs]\nacme_scale = acme_hepslim:Scale\n\n"
        "[hepslim]\nacme = acme_hepslim\nacme_broken = acme_hepslim.broken\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    plugins.reset()
    yield
    plugins.reset()


def test_codec_and_transform_used_by_id(acme):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        codec = hepslim.get_codec({"id": "acme_scale", "exponent": 3})
        x = np.float32([1.5, -2.0, 0.0])
        assert np.array_equal(codec.encode(x), x * 8)
        blk = hepslim.encode_block(x, [codec, {"id": "zstd"}])
        assert np.array_equal(hepslim.decode_block(blk), x)
        t = hepslim.get_transform("acme_flip", field="w")
        assert np.array_equal(t.apply({"w": np.array([1.0, -2.0])})["w"], [-1.0, 2.0])
    assert registry.default_registry().origin("acme_scale") == "acme-hepslim"
    # the broken plugin is reported by name and skipped; everything else keeps working
    assert "acme_broken" in plugins.failed_plugins()
    assert "exploded" in plugins.failed_plugins()["acme_broken"]
    assert any("acme_broken" in str(w.message) for w in caught)
    assert hepslim.get_codec("zstd").codec_id == "zstd"


def test_cli_lists_plugin_codec_with_origin(acme, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["codecs", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["acme_scale"]["origin"] == "acme-hepslim"
    assert rows["acme_scale"]["parameters"]["exponent"]["allowed"] == "-8..8"
    assert rows["zstd"]["origin"] == "built-in"


def test_unknown_codec_suggests_near_names():
    with pytest.raises(hepslim.UnknownCodecError, match="did you mean 'mantissa'") as info:
        hepslim.get_codec({"id": "mantisa", "keepbits": 3})
    assert isinstance(info.value, KeyError)
    assert info.value.suggestions == ["mantissa"]


def test_unknown_plugin_codec_says_what_to_install():
    with pytest.raises(hepslim.UnknownCodecError, match=r"third-party SZ3 plugin"):
        hepslim.get_codec("sz3")


def test_unknown_transform():
    with pytest.raises(hepslim.UnknownTransformError):
        hepslim.get_transform("negweight_typo")


def test_import_has_no_side_effects():
    import subprocess
    import sys

    code = (
        "import sys, hepslim; "
        "heavy = [m for m in ('awkward','uproot','pyarrow','zarr','torch','numba','hepslim.registry',"
        "'hepslim.plugins') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
