"""v7 (Amlogic A311D) coefficient buffer: the zero-run-length weight codec, encoder and decoder.

Mirrors the weight half of Mesa's ``etnaviv_ml_nn_v7.c`` (``write_core_6``,
``write_core_interleaved``, ``write_core_sequential``, ``calculate_zrl_bits``,
``etna_ml_create_coeffs_v7``); the facts are in ``etnaviv-ml.md`` §3.1. Our own code, vectorised:
a layer is never walked weight by weight in Python.

Buffer: a header of ``align(nn_cores * 4, 64)`` bytes whose word i is the byte size of core i's
stream (64-aligned, 0 for unused cores), then the streams back to back. A stream is LSB-first
bits in little-endian 32-bit words: 8 bits ``zrl_bits``, 16 bits kernels per core, then tokens
and raw 32-bit side fields, zero-padded to a word and then to 64 bytes.

A token is ``run`` (zrl_bits wide) then an 8-bit value: ``run`` weight zero points, then the
value. The encoder's rules (Mesa's ``wb_stream_write``/``wb_stream_flush_zeroes``): a zero point
only lengthens the pending run; another value is emitted with the run; once the run reaches
``2**zrl_bits - 1`` the next weight is emitted with that run whatever it is; a flush emits
``(run - 1, zero point)``. Flushes come before every side field (so no token straddles one),
after every input channel of the last superblock in the interleaved order, and at the end.

Side fields per kernel: after its first weight the bias with the input zero point folded in,
``bias - sum((w - wzp) * izp)`` (brief §3.1, inferred); after its last weight the output offset
(``oc * out_w * out_h``) or, for the v7 add trick, ``addition_offset``.

Deviation from Mesa, on purpose: in the column-split walk (kernels wider than 3) Mesa bounds the
second loop by the kernel *height*, which is only right for square kernels; we use the width.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .codec_bits import (
    WORD_BITS,
    WeightCompressionConfig,
    WeightStreamError,
    align,
    byte_windows,
    pack_fields,
    read_fields,
)

ALIGNMENT = 64  # header and per-core stream alignment in bytes (brief §3.1)
ZRL_FIELD_BITS = 8  # stream header: zrl_bits
KPC_FIELD_BITS = 16  # stream header: kernels per core
STREAM_HEADER_BITS = ZRL_FIELD_BITS + KPC_FIELD_BITS
VALUE_BITS = 8  # a token's value
SIDE_FIELD_BITS = 32  # raw bias / offset fields
POINTWISE_BLOCK = 6  # "core_6": input channels in blocks of min(IC, 6)
SPLIT_COLUMNS = 3  # column split of wide kernels: first 3 columns, then the rest
POINTWISE6_MIN_OC = 9  # Mesa: pointwise && output_channels > 8
DECODER_MAX_ZRL_BITS = 8  # our decoder's bound; the hardware's is hwdb NN_ZRL_BITS


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
        split = traversal is V7Traversal.SEQUENTIAL and (depthwise or input_width > 64)
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
        """Kernels per core in every superblock but the last (Mesa: ceil(kpc / superblocks))."""
        return -(-self.kernels_per_core // self.superblocks)

    @property
    def last_superblock_kernels(self) -> int:
        return self.kernels_per_core - self.superblock_kernels * (self.superblocks - 1)

    @property
    def header_bytes(self) -> int:
        return align(self.nn_cores * 4, ALIGNMENT)


@dataclass(frozen=True, slots=True)
class V7Encoded:
    data: bytes
    zrl_bits: int
    core_sizes: tuple[int, ...]  # bytes of each used core's stream (64-aligned)

    @property
    def cache_size(self) -> int:
        """Mesa's SRAM figure: the largest core stream times the cores used."""
        return max(self.core_sizes) * len(self.core_sizes)


@dataclass(frozen=True, slots=True)
class V7Decoded:
    weights: np.ndarray  # uint8 [slots, IC, KH, KW], slot order = output channel order
    bias_fields: np.ndarray  # int32 [slots], as stored (input zero point folded in)
    offsets: np.ndarray  # uint32 [slots]: output offsets, or the add trick's value
    zrl_bits: int


@dataclass(frozen=True, slots=True)
class _Plan:
    """Stream order of one layout, shared by every core (cores differ only in their slots)."""

    gather: np.ndarray  # [cores_used, L] index into the slot-padded flat weights
    field_pos: np.ndarray  # [F] the field follows the weight at this stream position
    field_is_bias: np.ndarray  # [F]
    field_slot: np.ndarray  # [cores_used, F]
    breaks: np.ndarray  # [L] bool: a flush follows this position


def kernel_walk(kh: int, kw: int, split: bool) -> np.ndarray:
    """Order of one kernel plane's kh*kw weights: rows in pairs; with ``split`` and kw > 3, a
    pair's first 3 columns come before the rest of the pair's columns (brief §3.1)."""
    grid = np.arange(kh * kw).reshape(kh, kw)
    if not split or kw <= SPLIT_COLUMNS:
        return grid.ravel()
    parts = []
    for top in range(0, kh, 2):
        rows = grid[top : top + 2]
        parts += [rows[:, :SPLIT_COLUMNS].ravel(), rows[:, SPLIT_COLUMNS:].ravel()]
    return np.concatenate(parts)


def _superblock_order(layout: V7Layout, kis: int, last: bool):
    """One core's order inside a superblock of ``kis`` kernels: (kernel, element) per position,
    the bias and offset positions per kernel, and the extra flush positions."""
    kernels = np.arange(kis)
    plane = layout.kh * layout.kw
    if layout.traversal is V7Traversal.POINTWISE6:
        ic = layout.ic
        block = min(ic, POINTWISE_BLOCK)
        sizes = [min(block, ic - start) for start in range(0, ic, block)]
        kk = np.concatenate([np.repeat(kernels, size) for size in sizes])
        starts = range(0, ic, block)
        ee = np.concatenate(
            [np.tile(a + np.arange(n), kis) for a, n in zip(starts, sizes, strict=True)]
        )
        last_start = kis * (ic - sizes[-1])
        bias = kernels * sizes[0]
        offset = last_start + kernels * sizes[-1] + sizes[-1] - 1
        return kk, ee, bias, offset, np.zeros(0, dtype=np.int64)
    if layout.traversal is V7Traversal.SEQUENTIAL:
        walk = kernel_walk(layout.kh, layout.kw, layout.split_columns)
        k = plane
        return (
            np.repeat(kernels, k),
            np.tile(walk, kis),
            kernels * k,
            kernels * k + k - 1,
            np.zeros(0, dtype=np.int64),
        )
    walk = kernel_walk(layout.kh, layout.kw, True)
    z = np.arange(layout.ic)
    kk = np.broadcast_to(kernels[None, :, None], (layout.ic, kis, plane)).ravel()
    ee = (z[:, None, None] * plane + walk[None, None, :] + 0 * kernels[None, :, None]).ravel()
    bias = kernels * plane
    offset = ((layout.ic - 1) * kis + kernels) * plane + plane - 1
    flushes = (z * kis + kis - 1) * plane + plane - 1 if last else np.zeros(0, dtype=np.int64)
    return kk, ee, bias, offset, flushes


def _plan(layout: V7Layout) -> _Plan:
    cores = np.arange(layout.cores_used)[:, None]
    full = layout.superblock_kernels
    gathers, pos, is_bias, slots, flush_pos = [], [], [], [], []
    start = 0
    for s in range(layout.superblocks):
        last = s == layout.superblocks - 1
        kis = layout.last_superblock_kernels if last else full
        kk, ee, bias, offset, flushes = _superblock_order(layout, kis, last)
        base = s * full * layout.cores_used + cores * kis  # [cores, 1]: first slot of the core
        gathers.append((base + kk[None, :]) * layout.kernel_size + ee[None, :])
        kernels = np.arange(kis)[None, :]
        pos += [bias + start, offset + start]
        is_bias += [np.ones(kis, dtype=bool), np.zeros(kis, dtype=bool)]
        slots += [base + kernels, base + kernels]
        flush_pos.append(flushes + start)
        start += kk.size
    field_pos = np.concatenate(pos)
    field_is_bias = np.concatenate(is_bias)
    order = np.argsort(2 * field_pos + ~field_is_bias, kind="stable")  # bias before offset
    breaks = np.zeros(start, dtype=bool)
    breaks[field_pos] = True
    breaks[np.concatenate(flush_pos)] = True
    breaks[-1] = True
    return _Plan(
        np.concatenate(gathers, axis=1),
        field_pos[order],
        field_is_bias[order],
        np.concatenate(slots, axis=1)[:, order],
        breaks,
    )


def plane_offsets(layout: V7Layout, plane_size: int) -> np.ndarray:
    """Mesa's output offsets: slot ``oc`` writes at ``oc * out_w * out_h``."""
    return (np.arange(layout.slots, dtype=np.uint64) * plane_size).astype(np.uint32)


def bias_fields(
    weights: np.ndarray, biases: np.ndarray, zero_point: int, input_zero_point: int
) -> np.ndarray:
    """``bias - sum((w - wzp) * izp)`` per kernel, wrapped to int32 (brief §3.1)."""
    w = weights.reshape(weights.shape[0], -1).astype(np.int64)
    corr = (w - zero_point).sum(axis=1) * input_zero_point
    return (np.asarray(biases, dtype=np.int64) - corr).astype(np.uint32).view(np.int32)


def restore_biases(
    decoded: V7Decoded, zero_point: int, input_zero_point: int, count: int
) -> np.ndarray:
    """Inverse of :func:`bias_fields` for the first ``count`` slots."""
    w = decoded.weights[:count].reshape(count, -1).astype(np.int64)
    corr = (w - zero_point).sum(axis=1) * input_zero_point
    return (decoded.bias_fields[:count].astype(np.int64) + corr).astype(np.uint32).view(np.int32)


@dataclass(frozen=True, slots=True)
class _Runs:
    """Zero-point statistics of a layer's streams, enough to size any zrl_bits."""

    values: np.ndarray  # [cores, L] weights in stream order
    before: np.ndarray  # [cores, L] zero points pending before each weight in its segment
    is_zp: np.ndarray
    literal_count: np.ndarray  # [cores] weights that are not the zero point
    run_core: np.ndarray  # core of every maximal zero-point run
    run_length: np.ndarray
    run_trailing: np.ndarray  # the run ends at a flush, not at a value


def _runs(values: np.ndarray, zero_point: int, breaks: np.ndarray) -> _Runs:
    is_zp = values == zero_point
    index = np.arange(values.shape[1])
    reset = np.ones_like(is_zp)
    reset[:, 1:] = ~is_zp[:, :-1] | breaks[None, :-1]
    before = index - np.maximum.accumulate(np.where(reset, index, 0), axis=1)
    next_is_value = np.ones_like(is_zp)
    next_is_value[:, :-1] = ~is_zp[:, 1:]
    ends = is_zp & (next_is_value | breaks[None, :])
    core, pos = np.nonzero(ends)
    return _Runs(
        values,
        before,
        is_zp,
        (~is_zp).sum(axis=1),
        core,
        before[core, pos] + 1,
        breaks[pos],
    )


def _stream_sizes(runs: _Runs, fields: int, zrl_bits: int) -> np.ndarray:
    """Bytes of every core stream (64-aligned) for ``zrl_bits``, from the run statistics."""
    period = 1 << zrl_bits  # a full token covers 2**zrl_bits weights
    per_run = runs.run_length // period + (runs.run_trailing & (runs.run_length % period != 0))
    tokens = runs.literal_count + np.bincount(
        runs.run_core, weights=per_run, minlength=runs.literal_count.size
    ).astype(np.int64)
    bits = STREAM_HEADER_BITS + tokens * (zrl_bits + VALUE_BITS) + SIDE_FIELD_BITS * fields
    words = -(-bits // WORD_BITS)
    return -(-words * 4 // ALIGNMENT) * ALIGNMENT


def choose_zrl_bits(
    runs: _Runs, fields: int, max_zrl_bits: int, config: WeightCompressionConfig, mesa_zrl: bool
) -> int:
    if not config.enabled:
        return 0
    sizes = {z: int(_stream_sizes(runs, fields, z).sum()) for z in range(max_zrl_bits + 1)}
    if config.search:
        return min(sizes, key=lambda z: (sizes[z], z))
    if not mesa_zrl:  # Mesa: pointwise and add jobs never use zero runs
        return 0
    best = max_zrl_bits  # Mesa: from the maximum down, stop as soon as the size grows
    for z in range(max_zrl_bits - 1, -1, -1):
        if sizes[z] > sizes[best]:
            break
        best = z
    return best


def encode_v7(
    weights: np.ndarray,
    biases: np.ndarray,
    offsets: np.ndarray,
    layout: V7Layout,
    *,
    input_zero_point: int,
    max_zrl_bits: int,
    config: WeightCompressionConfig = WeightCompressionConfig(),  # noqa: B008 (frozen)
    mesa_zrl: bool | None = None,
) -> V7Encoded:
    """Encode a layer's coefficient buffer.

    ``weights`` uint8 [OC, IC, KH, KW] in the hardware domain (signed weights already +128),
    ``biases`` int32 [OC], ``offsets`` uint32 [slots] (see :func:`plane_offsets`), the input zero
    point for the bias correction, and the hardware's ``max_zrl_bits`` (hwdb NN_ZRL_BITS).
    ``mesa_zrl`` says whether Mesa would try zero runs for this job (not for pointwise or add;
    default: not for 1x1 kernels); only ``config.search=False`` honours it.
    """
    weights = np.asarray(weights, dtype=np.uint8)
    expected = (layout.oc, layout.ic, layout.kh, layout.kw)
    if weights.shape != expected:
        raise ValueError(f"v7 encode: weights shape {weights.shape}, layout wants {expected}")
    if len(biases) != layout.oc or len(offsets) != layout.slots:
        raise ValueError(
            f"v7 encode: {len(biases)} biases and {len(offsets)} offsets for "
            f"{layout.oc} kernels in {layout.slots} slots"
        )
    padded = np.full((layout.slots, layout.kernel_size), layout.zero_point, dtype=np.uint8)
    padded[: layout.oc] = weights.reshape(layout.oc, -1)
    fields_bias = np.zeros(layout.slots, dtype=np.int32)
    fields_bias[: layout.oc] = bias_fields(weights, biases, layout.zero_point, input_zero_point)
    plan = _plan(layout)
    values = padded.ravel()[plan.gather]
    runs = _runs(values, layout.zero_point, plan.breaks)
    nfields = plan.field_pos.size
    if mesa_zrl is None:
        mesa_zrl = not (layout.kh == layout.kw == 1)
    zrl = choose_zrl_bits(runs, nfields, max_zrl_bits, config, mesa_zrl)
    sizes = _stream_sizes(runs, nfields, zrl)

    period = 1 << zrl
    token_bits = zrl + VALUE_BITS
    run_field = runs.before % period
    emit = ~runs.is_zp | (run_field == period - 1) | plan.breaks[None, :]
    emitted = np.cumsum(emit, axis=1)
    fields_before = np.searchsorted(plan.field_pos, np.arange(values.shape[1]), side="left")
    base = (layout.header_bytes + np.concatenate([[0], np.cumsum(sizes)[:-1]])) * 8
    core, pos = np.nonzero(emit)
    token_offsets = (
        base[core]
        + STREAM_HEADER_BITS
        + (emitted[core, pos] - 1) * token_bits
        + SIDE_FIELD_BITS * fields_before[pos]
    )
    token_values = run_field[core, pos].astype(np.uint64) | (
        values[core, pos].astype(np.uint64) << np.uint64(zrl)
    )
    field_index = np.arange(nfields)
    field_offsets = (
        base[:, None]
        + STREAM_HEADER_BITS
        + emitted[:, plan.field_pos] * token_bits
        + SIDE_FIELD_BITS * field_index[None, :]
    )
    slot_fields = np.where(
        plan.field_is_bias[None, :],
        fields_bias.view(np.uint32)[plan.field_slot],
        np.asarray(offsets, dtype=np.uint32)[plan.field_slot],
    )
    headers = np.full(layout.cores_used, zrl | (layout.kernels_per_core << ZRL_FIELD_BITS))
    total = layout.header_bytes + int(sizes.sum())
    body = pack_fields(
        np.concatenate([base, token_offsets, field_offsets.ravel()]),
        np.concatenate(
            [
                headers.astype(np.uint64),
                token_values,
                slot_fields.ravel().astype(np.uint64),
            ]
        ),
        total,
    )
    header_words = np.zeros(layout.nn_cores, dtype="<u4")
    header_words[: layout.cores_used] = sizes
    body[: header_words.nbytes] = header_words.view(np.uint8)
    return V7Encoded(body.tobytes(), zrl, tuple(int(s) for s in sizes))


def decode_v7(
    data: bytes | np.ndarray, layout: V7Layout, *, max_zrl_bits: int = DECODER_MAX_ZRL_BITS
) -> V7Decoded:
    """Decode a v7 coefficient buffer with only what the job configuration tells the hardware.

    Raises :class:`WeightStreamError` naming the core and bit offset for anything inconsistent:
    sizes past the buffer, a bad stream header, a token crossing a side field, a stream that
    ends early.
    """
    buf = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    buf = np.asarray(buf, dtype=np.uint8).ravel()
    header = layout.header_bytes
    if buf.size < header:
        raise WeightStreamError(f"buffer of {buf.size} bytes is shorter than its header")
    sizes = buf[: layout.nn_cores * 4].view("<u4").astype(np.int64)
    plan = _plan(layout)
    weights = np.full((layout.slots, layout.kernel_size), layout.zero_point, dtype=np.uint8)
    fields = np.zeros(plan.field_slot.shape, dtype=np.uint32)
    start = header
    zrl_seen = 0
    for core in range(layout.nn_cores):
        size = int(sizes[core])
        if core >= layout.cores_used:
            if size:
                raise WeightStreamError(
                    f"unused core {core} has a {size}-byte stream", bit_offset=core * 32
                )
            continue
        if size == 0 or size % ALIGNMENT:
            raise WeightStreamError(
                f"stream size {size} is not a positive multiple of {ALIGNMENT}",
                bit_offset=core * 32,
            )
        if start + size > buf.size:
            raise WeightStreamError(
                f"stream of {size} bytes at byte {start} runs past the {buf.size}-byte buffer",
                core=core,
                bit_offset=start * 8,
            )
        seq, fields[core], zrl_seen = _decode_core(
            buf[start : start + size], start * 8, plan, layout, core, max_zrl_bits
        )
        weights.ravel()[plan.gather[core]] = seq
        start += size
    bias = np.zeros(layout.slots, dtype=np.uint32)
    offs = np.zeros(layout.slots, dtype=np.uint32)
    is_bias = np.broadcast_to(plan.field_is_bias, fields.shape)
    bias[plan.field_slot[is_bias]] = fields[is_bias]
    offs[plan.field_slot[~is_bias]] = fields[~is_bias]
    return V7Decoded(
        weights.reshape(layout.slots, layout.ic, layout.kh, layout.kw),
        bias.view(np.int32),
        offs,
        zrl_seen,
    )


def _decode_core(
    stream: np.ndarray, base_bit: int, plan: _Plan, layout: V7Layout, core: int, max_zrl: int
) -> tuple[np.ndarray, np.ndarray, int]:
    windows = byte_windows(stream)
    nbits = stream.size * 8
    head = int(read_fields(windows, [0], STREAM_HEADER_BITS)[0])
    zrl = head & ((1 << ZRL_FIELD_BITS) - 1)
    kpc = head >> ZRL_FIELD_BITS
    if zrl > max_zrl:
        raise WeightStreamError(f"zrl_bits {zrl} above {max_zrl}", core=core, bit_offset=base_bit)
    if kpc != layout.kernels_per_core:
        raise WeightStreamError(
            f"stream says {kpc} kernels per core, the job {layout.kernels_per_core}",
            core=core,
            bit_offset=base_bit + ZRL_FIELD_BITS,
        )
    token_bits = zrl + VALUE_BITS
    run_mask = (1 << zrl) - 1
    starts = np.arange(STREAM_HEADER_BITS, max(nbits - token_bits + 1, STREAM_HEADER_BITS))
    counts = (read_fields(windows, starts, token_bits) & np.uint64(run_mask)).astype(np.int64) + 1
    # Token counts on each of the token_bits phases, as prefix sums: a segment of n weights
    # between side fields is then one binary search.
    prefix = [np.concatenate([[0], np.cumsum(counts[p::token_bits])]) for p in range(token_bits)]
    targets = np.append(plan.field_pos + 1, plan.gather.shape[1])
    seg_phase, seg_first, seg_end = [], [], []
    field_offsets = []
    offset, done = STREAM_HEADER_BITS, 0
    for index, target in enumerate(targets.tolist()):
        is_field = index < plan.field_pos.size
        need = target - done
        first, phase = divmod(offset - STREAM_HEADER_BITS, token_bits)
        sums = prefix[phase]
        if need:
            if first >= sums.size:
                raise WeightStreamError(
                    f"stream ends before weight {target}", core=core, bit_offset=base_bit + offset
                )
            want = sums[first] + need
            end = int(np.searchsorted(sums, want))
            if end >= sums.size:
                raise WeightStreamError(
                    f"stream ends before weight {target}", core=core, bit_offset=base_bit + offset
                )
            if sums[end] != want:
                where = STREAM_HEADER_BITS + phase + (end - 1) * token_bits
                raise WeightStreamError(
                    f"a zero run crosses the side field after weight {target}",
                    core=core,
                    bit_offset=base_bit + where,
                )
            seg_phase.append(phase)
            seg_first.append(first)
            seg_end.append(end)
            offset = STREAM_HEADER_BITS + phase + end * token_bits
        done = target
        if is_field:
            if offset + SIDE_FIELD_BITS > nbits:
                raise WeightStreamError(
                    "stream ends inside a side field", core=core, bit_offset=base_bit + offset
                )
            field_offsets.append(offset)
            offset += SIDE_FIELD_BITS
    lengths = np.asarray(seg_end, dtype=np.int64) - np.asarray(seg_first, dtype=np.int64)
    seg_start = STREAM_HEADER_BITS + np.asarray(seg_phase) + np.asarray(seg_first) * token_bits
    first_token = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ntokens = int(lengths.sum())
    token_offsets = np.repeat(seg_start, lengths) + token_bits * (
        np.arange(ntokens) - np.repeat(first_token, lengths)
    )
    tokens = read_fields(windows, token_offsets, token_bits)
    runs = (tokens & np.uint64(run_mask)).astype(np.int64)
    seq = np.full(plan.gather.shape[1], layout.zero_point, dtype=np.uint8)
    seq[np.cumsum(runs + 1) - 1] = (tokens >> np.uint64(zrl)).astype(np.uint8)
    fields = read_fields(windows, field_offsets, SIDE_FIELD_BITS).astype(np.uint32)
    return seq, fields, zrl
