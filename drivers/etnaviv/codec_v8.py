"""v8 (i.MX 8M Plus, S905D3) coefficient buffer: the Huffman weight codec, encoder and decoder.

Mirrors the weight half of Mesa's ``etnaviv_ml_nn_v8.c`` (``encode_byte``, ``emit_pair``,
``encoder_flush``, ``encode_superblock``, ``fill_weights``, ``fill_biases``); facts from
``etnaviv-ml.md`` §3.2. Our own code: tokens are built and packed with numpy for a whole layer.

Buffer: a 64-byte header (flags, ``run_length_size``, ``run_length_table[18]``, ``symbol_map``,
``avg_bias``, then each core's stream length in bits from byte 28), the per-core streams (each
zero-padded to 512 bits), then the bias table, one u32 per output channel:
``bias + sum((w - wzp) * (128 - izp))``.

A core stream codes bytes: its kernel count (u16, two bytes, not zero-point shifted), then its
kernels' weights as ``w - wzp`` (mod 256), superblock after superblock, each superblock's kernels
interleaved in blocks of 9 (a depthwise kernel is one block, padded to a multiple of 9); slots
past a kernel's end hold the zero point. Each byte becomes a token: a class (the bit length of
the sign-folded value) coded by the symbol the header's map gives it, and a payload. Symbol codes
are a 3-bit code plus, for symbols 5..7, a 2-bit code; symbols 0, 1 and 5 carry the payload's
lowest bit in a free code bit. Tokens go in pairs through a 3-deep pipeline: step n writes the
3-bit codes of pair n, the 2-bit codes of pair n-1 and the payloads of pair n-2. At the end an
odd count gets a zero byte, then two dummy pairs (code 0, or 4 when the count was odd) drain
the pipeline; that bit count goes in the header.

**Zero-run mode (our interpretation; off by default, as in Mesa).** Mesa's encoder carries
unfinished run-length code (``zrl``) that is never enabled; the hardware meaning of
``run_length_size``/``run_length_table`` is not public. We define, consistently with Mesa's
unfinished code: ``run_length_size`` R > 0 turns the mode on; class 0 then means "a run of
``run_length_table[index]`` zero bytes", with the R-bit index as payload; a nonzero byte folds
to its magnitude (Mesa's ``value -= zrl``) so 1..6-bit magnitudes keep their classes, and
class 7 carries the byte verbatim (8 bits: magnitudes of 7 or 8 bits, and any zero byte not in a
run: the kernel-count bytes, the end padding, and zeros the table cannot cover). Table entries
are run lengths 1..255, descending; only the first ``2**R`` (at most 16) are indexable.

Deviation from Mesa, on purpose: the depthwise channel fix-up is applied only when OC is at
least the core count (Mesa's unsigned arithmetic wraps for 1 < OC < cores).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import codec_v8_search as search
from .codec_bits import WeightCompressionConfig, pack_fields
from .codec_v8_decode import decode_v8
from .codec_v8_format import (
    BYTE_TABLES,
    CLASSES,
    COUNT_BYTES,
    DRAIN_PAIRS,
    FREE,
    FREE_SHIFT,
    HEADER_BYTES,
    ODD_FLAG,
    PAIR_CODE_BITS,
    PART0,
    PART1,
    PART1_BITS,
    STREAM_ALIGN_BITS,
    STREAM_SIZES_OFFSET,
    VERBATIM_BITS,
    VERBATIM_CLASS,
    VERSION,
    V8Decoded,
    V8Layout,
    bias_fields,
    payload_bits,
    restore_biases,
    stream_gather,
)

__all__ = [
    "V8Decoded",
    "V8Encoded",
    "V8Layout",
    "bias_fields",
    "decode_v8",
    "encode_v8",
    "restore_biases",
]


@dataclass(frozen=True, slots=True)
class V8Encoded:
    data: bytes
    symbol_map: tuple[int, ...]  # class of each symbol
    run_lengths: tuple[int, ...]  # zero-run table, () in plain mode
    stream_bits: tuple[int, ...]  # per used core

    @property
    def cache_size(self) -> int:
        """Mesa's SRAM figure: header, streams and bias table."""
        return len(self.data)


@dataclass(frozen=True, slots=True)
class _Tokens:
    cls: np.ndarray
    pay: np.ndarray
    core_tokens: np.ndarray  # tokens per core (before end padding)
    run_index_bits: int


def _stream_bytes(layout: V8Layout, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every core's bytes (count, then weights - zp), concatenated, and the per-core lengths."""
    kp = layout.block_len * layout.blocks
    padded = np.zeros((layout.oc, kp), dtype=np.uint8)
    padded[:, : layout.kernel_size] = (weights.reshape(layout.oc, -1) - layout.zero_point) & 0xFF
    gather, lengths = stream_gather(layout)
    body = padded.ravel()[gather]
    counts = layout.core_kernels()
    count_bytes = np.stack([counts & 0xFF, counts >> 8], axis=1).astype(np.uint8)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pieces = np.split(body, starts[1:])
    out = np.concatenate([np.concatenate([count_bytes[c], pieces[c]]) for c in range(len(pieces))])
    return out, lengths + COUNT_BYTES


@dataclass(frozen=True, slots=True)
class _Zeros:
    """Zero runs of the weight bytes (the count bytes never join a run)."""

    runnable: np.ndarray  # [n] zero byte that belongs to a run
    start: np.ndarray  # run start positions
    length: np.ndarray
    core: np.ndarray


def _zero_runs(data: np.ndarray, core_lengths: np.ndarray) -> _Zeros:
    core_of = np.repeat(np.arange(core_lengths.size), core_lengths)
    starts = np.concatenate([[0], np.cumsum(core_lengths)[:-1]])
    in_body = np.ones(data.size, dtype=bool)
    in_body[starts[:, None] + np.arange(COUNT_BYTES)] = False
    zero = (data == 0) & in_body
    edges = np.diff(np.concatenate([[0], zero.astype(np.int8), [0]]))
    run_start = np.nonzero(edges == 1)[0]
    run_end = np.nonzero(edges == -1)[0]
    return _Zeros(zero, run_start, run_end - run_start, core_of[run_start])


def _tokens(data: np.ndarray, core_lengths: np.ndarray, table: tuple[int, ...]) -> _Tokens:
    """Tokens of all cores: one per byte in plain mode; runs cut into table entries otherwise."""
    if not table:
        return _Tokens(
            BYTE_TABLES["plain_cls"][data], BYTE_TABLES["plain_pay"][data], core_lengths, 0
        )
    zeros = _zero_runs(data, core_lengths)
    tab = np.array([table])
    counts, left = search.cut_runs(zeros.length, tab)
    counts, left = counts[0], left[0]
    per_run = counts.sum(axis=1) + left
    per_pos = np.where(zeros.runnable, 0, 1)
    per_pos[zeros.start] = per_run
    first = np.concatenate([[0], np.cumsum(per_pos)[:-1]])
    total = int(per_pos.sum())
    cls = np.empty(total, dtype=np.int64)
    pay = np.empty(total, dtype=np.int64)
    literal = ~zeros.runnable
    cls[first[literal]] = BYTE_TABLES["zrl_cls"][data[literal]]
    pay[first[literal]] = BYTE_TABLES["zrl_pay"][data[literal]]
    # Inside a run: its table entries, largest first, then leftover zeros verbatim.
    pieces = np.concatenate([counts, left[:, None]], axis=1).ravel()
    kinds = np.tile(np.arange(len(table) + 1), zeros.length.size)
    kind = np.repeat(kinds, pieces)
    run_first = np.repeat(first[zeros.start], per_run)
    run_base = np.repeat(np.concatenate([[0], np.cumsum(per_run)[:-1]]), per_run)
    where = run_first + np.arange(kind.size) - run_base
    is_entry = kind < len(table)
    cls[where] = np.where(is_entry, 0, VERBATIM_CLASS)
    pay[where] = np.where(is_entry, kind, 0)
    core_tokens = np.bincount(
        np.repeat(np.arange(core_lengths.size), core_lengths), weights=per_pos
    ).astype(np.int64)
    index_bits = max(1, (len(table) - 1).bit_length())
    return _Tokens(cls, pay, core_tokens, index_bits)


def _histograms(tokens: _Tokens) -> np.ndarray:
    """[cores, 8] class counts, end padding token included."""
    ncores = tokens.core_tokens.size
    core = np.repeat(np.arange(ncores), tokens.core_tokens)
    hist = np.bincount(core * CLASSES + tokens.cls, minlength=ncores * CLASSES)
    hist = hist.reshape(ncores, CLASSES)
    pad_class = VERBATIM_CLASS if tokens.run_index_bits else 0
    hist[:, pad_class] += tokens.core_tokens % 2
    return hist


def _fixed_bits(ncores: int) -> np.ndarray:
    return np.full(ncores, DRAIN_PAIRS * PAIR_CODE_BITS, dtype=np.int64)


def _choose(
    data: np.ndarray, lengths: np.ndarray, weight_bytes: np.ndarray, config: WeightCompressionConfig
) -> tuple[tuple[int, ...], tuple[int, ...], _Tokens]:
    """(symbol map, run table, tokens) for the layer under ``config``."""
    plain = _tokens(data, lengths, ())
    if not config.enabled:
        return tuple(range(CLASSES)), (), plain
    mesa = search.mesa_symbol_map(
        np.bincount(BYTE_TABLES["plain_cls"][weight_bytes], minlength=CLASSES)
    )
    if not config.search:
        return mesa, (), plain
    hist = _histograms(plain)
    fixed = _fixed_bits(hist.shape[0])
    bits = payload_bits(0)
    best = (search.map_size(mesa, hist, bits, fixed, STREAM_ALIGN_BITS), mesa, (), plain)
    found, size = search.best_symbol_map(hist, bits, fixed, STREAM_ALIGN_BITS)
    if size < best[0]:
        best = (size, found, (), plain)
    if config.v8_zrl:
        zeros = _zero_runs(data, lengths)
        run_lengths, run_counts = np.unique(zeros.length, return_counts=True)
        for index_bits in range(1, search.MAX_RUN_INDEX_BITS + 1):
            table = search.choose_run_table(run_lengths, run_counts, index_bits, VERBATIM_BITS)
            if not table or (len(table) - 1).bit_length() > index_bits:
                continue
            tokens = _tokens(data, lengths, table)
            zhist = _histograms(tokens)
            found, size = search.best_symbol_map(
                zhist, payload_bits(tokens.run_index_bits), fixed, STREAM_ALIGN_BITS
            )
            if size < best[0]:
                best = (size, found, table, tokens)
    return best[1], best[2], best[3]


def _codes(cls: np.ndarray, pay: np.ndarray, class_symbol: np.ndarray, plen: np.ndarray):
    """Code parts of tokens: (part0, part1, part1 bits, payload rest, its bits)."""
    sym = class_symbol[cls]
    free = FREE[sym]
    low = pay & 1
    part0 = PART0[sym] | (low << FREE_SHIFT[sym]) * (sym < 2)
    part1 = PART1[sym] | (low << FREE_SHIFT[sym]) * (sym == 5)
    return part0, part1, PART1_BITS[sym], pay >> free, plen[cls] - free


def _assemble(tokens: _Tokens, symbol_map: tuple[int, ...]):
    """Lay out every core's stream: (bit offsets, values, stream bits, padded bytes)."""
    class_symbol = np.empty(CLASSES, dtype=np.int64)
    class_symbol[list(symbol_map)] = np.arange(CLASSES)
    n = tokens.core_tokens
    ncores = n.size
    odd = n % 2
    m = n + odd + 2 * DRAIN_PAIRS
    new_start = np.concatenate([[0], np.cumsum(m)[:-1]])
    old_start = np.concatenate([[0], np.cumsum(n)[:-1]])
    core_of = np.repeat(np.arange(ncores), n)
    dest = new_start[core_of] + np.arange(n.sum()) - old_start[core_of]
    total = int(m.sum())
    cls = np.zeros(total, dtype=np.int64)
    pay = np.zeros(total, dtype=np.int64)
    cls[dest] = tokens.cls
    pay[dest] = tokens.pay
    pad = (new_start + n)[odd == 1]
    cls[pad] = VERBATIM_CLASS if tokens.run_index_bits else 0  # a zero byte, pay 0
    part0, part1, w1, part2, w2 = _codes(
        cls, pay, class_symbol, payload_bits(tokens.run_index_bits)
    )
    drain = (new_start + m)[:, None] - np.arange(1, 2 * DRAIN_PAIRS + 1)[None, :]
    part0[drain] = (ODD_FLAG * odd)[:, None]
    for arr in (part1, w1, part2, w2):
        arr[drain] = 0
    a = part0[0::2] | part0[1::2] << 3
    b = part1[0::2] | part1[1::2] << w1[0::2]
    wb = w1[0::2] + w1[1::2]
    c = part2[0::2] | part2[1::2] << w2[0::2]
    wc = w2[0::2] + w2[1::2]
    pairs = m // 2
    pair_core = np.repeat(np.arange(ncores), pairs)
    first_pair = np.concatenate([[0], np.cumsum(pairs)[:-1]])
    local = np.arange(pair_core.size) - first_pair[pair_core]
    prev_b = np.where(local >= 1, np.roll(b, 1), 0)
    prev_wb = np.where(local >= 1, np.roll(wb, 1), 0)
    prev_c = np.where(local >= 2, np.roll(c, 2), 0)
    prev_wc = np.where(local >= 2, np.roll(wc, 2), 0)
    values = a | prev_b << PAIR_CODE_BITS | prev_c << (PAIR_CODE_BITS + prev_wb)
    widths = PAIR_CODE_BITS + prev_wb + prev_wc
    bits = np.bincount(pair_core, weights=widths, minlength=ncores).astype(np.int64)
    padded = search.padded_bytes(bits, STREAM_ALIGN_BITS)
    base = (HEADER_BYTES + np.concatenate([[0], np.cumsum(padded)[:-1]])) * 8
    before = np.cumsum(widths) - widths
    offsets = base[pair_core] + before - before[first_pair][pair_core]
    return offsets, values.astype(np.uint64), bits, padded


def _header(layout: V8Layout, symbol_map, table, index_bits, bits) -> np.ndarray:
    head = np.zeros(HEADER_BYTES, dtype=np.uint8)
    head[0] = VERSION << 4  # precode, bit16, fp16 = 0
    head[1] = index_bits if table else 0
    head[2 : 2 + len(table)] = table
    symbols = sum(int(c) << (4 * i) for i, c in enumerate(symbol_map))
    head[20:24] = np.array([symbols], dtype="<u4").view(np.uint8)
    sizes = np.zeros(layout.nn_cores, dtype="<u4")
    sizes[: layout.cores_used] = bits
    head[STREAM_SIZES_OFFSET : STREAM_SIZES_OFFSET + sizes.nbytes] = sizes.view(np.uint8)
    return head


def encode_v8(
    weights: np.ndarray,
    biases: np.ndarray,
    layout: V8Layout,
    *,
    input_zero_point: int,
    config: WeightCompressionConfig = WeightCompressionConfig(),  # noqa: B008 (frozen)
) -> V8Encoded:
    """Encode a layer's coefficient buffer.

    ``weights`` uint8 [OC, IC, KH, KW] in the hardware domain (signed weights already +128;
    depthwise: [OC, 1, KH, KW]), ``biases`` int32 [OC], and the input zero point for the bias
    correction. The symbol map and run table are chosen per ``config``.
    """
    weights = np.asarray(weights, dtype=np.uint8)
    expected = (layout.oc, layout.ic, layout.kh, layout.kw)
    if weights.shape != expected:
        raise ValueError(f"v8 encode: weights shape {weights.shape}, layout wants {expected}")
    if len(biases) != layout.oc:
        raise ValueError(f"v8 encode: {len(biases)} biases for {layout.oc} kernels")
    data, lengths = _stream_bytes(layout, weights)
    weight_bytes = ((weights.astype(np.int64) - layout.zero_point) & 0xFF).ravel()
    symbol_map, table, tokens = _choose(data, lengths, weight_bytes, config)
    offsets, values, bits, padded = _assemble(tokens, symbol_map)
    streams_end = HEADER_BYTES + int(padded.sum())
    out = pack_fields(offsets, values, streams_end + 4 * layout.oc)
    out[:HEADER_BYTES] = _header(layout, symbol_map, table, tokens.run_index_bits, bits)
    fields = bias_fields(weights, biases, layout.zero_point, input_zero_point)
    out[streams_end:] = fields.astype("<i4").view(np.uint8)
    return V8Encoded(out.tobytes(), symbol_map, table, tuple(int(b) for b in bits))
