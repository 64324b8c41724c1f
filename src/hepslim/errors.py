"""The exceptions hepslim raises.

Every error derives from :class:`HepslimError` and also from the builtin a caller would naturally catch
(``ValueError``, ``KeyError``, ``ImportError`` ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


class HepslimError(Exception):
    """Base class of every hepslim error."""


class CodecParameterError(HepslimError, ValueError):
    """A codec was constructed with a parameter outside its allowed range."""


class CodecInputError(HepslimError, TypeError):
    """A codec was given an array it cannot handle (wrong dtype, integers through a float codec...)."""


class OutOfRangeError(HepslimError, ValueError):
    """A value lies outside a quantizer's declared range and the policy is ``out_of_range: error``."""


class PipelineError(HepslimError, ValueError):
    """A chain of codec stages is not in the order array->array*, one array->bytes, bytes->bytes*."""


class CorruptDataError(HepslimError, ValueError):
    """Stored data failed its checksum or is truncated: hepslim refuses to return wrong values."""


class SpecError(HepslimError, ValueError):
    """A spec file is malformed; the message names the file, the rule and the reason."""

    def __init__(self, reason: str, *, file: str | None = None, rule: str | None = None) -> None:
        self.file, self.rule, self.reason = file, rule, reason
        where = ", ".join(p for p in (f"file {file}" if file else "", f"rule {rule}" if rule else "") if p)
        super().__init__(f"{where}: {reason}" if where else reason)


class FormatError(HepslimError, ValueError):
    """A container could not be read or written (unknown format, unsupported branch type...)."""


class UnsupportedBranchError(FormatError, TypeError):
    """A branch has a type hepslim cannot store; it is never silently dropped."""


class OutputExistsError(HepslimError, FileExistsError):
    """The output exists and replacing it was not asked for (``force=True`` / ``--force``)."""


class MissingDependencyError(HepslimError, ImportError):
    """An optional dependency is not installed; the message says which extra brings it."""

    def __init__(self, module: str, extra: str, purpose: str = "") -> None:
        self.module, self.extra = module, extra
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{module!r} is needed{what} but is not installed: pip install 'hepslim[{extra}]'"
        )


class PluginLoadError(HepslimError, RuntimeError):
    """A plugin raised while loading."""


class _UnknownIdError(HepslimError, KeyError):
    kind = "id"

    def __init__(
        self,
        name: str,
        known: Iterable[str],
        install_hints: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        known = sorted(set(known))
        self.suggestions = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        msg = f"unknown {self.kind} {name!r}."
        if self.suggestions:
            msg = msg[:-1] + "; did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        hint = (install_hints or {}).get(name)
        if hint:
            msg += f" It is provided by {hint}."
        msg += f" Known: {', '.join(known) if known else '(none)'}."
        self.message = msg
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message


class UnknownCodecError(_UnknownIdError):
    """No codec is registered under that id. The message suggests near names and what to install."""

    kind = "codec"


class UnknownTransformError(_UnknownIdError):
    """No event transform is registered under that id."""

    kind = "transform"


class UnknownSpecError(_UnknownIdError):
    """No shipped or registered spec has that name."""

    kind = "spec"


class UnknownFormatError(_UnknownIdError):
    """No format adapter handles that name or path."""

    kind = "format"
