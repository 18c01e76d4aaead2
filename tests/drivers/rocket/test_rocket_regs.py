"""rocket_regs against the public facts (reference brief rocket-nvdla.md sections 1-3): the
values Mesa and the Linux driver write, packed by field name, give the documented words."""

from __future__ import annotations

import pytest

from mesa_npu.drivers.rocket import rocket_regs as R


def entry(reg, **fields) -> int:
    """A regcmd entry as Mesa's emit_raw() builds it: op = target + 1."""
    return R.REGCMD.ENTRY.pack(
        BLOCK=R.target_of(reg.offset), UNK48=True, OFFSET=reg.offset, VALUE=reg.pack(**fields)
    )


def test_target_enum_is_mesas():
    assert {t.name: t.value for t in R.Target if t is not R.Target.UNK400} == {
        "PC": 0x100,
        "CNA": 0x200,
        "CORE": 0x800,
        "DPU": 0x1000,
        "DPU_RDMA": 0x2000,
        "PPU": 0x4000,
        "PPU_RDMA": 0x8000,
        "DDMA": 0x10000,
        "SDMA": 0x20000,
        "GLOBAL": 0x40000,
    }


def test_target_of_maps_every_offset_to_its_block():
    assert R.target_of(0x1014) is R.Target.CNA
    assert R.target_of(0x3030) is R.Target.CORE  # the register Mesa writes raw
    assert R.target_of(0x40C4) is R.Target.DPU  # likewise
    assert R.target_of(0x5004) is R.Target.DPU_RDMA
    assert R.target_of(0xF008) is R.Target.GLOBAL
    assert all(R.target_of(r.offset).name == r.domain for r in R.REGISTERS)
    with pytest.raises(ValueError, match="0x2004"):
        R.target_of(0x2004)


def test_regcmd_words_from_the_brief():
    # CNA CONV_CON3 with stride 1 encodes as 0x0201_00000009_1014 (section 2).
    assert entry(R.CNA.CONV_CON3, CONV_X_STRIDE=1, CONV_Y_STRIDE=1) == 0x0201_0000_0009_1014
    # Vendor dump: CNA S_POINTER = 0xE is 0x02010000000e1004.
    pp = {"POINTER_PP_MODE": 1, "EXECUTER_PP_EN": 1, "POINTER_PP_EN": 1}
    assert entry(R.CNA.S_POINTER, **pp) == 0x0201_0000_000E_1004
    # The tail: "64'h0041_xxxx" before op_en, then op 0x0081 to offset 0x0008 with 0x1D.
    assert R.REGCMD.ENTRY.pack(UNK48=True, UNK54=True) == 0x0041_0000_0000_0000
    enable = R.PC.OPERATION_ENABLE.pack(OP_EN=1, CORE_OP_EN=1, DPU_OP_EN=1, DPU_RDMA_OP_EN=1)
    assert enable == 0x1D
    op_en = R.REGCMD.ENTRY.pack(UNK48=True, OP_EN=True, OFFSET=0x0008, VALUE=enable)
    assert op_en == 0x0081_0000_001D_0008
    # TRM example 0081_0000_007f_0008 enables every block.
    every = R.PC.OPERATION_ENABLE.pack(
        OP_EN=1, CORE_OP_EN=1, DPU_OP_EN=1, DPU_RDMA_OP_EN=1, PPU_OP_EN=1, PPU_RDMA_OP_EN=1
    )
    assert every | 1 << 1 == 0x7F  # bit 1 is the unused slot of GLOBAL_OPERATION_ENABLE


def test_mmio_values_the_kernel_writes():
    # rocket_job.c: INTERRUPT_MASK = DPU_0|DPU_1 (0x300); TASK_CON = 0x7001.
    assert R.PC.INTERRUPT_MASK.pack(DPU_0=True, DPU_1=True) == 0x300
    assert R.PC.TASK_CON.pack(RESERVED_14=1, TASK_COUNT_CLEAR=1, TASK_PP_EN=1, TASK_NUMBER=1) == (
        0x7001
    )
    # PC_BASE_ADDRESS holds the regcmd IOVA itself (PC_SOURCE_ADDR stores it >> 4).
    assert R.PC.BASE_ADDRESS.pack(PC_SOURCE_ADDR=0x1234_5670) == 0x1234_5670
    with pytest.raises(ValueError, match="PC_SOURCE_ADDR=0x12345678 is not a multiple of 0x10"):
        R.PC.BASE_ADDRESS.pack(PC_SOURCE_ADDR=0x1234_5678)
    assert R.PC.REGISTER_AMOUNTS.pack(PC_DATA_AMOUNT=(60 + 1) // 2 - 1) == 29


def test_field_positions_mesa_programs():
    assert R.CNA.CONV_CON1.pack(CONV_MODE=R.ConvMode.DEPTHWISE) == 3
    assert R.CNA.CONV_CON1.pack(NONALIGN_DMA=1, GROUP_LINE_OFF=1, ARGB_IN=8) == (
        1 << 30 | 1 << 29 | 8 << 12
    )
    assert R.CNA.CVT_CON1.pack(CVT_OFFSET0=-128, CVT_SCALE0=16384) == 0x4000_FF80
    assert R.CORE.MISC_CFG.pack(QD_EN=1, DW_EN=1) == 3
    assert R.DPU.FEATURE_MODE_CFG.pack(BURST_LEN=15, OUTPUT_MODE=R.DpuOutput.OUTPUT_MEMORY) == (
        15 << 5 | 2 << 1
    )
    # BS_CFG keeps NVDLA's bits 0/1/4/5/6 and moves ALU_ALGO to 19:16 (section 8).
    bs = R.DPU.BS_CFG.pack(
        BS_ALU_ALGO=R.AluAlgo.ALU_ADD, BS_ALU_SRC=R.AluSrc.SRC_MEMORY, BS_RELU_BYPASS=1,
        BS_MUL_BYPASS=1,
    )  # fmt: skip
    assert bs == 2 << 16 | 1 << 8 | 1 << 6 | 1 << 4
    assert R.DPU.OUT_CVT_SHIFT.pack(CVT_ROUND=R.CvtRound.ROUND_HALF_UP, OUT_CVT_SHIFT=13) == (
        1 << 30 | 13
    )
    assert R.DPU.DST_SURF_STRIDE.pack(DST_SURF_STRIDE=56 * 56) == 56 * 56 * 16


def test_mesa_raw_writes_have_names():
    assert (R.CORE.UNK_3030.offset, R.DPU.UNK_40C4.offset) == (0x3030, 0x40C4)
    assert R.register_at(0x3030) is R.CORE.UNK_3030


def test_read_only_and_reserved_metadata():
    assert R.CNA.S_STATUS.access == "r" and R.CNA.CONV_CON1.access == "rw"
    assert R.PC.INTERRUPT_MASK.reserved_mask == 0xFFFF_C000
    assert R.CNA.CONV_CON1.field("CONV_MODE").enum is R.ConvMode
