"""The v8 weight stream decoder: what the simulated NPU runs on a coefficient buffer.

Reads only the buffer and the job's layout (``V8Layout``). The 3-deep pair pipeline is followed
in a first pass that visits each step once (pending pair codes and pending payload width, one
table lookup per step); a second pass reads every code and payload with numpy. Format:
``codec_v8``; Mesa counterpart: the encoder in ``etnaviv_ml_nn_v8.c`` (Mesa has no decoder).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import codec_v8_search as search
from .codec_bits import WeightStreamError, byte_windows, read_fields
from .codec_v8_format import (
    AVG_BIAS_OFFSET,
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
    PART0_CODED,
    PART1,
    PART1_BITS,
    RUN_SIZE_OFFSET,
    RUN_TABLE_LEN,
    RUN_TABLE_OFFSET,
    STREAM_ALIGN_BITS,
    STREAM_SIZES_OFFSET,
    SYMBOL_BITS,
    SYMBOL_MAP_OFFSET,
    VERBATIM_CLASS,
    VERSION,
    VERSION_SHIFT,
    V8Decoded,
    V8Layout,
    join_streams,
    payload_bits,
    stream_lengths,
)


@dataclass(frozen=True, slots=True)
class _Header:
    symbol_map: tuple[int, ...]
    table: tuple[int, ...]
    index_bits: int
    stream_bits: np.ndarray


def _parse_header(buf: np.ndarray, layout: V8Layout) -> _Header:
    if buf.size < HEADER_BYTES:
        raise WeightStreamError(f"buffer of {buf.size} bytes is shorter than the 64-byte header")
    flags = int(buf[FLAGS_OFFSET])
    if flags != VERSION << VERSION_SHIFT:
        raise WeightStreamError(
            f"flags byte {flags:#04x}: want version {VERSION} without precode/bit16/fp16"
        )
    index_bits = int(buf[RUN_SIZE_OFFSET])
    table = buf[RUN_TABLE_OFFSET : RUN_TABLE_OFFSET + RUN_TABLE_LEN].astype(np.int64)
    if index_bits > search.MAX_RUN_INDEX_BITS:
        raise WeightStreamError(
            f"run_length_size {index_bits} above {search.MAX_RUN_INDEX_BITS}",
            bit_offset=RUN_SIZE_OFFSET * 8,
        )
    if np.any(table[1 << index_bits if index_bits else 0 :]):
        raise WeightStreamError(
            "run-length table entries past 2**run_length_size", bit_offset=RUN_TABLE_OFFSET * 8
        )
    packed = int(buf[SYMBOL_MAP_OFFSET : SYMBOL_MAP_OFFSET + 4].view("<u4")[0])
    nibbles = (packed >> (SYMBOL_BITS * np.arange(CLASSES))) & ((1 << SYMBOL_BITS) - 1)
    if sorted(nibbles.tolist()) != list(range(CLASSES)):
        raise WeightStreamError(
            f"symbol map {nibbles.tolist()} is not a permutation",
            bit_offset=SYMBOL_MAP_OFFSET * 8,
        )
    if buf[AVG_BIAS_OFFSET:STREAM_SIZES_OFFSET].any():
        raise WeightStreamError(
            "avg_bias/reserved fields are not zero", bit_offset=AVG_BIAS_OFFSET * 8
        )
    bits = buf[STREAM_SIZES_OFFSET : STREAM_SIZES_OFFSET + 4 * layout.nn_cores]
    bits = bits.view("<u4").astype(np.int64)
    for core in range(layout.nn_cores):
        used = core < layout.cores_used
        if used != (bits[core] > 0):
            raise WeightStreamError(
                f"stream length {bits[core]} bits for {'a used' if used else 'an unused'} core",
                core=core,
                bit_offset=(STREAM_SIZES_OFFSET + 4 * core) * 8,
            )
    run_table = tuple(int(v) for v in table[: 1 << index_bits]) if index_bits else ()
    while run_table and run_table[-1] == 0:  # unused entries at the end
        run_table = run_table[:-1]
    return _Header(tuple(int(v) for v in nibbles), run_table, index_bits, bits)


def _step_table(symbol_of_code: np.ndarray, plen_of_symbol: np.ndarray) -> list[int]:
    """Decoder pipeline table: for the pending pair's two 3-bit codes (index 64: none) and the
    next 4 stream bits, this step's bits up to the payloads (6 + the pending pair's 2-bit codes)
    and the bits of the pending pair's payloads, as ``step | payload << 4``."""
    idx = np.arange(65 * 16)
    pending, nxt = idx >> 4, idx & 15
    c0, c1 = pending & 7, (pending >> 3) & 7
    w0 = np.where(c0 == PART0_CODED, 2, 0)
    w1 = np.where(c1 == PART0_CODED, 2, 0)
    s0 = symbol_of_code[c0 * 4 + (nxt & 3)]
    s1 = symbol_of_code[c1 * 4 + ((nxt >> w0) & 3)]
    wc = plen_of_symbol[s0] - FREE[s0] + plen_of_symbol[s1] - FREE[s1]
    # The step's own width before the payloads: its two 3-bit codes and the pending 2-bit codes.
    entry = np.where(pending < 64, (PAIR_CODE_BITS + w0 + w1) | wc << 4, PAIR_CODE_BITS)
    return entry.tolist()


def _symbol_of_code() -> np.ndarray:
    """Symbol of a (3-bit code, 2-bit code) pair, at index ``code * 4 + part1``; the 2-bit code
    only matters for the 3-bit code 0b010."""
    out = np.full(32, -1, dtype=np.int64)
    for sym in range(CLASSES):
        if PART1_BITS[sym] == 0:
            free = FREE[sym] << FREE_SHIFT[sym]
            for code in {int(PART0[sym]), int(PART0[sym] | free)}:
                out[code * 4 : code * 4 + 4] = sym
        else:
            free = FREE[sym] << FREE_SHIFT[sym]
            for part1 in {int(PART1[sym]), int(PART1[sym] | free)}:
                out[PART0_CODED * 4 + part1] = sym
    assert (out >= 0).all()
    out.setflags(write=False)
    return out


SYMBOL_OF_CODE = _symbol_of_code()


def decode_v8(data: bytes | np.ndarray, layout: V8Layout) -> V8Decoded:
    """Decode a v8 coefficient buffer with only what the job configuration tells the hardware.

    Raises :class:`WeightStreamError` naming the core and bit offset for a bad header, a stream
    or bias table past the buffer, codes that overrun the stream length, a wrong kernel count or
    a wrong number of weights.
    """
    if isinstance(data, np.ndarray):
        buf = np.ascontiguousarray(data, dtype=np.uint8).ravel()
    else:
        buf = np.frombuffer(bytes(data), dtype=np.uint8)
    head = _parse_header(buf, layout)
    plen_cls = payload_bits(head.index_bits)
    plen_sym = plen_cls[list(head.symbol_map)]
    steps = _step_table(SYMBOL_OF_CODE, plen_sym)
    lengths = stream_lengths(layout)
    kp = layout.block_len * layout.blocks
    bodies = []
    start = HEADER_BYTES
    counts = layout.core_kernels()
    for core in range(layout.cores_used):
        bits = int(head.stream_bits[core])
        size = int(search.padded_bytes(np.int64(bits), STREAM_ALIGN_BITS))
        if start + size > buf.size:
            raise WeightStreamError(
                f"stream of {bits} bits at byte {start} runs past the {buf.size}-byte buffer",
                core=core,
                bit_offset=start * 8,
            )
        body = _decode_core(buf[start : start + size], bits, start * 8, core, head, steps, plen_sym)
        if body.size < COUNT_BYTES:
            raise WeightStreamError(
                "stream too short for a kernel count", core=core, bit_offset=start * 8
            )
        count = int(body[0]) | int(body[1]) << 8
        if count != counts[core]:
            raise WeightStreamError(
                f"kernel count {count}, the job gives this core {counts[core]}",
                core=core,
                bit_offset=start * 8,
            )
        if body.size - COUNT_BYTES != lengths[core]:
            raise WeightStreamError(
                f"{body.size - COUNT_BYTES} weights decoded, the job needs {lengths[core]}",
                core=core,
                bit_offset=start * 8 + bits,
            )
        bodies.append(body[COUNT_BYTES:])
        start += size
    if start + 4 * layout.oc > buf.size:
        raise WeightStreamError(
            f"bias table of {layout.oc} words at byte {start} runs past the {buf.size}-byte buffer",
            bit_offset=start * 8,
        )
    fields = buf[start : start + 4 * layout.oc].view("<i4").astype(np.int32)
    padded = join_streams(layout, bodies).reshape(layout.oc, kp)
    weights = (padded[:, : layout.kernel_size] + layout.zero_point) & 0xFF
    return V8Decoded(
        weights.astype(np.uint8).reshape(layout.oc, layout.ic, layout.kh, layout.kw),
        fields,
        head.symbol_map,
        head.table,
    )


def _decode_core(
    stream: np.ndarray,
    nbits: int,
    base_bit: int,
    core: int,
    head: _Header,
    steps: list[int],
    plen_sym: np.ndarray,
) -> np.ndarray:
    """One core's bytes (kernel count first). Pass 1 follows the 3-deep pipeline through the
    step offsets (a pending pair's codes and a pending payload width); pass 2 reads every code
    and payload at once."""
    windows = byte_windows(stream)
    words = windows.tolist()
    offsets = []
    record = offsets.append
    offset, pending, pending_payload = 0, 64 << 4, 0  # no pending pair before the first step
    codes = PAIR_CODE_BITS
    while offset < nbits:  # the one loop per step: keep it lean
        x = words[offset >> 3] >> (offset & 7)
        entry = steps[pending | ((x >> codes) & 15)]
        record(offset)
        offset += (entry & 15) + pending_payload
        pending_payload = entry >> 4
        pending = (x & 63) << 4
    if offset != nbits:
        raise WeightStreamError(
            f"codes run to bit {offset}, past the {nbits}-bit stream length",
            core=core,
            bit_offset=base_bit + offsets[-1],
        )
    steps_at = np.asarray(offsets, dtype=np.int64)
    npairs = steps_at.size - DRAIN_PAIRS
    if npairs < 1:
        raise WeightStreamError(
            "stream too short for a kernel count", core=core, bit_offset=base_bit
        )
    codes = read_fields(windows, steps_at, PAIR_CODE_BITS).astype(np.int64)
    code = np.stack([codes & 7, codes >> 3], axis=1)  # [pairs, 2]
    drain = code[npairs:]
    if not ((drain == drain[0, 0]).all() and drain[0, 0] in (0, ODD_FLAG)):
        raise WeightStreamError(
            f"drain codes {drain.ravel().tolist()} are not all 0 or all 4",
            core=core,
            bit_offset=base_bit + int(steps_at[npairs]),
        )
    code = code[:npairs]
    p1_bits = np.where(code == PART0_CODED, 2, 0)
    b_at = steps_at[1 : npairs + 1] + PAIR_CODE_BITS
    b = read_fields(windows, b_at, p1_bits.sum(axis=1)).astype(np.int64)
    part1 = np.stack([b & 3, (b >> p1_bits[:, 0]) & 3], axis=1) * (p1_bits > 0)
    sym = SYMBOL_OF_CODE[code * 4 + part1]
    low = np.where(sym < 2, code >> 2, part1 >> 1) & FREE[sym]
    rest_bits = plen_sym[sym] - FREE[sym]
    c_at = steps_at[2 : npairs + 2] + PAIR_CODE_BITS + np.append(p1_bits[1:].sum(axis=1), 0)
    first = read_fields(windows, c_at, rest_bits[:, 0]).astype(np.int64)
    second = read_fields(windows, c_at + rest_bits[:, 0], rest_bits[:, 1]).astype(np.int64)
    pay = (np.stack([first, second], axis=1) << FREE[sym]) | low
    cls = np.asarray(head.symbol_map)[sym].ravel()
    pay = pay.ravel()
    if drain[0, 0] == ODD_FLAG:  # the last token pads an odd count with a zero byte
        pad_class = VERBATIM_CLASS if head.index_bits else 0
        if cls[-1] != pad_class or pay[-1] != 0:
            raise WeightStreamError(
                "odd-count padding token is not a zero byte",
                core=core,
                bit_offset=base_bit + int(steps_at[npairs - 1]),
            )
        cls, pay = cls[:-1], pay[:-1]
    if not head.index_bits:
        return BYTE_TABLES["plain_dec"][cls, pay].astype(np.uint8)
    table = np.zeros(1 << head.index_bits, dtype=np.int64)
    table[: len(head.table)] = head.table
    is_run = cls == 0
    run = np.where(is_run, table[np.where(is_run, pay, 0)], 1)
    if np.any(run == 0):
        raise WeightStreamError(
            "a zero run names an empty run-length table entry", core=core, bit_offset=base_bit
        )
    if np.any(is_run[:COUNT_BYTES]):
        raise WeightStreamError(
            "a zero run inside the kernel count", core=core, bit_offset=base_bit
        )
    out = np.zeros(int(run.sum()), dtype=np.uint8)
    out[np.cumsum(run)[~is_run] - 1] = BYTE_TABLES["zrl_dec"][cls[~is_run], pay[~is_run]]
    return out
