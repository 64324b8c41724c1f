"""Spec files and the policy: which codec pipeline each branch of a sample gets.

A spec is YAML (read with ``yaml.safe_load``) validated once into frozen dataclasses::

    name: mylayout
    extends: nanoaod            # optional: this file's rules are tried before the parent's
    tree: Events                # optional: default tree / RNTuple name
    drop: ["HLT_*", "L1_*"]     # optional: slimming, globs
    rules:                      # tried in order, first match wins
      - match: ["Jet_pt", "Jet_mass"]
        codecs: [{id: mantissa, keepbits: 10}]
      - match: "*_eta"          # a glob family: skip (not fail on) the integers it also matches
        codecs: [{id: quantize, mode: linear, abs_error: 1.0e-3}]
        floats_only: true
    default:
      codecs: [{id: zstd, level: 9}]
    derived:                    # optional: not stored, recomputed on read
      - {name: part_energy, function: energy_from_pxpypz_pid,
         inputs: [part_px, part_py, part_pz, part_pid], tolerance: 1.0e-3}   # + abs_tolerance: ...
    compression:                # optional: a container's own compressor (ROOT: per branch)
      root: {algorithm: ZSTD, level: 9}

Every codec config is built with :func:`hepslim.get_codec` at load time, so a typo fails before any data is
touched; every error is a :class:`~hepslim.errors.SpecError` naming the file, the rule and the reason.

Integers, booleans, counters (``n*``: ``nJet``) and indices (``*Idx*``) never get a lossy codec: a rule
that could only match such names is rejected at load time, and :func:`resolve` rejects an explicit lossy
rule for a concrete integer/boolean branch, unless the rule says ``floats_only: true`` (then such branches
skip it and fall through to the next rule). The ``default`` is a catch-all: its lossy stages apply to float
branches only; everything else gets the container's lossless pipeline for booleans, counters, indices or
integers (:data:`CONTAINER_DEFAULTS`). A codec list without a serializer or compressor is completed with
the container's.

>>> spec = load_spec("lossless")
>>> resolve(spec, "Jet_pt", "float32").lossless
True
"""

from __future__ import annotations

import builtins
import dataclasses
import difflib
import fnmatch
import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hepslim.errors import (
    CodecParameterError,
    FormatError,
    HepslimError,
    PipelineError,
    SpecError,
    UnknownCodecError,
    UnknownSpecError,
    UnsupportedBranchError,
)

if TYPE_CHECKING:
    from hepslim.abc import Codec
    from hepslim.pipeline import Pipeline

ROLES = ("values", "offsets", "counter", "index")

#: Per-container completion of codec lists. ``serializer``/``compressor`` complete a float branch's list
#: (the contract's two keys); ``integer`` / ``boolean`` are the whole lossless pipelines for integer and
#: boolean leaves without an explicit rule, ``offsets`` the one for awkward offsets. Integers keep their
#: bytes (raw) so zstd's match finder sees repeated values (PDG ids, status flags, bitmaps compress ~30%
#: better than bit-packed ones, on par with LZMA-9); flags are bit-packed (1 bit each), so are counters
#: (``counter``: small random values, 4-6 bits); indices (``index``) are delta-coded first (candidate
#: links like ``JetPFCands_pFCandsIdx`` increase: 30% smaller than raw). ROOT is written "transparent" only: values
#: are changed in place and ROOT's own per-branch compressor (see :func:`container_compression`) does the
#: byte-level work, so its pipelines carry no bytes->bytes stage.
_HEPSLIM_BUFFERS: dict[str, Any] = {
    "serializer": {"id": "bytestreamsplit"},
    "compressor": {"id": "zstd", "level": 9},
    "integer": [{"id": "raw"}, {"id": "zstd", "level": 19}],
    "boolean": [{"id": "bitpack"}, {"id": "zstd", "level": 9}],
    "counter": [{"id": "bitpack"}, {"id": "zstd", "level": 9}],
    "index": [{"id": "delta", "zigzag": True}, {"id": "bitpack"}, {"id": "zstd", "level": 9}],
    "offsets": [{"id": "delta", "zigzag": True}, {"id": "bitpack"}, {"id": "zstd", "level": 9}],
    "compression": {"algorithm": "ZSTD", "level": 9},
}
CONTAINER_DEFAULTS: dict[str, dict[str, Any]] = {
    # Zarr and Parquet store hepslim-encoded buffers the same way
    "zarr": _HEPSLIM_BUFFERS,
    "parquet": _HEPSLIM_BUFFERS,
    "root": {
        "serializer": {"id": "raw"},
        "compressor": None,
        "integer": [{"id": "raw"}],
        "boolean": [{"id": "raw"}],
        "counter": [{"id": "raw"}],
        "index": [{"id": "raw"}],
        "offsets": [{"id": "raw"}],
        "compression": {"algorithm": "ZSTD", "level": 9},
    },
}

_TOP_KEYS = ("name", "description", "extends", "tree", "drop", "rules", "default", "derived", "compression")
_RULE_KEYS = ("match", "codecs", "floats_only", "resolution", "note")
_DEFAULT_KEYS = ("codecs", "note")
_DERIVED_KEYS = ("name", "function", "inputs", "tolerance", "abs_tolerance", "note")
_ROOT_ALGORITHMS = {"zstd": "ZSTD", "lzma": "LZMA", "lz4": "LZ4", "zlib": "ZLIB"}
_COMPRESSION_KEYS = ("algorithm", "level")

# Names that are integers by NanoAOD convention, whatever a file's dtype says.
_EVENT_ID_NAMES = frozenset({"run", "luminosityBlock", "event", "bunchCrossing"})
_COUNTER_RE = re.compile(r"^n[A-Z0-9]")


# --------------------------------------------------------------------------------------- name classes
def is_counter_name(branch: str) -> bool:
    """A NanoAOD-style counter (``nJet``, ``nMuon_isGlobal``): a top-level name ``n`` + capital/digit."""
    return bool(_COUNTER_RE.match(branch))


def is_index_name(branch: str) -> bool:
    """An index into another collection (``Jet_genJetIdx``, ``GenPart_genPartIdxMother``)."""
    return "Idx" in branch


def is_protected_name(branch: str) -> bool:
    """Counters, indices and event ids: stored bit-exact whatever their dtype."""
    return is_counter_name(branch) or is_index_name(branch) or branch in _EVENT_ID_NAMES


def _pattern_only_protected(pattern: str) -> bool:
    """Whether every name the glob ``pattern`` can match is a counter, an index or an event id."""
    if "Idx" in pattern:
        return True
    if len(pattern) >= 2 and pattern[0] == "n" and (pattern[1].isupper() or pattern[1].isdigit()):
        return True
    return not any(ch in pattern for ch in "*?[") and pattern in _EVENT_ID_NAMES


def _is_protected_dtype(dtype: np.dtype) -> bool:
    return np.dtype(dtype).kind in "biu"


@functools.lru_cache(maxsize=4096)
def _glob_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled regex for a tuple of globs (fnmatch semantics, case-sensitive)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


# ----------------------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True, eq=True)
class Rule:
    """One rule: glob patterns and the codec configs for the branches they match.

    ``index`` is the rule's position in its file's ``rules`` (``None`` for the ``default``); ``source`` the
    file it comes from. ``codecs`` are validated configs (plain dicts; treat them as read-only).
    ``resolution`` is the optional detector resolution of the matched quantities, ``{"rel": x}`` (fraction
    of the value) or ``{"abs": x}`` (branch units); it does not change the codecs, ``hepslim tune`` keeps
    its errors below a fraction of it.
    """

    match: tuple[str, ...]
    codecs: tuple[dict[str, Any], ...]
    index: int | None = None
    source: str | None = None
    spec_name: str | None = None
    note: str | None = None
    floats_only: bool = False
    resolution: Mapping[str, float] | None = None

    def matches(self, branch: str, dtype: np.dtype | str | None = None) -> bool:
        """Whether a pattern matches ``branch``; a ``floats_only`` rule also needs a float ``dtype`` (when
        given) and a name that is not a counter, index or event id."""
        if not _glob_regex(self.match).match(branch):
            return False
        if self.floats_only and dtype is not None:
            return np.dtype(dtype).kind == "f" and not is_protected_name(branch)
        return True

    @property
    def lossless(self) -> bool:
        """Whether every stage is bit-exact."""
        from hepslim.registry import get_codec

        return all(get_codec(c).lossless for c in self.codecs)

    @property
    def label(self) -> str:
        """How errors and ``spec show`` name this rule: ``#3 ['Jet_pt', 'Jet_mass']`` or ``default``."""
        if self.index is None:
            return "default"
        if len(self.match) == 1:
            return f"#{self.index} {self.match[0]!r}"
        if len(self.match) <= 4:
            return f"#{self.index} {list(self.match)!r}"
        head = ", ".join(repr(p) for p in self.match[:3])
        return f"#{self.index} [{head}, ... +{len(self.match) - 3}]"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"codecs": [dict(c) for c in self.codecs]}
        if self.index is not None:
            d = {"match": list(self.match), **d}
            if self.floats_only:
                d["floats_only"] = True
            if self.resolution:
                d["resolution"] = dict(self.resolution)
        return d

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))


@dataclass(frozen=True, eq=True)
class Derived:
    """A branch the spec does not store: recomputed from stored ``inputs`` by a registered ``function``.

    The writer drops it only if the recomputed values match the original within ``tolerance`` (relative).
    """

    name: str
    function: str
    inputs: tuple[str, ...]
    tolerance: float
    abs_tolerance: float = 0.0

    def compute(self, arrays: Mapping[str, Any]) -> Any:
        """Recompute from ``arrays`` (name -> awkward or numpy array); same jagged structure as the inputs."""
        from hepslim.derived import compute

        missing = [n for n in self.inputs if n not in arrays]
        if missing:
            raise SpecError(f"derived branch {self.name!r} needs {', '.join(missing)}, which are not available")
        return compute(self.function, [arrays[n] for n in self.inputs])

    def matches(self, original: Any, recomputed: Any) -> bool:
        """Whether ``|recomputed - original| <= tolerance * |original| + abs_tolerance`` everywhere (NaN
        equals NaN). ``abs_tolerance`` covers quantities that are zero up to packing noise (massless
        particles stored with masses of +-1e-5)."""
        a = _flat_values(original).astype(np.float64)
        b = _flat_values(recomputed).astype(np.float64)
        if a.shape != b.shape:
            return False
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.abs(a - b) <= self.tolerance * np.abs(a) + self.abs_tolerance
        ok |= (a == b) | (np.isnan(a) & np.isnan(b))
        return bool(np.all(ok))

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "function": self.function, "inputs": list(self.inputs),
             "tolerance": self.tolerance}
        if self.abs_tolerance:
            d["abs_tolerance"] = self.abs_tolerance
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Derived:
        return cls(str(d["name"]), str(d["function"]), tuple(d["inputs"]), float(d["tolerance"]),
                   float(d.get("abs_tolerance", 0.0)))


def _flat_values(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x.reshape(-1)
    import awkward as ak

    return np.asarray(ak.flatten(ak.Array(x) if not isinstance(x, ak.Array) else x, axis=None))


@dataclass(frozen=True, eq=False)
class Spec:
    """A validated spec; ``parent`` is the spec it ``extends`` (already validated), or ``None``."""

    name: str
    source: str | None
    sha256: str
    tree: str | None
    drop: tuple[str, ...]
    rules: tuple[Rule, ...]
    default: Rule | None
    derived: tuple[Derived, ...]
    parent: Spec | None = None
    description: str | None = None
    compression: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Spec) and other.sha256 == self.sha256 and other.name == self.name

    def __hash__(self) -> int:
        return hash((self.name, self.sha256))

    # ---- lookups (own entries before the parent's)
    def chain(self) -> list[Spec]:
        """This spec and its ancestors, child first."""
        out: list[Spec] = []
        s: Spec | None = self
        while s is not None:
            out.append(s)
            s = s.parent
        return out

    @property
    def effective_tree(self) -> str | None:
        return next((s.tree for s in self.chain() if s.tree), None)

    @property
    def effective_default(self) -> Rule | None:
        return next((s.default for s in self.chain() if s.default is not None), None)

    @property
    def all_rules(self) -> tuple[Rule, ...]:
        """Every rule in the order they are tried: own rules, then the parent's, ..."""
        return tuple(r for s in self.chain() for r in s.rules)

    @property
    def all_drop(self) -> tuple[str, ...]:
        return tuple(p for s in self.chain() for p in s.drop)

    @property
    def all_derived(self) -> tuple[Derived, ...]:
        """Derived branches of the chain; a child's entry replaces a parent's of the same name."""
        seen: dict[str, Derived] = {}
        for s in self.chain():
            for d in s.derived:
                seen.setdefault(d.name, d)
        return tuple(seen.values())

    def is_dropped(self, branch: str) -> bool:
        """Whether a ``drop`` glob of this spec or an ancestor matches ``branch``."""
        drop = self.all_drop
        return bool(drop) and _glob_regex(drop).match(branch) is not None

    def rule_for(self, branch: str, dtype: np.dtype | str | None = None) -> Rule | None:
        """The first matching rule (own rules before the parent's), else the nearest ``default``, else None.

        With ``dtype``, ``floats_only`` rules are skipped for integer/boolean branches, counters and indices.
        """
        for r in self.all_rules:
            if r.matches(branch, dtype):
                return r
        return self.effective_default

    def derived_for(self, branch: str) -> Derived | None:
        return next((d for d in self.all_derived if d.name == branch), None)

    # ---- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (parents included), for container metadata and provenance."""
        return {
            "name": self.name,
            "source": self.source,
            "sha256": self.sha256,
            **_content(self),
            "parent": self.parent.to_dict() if self.parent is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Spec:
        """Rebuild a spec from :meth:`to_dict` (as stored in a container); codecs are re-validated."""
        parent = cls.from_dict(d["parent"]) if d.get("parent") else None
        raw = {k: v for k, v in d.items() if k in _TOP_KEYS and k != "extends" and v is not None}
        return _build(raw, source=d.get("source"), parent=parent)

    def __repr__(self) -> str:
        ext = f", extends={self.parent.name!r}" if self.parent else ""
        return f"Spec({self.name!r}, {len(self.rules)} rules{ext}, sha256={self.sha256[:12]})"


def _content(spec: Spec) -> dict[str, Any]:
    d: dict[str, Any] = {
        "tree": spec.tree,
        "drop": list(spec.drop),
        "rules": [r.to_dict() for r in spec.rules],
        "default": spec.default.to_dict() if spec.default is not None else None,
        "derived": [x.to_dict() for x in spec.derived],
    }
    if spec.compression:
        d["compression"] = {k: dict(v) for k, v in spec.compression.items()}
    if spec.description:
        d["description"] = spec.description
    return d


# ---------------------------------------------------------------------------------------------- loading
def registered_specs() -> dict[str, Any]:
    """Spec name -> YAML file (Path or importlib Traversable), from every plugin's ``hepslim_register_specs``
    (the built-in plugin ships ``src/hepslim/specs/*.yaml``). The first plugin to name a spec wins."""
    from hepslim.plugins import plugin_manager

    out: dict[str, Any] = {}
    for mapping in plugin_manager().hook.hepslim_register_specs():
        for name, path in (mapping or {}).items():
            out.setdefault(str(name), path)
    return out


def load_spec(spec: str | os.PathLike[str] | Spec | None = None) -> Spec:
    """A validated :class:`Spec` from a registered name (``"nanoaod"``), a YAML path, or a Spec.

    ``None`` means ``"lossless"``. Raises :class:`SpecError` (file, rule, reason) for a malformed spec and
    :class:`UnknownSpecError` (with near names) for an unknown name.

    >>> load_spec("nanoaod").name
    'nanoaod'
    """
    if isinstance(spec, Spec):
        return spec
    if spec is None:
        spec = "lossless"
    return _load(spec, stack=())


def _looks_like_path(s: str) -> bool:
    return s.endswith((".yaml", ".yml")) or os.sep in s or "/" in s


def _load(ref: str | os.PathLike[str], *, stack: tuple[str, ...], base: Path | None = None) -> Spec:
    text: str
    source: str
    ref_s = os.fspath(ref)
    if isinstance(ref, os.PathLike) or _looks_like_path(ref_s) or os.path.isfile(ref_s):
        path = Path(ref_s)
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise SpecError(f"spec file {str(path)!r} does not exist", file=stack[-1] if stack else None)
        source = str(path.resolve())
        text = path.read_text(encoding="utf-8")
        key = source
    else:
        known = registered_specs()
        if ref_s not in known:
            raise UnknownSpecError(ref_s, known)
        res = known[ref_s]
        source = os.fspath(res) if hasattr(res, "__fspath__") else str(res)
        text = res.read_text(encoding="utf-8")
        key = f"spec:{ref_s}"
    if key in stack:
        cycle = " -> ".join([*stack[stack.index(key):], key])
        raise SpecError(f"'extends' cycle: {cycle}", file=source)
    raw = _parse_yaml(source, text)
    if not isinstance(raw, Mapping):
        raise SpecError(f"a spec must be a YAML mapping, got {type(raw).__name__}", file=source)
    parent = None
    if raw.get("extends") is not None:
        ext = raw["extends"]
        if not isinstance(ext, str) or not ext:
            raise SpecError(f"'extends' must be a spec name or a file path, got {ext!r}", file=source)
        here = Path(source).parent if os.path.isfile(source) else None
        try:
            parent = _load(ext, stack=(*stack, key), base=here)
        except UnknownSpecError as exc:
            raise SpecError(f"'extends': {exc}", file=source) from None
    return _build_cached(source, text, parent)


@functools.lru_cache(maxsize=128)
def _parse_yaml(source: str, text: str) -> Any:
    """``yaml.safe_load`` semantics (the C loader when libyaml is there). Cached on the text; the result is
    only read, never modified."""
    import yaml

    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe
    except yaml.YAMLError as exc:  # the message has line and column
        raise SpecError(f"not valid YAML: {exc}", file=source) from None


@functools.lru_cache(maxsize=128)
def _build_cached(source: str, text: str, parent: Spec | None) -> Spec:
    """Validation builds every codec; specs are immutable, so the same text (and parent) gives the same
    Spec. Keyed on the file's text, so an edited file is always re-validated."""
    return _build(_parse_yaml(source, text), source=source, parent=parent)


def _unknown_keys(d: Mapping[str, Any], allowed: Sequence[str], where: str, file: str | None,
                  rule: str | None = None) -> None:
    for k in d:
        if k not in allowed:
            near = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise SpecError(f"unknown key {k!r} in {where}{hint} Allowed: {', '.join(allowed)}.",
                            file=file, rule=rule)


def _globs(value: Any, what: str, file: str | None, rule: str | None) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p for p in value):
        raise SpecError(f"{what} must be a glob or a non-empty list of globs, got {value!r}", file=file, rule=rule)
    return tuple(value)


def _check_codecs(value: Any, file: str | None, rule: str) -> tuple[dict[str, Any], ...]:
    """Validate a codecs list: every config builds, stages are in order. Returns the normalised configs."""
    from hepslim.registry import get_codec

    if not isinstance(value, list) or not value:
        raise SpecError(f"'codecs' must be a non-empty list of codec configs, got {value!r}", file=file, rule=rule)
    built: list[Codec] = []
    for i, cfg in enumerate(value):
        if isinstance(cfg, str):
            cfg = {"id": cfg}
        if not isinstance(cfg, Mapping) or "id" not in cfg:
            raise SpecError(f"codec {i} must be a mapping with an 'id' (e.g. {{id: zstd, level: 9}}), got {cfg!r}",
                            file=file, rule=rule)
        try:
            built.append(get_codec(dict(cfg)))
        except UnknownCodecError as exc:
            err = SpecError(str(exc), file=file, rule=rule)
            err.suggestions = exc.suggestions  # type: ignore[attr-defined]
            raise err from exc
        except (CodecParameterError, TypeError, ValueError) as exc:
            raise SpecError(f"codec {i} ({cfg.get('id')!r}): {exc}", file=file, rule=rule) from exc
    order = {"array->array": 0, "array->bytes": 1, "bytes->bytes": 2}
    ranks = [order[c.kind] for c in built]
    if ranks != sorted(ranks) or ranks.count(1) > 1:
        chain = " -> ".join(f"{c.codec_id} ({c.kind})" for c in built)
        raise SpecError(
            f"codec stages must be ordered array->array*, at most one array->bytes, bytes->bytes*; got {chain}",
            file=file, rule=rule,
        )
    lossy = [c for c in built if not c.lossless]
    if lossy:
        kinds = set()
        for c in lossy:
            b = c.error_bound()
            if b is None:
                raise SpecError(f"lossy codec {c.codec_id!r} declares no error bound", file=file, rule=rule)
            kinds.add(b.kind)
        if len(kinds) > 1:
            raise SpecError(f"lossy stages with different kinds of error bound ({', '.join(sorted(kinds))}) "
                            "cannot be combined; use one lossy codec per rule", file=file, rule=rule)
    return tuple(c.get_config() for c in built)


def _check_resolution(value: Any, file: str | None, rule: str) -> dict[str, float] | None:
    """A rule's ``resolution``: ``{rel: x}`` (0 < x < 1) or ``{abs: x}`` (x > 0, finite), or absent."""
    if value is None:
        return None
    if isinstance(value, Mapping) and len(value) == 1:
        (kind, x), = value.items()
        ok = (kind in ("rel", "abs") and not isinstance(x, bool) and isinstance(x, (int, float))
              and np.isfinite(x) and x > 0 and (kind == "abs" or x < 1))
        if ok:
            return {str(kind): float(x)}
    raise SpecError(f"'resolution' must be {{rel: <fraction in (0, 1)>}} or {{abs: <positive value>}}, got {value!r}",
                    file=file, rule=rule)


def _build(raw: Mapping[str, Any], *, source: str | None, parent: Spec | None) -> Spec:
    _unknown_keys(raw, _TOP_KEYS, "the spec", source)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("'name' is required and must be a non-empty string", file=source)
    tree = raw.get("tree")
    if tree is not None and (not isinstance(tree, str) or not tree):
        raise SpecError(f"'tree' must be a string, got {tree!r}", file=source)
    description = raw.get("description")
    drop = _globs(raw["drop"], "'drop'", source, None) if raw.get("drop") not in (None, []) else ()

    rules_raw = raw.get("rules") or []
    if not isinstance(rules_raw, list):
        raise SpecError(f"'rules' must be a list, got {type(rules_raw).__name__}", file=source)
    rules: list[Rule] = []
    for i, r in enumerate(rules_raw):
        label = f"#{i}"
        if not isinstance(r, Mapping):
            raise SpecError(f"a rule must be a mapping with 'match' and 'codecs', got {r!r}", file=source, rule=label)
        if "match" in r:
            m = r["match"]
            label = f"#{i} {m!r}"
        _unknown_keys(r, _RULE_KEYS, "a rule", source, label)
        for req in ("match", "codecs"):
            if req not in r:
                raise SpecError(f"a rule needs '{req}'", file=source, rule=label)
        match = _globs(r["match"], "'match'", source, label)
        codecs = _check_codecs(r["codecs"], source, label)
        floats_only = r.get("floats_only", False)
        if not isinstance(floats_only, bool):
            raise SpecError(f"'floats_only' must be true or false, got {floats_only!r}", file=source, rule=label)
        resolution = _check_resolution(r.get("resolution"), source, label)
        rule = Rule(match, codecs, index=i, source=source, spec_name=name, note=r.get("note"),
                    floats_only=floats_only, resolution=resolution)
        if not rule.lossless:
            only = [p for p in match if _pattern_only_protected(p)]
            if only:
                lossy = ", ".join(c["id"] for c in codecs if not _codec(c).lossless)
                raise SpecError(
                    f"lossy codec ({lossy}) on {only[0]!r}, which can only match counters (n*), indices (*Idx*) "
                    "or event ids; these are always stored bit-exact",
                    file=source, rule=label,
                )
        rules.append(rule)

    default = None
    if raw.get("default") is not None:
        d = raw["default"]
        if not isinstance(d, Mapping):
            raise SpecError(f"'default' must be a mapping with 'codecs', got {d!r}", file=source, rule="default")
        _unknown_keys(d, _DEFAULT_KEYS, "'default'", source, "default")
        if "codecs" not in d:
            raise SpecError("'default' needs 'codecs'", file=source, rule="default")
        default = Rule(("*",), _check_codecs(d["codecs"], source, "default"), index=None, source=source,
                       spec_name=name, note=d.get("note"))

    derived = _build_derived(raw.get("derived"), source)
    compression = _build_compression(raw.get("compression"), source)

    spec = Spec(name=name, source=source, sha256="", tree=tree, drop=drop, rules=tuple(rules), default=default,
                derived=derived, parent=parent, description=description, compression=compression)
    dropped_inputs = [(d.name, i) for d in spec.all_derived for i in d.inputs if spec.is_dropped(i)]
    if dropped_inputs:
        dn, inp = dropped_inputs[0]
        raise SpecError(f"derived branch {dn!r} needs {inp!r}, which 'drop' removes", file=source,
                        rule=f"derived {dn!r}")
    canonical = json.dumps(_hash_content(spec), sort_keys=True, separators=(",", ":"))
    return dataclasses.replace(spec, sha256=hashlib.sha256(canonical.encode()).hexdigest())


def _hash_content(spec: Spec) -> dict[str, Any]:
    return {"name": spec.name, **_content(spec),
            "parent": _hash_content(spec.parent) if spec.parent is not None else None}


def _codec(cfg: Mapping[str, Any]) -> Codec:
    from hepslim.registry import get_codec

    return get_codec(dict(cfg))


def _build_derived(value: Any, source: str | None) -> tuple[Derived, ...]:
    from hepslim.derived import get_function

    if value in (None, []):
        return ()
    if not isinstance(value, list):
        raise SpecError(f"'derived' must be a list, got {type(value).__name__}", file=source)
    out: list[Derived] = []
    for i, d in enumerate(value):
        label = f"derived #{i}"
        if not isinstance(d, Mapping):
            raise SpecError(f"a derived entry must be a mapping, got {d!r}", file=source, rule=label)
        if isinstance(d.get("name"), str):
            label = f"derived #{i} {d['name']!r}"
        _unknown_keys(d, _DERIVED_KEYS, "a derived entry", source, label)
        for req in ("name", "function", "inputs", "tolerance"):
            if req not in d:
                raise SpecError(f"a derived entry needs '{req}'", file=source, rule=label)
        if not isinstance(d["name"], str) or not d["name"]:
            raise SpecError(f"'name' must be a branch name, got {d['name']!r}", file=source, rule=label)
        try:
            fn = get_function(d["function"])
        except SpecError as exc:
            raise SpecError(exc.reason, file=source, rule=label) from None
        inputs = d["inputs"]
        if not isinstance(inputs, list) or not all(isinstance(x, str) and x for x in inputs):
            raise SpecError(f"'inputs' must be a list of branch names, got {inputs!r}", file=source, rule=label)
        if len(inputs) != fn.arity:
            raise SpecError(f"function {fn.name!r} takes {fn.arity} inputs ({', '.join(fn.inputs)}), "
                            f"got {len(inputs)}", file=source, rule=label)
        if d["name"] in inputs:
            raise SpecError(f"derived branch {d['name']!r} cannot be one of its own inputs", file=source, rule=label)
        tol = d["tolerance"]
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 <= tol < 1):
            raise SpecError(f"'tolerance' is a relative tolerance in [0, 1), got {tol!r}", file=source, rule=label)
        atol = d.get("abs_tolerance", 0.0)
        if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not atol >= 0:
            raise SpecError(f"'abs_tolerance' must be a number >= 0, got {atol!r}", file=source, rule=label)
        if any(x.name == d["name"] for x in out):
            raise SpecError(f"derived branch {d['name']!r} is declared twice", file=source, rule=label)
        out.append(Derived(d["name"], fn.name, tuple(inputs), float(tol), float(atol)))
    return tuple(out)


def _build_compression(value: Any, source: str | None) -> dict[str, dict[str, Any]]:
    if value in (None, {}):
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"'compression' must map a container to {{algorithm, level}}, got {value!r}", file=source)
    out: dict[str, dict[str, Any]] = {}
    for container, cfg in value.items():
        where = f"compression.{container}"
        if container not in CONTAINER_DEFAULTS:
            near = difflib.get_close_matches(str(container), CONTAINER_DEFAULTS, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise SpecError(f"unknown container {container!r}{hint}", file=source, rule=where)
        if not isinstance(cfg, Mapping):
            raise SpecError(f"expected {{algorithm, level}}, got {cfg!r}", file=source, rule=where)
        _unknown_keys(cfg, _COMPRESSION_KEYS, where, source, where)
        alg = str(cfg.get("algorithm", "ZSTD")).upper()
        if alg not in _ROOT_ALGORITHMS.values():
            raise SpecError(f"algorithm {alg!r} is not one of {', '.join(_ROOT_ALGORITHMS.values())}",
                            file=source, rule=where)
        level = cfg.get("level", 5)
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 22:
            raise SpecError(f"level must be an integer in 1..22, got {level!r}", file=source, rule=where)
        out[str(container)] = {"algorithm": alg, "level": level}
    return out


# -------------------------------------------------------------------------------------------- resolving
def _container(container: str) -> dict[str, Any]:
    try:
        return CONTAINER_DEFAULTS[container]
    except KeyError:
        raise SpecError(f"unknown container {container!r}; known: {', '.join(CONTAINER_DEFAULTS)}") from None


def _complete(codecs: Sequence[Mapping[str, Any]], dtype: np.dtype, container: str) -> list[dict[str, Any]]:
    """Complete a rule's codec list for ``container``: add the serializer if there is no array->bytes stage,
    the container's compressor if there is no bytes->bytes stage. ROOT pipelines drop bytes->bytes stages
    (ROOT compresses; see :func:`container_compression`)."""
    cont = _container(container)
    built = [_codec(c) for c in codecs]
    aa = [c.get_config() for c in built if c.kind == "array->array"]
    ab = [c.get_config() for c in built if c.kind == "array->bytes"]
    bb = [c.get_config() for c in built if c.kind == "bytes->bytes"]
    if not ab:
        if np.dtype(dtype).kind in "biu":  # integers: the container's integer serializer (bitpack / raw)
            ser = next(dict(c) for c in _int_defaults(cont, dtype) if _codec(c).kind == "array->bytes")
        else:
            ser = dict(cont["serializer"])
        ab = [ser if _codec(ser).accepts(dtype) else {"id": "raw"}]
    if container == "root":
        bb = []
    elif not bb and cont["compressor"] is not None:
        bb = [dict(cont["compressor"])]
    return [*aa, *ab, *bb]


def _int_defaults(cont: Mapping[str, Any], dtype: np.dtype, branch: str = "", role: str = "values"
                  ) -> list[dict[str, Any]]:
    """The container's lossless pipeline for a boolean, counter, index or other integer leaf."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        key = "boolean"
    elif role == "counter" or is_counter_name(branch):
        key = "counter"
    elif role == "index" or is_index_name(branch):
        key = "index"
    else:
        key = "integer"
    return [dict(c) for c in cont[key]]


def _pipeline(configs: Sequence[Mapping[str, Any]]) -> Pipeline:
    from hepslim.pipeline import Pipeline

    return Pipeline.from_configs([dict(c) for c in configs])


def resolve(spec: Spec | str | None, branch: str, dtype: np.dtype | str, *, role: str = "values",
            container: str = "zarr") -> Pipeline:
    """The codec pipeline for one leaf buffer of ``branch`` (dtype ``dtype``) in ``container``.

    ``role``: ``"values"`` (leaf content), ``"offsets"`` (awkward offsets), ``"counter"`` (``n*``) or
    ``"index"`` (``*Idx*``). Offsets, counters, indices, integers and booleans always get a lossless
    pipeline; an explicit lossy rule matching one of them is a :class:`SpecError`.

    >>> resolve("nanoaod", "nJet", "int32").lossless
    True
    """
    spec = load_spec(spec)
    if role not in ROLES:
        raise SpecError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    dt = np.dtype(dtype)
    cont = _container(container)
    if role == "offsets":
        return _pipeline(cont["offsets"])
    protected = role in ("counter", "index") or _is_protected_dtype(dt) or is_protected_name(branch)
    if dt.kind not in "biuf":
        raise UnsupportedBranchError(
            f"branch {branch!r} has dtype {dt}; hepslim stores integers, booleans and floats only")
    rule = effective_rule(spec, branch, dt, role=role)
    if rule is None:
        return _pipeline(_int_defaults(cont, dt, branch, role) if dt.kind in "biu" else _complete([], dt, container))
    what = _protected_reason(branch, dt, role)
    if protected and not rule.lossless:
        if rule.index is None:  # the catch-all default: lossy stages are for floats only
            return _pipeline(_int_defaults(cont, dt, branch, role) if dt.kind in "biu"
                             else _lossless_part(rule, dt, container))
        lossy = ", ".join(c["id"] for c in rule.codecs if not _codec(c).lossless)
        raise SpecError(
            f"lossy codec ({lossy}) matches {branch!r}, {what}; integers, booleans, counters and indices are "
            "always stored bit-exact: add a lossless rule for it before this one or narrow the match",
            file=rule.source, rule=rule.label,
        )
    if protected and rule.index is None and dt.kind in "biu" and not _explicit_integer_codecs(rule):
        return _pipeline(_int_defaults(cont, dt, branch, role))
    configs = _complete(rule.codecs, dt, container)
    try:
        pipe = _pipeline(configs)
    except (PipelineError, CodecParameterError) as exc:
        raise SpecError(f"branch {branch!r}: {exc}", file=rule.source, rule=rule.label) from exc
    for stage in (*pipe.array_array, pipe.serializer):
        if not stage.accepts(dt):
            if rule.index is None:
                return _pipeline(_int_defaults(cont, dt, branch, role) if dt.kind in "biu"
                             else _lossless_part(rule, dt, container))
            raise SpecError(
                f"codec {stage.codec_id!r} cannot encode branch {branch!r} of dtype {dt}"
                + (" (lossy codecs take floats only)" if not stage.lossless else ""),
                file=rule.source, rule=rule.label,
            )
    return pipe


def effective_rule(spec: Spec, branch: str, dtype: np.dtype | str, *, role: str = "values") -> Rule | None:
    """The rule :func:`resolve` uses for ``branch``: like :meth:`Spec.rule_for`, but ``floats_only`` rules
    are skipped for integers, booleans, counters, indices and event ids (whatever their dtype)."""
    dt = np.dtype(dtype)
    protected = role in ("counter", "index", "offsets") or _is_protected_dtype(dt) or is_protected_name(branch)
    return spec.rule_for(branch, np.dtype("int64") if protected else dt)


def _explicit_integer_codecs(rule: Rule) -> bool:
    """Whether a (lossless) default names its own array stages, which then apply to integers too."""
    return any(_codec(c).kind != "bytes->bytes" for c in rule.codecs)


def _lossless_part(rule: Rule, dt: np.dtype, container: str) -> list[dict[str, Any]]:
    keep = [c for c in rule.codecs if _codec(c).lossless and _codec(c).kind == "bytes->bytes"]
    return _complete(keep, dt, container)


def _protected_reason(branch: str, dt: np.dtype, role: str) -> str:
    if role in ("counter", "index"):
        return f"a{'n' if role == 'index' else ''} {role}"
    if is_counter_name(branch):
        return "a counter (n*)"
    if is_index_name(branch):
        return "an index (*Idx*)"
    if branch in _EVENT_ID_NAMES:
        return "an event id"
    return f"a{'' if dt.kind != 'i' else 'n'} {'boolean' if dt.kind == 'b' else 'integer'} branch ({dt})"


def container_compression(spec: Spec | str | None, container: str, branch: str | None = None) -> dict[str, Any]:
    """The container's own compression setting, e.g. ROOT: ``{"algorithm": "ZSTD", "level": 9}``.

    Order: the spec's ``compression: {<container>: ...}`` (nearest in the ``extends`` chain); with
    ``branch``, the last bytes->bytes stage (zstd/lzma/lz4/zlib) of the branch's rule; else the default
    rule's; else :data:`CONTAINER_DEFAULTS`. ROOT levels are capped at 9.
    """
    spec = load_spec(spec)
    cont = _container(container)
    for s in spec.chain():
        if container in s.compression:
            return _cap(dict(s.compression[container]), container)
    rules = [spec.rule_for(branch)] if branch is not None else []
    rules.append(spec.effective_default)
    for rule in rules:
        if rule is None:
            continue
        bb = [c for c in rule.codecs if _codec(c).kind == "bytes->bytes"]
        if bb and bb[-1]["id"] in _ROOT_ALGORITHMS:
            level = bb[-1].get("level", bb[-1].get("preset", 4))  # lz4 has no level: ROOT's default 4
            return _cap({"algorithm": _ROOT_ALGORITHMS[bb[-1]["id"]], "level": int(level) or 1}, container)
    return dict(cont["compression"])


def _cap(d: dict[str, Any], container: str) -> dict[str, Any]:
    if container == "root":
        d["level"] = max(1, min(9, int(d["level"])))
    return d


# ---------------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class BranchPlan:
    """What a spec does with one branch of an input: dropped, derived, or stored with a pipeline."""

    branch: str
    dtype: str
    jagged: bool
    action: str  # "store", "drop" or "derive"
    rule: str | None
    codecs: tuple[dict[str, Any], ...]
    lossless: bool
    error_bound: dict[str, Any] | None
    role: str = "values"

    def to_dict(self) -> dict[str, Any]:
        return {
            "branch": self.branch, "dtype": self.dtype, "jagged": self.jagged, "action": self.action,
            "role": self.role, "rule": self.rule, "codecs": [dict(c) for c in self.codecs],
            "lossless": self.lossless, "error_bound": self.error_bound,
        }


def plan(spec: Spec | str | None, branches: Mapping[str, tuple[np.dtype | str, bool]],
         container: str = "zarr") -> list[BranchPlan]:
    """One :class:`BranchPlan` per branch (name -> (leaf dtype, jagged)), in the input's order.

    Raises :class:`SpecError` for the first branch the spec cannot store (e.g. a lossy rule on an integer).
    """
    spec = load_spec(spec)
    out: list[BranchPlan] = []
    for name, (dtype, jagged) in branches.items():
        dt = np.dtype(dtype)
        if spec.is_dropped(name):
            out.append(BranchPlan(name, str(dt), jagged, "drop", None, (), True, None))
            continue
        d = spec.derived_for(name)
        if d is not None:
            out.append(BranchPlan(name, str(dt), jagged, "derive", f"derived {d.function}({', '.join(d.inputs)})",
                                  (), False, {"kind": "rel", "value": d.tolerance}))
            continue
        role = "counter" if is_counter_name(name) else "index" if is_index_name(name) else "values"
        pipe = resolve(spec, name, dt, role=role, container=container)
        rule = effective_rule(spec, name, dt, role=role)
        bound = pipe.error_bound()
        label = None if rule is None else rule.label if rule.spec_name == spec.name else f"{rule.spec_name}:{rule.label}"
        out.append(BranchPlan(name, str(dt), jagged, "store", label,
                              tuple(pipe.get_config()), pipe.lossless,
                              bound.to_json() if bound is not None else None, role))
    return out


def input_branches(path: str | os.PathLike[str], tree: str | None = None, *, prefer: str | None = None
                   ) -> dict[str, tuple[np.dtype, bool]]:
    """Branch name -> (leaf dtype, jagged) of an input: ROOT TTree/RNTuple (types from the file header, no
    data read), or any file `hepslim.open` reads (Parquet, Zarr, hepslim outputs).

    RNTuple collections (``_collectionN`` records) give their fields' flat NanoAOD names. ``tree`` must
    exist; without it, ``prefer`` (a spec's default tree) is used when present, else ``Events``, else the
    file's only tree."""
    p = os.fspath(path)
    head = b""
    if os.path.isfile(p):
        with builtins.open(p, "rb") as fh:
            head = fh.read(4)
    if head != b"root" and not p.endswith(".root"):
        # Parquet, Zarr, or anything hepslim reads (its own packed files included): the types hepslim.open
        # gives, which are the original branches' types.
        from hepslim.io import open as open_events

        form = open_events(p).layout.form
        out_any: dict[str, tuple[np.dtype, bool]] = {}
        for fld in form.fields:
            _walk_form(form.content(fld), fld, False, out_any)
        return out_any
    try:
        import uproot
    except ImportError:
        from hepslim.errors import MissingDependencyError

        raise MissingDependencyError("uproot", "root", "reading ROOT files") from None
    f = uproot.open(p)
    trees = list(dict.fromkeys(
        k.split(";")[0] for k, c in f.classnames().items() if c in ("TTree", "ROOT::RNTuple")))
    name = tree
    if name is None:
        name = prefer if prefer in trees else "Events" if "Events" in trees else trees[0] if len(trees) == 1 else None
        if name is None:
            raise FormatError(f"{p}: {len(trees)} trees ({', '.join(trees) or 'none'}); name one with --tree")
    elif name not in trees:
        raise FormatError(f"{p}: no tree or RNTuple {name!r}; it has {', '.join(trees) or 'none'}")
    obj = f[name]
    out = {}
    if hasattr(obj, "branches"):
        import uproot.interpretation.jagged as jagged
        import uproot.interpretation.numerical as numerical

        for b in obj.branches:
            interp = b.interpretation
            if isinstance(interp, jagged.AsJagged) and isinstance(interp.content, numerical.AsDtype):
                out[b.name] = (interp.content.to_dtype, True)
            elif isinstance(interp, numerical.AsDtype) and interp.to_dtype.fields is None:
                out[b.name] = (interp.to_dtype, False)
            else:
                raise UnsupportedBranchError(
                    f"{p}: branch {b.name!r} has type {b.typename}, which hepslim cannot store")
        return out
    if hasattr(obj, "to_akform"):  # RNTuple: types from the header, no data read
        form = obj.to_akform()
        form = form[0] if isinstance(form, tuple) else form
    else:
        form = obj.arrays(entry_stop=1).layout.form
    for fld in form.fields:
        _walk_form(form.content(fld), fld, False, out)
    return out


def _walk_form(form: Any, name: str, jagged: bool, out: dict[str, tuple[np.dtype, bool]]) -> None:
    """Leaf dtypes of an awkward form; records of a collection (RNTuple ``_collectionN``) give their fields'
    flat NanoAOD names."""
    kind = type(form).__name__
    if kind == "NumpyForm":
        out[name] = (np.dtype(form.primitive), jagged)
    elif kind == "RecordForm":
        for f in form.fields:
            _walk_form(form.content(f), f, jagged, out)
    elif kind in ("ListOffsetForm", "ListForm", "RegularForm"):
        _walk_form(form.content, name, True, out)
    elif kind in ("IndexedOptionForm", "UnmaskedForm", "ByteMaskedForm", "BitMaskedForm", "IndexedForm"):
        _walk_form(form.content, name, jagged, out)
    else:
        raise UnsupportedBranchError(f"branch {name!r} has an awkward type ({kind}) hepslim cannot store")


def specs_table() -> list[dict[str, Any]]:
    """One record per registered spec: name, description, parent, rules, derived, file and sha256."""
    rows = []
    for name, path in sorted(registered_specs().items()):
        try:
            s = load_spec(name)
            rows.append({"name": name, "description": s.description or "", "extends": s.parent.name if s.parent
                         else None, "rules": len(s.all_rules), "derived": [d.name for d in s.all_derived],
                         "lossless": all(r.lossless for r in s.all_rules) and (s.effective_default is None
                                                                                 or s.effective_default.lossless),
                         "file": str(path), "sha256": s.sha256, "error": None})
        except HepslimError as exc:
            rows.append({"name": name, "description": "", "extends": None, "rules": 0, "derived": [],
                         "lossless": None, "file": str(path), "sha256": None, "error": str(exc)})
    return rows
