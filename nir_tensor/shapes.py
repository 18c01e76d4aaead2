"""Output-shape rules per op: the one place that knows how each op maps shapes.

``infer(op, input_shapes, params)`` returns the logical NHWC output shapes, or None for ops
whose output shape is fixed by the model rather than derivable (RESIZE, FULLY_CONNECTED,
RESHAPE, MEAN without kept dims); the validator then checks element counts instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .ir import Op

Shape = tuple[int, int, int, int]


def conv_output_size(
    size: int, kernel: int, stride: int, dilation: int, before: int, after: int
) -> int:
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


def _conv(shapes: Sequence[Shape], p) -> list[Shape]:
    (n, h, w, _c), (o, kh, kw, _) = shapes[0], shapes[1]
    out_c = shapes[1][3] if p.depthwise else o
    oh = conv_output_size(h, kh, p.stride[0], p.dilation[0], p.padding.top, p.padding.bottom)
    ow = conv_output_size(w, kw, p.stride[1], p.dilation[1], p.padding.left, p.padding.right)
    return [(n, oh, ow, out_c)]


def _conv_add(shapes: Sequence[Shape], p) -> list[Shape]:
    return _conv(shapes, p.conv)


def _pool(shapes: Sequence[Shape], p) -> list[Shape]:
    n, h, w, c = shapes[0]
    fh, fw = p.filter
    oh = conv_output_size(h, fh, p.stride[0], 1, p.padding.top, p.padding.bottom)
    ow = conv_output_size(w, fw, p.stride[1], 1, p.padding.left, p.padding.right)
    return [(n, oh, ow, c)]


def _broadcast(shapes: Sequence[Shape], p) -> list[Shape]:
    return [tuple(int(d) for d in np.broadcast_shapes(*shapes))]


def _same(shapes: Sequence[Shape], p) -> list[Shape]:
    return [shapes[0]]


def _concat(shapes: Sequence[Shape], p) -> list[Shape]:
    out = list(shapes[0])
    out[p.axis] = sum(s[p.axis] for s in shapes)
    return [tuple(out)]


def _pad(shapes: Sequence[Shape], p) -> list[Shape]:
    return [tuple(d + b + a for d, b, a in zip(shapes[0], p.before, p.after, strict=True))]


def _transpose(shapes: Sequence[Shape], p) -> list[Shape]:
    return [tuple(shapes[0][i] for i in p.perm)]


def _strided_slice(shapes: Sequence[Shape], p) -> list[Shape]:
    return [tuple(len(range(b, e, s)) for b, e, s in zip(p.begin, p.end, p.strides, strict=True))]


RULES: dict[Op, Callable[[Sequence[Shape], object], list[Shape]]] = {
    Op.CONV: _conv,
    Op.CONV_ADD: _conv_add,
    Op.POOL: _pool,
    Op.ADD: _broadcast,
    Op.SUB: _broadcast,
    Op.MUL: _broadcast,
    Op.CLAMP: _same,
    Op.ABS: _same,
    Op.LOGISTIC: _same,
    Op.TANH: _same,
    Op.HARD_SWISH: _same,
    Op.QUANTIZE: _same,
    Op.SOFTMAX: _same,
    Op.LAYOUT: _same,
    Op.CONCAT: _concat,
    Op.PAD: _pad,
    Op.TRANSPOSE: _transpose,
    Op.STRIDED_SLICE: _strided_slice,
}


def infer(op: Op, input_shapes: Sequence[Shape], params) -> list[Shape] | None:
    rule = RULES.get(op)
    return None if rule is None else rule(input_shapes, params)
