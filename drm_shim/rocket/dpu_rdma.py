"""DPU_RDMA: the DPU's operand readers (NVDLA SDP_RDMA). BRDMA and NRDMA fetch the per-channel
operands of the BS and BN stages, ERDMA and MRDMA the element-wise operand, each from its
registers only (``docs/rocket-npu-model.md`` §4, DPU_RDMA rows)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...drivers.rocket import rocket_regs as R
from .faults import NpuFault, NpuHang
from .memory import AddressSpace
from .options import NpuModelOptions
from .regfile import TaskRegs
from .stats import TaskStats

# Mesa rkt_regcmd.c: COMB_USE=5 with MRDMA enabled when an ADD's operand is read (the combined
# MRDMA + ERDMA fetch of ew_fetch="comb").
COMB_USE_EW = 5
# BRDMA/NRDMA DATA_USE codes [inferred: bit 0 ALU operand, bit 1 MUL operand; Mesa writes 1 for
# its int32 bias].
USE_ALU, USE_MUL, USE_BOTH = 1, 2, 3
OPERAND_BYTES = 4  # one 32-bit word per channel and operand (Mesa's int32 bias)


def unit(reg: R.Register, field: str) -> int:
    """Bytes per unit of an address field that starts above bit 0 (the register value is the
    byte count: e.g. DST_SURF_STRIDE at bits 31:4 counts 16-byte units)."""
    return 1 << reg.field(field).low


def unsupported(reg: R.Register, field: str, value: Any, why: str = "") -> NpuFault:
    return NpuFault("unsupported", f"unsupported setting {reg.path}.{field}={value}{why}")


def channel_operands(
    mem: AddressSpace, stats: TaskStats, role: str, what: str, base: int, channels: int, use: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(ALU operands, MUL operands) per channel, from a BRDMA/NRDMA buffer."""
    if use not in (USE_ALU, USE_MUL, USE_BOTH):
        raise NpuFault(
            "unsupported",
            f"unsupported setting {what}: DATA_USE={use} (modelled: "
            f"{USE_ALU} ALU, {USE_MUL} MUL, {USE_BOTH} both)",
        )
    words = 2 if use == USE_BOTH else 1
    bo, raw = mem.read(what, base, channels * words * OPERAND_BYTES)
    stats.read(role, bo, raw.size)
    values = raw.view("<i4").astype(np.float64).reshape(channels, words)
    alu = values[:, 0] if use & USE_ALU else None
    mul = values[:, -1] if use & USE_MUL else None
    if mul is not None and (
        mul.min() < np.iinfo(np.int16).min or mul.max() > np.iinfo(np.int16).max
    ):
        raise NpuFault("unsupported", f"{what}: a MUL operand does not fit 16 bits")
    return alu, mul


def ew_operand(
    regs: TaskRegs,
    mem: AddressSpace,
    stats: TaskStats,
    width: int,
    height: int,
    channels: int,
    atom: int,
    options: NpuModelOptions,
) -> np.ndarray:
    """The element-wise operand as int8 ``[H, W, C]``."""
    erdma = regs(R.DPU_RDMA.ERDMA_CFG)
    if erdma.ERDMA_DISABLE:
        raise NpuHang(
            "the DPU EW stage waits for its operand but DPU_RDMA.ERDMA_CFG.ERDMA_DISABLE=1"
        )
    if erdma.ERDMA_DATA_SIZE != 1 or erdma.ERDMA_NONALIGN:
        raise unsupported(
            R.DPU_RDMA.ERDMA_CFG,
            "ERDMA_DATA_SIZE/ERDMA_NONALIGN",
            f"{erdma.ERDMA_DATA_SIZE}/{erdma.ERDMA_NONALIGN}",
            " (int8 operand)",
        )
    rw = regs(R.DPU_RDMA.DATA_CUBE_WIDTH).WIDTH + 1
    rh = regs(R.DPU_RDMA.DATA_CUBE_HEIGHT).HEIGHT + 1
    rc = regs(R.DPU_RDMA.DATA_CUBE_CHANNEL).CHANNEL + 1
    if (rw, rh, rc) != (width, height, channels):
        raise NpuFault(
            "inconsistent",
            f"DPU_RDMA.DATA_CUBE_* give {rw}x{rh}x{rc} but the DPU "
            f"cube is {width}x{height}x{channels}",
        )
    surfaces = -(-channels // atom)
    line = width * atom
    plane = width * height * atom
    fm = regs(R.DPU_RDMA.FEATURE_MODE_CFG)
    ew_base = regs(R.DPU_RDMA.EW_BASE_ADDR).EW_BASE_ADDR
    e = np.empty((surfaces, height, width, atom), dtype=np.uint8)
    if options.ew_fetch == "plain" or fm.MRDMA_DISABLE:
        stride = regs(R.DPU_RDMA.EW_SURF_STRIDE).EW_SURF_STRIDE
        stride *= unit(R.DPU_RDMA.EW_SURF_STRIDE, "EW_SURF_STRIDE")
        bo, view = mem.view(
            "DPU_RDMA.EW_BASE_ADDR (ERDMA operand)", ew_base, e.shape, (stride, line, atom, 1)
        )
        stats.read("ew", bo, view.size)
        e[...] = view
    elif fm.COMB_USE == COMB_USE_EW:
        src = regs(R.DPU_RDMA.SRC_BASE_ADDR).SRC_BASE_ADDR
        notch_m = regs(R.DPU_RDMA.SURF_NOTCH).SURF_NOTCH_ADDR
        notch_m *= unit(R.DPU_RDMA.SURF_NOTCH, "SURF_NOTCH_ADDR")
        notch_e = regs(R.DPU_RDMA.EW_SURF_NOTCH).EW_SURF_NOTCH
        notch_e *= unit(R.DPU_RDMA.EW_SURF_NOTCH, "EW_SURF_NOTCH")
        for first, base, notch, reader in (
            (0, src, notch_m, "DPU_RDMA.SRC_BASE_ADDR (MRDMA)"),
            (1, ew_base, notch_e, "DPU_RDMA.EW_BASE_ADDR (ERDMA)"),
        ):
            count = len(range(first, surfaces, 2))
            bo, view = mem.view(
                f"{reader} EW operand", base, (count, *e.shape[1:]), (plane + notch, line, atom, 1)
            )
            stats.read("ew", bo, view.size)
            e[first::2] = view
    else:
        raise unsupported(
            R.DPU_RDMA.FEATURE_MODE_CFG,
            "COMB_USE",
            fm.COMB_USE,
            f" with MRDMA enabled (modelled: {COMB_USE_EW}, the EW operand)",
        )
    return e.view(np.int8).transpose(1, 2, 0, 3).reshape(height, width, -1)[:, :, :channels]
