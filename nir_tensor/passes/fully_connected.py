"""lower_fc_to_conv: FULLY_CONNECTED as a convolution (etnaviv-ml.md §1, "Fully connected").

Two forms:

* **1x1** (default): the input is reshaped to ``1 x 1 x batch x F`` and convolved with the
  ``units x 1 x 1 x F`` weights; every batch row is one output pixel.
* **factorised** (``factorize=True``, etnaviv's NN form, batch 1 only): F = x·y·z with
  x = the largest divisor of F that is <= ``max_kernel``, y = the largest divisor of F/x that is
  <= ``max_kernel``, z = the rest; the input becomes ``1 x y x x x z`` and a valid ``y x x``
  convolution with the weights reshaped the same way gives ``1 x 1 x 1 x units``. NHWC
  flattening is row-major, so feature ``(i·x + j)·z + c`` meets the same weight in both.

The accumulation is the same sum either way; the requantization is not. LiteRT's reference
FULLY_CONNECTED rounds ``acc·(s_in·s_w/s_out)`` in double (``nir_tensor/kernels/conv.py``,
checked against ai-edge-litert 2.3.0), while CONV uses the 31-bit fixed-point multiplier with
gemmlowp's double rounding. Both are within 2^-22 of the true product for any 32-bit
accumulator, so they differ only when ``acc·M`` falls that close to a rounding boundary: then
by one LSB. Not exact: bound 1 LSB (rare: see the test's measured counts).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...gallium.operation import ConvParams, FullyConnectedParams
from ...gallium.tensor import Quant
from ..ir import Graph, Node, Op, Tensor
from ..rewrite import rewrite_graph, rules
from .common import constant, derived

# etnaviv-ml.md §1: the factorised kernel's x and y are each at most 15 (the NN unit's kernel
# size limit in Mesa's FC lowering).
ETNAVIV_MAX_KERNEL = 15


def factor_features(features: int, max_kernel: int) -> tuple[int, int, int]:
    """(x, y, z) with x·y·z = features, as etnaviv factors the feature count."""
    x = max(d for d in range(1, max_kernel + 1) if features % d == 0)
    rest = features // x
    y = max(d for d in range(1, max_kernel + 1) if rest % d == 0)
    return x, y, rest // y


@dataclass(frozen=True, slots=True)
class _Ctx:
    factorize: bool
    max_kernel: int
    factorize_above: int | None = None


def _reshape(t: Tensor, shape: tuple[int, int, int, int], suffix: str) -> tuple[Tensor, list]:
    if t.shape == shape:
        return t, []
    out = derived(t, suffix, shape=shape, rank=4)
    return out, [Node(Op.RESHAPE, (t,), (out,))]


def _lower(graph: Graph, node: Node, ctx: _Ctx) -> list[Node] | None:
    inp, weight, bias = (*node.inputs, None)[:3]
    units, features = weight.shape[2], weight.shape[3]
    batch = inp.size // features
    factorize = ctx.factorize or (
        ctx.factorize_above is not None and features > ctx.factorize_above and batch == 1
    )
    if factorize:
        if batch != 1:
            return None
        x, y, z = factor_features(features, ctx.max_kernel)
        in_shape, k_shape = (1, y, x, z), (units, y, x, z)
    else:
        in_shape, k_shape = (1, 1, batch, features), (units, 1, 1, features)
    quant = weight.quant
    if quant.per_axis:
        quant = Quant(quant.scale, quant.zero_point, quant.scales, quant.zero_points, 0)
    w = constant(weight, weight.data.reshape(k_shape), "conv", quant=quant, rank=4)
    conv_in, before = _reshape(inp, in_shape, "fc_in")
    out_shape = (1, 1, 1 if factorize else batch, units)
    if node.output.shape == out_shape:
        conv_out, after = node.output, []
    else:
        conv_out = derived(node.output, "conv", shape=out_shape, rank=4)
        after = [Node(Op.RESHAPE, (conv_out,), (node.output,))]
    params = ConvParams(clamp=node.params.clamp if node.params else None)
    conv = Node(Op.CONV, (conv_in, w, bias), (conv_out,), params)
    return [*before, conv, *after]


RULES = rules((Op.FULLY_CONNECTED, _lower))


def lower_fc_to_conv(
    graph: Graph,
    *,
    factorize: bool = False,
    max_kernel: int = ETNAVIV_MAX_KERNEL,
    factorize_above: int | None = None,
) -> bool:
    """Lower every FULLY_CONNECTED to a CONV (1x1, or etnaviv's factorised kernel).

    Options: ``factorize`` picks etnaviv's form (batch-1 FCs only; others are left alone);
    ``max_kernel`` bounds its x and y; ``factorize_above`` takes the factorised form only for
    batch-1 FCs with more features than that, the 1x1 form for the rest (rocket: a channel
    count past its 14-bit field). Preconditions: FC params are ``FullyConnectedParams``
    and weights constant (asserted). Not exact: within 1 LSB (module docstring).
    """
    for n in graph:
        if n.op is Op.FULLY_CONNECTED:
            assert n.params is None or isinstance(n.params, FullyConnectedParams)
            assert n.inputs[1].is_constant, f"{n!r}: weights are not constant"
    assert max_kernel >= 1
    return rewrite_graph(graph, RULES, _Ctx(factorize, max_kernel, factorize_above))
