"""pipe_tensor: the framework-neutral tensor descriptor.

Mirrors Mesa's newer (v2) ``struct pipe_tensor`` in ``src/gallium/include/pipe/p_state.h``:
a graph-wide index, a 4-D NHWC shape padded with leading 1s plus the original rank, the element
type, quantization (per tensor, or per axis when the values differ per channel), constant data
and whether the tensor leaves the subgraph.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class ElementType(enum.Enum):
    """Element types. Each member carries its short name and numpy type."""

    UINT8 = ("u8", np.uint8)
    INT8 = ("i8", np.int8)
    INT16 = ("i16", np.int16)
    INT32 = ("i32", np.int32)
    INT64 = ("i64", np.int64)
    FLOAT32 = ("f32", np.float32)

    def __init__(self, short: str, np_type: type) -> None:
        self.short = short
        self.numpy = np.dtype(np_type)

    @property
    def size(self) -> int:
        return self.numpy.itemsize

    @property
    def is_signed(self) -> bool:
        return self.numpy.kind in "if"

    @property
    def is_integer(self) -> bool:
        return self.numpy.kind in "iu"

    @property
    def qmin(self) -> int:
        return int(np.iinfo(self.numpy).min)

    @property
    def qmax(self) -> int:
        return int(np.iinfo(self.numpy).max)

    @classmethod
    def from_numpy(cls, dtype: np.dtype) -> ElementType:
        for member in cls:
            if member.numpy == np.dtype(dtype):
                return member
        raise ValueError(f"no element type for numpy dtype {dtype}")


@dataclass(frozen=True, slots=True)
class Quant:
    """Affine quantization: real = scale * (q - zero_point).

    Per-axis arrays are set only when the values differ per channel (as Teflon does);
    ``axis`` then indexes the 4-D NHWC dims of the tensor.
    """

    scale: float = 0.0
    zero_point: int = 0
    scales: tuple[float, ...] | None = None
    zero_points: tuple[int, ...] | None = None
    axis: int = 0

    @property
    def per_axis(self) -> bool:
        return self.scales is not None or self.zero_points is not None

    def channel_scales(self, count: int) -> np.ndarray:
        """Scales as a float64 vector of ``count`` channels."""
        if self.scales is not None:
            return np.asarray(self.scales, dtype=np.float64)
        return np.full(count, self.scale, dtype=np.float64)

    def channel_zero_points(self, count: int) -> np.ndarray:
        if self.zero_points is not None:
            return np.asarray(self.zero_points, dtype=np.int64)
        return np.full(count, self.zero_point, dtype=np.int64)

    def describe(self) -> str:
        if self.per_axis:
            return f"per-axis[{self.axis}] x{len(self.scales or self.zero_points or ())}"
        return f"s={self.scale:.6g} zp={self.zero_point}"


NO_QUANT = Quant()


def to_dims(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Right-align a shape of rank <= 4 into NHWC dims, padding with leading 1s."""
    if len(shape) > 4:
        raise ValueError(f"rank {len(shape)} > 4 is not representable as NHWC")
    return (1,) * (4 - len(shape)) + tuple(int(d) for d in shape)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True, eq=False)
class PipeTensor:
    """One tensor of a subgraph, referred to by its graph-wide ``index``."""

    index: int
    dims: tuple[int, int, int, int]
    rank: int
    type: ElementType
    quant: Quant = NO_QUANT
    data: np.ndarray | None = None
    is_external_output: bool = False
    name: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        """The original (rank-length) shape."""
        return self.dims[4 - self.rank :] if self.rank else ()

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def is_signed(self) -> bool:
        return self.type.is_signed

    @property
    def type_size(self) -> int:
        return self.type.size

    @property
    def scale(self) -> float:
        return self.quant.scale

    @property
    def zero_point(self) -> int:
        return self.quant.zero_point

    @property
    def size(self) -> int:
        return int(np.prod(self.dims))

    def describe(self) -> str:
        return f"{self.index}({self.type.short})"
