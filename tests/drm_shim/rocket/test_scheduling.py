"""Job queues on the three simulated cores: implicit dependencies through BOs, core choice
(the upstream scheduler entity vs spreading), weights resident in one core's CBUF."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mesa_npu.drm_shim.rocket import SimulatedRocketDevice


def _conv_job(rk, sim, cv, rng, *, inp=None):
    """A one-task conv job; ``inp`` replaces the input BO (to chain jobs)."""
    run = rk.fit_shift(rk.random_run(cv, rng))
    bufs = rk.load(sim, run)
    if inp is not None:
        bufs.input = inp
    _, tasks = sim.regcmd(rk.conv_stream(run.cv, bufs))
    return run, bufs, (tasks, [bufs.input], [bufs.output])


def _overlap(a, b) -> bool:
    return a.start_ns < b.end_ns and b.start_ns < a.end_ns


def test_dependent_jobs_are_ordered_and_chain_results(rk):
    """Job 2 reads job 1's output BO: it starts after job 1 ends and computes on its result."""
    sim = rk.Sim(scheduling="spread")
    rng = np.random.default_rng(0)
    cv1 = rk.Conv(in_h=6, in_w=6, c=16, k=32, kh=3, kw=3, pad_top=1, pad_left=1,
                  pad_bottom=1, pad_right=1)  # fmt: skip
    run1, bufs1, job1 = _conv_job(rk, sim, cv1, rng)
    cv2 = rk.Conv(in_h=6, in_w=6, c=32, k=32)
    run2, bufs2, job2 = _conv_job(rk, sim, cv2, rng, inp=bufs1.output)
    _, _, job3 = _conv_job(rk, sim, cv1, rng)  # independent
    sim.submit([job1, job2, job3])
    assert sim.prep(bufs2.output) == 0
    j1, j2, j3 = sim.file.job_counters()
    assert j2.start_ns >= j1.end_ns
    assert _overlap(j1, j3) and j3.core != j1.core
    mid = rk.reference(run1.cv, run1.x, run1.w, run1.bias)
    x2 = np.zeros((6, 6, 32), dtype=np.int8)
    x2[:, :, :32] = mid
    got = rk.unpack_features(bytes(bufs2.output.mem), 6, 6, 32, 6 * 6 * 16)
    np.testing.assert_array_equal(got, rk.reference(run2.cv, x2, run2.w, run2.bias))


def test_write_after_read_waits_for_the_reader(rk):
    sim = rk.Sim(scheduling="spread")
    rng = np.random.default_rng(1)
    cv = rk.Conv(in_h=4, in_w=4, c=16, k=32)
    _, bufs1, job1 = _conv_job(rk, sim, cv, rng)
    _, bufs2, (tasks2, _, _) = _conv_job(rk, sim, cv, rng)
    # Job 2 writes job 1's input BO (its output register points elsewhere; the BO list rules).
    sim.submit([job1, (tasks2, [bufs2.input], [bufs2.output, bufs1.input])])
    j1, j2 = sim.file.job_counters()
    assert j2.start_ns >= j1.end_ns


def test_spread_uses_all_cores_in_parallel(rk):
    sim = rk.Sim(scheduling="spread")
    rng = np.random.default_rng(2)
    cv = rk.Conv(in_h=8, in_w=8, c=32, k=64, kh=3, kw=3)
    jobs = [_conv_job(rk, sim, cv, rng)[2] for _ in range(4)]
    sim.submit(jobs)
    records = sim.file.job_counters()
    assert [r.core for r in records] == [0, 1, 2, 0]
    assert _overlap(records[0], records[1]) and _overlap(records[1], records[2])
    assert records[3].start_ns >= records[0].end_ns


def test_upstream_entity_runs_one_file_on_one_core(rk):
    """drm_sched_entity_select_rq(): a file's entity stays on its core while it has unfinished
    jobs, so one file's independent jobs run back to back; a second file uses another core."""
    device = SimulatedRocketDevice()
    a, b = rk.Sim(device), rk.Sim(device)
    rng = np.random.default_rng(3)
    cv = rk.Conv(in_h=8, in_w=8, c=32, k=64, kh=3, kw=3)
    jobs_a = [_conv_job(rk, a, cv, rng)[2] for _ in range(3)]
    jobs_b = [_conv_job(rk, b, cv, rng)[2] for _ in range(2)]
    a.submit(jobs_a)
    b.submit(jobs_b)
    ra, rb = a.file.job_counters(), b.file.job_counters()
    assert {r.core for r in ra} == {0} and {r.core for r in rb} == {1}
    assert ra[1].start_ns >= ra[0].end_ns and ra[2].start_ns >= ra[1].end_ns
    assert _overlap(ra[0], rb[0])
    # Once the CPU has waited for everything, the entity is idle and picks core 0 again.
    assert a.prep(jobs_a[-1][2][0]) == 0 and b.prep(jobs_b[-1][2][0]) == 0
    b.submit(jobs_b[:1])
    assert b.file.job_counters()[-1].core == 0


def test_prep_bo_advances_the_simulated_clock(rk):
    sim = rk.Sim()
    _, bufs, job = _conv_job(rk, sim, rk.Conv(in_h=4, in_w=4, c=16, k=32),
                             np.random.default_rng(4))  # fmt: skip
    sim.submit([job])
    assert sim.device.now_ns == 0
    sim.prep(bufs.output)
    assert sim.device.now_ns == sim.file.job_counters()[0].end_ns > 0


def test_reused_weights_are_only_valid_on_the_same_core(rk):
    """A task with WEIGHT_REUSE=1 computes with the CBUF of the core it runs on: as an
    independent job spread to another core it finds no weights (a warning, wrong numbers)."""
    sim = rk.Sim(scheduling="spread")
    rng = np.random.default_rng(5)
    cv = rk.Conv(
        in_h=6, in_w=5, c=32, k=32, kh=3, kw=3, pad_top=1, pad_bottom=1, pad_left=1, pad_right=1
    )
    run = rk.fit_shift(rk.random_run(cv, rng))
    bufs = rk.load(sim, run)
    other = replace(bufs, output=sim.bo(bufs.output.size))  # no BO shared with job 0's output
    first = rk.conv_stream(replace(run.cv, rows=(0, 3)), bufs)
    second = rk.conv_stream(replace(run.cv, rows=(3, 3), weight_reuse=True), other)
    _, tasks = sim.regcmd(first, second)
    sim.submit(
        [([tasks[0]], [bufs.input], [bufs.output]), ([tasks[1]], [bufs.input], [other.output])]
    )
    records = sim.file.job_counters()
    assert records[1].core != records[0].core
    log = "\n".join(sim.file.fault_log())
    assert "WEIGHT_REUSE=1 but this core's CBUF holds no matching weights" in log
    want = rk.reference(run.cv, run.x, run.w, run.bias)
    got0 = rk.unpack_features(bytes(bufs.output.mem), 6, 5, 32, 6 * 5 * 16)
    got1 = rk.unpack_features(bytes(other.output.mem), 6, 5, 32, 6 * 5 * 16)
    np.testing.assert_array_equal(got0[:3], want[:3])
    assert (got1[3:] != want[3:]).any()
    # The same two tasks as one job run on one core and reuse the weights correctly.
    sim.submit([(tasks, [bufs.input], [bufs.output, other.output])])
    got1 = rk.unpack_features(bytes(other.output.mem), 6, 5, 32, 6 * 5 * 16)
    np.testing.assert_array_equal(got1[3:], want[3:])


def test_undeclared_bo_accesses_are_reported(rk):
    sim = rk.Sim()
    rng = np.random.default_rng(6)
    cv = rk.Conv(in_h=4, in_w=4, c=16, k=32)
    _, bufs1, job1 = _conv_job(rk, sim, cv, rng)
    _, bufs2, (tasks2, _, _) = _conv_job(rk, sim, cv, rng, inp=bufs1.output)
    sim.submit([job1, (tasks2, [], [])])  # job 2 declares neither its input nor its output
    log = "\n".join(sim.file.fault_log())
    assert f"reads BO {bufs1.output.handle} (input), written by job 0, without listing" in log
    assert f"writes BO {bufs2.output.handle} (output) without listing it in out_bo_handles" in log
