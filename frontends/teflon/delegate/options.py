"""The delegate's options: the key/value pairs of ``load_delegate`` plus ``TEFLON_DEBUG``.

Read once per delegate, at creation, into frozen records. Keys:

* ``device``: ``reference``, ``rocket``, ``etnaviv``, ``etnaviv:imx8mp``... (default: the
  loader's default, the first kernel device present, else a simulated one, else the reference);
* ``debug``: comma-separated flags, added to those of ``TEFLON_DEBUG``: ``verbose`` (Mesa's
  lines: loaded driver, support table, compile and invoke times) and ``traceback`` (Python
  tracebacks in reported errors);
* ``strict``: fail instead of falling back (an ABI mismatch or an unexpected error in Prepare
  then fails the delegate instead of claiming nothing);
* ``cache``: a directory of compiled partition blobs (see ``cache.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEBUG_ENV = "TEFLON_DEBUG"
DEBUG_FLAGS = ("verbose", "traceback")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")
KEYS = ("device", "debug", "strict", "cache")


class OptionError(ValueError):
    """A bad delegate option (one line)."""


@dataclass(frozen=True, slots=True)
class DebugFlags:
    verbose: bool = False
    traceback: bool = False

    @classmethod
    def parse(cls, text: str, *, where: str | None) -> DebugFlags:
        """Flags from a comma-separated list. Unknown names are an error in an option
        (``where`` names it) and ignored in the environment, which other tools share."""
        names = {n.strip() for n in text.split(",") if n.strip()}
        unknown = names - set(DEBUG_FLAGS)
        if unknown and where is not None:
            raise OptionError(
                f"{where}: unknown debug flag(s) {', '.join(sorted(unknown))} "
                f"(known: {', '.join(DEBUG_FLAGS)})"
            )
        return cls(**{n: True for n in names & set(DEBUG_FLAGS)})

    def __or__(self, other: DebugFlags) -> DebugFlags:
        return DebugFlags(self.verbose or other.verbose, self.traceback or other.traceback)


def _bool(key: str, value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise OptionError(f"option {key}={value!r}: expected one of {', '.join(TRUE_WORDS)} or 0")


@dataclass(frozen=True, slots=True)
class DelegateOptions:
    device: str | None = None
    debug: DebugFlags = DebugFlags()
    strict: bool = False
    cache: str | None = None

    @classmethod
    def parse(cls, pairs: Sequence[tuple[str, str]], environ: Mapping[str, str]) -> DelegateOptions:
        values: dict[str, str] = {}
        for key, value in pairs:
            if key not in KEYS:
                raise OptionError(f"unknown option '{key}' (known: {', '.join(KEYS)})")
            values[key] = value
        debug = DebugFlags.parse(environ.get(DEBUG_ENV, ""), where=None)
        if "debug" in values:
            debug = debug | DebugFlags.parse(values["debug"], where="option debug")
        return cls(
            device=values.get("device") or None,
            debug=debug,
            strict=_bool("strict", values["strict"]) if "strict" in values else False,
            cache=values.get("cache") or None,
        )
