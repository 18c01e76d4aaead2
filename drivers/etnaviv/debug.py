"""``ETNA_DEBUG``: the driver's debug flags, read once into a frozen record (Mesa:
``etnaviv_debug.h``, where ``ETNA_MESA_DEBUG`` holds ``ml_msgs``, ``npu_no_batching`` and
friends).

Flags are comma separated: ``ETNA_DEBUG=dump,dump_dir=/tmp/npu,inject=oob``.

- ``dump``: write every job's bytes as ``mesa-<what>-<op:03>-<job:03>.bin`` in ``dump_dir``
  (default: the current directory), ``<op>`` the source-model operation and ``<job>`` the
  configuration's number in the subgraph (one per NN job, one per TP core): ``nn`` and ``tp``
  configurations, ``compressed`` weights and ``lut`` tables (numbered like their job's
  configuration) and the ``cmd`` stream (``-000-000`` as compiled, ``-000-001`` relocated) when
  compiling; ``input`` and ``output`` tensors (by tensor index; hardware-domain bytes, after
  the +128 of signed tensors) when invoking. The names follow Mesa's own dumps (brief
  ``etnaviv-ml.md`` §10) so the two can be diffed.
- ``msgs``: one line per lowered job on stderr (Mesa's ``ml_msgs``).
- ``inject=oob|weights|hang``: fault injection for the fault tests. ``oob`` points the first
  NN job's output address 1 GiB past its arena offset (outside every buffer object of the
  submit); ``weights`` overwrites the first 64 bytes of the first coefficient buffer (its
  header: stream sizes that cannot be); ``hang`` clears the first NN job's ``NN_LAYER_FLUSH``,
  a layer that never reports completion (``docs/etnaviv-npu-model.md`` §3: the simulator's
  hang). Each ends the invoke in a one-line :class:`~mesa_npu.gallium.device.DeviceError`,
  never a crash.
"""

from __future__ import annotations

import enum
import os
import warnings
from dataclasses import dataclass

DEBUG_ENV = "ETNA_DEBUG"


class Inject(enum.Enum):
    """A fault to plant in the compiled subgraph (the value is the flag's spelling)."""

    OOB = "oob"
    WEIGHTS = "weights"
    HANG = "hang"


@dataclass(frozen=True, slots=True)
class DebugFlags:
    dump: bool = False
    dump_dir: str = "."
    msgs: bool = False
    inject: Inject | None = None

    @classmethod
    def parse(cls, text: str) -> DebugFlags:
        """Flags from ``ETNA_DEBUG`` text; unknown flags warn and are ignored."""
        values: dict[str, object] = {}
        for item in filter(None, (x.strip() for x in text.split(","))):
            key, _, arg = item.partition("=")
            if key in ("dump", "msgs") and not arg:
                values[key] = True
            elif key == "dump_dir" and arg:
                values["dump_dir"] = arg
            elif key == "inject" and arg in {i.value for i in Inject}:
                values["inject"] = Inject(arg)
            else:
                warnings.warn(f"{DEBUG_ENV}: unknown flag '{item}'", stacklevel=2)
        return cls(**values)  # type: ignore[arg-type]


# Read once, at import: the only place the variable is read.
DEBUG = DebugFlags.parse(os.environ.get(DEBUG_ENV, ""))


def dump_name(what: str, op: int, job: int) -> str:
    """Mesa's dump file name: ``mesa-<what>-<op:03>-<job:03>.bin``."""
    return f"mesa-{what}-{op:03d}-{job:03d}.bin"


def write_dump(flags: DebugFlags, what: str, op: int, job: int, data: bytes) -> None:
    if not flags.dump:
        return
    os.makedirs(flags.dump_dir, exist_ok=True)
    with open(os.path.join(flags.dump_dir, dump_name(what, op, job)), "wb") as f:
        f.write(bytes(data))
