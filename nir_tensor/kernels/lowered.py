"""Kernels of the IR-only forms that lowering passes create.

* SPACE_TO_DEPTH: a gather (exact by construction), per ``SpaceToDepthParams``.
* CONV_ADD: by definition the convolution, requantized to ``conv_scale``/``conv_zero_point``
  and clamped by ``conv.clamp``, followed by the ADD with ``clamp`` (``ConvAddParams``). The
  kernel builds those two nodes and runs the CONV and ADD kernels themselves, so it is exact
  wherever they are.
* LAYOUT is a logical identity and lives with the data kernels.
"""

from __future__ import annotations

import numpy as np

from ...gallium.operation import ElementwiseParams
from ...gallium.tensor import Quant
from ..ir import Node, Op, Tensor
from ..params import ConvAddParams, SpaceToDepthParams
from .base import Kernel, Run


def prepare_space_to_depth(node: Node) -> Run:
    p: SpaceToDepthParams = node.params
    b = p.block
    n, h, w, c = node.input.shape
    _, oh, ow, _ = node.output.shape
    # Rows -pad_top .. oh*b - pad_top - 1 of the input, out-of-image rows read pad_value.
    pads = (
        (0, 0),
        (p.pad_top, max(0, oh * b - p.pad_top - h)),
        (p.pad_left, max(0, ow * b - p.pad_left - w)),
        (0, 0),
    )

    def run(v: list[np.ndarray | None]) -> list[np.ndarray]:
        x = np.pad(v[0], pads, constant_values=p.pad_value)[:, : oh * b, : ow * b, :]
        blocks = x.reshape(n, oh, b, ow, b, c).transpose(0, 1, 3, 2, 4, 5)
        return [np.ascontiguousarray(blocks.reshape(n, oh, ow, b * b * c))]

    return run


def _conv_add_parts(node: Node) -> tuple[Node, Node]:
    """The CONV and the ADD that a CONV_ADD node is defined as."""
    p: ConvAddParams = node.params
    out, other = node.output, node.inputs[3]
    mid = Tensor(
        shape=out.shape,
        dtype=out.dtype,
        quant=Quant(p.conv_scale, p.conv_zero_point),
        name=f"{out.name}/conv",
    )
    conv = Node(Op.CONV, node.inputs[:3], (mid,), p.conv, node.origin)
    operands = (mid, other) if p.conv_first else (other, mid)
    add = Node(Op.ADD, operands, (out,), ElementwiseParams(p.clamp), node.origin)
    return conv, add


def _registry() -> dict:
    from . import KERNELS  # the full table, including the other families

    return KERNELS


def prepare_conv_add(node: Node) -> Run:
    conv, add = _conv_add_parts(node)
    kernels = _registry()
    run_conv = kernels[Op.CONV].prepare(conv)
    run_add = kernels[Op.ADD].prepare(add)
    first = node.params.conv_first

    def run(v: list[np.ndarray | None]) -> list[np.ndarray]:
        (mid,) = run_conv(v[:3])
        other = v[3]
        return run_add([mid, other] if first else [other, mid])

    return run


def problem_conv_add(node: Node) -> str | None:
    if not isinstance(node.params, ConvAddParams):
        return f"params are {type(node.params).__name__}, not ConvAddParams"
    kernels = _registry()
    conv, add = _conv_add_parts(node)
    for part in (conv, add):
        entry = kernels.get(part.op)
        if entry is None:
            return f"no reference kernel for {part.op.debug_name} (needed by conv_add)"
        if entry.problem is not None and (reason := entry.problem(part)):
            return reason
    return None


KERNELS = {
    Op.SPACE_TO_DEPTH: Kernel(prepare_space_to_depth),
    Op.CONV_ADD: Kernel(prepare_conv_add, problem_conv_add),
}
