"""Built-in container formats (ROOT, Parquet, Zarr), exposed through the plugin hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hepslim.abc import FormatAdapter


def builtin_formats() -> list[type[FormatAdapter]]:
    """The built-in adapter classes (their modules import uproot/pyarrow/zarr lazily)."""
    from hepslim.formats.parquet import ParquetFormat
    from hepslim.formats.root import RootFormat
    from hepslim.formats.zarr import ZarrFormat

    return [RootFormat, ParquetFormat, ZarrFormat]


def select_builtin(path: str, format: str | None, mode: str, head: bytes) -> FormatAdapter | None:
    """Pick a built-in adapter by requested name, extension, or magic bytes."""
    for cls in builtin_formats():
        if format is not None:
            if cls.format_id == format:
                return cls()
        elif cls.claims(path, head):
            return cls()
    return None
