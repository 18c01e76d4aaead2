"""ROCKET_DEBUG: the driver's debug flags, read once into a frozen record (Mesa: the
``ROCKET_DEBUG`` option table of ``rkt_device.c`` and ``rkt_dump_buffer()`` in ``rkt_ml.c``).

Flags are comma separated:

* ``dump`` or ``dump=DIR``: write every buffer of every task as
  ``mesa-<what>-<op:03>-<task:03>.bin`` (``what`` is ``regcmd``, ``weights``, ``bias``,
  ``input``, ``output``), in the current directory or ``DIR``, so they can be diffed against
  the vendor dumps Mesa's ``intercept.c`` writes;
* ``inject=oob|truncate|hang``: fault injection for the fault tests. ``oob`` moves the first
  operation's input address past the end of its buffer, ``truncate`` submits the first task with
  half its stream, ``hang`` replaces the first task's op_en entry by a no-op so the task never
  starts. The kernel (or the simulated device) must report each as an error and stay usable.

Unknown flags warn and are ignored.
"""

from __future__ import annotations

import enum
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

DEBUG_ENV = "ROCKET_DEBUG"


class Inject(enum.Enum):
    """The fault a debug run injects; the value is the flag's spelling."""

    OOB = "oob"  # a regcmd address outside its BO (an IOMMU fault on hardware)
    TRUNCATE = "truncate"  # a stream cut in the middle: no tail, no op_en
    HANG = "hang"  # the op_en entry dropped: the job never completes (timeout)


@dataclass(frozen=True, slots=True)
class DebugFlags:
    dump_dir: Path | None = None  # where dumps go; None: no dumps
    inject: Inject | None = None

    @classmethod
    def parse(cls, text: str) -> DebugFlags:
        dump_dir, inject = None, None
        for item in filter(None, (x.strip() for x in text.split(","))):
            key, _, arg = item.partition("=")
            if key == "dump":
                dump_dir = Path(arg or ".")
            elif key == "inject" and arg in {i.value for i in Inject}:
                inject = Inject(arg)
            else:
                warnings.warn(f"{DEBUG_ENV}: unknown flag '{item}'", stacklevel=2)
        return cls(dump_dir, inject)


def dump_name(what: str, op: int, task: int) -> str:
    """Mesa's dump file name (``rkt_dump_buffer``)."""
    return f"mesa-{what}-{op:03d}-{task:03d}.bin"


def dump(flags: DebugFlags, what: str, op: int, task: int, data: bytes | memoryview) -> None:
    if flags.dump_dir is None:
        return
    flags.dump_dir.mkdir(parents=True, exist_ok=True)
    (flags.dump_dir / dump_name(what, op, task)).write_bytes(bytes(data))


# Read once, at import: the only place the variable is read.
DEBUG = DebugFlags.parse(os.environ.get(DEBUG_ENV, ""))
