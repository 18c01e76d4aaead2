"""Weights and biases in the layouts the CNA and the DPU read (Mesa: ``rkt_coefs.c``).

**Values.** The MAC array multiplies int8 by int8. A tensor of type T is stored as
``q - o`` with ``o = T.hw_offset`` (0x80 for uint8, 0 for int8: rocket-nvdla.md §4, "the host
writes q - 0x80"). With ``x = q_in - o`` and ``w = q_w - o`` the wanted sum factors as
(rocket-nvdla.md §7, generalised from uint8 to any offset)::

    Σ (q_in - z_in)(q_w - z_w) = Σ x·w  +  (o - z_w)·Σ x  +  (o - z_in)·Σ (q_w - z_w)

The first term is the MAC array's, the second the DPU's OW stage (``BS_OW_OP = o - z_w``), and
the third is constant per output channel: :func:`biases` folds it into the bias, as Mesa's
``calculate_bias_correction()`` does.

**Weight layout** (rocket-nvdla.md §4): kernels in groups of ``WEIGHT_ATOMIC`` (32, the SoC
table's ``weight_atom``), input channels in groups of 32 (64 for depthwise), and inside a group
``[KH][KW][kernel][channel]``::

    [OC/32][IC/32][KH][KW][32 oc][32 ic]        direct
    [C/64][KH][KW][64 c]                        depthwise (one "kernel")

The kernel count is rounded up to even and the last kernel group holds only what is left (it is
not padded to 32). Input channels are padded to ``C_al = align(C, 16)`` (the feature atom) and
the last channel group holds what is left of ``C_al`` (16 when ``C_al`` is an odd number of
atoms). Padding channels hold the weight zero point, whose real value is 0; the OW stage adds
``(o - z_w)·x`` for them too, so a padding channel contributes ``x·(z_w - o + o - z_w) = 0``
whatever the padding channel of the feature map holds. Padding kernels hold 0. The reordering
is one pad, one reshape, one transpose and one mask (no loops).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...gallium.tensor import ElementType
from ...util.soc import RocketNpu

# rocket-nvdla.md §4: depthwise weights come in 64-channel groups (Mesa's
# input_channel_groups = 2 * WEIGHT_ATOMIC_SIZE).
DEPTHWISE_GROUP_FACTOR = 2


# rocket-nvdla.md §4: uint8 values are stored as q - 0x80 (the NPU computes in int8).
UINT8_OFFSET = 0x80


def hw_offset(dtype: ElementType) -> int:
    """What the host subtracts so the NPU sees int8: 0x80 for uint8 (§4), 0 for int8."""
    return UINT8_OFFSET if dtype is ElementType.UINT8 else 0


def align(x: int, a: int) -> int:
    return -(-x // a) * a


@dataclass(frozen=True, slots=True)
class WeightGeometry:
    """The sizes the CNA is programmed with (WEIGHT_SIZE0/1/2) and the stream length."""

    kernels: int  # WEIGHT_KERNELS: align(OC, 2), 1 for depthwise
    channels: int  # C_al, the input channels per kernel as stored
    kh: int
    kw: int
    bytes: int  # the packed stream

    @property
    def bytes_per_kernel(self) -> int:
        return self.kh * self.kw * self.channels


def geometry(npu: RocketNpu, shape: tuple[int, int, int, int], depthwise: bool) -> WeightGeometry:
    """Geometry of OHWI weights ``shape`` (1HWC for depthwise)."""
    oc, kh, kw, ic = shape
    channels = align(ic, npu.feature_atom_bytes)
    kernels = 1 if depthwise else align(oc, 2)
    total = kh * kw * channels * (1 if depthwise else kernels)
    return WeightGeometry(kernels, channels, kh, kw, total)


def _group_mask(sizes: tuple[int, ...], limits: tuple[int, ...], groups: tuple[int, ...]):
    """Boolean mask over a grouped index space: index < limit on every axis."""
    grids = np.meshgrid(*(np.arange(s) for s in sizes), indexing="ij", sparse=True)
    mask = np.ones(sizes, dtype=bool)
    for axis, limit in zip(groups, limits, strict=True):
        mask &= grids[axis] < limit
    return mask


def pack_weights(
    npu: RocketNpu, data: np.ndarray, dtype: ElementType, zero_point: int, depthwise: bool
) -> np.ndarray:
    """The weight stream (int8) of OHWI ``data`` (1HWC for depthwise), see module doc."""
    o = hw_offset(dtype)
    w = np.asarray(data, dtype=np.int16) - o
    oc, kh, kw, ic = w.shape
    atom, group = npu.feature_atom_bytes, npu.weight_atom
    c_al = align(ic, atom)
    pad_value = zero_point - o
    if depthwise:
        g = group * DEPTHWISE_GROUP_FACTOR
        c_full = align(c_al, g)
        planes = np.full((kh, kw, c_full), pad_value, dtype=np.int16)
        planes[..., :ic] = w[0]
        blocks = planes.reshape(kh, kw, c_full // g, g).transpose(2, 0, 1, 3)
        channel = np.arange(c_full).reshape(c_full // g, 1, 1, g)
        return blocks[np.broadcast_to(channel < c_al, blocks.shape)].astype(np.int8)
    kernels = align(oc, 2)
    oc_full, ic_full = align(kernels, group), align(c_al, group)
    full = np.zeros((oc_full, kh, kw, ic_full), dtype=np.int16)
    full[:oc, :, :, :] = pad_value
    full[:oc, :, :, :ic] = w
    blocks = full.reshape(oc_full // group, group, kh, kw, ic_full // group, group)
    blocks = blocks.transpose(0, 4, 2, 3, 1, 5)  # [oc1][ic1][kh][kw][oc2][ic2]
    kernel = np.arange(oc_full).reshape(-1, group)[:, None, None, None, :, None]
    channel = np.arange(ic_full).reshape(-1, group)[None, :, None, None, None, :]
    mask = np.broadcast_to((kernel < kernels) & (channel < c_al), blocks.shape)
    return blocks[mask].astype(np.int8)


def weight_sums(
    data: np.ndarray, zero_point: int, depthwise: bool, *, absolute: bool = False
) -> np.ndarray:
    """Σ (q_w - z_w) per output channel (Σ |q_w - z_w| with ``absolute``), int64."""
    w = np.asarray(data, dtype=np.int64) - zero_point
    if absolute:
        w = np.abs(w)
    return w.sum(axis=(0, 1, 2)) if depthwise else w.sum(axis=(1, 2, 3))


def biases(
    bias: np.ndarray | None,
    weights: np.ndarray,
    weight_zero_point: int,
    input_dtype: ElementType,
    input_zero_point: int,
    depthwise: bool,
) -> np.ndarray:
    """The int64 per-channel bias with the input zero-point term folded in (module doc):
    ``bias + (o - z_in)·Σ(q_w - z_w)``; Mesa's ``rkt_fill_biases`` with the correction."""
    sums = weight_sums(weights, weight_zero_point, depthwise)
    b = np.zeros(sums.shape, dtype=np.int64) if bias is None else np.asarray(bias, np.int64)
    return b.reshape(-1) + (hw_offset(input_dtype) - input_zero_point) * sums
