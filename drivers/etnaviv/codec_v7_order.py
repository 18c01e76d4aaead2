"""Where every weight and side field of a v7 coefficient stream goes.

The stream order of Mesa's ``write_core_6``, ``write_core_interleaved`` and
``write_core_sequential`` (``etnaviv_ml_nn_v7.c``; brief ``etnaviv-ml.md`` §3.1) as closed-form
positions, so the codec can place a few nonzero weights of a huge, mostly zero-point kernel (a
v7 depthwise convolution expanded to a dense one) without walking all of it.

Kernel -> core: superblock s, core c, kernel k of the superblock holds slot
``s * ceil(kpc / S) * cores_used + c * kis + k`` (kis = kernels of the core in that superblock).
Inside a superblock a core writes, per traversal:

- POINTWISE6: input channels in blocks of min(IC, 6); block, then kernel, then the block's channels;
- INTERLEAVED: input channel, then kernel, then the kernel plane walk (:func:`kernel_walk`);
- SEQUENTIAL (IC == 1): kernel, then its walk.

The bias follows a kernel's first weight; its output offset follows its last. Flushes come
before every side field, after every input channel of the last superblock (interleaved only),
and at the end.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .codec_bits import align

ALIGNMENT = 64  # header and per-core stream alignment in bytes (brief §3.1)
KPC_FIELD_BITS = 16  # stream header: kernels per core
POINTWISE_BLOCK = 6  # "core_6": input channels in blocks of min(IC, 6)
SPLIT_COLUMNS = 3  # column split of wide kernels: first 3 columns, then the rest
POINTWISE6_MIN_OC = 9  # Mesa: pointwise && output_channels > 8
WIDE_INPUT = 64  # Mesa: the sequential walk splits columns when the input is wider than this


class V7Traversal(enum.Enum):
    """Weight traversal order of a v7 stream (brief §3.1). The hardware learns it from the job
    (kernel size, input channels), so the decoder takes it from the layout."""

    POINTWISE6 = "core_6"  # 1x1 with OC > 8: IC in blocks of 6, kernels interleaved per block
    INTERLEAVED = "interleaved"  # IC > 1: input channel, then kernel, then the kernel walk
    SEQUENTIAL = "sequential"  # IC == 1: kernel after kernel


@dataclass(frozen=True, slots=True)
class V7Layout:
    """What the hardware knows of a v7 coefficient buffer from the NN job configuration.

    ``superblocks`` come from tiling (brief §5). ``split_columns`` applies to SEQUENTIAL only
    (Mesa: depthwise or input width > 64); INTERLEAVED always splits kernels wider than 3.
    Slots: every core decodes ``kernels_per_core`` kernels, so when OC is not a multiple of the
    cores used there are ``slots - oc`` padding kernels (all zero point, bias 0).
    """

    oc: int
    ic: int
    kh: int
    kw: int
    nn_cores: int
    superblocks: int
    traversal: V7Traversal
    zero_point: int
    split_columns: bool = False

    def __post_init__(self) -> None:
        for name in ("oc", "ic", "kh", "kw", "nn_cores", "superblocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"v7 layout: {name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.zero_point <= 255:
            raise ValueError(f"v7 layout: zero point {self.zero_point} outside 0..255")
        if self.kernels_per_core >= 1 << KPC_FIELD_BITS:
            raise ValueError(f"v7 layout: {self.kernels_per_core} kernels per core overflow")
        if self.traversal is V7Traversal.POINTWISE6 and (self.kh, self.kw) != (1, 1):
            raise ValueError("v7 layout: the core_6 order is for 1x1 kernels only")
        if self.traversal is V7Traversal.SEQUENTIAL and self.ic != 1:
            raise ValueError("v7 layout: the sequential order needs exactly 1 input channel")
        if self.last_superblock_kernels < 1:
            raise ValueError(
                f"v7 layout: {self.superblocks} superblocks leave the last one empty "
                f"({self.kernels_per_core} kernels per core)"
            )

    @classmethod
    def for_job(
        cls,
        *,
        oc: int,
        ic: int,
        kh: int,
        kw: int,
        nn_cores: int,
        superblocks: int,
        zero_point: int,
        depthwise: bool = False,
        input_width: int = 0,
    ) -> V7Layout:
        """Mesa's choice of traversal for a lowered convolution (brief §3.1)."""
        if kh == kw == 1 and ic > 1 and oc >= POINTWISE6_MIN_OC:
            traversal = V7Traversal.POINTWISE6
        elif ic > 1:
            traversal = V7Traversal.INTERLEAVED
        else:
            traversal = V7Traversal.SEQUENTIAL
        split = traversal is V7Traversal.SEQUENTIAL and (depthwise or input_width > WIDE_INPUT)
        return cls(oc, ic, kh, kw, nn_cores, superblocks, traversal, zero_point, split)

    @property
    def cores_used(self) -> int:
        return min(self.oc, self.nn_cores)

    @property
    def kernels_per_core(self) -> int:
        return -(-self.oc // self.cores_used)

    @property
    def slots(self) -> int:
        return self.cores_used * self.kernels_per_core

    @property
    def kernel_size(self) -> int:
        return self.ic * self.kh * self.kw

    @property
    def superblock_kernels(self) -> int:
        """Kernels per core in every superblock but the last (Mesa: ceil(kpc / superblocks)):
        the NN configuration's ``kernels_per_core`` field."""
        return -(-self.kernels_per_core // self.superblocks)

    @property
    def last_superblock_kernels(self) -> int:
        return self.kernels_per_core - self.superblock_kernels * (self.superblocks - 1)

    @property
    def header_bytes(self) -> int:
        return align(self.nn_cores * 4, ALIGNMENT)


def superblocks_from_config(oc: int, nn_cores: int, config_kernels_per_core: int) -> int:
    """The superblock count a job configuration implies: every superblock but the last holds
    ``kernels_per_core`` (config) kernels per core, the last the rest (for the decoder)."""
    per_core = -(-oc // min(oc, nn_cores))
    return -(-per_core // config_kernels_per_core)


def kernel_walk(kh: int, kw: int, split: bool) -> np.ndarray:
    """Order of one kernel plane's kh*kw weights: rows in pairs; with ``split`` and kw > 3, a
    pair's first 3 columns come before the rest of the pair's columns (brief §3.1).

    Mesa bounds the second column loop by the kernel height, right only for square kernels; we
    use the width (the order is otherwise the same)."""
    grid = np.arange(kh * kw).reshape(kh, kw)
    if not split or kw <= SPLIT_COLUMNS:
        return grid.ravel()
    parts = []
    for top in range(0, kh, 2):
        rows = grid[top : top + 2]
        parts += [rows[:, :SPLIT_COLUMNS].ravel(), rows[:, SPLIT_COLUMNS:].ravel()]
    return np.concatenate(parts)


@dataclass(frozen=True, slots=True)
class StreamOrder:
    """Side fields and flushes of one layout; every core has the same structure."""

    length: int  # weights per core stream
    field_pos: np.ndarray  # [F] each field follows the weight at this position, bias first
    field_is_bias: np.ndarray  # [F]
    field_slot: np.ndarray  # [cores_used, F]
    break_pos: np.ndarray  # sorted positions followed by a flush (fields, flushes, the end)


def slot_place(layout: V7Layout, slots: np.ndarray) -> tuple[np.ndarray, ...]:
    """(core, superblock, kernel in superblock, kernels of the core in it) of each slot."""
    cu, full = layout.cores_used, layout.superblock_kernels
    sb = np.minimum(slots // (full * cu), layout.superblocks - 1)
    kis = np.where(sb == layout.superblocks - 1, layout.last_superblock_kernels, full)
    within = slots - sb * full * cu
    return within // kis, sb, within % kis, kis


def positions(layout: V7Layout, slots: np.ndarray, elements: np.ndarray) -> tuple[np.ndarray, ...]:
    """(core, stream position) of element ``elements`` (index into the kernel's [IC, KH, KW]
    weights) of each slot; arrays broadcast together."""
    core, sb, k, kis = slot_place(layout, slots)
    plane = layout.kh * layout.kw
    start = sb * layout.superblock_kernels * layout.kernel_size
    if layout.traversal is V7Traversal.POINTWISE6:
        block = min(layout.ic, POINTWISE_BLOCK)
        b = elements // block
        size = np.minimum(block, layout.ic - b * block)
        pos = start + kis * b * block + k * size + elements % block
        return tuple(np.broadcast_arrays(core, pos))
    split = layout.split_columns or layout.traversal is V7Traversal.INTERLEAVED
    walk_pos = np.argsort(kernel_walk(layout.kh, layout.kw, split))
    z = elements // plane
    pos = start + (z * kis + k) * plane + walk_pos[elements % plane]
    return tuple(np.broadcast_arrays(core, pos))


def stream_order(layout: V7Layout) -> StreamOrder:
    slots = np.arange(layout.slots)
    plane = layout.kh * layout.kw
    if layout.traversal is V7Traversal.POINTWISE6:
        last = layout.ic - 1
    else:
        split = layout.split_columns or layout.traversal is V7Traversal.INTERLEAVED
        last = (layout.ic - 1) * plane + int(kernel_walk(layout.kh, layout.kw, split)[-1])
    core, first_pos = positions(layout, slots, np.zeros_like(slots))
    _, last_pos = positions(layout, slots, np.full_like(slots, last))
    pos = np.concatenate([first_pos, last_pos])
    is_bias = np.repeat([True, False], layout.slots)
    slot = np.concatenate([slots, slots])
    fcore = np.concatenate([core, core])
    order = np.lexsort((~is_bias, pos, fcore))  # by core, then position, bias first
    nfields = 2 * layout.kernels_per_core
    field_slot = slot[order].reshape(layout.cores_used, nfields)
    field_pos = pos[order][:nfields]
    field_is_bias = is_bias[order][:nfields]
    length = layout.kernels_per_core * layout.kernel_size
    flushes = []
    if layout.traversal is V7Traversal.INTERLEAVED:
        kis = layout.last_superblock_kernels
        start = (layout.superblocks - 1) * layout.superblock_kernels * layout.kernel_size
        flushes = start + (np.arange(layout.ic) * kis + kis - 1) * plane + plane - 1
    breaks = np.unique(np.concatenate([field_pos, flushes, [length - 1]]).astype(np.int64))
    return StreamOrder(length, field_pos, field_is_bias, field_slot, breaks)


def _superblocks(layout: V7Layout):
    """(first slot, kernels per core) of every superblock."""
    full, cu = layout.superblock_kernels, layout.cores_used
    for sb in range(layout.superblocks):
        kis = layout.last_superblock_kernels if sb == layout.superblocks - 1 else full
        yield sb * full * cu, kis


def _walked(layout: V7Layout) -> np.ndarray:
    split = layout.split_columns or layout.traversal is V7Traversal.INTERLEAVED
    return kernel_walk(layout.kh, layout.kw, split)


def stream_values(layout: V7Layout, padded: np.ndarray) -> np.ndarray:
    """Every core's weights in stream order, [cores_used, length], from the slot-padded weights
    [slots, kernel_size]: reshapes and transposes of uint8 data, no index arrays."""
    cu, ic, plane = layout.cores_used, layout.ic, layout.kh * layout.kw
    walk = _walked(layout)
    parts = []
    for first, kis in _superblocks(layout):
        w = padded[first : first + cu * kis]
        if layout.traversal is V7Traversal.POINTWISE6:
            w = w.reshape(cu, kis, ic)
            block = min(ic, POINTWISE_BLOCK)
            whole = ic // block * block
            blocks = w[:, :, :whole].reshape(cu, kis, -1, block).transpose(0, 2, 1, 3)
            parts += [blocks.reshape(cu, -1), w[:, :, whole:].reshape(cu, -1)]
        else:
            w = w.reshape(cu, kis, ic, plane)[..., walk].transpose(0, 2, 1, 3)
            parts.append(w.reshape(cu, -1))
    return np.concatenate(parts, axis=1)


def stream_unvalues(layout: V7Layout, values: np.ndarray) -> np.ndarray:
    """Inverse of :func:`stream_values`: slot-padded weights [slots, kernel_size]."""
    cu, ic, plane = layout.cores_used, layout.ic, layout.kh * layout.kw
    unwalk = np.argsort(_walked(layout))
    padded = np.empty((layout.slots, layout.kernel_size), dtype=values.dtype)
    at = 0
    for first, kis in _superblocks(layout):
        part = values[:, at : at + kis * layout.kernel_size]
        at += kis * layout.kernel_size
        if layout.traversal is V7Traversal.POINTWISE6:
            block = min(ic, POINTWISE_BLOCK)
            whole = ic // block * block
            w = np.empty((cu, kis, ic), dtype=values.dtype)
            blocks = part[:, : kis * whole].reshape(cu, -1, kis, block).transpose(0, 2, 1, 3)
            w[:, :, :whole] = blocks.reshape(cu, kis, whole)
            w[:, :, whole:] = part[:, kis * whole :].reshape(cu, kis, ic - whole)
        else:
            w = part.reshape(cu, ic, kis, plane).transpose(0, 2, 1, 3)[..., unwalk]
        padded[first : first + cu * kis] = w.reshape(cu * kis, -1)
    return padded
