"""Negative-weight mitigation (cell resampling and its optimal-transport variant)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hepslim.abc import EventTransform


def builtin_transforms() -> list[type[EventTransform]]:
    return []
