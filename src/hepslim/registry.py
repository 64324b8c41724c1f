"""Codec and transform lookup by id.

Codecs come from the entry-point group ``hepslim.codecs`` (hepslim's own built-ins are declared there too)
and from the ``hepslim_register_codecs`` hook; both are loaded lazily, on the first lookup, never at import.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from hepslim.abc import Codec, EventTransform
from hepslim.errors import CodecParameterError, UnknownCodecError, UnknownTransformError

CODEC_ENTRY_POINT_GROUP = "hepslim.codecs"

#: Ids that well-known plugin packages provide, for the "what to install" hint.
INSTALL_HINTS: dict[str, str] = {
    "autoencoder": "the 'ml' extra: pip install 'hepslim[ml]'",
    "zfp": "a ZFP plugin package (not bundled: zfpy breaks numcodecs' version parsing)",
    "sz3": "a third-party SZ3 plugin package for hepslim",
    "pco": "a third-party pcodec plugin package for hepslim",
}


class CodecRegistry:
    """codec id -> class, with the origin (built-in or distribution name) of each."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Codec]] = {}
        self._origins: dict[str, str] = {}
        self._loaded = False
        self.failures: dict[str, str] = {}

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        from hepslim.plugins import HepslimPluginWarning, plugin_manager

        for ep in entry_points(group=CODEC_ENTRY_POINT_GROUP):
            if ep.name in self._classes:
                continue
            dist = ep.dist.name if ep.dist is not None else "?"
            try:
                cls = ep.load()
            except Exception as exc:  # noqa: BLE001
                self.failures[ep.name] = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"codec {ep.name!r} (from {dist}) failed to load and is skipped: {exc}",
                    HepslimPluginWarning,
                    stacklevel=3,
                )
                continue
            self._add(cls, "built-in" if dist == "hepslim" else dist, key=ep.name)
        if not any(o == "built-in" for o in self._origins.values()):
            self._add_builtins_from_source()
        pm = plugin_manager()
        for plugin in pm.get_plugins():
            impl = getattr(plugin, "hepslim_register_codecs", None)
            if impl is None:
                continue
            origin = pm.origins.get(pm.get_name(plugin) or "", "user")
            for cls in impl() or ():
                if cls.codec_id not in self._classes:
                    self._add(cls, origin)

    def _add_builtins_from_source(self) -> None:
        # Only when hepslim runs from a source tree without installed metadata (no entry points at all).
        from hepslim.codecs import autoencoder, lossless, mantissa, quantize

        for mod in (lossless, mantissa, quantize, autoencoder):
            for obj in vars(mod).values():
                if isinstance(obj, type) and issubclass(obj, Codec) and getattr(obj, "codec_id", None):
                    if obj.__module__ == mod.__name__:
                        self._add(obj, "built-in")

    def _add(self, cls: type[Codec], origin: str, key: str | None = None) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Codec)):
            raise TypeError(f"{cls!r} is not a hepslim Codec subclass")
        cid = cls.codec_id
        if key is not None and key != cid:
            warnings.warn(f"entry point {key!r} names codec {cid!r}; registering it as {cid!r}", stacklevel=4)
        self._classes[cid] = cls
        self._origins[cid] = origin

    def register(self, cls: type[Codec], origin: str = "user") -> type[Codec]:
        """Register a codec class (usable as a decorator). Replaces an existing id."""
        self._load()
        self._add(cls, origin)
        return cls

    def ids(self) -> list[str]:
        self._load()
        return sorted(self._classes)

    def get_class(self, codec_id: str) -> type[Codec]:
        self._load()
        try:
            return self._classes[codec_id]
        except KeyError:
            raise UnknownCodecError(codec_id, self._classes, INSTALL_HINTS) from None

    def origin(self, codec_id: str) -> str:
        self.get_class(codec_id)
        return self._origins[codec_id]

    def get(self, config: Mapping[str, Any] | str | Codec) -> Codec:
        if isinstance(config, Codec):
            return config
        if isinstance(config, str):
            config = json.loads(config) if config.lstrip().startswith("{") else {"id": config}
        if "id" not in config:
            raise CodecParameterError(f"codec config {dict(config)!r} has no 'id'")
        return self.get_class(str(config["id"])).from_config(config)


@functools.cache
def default_registry() -> CodecRegistry:
    """The process-wide codec registry, filled lazily on first lookup."""
    return CodecRegistry()


def get_codec(config: Mapping[str, Any] | str | Codec) -> Codec:
    """A codec from its config (``{"id": "zstd", "level": 9}``), its id alone, or a JSON string.

    >>> import hepslim
    >>> hepslim.get_codec({"id": "mantissa", "keepbits": 10})
    Mantissa(keepbits=10, rounding='nearest')
    """
    return default_registry().get(config)


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Register a codec class at run time (entry points are the way for packages). Usable as a decorator."""
    return default_registry().register(cls)


def codec_ids() -> list[str]:
    """Every registered codec id."""
    return default_registry().ids()


def describe_codecs() -> list[dict[str, Any]]:
    """One record per codec: id, kind, family, parameters (with ranges), origin."""
    reg = default_registry()
    out = []
    for cid in reg.ids():
        cls = reg.get_class(cid)
        out.append(
            {
                "id": cid,
                "kind": cls.kind,
                "family": cls.family,
                "parameters": cls.parameters(),
                "origin": reg.origin(cid),
                "doc": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
            }
        )
    return out


def _transform_classes() -> dict[str, tuple[type[EventTransform], str]]:
    from hepslim.plugins import plugin_manager

    pm = plugin_manager()
    out: dict[str, tuple[type[EventTransform], str]] = {}
    for plugin in pm.get_plugins():
        impl = getattr(plugin, "hepslim_register_transforms", None)
        if impl is None:
            continue
        origin = pm.origins.get(pm.get_name(plugin) or "", "user")
        for cls in impl() or ():
            out.setdefault(cls.transform_id, (cls, origin))
    return out


def transform_ids() -> list[str]:
    return sorted(_transform_classes())


def get_transform(config: Mapping[str, Any] | str, **params: Any) -> EventTransform:
    """An event transform by id (``"negweights"``) or config ``{"id": ..., **params}``."""
    cfg = {"id": config} if isinstance(config, str) else dict(config)
    cfg.update(params)
    classes = _transform_classes()
    tid = str(cfg.pop("id"))
    if tid not in classes:
        raise UnknownTransformError(tid, classes)
    cls = classes[tid][0]
    try:
        return cls(**cfg)
    except TypeError as exc:
        raise CodecParameterError(f"transform {tid!r}: {exc}") from None
