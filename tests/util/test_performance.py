"""The cost model (util/performance.py) and the multi-core overlap (util/schedule.py).

Constructed cases use a hand-made :class:`HardwareFacts` with round numbers, so the expected
cycles below are worked out by hand from the formula in the module docstring.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.gallium.device import JobCounters
from mesa_npu.util.performance import (
    Bound,
    CycleCost,
    Engine,
    HardwareFacts,
    JobKind,
    PerformanceQuery,
    Unknown,
    device_soc,
    estimate,
    estimate_invoke,
    query_from_counters,
)
from mesa_npu.util.schedule import Slot, depends, schedule
from mesa_npu.util.soc import SOCS, soc

# 1 GHz, 4 cores x 100 MACs/cycle, 10 GB/s DRAM = 10 bytes/cycle, 50 SRAM bytes/cycle.
HW = HardwareFacts(
    soc="test",
    clock_hz=1_000_000_000,
    compute_cores=4,
    macs_per_cycle_per_core=100,
    stream_cores=2,
    stream_elements_per_cycle_per_core=1,
    dram_bytes_per_s=10_000_000_000,
    sram_bytes_per_cycle=50,
    zero_skipping=False,
    mac_lanes_per_core=0,
    submit_cycles=1000,
    job_cycles=30,
    task_cycles=7,
    latency_cycles=3,
)


def query(**kw) -> PerformanceQuery:
    base = dict(kind=JobKind.NN, macs=0, elements=0, dram_bytes=0, sram_bytes=0, cores=4, tasks=1)
    return PerformanceQuery(**(base | kw))


def test_compute_bound_job():
    # 400k MACs on 4 x 100 MAC/cycle = 1000 cycles; 2000 DRAM bytes at 10 B/cycle = 200.
    cost = estimate(query(macs=400_000, dram_bytes=2_000), HW)
    assert (cost.compute, cost.dram, cost.sram) == (1000, 200, 0)
    assert cost.overhead == 30 + 1 * (7 + 3)
    assert cost.total == 1040
    assert cost.bound is Bound.COMPUTE
    assert cost.utilisation == pytest.approx(400_000 / (400 * 1040))


def test_dram_bound_job():
    # 40k MACs = 100 cycles; 50 000 bytes = 5000 cycles.
    cost = estimate(query(macs=40_000, dram_bytes=50_000), HW)
    assert (cost.compute, cost.dram) == (100, 5000)
    assert cost.bound is Bound.DRAM
    assert cost.total == 5000 + 40


def test_sram_bound_job():
    cost = estimate(query(macs=40_000, dram_bytes=100, sram_bytes=100_000), HW)
    assert cost.sram == 2000  # 100 000 / 50
    assert cost.bound is Bound.SRAM


def test_overhead_bound_job_and_tasks():
    cost = estimate(query(macs=400, dram_bytes=10, tasks=3), HW)
    assert cost.busy == 1  # 400 MACs in one cycle
    assert cost.overhead == 30 + 3 * (7 + 3)
    assert cost.bound is Bound.OVERHEAD


def test_fewer_cores_take_longer():
    one = estimate(query(macs=400_000, cores=1), HW)
    four = estimate(query(macs=400_000, cores=4), HW)
    assert one.compute == 4 * four.compute == 4000


def test_stream_unit_counts_elements_per_core():
    cost = estimate(query(kind=JobKind.TP, elements=10_001, cores=2), HW)
    assert JobKind.TP.engine is Engine.STREAM
    assert cost.compute == 5001  # ceil(10 001 / (2 x 1))
    assert cost.peak_macs_per_cycle == 0 and cost.utilisation == 0.0


def test_slots_and_zero_skipping():
    # A 1x1 kernel fills one of three taps: three times the slots of its MACs.
    q = query(macs=400_000, slot_macs=1_200_000, nonzero_slot_macs=120_000)
    assert estimate(q, HW).compute == 3000
    skipping = dataclasses.replace(HW, zero_skipping=True)
    assert estimate(q, skipping).compute == 300
    assert estimate(dataclasses.replace(q, nonzero_slot_macs=None), skipping).compute == 3000
    assert estimate(q, HW).macs == 400_000  # utilisation still counts useful MACs


@pytest.mark.parametrize(
    ("out_x", "tile_x", "compute"),
    [
        (7, 7, 9143),  # 7 of 64 lanes busy: 1000 x 64 / 7, rounded up
        (100, 64, 1280),  # two passes of 64 lanes for 100 pixels: 1000 x 128 / 100
        (128, 64, 1000),  # every lane busy
        (None, 64, 1000),  # no output width: occupancy unknown, taken as full
    ],
)
def test_lane_occupancy(out_x, tile_x, compute):
    lanes = dataclasses.replace(HW, mac_lanes_per_core=64)
    assert estimate(query(macs=400_000, out_x=out_x, tile_x=tile_x), lanes).compute == compute
    # A device without the lane structure ignores the tile width.
    assert estimate(query(macs=400_000, out_x=out_x, tile_x=tile_x), HW).compute == 1000


@settings(max_examples=200, deadline=None)
@given(
    macs=st.integers(0, 10**9),
    dram=st.integers(0, 10**8),
    sram=st.integers(0, 10**8),
    cores=st.integers(1, 4),
    tasks=st.integers(1, 20),
)
def test_total_is_max_of_compute_and_memory_plus_overhead(macs, dram, sram, cores, tasks):
    q = query(macs=macs, dram_bytes=dram, sram_bytes=sram, cores=cores, tasks=tasks)
    c = estimate(q, HW)
    assert c.total == max(c.compute, c.dram, c.sram) + c.overhead
    # The bound names the largest part (or the overhead when it outweighs all three).
    parts = {Bound.COMPUTE: c.compute, Bound.DRAM: c.dram, Bound.SRAM: c.sram}
    if c.overhead > max(parts.values()):
        assert c.bound is Bound.OVERHEAD
    else:
        assert parts[c.bound] == max(parts.values())
    # Rounding up never loses a cycle: the parts cover the exact quotients.
    assert c.compute * cores * HW.macs_per_cycle_per_core >= macs
    assert c.dram * HW.dram_bytes_per_s >= dram * HW.clock_hz


def test_bound_ties_go_to_compute():
    c = CycleCost(compute=10, dram=10, sram=10, overhead=0, macs=0, issued=0, peak_macs_per_cycle=1)
    assert c.bound is Bound.COMPUTE


# -- queries from counters ---------------------------------------------------------------------


def test_query_from_counters_sums_every_role_and_names_unknowns():
    row = soc("a311d")
    c = JobCounters(
        op_index=3,
        name="conv#3",
        macs=1000,
        bytes_read={"input": 100, "weights": 20, "config": 136},
        bytes_written={"output": 50},
        cores=(0, 1, 2),
        sram_hits=77,
    )
    q = query_from_counters(c, row)
    assert q.dram_bytes == 100 + 20 + 136 + 50
    assert (q.sram_bytes, q.cores, q.kind) == (77, 3, JobKind.NN)
    assert q.unknowns == {
        Unknown.KIND,
        Unknown.BUFFERS,
        Unknown.SLOTS,
        Unknown.NONZERO,
        Unknown.LANES,
    }
    tp = dataclasses.replace(c, macs=0, kind="tp", reads=(1,), writes=(2,))
    q = query_from_counters(tp, row)
    assert q.kind is JobKind.TP and q.unknowns == frozenset()
    extra = {"slot_macs": 3000, "nonzero_slot_macs": 300, "out_x": 14, "tile_x": 14}
    known = dataclasses.replace(c, kind="nn", reads=(1,), writes=(2,), extra=extra)
    q = query_from_counters(known, row)
    assert (q.slot_macs, q.nonzero_slot_macs, q.out_x, q.tile_x) == (3000, 300, 14, 14)
    assert q.unknowns == frozenset()


def test_rocket_jobs_never_claim_zero_skipping():
    c = JobCounters(op_index=0, name="op000", macs=10, kind="conv", reads=(1,), writes=(2,))
    assert query_from_counters(c, soc("rk3588")).unknowns == frozenset()


def test_device_names_map_to_soc_rows():
    assert device_soc("etnaviv:imx8mp?compression=off") is SOCS["imx8mp"]
    assert device_soc("etnaviv") is SOCS["a311d"]
    assert device_soc("rocket") is SOCS["rk3588"]
    assert device_soc("rocket:rk3588@/dev/accel/accel0") is SOCS["rk3588"]
    assert device_soc("reference") is None
    assert device_soc("rocket:a311d") is None  # a row of another driver


def test_hardware_facts_come_from_the_row():
    row = soc("a311d")
    hw = HardwareFacts.from_soc(row)
    assert hw.macs_per_cycle_per_core == row.npu.mad_per_core * row.npu.macs_per_mad
    assert hw.peak_macs_per_cycle == row.npu.nn_cores * hw.macs_per_cycle_per_core
    assert hw.dram_bytes_per_s == int(row.dram_peak_bytes_per_s * row.dram_efficiency)
    assert hw.submit_cycles == round(row.submit_overhead_us * row.npu_clock_hz / 1e6)


def test_invoke_adds_the_submission_to_the_overlapped_jobs():
    row = soc("rk3588")
    jobs = [
        JobCounters(0, "a", macs=1024 * 1000, cores=(0,), kind="conv", reads=(1,), writes=(2,)),
        JobCounters(1, "b", macs=1024 * 1000, cores=(1,), kind="conv", reads=(1,), writes=(3,)),
    ]
    est = estimate_invoke(jobs, row)
    one = est.costs[0].total
    assert est.costs[1].total == one
    assert est.cycles == one + est.submit_cycles  # the two ran side by side
    assert est.busy_cycles == 2 * one + est.submit_cycles


# -- overlap -----------------------------------------------------------------------------------


def test_independent_jobs_on_different_cores_overlap():
    s = schedule([Slot(100, (0,), (1,), (2,)), Slot(60, (1,), (1,), (3,))])
    assert s.starts == (0, 0) and s.makespan == 100
    assert s.walls == (100, 0)


@pytest.mark.parametrize(
    "second",
    [
        Slot(60, (1,), (2,), (3,)),  # reads what the first wrote
        Slot(60, (1,), (5,), (2,)),  # writes what the first wrote
        Slot(60, (1,), (5,), (1,)),  # writes what the first read
        Slot(60, (1,)),  # no buffers reported
        Slot(60, (0,), (7,), (8,)),  # same core
    ],
)
def test_dependent_or_same_core_jobs_run_in_order(second):
    first = Slot(100, (0,), (1,), (2,))
    s = schedule([first, second])
    assert s.starts == (0, 100) and s.makespan == 160
    assert s.walls == (100, 60)


def test_dependency_rules():
    a = Slot(1, (0,), (1,), (2,))
    assert not depends(a, Slot(1, (1,), (1,), (3,)))  # two readers
    assert depends(a, Slot(1, (1,), (2,), (3,)))


slots = st.lists(
    st.builds(
        Slot,
        cycles=st.integers(0, 1000),
        cores=st.sets(st.integers(0, 2), min_size=1).map(lambda s: tuple(sorted(s))),
        reads=st.lists(st.integers(0, 5), max_size=3).map(tuple),
        writes=st.lists(st.integers(0, 5), max_size=2).map(tuple),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(slots)
def test_overlap_is_between_longest_job_and_serial_sum(jobs):
    s = schedule(jobs)
    assert max(j.cycles for j in jobs) <= s.makespan <= sum(j.cycles for j in jobs)
    assert sum(s.walls) == s.makespan
    for j, slot in enumerate(jobs):
        assert s.ends[j] - s.starts[j] == slot.cycles
        for i in range(j):
            if depends(jobs[i], slot) or set(jobs[i].cores) & set(slot.cores):
                assert s.starts[j] >= s.ends[i]


COST_FIELDS = (
    "npu_clock_hz",
    "dram_peak_bytes_per_s",
    "dram_efficiency",
    "dram_latency_ns",
    "sram_bytes_per_cycle",
    "submit_overhead_us",
    "job_overhead_us",
    "task_overhead_us",
)


@pytest.mark.parametrize("name", sorted(SOCS))
def test_cost_fields_are_sourced_or_reasoned_assumptions(name):
    row = SOCS[name]
    fields = [*COST_FIELDS, "macs_per_core" if name == "rk3588" else "macs_per_mad"]
    for field in fields:
        source = row.sources[field]
        if source.startswith("assumption"):
            # The label alone is not enough: the reasoning follows it.
            assert len(source.removeprefix("assumption:").split()) >= 5, (name, field)
    assert 0 < row.dram_efficiency <= 1
    assert row.dram_bytes_per_s < row.dram_peak_bytes_per_s
