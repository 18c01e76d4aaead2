"""``teflon profile``: where the time would go on the chip, per layer (Vela's and rknn's
per-layer reports).

Each model is partitioned for the device as the delegate would; every partition is compiled and
invoked once on the device (seeded random inputs: the counters depend on shapes and weights,
not on data), and the device's per-job counters go through the cost model
(``util/performance.py``) for the SoC the device simulates. Jobs are grouped by the source
operation they came from. A row's ``cycles`` are its jobs' own estimates; its ``wall`` cycles
are its share of the invoke's timeline once jobs overlap across cores (``util/schedule.py``),
and the ``wall`` column sums exactly to the estimated NPU total, submissions included.

Operations left on the CPU are timed on this host, each as a one-operation model in LiteRT
(:mod:`single_op`), and reported apart: a measured host time is not an estimate of the board's
CPU. Several models are profiled as one chain (the classic MobileNet v1 is an embedding
extractor followed by a head).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...gallium.device import JobCounters, MlDevice
from ...gallium.loader import open_device
from ...util.performance import Bound, InvokeEstimate, device_soc, estimate_invoke
from . import single_op
from .partition import (
    Partition,
    check_quantized,
    execution_phases,
    make_partition,
    query_support,
)
from .tflite import ModelError, TfliteModel, parse_model

SUBMIT = "(submit)"


@dataclass(frozen=True, slots=True)
class LayerRow:
    """One source operation's NPU jobs in one partition (or a partition's submission)."""

    model: str
    partition: int  # numbered across the chain, from 0
    op_index: int  # -1 for the submission row
    op_name: str
    jobs: tuple[str, ...]
    macs: int
    issued_macs: int  # MAC slots the arrays issued (fewer than macs on a zero-skipping core)
    dram_read: int
    dram_written: int
    sram_bytes: int
    compute: int  # cycles, summed over the row's jobs
    dram: int
    sram: int
    overhead: int
    cycles: int  # the jobs' own estimates, summed
    wall: int  # the row's share of the timeline; the column sums to the total
    bound: Bound  # of the row's longest job
    peak_mac_cycles: int  # sum over jobs of (peak MACs/cycle of its cores x its cycles)

    @property
    def utilisation(self) -> float:
        return self.issued_macs / self.peak_mac_cycles if self.peak_mac_cycles else 0.0

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["bound"] = self.bound.value
        out["utilisation"] = round(self.utilisation, 4)
        del out["peak_mac_cycles"]
        return out


@dataclass(frozen=True, slots=True)
class CpuRow:
    model: str
    op_index: int
    op_name: str
    reason: str  # why the NPU did not take it
    host_ms: float | None  # None when it could not be timed (``problem`` says why)
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Profile:
    device: str
    soc: str
    clock_hz: int
    peak_macs_per_cycle: int  # of the whole NPU
    models: tuple[str, ...]
    rows: tuple[LayerRow, ...]
    cpu: tuple[CpuRow, ...]
    transitions: int  # NPU<->CPU switches along the chain
    unknowns: tuple[str, ...]  # inputs the cost model went without
    cpu_kernels: str

    @property
    def cycles(self) -> int:
        """Estimated NPU wall cycles (the sum of the rows' ``wall``)."""
        return sum(r.wall for r in self.rows)

    @property
    def busy_cycles(self) -> int:
        return sum(r.cycles for r in self.rows)

    @property
    def npu_ms(self) -> float:
        return self.cycles * 1e3 / self.clock_hz

    @property
    def cpu_ms(self) -> float:
        return sum(r.host_ms for r in self.cpu if r.host_ms is not None)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def dram_bytes(self) -> int:
        return sum(r.dram_read + r.dram_written for r in self.rows)

    @property
    def sram_bytes(self) -> int:
        return sum(r.sram_bytes for r in self.rows)

    @property
    def utilisation(self) -> float:
        """MAC slots issued over what the whole NPU could issue in the estimated time."""
        issued = sum(r.issued_macs for r in self.rows)
        return issued / (self.peak_macs_per_cycle * self.cycles) if self.cycles else 0.0

    def ms(self, cycles: int) -> float:
        return cycles * 1e3 / self.clock_hz

    def to_json(self) -> dict:
        return {
            "device": self.device,
            "soc": self.soc,
            "clock_hz": self.clock_hz,
            "models": list(self.models),
            "total": {
                "cycles": self.cycles,
                "busy_cycles": self.busy_cycles,
                "npu_ms": round(self.npu_ms, 6),
                "cpu_host_ms": round(self.cpu_ms, 6),
                "macs": self.macs,
                "dram_bytes": self.dram_bytes,
                "sram_bytes": self.sram_bytes,
                "utilisation": round(self.utilisation, 4),
                "transitions": self.transitions,
            },
            "layers": [r.to_json() for r in self.rows],
            "cpu": [dataclasses.asdict(r) for r in self.cpu],
            "cpu_kernels": self.cpu_kernels,
            "unknowns": list(self.unknowns),
        }


# -- running ------------------------------------------------------------------------------------


def _feed(model: TfliteModel, part: Partition, rng: np.random.Generator) -> dict:
    feed = {}
    for index in part.inputs:
        pipe = model.tensor(index).pipe
        dtype = pipe.type.numpy
        info = np.iinfo(dtype)
        feed[index] = rng.integers(info.min, info.max, pipe.shape, dtype=dtype, endpoint=True)
    return feed


def measure_partition(
    device: MlDevice, model: TfliteModel, part: Partition, seed: int
) -> list[JobCounters]:
    """Compile (through a blob, as the delegate does), invoke once, return the counters."""
    blob = device.subgraph_create(part.ops).serialize()
    ctx = device.create_context()
    try:
        subgraph = ctx.subgraph_deserialize(blob)
        ctx.subgraph_invoke(subgraph, _feed(model, part, np.random.default_rng(seed)))
        return ctx.last_counters()
    finally:
        ctx.destroy()


def layer_rows(model: str, number: int, est: InvokeEstimate, counters, names) -> list[LayerRow]:
    """Rows of one invoke: jobs grouped by source operation (first-seen order), then the
    submission. ``names`` maps an op index to its TFLite name."""
    groups: dict[int, list[int]] = {}
    for j, c in enumerate(counters):
        groups.setdefault(c.op_index, []).append(j)
    rows = []
    for op_index, jobs in groups.items():
        costs = [est.costs[j] for j in jobs]
        longest = max(costs, key=lambda c: c.total)
        rows.append(
            LayerRow(
                model=model,
                partition=number,
                op_index=op_index,
                op_name=names.get(op_index, "?"),
                jobs=tuple(counters[j].name for j in jobs),
                macs=sum(counters[j].macs for j in jobs),
                issued_macs=sum(c.issued for c in costs),
                dram_read=sum(sum(counters[j].bytes_read.values()) for j in jobs),
                dram_written=sum(sum(counters[j].bytes_written.values()) for j in jobs),
                sram_bytes=sum(counters[j].sram_hits for j in jobs),
                compute=sum(c.compute for c in costs),
                dram=sum(c.dram for c in costs),
                sram=sum(c.sram for c in costs),
                overhead=sum(c.overhead for c in costs),
                cycles=sum(c.total for c in costs),
                wall=sum(est.schedule.walls[j] for j in jobs),
                bound=longest.bound,
                peak_mac_cycles=sum(c.peak_macs_per_cycle * c.total for c in costs),
            )
        )
    submit = est.submit_cycles
    rows.append(
        LayerRow(model, number, -1, SUBMIT, (), 0, 0, 0, 0, 0, 0, 0, 0, submit, submit, submit,
                 Bound.OVERHEAD, 0)
    )  # fmt: skip
    return rows


def _cpu_row(raw: bytes, model: TfliteModel, op_index: int, reason: str, kernels: str, seed: int):
    op = model.ops[op_index]
    try:
        ms = single_op.host_ms(single_op.single_op_model(raw, op_index), kernels=kernels, seed=seed)
    except ModelError as e:
        return CpuRow(model.name, op_index, op.name, reason, None, str(e))
    return CpuRow(model.name, op_index, op.name, reason, ms)


def profile(
    models: Sequence[str],
    device: str,
    *,
    seed: int = 0,
    cpu_kernels: str = "builtin",
    time_cpu: bool = True,
) -> Profile:
    """Profile ``models`` (a chain) on ``device``."""
    row = device_soc(device)
    if row is None:
        raise ModelError(
            f"device '{device}' has no SoC description for the cost model "
            "(profile runs on etnaviv:<soc> and rocket devices)"
        )
    dev = open_device(device)
    rows: list[LayerRow] = []
    cpu: list[CpuRow] = []
    unknowns: dict[str, None] = {}
    kinds: list[bool] = []  # per executed segment: True = NPU
    number = 0
    hw = None
    try:
        for path in models:
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except OSError as e:
                raise ModelError(f"cannot read {path}: {e.strerror}") from None
            model = parse_model(raw, path)
            check_quantized(model)
            support = query_support(model, dev)
            names = {op.index: op.name for op in model.ops}
            for claimed, groups in execution_phases(model, support):
                for nodes in groups:
                    kinds.append(claimed)
                    if not claimed:
                        cpu += [
                            _cpu_row(raw, model, n, support[n].reason, cpu_kernels, seed)
                            if time_cpu
                            else CpuRow(model.name, n, model.ops[n].name, support[n].reason, None)
                            for n in nodes
                        ]
                        continue
                    part = make_partition(model, support, nodes)
                    counters = measure_partition(dev, model, part, seed)
                    est = estimate_invoke(counters, row)
                    hw = est.hw
                    unknowns.update((u.value, None) for u in est.unknowns)
                    rows += layer_rows(model.name, number, est, counters, names)
                    number += 1
    finally:
        dev.destroy()
    transitions = sum(1 for a, b in itertools.pairwise(kinds) if a != b)
    peak = row.npu.compute_cores * row.npu.macs_per_cycle_per_core
    return Profile(
        device=device,
        soc=row.name,
        clock_hz=hw.clock_hz if hw else row.npu_clock_hz,
        peak_macs_per_cycle=peak,
        models=tuple(os.path.basename(m) for m in models),
        rows=tuple(rows),
        cpu=tuple(cpu),
        transitions=transitions,
        unknowns=tuple(unknowns),
        cpu_kernels=cpu_kernels,
    )


def with_option(device: str, option: str) -> str:
    """``device`` with one more driver option (``key=value``) after its name."""
    key, sep, value = option.partition("=")
    if not key or not sep or not value or "&" in option or "?" in option:
        raise ModelError(f"--compare option '{option}' is not key=value")
    return f"{device}{'&' if '?' in device else '?'}{option}"


def compare(
    models: Sequence[str], device: str, options: Sequence[str], **kwargs
) -> list[tuple[str, Profile]]:
    """The baseline and one profile per option. CPU operations the baseline already timed keep
    their time (a device option does not change the host); others are timed when they appear."""
    base = profile(models, device, **kwargs)
    timed = {(r.model, r.op_index): r for r in base.cpu}
    variants = [("baseline", base)]
    for option in options:
        p = profile(models, with_option(device, option), **kwargs | {"time_cpu": False})
        cpu = tuple(timed.get((r.model, r.op_index)) or _retime(r, models, kwargs) for r in p.cpu)
        variants.append((option, dataclasses.replace(p, cpu=cpu)))
    return variants


def _retime(r: CpuRow, models: Sequence[str], kwargs: dict) -> CpuRow:
    if not kwargs.get("time_cpu", True):
        return r
    path = next(m for m in models if os.path.basename(m) == r.model)
    with open(path, "rb") as f:
        raw = f.read()
    model = parse_model(raw, path)
    kernels = kwargs.get("cpu_kernels", "builtin")
    return _cpu_row(raw, model, r.op_index, r.reason, kernels, kwargs.get("seed", 0))
