"""CORE: the MAC array and the accumulator (NVDLA CMAC + CACC).

Direct convolution is one matrix product per task: the padded input is unfolded with stride
tricks (im2col; a plain reshape for 1x1 stride-1) and multiplied by the weight matrix in float64,
exact because every int8 x int8 sum stays far below 2^53. An extra all-ones weight column gives
the window sum of the input that the OW term needs in the same product. Depthwise convolution is
kh*kw shifted multiply-adds over the whole tile in float32, exact because a sum of at most 31*31
products of magnitude 2^14 stays below 2^24.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cna import CnaConfig


@dataclass(frozen=True, slots=True)
class MacResult:
    acc: np.ndarray  # int64 [oh, ow, out_c]: the MAC array's sums
    window_sum: np.ndarray | None  # int64 [oh, ow, 1] (direct) or [oh, ow, out_c] (depthwise)
    macs: int


def pad_input(cfg: CnaConfig, x: np.ndarray, oh: int, ow: int, dtype: type) -> np.ndarray:
    """The input with the pad value around it, exactly as large as the output needs: every tap
    outside the fetched cube reads PAD_VALUE (top/left from PAD_CON0, bottom/right implicit)."""
    hp = (oh - 1) * cfg.stride_y + cfg.kh
    wp = (ow - 1) * cfg.stride_x + cfg.kw
    xp = np.full((hp, wp, x.shape[2]), cfg.pad_value, dtype=dtype)
    rows = max(0, min(cfg.in_h, hp - cfg.pad_top))
    cols = max(0, min(cfg.in_w, wp - cfg.pad_left))
    if rows and cols:
        xp[cfg.pad_top : cfg.pad_top + rows, cfg.pad_left : cfg.pad_left + cols] = x[:rows, :cols]
    return xp


def weight_matrix(weights: np.ndarray, with_sum: bool) -> np.ndarray:
    """``[K, kh, kw, C]`` int8 -> float64 ``[kh*kw*C, K (+1)]``; the extra column is all ones."""
    k = weights.shape[0]
    flat = weights.reshape(k, -1)
    out = np.empty((flat.shape[1], k + with_sum), dtype=np.float64)
    out[:, :k] = flat.T
    if with_sum:
        out[:, k] = 1.0
    return out


def direct(
    cfg: CnaConfig, x: np.ndarray, wmat: np.ndarray, with_sum: bool, oh: int, ow: int, out_c: int
) -> MacResult:
    """Direct convolution of ``x`` ``[in_h, in_w, C]`` by the weight matrix."""
    xp = pad_input(cfg, x, oh, ow, np.float64)
    c = xp.shape[2]
    sy, sx = cfg.stride_y, cfg.stride_x
    if cfg.kh == cfg.kw == sy == sx == 1:
        cols = xp.reshape(oh * ow, c)
    else:
        e = xp.itemsize
        wp = xp.shape[1]
        cols = np.lib.stride_tricks.as_strided(
            xp,
            (oh, ow, cfg.kh, cfg.kw, c),
            (sy * wp * c * e, sx * c * e, wp * c * e, c * e, e),
            writeable=False,
        ).reshape(oh * ow, cfg.kh * cfg.kw * c)
    res = cols @ wmat
    k = cfg.kernels
    acc = np.zeros((oh * ow, out_c), dtype=np.int64)
    n = min(k, out_c)
    acc[:, :n] = res[:, :n]
    window_sum = res[:, k].astype(np.int64).reshape(oh, ow, 1) if with_sum else None
    return MacResult(acc.reshape(oh, ow, out_c), window_sum, oh * ow * cfg.kh * cfg.kw * c * k)


def depthwise(
    cfg: CnaConfig, x: np.ndarray, weights: np.ndarray, with_sum: bool, oh: int, ow: int, out_c: int
) -> MacResult:
    """Depthwise convolution: channel c of the output from channel c of the input only."""
    xp = pad_input(cfg, x, oh, ow, np.float32)
    c = xp.shape[2]
    sy, sx = cfg.stride_y, cfg.stride_x
    w = weights.astype(np.float32)
    acc = np.zeros((oh, ow, c), dtype=np.float32)
    total = np.zeros((oh, ow, c), dtype=np.float32) if with_sum else None
    tmp = np.empty_like(acc)
    for ky in range(cfg.kh):
        for kx in range(cfg.kw):
            tap = xp[ky : ky + (oh - 1) * sy + 1 : sy, kx : kx + (ow - 1) * sx + 1 : sx]
            np.multiply(tap, w[ky, kx], out=tmp)
            acc += tmp
            if total is not None:
                total += tap
    n = min(c, out_c)
    out = np.zeros((oh, ow, out_c), dtype=np.int64)
    out[:, :, :n] = acc[:, :, :n]
    window_sum = None
    if total is not None:
        window_sum = np.zeros((oh, ow, out_c), dtype=np.int64)
        window_sum[:, :, :n] = total[:, :, :n]
    return MacResult(out, window_sum, oh * ow * cfg.kh * cfg.kw * c)
