"""Test pipelines of the shared passes: the reference device runs them by name
(``reference:all-exact``), and the pass tests run them on random graphs.

``ALL_EXACT`` chains every exact pass, so ``teflon check --device reference:all-exact`` must stay
bit-exact on every model: it is the end-to-end equivalence test of the exact passes. ``ALL``
adds the bounded lowerings (ADD as convolution, FULLY_CONNECTED as convolution, per-axis to
per-tensor weights) with etnaviv's planar layout. Drivers declare their own pipelines next to
their code (see ``drivers/reference/pipelines.py`` for how they are named).
"""

from __future__ import annotations

from types import MappingProxyType

from .ir import NCHW, Layout, LayoutKind, Op
from .passes import (
    LayoutRule,
    lower_add_into_conv,
    lower_add_to_conv,
    lower_conv_stride_reshuffle,
    lower_conv_stride_subsample,
    lower_depthwise_to_dense,
    lower_fc_to_conv,
    lower_layouts,
    lower_per_axis_weights,
    lower_split_conv_channels,
    lower_split_conv_rows,
    lower_views,
    opt_constant_fold,
    opt_dce,
    opt_drop_implied_clamp,
    opt_fold_pad,
    opt_fuse_activation,
)
from .pipeline import Pipeline, loop, step

# rocket-nvdla.md §4: feature maps are NC1HWC2 with C2 = 16 (FEATURE_ATOMIC_SIZE).
ROCKET_C2 = 16
NC1HWC2_16 = Layout(LayoutKind.NC1HWC2, ROCKET_C2)
ANY = LayoutRule(None, None)

# A rocket-like table: the convolution engine reads and writes NC1HWC2; element-wise ops
# follow their input; everything else (the CPU's ops) is NHWC.
GROUPED_LAYOUTS = MappingProxyType(
    {
        Op.CONV: LayoutRule(NC1HWC2_16, NC1HWC2_16),
        Op.CONV_ADD: LayoutRule(NC1HWC2_16, NC1HWC2_16),
        Op.SPACE_TO_DEPTH: ANY,
        Op.STRIDED_SLICE: ANY,
        Op.CONCAT: ANY,
        Op.ADD: ANY,
        Op.CLAMP: ANY,
    }
)

# etnaviv-ml.md §1 "Layout inference": CONV, FC and CONCAT want planar NCHW; element-wise ops
# take any layout and propagate it, and RESHAPE is a "bypass" (an alias in any layout).
PLANAR_LAYOUTS = MappingProxyType(
    {
        Op.CONV: LayoutRule(NCHW, NCHW),
        Op.FULLY_CONNECTED: LayoutRule(NCHW, NCHW),
        Op.CONCAT: LayoutRule(NCHW, NCHW),
        Op.SPACE_TO_DEPTH: ANY,
        Op.STRIDED_SLICE: ANY,
        Op.ADD: ANY,
        Op.SUB: ANY,
        Op.CLAMP: ANY,
        Op.LOGISTIC: ANY,
        Op.ABS: ANY,
        Op.RESHAPE: ANY,
    }
)

# The dense form of a depthwise conv has C times the weights; past this many channels the
# evaluator's run time (and any real driver's weight buffer) grows more than it is worth.
DENSE_DEPTHWISE_MAX_CHANNELS = 64

CLEANUP = loop(
    step(opt_fold_pad),
    step(opt_fuse_activation),
    step(opt_drop_implied_clamp, note="after fusion: a fused ReLU6 may be implied"),
    step(opt_dce),
    note="a folded PAD or a fused clamp can expose another fusion",
)

ALL_EXACT = Pipeline(
    "all-exact",
    (
        step(opt_constant_fold),
        CLEANUP,
        step(
            lower_add_into_conv,
            operand="either",
            note="after CLEANUP: the conv's clamp must be final before it is fused",
        ),
        step(
            lower_depthwise_to_dense,
            max_channels=DENSE_DEPTHWISE_MAX_CHANNELS,
            note="before the stride lowerings: a densified strided conv can be reshuffled",
        ),
        step(lower_conv_stride_reshuffle, note="dense strided convs"),
        step(lower_conv_stride_subsample, note="what reshuffle leaves: depthwise"),
        step(
            lower_layouts,
            table=GROUPED_LAYOUTS,
            note="before the splits: one conversion per tensor, not one per tile",
        ),
        step(lower_split_conv_channels, max_channels=256, align=ROCKET_C2),
        step(lower_split_conv_rows, max_rows=32, note="tiles keep the layout of what they cut"),
        step(lower_views, strided=True, note="after lower_layouts: offsets depend on layouts"),
        step(opt_dce),
    ),
)

ALL = Pipeline(
    "all",
    (
        step(opt_constant_fold),
        CLEANUP,
        step(lower_per_axis_weights, note="first: later lowerings copy weight quantization"),
        step(lower_fc_to_conv, factorize=True),
        step(lower_fc_to_conv, note="batched FCs the factorised form leaves"),
        step(lower_add_to_conv, note="before layouts: its CONCAT must be planar to be a view"),
        step(lower_depthwise_to_dense, max_channels=DENSE_DEPTHWISE_MAX_CHANNELS),
        step(lower_conv_stride_reshuffle),
        step(lower_conv_stride_subsample),
        step(lower_layouts, table=PLANAR_LAYOUTS),
        step(lower_views, note="after lower_layouts"),
        step(opt_dce),
    ),
)

PIPELINES = MappingProxyType({p.name: p for p in (ALL_EXACT, ALL)})

__all__ = ["ALL", "ALL_EXACT", "GROUPED_LAYOUTS", "PIPELINES", "PLANAR_LAYOUTS"]
