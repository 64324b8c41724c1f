"""hepslim's own plugin: the built-in formats, transforms and specs, through the public hooks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from hepslim.hookspecs import hookimpl

if TYPE_CHECKING:
    from hepslim.abc import EventTransform, FormatAdapter


@hookimpl
def hepslim_register_specs() -> Mapping[str, Any]:
    root = files("hepslim.specs")
    return {p.name.removesuffix(".yaml"): p for p in root.iterdir() if p.name.endswith(".yaml")}


@hookimpl
def hepslim_register_formats() -> Sequence[type[FormatAdapter]]:
    from hepslim.formats import builtin_formats

    return builtin_formats()


@hookimpl(trylast=True)
def hepslim_select_format(path: str, format: str | None, mode: str, head: bytes) -> FormatAdapter | None:
    from hepslim.formats import select_builtin

    return select_builtin(path, format, mode, head)


@hookimpl
def hepslim_register_transforms() -> Sequence[type[EventTransform]]:
    from hepslim.plugins.negweights import builtin_transforms

    return builtin_transforms()
