"""hepslim: shrink particle-physics event data.

Re-exports only; importing hepslim loads no plugin, no codec entry point and no optional dependency.

>>> import numpy as np, hepslim
>>> x = np.linspace(0, 100, 1000, dtype=np.float32)
>>> block = hepslim.encode_block(x, [{"id": "mantissa", "keepbits": 10}, {"id": "zstd", "level": 5}])
>>> bool(np.all(np.abs(hepslim.decode_block(block) - x) <= 2.0**-11 * np.abs(x)))
True
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from hepslim.errors import (
    CodecInputError,
    CodecParameterError,
    CorruptDataError,
    FormatError,
    HepslimError,
    MissingDependencyError,
    OutOfRangeError,
    PipelineError,
    SpecError,
    UnknownCodecError,
    UnknownFormatError,
    UnknownSpecError,
    UnknownTransformError,
    UnsupportedBranchError,
)
from hepslim.hookspecs import hookimpl

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access (PEP 562), so `import hepslim` stays
# light (no awkward/uproot/pyarrow/zarr/torch until a function that needs them is used).
_LAZY: dict[str, str] = {
    "get_codec": "hepslim.registry",
    "register_codec": "hepslim.registry",
    "codec_ids": "hepslim.registry",
    "get_transform": "hepslim.registry",
    "Pipeline": "hepslim.pipeline",
    "encode_block": "hepslim.block",
    "decode_block": "hepslim.block",
    "block_info": "hepslim.block",
    "load_spec": "hepslim.policy",
    "open": "hepslim.io",
    "write": "hepslim.io",
    "compress": "hepslim.io",
    "iterate": "hepslim.io",
    "decompress": "hepslim.io",
}

__all__ = [
    "CodecInputError",
    "CodecParameterError",
    "CorruptDataError",
    "FormatError",
    "HepslimError",
    "MissingDependencyError",
    "OutOfRangeError",
    "PipelineError",
    "SpecError",
    "UnknownCodecError",
    "UnknownFormatError",
    "UnknownSpecError",
    "UnknownTransformError",
    "UnsupportedBranchError",
    "__version__",
    "hookimpl",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hepslim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from hepslim.block import block_info, decode_block, encode_block
    from hepslim.pipeline import Pipeline
    from hepslim.registry import codec_ids, get_codec, get_transform, register_codec
