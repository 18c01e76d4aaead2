"""Decoded weights shared across tasks and invokes, keyed by the bytes they were decoded from.

A simulator convenience with no hardware counterpart: the CBUF still holds exactly what a core
fetched (``npu.CbufWeights``), but decoding the packed layout and preparing the matrices for the
MAC array is done once per distinct weight stream. The key is a digest of the stream's bytes and
its geometry, so a CPU write to a weight BO is always seen. One cache per device, bounded by the
memory its entries hold (least recently used first out).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

# Enough for the weights of a large classification model with their float32 matrices.
DEFAULT_LIMIT_BYTES = 512 * 1024 * 1024


@dataclass(slots=True)
class DecodedWeights:
    weights: np.ndarray  # int8 [K, kh, kw, C] or [kh, kw, C]
    prepared: dict = field(default_factory=dict)  # (OW fold, sum column) -> core.Weights
    max_abs: int = field(init=False)

    def __post_init__(self) -> None:
        self.max_abs = int(np.abs(self.weights.astype(np.int16)).max()) if self.weights.size else 0

    @property
    def nbytes(self) -> int:
        return self.weights.nbytes + sum(p.matrix.nbytes for p in self.prepared.values())


class DecodeCache:
    def __init__(self, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self.limit = limit_bytes
        self._entries: OrderedDict[tuple, DecodedWeights] = OrderedDict()

    @staticmethod
    def key(raw: np.ndarray, geometry: tuple) -> tuple:
        return (hashlib.blake2b(memoryview(raw), digest_size=16).digest(), geometry)

    def get(self, key: tuple) -> DecodedWeights | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple, entry: DecodedWeights) -> None:
        self._entries[key] = entry
        self.trim()

    def trim(self) -> None:
        total = sum(e.nbytes for e in self._entries.values())
        while total > self.limit and len(self._entries) > 1:
            _, old = self._entries.popitem(last=False)
            total -= old.nbytes
