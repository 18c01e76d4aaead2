"""Shared pieces of the etnaviv weight codecs: options, the stream error, numpy bit packing.

Both coefficient formats (v7 zero-run-length, ``codec_v7``; v8 Huffman, ``codec_v8``) are
LSB-first bit streams written as little-endian 32-bit words (Mesa's ``append_bits()`` in
``etnaviv_ml_nn_v7.c`` / ``_v8.c``; brief ``etnaviv-ml.md`` §3). Mesa appends one field at a
time; here every field of a buffer is laid out at once: the caller computes each field's bit
offset (a cumulative sum of widths) and :func:`pack_fields` scatters all of them in one pass.
:func:`read_fields` is the vectorised inverse used by the decoders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORD_BITS = 32  # the streams are written as 32-bit words (brief §3.1, §3.2)
_WORD_MASK = np.uint64(0xFFFFFFFF)
_WINDOW_BYTES = 8  # read_fields() reads one unaligned 64-bit window per field
_MAX_READ_BITS = 56  # a 64-bit window starting at any bit of a byte holds >= 57 bits


class WeightStreamError(ValueError):
    """A coefficient buffer that cannot be decoded.

    ``core`` is the NN core whose stream is bad (None for the buffer header), ``bit_offset`` the
    bit offset from the start of the buffer where the problem was found. The simulator turns
    this into a job fault.
    """

    def __init__(self, reason: str, *, core: int | None = None, bit_offset: int = 0) -> None:
        where = "header" if core is None else f"core {core}"
        super().__init__(f"weight stream {where}, bit {bit_offset}: {reason}")
        self.reason = reason
        self.core = core
        self.bit_offset = bit_offset


@dataclass(frozen=True, slots=True)
class WeightCompressionConfig:
    """How the driver compresses weights; a cache key for compressed buffers.

    - ``enabled=False``: no compression choices at all: v7 writes every weight as a plain byte
      (zrl_bits 0), v8 uses the identity symbol map (symbol i codes bit length i), no run mode.
    - ``search=False``: Mesa's choices: v7 tries zrl_bits from the hardware maximum down and
      stops when the size grows (0 for pointwise and add jobs); v8 sorts the symbol map by the
      bit-length histogram with Mesa's sorting network (histogram of the coded ``w - wzp``
      bytes; Mesa reads the raw bytes, the same thing for symmetric int8 weights).
    - ``search=True``: per layer, the smallest buffer: v7 tries every zrl_bits up to the hardware
      maximum; v8 tries every distinct symbol assignment (1680 cost classes) and, when ``v8_zrl``
      is set, the zero-run mode with a searched run-length table. Never larger than Mesa's choice
      on the same data (Mesa's choice is one of the candidates).
    - ``v8_zrl``: allow the v8 zero-run mode. Its hardware meaning is our interpretation (see
      ``codec_v8``), so it is off by default, as in Mesa.
    """

    enabled: bool = True
    search: bool = True
    v8_zrl: bool = False


def align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _split(offsets: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    offsets = np.asarray(offsets, dtype=np.int64)
    shifted = np.asarray(values, dtype=np.uint64) << (offsets & 31).astype(np.uint64)
    return offsets >> 5, shifted & _WORD_MASK, shifted >> np.uint64(WORD_BITS)


def pack_sorted(words: np.ndarray, offsets: np.ndarray, values: np.ndarray) -> None:
    """OR bit fields into ``words`` (uint64 array of 32-bit words, one spare at the end).

    ``offsets`` are absolute LSB-first bit offsets in nondecreasing order, each value below
    ``1 << width`` for a field width of at most 32, and fields do not overlap. Fields sharing a
    word are combined with one ``bitwise_or.reduceat`` per word half."""
    if len(offsets) == 0:
        return
    word, low, high = _split(offsets, values)
    starts = np.flatnonzero(np.diff(word)) + 1
    starts = np.concatenate([[0], starts])
    heads = word[starts]
    words[heads] |= np.bitwise_or.reduceat(low, starts)
    words[heads + 1] |= np.bitwise_or.reduceat(high, starts)


def pack_fields(words: np.ndarray, offsets: np.ndarray, values: np.ndarray) -> None:
    """OR bit fields at arbitrary (non-overlapping) offsets into ``words``; for few fields."""
    if len(offsets) == 0:
        return
    word, low, high = _split(offsets, values)
    index = np.concatenate([word, word + 1])
    parts = np.concatenate([low, high])
    order = np.argsort(index, kind="stable")
    index, parts = index[order], parts[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(index)) + 1])
    words[index[starts]] |= np.bitwise_or.reduceat(parts, starts)


def new_words(nbytes: int) -> np.ndarray:
    """A zeroed word array for ``nbytes`` bytes of stream (plus one spare word)."""
    return np.zeros(align(nbytes, 4) // 4 + 1, dtype=np.uint64)


def words_to_bytes(words: np.ndarray, nbytes: int) -> np.ndarray:
    return words.astype("<u4").view(np.uint8)[:nbytes].copy()


def byte_windows(data: np.ndarray) -> np.ndarray:
    """For every byte index i (and one past the end, for empty fields that end the buffer), the
    little-endian 64-bit word made of bytes i..i+7, zeros past the end. Reading a field is then
    one gather and one shift."""
    data = np.asarray(data, dtype=np.uint8)
    n = data.size + 1
    padded = np.concatenate([data, np.zeros(_WINDOW_BYTES + 1, dtype=np.uint8)]).astype(np.uint64)
    windows = np.zeros(n, dtype=np.uint64)
    for k in range(_WINDOW_BYTES):
        windows |= padded[k : k + n] << np.uint64(8 * k)
    return windows


def read_fields(windows: np.ndarray, offsets: np.ndarray, widths: np.ndarray | int) -> np.ndarray:
    """Read fields of ``widths`` (<= 56) bits at bit ``offsets`` (inside the windowed buffer)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    widths = np.asarray(widths, dtype=np.uint64)
    assert int(widths.max(initial=0)) <= _MAX_READ_BITS
    raw = windows[offsets >> 3] >> (offsets & 7).astype(np.uint64)
    return raw & ((np.uint64(1) << widths) - np.uint64(1))


def zero_order_entropy_bits(values: np.ndarray) -> float:
    """Zero-order (memoryless) entropy of a byte tensor, in bits: the count times the entropy of
    the value histogram. The bound any per-symbol code without context can reach."""
    counts = np.bincount(np.asarray(values, dtype=np.uint8).ravel(), minlength=256)
    counts = counts[counts > 0].astype(np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    return float(-(counts * np.log2(counts / total)).sum())
