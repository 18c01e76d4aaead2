"""Shared passes, one family per module. ``opt_*`` keep semantics and improve the graph;
``lower_*`` reshape it for hardware. Each is ``pass(graph, *, options) -> bool`` (progress)."""

from .activation import opt_drop_implied_clamp, opt_fuse_activation
from .constant_fold import opt_constant_fold
from .dce import opt_dce
from .depthwise import lower_depthwise_to_dense
from .elementwise import lower_add_into_conv, lower_add_to_conv
from .fully_connected import lower_fc_to_conv
from .layout import LayoutRule, lower_layouts
from .pad import opt_fold_pad
from .per_axis import lower_per_axis_weights
from .split import lower_split_conv_channels, lower_split_conv_rows
from .stride import lower_conv_stride_reshuffle, lower_conv_stride_subsample
from .views import lower_views

__all__ = [
    "LayoutRule",
    "lower_add_into_conv",
    "lower_add_to_conv",
    "lower_conv_stride_reshuffle",
    "lower_conv_stride_subsample",
    "lower_depthwise_to_dense",
    "lower_fc_to_conv",
    "lower_layouts",
    "lower_per_axis_weights",
    "lower_split_conv_channels",
    "lower_split_conv_rows",
    "lower_views",
    "opt_constant_fold",
    "opt_dce",
    "opt_drop_implied_clamp",
    "opt_fold_pad",
    "opt_fuse_activation",
]
