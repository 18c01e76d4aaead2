"""Param records of the IR-only ops that lowering passes create.

Pipe operations keep their gallium records (``gallium.operation``); the records here describe
forms that exist only after lowering. The serializer knows both modules, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..gallium.operation import Clamp, ConvParams


@dataclass(frozen=True, slots=True)
class SpaceToDepthParams:
    """Space-to-depth by ``block``: output channel ``(dy*block + dx)*C + c`` holds input pixel
    ``(y*block + dy - pad_top, x*block + dx - pad_left)`` of channel c; out-of-range pixels read
    ``pad_value``."""

    block: int = 2
    pad_top: int = 0
    pad_left: int = 0
    pad_value: int = 0


@dataclass(frozen=True, slots=True)
class ConvAddParams:
    """A convolution whose result is added to a second tensor (input 3), as rocket fuses ADD.

    Exact semantics are the two operations in sequence: the conv result is requantized to
    ``conv_scale``/``conv_zero_point`` (clamped by ``conv.clamp``), then added to input 3 with
    the ADD's quantization and ``clamp``.
    """

    conv: ConvParams
    conv_scale: float
    conv_zero_point: int
    conv_first: bool = True  # the conv result is the ADD's first operand
    clamp: Clamp | None = None
