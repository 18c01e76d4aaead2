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

Deviations from Mesa, on purpose: the depthwise channel fix-up is applied only when OC is at
least the core count (Mesa's unsigned arithmetic wraps for 1 < OC < cores); Mesa's symbol-map
histogram reads the raw weight bytes, ours (``search=False`` included) the coded ``w - wzp``
bytes (the same for symmetric int8 weights, which is what Mesa was tuned on).

This module is the encoder and the public face; the format's tables and layout live in
``codec_v8_format``, the decoder in ``codec_v8_decode``, the per-layer search in
``codec_v8_search``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import codec_v8_search as search
from .codec_bits import WeightCompressionConfig, new_words, pack_sorted, words_to_bytes
from .codec_v8_decode import decode_v8
from .codec_v8_format import (
    BYTE_TABLES,
    CLASSES,
    COUNT_BYTES,
    DRAIN_PAIRS,
    FLAGS_OFFSET,
    FREE,
    FREE_SHIFT,
    HEADER_BYTES,
    ODD_FLAG,
    PAIR_CODE_BITS,
    PART0,
    PART1,
    PART1_BITS,
    RUN_SIZE_OFFSET,
    RUN_TABLE_OFFSET,
    STREAM_ALIGN_BITS,
    STREAM_SIZES_OFFSET,
    SYMBOL_BITS,
    SYMBOL_MAP_OFFSET,
    VERBATIM_BITS,
    VERBATIM_CLASS,
    VERSION,
    VERSION_SHIFT,
    V8Decoded,
    V8Layout,
    bias_fields,
    payload_bits,
    restore_biases,
    split_streams,
    superblocks_from_config,
)

__all__ = [
    "V8Decoded",
    "V8Encoded",
    "V8Layout",
    "bias_fields",
    "decode_v8",
    "encode_v8",
    "restore_biases",
    "superblocks_from_config",
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
    """A layer's tokens. Plain mode: one per byte of ``data``; zero-run mode: ``cls``/``pay``."""

    data: np.ndarray  # every core's bytes, concatenated
    core_tokens: np.ndarray  # tokens per core (before end padding)
    run_index_bits: int = 0
    cls: np.ndarray | None = None
    pay: np.ndarray | None = None


def _stream_bytes(layout: V8Layout, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every core's bytes (count, then weights - zp), concatenated, and the per-core lengths."""
    kp = layout.block_len * layout.blocks
    padded = np.zeros((layout.oc, kp), dtype=np.uint8)
    padded[:, : layout.kernel_size] = (weights.reshape(layout.oc, -1) - layout.zero_point) & 0xFF
    bodies = split_streams(layout, padded.reshape(layout.oc, layout.blocks, layout.block_len))
    counts = layout.core_kernels()
    pieces = []
    for count, body in zip(counts.tolist(), bodies, strict=True):
        pieces += [np.array([count & 0xFF, count >> 8], dtype=np.uint8), body]
    lengths = np.array([b.size for b in bodies], dtype=np.int64) + COUNT_BYTES
    return np.concatenate(pieces), lengths


@dataclass(frozen=True, slots=True)
class _Zeros:
    """Zero runs of the weight bytes (the count bytes never join a run)."""

    runnable: np.ndarray  # [n] zero byte that belongs to a run
    start: np.ndarray  # run start positions
    length: np.ndarray
    core: np.ndarray


def _zero_runs(data: np.ndarray, core_lengths: np.ndarray) -> _Zeros:
    starts = np.concatenate([[0], np.cumsum(core_lengths)[:-1]])
    zero = data == 0
    zero[starts[:, None] + np.arange(COUNT_BYTES)] = False
    edges = np.diff(zero.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    run_start = np.flatnonzero(edges == 1)
    run_end = np.flatnonzero(edges == -1)
    core = np.searchsorted(starts, run_start, side="right") - 1
    return _Zeros(zero, run_start, run_end - run_start, core)


def _run_tokens(data: np.ndarray, core_lengths: np.ndarray, table: tuple[int, ...]) -> _Tokens:
    """Zero-run mode tokens: runs cut into table entries, largest first, leftover zeros and
    all other bytes as literals."""
    zeros = _zero_runs(data, core_lengths)
    counts, left = search.cut_runs(zeros.length, np.array([table]))
    counts, left = counts[0], left[0]
    per_run = counts.sum(axis=1) + left
    per_pos = np.where(zeros.runnable, 0, 1)
    per_pos[zeros.start] = per_run
    first = np.cumsum(per_pos) - per_pos
    total = int(per_pos.sum())
    cls = np.empty(total, dtype=np.int64)
    pay = np.empty(total, dtype=np.int64)
    literal = ~zeros.runnable
    cls[first[literal]] = BYTE_TABLES["zrl_cls"][data[literal]]
    pay[first[literal]] = BYTE_TABLES["zrl_pay"][data[literal]]
    pieces = np.concatenate([counts, left[:, None]], axis=1).ravel()
    kind = np.repeat(np.tile(np.arange(len(table) + 1), zeros.length.size), pieces)
    run_base = np.cumsum(per_run) - per_run
    where = np.repeat(first[zeros.start] - run_base, per_run) + np.arange(kind.size)
    is_entry = kind < len(table)
    cls[where] = np.where(is_entry, 0, VERBATIM_CLASS)
    pay[where] = np.where(is_entry, kind, 0)
    core_of = np.repeat(np.arange(core_lengths.size), core_lengths)
    core_tokens = np.bincount(core_of, weights=per_pos, minlength=core_lengths.size)
    index_bits = max(1, (len(table) - 1).bit_length())
    return _Tokens(data, core_tokens.astype(np.int64), index_bits, cls, pay)


def _histograms(tokens: _Tokens) -> np.ndarray:
    """[cores, 8] class counts, end padding token included."""
    ncores = tokens.core_tokens.size
    core = np.repeat(np.arange(ncores), tokens.core_tokens)
    if tokens.cls is None:
        by_byte = np.bincount(core * 256 + tokens.data, minlength=ncores * 256)
        hist = by_byte.reshape(ncores, 256) @ _ONE_HOT["plain_cls"]
    else:
        hist = np.bincount(core * CLASSES + tokens.cls, minlength=ncores * CLASSES)
        hist = hist.reshape(ncores, CLASSES)
    pad_class = VERBATIM_CLASS if tokens.run_index_bits else 0
    hist[:, pad_class] += tokens.core_tokens % 2
    return hist


def _one_hot(classes: np.ndarray) -> np.ndarray:
    table = np.zeros((256, CLASSES), dtype=np.int64)
    table[np.arange(256), classes] = 1
    table.setflags(write=False)
    return table


_ONE_HOT = {name: _one_hot(BYTE_TABLES[name]) for name in ("plain_cls", "zrl_cls")}


@dataclass(frozen=True, slots=True)
class _RunStats:
    """What sizing a zero-run table needs: the literal tokens' class counts and the runs."""

    literal_hist: np.ndarray  # [cores, 8]
    literal_count: np.ndarray  # [cores]
    run_core: np.ndarray
    run_length: np.ndarray

    @classmethod
    def of(cls, data: np.ndarray, lengths: np.ndarray, zeros: _Zeros) -> _RunStats:
        ncores = lengths.size
        core = np.repeat(np.arange(ncores), lengths)
        literal = ~zeros.runnable
        by_byte = np.bincount(core[literal] * 256 + data[literal], minlength=ncores * 256)
        hist = by_byte.reshape(ncores, 256) @ _ONE_HOT["zrl_cls"]
        return cls(hist, hist.sum(axis=1), zeros.core, zeros.length)

    def histograms(self, table: tuple[int, ...]) -> np.ndarray:
        """[cores, 8] class counts with ``table``, end padding included, without building the
        tokens: a run adds its chunks to class 0 and its leftover zeros to class 7."""
        counts, left = search.cut_runs(self.run_length, np.array([table]))
        chunks, left = counts[0].sum(axis=1), left[0]
        ncores = self.literal_count.size
        hist = self.literal_hist.copy()
        hist[:, 0] += np.bincount(self.run_core, weights=chunks, minlength=ncores).astype(np.int64)
        extra = np.bincount(self.run_core, weights=left, minlength=ncores).astype(np.int64)
        hist[:, VERBATIM_CLASS] += extra
        tokens = hist.sum(axis=1)
        hist[:, VERBATIM_CLASS] += tokens % 2
        return hist


def _fixed_bits(ncores: int) -> np.ndarray:
    return np.full(ncores, DRAIN_PAIRS * PAIR_CODE_BITS, dtype=np.int64)


def _choose(
    data: np.ndarray, lengths: np.ndarray, weight_bytes: np.ndarray, config: WeightCompressionConfig
) -> tuple[tuple[int, ...], tuple[int, ...], _Tokens]:
    """(symbol map, run table, tokens) for the layer under ``config``."""
    plain = _Tokens(data, lengths)
    if not config.enabled:
        return tuple(range(CLASSES)), (), plain
    weight_hist = np.bincount(weight_bytes, minlength=256)
    class_hist = np.bincount(BYTE_TABLES["plain_cls"], weights=weight_hist, minlength=CLASSES)
    mesa = search.mesa_symbol_map(class_hist)
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
        stats = _RunStats.of(data, lengths, zeros)
        run_lengths, run_counts = np.unique(zeros.length, return_counts=True)
        for table in search.run_tables(run_lengths, run_counts, VERBATIM_BITS):
            bits = payload_bits(max(1, (len(table) - 1).bit_length()))
            found, size = search.best_symbol_map(
                stats.histograms(table), bits, fixed, STREAM_ALIGN_BITS
            )
            if size < best[0]:
                best = (size, found, table, None)
    symbol_map, table, tokens = best[1], best[2], best[3]
    if tokens is None:
        tokens = _run_tokens(data, lengths, table)
    return symbol_map, table, tokens


def _codes(cls: np.ndarray, pay: np.ndarray, class_symbol: np.ndarray, plen: np.ndarray):
    """Code parts of tokens: (part0, part1, part1 bits, payload rest, its bits)."""
    sym = class_symbol[cls]
    free = FREE[sym]
    low = pay & 1
    part0 = PART0[sym] | (low << FREE_SHIFT[sym]) * (sym < 2)
    part1 = PART1[sym] | (low << FREE_SHIFT[sym]) * (sym == 5)
    return part0, part1, PART1_BITS[sym], pay >> free, plen[cls] - free


# A pair of tokens packed in one int64: its two 3-bit codes A, its 2-bit codes B and their bit
# count, its payloads C (at most 2 x 8 bits) and their bit count.
_B, _WB, _C, _WC = 6, 10, 13, 29


def _pack_pairs(p0, p1, w1, p2, w2, first, second) -> np.ndarray:
    """Packed pair fields of the token pairs (first[i], second[i]) (indices into the per-token
    code arrays; broadcasting allowed)."""
    a = p0[first] | p0[second] << 3
    b = p1[first] | p1[second] << w1[first]
    c = p2[first] | p2[second] << w2[first]
    wb = w1[first] + w1[second]
    wc = w2[first] + w2[second]
    return a | b << _B | wb << _WB | c << _C | wc << _WC


def _plain_pairs(data: np.ndarray, lengths: np.ndarray, class_symbol: np.ndarray) -> np.ndarray:
    """Plain mode: a byte's code depends only on the byte, so a pair of bytes indexes a 64 Ki
    table of packed pair fields; the stream's bytes, read as little-endian u16, are the
    indices. An odd count is padded with a zero byte (Mesa ``encoder_flush``)."""
    codes = _codes(
        BYTE_TABLES["plain_cls"], BYTE_TABLES["plain_pay"], class_symbol, payload_bits(0)
    )
    byte = np.arange(256)
    lut = _pack_pairs(*codes, byte[None, :], byte[:, None]).ravel()  # [second, first]
    odd = lengths % 2
    if odd.any():
        data = np.insert(data, np.cumsum(lengths)[odd == 1], 0)
    return lut[data.view("<u2")]


def _token_pairs(tokens: _Tokens, class_symbol: np.ndarray) -> np.ndarray:
    """Zero-run mode: packed pair fields from the tokens; an odd count gets a verbatim zero."""
    n = tokens.core_tokens
    odd = n % 2
    cls, pay = tokens.cls, tokens.pay
    if odd.any():
        cls = np.insert(cls, np.cumsum(n)[odd == 1], VERBATIM_CLASS)
        pay = np.insert(pay, np.cumsum(n)[odd == 1], 0)
    codes = _codes(cls, pay, class_symbol, payload_bits(tokens.run_index_bits))
    index = np.arange(0, cls.size, 2)
    return _pack_pairs(*codes, index, index + 1)


def _assemble(tokens: _Tokens, symbol_map: tuple[int, ...]):
    """Lay out every core's stream: (bit offsets, values, stream bits, padded bytes) of its
    steps. Step n of a core writes the codes A of pair n, the 2-bit codes B of pair n - 1 and
    the payloads C of pair n - 2; two drain pairs (codes 0, or 4 after an odd count) end it."""
    class_symbol = np.empty(CLASSES, dtype=np.int64)
    class_symbol[list(symbol_map)] = np.arange(CLASSES)
    n = tokens.core_tokens
    odd = n % 2
    if tokens.cls is None:
        real_pairs = _plain_pairs(tokens.data, n, class_symbol)
    else:
        real_pairs = _token_pairs(tokens, class_symbol)
    real = (n + odd) // 2
    drains = np.repeat(ODD_FLAG * odd * (1 + (1 << 3)), DRAIN_PAIRS)  # both codes 0 or 4
    at = np.repeat(np.cumsum(real), DRAIN_PAIRS)
    packed = np.insert(real_pairs, at, drains)
    pairs = real + DRAIN_PAIRS
    first = np.cumsum(pairs) - pairs
    a = packed & ((1 << _B) - 1)
    b = (packed >> _B) & ((1 << (_WB - _B)) - 1)
    wb = (packed >> _WB) & ((1 << (_C - _WB)) - 1)
    c = (packed >> _C) & ((1 << (_WC - _C)) - 1)
    wc = packed >> _WC
    prev_b, prev_wb, prev_c, prev_wc = (np.zeros_like(packed) for _ in range(4))
    prev_b[1:], prev_wb[1:], prev_c[2:], prev_wc[2:] = b[:-1], wb[:-1], c[:-2], wc[:-2]
    prev_b[first] = prev_wb[first] = prev_c[first] = prev_wc[first] = 0
    prev_c[first + 1] = prev_wc[first + 1] = 0
    values = a | prev_b << PAIR_CODE_BITS | prev_c << (PAIR_CODE_BITS + prev_wb)
    widths = PAIR_CODE_BITS + prev_wb + prev_wc
    bits = np.add.reduceat(widths, first)
    padded = search.padded_bytes(bits, STREAM_ALIGN_BITS)
    base = (HEADER_BYTES + np.cumsum(padded) - padded) * 8
    before = np.cumsum(widths) - widths
    offsets = np.repeat(base - before[first], pairs) + before
    return offsets, values.astype(np.uint64), bits, padded


def _header(layout: V8Layout, symbol_map, table, index_bits, bits) -> np.ndarray:
    head = np.zeros(HEADER_BYTES, dtype=np.uint8)
    head[FLAGS_OFFSET] = VERSION << VERSION_SHIFT  # precode, bit16, fp16 = 0
    head[RUN_SIZE_OFFSET] = index_bits if table else 0
    head[RUN_TABLE_OFFSET : RUN_TABLE_OFFSET + len(table)] = table
    symbols = sum(int(c) << (SYMBOL_BITS * i) for i, c in enumerate(symbol_map))
    head[SYMBOL_MAP_OFFSET : SYMBOL_MAP_OFFSET + 4] = np.array([symbols], "<u4").view(np.uint8)
    sizes = np.zeros(layout.nn_cores, dtype="<u4")
    sizes[: layout.cores_used] = bits
    head[STREAM_SIZES_OFFSET : STREAM_SIZES_OFFSET + sizes.nbytes] = sizes.view(np.uint8)
    return head


def _check_forced(symbol_map, table) -> tuple[tuple[int, ...], tuple[int, ...]]:
    symbol_map, table = tuple(int(c) for c in symbol_map), tuple(int(t) for t in table)
    if sorted(symbol_map) != list(range(CLASSES)):
        raise ValueError(f"v8 encode: symbol map {symbol_map} is not a permutation of 0..7")
    if len(table) > 1 << search.MAX_RUN_INDEX_BITS or list(table) != sorted(set(table))[::-1]:
        raise ValueError(f"v8 encode: run table {table} must be distinct, descending, <= 16")
    if table and not 1 <= table[-1] <= table[0] <= search.MAX_RUN:
        raise ValueError(f"v8 encode: run lengths {table} outside 1..255")
    return symbol_map, table


def encode_v8(
    weights: np.ndarray,
    biases: np.ndarray,
    layout: V8Layout,
    *,
    input_zero_point: int,
    config: WeightCompressionConfig = WeightCompressionConfig(),  # noqa: B008 (frozen)
    force: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
) -> V8Encoded:
    """Encode a layer's coefficient buffer.

    ``weights`` uint8 [OC, IC, KH, KW] in the hardware domain (signed weights already +128;
    depthwise: [OC, 1, KH, KW]), ``biases`` int32 [OC], and the input zero point for the bias
    correction. The symbol map and run table are chosen per ``config``, or ``force``d as
    (symbol map: class of each symbol, run table: descending lengths 1..255, at most 16, or ()).
    """
    weights = np.asarray(weights, dtype=np.uint8)
    expected = (layout.oc, layout.ic, layout.kh, layout.kw)
    if weights.shape != expected:
        raise ValueError(f"v8 encode: weights shape {weights.shape}, layout wants {expected}")
    if len(biases) != layout.oc:
        raise ValueError(f"v8 encode: {len(biases)} biases for {layout.oc} kernels")
    data, lengths = _stream_bytes(layout, weights)
    weight_bytes = ((weights.astype(np.int64) - layout.zero_point) & 0xFF).ravel()
    if force is None:
        symbol_map, table, tokens = _choose(data, lengths, weight_bytes, config)
    else:
        symbol_map, table = _check_forced(*force)
        tokens = _run_tokens(data, lengths, table) if table else _Tokens(data, lengths)
    offsets, values, bits, padded = _assemble(tokens, symbol_map)
    streams_end = HEADER_BYTES + int(padded.sum())
    words = new_words(streams_end + 4 * layout.oc)
    pack_sorted(words, offsets, values)
    out = words_to_bytes(words, streams_end + 4 * layout.oc)
    out[:HEADER_BYTES] = _header(layout, symbol_map, table, tokens.run_index_bits, bits)
    fields = bias_fields(weights, biases, layout.zero_point, input_zero_point)
    out[streams_end:] = fields.astype("<i4").view(np.uint8)
    return V8Encoded(out.tobytes(), symbol_map, table, tuple(int(b) for b in bits))
