"""Param records of the IR-only ops that lowering passes create.

Pipe operations keep their gallium records (``gallium.operation``); the records here describe
forms that exist only after lowering. The serializer knows both modules, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..gallium.operation import AxisParams, Clamp, ConvParams, StridedSliceParams


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


# -- buffer views ------------------------------------------------------------------------------
#
# ``lower_views`` turns a CONCATENATION, SPLIT, RESHAPE or contiguous STRIDED_SLICE whose parts
# are contiguous byte ranges of one buffer into a *view*: the node keeps its op and its params
# (so the evaluator computes exactly what it did), and the params become the subclass below,
# which adds where each part sits. The memory planner places every part inside its base
# instead of giving it a buffer; a driver emits no job for the node (etnaviv's aliasing of
# concatenation inputs, rocket's row slices).


@dataclass(frozen=True, slots=True)
class ConcatView(AxisParams):
    """A CONCATENATION whose inputs are views of its output: input i starts ``offsets[i]``
    bytes into the output's buffer. ``strided``: the parts are addressed with the base's
    strides (not contiguous ranges)."""

    offsets: tuple[int, ...] = ()
    strided: bool = False


@dataclass(frozen=True, slots=True)
class SplitView(AxisParams):
    """A SPLIT whose outputs are views of its input: output i starts ``offsets[i]`` bytes in."""

    offsets: tuple[int, ...] = ()
    strided: bool = False


@dataclass(frozen=True, slots=True)
class SliceView(StridedSliceParams):
    """A STRIDED_SLICE (stride 1) whose output is the input's bytes from ``offsets[0]`` on."""

    offsets: tuple[int, ...] = ()
    strided: bool = False


@dataclass(frozen=True, slots=True)
class ReshapeView:
    """A RESHAPE whose output is its input's buffer (``offsets`` is ``(0,)``)."""

    offsets: tuple[int, ...] = (0,)


VIEW_PARAMS = (ConcatView, SplitView, SliceView, ReshapeView)
