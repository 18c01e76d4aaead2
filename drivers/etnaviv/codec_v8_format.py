"""The v8 coefficient buffer format: layout, constants, code book and byte classes.

Shared by the encoder (``codec_v8``) and the decoder (``codec_v8_decode``); the format itself is
described in ``codec_v8``'s docstring. Facts from ``etnaviv-ml.md`` §3.2 and Mesa's
``etnaviv_ml_nn_v8.c`` (``struct etna_nn_header_v8``, ``huffman_code``, ``encode_superblock``,
``fill_weights``, ``calculate_bias_correction``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import codec_v8_search as search

# struct etna_nn_header_v8 (brief §3.2): byte offsets of its fields.
HEADER_BYTES = 64
FLAGS_OFFSET = 0  # bit 0 precode, 1 bit16, 2 fp16, 3 reserved, 7:4 version
VERSION_SHIFT = 4
RUN_SIZE_OFFSET = 1  # run_length_size
RUN_TABLE_OFFSET = 2  # run_length_table[18]
SYMBOL_MAP_OFFSET = 20  # u32, 4 bits per symbol
AVG_BIAS_OFFSET = 24  # u16 avg_bias, then u16 reserved
STREAM_SIZES_OFFSET = 28  # byte offset of the per-core stream lengths in the header
SYMBOL_BITS = 4
MAX_CORES = (HEADER_BYTES - STREAM_SIZES_OFFSET) // 4
STREAM_ALIGN_BITS = 512
BLOCK = 9  # weights per interleave block
RUN_TABLE_LEN = 18
VERSION = 1  # Mesa writes version 1
COUNT_BYTES = 2  # u16 kernel count at the start of each core stream
DRAIN_PAIRS = 2
PAIR_CODE_BITS = 6  # two 3-bit codes
ODD_FLAG = 4  # dummy code of the drain pairs when the byte count was odd
BIAS_INPUT_OFFSET = 128  # v8 treats activations as signed: x - 128 (brief §3.2)
CLASSES = search.CLASSES
VERBATIM_CLASS = CLASSES - 1
VERBATIM_BITS = 8

# Fixed code book per symbol (brief §3.2; bits LSB-first in the stream).
PART0 = np.array([0, 1, 7, 3, 6, 2, 2, 2], dtype=np.int64)
PART1 = np.array([0, 0, 0, 0, 0, 1, 2, 0], dtype=np.int64)
PART1_BITS = np.array([0, 0, 0, 0, 0, 2, 2, 2], dtype=np.int64)
FREE = np.array([1, 1, 0, 0, 0, 1, 0, 0], dtype=np.int64)
FREE_SHIFT = np.array([2, 2, 0, 0, 0, 1, 0, 0], dtype=np.int64)  # in part0 (0, 1), part1 (5)
PART0_CODED = 2  # a 3-bit code that needs its 2-bit code to name the symbol


def _byte_tables() -> dict[str, np.ndarray]:
    """Class and payload of every byte, in both modes, and the inverse tables."""
    b = np.arange(256, dtype=np.int64)
    sign = b >> 7
    folded = np.where(sign == 1, 255 - b, b)  # plain mode: ~b for negatives
    length = np.where(folded > 0, np.floor(np.log2(np.maximum(folded, 1))).astype(int) + 1, 0)
    rest = folded - np.where(length > 0, 1 << np.maximum(length - 1, 0), 0)
    plain_pay = np.where(length > 0, (rest << 1) | sign, sign)
    magnitude = np.where(sign == 1, 256 - b, b)  # zero-run mode: magnitude (1..128)
    mlen = np.where(magnitude > 0, np.floor(np.log2(np.maximum(magnitude, 1))).astype(int) + 1, 0)
    mrest = magnitude - np.where(mlen > 0, 1 << np.maximum(mlen - 1, 0), 0)
    verbatim = (mlen >= VERBATIM_CLASS) | (b == 0)
    zrl_cls = np.where(verbatim, VERBATIM_CLASS, mlen)
    zrl_pay = np.where(verbatim, b, (mrest << 1) | sign)
    plain_dec = np.zeros((CLASSES, 256), dtype=np.int64)
    plain_dec[length, plain_pay] = b
    zrl_dec = np.zeros((CLASSES, 256), dtype=np.int64)
    zrl_dec[zrl_cls, zrl_pay] = b
    tables = {
        "plain_cls": length,
        "plain_pay": plain_pay,
        "plain_bits": np.array([1, 1, 2, 3, 4, 5, 6, 7], dtype=np.int64),  # class 0: sign bit
        "zrl_cls": zrl_cls,
        "zrl_pay": zrl_pay,
        "plain_dec": plain_dec,
        "zrl_dec": zrl_dec,
    }
    for table in tables.values():
        table.setflags(write=False)
    return tables


BYTE_TABLES = _byte_tables()


def payload_bits(run_index_bits: int) -> np.ndarray:
    """Payload bits of each class: plain mode (R = 0) or zero-run mode with R index bits."""
    if run_index_bits == 0:
        return BYTE_TABLES["plain_bits"]
    return np.array([run_index_bits, 1, 2, 3, 4, 5, 6, VERBATIM_BITS], dtype=np.int64)


@dataclass(frozen=True, slots=True)
class V8Layout:
    """What the hardware knows of a v8 coefficient buffer from the NN job configuration.

    Depthwise jobs (hardware depthwise) code each channel's kh*kw weights alone: ``ic`` is 1.
    """

    oc: int
    ic: int
    kh: int
    kw: int
    nn_cores: int
    superblocks: int
    zero_point: int
    depthwise: bool = False

    def __post_init__(self) -> None:
        for name in ("oc", "ic", "kh", "kw", "nn_cores", "superblocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"v8 layout: {name} must be >= 1, got {getattr(self, name)}")
        if self.nn_cores > MAX_CORES:
            raise ValueError(f"v8 layout: the header holds {MAX_CORES} cores, not {self.nn_cores}")
        if self.depthwise and self.ic != 1:
            raise ValueError("v8 layout: depthwise kernels are coded with ic = 1")
        if not 0 <= self.zero_point <= 255:
            raise ValueError(f"v8 layout: zero point {self.zero_point} outside 0..255")
        channels = self.channel_order()[0]
        if not np.array_equal(np.sort(channels[channels >= 0]), np.arange(self.oc)):
            raise ValueError(
                f"v8 layout: {self.superblocks} superblocks on {self.nn_cores} cores do not "
                f"assign each of the {self.oc} kernels once"
            )

    @property
    def cores_used(self) -> int:
        return min(self.oc, self.nn_cores)

    @property
    def superblock_kernels(self) -> int:
        """Kernels per core in a full superblock: the NN configuration's ``kernels_per_core``
        (Mesa: ceil(ceil(OC / cores) / superblocks), the same number)."""
        return -(-self.oc // (self.nn_cores * self.superblocks))

    @property
    def kernel_size(self) -> int:
        return self.ic * self.kh * self.kw

    @property
    def block_len(self) -> int:
        if self.depthwise:
            return -(-max(self.kernel_size, BLOCK) // BLOCK) * BLOCK
        return BLOCK

    @property
    def blocks(self) -> int:
        return -(-self.kernel_size // self.block_len)

    def core_kernels(self) -> np.ndarray:
        """Kernel count written at the start of each core stream (Mesa ``fill_weights``)."""
        cores = np.arange(self.cores_used)
        return self.oc // self.cores_used + (cores < self.oc % self.cores_used)

    def channel_order(self) -> tuple[np.ndarray, np.ndarray]:
        """Output channel of every (core, superblock, kernel) slot, -1 when absent, and the
        kernels of each (core, superblock)."""
        cu, sb = self.cores_used, self.superblocks
        full = -(-self.oc // (self.nn_cores * sb))
        rem = self.oc - cu * (sb - 1) * full
        if rem < 0:
            return np.full((cu, sb, 1), -1), np.zeros((cu, sb), dtype=np.int64)
        cores = np.arange(cu)[:, None, None]
        sbs = np.arange(sb)[None, :, None]
        k = np.arange(max(full, 1))[None, None, :]
        kis = np.full((cu, sb), full, dtype=np.int64)
        kis[:, -1] = rem // cu + (np.arange(cu) < rem % cu)
        if self.depthwise:
            oc = cu - cores - 1 + cu * full * sbs + k * self.nn_cores
            tail = self.oc % self.nn_cores
            if self.oc >= self.nn_cores and self.oc > 1:
                oc = np.where(oc >= self.oc - tail, oc - (self.nn_cores - tail), oc)
        else:
            first = np.where(
                sbs < sb - 1,
                sbs * full * cu + cores * full,
                (sb - 1) * full * cu
                + np.concatenate([[0], np.cumsum(kis[:, -1])[:-1]])[:, None, None],
            )
            oc = first + k
        return np.where(k < kis[:, :, None], oc, -1), kis


@dataclass(frozen=True, slots=True)
class V8Decoded:
    weights: np.ndarray  # uint8 [OC, IC, KH, KW]
    bias_fields: np.ndarray  # int32 [OC], as stored
    symbol_map: tuple[int, ...]
    run_lengths: tuple[int, ...]


def bias_fields(
    weights: np.ndarray, biases: np.ndarray, zero_point: int, input_zero_point: int
) -> np.ndarray:
    """``bias + sum((w - wzp) * (128 - izp))`` per kernel, wrapped to int32 (brief §3.2)."""
    w = weights.reshape(weights.shape[0], -1).astype(np.int64)
    corr = (w - zero_point).sum(axis=1) * (BIAS_INPUT_OFFSET - input_zero_point)
    return (np.asarray(biases, dtype=np.int64) + corr).astype(np.uint32).view(np.int32)


def restore_biases(decoded: V8Decoded, zero_point: int, input_zero_point: int) -> np.ndarray:
    """Inverse of :func:`bias_fields`."""
    w = decoded.weights.reshape(decoded.weights.shape[0], -1).astype(np.int64)
    corr = (w - zero_point).sum(axis=1) * (BIAS_INPUT_OFFSET - input_zero_point)
    return (decoded.bias_fields.astype(np.int64) - corr).astype(np.uint32).view(np.int32)


def superblocks_from_config(oc: int, nn_cores: int, config_kernels_per_core: int) -> int:
    """The superblock count a job configuration implies (for the decoder). A count that leaves
    the last superblock empty gives the same stream as this one."""
    per_core = -(-oc // nn_cores)
    return -(-per_core // config_kernels_per_core)


def split_streams(layout: V8Layout, padded: np.ndarray) -> list[np.ndarray]:
    """Each core's weight bytes in stream order, from the block-padded kernels
    [OC, blocks, block_len]: superblock after superblock, blocks interleaved over its kernels."""
    channels, kis = layout.channel_order()
    sb = layout.superblocks
    full = channels[:, : sb - 1]  # [cores, sb - 1, full]: every slot valid
    head = padded[full].transpose(0, 1, 3, 2, 4).reshape(layout.cores_used, -1)
    out = []
    for core in range(layout.cores_used):
        last = channels[core, -1, : kis[core, -1]]
        out.append(np.concatenate([head[core], padded[last].transpose(1, 0, 2).ravel()]))
    return out


def join_streams(layout: V8Layout, bodies: list[np.ndarray]) -> np.ndarray:
    """Inverse of :func:`split_streams`."""
    channels, kis = layout.channel_order()
    sb, nb, bl = layout.superblocks, layout.blocks, layout.block_len
    padded = np.zeros((layout.oc, nb, bl), dtype=np.uint8)
    full = channels[:, : sb - 1]
    per_core_head = full[0].size * nb * bl
    for core, body in enumerate(bodies):
        head = body[:per_core_head].reshape(sb - 1, nb, full.shape[2], bl)
        padded[full[core]] = head.transpose(0, 2, 1, 3)
        last = channels[core, -1, : kis[core, -1]]
        padded[last] = body[per_core_head:].reshape(nb, last.size, bl).transpose(1, 0, 2)
    return padded


def stream_lengths(layout: V8Layout) -> np.ndarray:
    """Weight bytes of each core's stream."""
    _, kis = layout.channel_order()
    return kis.sum(axis=1) * layout.blocks * layout.block_len
