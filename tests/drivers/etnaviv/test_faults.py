"""Fault injection (``ETNA_DEBUG=inject=...``): an image address outside its buffer, a corrupt
weight stream and a job that never completes each end the invoke in one clear line, and the
context (and the process) carries on with the next subgraph."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mesa_npu.drivers.etnaviv.debug import DebugFlags, Inject
from mesa_npu.drivers.etnaviv.device import EtnaDevice
from mesa_npu.drivers.etnaviv.options import NpuTarget
from mesa_npu.frontends.teflon.conformance import SUITES
from mesa_npu.frontends.teflon.partition import partition, query_support
from mesa_npu.frontends.teflon.tflite import parse_model
from mesa_npu.gallium.device import DeviceError
from mesa_npu.util.soc import soc

from ...conftest import shared_model

CASE = "conv-in5x5-k3-ic120-oc120-s1-same-u8"
EXPECT = {
    Inject.OOB: "outside the submit's buffers",
    Inject.WEIGHTS: "corrupt weight stream",
    Inject.HANG: "hung job",
}


def _ops():
    case = next(c for s in SUITES for c in s.full() if c.id == CASE)
    model = parse_model(case.build(), "conv.tflite")
    device = EtnaDevice(NpuTarget(soc("a311d")))
    (part,) = partition(model, query_support(model, device))
    return part


@pytest.mark.parametrize("soc_name", ["a311d", "imx8mp"])
@pytest.mark.parametrize("inject", list(Inject))
def test_fault_is_one_line_and_the_context_survives(soc_name, inject):
    part = _ops()
    target = NpuTarget(soc(soc_name))
    faulty = EtnaDevice(target, debug=DebugFlags(inject=inject))
    clean = EtnaDevice(target)
    ctx = clean.create_context()
    rng = np.random.default_rng(0)
    inputs = {i: rng.integers(0, 256, (1, 5, 5, 120), dtype=np.uint8) for i in part.inputs}
    try:
        bad = ctx.subgraph_deserialize(faulty.subgraph_create(part.ops).serialize())
        with pytest.raises(DeviceError) as err:
            ctx.subgraph_invoke(bad, inputs)
        message = str(err.value)
        assert EXPECT[inject] in message and "\n" not in message
        good = ctx.subgraph_deserialize(clean.subgraph_create(part.ops).serialize())
        ctx.subgraph_invoke(good, inputs)
        (out,) = ctx.subgraph_read_outputs(good)
        assert out.shape == (1, 5, 5, 120)
    finally:
        ctx.destroy()


def test_teflon_check_reports_an_injected_fault_in_one_line():
    model = shared_model("mobilenet_v1_0.25_128_quant.tflite")
    env = dict(os.environ, ETNA_DEBUG="inject=weights")
    proc = subprocess.run(
        [sys.executable, "-m", "mesa_npu.frontends.teflon.cli", "check", str(model),
         "--device", "etnaviv"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "corrupt weight stream" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_dump_writes_mesa_named_files(tmp_path):
    part = _ops()
    target = NpuTarget(soc("a311d"))
    device = EtnaDevice(target, debug=DebugFlags(dump=True, dump_dir=str(tmp_path)))
    ctx = device.create_context()
    try:
        sub = ctx.subgraph_deserialize(device.subgraph_create(part.ops).serialize())
        index = part.inputs[0]
        ctx.subgraph_invoke(sub, {index: np.zeros((1, 5, 5, 120), np.uint8)})
        ctx.subgraph_read_outputs(sub)
    finally:
        ctx.destroy()
    names = sorted(p.name for p in tmp_path.iterdir())
    # The input transpose runs on the A311D's 4 TP cores (configurations 0..3), then the conv,
    # then the output's detranspose (one core).
    cores = target.npu.tp_cores
    tp = [f"mesa-tp-000-{i:03d}.bin" for i in (*range(cores), cores + 1)]
    assert tp == [n for n in names if "-tp-" in n]
    assert (tmp_path / "mesa-tp-000-000.bin").stat().st_size == 124
    assert (tmp_path / f"mesa-nn-000-{cores:03d}.bin").stat().st_size == 136
    assert f"mesa-compressed-000-{cores:03d}.bin" in names
    assert {"mesa-cmd-000-000.bin", "mesa-cmd-000-001.bin"} <= set(names)
    assert any(n.startswith("mesa-input-") for n in names)
    assert any(n.startswith("mesa-output-") for n in names)
