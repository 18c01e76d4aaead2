"""Data-movement kernels: no arithmetic on values, so exact by construction."""

from __future__ import annotations

import numpy as np

from ..ir import Node, Op
from .base import Kernel, Run


def prepare_identity(node: Node) -> Run:
    """RESHAPE (row-major reinterpretation) and LAYOUT (logical identity)."""
    shape = node.output.shape
    return lambda v: [v[0].reshape(shape)]


def prepare_concat(node: Node) -> Run:
    axis = node.params.axis
    return lambda v: [np.concatenate(v, axis=axis)]


def prepare_split(node: Node) -> Run:
    axis = node.params.axis
    cuts = np.cumsum([t.shape[axis] for t in node.outputs])[:-1]
    return lambda v: np.split(v[0], cuts, axis=axis)


def prepare_pad(node: Node) -> Run:
    p = node.params
    widths = list(zip(p.before, p.after, strict=True))
    return lambda v: [np.pad(v[0], widths, constant_values=p.value)]


def prepare_transpose(node: Node) -> Run:
    perm = node.params.perm
    return lambda v: [np.ascontiguousarray(v[0].transpose(perm))]


def prepare_strided_slice(node: Node) -> Run:
    p = node.params
    # Explicit indices: a negative end (-1) means "down to index 0", unlike numpy slicing.
    index = np.ix_(*(np.arange(b, e, s) for b, e, s in zip(p.begin, p.end, p.strides, strict=True)))
    return lambda v: [v[0][index]]


KERNELS = {
    Op.RESHAPE: Kernel(prepare_identity),
    Op.LAYOUT: Kernel(prepare_identity),
    Op.CONCAT: Kernel(prepare_concat),
    Op.SPLIT: Kernel(prepare_split),
    Op.PAD: Kernel(prepare_pad),
    Op.TRANSPOSE: Kernel(prepare_transpose),
    Op.STRIDED_SLICE: Kernel(prepare_strided_slice),
}
