"""The rocket driver end to end through the simulated device (drm_shim.rocket): conformance cases
against LiteRT BUILTIN_REF (bit-exact), the context's buffer life cycle, the serialized blob,
counters, dumps, fault injection and the support rules."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from mesa_npu.drivers.rocket import debug, device, subgraph
from mesa_npu.drivers.rocket.device import RocketDevice, operation_supported
from mesa_npu.drm_shim.rocket import SimulatedRocketDevice
from mesa_npu.frontends.teflon.check import run_partition
from mesa_npu.frontends.teflon.conformance import SUITES, expected
from mesa_npu.frontends.teflon.partition import partition, query_support
from mesa_npu.frontends.teflon.sweep import Status, run_case
from mesa_npu.frontends.teflon.tflite import parse_model
from mesa_npu.gallium.device import DeviceError
from mesa_npu.gallium.loader import open_device
from mesa_npu.gallium.operation import ConvParams, OpType, PipeMlOperation
from mesa_npu.gallium.tensor import ElementType, PipeTensor, Quant
from mesa_npu.util import regdump, uapi
from mesa_npu.util.soc import soc

NPU = soc("rk3588").npu

# One case per path of the lowering; all bit-exact against BUILTIN_REF.
EXACT = (
    "conv-in5x5-k3-ic120-oc120-s1-same-u8",  # 3x3 SAME, uint8: sign pass for negative ties
    "conv-in3x3-k1-ic1-oc32-s2-same-i8pc",  # int8 per-channel, one input channel
    "conv-in112x112-k3-ic32-oc32-s1-same-u8",  # row tasks chained on one core
    "dwconv-in8x8-k3-c32-s1-same-u8",  # depthwise
    "dwconv-in5x5-k5-c32-s2-same-i8pc",  # depthwise, strided, per-channel shifts
    "add-in3x3-k1-ic1-oc32-s2-same-i8pc",  # two convolutions into an ADD
    "add-in8x8-k3-ic32-oc32-s1-same-u8",
    "addquant-in40x40x1-seed0-i8",  # an ADD of two inputs: the identity convolution
    "addquant-in40x40x1-seed33-u8",
    "fc-in128-oc128-u8",  # FULLY_CONNECTED as a 1x1 conv, FC's single rounding
    "convx-conv-in7x5-k1x3-ic8-oc16-s1x1-d1-same-relu6-u8",  # ReLU6 as BN ReLU/ReLUX
    "convx-dwconv-in7x5-k3x3-ic8-oc16-s2x2-d1-same-relu6-i8pc",
)


@functools.cache
def _cases() -> dict:
    return {c.id: c for s in SUITES for c in s.full()}


@functools.cache
def _device(name: str = "rocket"):
    return open_device(name)


@pytest.mark.parametrize("case_id", EXACT)
def test_case_is_bit_exact(case_id):
    result = run_case(_cases()[case_id], _device(), tolerance=0)
    assert result.status is Status.PASS, f"{result.status.value}: {result.detail}"
    assert result.exact == result.elements > 0


def test_mesas_add_fusion_stays_within_one_lsb():
    result = run_case(_cases()["add-in8x8-k3-ic32-oc32-s1-same-u8"], _device("rocket?fuse_add=1"),
                      tolerance=1)  # fmt: skip
    assert result.status is Status.PASS and result.max_lsb <= 1


class Recorder:
    """A DrmFile that forwards to the simulated device and records the ioctls."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.requests: list[int] = []

    def ioctl(self, request, arg):
        self.requests.append(request)
        return self.inner.ioctl(request, arg)

    def mmap(self, offset, size):
        return self.inner.mmap(offset, size)

    def close(self):
        self.inner.close()

    def job_counters(self):
        return self.inner.job_counters()

    def last_fault(self):
        return self.inner.last_fault()


NO_FLAGS = debug.DebugFlags()
U8 = Quant(0.1, 128)


def _compiled(case_id: str, flags: debug.DebugFlags = NO_FLAGS, sim=None):
    """(device, partition, reference values, recorders) for a case's first partition."""
    sim = sim or SimulatedRocketDevice()
    files: list[Recorder] = []

    def open_file():
        files.append(Recorder(sim.open()))
        return files[-1]

    dev = RocketDevice(NPU, open_file, flags=flags)
    raw = _cases()[case_id].build()
    model = parse_model(raw, f"{case_id}.tflite")
    (part,) = partition(model, query_support(model, dev))
    exp = expected(_cases()[case_id], None, raw)
    return dev, part, exp, files


def test_buffers_are_made_on_the_first_invoke_and_reused():
    dev, part, exp, files = _compiled("conv-in5x5-k3-ic120-oc120-s1-same-u8")
    sg = dev.subgraph_create(part.ops)
    assert files == []  # compiling opens nothing
    ctx = dev.create_context()
    (rec,) = files
    assert rec.requests == []
    ctx.subgraph_invoke(sg, {i: exp.inputs[i] for i in part.inputs})
    created = rec.requests.count(uapi.ROCKET_CREATE_BO)
    assert created == len(sg.program.buffers)
    assert rec.requests.count(uapi.ROCKET_SUBMIT) == 1  # every job in one SUBMIT
    first = ctx.subgraph_read_outputs(sg)
    ctx.subgraph_invoke(sg, {i: exp.inputs[i] for i in part.inputs})
    assert rec.requests.count(uapi.ROCKET_CREATE_BO) == created
    second = ctx.subgraph_read_outputs(sg)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    want = exp.outputs[part.outputs[0]]
    assert np.array_equal(first[0].reshape(want.shape), want)
    ctx.destroy()


def test_the_blob_carries_everything():
    dev, part, exp, _ = _compiled("add-in8x8-k3-ic32-oc32-s1-same-u8")
    blob = dev.subgraph_create(part.ops).serialize()
    other = open_device("rocket")  # another device instance: nothing shared but the bytes
    ctx = other.create_context()
    sg = ctx.subgraph_deserialize(blob)
    assert sg.serialize() == blob
    ctx.subgraph_invoke(sg, {i: exp.inputs[i] for i in part.inputs})
    (out,) = ctx.subgraph_read_outputs(sg)
    assert np.array_equal(out.reshape(-1), exp.outputs[part.outputs[0]].reshape(-1))
    ctx.destroy()


def test_counters_report_the_programmed_macs_and_traffic():
    dev, part, exp, _ = _compiled("conv-in112x112-k3-ic32-oc32-s1-same-u8")
    sg = dev.subgraph_create(part.ops)
    ctx = dev.create_context()
    ctx.subgraph_invoke(sg, {i: exp.inputs[i] for i in part.inputs})
    counters = ctx.last_counters()
    assert len(counters) == len(sg.program.jobs)
    assert sum(c.macs for c in counters) == sum(sg.program.macs)
    assert sum(c.tasks for c in counters) == len(sg.program.slots)
    assert all(c.bytes_written.get("output", 0) > 0 for c in counters)
    # A resident operation's tasks reuse the weights: fetched once.
    job = max(counters, key=lambda c: c.tasks)
    assert job.tasks > 1 and job.bytes_read["weights"] <= 3 * 3 * 32 * 32
    ctx.destroy()


def test_dumps_use_mesas_names(tmp_path):
    flags = debug.DebugFlags(dump_dir=tmp_path)
    dev, part, exp, _ = _compiled("conv-in5x5-k3-ic120-oc120-s1-same-u8", flags)
    sg = dev.subgraph_create(part.ops)
    ctx = dev.create_context()
    ctx.subgraph_invoke(sg, {i: exp.inputs[i] for i in part.inputs})
    names = {p.name for p in tmp_path.iterdir()}
    assert {"mesa-regcmd-000-000.bin", "mesa-weights-000-000.bin", "mesa-bias-000-000.bin",
            "mesa-input-000-000.bin", "mesa-output-000-000.bin"} <= names  # fmt: skip
    stream = regdump.decode((tmp_path / "mesa-regcmd-001-000.bin").read_bytes(), "rocket")
    assert stream.warnings == [] and stream.entries[-1].kind == "op_en"
    ctx.destroy()


@pytest.mark.parametrize(
    ("inject", "message"),
    [("oob", "IOMMU fault"), ("truncate", "timed out"), ("hang", "timed out")],
)
def test_injected_faults_are_one_line_device_errors(inject, message):
    sim = SimulatedRocketDevice()
    flags = debug.DebugFlags(inject=debug.Inject(inject))
    dev, part, exp, _ = _compiled("conv-in5x5-k3-ic120-oc120-s1-same-u8", flags, sim)
    ctx = dev.create_context()
    sg = dev.subgraph_create(part.ops)
    with pytest.raises(DeviceError, match=message) as err:
        ctx.subgraph_invoke(sg, {i: exp.inputs[i] for i in part.inputs})
    assert "\n" not in str(err.value) and str(err.value).startswith("rocket:")
    with pytest.raises(DeviceError, match="read_outputs before"):
        ctx.subgraph_read_outputs(sg)
    ctx.destroy()
    # The device is still usable: a clean device on the same simulated NPU computes.
    clean = RocketDevice(NPU, sim.open)
    outs, _, _ = run_partition(clean, part, exp.inputs)
    assert np.array_equal(outs[0].reshape(-1), exp.outputs[part.outputs[0]].reshape(-1))


def test_debug_flags_parse():
    flags = debug.DebugFlags.parse("dump=/tmp/x,inject=hang")
    assert str(flags.dump_dir) == "/tmp/x" and flags.inject is debug.Inject.HANG
    with pytest.warns(UserWarning, match="unknown flag"):
        assert debug.DebugFlags.parse("bogus") == debug.DebugFlags()
    assert debug.dump_name("regcmd", 3, 12) == "mesa-regcmd-003-012.bin"


# -- support rules -----------------------------------------------------------------------------


def _t(index, dims, dtype=ElementType.UINT8, quant=U8, data=None):
    return PipeTensor(index, dims, 4, dtype, quant, data)


def _conv(**params):
    w = _t(1, (8, 3, 3, 8), data=np.zeros((8, 3, 3, 8), np.uint8))
    b = _t(2, (1, 1, 1, 8), ElementType.INT32, Quant(0.01, 0), np.zeros(8, np.int32))
    ins = (_t(0, params.pop("in_dims", (1, 8, 8, 8))), w, b)
    return PipeMlOperation(OpType.CONVOLUTION, ins, (_t(3, (1, 8, 8, 8)),), ConvParams(**params))


def test_support_rules_give_one_line_reasons():
    assert operation_supported(_conv()) is None
    assert "dilation 2x2" in operation_supported(_conv(dilation=(2, 2)))
    assert "batch 2" in operation_supported(_conv(in_dims=(2, 8, 8, 8)))
    assert "stride" in operation_supported(_conv(stride=(8, 8)))
    pool = PipeMlOperation(OpType.POOLING, (_t(0, (1, 4, 4, 8)),), (_t(1, (1, 2, 2, 8)),))
    assert operation_supported(pool) == "POOL does not run on the NPU"
    add = PipeMlOperation(OpType.ADD, (_t(0, (1, 4, 4, 8)), _t(1, (1, 1, 1, 8))),
                          (_t(2, (1, 4, 4, 8)),))  # fmt: skip
    assert "broadcasts" in operation_supported(add)
    reshape = PipeMlOperation(OpType.RESHAPE, (_t(0, (1, 4, 4, 8)),), (_t(1, (1, 1, 16, 8)),))
    assert "moves data" in operation_supported(reshape)
    for rule in device.RULES:
        assert rule.__doc__ and rule.__doc__.strip()[0].isupper()


def test_program_jobs_list_their_buffers():
    dev, part, _, _ = _compiled("add-in8x8-k3-ic32-oc32-s1-same-u8")
    program = dev.subgraph_create(part.ops).program
    for job in program.jobs:
        assert job.reads and job.writes
        assert subgraph.COEFS_BUFFER not in job.reads + job.writes
        assert subgraph.REGCMD_BUFFER not in job.reads + job.writes


def test_support_table_in_the_docs_is_generated():
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[3] / "docs" / "rocket.md"
    text = doc.read_text(encoding="utf-8")
    table = re.search(r"<!-- support table begin -->\n(.*)\n<!-- support table end -->", text, re.S)
    assert table is not None, "docs/rocket.md lost its table markers"
    assert table.group(1) == device.support_markdown(), "regenerate with support_markdown()"
