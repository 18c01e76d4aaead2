"""The cost model: estimated NPU cycles per job, from what the device measured and the SoC row.

Shaped like Vela's ``npu_performance.py``: a small frozen :class:`PerformanceQuery` goes in,
a :class:`CycleCost` comes out of one pure function, :func:`estimate`, and the same call serves
the per-layer report (``teflon profile``), the delegate's ``hardware ms`` column and the
ablations. There is no constant in this module: every rate and fixed cost is a field of the SoC
row (``util/soc.py``) with its source, read once into :class:`HardwareFacts`.

Per job::

    compute  = work / (cores used x MACs per cycle per core x lane occupancy)   (NN, CNA)
             = elements / (cores used x elements per cycle per core)          (TP units)
    dram     = (bytes read + bytes written) x clock / sustained DRAM bandwidth
    sram     = bytes served by the on-chip SRAM / SRAM bytes per cycle
    overhead = job fixed cost + tasks x (task fixed cost + DRAM latency)
    cycles   = max(compute, dram, sram) + overhead

and the bound is the largest of the three (``overhead`` when the fixed costs outweigh them).
``work`` is the MACs the device counted, or, when it reports them, the MAC *slots* the array
issues: VeriSilicon's MADs take ``macs_per_mad`` taps of one kernel row per cycle, so a 1x1
kernel fills one slot in three (``slot_macs``), and a zero-skipping core skips the slot groups
whose weights are all zero (``nonzero_slot_macs``). ``lane occupancy`` is the share of the
core's MAD lanes (one output pixel of a tile row each) a layer keeps busy,
``out_x / (ceil(out_x / tile_x) x lanes)``, when the device reports its tile width.
All divisions round up, so cycles are integers and sums are exact. Jobs overlap across cores as
their buffers allow (:mod:`util.schedule`); each subgraph invoke adds the submission cost.

What the model is not: a cycle-accurate simulator. It has no tiling or burst model, and it
believes the counters. Inputs the devices do not report yet become named :class:`Unknown`
entries on the query (for example the MACs a zero-skipping NN core would skip), and the
estimate says which ones it went without.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from ..gallium.device import JobCounters
from .schedule import Schedule, Slot, schedule
from .soc import SOCS, EtnavivNpu, Soc

US_PER_S = 1_000_000


class Bound(enum.Enum):
    """What limits a job: the larger of its compute and memory times, or its fixed costs."""

    COMPUTE = "compute"
    DRAM = "dram"
    SRAM = "sram"
    OVERHEAD = "overhead"


class Engine(enum.Enum):
    MAC = "mac"  # a MAC array: compute time from MACs
    STREAM = "stream"  # a data mover (etnaviv TP): compute time from elements moved


class JobKind(enum.Enum):
    """The job types drivers report in ``JobCounters.kind``; each carries its engine."""

    NN = ("nn", Engine.MAC)  # etnaviv NN unit instruction
    TP = ("tp", Engine.STREAM)  # etnaviv TP unit instruction
    CONV = ("conv", Engine.MAC)  # rocket CNA+CORE+DPU job, direct convolution
    DEPTHWISE = ("depthwise", Engine.MAC)
    ADD = ("add", Engine.MAC)
    FC = ("fc", Engine.MAC)

    def __init__(self, label: str, engine: Engine) -> None:
        self.label = label
        self.engine = engine

    @classmethod
    def parse(cls, text: str) -> JobKind | None:
        for kind in cls:
            if kind.label == text:
                return kind
        return None


class Unknown(enum.Enum):
    """Inputs the model would use but the counters do not (yet) provide."""

    KIND = "job kind not reported: inferred from the MAC count"
    SLOTS = (
        "dot-product width not modelled: no count of the MAC slots the array issues "
        "(a 1x1 kernel fills one of a MAD's taps)"
    )
    NONZERO = "zero skipping not modelled: no count of the MAC slots with a non-zero weight"
    LANES = "MAD lane occupancy not modelled: no tile width (a narrow layer idles most lanes)"
    BUFFERS = "buffers not reported: jobs assumed to run one after the other"


@dataclass(frozen=True, slots=True)
class HardwareFacts:
    """The SoC row's cost fields in the units the model uses (cycles, bytes)."""

    soc: str
    clock_hz: int
    compute_cores: int
    macs_per_cycle_per_core: int
    stream_cores: int
    stream_elements_per_cycle_per_core: int
    dram_bytes_per_s: int
    sram_bytes_per_cycle: int
    zero_skipping: bool
    mac_lanes_per_core: int  # output pixels a core computes side by side (0: not modelled)
    submit_cycles: int
    job_cycles: int
    task_cycles: int
    latency_cycles: int

    @classmethod
    def from_soc(cls, row: Soc) -> HardwareFacts:
        npu = row.npu
        etna = isinstance(npu, EtnavivNpu)
        clock = row.npu_clock_hz
        return cls(
            soc=row.name,
            clock_hz=clock,
            compute_cores=npu.compute_cores,
            macs_per_cycle_per_core=npu.macs_per_cycle_per_core,
            stream_cores=npu.tp_cores if etna else 0,
            stream_elements_per_cycle_per_core=npu.tp_bytes_per_cycle if etna else 0,
            dram_bytes_per_s=row.dram_bytes_per_s,
            sram_bytes_per_cycle=row.sram_bytes_per_cycle,
            zero_skipping=npu.zero_skipping if etna else False,
            mac_lanes_per_core=npu.mad_per_core if etna else 0,
            submit_cycles=us_to_cycles(row.submit_overhead_us, clock),
            job_cycles=us_to_cycles(row.job_overhead_us, clock),
            task_cycles=us_to_cycles(row.task_overhead_us, clock),
            latency_cycles=ceil_div(row.dram_latency_ns * clock, 1_000_000_000),
        )

    @property
    def peak_macs_per_cycle(self) -> int:
        """MACs per cycle of the whole NPU."""
        return self.compute_cores * self.macs_per_cycle_per_core

    def cycles_to_ms(self, cycles: int) -> float:
        return cycles * 1e3 / self.clock_hz


@dataclass(frozen=True, slots=True)
class PerformanceQuery:
    """One job as the cost model sees it (built by :func:`query_from_counters`)."""

    kind: JobKind
    macs: int  # MACs the hardware performed (counted by the device)
    elements: int  # elements a streaming unit moved (its output bytes for int8)
    dram_bytes: int  # read + written, every buffer role
    sram_bytes: int  # served by the on-chip SRAM instead of DRAM
    cores: int  # cores the job ran on
    tasks: int
    slot_macs: int | None = None  # MAC slots the array issues (dot-product groups padded)
    nonzero_slot_macs: int | None = None  # the same without all-zero weight groups
    out_x: int | None = None  # output width of the job and its tile width (lane occupancy)
    tile_x: int | None = None
    unknowns: frozenset[Unknown] = frozenset()


@dataclass(frozen=True, slots=True)
class CycleCost:
    """Estimated cycles of one job, split by cause."""

    compute: int
    dram: int
    sram: int
    overhead: int
    macs: int  # MACs the device counted
    issued: int  # MAC slots the array issued (the compute time's work; <= peak x cycles)
    peak_macs_per_cycle: int  # of the cores the job ran on

    @property
    def busy(self) -> int:
        """The limiting one of compute, DRAM and SRAM time (they overlap)."""
        return max(self.compute, self.dram, self.sram)

    @property
    def total(self) -> int:
        return self.busy + self.overhead

    @property
    def bound(self) -> Bound:
        if self.overhead > self.busy:
            return Bound.OVERHEAD
        # Ties go to the first: compute, then DRAM, then SRAM.
        parts = ((self.compute, Bound.COMPUTE), (self.dram, Bound.DRAM), (self.sram, Bound.SRAM))
        return max(parts, key=lambda p: p[0])[1]

    @property
    def utilisation(self) -> float:
        """MAC slots issued over those the job's cores could have issued in its cycles (a
        zero-skipping core issues fewer slots than the MACs counted, so not MACs)."""
        if not self.total or not self.peak_macs_per_cycle:
            return 0.0
        return self.issued / (self.peak_macs_per_cycle * self.total)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def us_to_cycles(us: float, clock_hz: int) -> int:
    return round(us * clock_hz / US_PER_S)


def estimate(query: PerformanceQuery, hw: HardwareFacts) -> CycleCost:
    """The estimated cycles of one job: max(compute, DRAM, SRAM) + fixed costs. Pure."""
    cores = max(query.cores, 1)
    if query.kind.engine is Engine.STREAM:
        rate = cores * hw.stream_elements_per_cycle_per_core
        compute = ceil_div(query.elements, rate) if rate else 0
        peak = work = 0
    else:
        peak = cores * hw.macs_per_cycle_per_core
        work = query.macs if query.slot_macs is None else query.slot_macs
        if hw.zero_skipping and query.nonzero_slot_macs is not None:
            work = query.nonzero_slot_macs
        lanes, busy = 1, 1  # lane occupancy busy/lanes, 1 when unknown or not modelled
        if hw.mac_lanes_per_core and query.out_x and query.tile_x:
            lanes = ceil_div(query.out_x, query.tile_x) * hw.mac_lanes_per_core
            busy = query.out_x
        compute = ceil_div(work * lanes, peak * busy)
    dram = ceil_div(query.dram_bytes * hw.clock_hz, hw.dram_bytes_per_s)
    sram = ceil_div(query.sram_bytes, hw.sram_bytes_per_cycle)
    overhead = hw.job_cycles + query.tasks * (hw.task_cycles + hw.latency_cycles)
    return CycleCost(compute, dram, sram, overhead, query.macs, work, peak)


def infer_kind(counters: JobCounters, row: Soc) -> tuple[JobKind, bool]:
    """The job kind the driver reported, or a guess (and whether it is one)."""
    kind = JobKind.parse(counters.kind)
    if kind is not None:
        return kind, False
    if isinstance(row.npu, EtnavivNpu):
        return (JobKind.NN if counters.macs else JobKind.TP), True
    return JobKind.CONV, True


def query_from_counters(counters: JobCounters, row: Soc) -> PerformanceQuery:
    """The query for one measured job. Every byte the device reports in ``bytes_read`` and
    ``bytes_written`` went to DRAM; ``sram_hits`` are the bytes the SRAM served instead."""
    kind, guessed = infer_kind(counters, row)
    unknowns = {Unknown.KIND} if guessed else set()
    extra = counters.extra
    if kind.engine is Engine.MAC and isinstance(row.npu, EtnavivNpu):
        # The VeriSilicon NN core's structure (module docstring) needs these counters.
        wanted = (
            (Unknown.SLOTS, ("slot_macs",)),
            (Unknown.NONZERO, ("nonzero_slot_macs",) if row.npu.zero_skipping else ()),
            (Unknown.LANES, ("out_x", "tile_x")),
        )
        unknowns.update(u for u, keys in wanted if any(k not in extra for k in keys))
    if not counters.reads and not counters.writes:
        unknowns.add(Unknown.BUFFERS)
    return PerformanceQuery(
        kind=kind,
        macs=counters.macs,
        elements=sum(counters.bytes_written.values()),
        dram_bytes=sum(counters.bytes_read.values()) + sum(counters.bytes_written.values()),
        sram_bytes=counters.sram_hits,
        cores=len(counters.cores),
        tasks=counters.tasks,
        slot_macs=extra.get("slot_macs"),
        nonzero_slot_macs=extra.get("nonzero_slot_macs"),
        out_x=extra.get("out_x"),
        tile_x=extra.get("tile_x"),
        unknowns=frozenset(unknowns),
    )


def device_soc(device: str) -> Soc | None:
    """The SoC row of a device name (``etnaviv:a311d?sram=off``, ``rocket:rk3588@/dev/...``,
    ``rocket``); None for devices without one (``reference``)."""
    name = device.partition("?")[0].partition("@")[0]
    driver, _, soc_name = name.partition(":")
    if soc_name in SOCS and SOCS[soc_name].driver == driver:
        return SOCS[soc_name]
    rows = [r for r in SOCS.values() if r.driver == driver]
    if not soc_name and rows:
        return rows[0]  # the driver's default SoC is listed first
    return None


@dataclass(frozen=True, slots=True)
class InvokeEstimate:
    """One subgraph invoke: every job's query and cost, their overlap, and the submission."""

    hw: HardwareFacts
    queries: tuple[PerformanceQuery, ...]
    costs: tuple[CycleCost, ...]
    schedule: Schedule
    submit_cycles: int

    @property
    def cycles(self) -> int:
        """Wall cycles of the invoke: the overlapped jobs plus the submission."""
        return self.schedule.makespan + self.submit_cycles

    @property
    def busy_cycles(self) -> int:
        """The jobs' cycles one after the other (no overlap) plus the submission."""
        return sum(c.total for c in self.costs) + self.submit_cycles

    @property
    def ms(self) -> float:
        return self.hw.cycles_to_ms(self.cycles)

    @property
    def unknowns(self) -> frozenset[Unknown]:
        return frozenset(u for q in self.queries for u in q.unknowns)


def estimate_invoke(counters: Sequence[JobCounters], row: Soc) -> InvokeEstimate:
    """The estimate for one invoke's counters on ``row`` (no jobs: just the submission)."""
    hw = HardwareFacts.from_soc(row)
    queries = tuple(query_from_counters(c, row) for c in counters)
    costs = tuple(estimate(q, hw) for q in queries)
    slots = [
        Slot(cost.total, tuple(c.cores), tuple(c.reads), tuple(c.writes))
        for c, cost in zip(counters, costs, strict=True)
    ]
    return InvokeEstimate(hw, queries, costs, schedule(slots), hw.submit_cycles)
