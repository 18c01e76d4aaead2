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

The stream order (which weight goes where) lives in ``codec_v7_order``. The encoder works on
*events*, the stream positions that end a token (weights other than the zero point, and flush
positions): everything between two events is the zero point, so a depthwise convolution that v7
expands to a dense one (brief §1) is encoded from its kh*kw weights per channel
(:func:`encode_v7_depthwise`) in time proportional to the tokens, not to OC*OC*kh*kw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .codec_bits import (
    WORD_BITS,
    WeightCompressionConfig,
    WeightStreamError,
    byte_windows,
    new_words,
    pack_fields,
    pack_sorted,
    read_fields,
    words_to_bytes,
)
from .codec_v7_order import (
    ALIGNMENT,
    KPC_FIELD_BITS,
    StreamOrder,
    V7Layout,
    V7Traversal,
    positions,
    stream_order,
    stream_unvalues,
    stream_values,
    superblocks_from_config,
)

__all__ = [
    "DECODER_MAX_ZRL_BITS",
    "V7Decoded",
    "V7Encoded",
    "V7Layout",
    "V7Traversal",
    "bias_fields",
    "decode_v7",
    "encode_v7",
    "encode_v7_depthwise",
    "expand_depthwise",
    "plane_offsets",
    "restore_biases",
    "superblocks_from_config",
]

ZRL_FIELD_BITS = 8  # stream header: zrl_bits
STREAM_HEADER_BITS = ZRL_FIELD_BITS + KPC_FIELD_BITS
VALUE_BITS = 8  # a token's value
SIDE_FIELD_BITS = 32  # raw bias / offset fields
SIDE_FIELD_BYTES = SIDE_FIELD_BITS // 8
DECODER_MAX_ZRL_BITS = 8  # our decoder's bound; the hardware's is hwdb NN_ZRL_BITS


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


def plane_offsets(layout: V7Layout, plane_size: int) -> np.ndarray:
    """Mesa's output offsets: slot ``oc`` writes at ``oc * out_w * out_h``."""
    return (np.arange(layout.slots, dtype=np.uint64) * plane_size).astype(np.uint32)


def _wrap32(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).astype(np.uint32).view(np.int32)


def bias_fields(
    weights: np.ndarray, biases: np.ndarray, zero_point: int, input_zero_point: int
) -> np.ndarray:
    """``bias - sum((w - wzp) * izp)`` per kernel, wrapped to int32 (brief §3.1)."""
    w = weights.reshape(weights.shape[0], -1).astype(np.int64)
    return _wrap32(np.asarray(biases, np.int64) - (w - zero_point).sum(axis=1) * input_zero_point)


def restore_biases(
    decoded: V7Decoded, zero_point: int, input_zero_point: int, count: int
) -> np.ndarray:
    """Inverse of :func:`bias_fields` for the first ``count`` slots."""
    w = decoded.weights[:count].reshape(count, -1).astype(np.int64)
    corr = (w - zero_point).sum(axis=1) * input_zero_point
    return _wrap32(decoded.bias_fields[:count].astype(np.int64) + corr)


def expand_depthwise(weights: np.ndarray, zero_point: int) -> np.ndarray:
    """The dense [OC, OC, KH, KW] kernel of a depthwise [OC, 1, KH, KW] one: channel oc holds
    its weights in input channel oc, the zero point elsewhere (Mesa ``expand_depthwise``)."""
    oc = weights.shape[0]
    dense = np.full((oc, oc, *weights.shape[2:]), zero_point, dtype=np.uint8)
    dense[np.arange(oc), np.arange(oc)] = weights[:, 0]
    return dense


@dataclass(frozen=True, slots=True)
class _Events:
    """Positions that end a token, sorted by core then position; the ``gap`` zero points
    before each (since the previous event of its core) are its pending run."""

    core: np.ndarray
    pos: np.ndarray
    value: np.ndarray
    gap: np.ndarray
    per_core: np.ndarray
    gap_core: np.ndarray  # core of every event with a nonzero gap
    gap_len: np.ndarray  # its gap


def _events(core, pos, value, order: StreamOrder, layout: V7Layout) -> _Events:
    """Events from the (core, position, value) of the weights other than the zero point."""
    cores = np.repeat(np.arange(layout.cores_used), order.break_pos.size)
    breaks = np.tile(order.break_pos, layout.cores_used)
    keys = np.concatenate([core * order.length + pos, cores * order.length + breaks])
    values = np.concatenate([value, np.full(breaks.size, layout.zero_point, dtype=np.uint8)])
    sort = np.argsort(keys, kind="stable")  # a weight before the flush at the same position
    keys, values = keys[sort], values[sort]
    first = np.ones(keys.size, dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    keys, values = keys[first], values[first]
    return _events_sorted(keys // order.length, keys % order.length, values, layout)


def _events_sorted(core, pos, value, layout: V7Layout) -> _Events:
    per_core = np.bincount(core, minlength=layout.cores_used)
    prev = np.empty_like(pos)
    prev[1:] = pos[:-1]
    starts = np.concatenate([[0], np.cumsum(per_core)[:-1]])
    prev[starts] = -1
    gap = pos - prev - 1
    some = np.flatnonzero(gap)
    return _Events(core, pos, value, gap, per_core, core[some], gap[some])


def _dense_events(values: np.ndarray, order: StreamOrder, layout: V7Layout) -> _Events:
    mask = values != layout.zero_point
    mask[:, order.break_pos] = True
    core, pos = np.nonzero(mask)
    return _events_sorted(core, pos, values[core, pos], layout)


def _stream_sizes(events: _Events, nfields: int, zrl_bits: int) -> np.ndarray:
    """Bytes of every core stream (64-aligned): an event costs gap // 2**zrl_bits full tokens
    of 2**zrl_bits - 1 zero points plus its own token."""
    full = np.bincount(
        events.gap_core, weights=events.gap_len >> zrl_bits, minlength=events.per_core.size
    ).astype(np.int64)
    tokens = events.per_core + full
    bits = STREAM_HEADER_BITS + tokens * (zrl_bits + VALUE_BITS) + SIDE_FIELD_BITS * nfields
    word_bytes = -(-bits // WORD_BITS) * (WORD_BITS // 8)
    return -(-word_bytes // ALIGNMENT) * ALIGNMENT


def choose_zrl_bits(
    events: _Events, nfields: int, max_zrl_bits: int, config: WeightCompressionConfig, mesa: bool
) -> int:
    """zrl_bits per ``config``; ``mesa`` says whether Mesa would try zero runs at all."""
    if not config.enabled:
        return 0
    sizes = [int(_stream_sizes(events, nfields, z).sum()) for z in range(max_zrl_bits + 1)]
    if config.search:
        return int(np.argmin(sizes))  # the smallest; ties to fewer bits
    if not mesa:  # Mesa: pointwise and add jobs never use zero runs
        return 0
    best = max_zrl_bits  # Mesa: from the maximum down, stop as soon as the size grows
    for z in range(max_zrl_bits - 1, -1, -1):
        if sizes[z] > sizes[best]:
            break
        best = z
    return best


def _check(weights: np.ndarray, shape: tuple[int, ...], biases, offsets, layout: V7Layout) -> None:
    if weights.shape != shape:
        raise ValueError(f"v7 encode: weights shape {weights.shape}, expected {shape}")
    if len(biases) != layout.oc or len(offsets) != layout.slots:
        raise ValueError(
            f"v7 encode: {len(biases)} biases and {len(offsets)} offsets for "
            f"{layout.oc} kernels in {layout.slots} slots"
        )


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
    force_zrl: int | None = None,
) -> V7Encoded:
    """Encode a layer's coefficient buffer.

    ``weights`` uint8 [OC, IC, KH, KW] in the hardware domain (signed weights already +128),
    ``biases`` int32 [OC], ``offsets`` uint32 [slots] (see :func:`plane_offsets`), the input zero
    point for the bias correction, and the hardware's ``max_zrl_bits`` (hwdb NN_ZRL_BITS).
    ``mesa_zrl`` says whether Mesa would try zero runs for this job (not for pointwise or add;
    default: not for 1x1 kernels); only ``config.search=False`` honours it. ``force_zrl``
    imposes a zrl_bits (0..8) instead of choosing one.
    """
    weights = np.asarray(weights, dtype=np.uint8)
    _check(weights, (layout.oc, layout.ic, layout.kh, layout.kw), biases, offsets, layout)
    padded = np.full((layout.slots, layout.kernel_size), layout.zero_point, dtype=np.uint8)
    padded[: layout.oc] = weights.reshape(layout.oc, -1)
    order = stream_order(layout)
    values = stream_values(layout, padded)
    events = _dense_events(values, order, layout)
    fields = bias_fields(weights, biases, layout.zero_point, input_zero_point)
    return _encode(
        events,
        order,
        layout,
        fields,
        offsets,
        max_zrl_bits,
        config,
        mesa_zrl,
        lambda: values,
        force_zrl,
    )


def encode_v7_depthwise(
    weights: np.ndarray,
    biases: np.ndarray,
    offsets: np.ndarray,
    layout: V7Layout,
    *,
    input_zero_point: int,
    max_zrl_bits: int,
    config: WeightCompressionConfig = WeightCompressionConfig(),  # noqa: B008 (frozen)
    mesa_zrl: bool | None = None,
    force_zrl: int | None = None,
) -> V7Encoded:
    """:func:`encode_v7` of ``expand_depthwise(weights)``, byte for byte, from the depthwise
    weights [OC, 1, KH, KW] alone (``layout.ic`` is OC, the expanded input channels)."""
    weights = np.asarray(weights, dtype=np.uint8)
    _check(weights, (layout.oc, 1, layout.kh, layout.kw), biases, offsets, layout)
    if layout.ic != layout.oc:
        raise ValueError(f"v7 encode: expanded depthwise needs ic == oc, got {layout.ic}")
    plane = layout.kh * layout.kw
    slots = np.arange(layout.oc)[:, None]
    core, pos = positions(layout, slots, slots * plane + np.arange(plane)[None, :])
    flat = weights.reshape(layout.oc, plane)
    keep = flat != layout.zero_point
    order = stream_order(layout)
    events = _events(core[keep], pos[keep], flat[keep], order, layout)
    fields = bias_fields(weights, biases, layout.zero_point, input_zero_point)

    def dense() -> np.ndarray:  # only when every weight is a byte of its own (zrl_bits 0)
        padded = np.full((layout.slots, layout.kernel_size), layout.zero_point, dtype=np.uint8)
        padded[: layout.oc] = expand_depthwise(weights, layout.zero_point).reshape(layout.oc, -1)
        return stream_values(layout, padded)

    return _encode(
        events, order, layout, fields, offsets, max_zrl_bits, config, mesa_zrl, dense, force_zrl
    )


def _encode(
    events: _Events,
    order: StreamOrder,
    layout: V7Layout,
    fields_bias: np.ndarray,
    offsets: np.ndarray,
    max_zrl_bits: int,
    config: WeightCompressionConfig,
    mesa_zrl: bool | None,
    dense: Callable[[], np.ndarray],
    force_zrl: int | None,
) -> V7Encoded:
    nfields = order.field_pos.size
    if mesa_zrl is None:
        mesa_zrl = not (layout.kh == layout.kw == 1)
    zrl = (
        force_zrl
        if force_zrl is not None
        else (choose_zrl_bits(events, nfields, max_zrl_bits, config, mesa_zrl))
    )
    sizes = _stream_sizes(events, nfields, zrl)
    bias = np.zeros(layout.slots, dtype=np.uint32)
    bias[: layout.oc] = fields_bias.view(np.uint32)
    field_values = np.where(
        order.field_is_bias[None, :],
        bias[order.field_slot],
        np.asarray(offsets, dtype=np.uint32)[order.field_slot],
    )
    header_words = np.zeros(layout.nn_cores, dtype="<u4")
    header_words[: layout.cores_used] = sizes
    if zrl == 0:
        body = _plain_streams(dense(), order, layout, field_values, int(sizes[0]))
    else:
        body = _token_streams(events, order, layout, field_values, zrl, sizes)
    head = np.zeros(layout.header_bytes, dtype=np.uint8)
    head[: header_words.nbytes] = header_words.view(np.uint8)
    return V7Encoded(head.tobytes() + body.tobytes(), zrl, tuple(int(s) for s in sizes))


def _plain_streams(values, order: StreamOrder, layout: V7Layout, field_values, size: int):
    """zrl_bits 0: every token is one byte, so the stream is byte-aligned after its 3-byte
    header; build it by inserting the side fields' bytes, no bit packing."""
    cu = layout.cores_used
    header = np.array([layout.kernels_per_core << ZRL_FIELD_BITS], dtype="<u4")  # zrl_bits 0
    head = header.view(np.uint8)[: STREAM_HEADER_BITS // 8]
    field_bytes = np.ascontiguousarray(field_values, dtype="<u4").view(np.uint8)
    at = np.repeat(order.field_pos + 1, SIDE_FIELD_BYTES)
    stream = np.insert(values, at, field_bytes, axis=1)
    out = np.zeros((cu, size), dtype=np.uint8)
    out[:, :3] = head
    out[:, 3 : 3 + stream.shape[1]] = stream
    return out.ravel()


def _token_streams(events: _Events, order: StreamOrder, layout, field_values, zrl, sizes):
    token_bits = zrl + VALUE_BITS
    full_run = (1 << zrl) - 1
    # Each event: gap >> zrl full tokens (2**zrl - 1 zero points, then one more), then its own.
    count = (events.gap >> zrl) + 1
    ends = np.cumsum(count)
    per_core = np.bincount(events.core, weights=count, minlength=layout.cores_used)
    core_first = np.concatenate([[0], np.cumsum(per_core)[:-1]]).astype(np.int64)
    ntokens = int(ends[-1])
    owner = np.repeat(np.arange(count.size), count)
    values = np.full(ntokens, full_run | (layout.zero_point << zrl), dtype=np.uint64)
    values[ends - 1] = (events.gap & full_run) | (events.value.astype(np.int64) << zrl)
    owner_core = events.core[owner]
    rank = np.arange(ntokens) - core_first[owner_core]
    fields_before = np.searchsorted(order.field_pos, events.pos, side="left")
    base = np.concatenate([[0], np.cumsum(sizes)[:-1]]) * 8
    token_offsets = (
        base[owner_core]
        + STREAM_HEADER_BITS
        + rank * token_bits
        + SIDE_FIELD_BITS * fields_before[owner]
    )
    # A field follows the tokens of the event at its position (always an event: a flush).
    cores = np.arange(layout.cores_used)[:, None]
    keys = events.core * order.length + events.pos
    at = np.searchsorted(keys, cores * order.length + order.field_pos)
    done = ends[at] - core_first[:, None]
    field_offsets = (
        base[:, None]
        + STREAM_HEADER_BITS
        + done * token_bits
        + SIDE_FIELD_BITS * np.arange(order.field_pos.size)[None, :]
    )
    headers = np.full(layout.cores_used, zrl | (layout.kernels_per_core << ZRL_FIELD_BITS))
    total = int(sizes.sum())
    words = new_words(total)
    pack_sorted(words, token_offsets, values)
    pack_fields(
        words,
        np.concatenate([base, field_offsets.ravel()]),
        np.concatenate([headers, field_values.ravel()]).astype(np.uint64),
    )
    return words_to_bytes(words, total)


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
    order = stream_order(layout)
    seqs = np.empty((layout.cores_used, order.length), dtype=np.uint8)
    fields = np.zeros(order.field_slot.shape, dtype=np.uint32)
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
            buf[start : start + size], start * 8, order, layout, core, max_zrl_bits
        )
        seqs[core] = seq
        start += size
    bias = np.zeros(layout.slots, dtype=np.uint32)
    offs = np.zeros(layout.slots, dtype=np.uint32)
    is_bias = np.broadcast_to(order.field_is_bias, fields.shape)
    bias[order.field_slot[is_bias]] = fields[is_bias]
    offs[order.field_slot[~is_bias]] = fields[~is_bias]
    weights = stream_unvalues(layout, seqs)
    return V7Decoded(
        weights.reshape(layout.slots, layout.ic, layout.kh, layout.kw),
        bias.view(np.int32),
        offs,
        zrl_seen,
    )


def _decode_plain(
    stream: np.ndarray, base_bit: int, order: StreamOrder, core: int
) -> tuple[np.ndarray, np.ndarray]:
    """zrl_bits 0: a byte per weight, so every weight and side field sits at a known byte."""
    head, nfields = STREAM_HEADER_BITS // 8, order.field_pos.size
    need = head + order.length + SIDE_FIELD_BYTES * nfields
    if need > stream.size:
        raise WeightStreamError(
            f"a {stream.size}-byte stream cannot hold {order.length} weights and {nfields} "
            "side fields",
            core=core,
            bit_offset=base_bit + stream.size * 8,
        )
    before = np.searchsorted(order.field_pos, np.arange(order.length), side="left")
    seq = stream[head + np.arange(order.length) + SIDE_FIELD_BYTES * before]
    at = head + order.field_pos + 1 + SIDE_FIELD_BYTES * np.arange(nfields)
    fields = np.ascontiguousarray(stream[at[:, None] + np.arange(SIDE_FIELD_BYTES)])
    return seq, fields.view("<u4")[:, 0].astype(np.uint32)


def _decode_core(
    stream: np.ndarray, base_bit: int, order: StreamOrder, layout: V7Layout, core: int, max_zrl: int
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
    if zrl == 0:
        seq, fields = _decode_plain(stream, base_bit, order, core)
        return seq, fields, 0
    token_bits = zrl + VALUE_BITS
    run_mask = (1 << zrl) - 1
    starts = np.arange(STREAM_HEADER_BITS, max(nbits - token_bits + 1, STREAM_HEADER_BITS))
    counts = (read_fields(windows, starts, token_bits) & np.uint64(run_mask)).astype(np.int64) + 1
    # Token counts on each of the token_bits phases, as prefix sums: a segment of n weights
    # between side fields is then one binary search.
    prefix = [np.concatenate([[0], np.cumsum(counts[p::token_bits])]) for p in range(token_bits)]
    targets = np.append(order.field_pos + 1, order.length)
    seg_phase, seg_first, seg_end = [], [], []
    field_offsets = []
    offset, done = STREAM_HEADER_BITS, 0
    for index, target in enumerate(targets.tolist()):
        is_field = index < order.field_pos.size
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
    seq = np.full(order.length, layout.zero_point, dtype=np.uint8)
    seq[np.cumsum(runs + 1) - 1] = (tokens >> np.uint64(zrl)).astype(np.uint8)
    fields = read_fields(windows, field_offsets, SIDE_FIELD_BITS).astype(np.uint32)
    return seq, fields, zrl
