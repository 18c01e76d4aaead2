"""Byte geometry of tensors in their physical layout: sizes and contiguous sub-boxes.

One place that knows how a logical NHWC box of a tensor maps onto its buffer, used by
``lower_views`` (is a part a contiguous byte range of its base?), by the validator (do a view's
recorded offsets still match the layouts?) and by the memory planner (buffer sizes).
"""

from __future__ import annotations

import math

from .ir import LayoutKind, Tensor


def nbytes(t: Tensor) -> int:
    """Bytes of ``t`` 's buffer in its physical layout (NC1HWC2 pads the last group)."""
    return math.prod(t.layout.physical_shape(t.shape)) * t.dtype.size


def physical_box(t: Tensor, begin: tuple[int, ...], extent: tuple[int, ...]):
    """(shape, begin, extent) of a logical NHWC box of ``t`` on its physical axes, or None
    when the box cuts through an NC1HWC2 channel group."""
    kind = t.layout.kind
    if kind is LayoutKind.NHWC:
        return t.shape, tuple(begin), tuple(extent)
    if kind is LayoutKind.NCHW:
        perm = (0, 3, 1, 2)
        return (
            tuple(t.shape[i] for i in perm),
            tuple(begin[i] for i in perm),
            tuple(extent[i] for i in perm),
        )
    c2 = t.layout.c2
    n, h, w, c = t.shape
    b, e = begin[3], extent[3]
    if b % c2 or (e % c2 and b + e != c):
        return None
    return (
        (n, -(-c // c2), h, w, c2),
        (begin[0], b // c2, begin[1], begin[2], 0),
        (extent[0], -(-e // c2), extent[1], extent[2], c2),
    )


def view_offset(base: Tensor, part: Tensor, begin: tuple[int, ...]) -> int | None:
    """Byte offset of ``part`` = ``base[begin : begin + part.shape]`` when it is one contiguous
    range of ``base`` 's buffer in the same layout and type, else None.

    Contiguous means: on the physical axes, every axis before the one the part cuts has
    extent 1, and every axis after it is whole.
    """
    if part.layout != base.layout or part.dtype is not base.dtype:
        return None
    box = physical_box(base, begin, part.shape)
    if box is None:
        return None
    shape, start, extent = box
    cut = max((i for i in range(len(shape)) if extent[i] != shape[i]), default=0)
    if any(extent[i] != 1 for i in range(cut)):
        return None
    strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
    return sum(s * st for s, st in zip(start, strides, strict=True)) * base.dtype.size
