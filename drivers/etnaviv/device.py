"""The etnaviv ML device: what it supports, one rule per predicate, and the device object
(Mesa: ``etna_ml_operation_supported`` in ``etnaviv_ml.c`` and the ML hooks of
``etnaviv_screen.c``).

Each rule is a small side-effect-free function ``rule(op, target) -> reason | None`` whose
docstring states the rule; :data:`RULES` lists them per operation type and
:func:`support_markdown` turns them into the table of ``docs/etnaviv.md`` (a test keeps the
file in step). Rules read the operation as Teflon hands it over (a pipe operation), before any
lowering: they say what the lowering below can do, so a claimed operation always compiles.
"""

from __future__ import annotations

from ...gallium.device import MlDevice
from ...gallium.operation import OpType, PipeMlOperation
from ...gallium.tensor import ElementType, PipeTensor
from ...nir_tensor.builder import build_graph
from ...nir_tensor.passes.elementwise import add_as_conv
from .debug import DEBUG, DebugFlags
from .ml_nn import (
    MAX_IMAGE_XY,
    MAX_IMAGE_Z,
    MAX_KERNEL_XY,
    MAX_KERNEL_Z,
    MAX_PADDING,
    SIGNED_OFFSET,
    UINT8_MAX,
    copy_scale_ok,
    plane_shape,
    representable_scale,
)
from .ml_tp import tp_scale_ok
from .options import NpuTarget

ACTIVATION_TYPES = (ElementType.UINT8, ElementType.INT8)
ADD_MAX_LSB = 1  # refuse an ADD/SUB whose convolution form is not within 1 LSB (issue 6 aim)
TP_MAX_OVERFETCH = 3  # IN_WINDOW_Z_START/END_OVERFETCH are 2 bits


def _features(op: PipeMlOperation) -> list[PipeTensor]:
    ins = [t for t in op.inputs if t is not None and not t.is_constant]
    return ins + list(op.outputs)


def _hw(t: PipeTensor) -> int:
    return t.zero_point + (SIGNED_OFFSET if t.type is ElementType.INT8 else 0)


# -- rules for every operation ------------------------------------------------------------------


def rule_types(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Feature tensors are uint8 or int8 (int8 is offset by 128 into the uint8 the units
    compute on)."""
    for t in _features(op):
        if t.type not in ACTIVATION_TYPES:
            return f"{t.type.short} tensors"
    return None


def rule_batch(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Feature tensors have batch 1 (the units see one image)."""
    for t in _features(op):
        if t.dims[0] != 1:
            return f"batch {t.dims[0]}"
    return None


def rule_per_tensor_activations(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Feature tensors are quantized per tensor (per-axis weights are handled below)."""
    for t in _features(op):
        if t.quant.per_axis:
            return "per-axis quantized activations"
    return None


def rule_sizes(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Every feature tensor fits the job fields: width and height at most 8191 (13 bits);
    outputs at most 16383 channels (14 bits), inputs at most 2^20 - 1 (the kernel depth)."""
    outputs = {id(t) for t in op.outputs}
    for t in _features(op):
        _, h, w, c = t.dims
        channels = MAX_IMAGE_Z if id(t) in outputs else MAX_KERNEL_Z
        if max(h, w) > MAX_IMAGE_XY or c > channels:
            return f"tensor {'x'.join(map(str, t.dims))} exceeds the job size fields"
    return None


COMMON = (rule_types, rule_batch, rule_per_tensor_activations, rule_sizes)


# -- convolution and fully connected ------------------------------------------------------------


def rule_conv_constant_weights(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Weights and biases are constant (they are compressed at compile time)."""
    for t in op.inputs[1:]:
        if t is not None and not t.is_constant:
            return "non-constant weights or bias"
    return None


def rule_conv_stride(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Strides are 1, or 2 on both axes (a TP reshuffle for kernels larger than 1x1, else the
    NN unit's first-pixel pooling)."""
    s = op.params.stride
    return None if s in ((1, 1), (2, 2)) else f"stride {s[0]}x{s[1]}"


def rule_conv_kernel(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Kernels fit the 4-bit kernel size fields (at most 15x15, a dilated kernel with its gaps;
    stride-2 kernels are halved by the reshuffle first) and the 20-bit kernel depth."""
    _, kh, kw, _ = op.inputs[1].dims
    dy, dx = op.params.dilation
    kh, kw = (kh - 1) * dy + 1, (kw - 1) * dx + 1
    if op.params.stride == (2, 2) and not op.params.depthwise and (kh, kw) != (1, 1):
        kh, kw = -(-kh // 2), -(-kw // 2)
    if max(kh, kw) > MAX_KERNEL_XY:
        return f"kernel {kh}x{kw} larger than {MAX_KERNEL_XY}"
    depth = op.inputs[0].dims[3] * (4 if op.params.stride == (2, 2) else 1)
    return None if depth <= MAX_KERNEL_Z else f"{depth} input channels"


def rule_conv_padding(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Top and left padding fit the NN input offset (at most 8, a 4-bit signed field);
    right and bottom padding is the border the output size reads."""
    p = op.params.padding
    if op.params.stride == (2, 2) and not op.params.depthwise and op.inputs[1].dims[1:3] != (1, 1):
        return None  # the reshuffle pads
    return None if max(p.top, p.left) <= MAX_PADDING else f"padding {p.top}/{p.left}"


def rule_weights_per_axis(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Per-axis weights are symmetric (TFLite's int8 rule): one NN job per run of channels
    sharing a multiplier (``per_axis=split``), or requantized to one scale
    (``per_axis=requantize``: ``lower_per_axis_weights``, bounded)."""
    q = op.inputs[1].quant
    if q.per_axis and (q.zero_points is not None or q.zero_point != 0):
        return "asymmetric per-axis weights"
    return None


def rule_requant_scale(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """The requantization scale ``s_in·s_w/s_out`` (of every channel, for per-axis weights)
    fits the 7-bit post shift."""
    w = op.inputs[1].quant
    for s_w in w.scales or (w.scale,):
        scale = op.inputs[0].scale * s_w / op.outputs[0].scale
        if not representable_scale(scale, target.version):
            return f"requantization scale {scale:.3g} out of range"
    return None


def rule_fused_clamp(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """A fused activation's upper bound is not below the output zero point (ReLU is the relu
    bit; other bounds add an exact TP clamp job)."""
    clamp = op.params.clamp
    if clamp is None:
        return None
    out = op.outputs[0]
    return None if clamp.hi >= out.zero_point else "clamp below the output zero point"


def rule_fc_weights(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Fully connected weights have at most 16383 units and 2^20 - 1 features (a 1x1
    convolution over the features as channels)."""
    _, _, units, features = op.inputs[1].dims
    if units > MAX_IMAGE_Z or features > MAX_KERNEL_Z:
        return f"fully connected {units}x{features}"
    return None


CONV = (
    rule_conv_constant_weights,
    rule_conv_stride,
    rule_conv_kernel,
    rule_conv_padding,
    rule_weights_per_axis,
    rule_requant_scale,
    rule_fused_clamp,
)
FC = (rule_conv_constant_weights, rule_fc_weights, rule_weights_per_axis, rule_requant_scale,
      rule_fused_clamp)  # fmt: skip


# -- element-wise ---------------------------------------------------------------------------------


def rule_add_operands(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """ADD and SUB take two non-constant tensors of the output's shape and type (no
    broadcast): a 1x1 convolution over the two operands' planes."""
    a, b = op.inputs[0], op.inputs[1]
    out = op.outputs[0]
    if a.is_constant or b.is_constant:
        return "a constant operand"
    if a.dims != out.dims or b.dims != out.dims:
        return "broadcast"
    if a.type is not b.type or a.type is not out.type:
        return "mixed types"
    if plane_shape(out.size) is None:
        return f"{out.size} elements do not fit an NN plane"
    return None


def rule_add_bound(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """The convolution form of ADD/SUB is within 1 LSB of TFLite's (``add_as_conv``'s bound,
    which depends on the operands' scales)."""
    node = build_graph([op]).nodes[0]
    plan = add_as_conv(node)
    if plan.bound > ADD_MAX_LSB:
        return f"ADD as convolution bound {plan.bound} LSB"
    scale = plan.weight_scale * node.inputs[plan.reference].quant.scale / node.output.quant.scale
    return None if representable_scale(scale, target.version) else "ADD scale out of range"


def rule_add_clamp(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """A fused activation's upper bound is not below the output zero point."""
    clamp = op.params.clamp
    if clamp is None or clamp.hi >= op.outputs[0].zero_point:
        return None
    return "clamp below the output zero point"


ADD = (rule_add_operands, rule_add_bound, rule_add_clamp)


def rule_clamp(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """RELU, RELU6 and RELU_N1_TO_1 are TP copies that saturate (exact with equal input and
    output scales; an NN copy when the scale ratio is 2 or more), with the upper bound not
    below the output zero point."""
    t_in, t_out = op.inputs[0], op.outputs[0]
    ratio = t_in.scale / t_out.scale
    if not (tp_scale_ok(ratio) or copy_scale_ok(ratio, target.version)):
        return f"input/output scale ratio {ratio:.3g}"
    lo, hi = op.params.lo, op.params.hi
    if hi < t_out.zero_point or min(hi + _hw(t_out) - t_out.zero_point, UINT8_MAX) < 0:
        return "clamp below the output zero point"
    return None if lo <= hi else "empty clamp"


def rule_pwl(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """ABS and LOGISTIC are TP lookup-table (PWL) jobs on same-shape tensors."""
    return None if op.inputs[0].dims == op.outputs[0].dims else "shape change"


# -- data movement --------------------------------------------------------------------------------


def rule_axis(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """CONCATENATION and SPLIT keep the batch: along channels (planar tensors make each part
    one byte range: a buffer alias) or along height or width (a TP copy with strides)."""
    return None if op.params.axis in (1, 2, 3) else f"axis {op.params.axis}"


def rule_concat_scales(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Parts with another quantization than the output are requantized by a TP copy (scale
    ratio below 2) or, along channels, an NN copy."""
    out = op.outputs[0]
    for t in op.inputs:
        if t.is_constant:
            return "a constant part"
        ratio = t.scale / out.scale
        nn = op.params.axis == 3 and copy_scale_ok(ratio, target.version)
        if not (tp_scale_ok(ratio) or nn):
            return f"part scale ratio {ratio:.3g}"
    return None


def rule_split_outputs(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Split outputs keep the input's quantization."""
    t_in = op.inputs[0]
    for t in op.outputs:
        if t.quant != t_in.quant:
            return "requantizing split"
    return None


def rule_pad(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """PAD pads height, width (any amount the TP window reaches) and channels (at most 3 per
    side, the TP z overfetch), never the batch, with the input's quantization."""
    p = op.params
    if p.before[0] or p.after[0]:
        return "batch padding"
    if max(p.before[3], p.after[3]) > TP_MAX_OVERFETCH:
        return f"channel padding above {TP_MAX_OVERFETCH}"
    if op.inputs[0].quant != op.outputs[0].quant:
        return "requantizing pad"
    return None


def rule_transpose(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """TRANSPOSE keeps the batch axis first (a TP permute of the other three)."""
    return None if op.params.perm[0] == 0 else "transposes the batch axis"


def rule_same_quant(op: PipeMlOperation, target: NpuTarget) -> str | None:
    """Data movement keeps the quantization (no arithmetic on the way)."""
    return None if op.inputs[0].quant == op.outputs[0].quant else "requantizing data movement"


RULES = {
    OpType.CONVOLUTION: COMMON + CONV,
    OpType.FULLY_CONNECTED: COMMON + FC,
    OpType.ADD: COMMON + ADD,
    OpType.SUBTRACT: COMMON + ADD,
    OpType.CONCATENATION: (*COMMON, rule_axis, rule_concat_scales),
    OpType.SPLIT: (*COMMON, rule_axis, rule_split_outputs),
    OpType.RESHAPE: COMMON,
    OpType.TRANSPOSE: (*COMMON, rule_transpose, rule_same_quant),
    OpType.PAD: (*COMMON, rule_pad),
    OpType.CLAMP: (*COMMON, rule_clamp),
    OpType.ABSOLUTE: (*COMMON, rule_pwl),
    OpType.LOGISTIC: (*COMMON, rule_pwl),
}


def operation_supported(op: PipeMlOperation, target: NpuTarget) -> str | None:
    rules = RULES.get(op.type)
    if rules is None:
        return f"{op.type.value} has no NN or TP job"
    for rule in rules:
        reason = rule(op, target)
        if reason:
            return reason
    return None


def support_markdown() -> str:
    """The support table of ``docs/etnaviv.md``, from the rules' docstrings."""

    def doc(rules) -> str:
        return "<br>".join(" ".join(r.__doc__.split()) for r in rules)

    lines = ["| operation | rules (all must hold) |", "|---|---|"]
    lines.append(f"| every supported operation | {doc(COMMON)} |")
    for op_type, rules in RULES.items():
        own = [r for r in rules if r not in COMMON]
        lines.append(f"| {op_type.name} | {doc(own) if own else 'always'} |")
    others = sorted(t.name for t in OpType if t not in RULES)
    lines.append(f"| {', '.join(others)} | refused: no NN or TP job (they run on the CPU) |")
    return "\n".join(lines)


class EtnaDevice(MlDevice):
    """An etnaviv NPU: a SoC row, compile options, and where contexts run (a kernel render
    node or the simulated device)."""

    def __init__(
        self,
        target: NpuTarget,
        *,
        node: str | None = None,
        debug: DebugFlags = DEBUG,
        name: str | None = None,
    ) -> None:
        self.target = target
        self.node = node
        self.debug = debug
        self.name = name or f"etnaviv:{target.soc.name}"

    def operation_supported(self, op: PipeMlOperation) -> str | None:
        return operation_supported(op, self.target)

    def subgraph_create(self, ops):
        from .ml import compile_subgraph

        return compile_subgraph(ops, self.target, self.debug)

    def create_context(self):
        from .ml_context import EtnaContext

        if self.node is not None:
            from ...util.drm import KernelDrmFile

            drm = KernelDrmFile(self.node)
        else:
            from ...drm_shim.etnaviv.device import SimulatedEtnavivFile

            drm = SimulatedEtnavivFile(self.target.soc.name)
        return EtnaContext(drm, self.target.soc.name, self.debug)
