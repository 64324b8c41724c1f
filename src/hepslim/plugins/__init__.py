"""The pluggy plugin manager, built on first use.

Plugins (built-in and third-party alike) are found through the entry-point group ``hepslim``. A plugin that
raises while loading is reported by name (a :class:`HepslimPluginWarning`, and in :func:`failed_plugins`)
and skipped: one broken package must not take the whole tool down.
"""

from __future__ import annotations

import functools
import warnings
from importlib.metadata import entry_points
from typing import Any

import pluggy

from hepslim import hookspecs

ENTRY_POINT_GROUP = "hepslim"


class HepslimPluginWarning(UserWarning):
    """A plugin or codec entry point could not be loaded and was skipped."""


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus the record of plugins that failed to load."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.failures: dict[str, str] = {}
        self.origins: dict[str, str] = {}

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        seen: set[str] = set()
        for ep in entry_points(group=group):
            if ep.name in seen or self.has_plugin(ep.name):
                continue  # the same distribution visible twice on sys.path
            seen.add(ep.name)
            dist = ep.dist.name if ep.dist is not None else "?"
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name)
            except Exception as exc:  # noqa: BLE001 - any failure of third-party code is reported
                self.failures[ep.name] = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"hepslim plugin {ep.name!r} (from {dist}) failed to load and is skipped: "
                    f"{type(exc).__name__}: {exc}",
                    HepslimPluginWarning,
                    stacklevel=2,
                )
                continue
            self.origins[ep.name] = "built-in" if dist == "hepslim" else dist
        if not self.has_plugin("builtin"):
            # hepslim is imported from a source tree that was never installed: no entry points exist.
            from hepslim.plugins import builtin

            self.register(builtin, name="builtin")
            self.origins["builtin"] = "built-in"
        self.check_pending()


@functools.cache
def plugin_manager() -> PluginManager:
    """The process-wide plugin manager, built (entry points loaded) on first call."""
    pm = PluginManager()
    pm.load_entry_points()
    return pm


def failed_plugins() -> dict[str, str]:
    """Plugin name -> error, for the plugins that raised while loading."""
    return dict(plugin_manager().failures)


def reset() -> None:
    """Forget loaded plugins and registries, so newly installed entry points are found (tests, notebooks)."""
    from hepslim import registry

    plugin_manager.cache_clear()
    registry.default_registry.cache_clear()


def plugin_origin(obj: Any) -> str:
    """Where a plugin object came from: 'built-in' or its distribution's name."""
    pm = plugin_manager()
    name = pm.get_name(obj)
    return pm.origins.get(name or "", "user") if name else "user"
