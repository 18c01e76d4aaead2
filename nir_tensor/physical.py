"""Byte geometry of tensors in their physical layout: sizes and contiguous sub-boxes.

One place that knows how a logical NHWC box of a tensor maps onto its buffer, used by
``lower_views`` (is a part a contiguous byte range of its base?), by the validator (do a view's
recorded offsets still match the layouts?) and by the memory planner (buffer sizes).
"""

from __future__ import annotations

import math

from .ir import LayoutKind, Node, Tensor
from .params import VIEW_PARAMS, ConcatView, SliceView


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


def view_offset(
    base: Tensor, part: Tensor, begin: tuple[int, ...], *, strided: bool = False
) -> int | None:
    """Byte offset of ``part`` = ``base[begin : begin + part.shape]`` inside ``base`` 's buffer
    (same layout and type), or None when it is not a view.

    By default the part must be one contiguous range: on the physical axes, every axis before
    the one the part cuts has extent 1, and every axis after it is whole. With ``strided`` any
    box is a view, addressed with the base's strides (a DMA with line and surface strides, as
    rocket's row tasks read one surface after another, rocket-nvdla.md §5).
    """
    if part.layout != base.layout or part.dtype is not base.dtype:
        return None
    box = physical_box(base, begin, part.shape)
    if box is None:
        return None
    shape, start, extent = box
    cut = max((i for i in range(len(shape)) if extent[i] != shape[i]), default=0)
    if not strided and any(extent[i] != 1 for i in range(cut)):
        return None
    return sum(s * st for s, st in zip(start, strides(shape), strict=True)) * base.dtype.size


def strides(shape: tuple[int, ...]) -> list[int]:
    """Row-major element strides of a physical shape."""
    return [math.prod(shape[i + 1 :]) for i in range(len(shape))]


def view_span(base: Tensor, part: Tensor, begin: tuple[int, ...], *, strided: bool) -> int:
    """Bytes from a view's first element to just past its last one inside the base."""
    if not strided:
        return nbytes(part)
    box = physical_box(base, begin, part.shape)
    assert box is not None, f"{part!r} at {begin} is not a box of {base!r}"
    shape, _, extent = box
    last = sum((e - 1) * st for e, st in zip(extent, strides(shape), strict=True))
    return (last + 1) * base.dtype.size


def view_parts(node: Node) -> list[tuple[Tensor, Tensor, tuple[int, ...], int]]:
    """(part, base, logical begin, recorded byte offset) of every part of a view node."""
    p = node.params
    if not isinstance(p, VIEW_PARAMS):
        return []
    if isinstance(p, ConcatView):
        base, parts = node.output, node.inputs
    else:
        base, parts = node.input, node.outputs
    result = []
    for i, part in enumerate(parts):
        if isinstance(p, SliceView):
            begin = p.begin
        elif hasattr(p, "axis"):
            begin = [0, 0, 0, 0]
            begin[p.axis] = sum(t.shape[p.axis] for t in parts[:i])
        else:
            begin = (0, 0, 0, 0)
        result.append((part, base, tuple(begin), p.offsets[i] if i < len(p.offsets) else -1))
    return result
