"""Per-layer choices of the v8 weight codec: the symbol map and the zero-run table.

Mesa (``etnaviv_ml_nn_v8.c``: ``calculate_symbol_map``, ``sort_map``) sorts the eight bit-length
classes by frequency with a 19-comparator network and leaves the run-length table empty. Here:

- **Symbol map, exhaustively.** A token of class c coded with symbol s costs
  ``CODE_BITS[s] + payload_bits(c)``; the payload does not depend on the symbol, so a map only
  decides which class gets which of the code lengths {2, 2, 3, 3, 3, 4, 5, 5} (free bit counted).
  There are 8!/(2!·3!·1!·2!) = 1680 distinct ways; every one is sized per core (each core's
  stream is padded to 512 bits) with one small matrix product, and the smallest buffer wins.
  Sorting by frequency (Mesa) minimises the unpadded bit count, so it is one of the optima up to
  the padding.
- **Run table, greedy forward selection.** For 2**R entries (R = 1..4, the 18-byte table holds at
  most 16 indexable entries), start empty and repeatedly add the run length that most reduces the
  estimated cost of all zero runs, each run cut greedily into table entries (largest first) and
  leftover single zeros coded verbatim. The estimate uses 3 code bits per token; the final
  choice is made on the exact buffer size.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

CLASSES = 8  # bit-length classes and Huffman symbols (brief §3.2)
# Bits a symbol's code adds beyond its payload: the 3-bit code, plus the 2-bit code of symbols
# 5..7, minus the free bit of symbols 0, 1 and 5 (brief §3.2 code book).
CODE_BITS = np.array([2, 2, 3, 3, 3, 4, 5, 5], dtype=np.int64)
MAX_RUN = 255  # a run-length table entry is one byte
MAX_RUN_INDEX_BITS = 4  # 2**4 entries fit the 18-byte table; 2**5 would not
_EST_CODE_BITS = 3  # code bits assumed per token while choosing a run table
_CANDIDATES = 48  # run lengths tried per forward-selection step
# Mesa's sort_map() comparator network (pairs of symbol positions), a fact of Mesa's encoder.
MESA_SORT_NETWORK = (
    (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7), (0, 1), (2, 3),
    (4, 5), (6, 7), (2, 4), (3, 5), (1, 4), (3, 6), (1, 2), (3, 4), (5, 6),
)  # fmt: skip


def _assignments() -> tuple[np.ndarray, np.ndarray]:
    """Every distinct class -> code-length assignment: (symbol of each class, its code bits)."""
    symbols = []
    classes = range(CLASSES)
    for two in combinations(classes, 2):
        rest = [c for c in classes if c not in two]
        for three in combinations(rest, 3):
            rest2 = [c for c in rest if c not in three]
            for four in rest2:
                five = [c for c in rest2 if c != four]
                sym = np.empty(CLASSES, dtype=np.int64)
                sym[list(two)] = (0, 1)
                sym[list(three)] = (2, 3, 4)
                sym[four] = 5
                sym[five] = (6, 7)
                symbols.append(sym)
    table = np.array(symbols)
    table.setflags(write=False)
    costs = CODE_BITS[table]
    costs.setflags(write=False)
    return table, costs


ASSIGNMENT_SYMBOLS, ASSIGNMENT_COSTS = _assignments()  # [1680, 8] each, read-only


def symbol_map_of(class_symbols: np.ndarray) -> tuple[int, ...]:
    """Header symbol map (class of each symbol) from the symbol of each class."""
    out = np.empty(CLASSES, dtype=np.int64)
    out[np.asarray(class_symbols)] = np.arange(CLASSES)
    return tuple(int(c) for c in out)


def mesa_symbol_map(histogram: np.ndarray) -> tuple[int, ...]:
    """Mesa's ``sort_map``: start from the identity and swap by the comparator network so that
    symbol 0 codes the most frequent class. Returns the class of each symbol."""
    order = list(range(CLASSES))
    for a, b in MESA_SORT_NETWORK:
        if histogram[order[a]] < histogram[order[b]]:
            order[a], order[b] = order[b], order[a]
    return tuple(order)


def padded_bytes(bits: np.ndarray, align_bits: int) -> np.ndarray:
    return -(-bits // align_bits) * (align_bits // 8)


def best_symbol_map(
    histograms: np.ndarray, payload_bits: np.ndarray, fixed_bits: np.ndarray, align_bits: int
) -> tuple[tuple[int, ...], int]:
    """Smallest padded size over all assignments.

    ``histograms`` [cores, 8] token counts per class, ``payload_bits`` [8] per class,
    ``fixed_bits`` [cores] bits not depending on the map. Returns (symbol map, bytes).
    """
    base = histograms @ payload_bits + fixed_bits  # [cores]
    bits = ASSIGNMENT_COSTS @ histograms.T + base[None, :]  # [1680, cores]
    sizes = padded_bytes(bits, align_bits).sum(axis=1)
    best = int(np.argmin(sizes))
    return symbol_map_of(ASSIGNMENT_SYMBOLS[best]), int(sizes[best])


def map_size(
    symbol_map: tuple[int, ...],
    histograms: np.ndarray,
    payload_bits: np.ndarray,
    fixed_bits: np.ndarray,
    align_bits: int,
) -> int:
    """Padded size of the streams with a given symbol map (class of each symbol)."""
    class_cost = np.empty(CLASSES, dtype=np.int64)
    class_cost[list(symbol_map)] = CODE_BITS
    bits = histograms @ (class_cost + payload_bits) + fixed_bits
    return int(padded_bytes(bits, align_bits).sum())


def cut_runs(lengths: np.ndarray, tables: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy cut of every run into table entries, largest first.

    ``lengths`` [n], ``tables`` [t, E] sorted descending with 0 for an absent entry. Returns
    (per-entry chunk counts [t, n, E], leftover single zeros [t, n]).
    """
    rem = np.broadcast_to(lengths[None, :], (tables.shape[0], lengths.size)).copy()
    counts = np.zeros((*rem.shape, tables.shape[1]), dtype=np.int64)
    for j in range(tables.shape[1]):
        entry = tables[:, j : j + 1]
        q = np.where(entry > 0, rem // np.maximum(entry, 1), 0)
        counts[:, :, j] = q
        rem -= q * entry
    return counts, rem


def run_tables(
    run_lengths: np.ndarray, run_counts: np.ndarray, verbatim_bits: int
) -> list[tuple[int, ...]]:
    """Candidate zero-run tables of 2, 4, 8 and 16 entries (descending), from one forward
    selection: each step adds the run length that most lowers the estimated bits of all runs,
    with the index width the table has at that size. Stops when no entry helps."""
    if run_lengths.size == 0:
        return []
    mass = run_counts * run_lengths
    candidates = np.unique(np.minimum(run_lengths[np.argsort(-mass)][:_CANDIDATES], MAX_RUN))
    single = _EST_CODE_BITS + verbatim_bits
    best_cost = int(mass.sum()) * single
    table: list[int] = []
    out = []
    while len(table) < 1 << MAX_RUN_INDEX_BITS:
        trial = [c for c in candidates.tolist() if c not in table]
        if not trial:
            break
        index_bits = max(1, len(table).bit_length())  # bits to index len(table) + 1 entries
        tables = np.array([sorted([*table, c], reverse=True) for c in trial])
        counts, left = cut_runs(run_lengths, tables)
        cost = (counts.sum(axis=2) * (_EST_CODE_BITS + index_bits) + left * single) @ run_counts
        pick = int(np.argmin(cost))
        if cost[pick] >= best_cost:
            break
        best_cost = int(cost[pick])
        table = [int(v) for v in tables[pick]]
        if len(table) & (len(table) - 1) == 0:  # a full table for its index width
            out.append(tuple(table))
    if table and tuple(table) not in out:
        out.append(tuple(table))
    return out
