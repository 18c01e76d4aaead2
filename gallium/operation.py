"""pipe_ml_operation: an operation type and its typed parameters.

Mirrors ``struct pipe_ml_operation`` (Mesa ``p_state.h``, v2). Two deliberate differences:

* weights and biases are the operation's inputs 1 and 2, as in TFLite, rather than members of
  the parameter union, so the IR can rewrite them like any other tensor;
* fused activations are a :class:`Clamp` in the output's quantized domain, never a relu flag.

Axes are NHWC indices into the 4-D ``dims`` (a rank-2 axis 1 becomes 3).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .tensor import PipeTensor


class OpType(enum.Enum):
    """Operation types; the value is the short name used in debug tables (as Teflon prints)."""

    CONVOLUTION = "CONV"
    ADD = "ADD"
    SUBTRACT = "SUB"
    MUL = "MUL"
    POOLING = "POOL"
    CONCATENATION = "CONCAT"
    SPLIT = "SPLIT"
    PAD = "PAD"
    FULLY_CONNECTED = "FCON"
    RESHAPE = "RESHAPE"
    TRANSPOSE = "TRANSPOSE"
    STRIDED_SLICE = "STRIDED_SLICE"
    RESIZE = "RESIZE"
    CLAMP = "RELU"
    ABSOLUTE = "ABS"
    LOGISTIC = "LOG"
    TANH = "TANH"
    HARD_SWISH = "HSWISH"
    SOFTMAX = "SOFTMAX"
    MEAN = "MEAN"
    QUANTIZE = "QUANTIZE"


@dataclass(frozen=True, slots=True)
class Padding:
    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    @property
    def is_zero(self) -> bool:
        return not (self.top or self.bottom or self.left or self.right)


@dataclass(frozen=True, slots=True)
class Clamp:
    """Inclusive bounds in the output's quantized domain (a fused or explicit activation)."""

    lo: int
    hi: int


@dataclass(frozen=True, slots=True)
class ConvParams:
    """CONVOLUTION. Inputs: (input, weight OHWI or 1HW(C*M) for depthwise, bias or absent)."""

    stride: tuple[int, int] = (1, 1)  # (y, x)
    padding: Padding = Padding()
    dilation: tuple[int, int] = (1, 1)  # (y, x)
    depthwise: bool = False
    clamp: Clamp | None = None


class PoolType(enum.Enum):
    AVG = 0
    MAX = 1


@dataclass(frozen=True, slots=True)
class PoolParams:
    type: PoolType
    filter: tuple[int, int]  # (h, w)
    stride: tuple[int, int] = (1, 1)
    padding: Padding = Padding()
    clamp: Clamp | None = None


@dataclass(frozen=True, slots=True)
class ElementwiseParams:
    """ADD, SUBTRACT, MUL: two inputs, numpy-style broadcast over NHWC dims."""

    clamp: Clamp | None = None


@dataclass(frozen=True, slots=True)
class AxisParams:
    """CONCATENATION (inputs joined along ``axis``) and SPLIT (outputs cut along it)."""

    axis: int


@dataclass(frozen=True, slots=True)
class PadParams:
    """PAD: amounts before and after each NHWC dim, filled with the quantized ``value``."""

    before: tuple[int, int, int, int]
    after: tuple[int, int, int, int]
    value: int = 0


@dataclass(frozen=True, slots=True)
class FullyConnectedParams:
    """FULLY_CONNECTED. Inputs: (input, weight [units, features], bias or absent)."""

    clamp: Clamp | None = None


@dataclass(frozen=True, slots=True)
class TransposeParams:
    perm: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class StridedSliceParams:
    """Resolved slice per NHWC dim: masks and negative indices already applied; end exclusive."""

    begin: tuple[int, int, int, int]
    end: tuple[int, int, int, int]
    strides: tuple[int, int, int, int]


class ResizeType(enum.Enum):
    NEAREST = 0
    BILINEAR = 1


@dataclass(frozen=True, slots=True)
class ResizeParams:
    type: ResizeType
    align_corners: bool = False
    half_pixel_centers: bool = False


@dataclass(frozen=True, slots=True)
class SoftmaxParams:
    beta: float = 1.0


@dataclass(frozen=True, slots=True)
class MeanParams:
    axes: tuple[int, ...]


Params = (
    ConvParams
    | PoolParams
    | ElementwiseParams
    | AxisParams
    | PadParams
    | FullyConnectedParams
    | TransposeParams
    | StridedSliceParams
    | ResizeParams
    | SoftmaxParams
    | MeanParams
    | Clamp
    | None
)


@dataclass(frozen=True, slots=True, eq=False)
class PipeMlOperation:
    """One operation. ``index`` is the operation's index in the source model."""

    type: OpType
    inputs: tuple[PipeTensor, ...]
    outputs: tuple[PipeTensor, ...]
    params: Params = None
    index: int = -1

    @property
    def input(self) -> PipeTensor:
        return self.inputs[0]

    @property
    def output(self) -> PipeTensor:
        return self.outputs[0]

    @property
    def short_name(self) -> str:
        if self.type is OpType.CONVOLUTION and getattr(self.params, "depthwise", False):
            return "DWCONV"
        return self.type.value
