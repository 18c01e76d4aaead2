"""Model switches of the simulated etnaviv NPU: every hardware behaviour the reference brief marks
inferred (or does not give) is one field here, with the documented default
(``docs/etnaviv-npu-model.md`` §5 lists them with their meaning).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MIB = 2**20
GIB = 2**30
# Linux etnaviv_sched.c: drm_sched_init(..., msecs_to_jiffies(500), ...): a job that does not
# finish is recovered after 500 ms.
LINUX_JOB_TIMEOUT_NS = 500_000_000


class Rounding(enum.Enum):
    """How a value halfway between two integers rounds."""

    HALF_AWAY_FROM_ZERO = "half_away_from_zero"
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"


class Requant(enum.Enum):
    """The NN output stage (brief §4, inferred): ``BRIEF``: v7 multiplies by the 15-bit
    mantissa, v8 by the 23-bit one; ``MANTISSA15``: v8 also uses only the top 15 bits (the
    hardware ignoring the v8-only low bits)."""

    BRIEF = "brief"
    MANTISSA15 = "mantissa15"


class SequentialSplit(enum.Enum):
    """When the v7 sequential weight order splits kernels wider than 3 (brief §3.1: Mesa splits
    for depthwise or inputs wider than 64; the hardware cannot see "depthwise" on v7)."""

    WIDE_INPUT = "wide_input"
    ALWAYS = "always"
    NEVER = "never"


class PwlLookup(enum.Enum):
    """PWL table read: interpolate between entries i and i+1 with the 11 dropped bits, or take
    entry i."""

    LINEAR = "linear"
    FLOOR = "floor"


class V8Weights(enum.Enum):
    """What the v8 NN core multiplies for a coded weight byte b (the stream codes w - wzp mod
    256, brief §3.2): ``UINT8`` rebuilds w = b + coef_zp mod 256 and multiplies w - coef_zp
    exactly (a 9-bit difference); ``SIGNED_BYTE`` multiplies b as an int8 (w - wzp wraps outside
    -128..127). Mesa runs uint8 models (MobileNet, SSDLite MobileDet) on the i.MX 8M Plus,
    whose weight differences leave -128..127, so UINT8 is the default."""

    UINT8 = "uint8"
    SIGNED_BYTE = "signed_byte"


@dataclass(frozen=True, slots=True)
class ModelSwitches:
    nn_rounding: Rounding = Rounding.HALF_AWAY_FROM_ZERO
    requant: Requant = Requant.BRIEF
    v7_add_detect: bool = True
    v8_weights: V8Weights = V8Weights.UINT8
    v7_sequential_split: SequentialSplit = SequentialSplit.WIDE_INPUT
    pwl_interpolation: PwlLookup = PwlLookup.LINEAR
    tp_rounding: Rounding = Rounding.HALF_AWAY_FROM_ZERO
    fence_errors: bool = True
    strict_flush: bool = False
    job_timeout_ns: int = LINUX_JOB_TIMEOUT_NS
    memory_limit: int = GIB
