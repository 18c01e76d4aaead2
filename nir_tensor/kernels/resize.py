"""RESIZE (nearest neighbour, bilinear) with align_corners and half_pixel_centers, exact.

Mirrors LiteRT ``tflite/kernels/resize_{nearest_neighbor,bilinear}.cc`` and their reference
kernels (``internal/reference/resize_nearest_neighbor.h``, ``resize_bilinear.h``):

* nearest: ``GetNearestNeighbor`` maps each output coordinate in float32 (floor, or round with
  align_corners), then copies whole pixels;
* bilinear uint8: ``reference_ops::ResizeBilinear`` interpolates in float32, term by term in C
  evaluation order, adds 0.5 and truncates;
* bilinear int8/int16: ``ResizeBilinearInteger`` in 10-bit fixed point, rounding the 20-bit
  result half away from zero.

No requantization: like TFLite, the output takes the input's integers.
"""

from __future__ import annotations

import numpy as np

from ...gallium.operation import ResizeType
from ...gallium.tensor import ElementType
from ...util.fixedpoint import round_half_away_array
from ..ir import Node, Op
from .base import Kernel, Run

F32 = np.float32


def nearest_indices(in_size: int, out_size: int, align: bool, half_pixel: bool) -> np.ndarray:
    if align and out_size > 1:
        scale = F32(in_size - 1) / F32(out_size - 1)
    else:
        scale = F32(in_size) / F32(out_size)
    offset = F32(0.5) if half_pixel else F32(0.0)
    pos = (np.arange(out_size).astype(F32) + offset) * scale
    index = round_half_away_array(pos.astype(np.float64)) if align else np.floor(pos)
    index = np.minimum(index.astype(np.int64), in_size - 1)
    return np.maximum(index, 0) if half_pixel else index


def prepare_nearest(node: Node) -> Run:
    p = node.params
    _, h, w, _ = node.input.shape
    _, oh, ow, _ = node.output.shape
    rows = nearest_indices(h, oh, p.align_corners, p.half_pixel_centers)
    cols = nearest_indices(w, ow, p.align_corners, p.half_pixel_centers)
    return lambda v: [v[0][:, rows][:, :, cols]]


def float_coordinates(in_size: int, out_size: int, align: bool, half_pixel: bool):
    """``ComputeInterpolationValues``: (position, lower, upper) per output coordinate."""
    scale = F32(in_size) / F32(out_size)
    if align and out_size > 1:
        scale = F32(in_size - 1) / F32(out_size - 1)
    out = np.arange(out_size).astype(F32)
    pos = (out + F32(0.5)) * scale - F32(0.5) if half_pixel else out * scale
    lower = np.maximum(np.floor(pos).astype(np.int64), 0)
    upper = np.minimum(np.ceil(pos).astype(np.int64), in_size - 1)
    return pos.astype(F32), lower, upper


def prepare_bilinear_float(node: Node) -> Run:
    p = node.params
    _, h, w, _ = node.input.shape
    _, oh, ow, _ = node.output.shape
    iy, y0, y1 = float_coordinates(h, oh, p.align_corners, p.half_pixel_centers)
    ix, x0, x1 = float_coordinates(w, ow, p.align_corners, p.half_pixel_centers)
    dy = (iy - y0.astype(F32))[None, :, None, None]  # input_y - y0, in float32
    dx = (ix - x0.astype(F32))[None, None, :, None]
    one = F32(1)
    dtype = node.output.dtype.numpy

    def run(v: list[np.ndarray | None]) -> list[np.ndarray]:
        x = v[0].astype(F32)
        top, bottom = x[:, y0], x[:, y1]
        v00, v01, v10, v11 = top[:, :, x0], top[:, :, x1], bottom[:, :, x0], bottom[:, :, x1]
        # Same association as the C expression, one float32 rounding per operation.
        acc = v00 * (one - dy) * (one - dx)
        acc = acc + v10 * dy * (one - dx)
        acc = acc + v01 * (one - dy) * dx
        acc = acc + v11 * dy * dx
        acc = acc + F32(0.5)
        return [np.trunc(acc).astype(dtype)]

    return run


def integer_coordinates(in_size: int, out_size: int, align: bool, half_pixel: bool):
    """``ComputeInterpolationValuesInteger`` with the 10-bit scale of ``ResizeBilinearInteger``."""
    one = 1 << 10
    if align and out_size > 1:
        scale = (one * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale = (one * in_size + out_size // 2) // out_size
    out = np.arange(out_size, dtype=np.int64)
    pos = out * scale + scale // 2 - (1 << 9) if half_pixel else out * scale
    # C's division truncates; pos >= -512, so floor gives the same lower bound after the
    # clamp at 0, and pos + 1023 is positive.
    lower = np.maximum(pos // one, 0)
    upper = np.minimum((pos + one - 1) // one, in_size - 1)
    return pos, lower, upper


def prepare_bilinear_integer(node: Node) -> Run:
    p = node.params
    _, h, w, _ = node.input.shape
    _, oh, ow, _ = node.output.shape
    iy, y0, y1 = integer_coordinates(h, oh, p.align_corners, p.half_pixel_centers)
    ix, x0, x1 = integer_coordinates(w, ow, p.align_corners, p.half_pixel_centers)
    one = 1 << 10
    fy = (iy - one * y0)[None, :, None, None]
    fx = (ix - one * x0)[None, None, :, None]
    dtype = node.output.dtype.numpy

    def run(v: list[np.ndarray | None]) -> list[np.ndarray]:
        x = v[0].astype(np.int64)
        top, bottom = x[:, y0], x[:, y1]
        total = (
            top[:, :, x0] * (one - fy) * (one - fx)
            + bottom[:, :, x0] * fy * (one - fx)
            + top[:, :, x1] * (one - fy) * fx
            + bottom[:, :, x1] * fy * fx
        )
        rounded = total + np.where(total > 0, 1 << 19, -(1 << 19))
        result = np.where(rounded >= 0, rounded >> 20, -((-rounded) >> 20))
        return [result.astype(dtype)]

    return run


def prepare_resize(node: Node) -> Run:
    if node.params.type is ResizeType.NEAREST:
        return prepare_nearest(node)
    if node.input.dtype is ElementType.UINT8:
        return prepare_bilinear_float(node)
    return prepare_bilinear_integer(node)


def resize_problem(node: Node) -> str | None:
    """RESIZE runs uint8, int8 and int16; half_pixel_centers excludes align_corners."""
    inp, out, p = node.input, node.output, node.params
    if inp.dtype != out.dtype:
        return f"{inp.dtype.short} to {out.dtype.short} RESIZE"
    if inp.dtype not in (ElementType.UINT8, ElementType.INT8, ElementType.INT16):
        return f"{inp.dtype.short} RESIZE"
    if p.align_corners and p.half_pixel_centers:
        return "align_corners with half_pixel_centers (TFLite rejects it)"
    return None


KERNELS = {Op.RESIZE: Kernel(prepare_resize, resize_problem)}
