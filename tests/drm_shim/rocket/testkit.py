"""Test-local helpers for the simulated rocket device: a regcmd stream builder written with the
generated register module (never the driver's code), feature and weight packers written
independently of the model (explicit loops over the brief §4 layouts), an element-by-element
reference formula, and a small harness that creates BOs, submits jobs and reads results through
the UAPI structs. ``conftest.py`` loads this file and exposes it as the ``rk`` fixture.
"""

from __future__ import annotations

import errno
import math
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np

from mesa_npu.drivers.rocket import rocket_regs as R
from mesa_npu.drm_shim.rocket import DeviceOptions, NpuModelOptions, SimulatedRocketDevice
from mesa_npu.util import uapi
from mesa_npu.util.drm import DrmError

ffi = uapi.ffi
ATOM = 16  # NC1HWC2 C2 (brief §4)
ENTRY = R.REGCMD.ENTRY
MARKER = ENTRY.pack(UNK48=True, UNK54=True)


def align(x: int, a: int) -> int:
    return -(-x // a) * a


# --------------------------------------------------------------------------------------------
# Regcmd streams
# --------------------------------------------------------------------------------------------


class Stream:
    """A task's regcmd qwords, emitted as Mesa's emit() does: op = target + 1."""

    def __init__(self) -> None:
        self.words: list[int] = []

    def emit(self, reg: R.Register, **fields) -> None:
        self.words.append(
            ENTRY.pack(
                BLOCK=R.target_of(reg.offset),
                UNK48=True,
                OFFSET=reg.offset,
                VALUE=reg.pack(**fields),
            )
        )

    def raw(self, word: int) -> None:
        self.words.append(word)

    def tail(self, next_addr: int = 0, next_amount: int = 0, enable: int = 0x1D) -> None:
        """The four-entry tail (brief §2); ``enable`` is the op_en block mask."""
        if next_addr:
            self.emit(R.PC.BASE_ADDRESS, PC_SOURCE_ADDR=next_addr)
        else:
            self.raw(0)
        self.emit(R.PC.REGISTER_AMOUNTS, PC_DATA_AMOUNT=next_amount)
        self.raw(MARKER)
        self.raw(
            ENTRY.pack(UNK48=True, OP_EN=True, OFFSET=R.PC.OPERATION_ENABLE.offset, VALUE=enable)
        )

    def data(self) -> bytes:
        return np.array(self.words, dtype="<u8").tobytes()


# --------------------------------------------------------------------------------------------
# Layouts, written independently of the model
# --------------------------------------------------------------------------------------------


def pack_features(x: np.ndarray, channels: int, fill: int, surfaces: int | None = None) -> bytes:
    """int8 ``[H, W, C]`` -> NC1HWC2 bytes ``[C/16][H][W][16]``; lanes >= C hold ``fill``."""
    h, w, c = x.shape
    n = surfaces or align(channels, ATOM) // ATOM
    out = bytearray()
    for s in range(n):
        for y in range(h):
            for xx in range(w):
                for lane in range(ATOM):
                    ch = s * ATOM + lane
                    v = int(x[y, xx, ch]) if ch < c else fill
                    out.append(v % 256)
    return bytes(out)


def unpack_features(data: bytes, h: int, w: int, c: int, surf_bytes: int) -> np.ndarray:
    """NC1HWC2 bytes -> int8 ``[H, W, C]`` (the inverse of pack_features)."""
    buf = np.frombuffer(data, dtype=np.int8)
    out = np.empty((h, w, c), dtype=np.int8)
    for ch in range(c):
        s, lane = divmod(ch, ATOM)
        for y in range(h):
            for xx in range(w):
                out[y, xx, ch] = buf[s * surf_bytes + (y * w + xx) * ATOM + lane]
    return out


def pack_weights(w: np.ndarray, c_al: int, depthwise: bool, pad: int) -> bytes:
    """Direct ``[K, kh, kw, C]`` int8 (K already even) or depthwise ``[kh, kw, C]`` into the
    grouped layout of brief §4, loop by loop like Mesa's rkt_fill_weights; channels C..c_al
    hold ``pad`` (the weight zero point in the hardware's int8 domain)."""
    out = bytearray()
    if depthwise:
        kh, kw, c = w.shape
        for c1 in range(math.ceil(c_al / 64)):
            width = min(64, c_al - 64 * c1)
            for y in range(kh):
                for x in range(kw):
                    for c2 in range(width):
                        ch = c1 * 64 + c2
                        out.append((int(w[y, x, ch]) if ch < c else pad) % 256)
        return bytes(out)
    k, kh, kw, c = w.shape
    for o1 in range(math.ceil(k / 32)):
        kn = min(32, k - 32 * o1)
        for c1 in range(math.ceil(c_al / 32)):
            cn = min(32, c_al - 32 * c1)
            for y in range(kh):
                for x in range(kw):
                    for o2 in range(kn):
                        for c2 in range(cn):
                            ch = c1 * 32 + c2
                            v = int(w[o1 * 32 + o2, y, x, ch]) if ch < c else pad
                            out.append(v % 256)
    return bytes(out)


# --------------------------------------------------------------------------------------------
# A convolution task, programmed with Mesa's values (brief §3)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conv:
    """A convolution in the hardware's int8 domain and how to program it."""

    in_h: int
    in_w: int
    c: int
    k: int  # output channels (depthwise: == c)
    kh: int = 1
    kw: int = 1
    stride: int = 1
    pad_top: int = 0
    pad_left: int = 0
    pad_bottom: int = 0
    pad_right: int = 0
    depthwise: bool = False
    pixel: bool = False  # 1-channel NONALIGN_DMA input (raw uint8 rows)
    pad_value: int = 0  # int8
    w_pad: int = 0  # int8 value of padding weight channels
    ow_op: int = 0
    clip: int = 0
    scale: int = 1 << 14
    shift: int = 14
    offset: int = 0
    cvt_round: int = 0
    cvt_type: int = 0
    ew: tuple[int, int, int] | None = None  # (offset, scale, shift) of a fused ADD operand
    ew_round: int = 0
    ew_mode: str = "comb"  # how the test programs the operand fetch ("comb" or "plain")
    rows: tuple[int, int] | None = None  # (first output row, count): one task of a split
    weight_reuse: bool = False

    @property
    def out_h(self) -> int:
        return (self.in_h + self.pad_top + self.pad_bottom - self.kh) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.in_w + self.pad_left + self.pad_right - self.kw) // self.stride + 1

    @property
    def c_al(self) -> int:
        return align(max(self.c, ATOM), ATOM)

    @property
    def kernels(self) -> int:
        return 1 if self.depthwise else align(self.k, 2)

    @property
    def c_out(self) -> int:
        """Aligned output channels (brief §3)."""
        n = align(max(self.k, 32), 32)
        if self.depthwise:
            n = align(n * 2 if self.k <= 32 else n, 64)
        return n


@dataclass
class Buffers:
    input: object
    weights: object
    bias: object
    output: object
    ew: object | None = None
    extra: dict = field(default_factory=dict)


def conv_stream(cv: Conv, bufs: Buffers, *, tail_enable: int = 0x1D) -> Stream:
    """One task of ``cv``, Mesa's register values in Mesa's order (rkt_regcmd.c)."""
    s = Stream()
    first, rows = cv.rows or (0, cv.out_h)
    # Input rows this task fetches (a row split starts at first*stride - pad_top).
    top = max(0, first * cv.stride - cv.pad_top)
    pad_top = max(0, cv.pad_top - first * cv.stride)
    bottom = min(cv.in_h, (first + rows - 1) * cv.stride - cv.pad_top + cv.kh)
    in_h = bottom - top
    in_w = max(cv.in_w, ATOM) if cv.pixel else cv.in_w
    s.emit(R.CNA.CBUF_CON0, DATA_BANK=4, WEIGHT_BANK=8, WEIGHT_REUSE=int(cv.weight_reuse))
    s.emit(R.CNA.DCOMP_REGNUM, DCOMP_REGNUM=0)
    s.emit(R.CNA.DCOMP_CTRL)
    con1 = {"CONV_MODE": R.ConvMode.DEPTHWISE if cv.depthwise else R.ConvMode.DIRECT}
    if cv.pixel:
        con1.update(NONALIGN_DMA=1, GROUP_LINE_OFF=1, ARGB_IN=8)
    s.emit(R.CNA.CONV_CON1, **con1)
    for reg in (R.DPU.S_POINTER, R.DPU_RDMA.S_POINTER):
        s.emit(reg, POINTER_PP_MODE=1, EXECUTER_PP_EN=1, POINTER_PP_EN=1)
    s.emit(R.CNA.CONV_CON1, **con1)
    s.emit(R.CNA.CONV_CON2, FEATURE_GRAINS=50 + cv.stride + 1)
    s.emit(R.CNA.CONV_CON3, CONV_X_STRIDE=cv.stride, CONV_Y_STRIDE=cv.stride)
    s.emit(R.CNA.DATA_SIZE0, DATAIN_WIDTH=in_w, DATAIN_HEIGHT=in_h)
    s.emit(R.CNA.DATA_SIZE1, DATAIN_CHANNEL_REAL=cv.c - 1, DATAIN_CHANNEL=cv.c_al)
    s.emit(R.CNA.DATA_SIZE2, DATAOUT_WIDTH=cv.out_w)
    s.emit(R.CNA.DATA_SIZE3, DATAOUT_ATOMICS=cv.out_w * rows)
    per_kernel = cv.kh * cv.kw * cv.c_al
    s.emit(R.CNA.WEIGHT_SIZE0, WEIGHT_BYTES=per_kernel * cv.kernels)
    s.emit(R.CNA.WEIGHT_SIZE1, WEIGHT_BYTES_PER_KERNEL=per_kernel)
    s.emit(R.CNA.WEIGHT_SIZE2, WEIGHT_WIDTH=cv.kw, WEIGHT_HEIGHT=cv.kh, WEIGHT_KERNELS=cv.kernels)
    s.emit(R.CNA.CBUF_CON0, DATA_BANK=4, WEIGHT_BANK=8, WEIGHT_REUSE=int(cv.weight_reuse))
    s.emit(R.CNA.CBUF_CON1, DATA_ENTRIES=max(1, math.ceil(in_w * 2 * cv.c_al / ATOM / 8)))
    if cv.pixel:
        s.emit(
            R.CNA.CVT_CON0,
            CVT_TRUNCATE_0=14,
            CVT_TRUNCATE_1=14,
            CVT_TRUNCATE_2=14,
            CVT_TRUNCATE_3=14,
        )
        for reg, n in (
            (R.CNA.CVT_CON1, 0),
            (R.CNA.CVT_CON2, 1),
            (R.CNA.CVT_CON3, 2),
            (R.CNA.CVT_CON4, 3),
        ):
            s.emit(reg, **{f"CVT_SCALE{n}": 16384, f"CVT_OFFSET{n}": -128})
    else:
        s.emit(R.CNA.CVT_CON0, DATA_SIGN=1, CVT_TYPE=1, CVT_BYPASS=1)
        for reg, n in (
            (R.CNA.CVT_CON1, 0),
            (R.CNA.CVT_CON2, 1),
            (R.CNA.CVT_CON3, 2),
            (R.CNA.CVT_CON4, 3),
        ):
            s.emit(reg, **{f"CVT_SCALE{n}": 1})
    s.emit(R.CNA.FC_CON0)
    s.emit(R.CNA.FC_CON1)
    s.emit(R.CNA.PAD_CON0, PAD_LEFT=cv.pad_left, PAD_TOP=pad_top)
    if cv.pixel:
        line = max(cv.in_w, ATOM)
        s.emit(R.CNA.FEATURE_DATA_ADDR, FEATURE_BASE_ADDR=bufs.input.iova + line * top)
    else:
        s.emit(R.CNA.FEATURE_DATA_ADDR, FEATURE_BASE_ADDR=bufs.input.iova + cv.in_w * ATOM * top)
    s.emit(R.CNA.FC_CON2)
    s.emit(R.CNA.DMA_CON0, WEIGHT_BURST_LEN=15, DATA_BURST_LEN=15)
    if cv.pixel:
        line_stride = max(cv.in_w, ATOM)
        surf_stride = line_stride * (cv.in_h - 1)
    else:  # Mesa: W*16/4 and line*(H/4 - 1) with a float H/4, wrapped like C's unsigned
        line_stride = cv.in_w * ATOM // 4
        surf_stride = int(line_stride * (cv.in_h / 4 - 1))
        surf_stride %= 1 << R.CNA.DMA_CON2.field("SURF_STRIDE").width
    s.emit(R.CNA.DMA_CON1, LINE_STRIDE=line_stride)
    s.emit(R.CNA.DMA_CON2, SURF_STRIDE=surf_stride)
    s.emit(R.CNA.FC_DATA_SIZE0, DMA_WIDTH=cv.in_w, DMA_HEIGHT=in_h)
    s.emit(R.CNA.FC_DATA_SIZE1, DMA_CHANNEL=cv.c_al)
    s.emit(R.CNA.DCOMP_CTRL)
    s.emit(R.CNA.DCOMP_REGNUM)
    s.emit(R.CNA.DCOMP_ADDR0, DECOMPRESS_ADDR0=bufs.weights.iova)
    for n in range(16):
        s.emit(R.CNA[f"DCOMP_AMOUNT{n}"])
    s.emit(R.CNA.CVT_CON5, PER_CHANNEL_CVT_EN=0xFFFF if cv.pixel else 0)
    s.emit(R.CNA.PAD_CON1, PAD_VALUE=cv.pad_value)

    s.emit(R.CORE.MISC_CFG, QD_EN=1, DW_EN=int(cv.depthwise))
    s.emit(R.CORE.DATAOUT_SIZE_0, DATAOUT_HEIGHT=rows - 1, DATAOUT_WIDTH=cv.out_w - 1)
    s.emit(R.CORE.DATAOUT_SIZE_1, DATAOUT_CHANNEL=cv.c_out - 1)
    s.emit(R.CORE.CLIP_TRUNCATE, CLIP_TRUNCATE=cv.clip)
    s.emit(R.CORE.UNK_3030)

    mode = R.ConvMode.DEPTHWISE if cv.depthwise else R.ConvMode.DIRECT
    s.emit(
        R.DPU.FEATURE_MODE_CFG, BURST_LEN=15, OUTPUT_MODE=R.DpuOutput.OUTPUT_MEMORY, CONV_MODE=mode
    )
    s.emit(R.DPU.DATA_FORMAT)
    s.emit(R.DPU.OFFSET_PEND)
    out_offset = cv.out_w * ATOM * first
    s.emit(R.DPU.DST_BASE_ADDR, DST_BASE_ADDR=bufs.output.iova + out_offset)
    s.emit(R.DPU.DST_SURF_STRIDE, DST_SURF_STRIDE=cv.out_w * cv.out_h)
    s.emit(R.DPU.DATA_CUBE_WIDTH, WIDTH=cv.out_w - 1)
    s.emit(R.DPU.DATA_CUBE_HEIGHT, HEIGHT=rows - 1)
    s.emit(R.DPU.DATA_CUBE_NOTCH_ADDR)
    s.emit(R.DPU.DATA_CUBE_CHANNEL, ORIG_CHANNEL=cv.k - 1, CHANNEL=cv.c_out - 1)
    s.emit(
        R.DPU.BS_CFG,
        BS_ALU_ALGO=R.AluAlgo.ALU_ADD,
        BS_ALU_SRC=R.AluSrc.SRC_MEMORY,
        BS_RELU_BYPASS=1,
        BS_MUL_BYPASS=1,
    )
    s.emit(R.DPU.BS_ALU_CFG)
    s.emit(R.DPU.BS_MUL_CFG)
    s.emit(R.DPU.BS_RELUX_CMP_VALUE)
    e = 3 if cv.depthwise else 1
    s.emit(R.DPU.BS_OW_CFG, SIZE_E_2=e, SIZE_E_1=e, SIZE_E_0=e)
    s.emit(R.DPU.BS_OW_OP, OW_OP=cv.ow_op)
    s.emit(R.DPU.WDMA_SIZE_0, CHANNEL_WDMA=cv.c_out - 1)
    s.emit(R.DPU.WDMA_SIZE_1, HEIGHT_WDMA=rows - 1, WIDTH_WDMA=cv.out_w - 1)
    s.emit(R.DPU.BN_CFG, BN_RELU_BYPASS=1, BN_MUL_BYPASS=1, BN_ALU_BYPASS=1, BN_BYPASS=1)
    s.emit(R.DPU.BN_ALU_CFG)
    s.emit(R.DPU.BN_MUL_CFG)
    s.emit(R.DPU.BN_RELUX_CMP_VALUE)
    if cv.ew is not None:
        s.emit(
            R.DPU.EW_CFG,
            EW_CVT_TYPE=R.CvtType.ADD_THEN_MUL,
            EW_DATA_MODE=1,
            EDATA_SIZE=1,
            EW_ALU_ALGO=R.AluAlgo.ALU_ADD,
            EW_RELU_BYPASS=1,
            EW_LUT_BYPASS=1,
            EW_OP_SRC=R.AluSrc.SRC_MEMORY,
            EW_CVT_ROUND=cv.ew_round,
        )
        s.emit(R.DPU.EW_CVT_OFFSET_VALUE, EW_OP_CVT_OFFSET=cv.ew[0])
        s.emit(R.DPU.EW_CVT_SCALE_VALUE, EW_OP_CVT_SCALE=cv.ew[1], EW_OP_CVT_SHIFT=cv.ew[2])
    else:
        s.emit(
            R.DPU.EW_CFG,
            EW_RELU_BYPASS=1,
            EW_OP_CVT_BYPASS=1,
            EW_LUT_BYPASS=1,
            EW_OP_BYPASS=1,
            EW_BYPASS=1,
        )
        s.emit(R.DPU.EW_CVT_OFFSET_VALUE)
        s.emit(R.DPU.EW_CVT_SCALE_VALUE, EW_OP_CVT_SCALE=1)
    s.emit(R.DPU.EW_RELUX_CMP_VALUE)
    s.emit(R.DPU.OUT_CVT_OFFSET, OUT_CVT_OFFSET=cv.offset)
    s.emit(R.DPU.OUT_CVT_SCALE, OUT_CVT_SCALE=cv.scale)
    s.emit(
        R.DPU.OUT_CVT_SHIFT, OUT_CVT_SHIFT=cv.shift, CVT_ROUND=cv.cvt_round, CVT_TYPE=cv.cvt_type
    )
    for n in range(8):
        s.emit(R.DPU[f"EW_OP_VALUE_{n}"])
    s.emit(R.DPU.SURFACE_ADD, SURF_ADD=cv.out_w * cv.out_h * (4 if cv.depthwise else 2))
    s.emit(R.DPU.UNK_40C4)
    for name in (
        "LUT_ACCESS_CFG",
        "LUT_ACCESS_DATA",
        "LUT_CFG",
        "LUT_INFO",
        "LUT_LE_START",
        "LUT_LE_END",
        "LUT_LO_START",
        "LUT_LO_END",
        "LUT_LE_SLOPE_SCALE",
        "LUT_LE_SLOPE_SHIFT",
        "LUT_LO_SLOPE_SCALE",
        "LUT_LO_SLOPE_SHIFT",
    ):
        s.emit(R.DPU[name])

    s.emit(R.DPU_RDMA.DATA_CUBE_WIDTH, WIDTH=cv.out_w - 1)
    s.emit(R.DPU_RDMA.DATA_CUBE_HEIGHT, HEIGHT=rows - 1)
    s.emit(R.DPU_RDMA.DATA_CUBE_CHANNEL, CHANNEL=cv.c_out - 1)
    plane = cv.out_w * cv.out_h
    ew_base = bufs.ew.iova + out_offset if cv.ew is not None else 0
    s.emit(R.DPU_RDMA.SRC_BASE_ADDR, SRC_BASE_ADDR=ew_base)
    s.emit(R.DPU_RDMA.BRDMA_CFG, BRDMA_DATA_USE=1)
    s.emit(R.DPU_RDMA.BS_BASE_ADDR, BS_BASE_ADDR=bufs.bias.iova)
    s.emit(R.DPU_RDMA.NRDMA_CFG)
    s.emit(R.DPU_RDMA.BN_BASE_ADDR)
    notch = plane + cv.out_w * (cv.out_h - rows)
    if cv.ew is not None and cv.ew_mode == "comb":
        s.emit(R.DPU_RDMA.ERDMA_CFG, ERDMA_DATA_MODE=1, ERDMA_DATA_SIZE=1)
        s.emit(R.DPU_RDMA.EW_BASE_ADDR, EW_BASE_ADDR=ew_base + plane * ATOM)
        s.emit(R.DPU_RDMA.EW_SURF_STRIDE, EW_SURF_STRIDE=max(plane, 12))
        s.emit(R.DPU_RDMA.FEATURE_MODE_CFG, BURST_LEN=15, COMB_USE=5, CONV_MODE=mode)
    elif cv.ew is not None:  # plain: MRDMA off, ERDMA reads every surface
        s.emit(R.DPU_RDMA.ERDMA_CFG, ERDMA_DATA_MODE=1, ERDMA_DATA_SIZE=1)
        s.emit(R.DPU_RDMA.EW_BASE_ADDR, EW_BASE_ADDR=ew_base)
        s.emit(R.DPU_RDMA.EW_SURF_STRIDE, EW_SURF_STRIDE=plane)
        s.emit(R.DPU_RDMA.FEATURE_MODE_CFG, BURST_LEN=15, MRDMA_DISABLE=1, CONV_MODE=mode)
    else:
        s.emit(R.DPU_RDMA.ERDMA_CFG, ERDMA_DISABLE=1)
        s.emit(R.DPU_RDMA.EW_BASE_ADDR)
        s.emit(R.DPU_RDMA.EW_SURF_STRIDE)
        s.emit(R.DPU_RDMA.FEATURE_MODE_CFG, BURST_LEN=15, MRDMA_DISABLE=1, CONV_MODE=mode)
    s.emit(R.DPU_RDMA.SRC_DMA_CFG)
    s.emit(R.DPU_RDMA.SURF_NOTCH, SURF_NOTCH_ADDR=notch if cv.ew is not None else 0)
    s.emit(R.DPU_RDMA.PAD_CFG)
    s.emit(R.DPU_RDMA.WEIGHT, E_WEIGHT=1, N_WEIGHT=1, B_WEIGHT=1, M_WEIGHT=1)
    s.emit(R.DPU_RDMA.EW_SURF_NOTCH, EW_SURF_NOTCH=notch if cv.ew is not None else 0)
    s.tail(enable=tail_enable)
    return s


# --------------------------------------------------------------------------------------------
# The independent formula
# --------------------------------------------------------------------------------------------


def rshift(v: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Round ``v / 2**n`` with Python's exact rationals per element (slow, independent)."""
    from fractions import Fraction

    def one(x: int) -> int:
        q = Fraction(int(x), 1 << n) if n > 0 else Fraction(int(x))
        fl = math.floor(q)
        frac = q - fl
        if frac == 0 or mode == "floor":
            return fl
        if frac != Fraction(1, 2):
            return fl + (frac > Fraction(1, 2))
        if mode == "half_up":
            return fl + 1
        if mode == "half_away":
            return fl + 1 if q > 0 else fl
        return fl + (fl % 2)  # half_even

    return np.vectorize(one, otypes=[np.int64])(v)


def reference(
    cv: Conv,
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray,
    e: np.ndarray | None = None,
    *,
    out_mode: str = "half_even",
    trunc_mode: str = "half_away",
    ow_place: str = "accumulator",
    masked: bool = False,
    pre_cvt: bool = False,
) -> np.ndarray:
    """What the registers say, element by element: ``x`` int8 ``[H, W, c_al]`` (as in memory,
    padding lanes included), ``w`` direct ``[K, kh, kw, c_al]`` / depthwise ``[kh, kw, c_al]``,
    ``bias`` int32 per output channel (``c_out``), ``e`` the fused operand int8 ``[oh, ow, k]``.
    Returns int8 ``[oh, ow, k]``."""
    xs = x.astype(np.int64)
    if masked:
        xs[:, :, cv.c :] = 0
    oh, ow = cv.out_h, cv.out_w
    acc = np.zeros((oh, ow, cv.k), dtype=np.int64)
    ssum = np.zeros((oh, ow, cv.k), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            win = np.full((cv.kh, cv.kw, cv.c_al), cv.pad_value, dtype=np.int64)
            for ky in range(cv.kh):
                for kx in range(cv.kw):
                    iy = oy * cv.stride - cv.pad_top + ky
                    ix = ox * cv.stride - cv.pad_left + kx
                    if 0 <= iy < cv.in_h and 0 <= ix < cv.in_w:
                        win[ky, kx] = xs[iy, ix]
            if cv.depthwise:
                acc[oy, ox] = (win * w).sum(axis=(0, 1))[: cv.k]
                ssum[oy, ox] = win.sum(axis=(0, 1))[: cv.k]
            else:
                acc[oy, ox] = np.einsum("abc,kabc->k", win, w[: cv.k])
                ssum[oy, ox] = win.sum()
    if ow_place == "accumulator":
        acc = acc + cv.ow_op * ssum
    v = rshift(acc, cv.clip, trunc_mode)
    if ow_place == "after_truncate":
        v = v + cv.ow_op * ssum
    v = v + bias[: cv.k]
    if e is not None:
        off, scale, shift = cv.ew
        v = v + rshift((e.astype(np.int64) + off) * scale, shift, out_mode)
    if pre_cvt:
        return v
    if cv.cvt_type:
        y = rshift((v + cv.offset) * cv.scale, cv.shift, out_mode)
    else:
        y = rshift(v * cv.scale, cv.shift, out_mode) + cv.offset
    return np.clip(y, -128, 127).astype(np.int8)


# --------------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------------


class Sim:
    """A file of a simulated device, with BO and submit helpers over the UAPI structs."""

    def __init__(self, device: SimulatedRocketDevice | None = None, **options) -> None:
        model = {k: v for k, v in options.items() if k in NpuModelOptions.__dataclass_fields__}
        dev = {k: v for k, v in options.items() if k in DeviceOptions.__dataclass_fields__}
        self.device = device or SimulatedRocketDevice(
            DeviceOptions(**dev), NpuModelOptions(**model)
        )
        self.file = self.device.open()

    def bo(self, size: int, data: bytes = b"") -> SimpleNamespace:
        args = ffi.new("struct drm_rocket_create_bo *", {"size": size})
        self.file.ioctl(uapi.ROCKET_CREATE_BO, args)
        mem = self.file.mmap(args.offset, size)
        mem[: len(data)] = data
        return SimpleNamespace(
            handle=args.handle, iova=args.dma_address, offset=args.offset, size=size, mem=mem
        )

    def submit(
        self, job_list: list[tuple[list[tuple[int, int]], list, list]], /, **overrides
    ) -> None:
        """``job_list``: (tasks [(regcmd IOVA, count)], in BOs, out BOs); ``overrides`` set
        fields of the drm_rocket_submit struct."""
        jobs = job_list
        keep = []
        cjobs = ffi.new("struct drm_rocket_job[]", len(jobs))
        for cjob, (tasks, ins, outs) in zip(cjobs, jobs, strict=True):
            t = ffi.new("struct drm_rocket_task[]", tasks)
            i = ffi.new("uint32_t[]", [b.handle for b in ins])
            o = ffi.new("uint32_t[]", [b.handle for b in outs])
            keep += [t, i, o]
            cjob.tasks = int(ffi.cast("uintptr_t", t))
            cjob.task_count = len(tasks)
            cjob.task_struct_size = ffi.sizeof("struct drm_rocket_task")
            cjob.in_bo_handles = int(ffi.cast("uintptr_t", i))
            cjob.in_bo_handle_count = len(ins)
            cjob.out_bo_handles = int(ffi.cast("uintptr_t", o))
            cjob.out_bo_handle_count = len(outs)
        args = {
            "jobs": int(ffi.cast("uintptr_t", cjobs)),
            "job_count": len(jobs),
            "job_struct_size": ffi.sizeof("struct drm_rocket_job"),
            **overrides,
        }
        self.file.ioctl(uapi.ROCKET_SUBMIT, ffi.new("struct drm_rocket_submit *", args))

    def prep(self, bo) -> int:
        """PREP_BO's errno (0 on success)."""
        try:
            self.file.ioctl(
                uapi.ROCKET_PREP_BO, ffi.new("struct drm_rocket_prep_bo *", {"handle": bo.handle})
            )
        except DrmError as e:
            return e.errno
        return 0

    def regcmd(self, *streams: Stream) -> tuple[SimpleNamespace, list[tuple[int, int]]]:
        """One BO holding the streams at 64-byte aligned slots (Mesa compile_operation())."""
        slots, offset = [], 0
        for st in streams:
            slots.append(offset)
            offset += align(len(st.words) * 8, 64)
        bo = self.bo(max(offset, 8))
        for st, at in zip(streams, slots, strict=True):
            data = st.data()
            bo.mem[at : at + len(data)] = data
        return bo, [(bo.iova + at, len(st.words)) for st, at in zip(streams, slots, strict=True)]


@dataclass
class ConvRun:
    """A convolution case with its random data, run on a Sim."""

    cv: Conv
    x: np.ndarray  # int8 [in_h, in_w, c_al] as stored (padding lanes included)
    w: np.ndarray
    bias: np.ndarray  # int32 [c_out]
    e: np.ndarray | None = None  # int8 [out_h, out_w, k]
    raw: np.ndarray | None = None  # the 1-channel path's uint8 rows


def fit_shift(run: ConvRun, spread: float = 40.0) -> ConvRun:
    """``run`` with OUT_CVT_SHIFT chosen so that outputs spread over about +-``spread``."""
    v = reference(run.cv, run.x, run.w, run.bias, run.e, pre_cvt=True)
    shift = max(0, round(math.log2(max(float(v.std()), 1.0) * run.cv.scale / spread)))
    return replace(run, cv=replace(run.cv, shift=shift))


def random_run(cv: Conv, rng: np.random.Generator) -> ConvRun:
    x = rng.integers(-128, 128, (cv.in_h, cv.in_w, cv.c_al)).astype(np.int8)
    raw = None
    if cv.pixel:
        raw = rng.integers(0, 256, (cv.in_h, cv.in_w)).astype(np.uint8)
        x = np.zeros((cv.in_h, cv.in_w, cv.c_al), dtype=np.int8)
        x[:, :, 0] = (raw.astype(np.int16) - 128).astype(np.int8)
    if cv.depthwise:
        w = rng.integers(-128, 128, (cv.kh, cv.kw, cv.c_al)).astype(np.int8)
    else:
        w = rng.integers(-128, 128, (cv.kernels, cv.kh, cv.kw, cv.c_al)).astype(np.int8)
        w[cv.k :] = 0
    bias = rng.integers(-(1 << 16), 1 << 16, cv.c_out).astype(np.int32)
    e = rng.integers(-128, 128, (cv.out_h, cv.out_w, cv.k)).astype(np.int8) if cv.ew else None
    return ConvRun(cv, x, w, bias, e, raw)


def load(sim: Sim, run: ConvRun) -> Buffers:
    cv = run.cv
    if cv.pixel:
        line = max(cv.in_w, ATOM)
        rows = np.full((cv.in_h, line), 128, dtype=np.uint8)
        rows[:, : cv.in_w] = run.raw
        inp = sim.bo(rows.size, rows.tobytes())
    else:
        inp = sim.bo(cv.in_h * cv.in_w * cv.c_al, pack_features(run.x, cv.c_al, 0))
    if cv.depthwise:
        wdata = pack_weights(run.w, cv.c_al, True, 0)
    else:
        wdata = pack_weights(run.w, cv.c_al, False, 0)
    wbo = sim.bo(len(wdata), wdata)
    bbo = sim.bo(cv.c_out * 4, run.bias.astype("<i4").tobytes())
    out_surfaces = cv.c_out // ATOM
    obo = sim.bo(out_surfaces * cv.out_h * cv.out_w * ATOM)
    ebo = None
    if run.e is not None:
        ebo = sim.bo(
            out_surfaces * cv.out_h * cv.out_w * ATOM, pack_features(run.e, cv.k, 0, out_surfaces)
        )
    return Buffers(inp, wbo, bbo, obo, ebo)


def execute(sim: Sim, run: ConvRun, *, split: int = 1) -> np.ndarray:
    """Run ``run`` as ``split`` row tasks of one job; return the output int8 ``[oh, ow, k]``."""
    cv = run.cv
    bufs = load(sim, run)
    chunks = np.array_split(np.arange(cv.out_h), split)
    streams = [
        conv_stream(replace(cv, rows=(int(c[0]), len(c)), weight_reuse=i > 0), bufs)
        for i, c in enumerate(chunks)
    ]
    _, tasks = sim.regcmd(*streams)
    ins = [bufs.input] + ([bufs.ew] if bufs.ew is not None else [])
    sim.submit([(tasks, ins, [bufs.output])])
    err = sim.prep(bufs.output)
    if err:
        raise AssertionError(f"PREP_BO failed: {errno.errorcode[err]}: {sim.file.last_fault()}")
    plane = cv.out_h * cv.out_w * ATOM
    return unpack_features(bytes(bufs.output.mem), cv.out_h, cv.out_w, cv.k, plane)


__all__ = [
    "ATOM", "ENTRY", "MARKER", "Buffers", "Conv", "ConvRun", "Sim", "Stream", "align",
    "conv_stream", "execute", "fit_shift", "load", "pack_features", "pack_weights", "random_run",
    "reference", "rshift", "unpack_features",
]  # fmt: skip
