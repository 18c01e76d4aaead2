"""Per-job counters of the simulated NPU, for the cost model (one record per NN or TP
instruction; a multi-core TP job is one record)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def frozen_counts(counts: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(counts))


@dataclass(frozen=True, slots=True)
class JobCounters:
    """What one NN or TP instruction did.

    ``bytes_read`` keys: ``input``, ``weights`` (compressed, DRAM), ``lut``, ``config``;
    ``bytes_written``: ``output``. ``weight_bytes_fetched`` is the compressed coefficient
    traffic from DRAM, ``sram_hits`` the bytes served from the on-chip SRAM caches.
    """

    unit: str  # "NN" or "TP"
    fence: int
    index: int  # job index inside its submit
    config_address: int
    kind: str  # NN: "conv", "depthwise", "add", "fc"; TP: "copy", "pwl"
    macs: int = 0
    bytes_read: Mapping[str, int] = field(default_factory=lambda: frozen_counts({}))
    bytes_written: Mapping[str, int] = field(default_factory=lambda: frozen_counts({}))
    weight_bytes_fetched: int = 0
    sram_hits: int = 0
    cores: int = 1
    tiles: int = 1
    superblocks: int = 1
    # NN only, for the cost model (util/performance.py): MAC slots the MADs issue (each kernel
    # row in groups of macs_per_mad taps), those whose weights are not all zero, and the
    # programmed output width with its tile width.
    slot_macs: int = 0
    nonzero_slot_macs: int = 0
    out_x: int = 0
    tile_x: int = 0
