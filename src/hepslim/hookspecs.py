"""Every pluggy hook hepslim calls, in one place.

A plugin is a module or object with functions of these names decorated with ``hepslim.hookimpl``; it is
found through the entry-point group ``hepslim``. The built-in formats, transforms and specs are plugins
too and use exactly these hooks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pluggy

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from hepslim.abc import Codec, EventTransform, FormatAdapter

PROJECT = "hepslim"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def hepslim_register_codecs() -> Sequence[type[Codec]]:
    """Codec classes this plugin provides (in addition to the ``hepslim.codecs`` entry points)."""


@hookspec
def hepslim_register_formats() -> Sequence[type[FormatAdapter]]:
    """Format adapter classes this plugin provides (used for listings and by name)."""


@hookspec(firstresult=True)
def hepslim_select_format(
    path: str, format: str | None, mode: Literal["r", "w"], head: bytes
) -> FormatAdapter | None:
    """Return an adapter for ``path`` or ``None`` for "not mine".

    ``format`` is the name the user asked for (``None``: guess from ``path`` and its first bytes ``head``,
    which are empty when writing). The first non-``None`` answer wins.
    """


@hookspec
def hepslim_register_transforms() -> Sequence[type[EventTransform]]:
    """Event transform classes this plugin provides, looked up by their ``transform_id``."""


@hookspec
def hepslim_register_specs() -> Mapping[str, Path | Traversable]:
    """Spec name -> YAML file, for the specs this plugin ships."""
