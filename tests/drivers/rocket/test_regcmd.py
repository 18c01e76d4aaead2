"""Register streams (drivers/rocket/regcmd.py, subgraph.py) checked by register and field name
through the decoder (util.regdump), as STYLE rule 12 asks: the four-entry tail, task chaining,
relocations, the CNA strides of the model doc and Mesa's element-wise operand addressing."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from mesa_npu.drivers.rocket import regcmd, subgraph
from mesa_npu.drivers.rocket.device import RocketDevice
from mesa_npu.frontends.teflon.conformance import SUITES
from mesa_npu.frontends.teflon.partition import partition, query_support
from mesa_npu.frontends.teflon.tflite import parse_model
from mesa_npu.util import regdump
from mesa_npu.util.soc import soc

NPU = soc("rk3588").npu


def no_file():
    raise AssertionError("compiling must not open the device")


@functools.cache
def _cases() -> dict:
    return {c.id: c for s in SUITES for c in s.full()}


@functools.cache
def program(case_id: str) -> subgraph.Program:
    """The compiled program of a conformance case (its first partition)."""
    model = parse_model(_cases()[case_id].build(), f"{case_id}.tflite")
    device = RocketDevice(NPU, no_file)
    (part,) = partition(model, query_support(model, device))
    blob = device.subgraph_create(part.ops).serialize()
    return subgraph.deserialize(blob)


def streams(prog: subgraph.Program, words: np.ndarray | None = None):
    """(slot, decoded stream) for every task."""
    words = prog.regcmd if words is None else words
    for slot in prog.slots:
        data = words[slot.offset // 8 : slot.offset // 8 + slot.count].tobytes()
        yield slot, regdump.decode(data, "rocket", "regcmd")


def fields(dump: regdump.Dump, register: str) -> dict:
    """The fields of the last write to ``register`` in a decoded stream."""
    found = [e for e in dump.entries if e.register == register]
    assert found, f"no write to {register}"
    return dict(found[-1].fields)


CONV = "conv-in8x8-k3-ic32-oc32-s2-same-u8"
BIG = "conv-in112x112-k3-ic32-oc32-s1-same-u8"  # rows split over several tasks
ADD = "add-in8x8-k1-ic32-oc32-s1-same-u8"


@pytest.mark.parametrize("case_id", [CONV, BIG, ADD, "dwconv-in8x8-k3-c32-s1-same-i8pc"])
def test_streams_decode_without_warnings_and_end_in_the_tail(case_id):
    prog = program(case_id)
    chained_ops = {s.op for s in prog.slots if s.task > 0}
    for slot, dump in streams(prog):
        assert dump.warnings == []
        last = dump.entries[-4:]
        chained = slot.op in chained_ops
        assert last[0].register == ("PC.BASE_ADDRESS" if chained else None)
        assert last[1].register == "PC.REGISTER_AMOUNTS"
        assert last[2].kind == "control" and dict(last[2].op)["UNK54"] is True
        assert last[3].kind == "op_en" and last[3].register == "PC.OPERATION_ENABLE"
        enabled = dict(last[3].fields)
        assert (enabled["OP_EN"], enabled["CORE_OP_EN"], enabled["DPU_OP_EN"]) == (1, 1, 1)
        assert enabled["DPU_RDMA_OP_EN"] == 1 and enabled["PPU_OP_EN"] == 0
        assert not [e for e in dump.entries[:-4] if e.kind in ("op_en", "control")]


def test_convolution_registers_follow_the_case():
    prog = program(CONV)
    _, dump = list(streams(prog))[-1]  # the main pass (a sign pass may come first)
    assert fields(dump, "CNA.CONV_CON3")["CONV_X_STRIDE"] == 2
    assert fields(dump, "CNA.CONV_CON3")["CONV_Y_STRIDE"] == 2
    size0 = fields(dump, "CNA.DATA_SIZE0")
    assert (size0["DATAIN_WIDTH"], size0["DATAIN_HEIGHT"]) == (8, 8)
    size1 = fields(dump, "CNA.DATA_SIZE1")
    assert (size1["DATAIN_CHANNEL"], size1["DATAIN_CHANNEL_REAL"]) == (32, 31)
    w = fields(dump, "CNA.WEIGHT_SIZE2")
    assert (w["WEIGHT_WIDTH"], w["WEIGHT_HEIGHT"], w["WEIGHT_KERNELS"]) == (3, 3, 32)
    assert fields(dump, "CNA.WEIGHT_SIZE1")["WEIGHT_BYTES_PER_KERNEL"] == 3 * 3 * 32
    out = fields(dump, "CORE.DATAOUT_SIZE_0")
    assert (out["DATAOUT_WIDTH"], out["DATAOUT_HEIGHT"]) == (3, 3)  # 4x4, minus one
    zin = prog.inputs[0].fm.zero_point
    assert fields(dump, "CNA.PAD_CON1")["PAD_VALUE"] == zin  # z_in - 0x80, stored domain
    cvt = fields(dump, "DPU.OUT_CVT_SHIFT")
    assert cvt["CVT_ROUND"] == 1  # half up: requant plan A


def test_cna_strides_address_the_nc1hwc2_layout_as_the_model_doc_reads_them():
    prog = program(BIG)
    fm = prog.inputs[0].fm
    _, dump = next(streams(prog))
    line = fields(dump, "CNA.DMA_CON1")["LINE_STRIDE"]
    surf = fields(dump, "CNA.DMA_CON2")["SURF_STRIDE"]
    assert 4 * line == fm.line_stride == 112 * 16
    assert 16 * (surf + line) == fm.surface_stride == 112 * 112 * 16


def test_tasks_split_rows_reuse_weights_and_chain():
    prog = program(BIG)
    slots = [s for s in prog.slots if s.op == prog.slots[-1].op]
    assert len(slots) > 1
    addresses = [0x100000 * (i + 1) for i in range(len(prog.buffers))]
    words = subgraph.relocated(prog, addresses)
    decoded = {s.task: d for s, d in streams(prog, words) if s.op == slots[0].op}
    rows = 0
    for s in slots:
        dump = decoded[s.task]
        assert fields(dump, "CNA.CBUF_CON0")["WEIGHT_REUSE"] == int(s.task > 0)
        height = fields(dump, "CORE.DATAOUT_SIZE_0")["DATAOUT_HEIGHT"] + 1
        dst = fields(dump, "DPU.DST_BASE_ADDR")["DST_BASE_ADDR"]
        out_buffer = prog.outputs[0].fm.ref.buffer
        assert dst == addresses[out_buffer] + rows * 112 * 16  # one output row is 112 atoms
        rows += height
        if s is not slots[-1]:
            nxt = slots[s.task + 1]
            base = [e for e in dump.entries if e.register == "PC.BASE_ADDRESS"][-1]
            assert dict(base.fields)["PC_SOURCE_ADDR"] == addresses[1] + nxt.offset
            amount = fields(dump, "PC.REGISTER_AMOUNTS")["PC_DATA_AMOUNT"]
            assert amount == regcmd.fetch_amount(nxt.count)
    assert rows == 112
    # The job keeps the tasks of a resident operation together (one core, weights reused).
    job = next(j for j in prog.jobs if j.op == slots[0].op)
    assert len(job.tasks) == len(slots)


def test_relocations_point_into_the_right_buffers():
    prog = program(CONV)
    addresses = [0x200000 * (i + 1) for i in range(len(prog.buffers))]
    words = subgraph.relocated(prog, addresses)
    _, dump = list(streams(prog, words))[-1]
    weights = fields(dump, "CNA.DCOMP_ADDR0")["DECOMPRESS_ADDR0"]
    bias = fields(dump, "DPU_RDMA.BS_BASE_ADDR")["BS_BASE_ADDR"]
    coefs = addresses[subgraph.COEFS_BUFFER]
    assert coefs <= weights < coefs + prog.buffers[subgraph.COEFS_BUFFER].size
    assert coefs <= bias < coefs + prog.buffers[subgraph.COEFS_BUFFER].size
    src = fields(dump, "CNA.FEATURE_DATA_ADDR")["FEATURE_BASE_ADDR"]
    assert src == addresses[prog.inputs[0].fm.ref.buffer]
    assert sum(1 for _ in prog.relocs) >= 4 * len(prog.slots)


def test_fused_add_reads_its_operand_as_mesa_programs_it():
    prog = program(ADD)
    addresses = [0x300000 * (i + 1) for i in range(len(prog.buffers))]
    words = subgraph.relocated(prog, addresses)
    with_ew = [(s, d) for s, d in streams(prog, words) if fields(d, "DPU.EW_CFG")["EW_BYPASS"] == 0]
    assert with_ew
    for _, dump in with_ew:
        ew = fields(dump, "DPU.EW_CFG")
        assert ew["EW_OP_SRC"] == 1 and ew["EDATA_SIZE"] == 1
        mode = fields(dump, "DPU_RDMA.FEATURE_MODE_CFG")
        assert (mode["MRDMA_DISABLE"], mode["COMB_USE"]) == (0, regcmd.EW_COMB_USE)
        src = fields(dump, "DPU_RDMA.SRC_BASE_ADDR")["SRC_BASE_ADDR"]
        second = fields(dump, "DPU_RDMA.EW_BASE_ADDR")["EW_BASE_ADDR"]
        stride = fields(dump, "DPU_RDMA.EW_SURF_STRIDE")["EW_SURF_STRIDE"] * 16
        width = fields(dump, "DPU.DATA_CUBE_WIDTH")["WIDTH"] + 1
        height = fields(dump, "DPU.DATA_CUBE_HEIGHT")["HEIGHT"] + 1
        # Two readers, one surface apart, each stepping two surfaces.
        assert second - src == stride
        notch = fields(dump, "DPU_RDMA.SURF_NOTCH")["SURF_NOTCH_ADDR"]
        assert 16 * (width * height + notch) == 2 * stride
        assert fields(dump, "DPU_RDMA.EW_SURF_NOTCH")["EW_SURF_NOTCH"] == notch


def test_emission_is_deterministic():
    first = program(CONV)
    model = parse_model(_cases()[CONV].build(), "again.tflite")
    device = RocketDevice(NPU, no_file)
    (part,) = partition(model, query_support(model, device))
    again = device.subgraph_create(part.ops).program
    assert np.array_equal(first.regcmd, again.regcmd)
    assert first.coefs == again.coefs
